// Keyboard shortcuts for the agent's most frequent actions, and their help overlay (`?`).
//
// Alt + a letter (matched by the key's position, event.code, so it works on any layout and on
// macOS, where Option+letter types a character), chosen not to collide with the browsers' own
// Alt shortcuts (Chrome: Alt+D, Alt+E, Alt+F; Firefox's menus: Alt+B, E, F, H, S, T, V):
//
//   Alt+A answer (when the browser phone rings)   Alt+X hang up
//   Alt+P hold / resume                          Alt+R ready     Alt+N not ready
//   Alt+Z transfer (转 zhuǎn)                      Alt+W save the wrap-up
//   ?     this help                               Ctrl+Enter in the wrap-up notes: save
//
// A shortcut does what clicking its button does (the same checks, the same request), and only
// when that button is shown and enabled; otherwise a toast says it is not possible now. Keys
// are ignored while typing in a field, while a dialog is open, and before logging in. The
// buttons' titles and aria-keyshortcuts name their keys.

import { t } from "../i18n.js";
import { onControls, onRender } from "./registry.js";
import { state } from "./state.js";
import { $, toast } from "./ui.js";

/**
 * One shortcut: its event.code with Alt, what the help calls it, and the buttons it clicks
 * (the first one shown and enabled).
 * @typedef {object} Hotkey
 * @property {string} code
 * @property {string} label   shown in help and titles
 * @property {string} action   i18n key
 * @property {string[]} buttons   element ids, tried in order
 */

/** @type {readonly Hotkey[]} */
export const HOTKEYS = Object.freeze([
  { code: "KeyA", label: "Alt+A", action: "keys.answer", buttons: ["phone-accept"] },
  { code: "KeyX", label: "Alt+X", action: "keys.hangup", buttons: ["btn-hangup", "phone-hangup"] },
  { code: "KeyP", label: "Alt+P", action: "keys.hold", buttons: ["btn-hold", "btn-resume"] },
  { code: "KeyR", label: "Alt+R", action: "keys.ready", buttons: ["btn-ready"] },
  { code: "KeyN", label: "Alt+N", action: "keys.not_ready", buttons: ["btn-not-ready"] },
  { code: "KeyZ", label: "Alt+Z", action: "keys.transfer", buttons: ["btn-transfer"] },
  { code: "KeyW", label: "Alt+W", action: "keys.wrapup", buttons: ["wrapup-save"] },
]);

/** What each button's title was last set to here (another module's title is left alone).
 * @type {Map<string, string>} */
const titlesSet = new Map();

/** Whether the key went to something the agent types in. @param {EventTarget | null} target */
function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (!(target instanceof HTMLInputElement)) return false;
  return !["button", "checkbox", "radio", "submit", "reset", "range", "color", "file"]
    .includes(target.type);
}

/** Whether this element is drawn (not hidden itself or inside something hidden). @param {HTMLElement} el */
function shown(el) {
  return el.closest("[hidden]") === null && el.getClientRects().length > 0;
}

/** The first of the hotkey's buttons that can be clicked now. @param {Hotkey} key */
function target(key) {
  for (const id of key.buttons) {
    const btn = document.getElementById(id);
    if (btn instanceof HTMLButtonElement && shown(btn) && !btn.disabled) return btn;
  }
  return null;
}

/** @param {Hotkey} key */
function run(key) {
  const btn = target(key);
  if (btn) {
    btn.click();
    return;
  }
  // answering: a desk phone is answered on the phone itself
  const ringing = state.call?.state === "ringing";
  toast(key.code === "KeyA" && ringing && state.phone?.kind !== "browser"
    ? t("call.answer_hint") : t("keys.unavailable", { action: t(key.action) }));
}

function modalOpen() {
  return document.querySelector("dialog[open]") !== null;
}

/** @param {KeyboardEvent} event */
function onKeyDown(event) {
  if (event.defaultPrevented || event.isComposing || !state.me) return;
  // Ctrl+Enter (Cmd+Enter) in the wrap-up notes saves the wrap-up
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)
      && event.target instanceof HTMLElement && event.target.id === "wrapup-notes") {
    event.preventDefault();
    const save = HOTKEYS.find((k) => k.code === "KeyW");
    if (save) target(save)?.click();
    return;
  }
  // (a field of a dialog that was just closed may hold the focus for a moment: not typing)
  if ((typing(event.target) && event.target instanceof HTMLElement && shown(event.target))
      || modalOpen()) return;
  if (event.key === "?" && !event.altKey && !event.ctrlKey && !event.metaKey) {
    event.preventDefault();
    openHelp();
    return;
  }
  if (!event.altKey || event.ctrlKey || event.metaKey || event.shiftKey || event.repeat) return;
  const key = HOTKEYS.find((k) => k.code === event.code);
  if (!key) return;
  event.preventDefault();
  run(key);
}

function openHelp() {
  renderHelp();
  $("keys-dialog", HTMLDialogElement).showModal();
  $("keys-close").focus();
}

function renderHelp() {
  const rows = [
    ...HOTKEYS.map((k) => [k.label, t(k.action)]),
    ["Ctrl+Enter", t("keys.wrapup_notes")],
    ["?", t("keys.help")],
  ].map(([label, action]) => {
    const tr = document.createElement("tr");
    const keyCell = document.createElement("td");
    const kbd = document.createElement("kbd");
    kbd.textContent = label;
    keyCell.append(kbd);
    const actionCell = document.createElement("td");
    actionCell.textContent = action;
    tr.append(keyCell, actionCell);
    return tr;
  });
  $("keys-rows").replaceChildren(...rows);
}

/** Each button's title names its key (unless another module titled it: seat.js's reasons). */
function renderTitles() {
  for (const key of HOTKEYS) {
    for (const id of key.buttons) {
      const btn = document.getElementById(id);
      if (!btn) continue;
      btn.setAttribute("aria-keyshortcuts", `Alt+${key.code.slice(3)}`);
      const mine = titlesSet.get(id);
      if (btn.title && btn.title !== mine) continue;
      const title = t("keys.title", { action: t(key.action), key: key.label });
      btn.title = title;
      titlesSet.set(id, title);
    }
  }
  $("btn-keys").title = t("keys.help_title");
}

export function wire() {
  onRender(() => {
    renderTitles();
    if ($("keys-dialog", HTMLDialogElement).open) renderHelp();
  });
  onControls(renderTitles);
  document.addEventListener("keydown", onKeyDown);
  $("btn-keys").addEventListener("click", openHelp);
  $("keys-close").addEventListener("click", () => $("keys-dialog", HTMLDialogElement).close());
}
