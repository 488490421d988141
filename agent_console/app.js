// The agent console's entry module: wires the feature modules together and starts the page.
//
// The console is plain ES modules, one per feature (js/): session.js (log in, the link,
// reconnect, keepalive), seat.js and queues.js (the desk's seat state and queues), call.js (the
// call card, controls, wrap-up), customer.js (the customer panels, messages, subscriptions),
// desk.js (click-to-call, tasks), inbox.js, tasks.js and taskboard.js (the tasks tab: an
// agent's tasks; supervisors' progress, deadline alerts, report), wallboard.js, recordings.js
// (supervisors find and play recordings, each playback logged), phone.js (the
// softphone's panel, over softphone.js), alert.js (the ring and desktop notice of an offered
// call), hotkeys.js (keyboard shortcuts and their help), monitor.js (a supervisor's monitoring,
// on both sides), fanout.js (the second socket: pushes meant for many consoles, from the
// fan-out relay), and shared
// ones: state.js (the page's memory, one owner per fact), registry.js (server events and their
// observers, session hooks, render-all), tabs.js, ui.js, clock.js, and protocol.js, which is
// generated from the engine's Python models (callcenter/seats/console_constants.py).
//
// Each feature's wire() registers its event handlers, session hooks and renderers and hooks up
// its own buttons; the order below is the order hooks and renderers run in.

import { applyTranslations, getLang, setLang } from "./i18n.js";
import * as ringAlert from "./js/alert.js";
import * as call from "./js/call.js";
import { startClocks } from "./js/clock.js";
import * as customer from "./js/customer.js";
import * as desk from "./js/desk.js";
import * as fanout from "./js/fanout.js";
import * as hotkeys from "./js/hotkeys.js";
import * as inbox from "./js/inbox.js";
import * as monitor from "./js/monitor.js";
import * as phone from "./js/phone.js";
import * as queues from "./js/queues.js";
import * as recordings from "./js/recordings.js";
import { renderAll } from "./js/registry.js";
import * as seat from "./js/seat.js";
import * as session from "./js/session.js";
import * as taskboard from "./js/taskboard.js";
import * as tasks from "./js/tasks.js";
import { state } from "./js/state.js";
import * as tabs from "./js/tabs.js";
import { $, show } from "./js/ui.js";
import * as wallboard from "./js/wallboard.js";

function onLanguageChange() {
  setLang($("lang-switch", HTMLSelectElement).value);
  applyTranslations();
  renderAll();
  if (state.tab) tabs.selectTab(state.tab);
}

function main() {
  $("lang-switch", HTMLSelectElement).value = getLang();
  applyTranslations();
  for (const feature of [seat, queues, call, inbox, tasks, taskboard, customer, desk, wallboard,
    recordings, phone, ringAlert, hotkeys, monitor, fanout, session]) {
    feature.wire();
  }
  tabs.wire();
  $("lang-switch").addEventListener("change", onLanguageChange);
  $("toast").addEventListener("click", () => show($("toast"), false));
  renderAll();
  startClocks();
  $("login-agent").focus();
}

main();
