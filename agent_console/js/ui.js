// Shared DOM helpers, the toast, and how values are written for people.
//
// Rules every module keeps:
// - Server data reaches the page only through textContent and attributes, never innerHTML, so
//   nothing the server (or a caller's data) sends can become markup.
// - No inline styles or scripts (the server's CSP forbids them): state shows through classes,
//   data-* attributes and the hidden attribute.

import { getLang, t, tValue } from "../i18n.js";
import { LinkError } from "../link.js";
import { TIERS, isOneOf } from "./protocol.js";

/**
 * The element with this id, checked to be a `kind` (default: any HTMLElement). The markup and
 * the code must agree: a mismatch fails here, loudly, instead of as `undefined` later.
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {new (...args: any[]) => T} [kind]
 * @returns {T}
 */
export function $(id, kind) {
  const el = document.getElementById(id);
  const want = kind ?? HTMLElement;
  if (!(el instanceof want)) throw new Error(`#${id}: no ${want.name} with this id in the page`);
  return /** @type {T} */ (el);
}

/** @param {HTMLElement} el @param {boolean} visible */
export function show(el, visible) {
  el.hidden = !visible;
}

/**
 * A table cell with this text.
 * @param {string} text
 * @param {string} [className]
 * @param {string} [col]   its data-col
 */
export function cell(text, className = "", col = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  if (col) td.dataset.col = col;
  return td;
}

/** An <option>. @param {string} value @param {string} [text] */
export function option(value, text) {
  const opt = document.createElement("option");
  opt.value = value;
  if (text !== undefined) opt.textContent = text;
  return opt;
}

/** A form's error line: the text of `key`, or hidden when there is none.
 * @param {HTMLElement} el @param {string} key */
export function fieldError(el, key) {
  el.textContent = key ? t(key) : "";
  show(el, Boolean(key));
}

/** Strip the separators people type or paste into phone numbers ("138-0000 0000").
 * @param {string} text */
export function cleanNumber(text) {
  return text.replace(/[\s()-]/g, "");
}

/**
 * A customer's tier badge: the tier's name, and data-tier for its colour ("unknown" for a tier
 * the page does not know).
 * @param {HTMLElement} el
 * @param {string | undefined} tierValue
 */
export function renderTier(el, tierValue) {
  el.textContent = tierValue ? tValue("tier", tierValue) : "";
  el.dataset.tier = isOneOf(TIERS, tierValue) ? tierValue : "unknown";
  show(el, Boolean(tierValue));
}

// -- messages to the agent ------------------------------------------------------------------

/** A failed request's meaning in the agent's language. @param {unknown} err */
export function errorText(err) {
  const code = err instanceof LinkError ? err.code : "internal";
  const key = `err.${code}`;
  const text = t(key);
  return text === key ? t("err.unknown", { code }) : text;
}

let toastTimer = 0;

/**
 * One toast at a time (the newest): an error's meaning in the agent's language, and the
 * server's own words underneath when it gave any.
 * @param {string} text
 * @param {{kind?: "info" | "error", detail?: string}} [opts]
 */
export function toast(text, { kind = "info", detail = "" } = {}) {
  const box = $("toast");
  box.replaceChildren();
  const main = document.createElement("strong");
  main.textContent = text;
  box.append(main);
  if (detail && detail !== text) {
    const small = document.createElement("span");
    small.className = "detail";
    small.textContent = detail;
    box.append(small);
  }
  box.dataset.kind = kind;
  show(box, true);
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => show(box, false), kind === "error" ? 8000 : 4000);
}

/** @param {unknown} err */
export function toastError(err) {
  toast(errorText(err), {
    kind: "error", detail: err instanceof LinkError ? err.serverMessage : "",
  });
}

// -- values for people ----------------------------------------------------------------------

/** Unix seconds (the protocol's times), ISO strings or ms -> ms since the epoch, or null.
 * @param {unknown} value
 * @returns {number | null} */
export function toMs(value) {
  if (typeof value === "number" && Number.isFinite(value)) {
    return value < 1e12 ? value * 1000 : value;
  }
  if (typeof value === "string" && value) {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? null : parsed;
  }
  return null;
}

/** @param {unknown} seconds */
export function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return t("none");
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** The locale the page writes dates and times in. */
export function locale() {
  return getLang() === "zh" ? "zh-CN" : "en-GB";
}

/** @param {unknown} value */
export function fmtDateTime(value) {
  const ms = toMs(value);
  if (ms === null) return String(value ?? "");
  return new Date(ms).toLocaleString(locale(), {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
}

/** @type {Record<string, string>} */
const CURRENCY_SIGNS = { CNY: "¥", RMB: "¥", HKD: "HK$", USD: "US$" };

/**
 * Money arrives as a decimal string (or a number): group the digits without going through a
 * float, so what the agent reads is exactly what the back office said.
 * @param {unknown} value
 * @param {string} [currency]
 */
export function fmtMoney(value, currency) {
  if (value === null || value === undefined || value === "") return t("none");
  const text = String(value);
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  const sign = (currency && CURRENCY_SIGNS[currency]) ?? (currency ? `${currency} ` : "");
  if (!m) return `${sign}${text}`;
  const grouped = m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${m[1]}${sign}${grouped}${m[3] ?? ""}`;
}

/** @param {unknown} share   0..1 */
export function fmtPercent(share) {
  if (typeof share !== "number" || !Number.isFinite(share)) return t("none");
  return `${Math.round(share * 100)}%`;
}

/**
 * The IVR path: the engine sends node names joined by spaces ("main quotes agent"); a list is
 * accepted too. Shown as a breadcrumb.
 * @param {unknown} path
 */
export function fmtPath(path) {
  const steps = Array.isArray(path) ? path.map(String)
    : String(path ?? "").split(/\s+/).filter(Boolean);
  return steps.length ? steps.join(" › ") : t("none");
}
