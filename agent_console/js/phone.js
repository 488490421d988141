// The agent's phone panel: the browser softphone (../softphone.js: SIP and media) drawn from its
// snapshot() and driven by the panel's buttons, or the desk phone's name; and the PBX's own view
// of the registration (the `phone` event). Owns state.phone, state.phoneServer and the Softphone.

import { t, tValue } from "../i18n.js";
import { Softphone } from "../softphone.js";
import { setClock } from "./clock.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { state } from "./state.js";
import { $, option, renderTier, show } from "./ui.js";

/** How long after a listen/whisper/barge click the supervisor's browser phone answers by itself */
const SPY_ANSWER_MS = 35000;

/** The browser softphone; idle unless the login reply gives a browser phone.
 * @type {Softphone | null} */
let softphone = null;

/** The softphone, once wire() made it. */
function phone() {
  if (!softphone) throw new Error("phone.js: wire() first");
  return softphone;
}

/**
 * The login reply's `phone`: a browser phone starts registering (start() takes the password
 * out of the reply: nothing here keeps it); anything else is a desk or simulated phone, named
 * if the agent gave its extension at log-in.
 * @param {import("./registry.js").LoginReply} data
 */
function startPhone(data) {
  const creds = data.phone ?? null;
  state.phoneServer = null;
  if (creds?.kind === "browser") {
    state.phone = { kind: "browser", extension: String(creds.extension ?? "") };
    phone().start(creds); // errors show in the panel
    data.phone = null;
  } else {
    phone().stop();
    const desk = String(creds?.extension ?? "") || $("login-phone", HTMLInputElement).value.trim();
    state.phone = desk ? { kind: "desk", extension: desk } : null;
  }
  renderPhone();
}

function stopPhone() {
  phone().stop();
  state.phone = null;
  state.phoneServer = null;
  renderPhone();
}

/** A supervisor asked to listen in: their browser phone is about to ring and answers itself. */
export function expectSpyCall() {
  if (state.phone?.kind === "browser") softphone?.expectCall(SPY_ANSWER_MS);
}

export function renderPhone() {
  const current = state.phone;
  show($("phone-panel"), current !== null);
  if (!current) return;
  const browser = current.kind === "browser";
  const snap = phone().snapshot();
  $("phone-ext").textContent = current.extension;
  show($("phone-soft"), browser);
  renderPhoneServer();
  const status = $("phone-status");
  if (!browser) {
    status.dataset.state = "desk";
    status.textContent = t("phone.desk", { ext: current.extension });
    renderPhoneError([]);
    return;
  }
  const word = snap.state === "registered" && snap.recovered ? "reregistered" : snap.state;
  status.dataset.state = word;
  status.textContent = t(`phone.state.${word}`);
  renderPhoneError(snap.errors);
  renderPhoneCall(snap.call);
  renderPhoneDevices(snap);
}

/** The PBX's own view of the registration (the engine's `phone` event), as a badge. */
function renderPhoneServer() {
  const badge = $("phone-pbx");
  const view = state.phoneServer;
  show(badge, view !== null);
  if (!view) return;
  badge.dataset.registered = String(view.registered);
  // registered but missing qualify probes: a call on it goes on for a while (docs/phones.md)
  const off = view.reason === "unreachable" ? "phone.pbx_silent" : "phone.pbx_off";
  badge.textContent = t(view.registered ? "phone.pbx_on" : off);
  badge.title = view.reason;
}

/**
 * Each error on its own line: the phone's (registration, network) first, then the media's.
 * @param {{code: string, detail?: string, status?: string | number}[]} errors
 */
function renderPhoneError(errors) {
  const el = $("phone-error");
  show(el, errors.length > 0);
  el.dataset.code = errors.map((e) => e.code).join(" ");
  el.replaceChildren(...errors.map((error) => {
    const line = document.createElement("span");
    line.dataset.code = error.code;
    const parts = [error.detail ? tValue("phone.cause", error.detail) : "", error.status]
      .filter(Boolean);
    const what = t(`phone.err.${error.code}`);
    line.textContent = parts.length ? t("phone.err_with", { what, detail: parts.join(" ") })
      : what;
    return line;
  }));
}

/** @param {import("../softphone.js").PhoneCall | null} call */
function renderPhoneCall(call) {
  const ringing = call?.state === "ringing";
  show($("phone-incoming"), ringing);
  show($("phone-call"), call !== null && !ringing);
  if (call && ringing) {
    // the console's screen pop (call_offered) knows the customer; the INVITE knows the number
    const offered = state.call?.state === "ringing" ? state.call : null;
    const customer = offered?.customer ?? null;
    // With a screen pop, its (masked) view wins: the INVITE's display name is the tier, and its
    // number is the caller's in full, which the console never shows.
    $("phone-caller-name").textContent = offered
      ? customer?.name || t("call.unknown_customer")
      : call.name || t("call.unknown_customer");
    $("phone-caller-number").textContent = offered ? offered.caller ?? "" : call.number || "";
    renderTier($("phone-caller-tier"), customer?.tier ?? "");
  }
  if (!call || ringing) {
    setClock($("phone-timer"), "since", null);
    return;
  }
  const live = call.state === "in_call" || call.state === "on_hold";
  setClock($("phone-timer"), "since", live ? call.sinceMs + state.skewMs : null);
  const mute = $("phone-mute", HTMLButtonElement);
  mute.textContent = t(call.muted ? "phone.unmute" : "phone.mute");
  mute.setAttribute("aria-pressed", String(call.muted));
  mute.disabled = !live;
  const hold = $("phone-hold", HTMLButtonElement);
  hold.textContent = t(call.held ? "phone.unhold" : "phone.hold");
  hold.setAttribute("aria-pressed", String(call.held));
  hold.disabled = !live;
  for (const key of $("phone-keypad").querySelectorAll("button")) {
    key.disabled = call.state !== "in_call";
  }
  $("phone-digits").textContent = call.digits;
}

/** @param {import("../softphone.js").Snapshot} snap */
function renderPhoneDevices(snap) {
  const speaker = $("phone-speaker", HTMLSelectElement);
  fillDevices($("phone-mic", HTMLSelectElement), snap.devices.inputs, snap.micId,
    "phone.mic_none");
  fillDevices(speaker, snap.devices.outputs, snap.speakerId, "phone.speaker_default");
  speaker.disabled = !snap.canPickSpeaker;
  speaker.title = snap.canPickSpeaker ? "" : t("phone.speaker_unsupported");
}

/**
 * A device <select>: the browser's devices, or one placeholder option when it lists none.
 * @param {HTMLSelectElement} select
 * @param {{id: string, label: string}[]} devices
 * @param {string} current
 * @param {string} emptyKey
 */
function fillDevices(select, devices, current, emptyKey) {
  const options = devices.map((d) => option(d.id, d.label));
  if (!devices.some((d) => d.id === "default" || d.id === "")) {
    options.unshift(option("", t(emptyKey)));
  }
  select.replaceChildren(...options);
  select.value = devices.some((d) => d.id === current) ? current : select.options[0].value;
}

/** @param {number} level */
function onPhoneLevel(level) {
  $("phone-level", HTMLMeterElement).value = level;
}

export function wire() {
  const sp = new Softphone({ onChange: renderPhone, onLevel: onPhoneLevel,
    audio: $("phone-audio", HTMLAudioElement) });
  softphone = sp;
  // window.__softphone: the tests' handle on the phone (softphone.js testHandle())
  Object.assign(window, { __softphone: sp.testHandle() });
  handleEvents({
    phone(data) {
      const extension = String(data.extension ?? "");
      if (state.phone?.extension && extension && extension !== state.phone.extension) return;
      state.phoneServer = { extension, registered: data.registered === true,
        reason: String(data.reason ?? "") };
      // a desk phone the page did not know of (hot-desking from elsewhere): name it
      if (!state.phone && extension) state.phone = { kind: "desk", extension };
      renderPhone();
    },
  });
  onSession({ start: startPhone, end: stopPhone });
  onRender(renderPhone);

  $("phone-accept").addEventListener("click", () => sp.accept());
  $("phone-reject").addEventListener("click", () => sp.reject());
  $("phone-hangup").addEventListener("click", () => sp.hangup());
  $("phone-mute").addEventListener("click", () => sp.toggleMute());
  $("phone-hold").addEventListener("click", () => sp.toggleHold());
  $("phone-keypad").addEventListener("click", (event) => {
    const key = event.target instanceof Element ? event.target.closest("button[data-digit]")
      : null;
    if (key instanceof HTMLElement && key.dataset.digit) sp.sendDigit(key.dataset.digit);
  });
  const mic = $("phone-mic", HTMLSelectElement);
  const speaker = $("phone-speaker", HTMLSelectElement);
  mic.addEventListener("change", () => sp.setMicrophone(mic.value));
  speaker.addEventListener("change", () => sp.setSpeaker(speaker.value));
  navigator.mediaDevices?.addEventListener?.("devicechange", () => {
    if (state.phone?.kind === "browser") sp.listDevices();
  });
  // Closing the tab unregisters, so the PBX does not ring a phone that is gone. Not during a
  // call: stopping would hang it up (BYE) and the caller would be lost; left alone, the socket
  // closes with the page, the PBX drops the registration and the engine puts the caller back
  // in the queue (docs/phones.md).
  window.addEventListener("pagehide", () => {
    if (!["ringing", "connecting", "in_call", "on_hold"].includes(sp.state)) sp.stop();
  });
}
