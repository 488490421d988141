// The server's clock and the page's running timers.
//
// The protocol's times (a seat's `since`) are the server's unix seconds; a ping reply carries the
// server's time, so the page corrects for a PC whose clock is off and timers never start at
// "-0:42" or "7:03" instead of 0:00. Owns state.skewMs.

import { t } from "../i18n.js";
import { state } from "./state.js";
import { fmtDuration } from "./ui.js";

export const PING_TIMEOUT_MS = 10000;

/** Now on the server's clock, in ms. */
export function now() {
  return Date.now() + state.skewMs;
}

/**
 * Measure the skew from one ping: the server's time against the middle of the round trip.
 * @param {import("../link.js").Link} link
 * @param {number} [timeoutMs]
 */
export async function syncClock(link, timeoutMs = PING_TIMEOUT_MS) {
  const sent = Date.now();
  const reply = await link.request("ping", {}, { timeoutMs });
  const received = Date.now();
  if (typeof reply.time === "number" && Number.isFinite(reply.time)) {
    state.skewMs = reply.time * 1000 - (sent + received) / 2;
  }
}

/**
 * A clock element: renderClocks() keeps its text current from data-since (a running duration)
 * or data-deadline (the time left).
 * @param {HTMLElement} el
 * @param {"since" | "deadline"} kind
 * @param {number | null | undefined} ms   server clock, ms; none clears the clock
 */
export function setClock(el, kind, ms) {
  delete el.dataset.since;
  delete el.dataset.deadline;
  if (ms === null || ms === undefined) {
    el.textContent = "";
    return;
  }
  el.dataset[kind] = String(ms);
  renderClock(el);
}

/** @param {HTMLElement} el */
function renderClock(el) {
  const at = now();
  if (el.dataset.since) {
    el.textContent = fmtDuration((at - Number(el.dataset.since)) / 1000);
  } else if (el.dataset.deadline) {
    const left = (Number(el.dataset.deadline) - at) / 1000;
    el.textContent = left > 0 ? t("wrap.left", { time: fmtDuration(Math.ceil(left)) })
      : t("wrap.over");
    el.classList.toggle("urgent", left <= 10);
  }
}

export function renderClocks() {
  for (const el of document.querySelectorAll("[data-since], [data-deadline]")) {
    if (el instanceof HTMLElement) renderClock(el);
  }
}

/** Tick every clock on the page once a second. */
export function startClocks() {
  window.setInterval(renderClocks, 1000);
}
