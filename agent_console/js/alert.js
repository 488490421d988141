// The ring alert: while a call is offered (`call_offered`) the page rings, a ring tone made
// with the WebAudio API (no sound files), until the call is answered or gone (`call_connected`,
// `call_ended`, a new session); and, when the agent is looking elsewhere, a desktop
// notification says which queue and what tier of customer is calling. Clicking it brings the
// page to the front.
//
// - The browser softphone does not ring by itself: this alert is the ring, for browser and
//   desk phones alike (a desk phone rings too; the mute toggle is for that case).
// - Browsers let a page play sound and ask for notifications only after a user gesture: the
//   first click or key press on the page unlocks the sound, and the first one after logging in
//   asks for the notification permission, once (remembered).
// - The mute toggle in the header silences the tone (the notification still shows); it is
//   remembered in localStorage.
// - window.__ringAlert is the tests' view: {ringing, audible, muted, callId, notifications}.
//
// This module owns no server event: it observes call.js's (registry.js onEvent).

import { t, tValue } from "../i18n.js";
import { onEvent, onRender, onSession } from "./registry.js";
import { state } from "./state.js";
import { $ } from "./ui.js";

const MUTE_KEY = "callcenter.console.ring_muted";
const ASKED_KEY = "callcenter.console.notify_asked";
/** one ring cycle: two 0.4 s bursts 0.2 s apart, then silence (ms) */
const CYCLE_MS = 3000;
const BURSTS = [[0, 0.4], [0.6, 0.4]];
/** the ring's two tones (Hz) and loudness (0..1) */
const TONES = [440, 480];
const VOLUME = 0.12;

/** the call ringing now ("" when none) */
let ringingCall = "";
let muted = readMuted();
/** @type {AudioContext | null} */
let audio = null;
/** @type {GainNode | null} */
let output = null;
let cycleTimer = 0;
/** @type {Notification | null} */
let notice = null;
let notifications = 0;

function readMuted() {
  try {
    return window.localStorage.getItem(MUTE_KEY) === "1";
  } catch {
    return false;
  }
}

/** @param {string} key @param {string} value */
function remember(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // not remembered; it still works for this page
  }
}

/** The page's AudioContext, made on first use (suspended until a user gesture). */
function context() {
  if (audio) return audio;
  const Ctor = window.AudioContext;
  if (!Ctor) return null;
  audio = new Ctor();
  return audio;
}

/** A user gesture: the sound may play from now on; after logging in, ask for notifications. */
function onGesture() {
  const ctx = context();
  if (ctx && ctx.state === "suspended") ctx.resume().catch(() => {});
  if (state.me) askForNotifications();
}

function askForNotifications() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  try {
    if (window.localStorage.getItem(ASKED_KEY) === "1") return;
  } catch {
    // no storage: ask (the browser remembers the answer itself)
  }
  remember(ASKED_KEY, "1");
  Notification.requestPermission().catch(() => {});
}

/** One ring cycle on the output, starting now. */
function ringCycle() {
  const ctx = audio;
  if (!ctx || !output || ctx.state !== "running") return;
  const start = ctx.currentTime + 0.02;
  for (const [at, length] of BURSTS) {
    const envelope = ctx.createGain();
    envelope.gain.setValueAtTime(0, start + at);
    envelope.gain.linearRampToValueAtTime(1, start + at + 0.02);
    envelope.gain.setValueAtTime(1, start + at + length - 0.02);
    envelope.gain.linearRampToValueAtTime(0, start + at + length);
    envelope.connect(output);
    for (const hz of TONES) {
      const tone = ctx.createOscillator();
      tone.frequency.value = hz;
      tone.connect(envelope);
      tone.start(start + at);
      tone.stop(start + at + length);
    }
  }
}

function startTone() {
  if (cycleTimer || muted) return;
  const ctx = context();
  if (!ctx) return;
  output = ctx.createGain();
  output.gain.value = VOLUME;
  output.connect(ctx.destination);
  ringCycle();
  cycleTimer = window.setInterval(ringCycle, CYCLE_MS);
}

function stopTone() {
  window.clearInterval(cycleTimer);
  cycleTimer = 0;
  // cutting the output silences the bursts already scheduled
  output?.disconnect();
  output = null;
}

/** Whether the agent is looking at the page now (then the card itself is the notice). */
function watched() {
  return document.visibilityState === "visible" && document.hasFocus();
}

function notify() {
  const call = state.call;
  if (!call || !("Notification" in window) || Notification.permission !== "granted") return;
  if (watched() && !notice) return;
  const tier = call.customer?.tier;
  const body = tier ? t("alert.notify_body", { tier: tValue("tier", tier) })
    : t(call.customer_pending ? "alert.notify_body_pending" : "alert.notify_body_unknown");
  try {
    // the same tag replaces the call's earlier notice (with the tier, once it is known)
    const next = new Notification(t("alert.notify_title", { queue: call.queue ?? "" }), {
      body, tag: `call-${call.call_id}`, requireInteraction: true, silent: true,
    });
    next.onclick = () => {
      window.focus();
      next.close();
    };
    notice = next;
    notifications += 1;
  } catch {
    // some browsers allow notifications only from a service worker: the ring still rings
  }
}

/** A call is offered (call.js has put it on the card): ring, and notify. */
function start() {
  const call = state.call;
  if (!call || call.state !== "ringing") return;
  ringingCall = String(call.call_id);
  startTone();
  notify();
  renderMute();
}

/** @param {import("./registry.js").EventData} data */
function stopFor(data) {
  if (!ringingCall || (data.call_id && data.call_id !== ringingCall)) return;
  stop();
}

function stop() {
  ringingCall = "";
  stopTone();
  notice?.close();
  notice = null;
  renderMute();
}

function renderMute() {
  const btn = $("btn-ring-mute", HTMLButtonElement);
  btn.setAttribute("aria-pressed", String(muted));
  btn.dataset.muted = String(muted);
  btn.dataset.ringing = String(ringingCall !== "");
  btn.dataset.call = ringingCall;
  btn.textContent = muted ? "🔕" : "🔔";
  const label = t(muted ? "alert.unmute" : "alert.mute");
  btn.title = label;
  btn.setAttribute("aria-label", label);
}

function toggleMute() {
  muted = !muted;
  remember(MUTE_KEY, muted ? "1" : "0");
  if (muted) stopTone();
  else if (ringingCall) startTone();
  renderMute();
}

export function wire() {
  onEvent("call_offered", start);
  onEvent("call_customer", (data) => {
    // the tier is known now: the open notice says it
    if (ringingCall && notice && data.call_id === ringingCall) notify();
  });
  onEvent("call_connected", stopFor);
  onEvent("call_ended", stopFor);
  onEvent("seat", () => {
    // a safety net: the card no longer shows a ringing call (it was withdrawn somehow)
    if (ringingCall && state.call?.state !== "ringing") stop();
  });
  onSession({
    start(reply) {
      // a reload while a call rings: ring on (the card shows it ringing)
      if (reply.call && reply.call.state === "ringing") {
        queueMicrotask(start);
      }
    },
    end: stop,
  });
  onRender(renderMute);
  $("btn-ring-mute").addEventListener("click", toggleMute);
  document.addEventListener("pointerdown", onGesture, true);
  document.addEventListener("keydown", onGesture, true);
  Object.defineProperty(window, "__ringAlert", {
    configurable: true,
    value: Object.freeze({
      get ringing() { return ringingCall !== ""; },
      get audible() { return cycleTimer !== 0 && audio?.state === "running"; },
      get muted() { return muted; },
      get callId() { return ringingCall; },
      get notifications() { return notifications; },
    }),
  });
}
