// The supervisor's wallboard tab: queues live, the callers waiting in each queue in service
// order (and why they still wait), every seat by state with its figures of the day, the seat
// actions (listen, whisper, barge; force a state), and alerts when a queue's longest wait or
// service level crosses its limit. Owns state.wallboard. Also wires the figures tab
// (figures.js), the supervisors' other view.

import { has, t, tValue } from "../i18n.js";
import { now, setClock } from "./clock.js";
import * as figures from "./figures.js";
import { expectSpyCall } from "./phone.js";
import { SEAT_STATES } from "./protocol.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { slCell } from "./queues.js";
import { send } from "./session.js";
import { isSupervisor, state } from "./state.js";
import { registerTab } from "./tabs.js";
import { $, cell, fmtDuration, fmtPercent, locale, option, show, toast, toMs } from "./ui.js";

/** @typedef {import("./protocol.js").SeatState} SeatState */
/** @typedef {import("./state.js").QueueFigures} QueueFigures */
/** @typedef {import("./state.js").SeatData} SeatData */

/**
 * Why a caller still waits (the engine's routing.WaitCode and its numbers).
 * @typedef {object} WaitReason
 * @property {string} [code]
 * @property {number | null} [until]   the server's unix seconds
 * @property {string | null} [agent]
 * @property {string | null} [skill]
 * @property {number | null} [agents]
 */

/**
 * One waiting caller of the wallboard's `waiting` list.
 * @typedef {object} WaitingCaller
 * @property {string} [call_id]
 * @property {string} [tier]
 * @property {number} [arrived_at]   the server's unix seconds
 * @property {number} [waited_s]
 * @property {boolean} [callback]
 * @property {boolean} [ringing]
 * @property {string} [lang]
 * @property {WaitReason} [reason]
 */

/** @typedef {{name?: string, waiting?: WaitingCaller[]}} WaitingQueue */

/**
 * An agent's figures of the day (the wallboard's `agents`, acd.figures.AgentFigures).
 * @typedef {object} AgentFigures
 * @property {string} agent_id
 * @property {number} [handled]
 * @property {number | null} [aht_s]
 * @property {number | null} [occupancy]
 */

/** A queue's alert limits (the wallboard's `alerts`).
 * @typedef {{longest_wait_s?: number, service_level?: number}} AlertLimits */

/** The limits when the server sends none (config.QueueSettings' defaults). */
const DEFAULT_ALERT_WAIT_S = 60;
const DEFAULT_TARGET_SHARE = 0.8;
/** the banner keeps this many alerts, the newest first */
const MAX_BANNERS = 20;

/** The seats that need a supervisor's eye first; any state not named here comes after them. */
/** @type {SeatState[]} */
const FIRST = ["ringing", "on_call", "on_hold", "wrap_up", "ready", "not_ready", "logged_out"];
/** Wallboard order of the seat states. */
const SEAT_ORDER = [...FIRST, ...SEAT_STATES.filter((s) => !FIRST.includes(s))];

/** [action, value, label key]: the buttons on each seat's row.
 * @type {[action: "spy" | "force", value: string, key: string][]} */
const SEAT_ACTIONS = [
  ["spy", "listen", "wb.listen"],
  ["spy", "whisper", "wb.whisper"],
  ["spy", "barge", "wb.barge"],
  ["force", "ready", "wb.force_ready"],
  ["force", "not_ready", "wb.force_not_ready"],
  ["force", "logged_out", "wb.force_logout"],
];

/** `wallboard` was asked for this session (a tab visit asks again only after a failure) */
let wallboardAsked = false;

/** The wallboard now, and `wallboard` events from then on (once per session). */
async function askWallboard() {
  wallboardAsked = true;
  const data = await send("wallboard");
  if (data === null) {
    wallboardAsked = false; // let a later visit to the tab try again
    return;
  }
  state.wallboard = { ...data, atMs: Date.now() };
  renderWallboard();
}

function stateFilter() {
  return $("wb-state-filter", HTMLSelectElement);
}

function fillStateFilter() {
  const select = stateFilter();
  const keep = select.value || "all";
  select.replaceChildren(...["all", ...SEAT_ORDER].map((value) => option(value)));
  select.value = keep;
  labelStateFilter();
}

/** Seats per state, as option labels of the filter and as a strip of pills beside it (a click
 * on a pill filters on that state): the "by state" view at a glance. */
function labelStateFilter() {
  const seats = state.wallboard?.seats ?? [];
  /** @param {string} value */
  const count = (value) => (value === "all" ? seats.length
    : seats.filter((s) => s.state === value).length);
  for (const opt of stateFilter().options) {
    const label = opt.value === "all" ? t("wb.all") : tValue("state", opt.value);
    opt.textContent = `${label} (${count(opt.value)})`;
  }
  $("wb-state-counts").replaceChildren(...SEAT_ORDER.filter((s) => count(s) > 0).map((s) => {
    const pill = document.createElement("button");
    pill.type = "button";
    pill.className = "state-pill";
    pill.dataset.state = s;
    pill.dataset.testid = `wb-count-${s}`;
    pill.textContent = `${tValue("state", s)} ${count(s)}`;
    return pill;
  }));
}

/** The wallboard's fields beyond the typed ones (waiting, agents, alerts).
 * @returns {Record<string, any> | null} */
function board() {
  return state.wallboard;
}

/** @returns {QueueFigures[]} */
function boardQueues() {
  const queues = state.wallboard?.queues;
  return Array.isArray(queues) ? queues : [];
}

/** @returns {WaitingQueue[]} */
function waitingQueues() {
  const waiting = board()?.waiting;
  return Array.isArray(waiting) ? waiting : [];
}

/** @returns {Map<string, AgentFigures>} */
function agentFigures() {
  const agents = board()?.agents;
  return new Map((Array.isArray(agents) ? agents : [])
    .filter((a) => a && typeof a.agent_id === "string")
    .map((a) => [a.agent_id, a]));
}

/** @param {unknown} value @returns {number | null} */
function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** When the queue's longest waiting caller arrived (server clock, ms), or null if nobody
 * waits: from the waiting list, else from `longest_wait_s` at the time the figures came.
 * @param {QueueFigures} q */
function longestSince(q) {
  const listed = waitingQueues().find((w) => w?.name === q.name);
  if (listed && Array.isArray(listed.waiting)) {
    const arrivals = listed.waiting.map((c) => toMs(c?.arrived_at))
      .filter((ms) => ms !== null);
    if (arrivals.length > 0) return Math.min(...arrivals);
    if (listed.waiting.length === 0) return null;
  }
  const longest = num(q.longest_wait_s);
  if ((q.waiting ?? 0) > 0 && longest !== null && state.wallboard) {
    return state.wallboard.atMs + state.skewMs - longest * 1000;
  }
  return null;
}

/** The queue's longest wait now, seconds. @param {QueueFigures} q */
function longestNow(q) {
  const since = longestSince(q);
  return since === null ? 0 : Math.max(0, (now() - since) / 1000);
}

/** @param {QueueFigures} q @returns {{wait: number, sl: number}} */
function alertLimits(q) {
  const all = board()?.alerts;
  /** @type {AlertLimits | undefined} */
  const limits = all && typeof all === "object" ? all[q.name] : undefined;
  const share = num(q.target_share);
  return {
    wait: num(limits?.longest_wait_s) ?? DEFAULT_ALERT_WAIT_S,
    sl: num(limits?.service_level)
      ?? (share !== null && share > 0 ? share : DEFAULT_TARGET_SHARE),
  };
}

function renderWallboard() {
  const wb = state.wallboard;
  $("wb-updated").textContent = wb ? t("wb.updated", {
    time: new Date(wb.atMs).toLocaleTimeString(locale()),
  }) : "";
  renderWallboardQueues(boardQueues());
  renderWaiting();
  renderWallboardSeats(Array.isArray(wb?.seats) ? wb.seats : []);
  labelStateFilter();
  checkAlerts();
  renderBanners();
}

/** @param {QueueFigures[]} queues */
function renderWallboardQueues(queues) {
  $("wb-queue-rows").replaceChildren(...queues.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `wb-queue-${q.name}`;
    tr.dataset.queue = String(q.name);
    const longest = cell("", "num", "longest");
    const since = longestSince(q);
    if (since === null) longest.textContent = fmtDuration(0);
    else setClock(longest, "since", since);
    tr.append(
      cell(String(q.name), "", "name"),
      cell(String(q.waiting ?? 0), `num${(q.waiting ?? 0) > 0 ? " strong" : ""}`, "waiting"),
      longest,
      slCell(q, "sl"),
      cell(q.asa_s === null || q.asa_s === undefined ? t("none") : fmtDuration(q.asa_s),
        "num", "asa"),
      cell(String(q.answered ?? 0), "num", "answered"),
      cell(String(q.abandoned ?? 0), `num${(q.abandoned ?? 0) > 0 ? " warn" : ""}`, "abandoned"),
    );
    return tr;
  }));
}

/** The longest waits' colours and the queues' alert marks, as the waits grow. */
function markQueues() {
  for (const q of boardQueues()) {
    const row = document.querySelector(
      `#wb-queue-rows tr[data-queue="${CSS.escape(String(q.name))}"]`);
    if (!(row instanceof HTMLTableRowElement)) continue;
    const wait = longestNow(q);
    const limits = alertLimits(q);
    const longest = row.querySelector("[data-col=longest]");
    if (longest instanceof HTMLElement) {
      longest.classList.toggle("warn", typeof q.target_s === "number" && wait > q.target_s
        && wait <= limits.wait);
      longest.classList.toggle("bad", wait > limits.wait);
    }
    const alerting = breachedKinds(q).length > 0;
    row.classList.toggle("alerting", alerting);
    row.dataset.alert = String(alerting);
    if (alerting) row.title = t("alert.marked");
    else row.removeAttribute("title");
  }
}

// -- alerts ---------------------------------------------------------------------------------

/** "<queue> <kind>" of the limits crossed and not yet back: one banner per crossing
 * @type {Set<string>} */
const crossed = new Set();
/** the banners shown, newest first (texts are made at render time: a language switch
 * rewords them); `at`: when the limit was crossed (the figures are those of that moment, the
 * table shows them as they are now)
 * @type {{id: number, key: string, params: Record<string, string>, at: string}[]} */
let banners = [];
let bannerIds = 0;

/** The alert kinds a queue is past now. @param {QueueFigures} q
 * @returns {("longest_wait" | "service_level")[]} */
function breachedKinds(q) {
  const limits = alertLimits(q);
  /** @type {("longest_wait" | "service_level")[]} */
  const kinds = [];
  if (longestNow(q) > limits.wait) kinds.push("longest_wait");
  const sl = num(q.service_level);
  if (sl !== null && sl < limits.sl - 1e-9) kinds.push("service_level");
  return kinds;
}

/** A banner for each limit crossed since the last look; a limit back within bounds may alert
 * again on its next crossing. */
function checkAlerts() {
  /** @type {Set<string>} */
  const current = new Set();
  for (const q of boardQueues()) {
    const limits = alertLimits(q);
    for (const kind of breachedKinds(q)) {
      const key = `${q.name} ${kind}`;
      current.add(key);
      if (crossed.has(key)) continue;
      crossed.add(key);
      /** @type {Record<string, string>} */
      const params = kind === "longest_wait"
        ? { queue: String(q.name), wait: fmtDuration(longestNow(q)),
            limit: fmtDuration(limits.wait) }
        : { queue: String(q.name), sl: fmtPercent(q.service_level),
            goal: fmtPercent(limits.sl) };
      const at = new Date().toTimeString().slice(0, 8);
      banners = [{ id: ++bannerIds, key: `alert.${kind}`, params, at }, ...banners]
        .slice(0, MAX_BANNERS);
      renderBanners();
    }
  }
  for (const key of [...crossed]) if (!current.has(key)) crossed.delete(key);
  markQueues();
}

function renderBanners() {
  $("wb-alerts").replaceChildren(...banners.map((banner) => {
    const box = document.createElement("div");
    box.className = "wb-alert";
    box.dataset.testid = "wb-alert";
    box.dataset.id = String(banner.id);
    const title = document.createElement("strong");
    title.textContent = `${t("alert.title")} ${banner.at}`;
    const text = document.createElement("span");
    text.textContent = t(banner.key, banner.params);
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "small ghost";
    close.dataset.testid = "wb-alert-dismiss";
    close.textContent = "×";
    close.setAttribute("aria-label", t("alert.dismiss"));
    box.append(title, text, spacer, close);
    return box;
  }));
}

/** Once a second: the waits grow, so the longest waits' colours and the alerts move too
 * (off the tab as well: the banners are there when the supervisor comes back). */
function tick() {
  if (state.wallboard) checkAlerts();
}

// -- waiting callers ------------------------------------------------------------------------

/** HH:MM of a server time. @param {number} ms */
function hhmm(ms) {
  return new Date(ms).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit",
    hour12: false });
}

/** Why a caller still waits, in words. @param {WaitReason | undefined} reason */
export function reasonText(reason) {
  const code = String(reason?.code ?? "");
  const agents = num(reason?.agents) ?? 0;
  let what;
  if (code === "ringing") {
    what = reason?.agent ? t("wait.ringing_agent", { agent: String(reason.agent) })
      : t("wait.ringing");
  } else if (code === "no_agent_with_skill") {
    what = reason?.skill ? t("wait.skill", { what: t("wait.no_agent_with_skill"),
      skill: String(reason.skill) }) : t("wait.no_agent");
  } else {
    what = has(`wait.${code}`) ? t(`wait.${code}`, { agents }) : code;
  }
  const until = toMs(reason?.until);
  return until === null ? what : t("wait.until", { what, time: hhmm(until) });
}

function renderWaiting() {
  /** @type {HTMLTableRowElement[]} */
  const rows = [];
  for (const queue of waitingQueues()) {
    const callers = Array.isArray(queue?.waiting) ? queue.waiting : [];
    callers.forEach((caller, i) => rows.push(waitingRow(String(queue.name ?? ""), caller, i + 1)));
  }
  $("wb-waiting-rows").replaceChildren(...rows);
  show($("wb-waiting-none"), rows.length === 0);
}

/** @param {string} queue @param {WaitingCaller} caller @param {number} position */
function waitingRow(queue, caller, position) {
  const tr = document.createElement("tr");
  tr.dataset.testid = `wb-wait-${caller.call_id ?? position}`;
  tr.dataset.queue = queue;
  tr.dataset.ringing = String(Boolean(caller.ringing));
  const wait = cell("", "num", "wait");
  const arrived = toMs(caller.arrived_at);
  const waited = num(caller.waited_s);
  const since = arrived ?? (waited !== null && state.wallboard
    ? state.wallboard.atMs + state.skewMs - waited * 1000 : null);
  setClock(wait, "since", since);
  const lang = String(caller.lang ?? "");
  tr.append(
    cell(queue, "", "queue"),
    cell(String(position), "num", "pos"),
    cell(caller.tier ? tValue("tier", caller.tier) : t("none"), "", "tier"),
    cell(lang ? tValue("wb.lang", lang) : t("none"), "", "lang"),
    wait,
    cell(t(caller.callback ? "wb.callback_yes" : "wb.callback_no"), "", "callback"),
    cell(reasonText(caller.reason), "", "why"),
  );
  return tr;
}

/** Seat rows are updated in place, keyed by agent id, so a supervisor's click on a row's button
 * is not lost to a wallboard event that redraws the table under the pointer.
 * @param {SeatData[]} seats */
function renderWallboardSeats(seats) {
  const filter = stateFilter().value || "all";
  /** @param {SeatData} s */
  const order = (s) => {
    const i = SEAT_ORDER.findIndex((name) => name === s.state);
    return i === -1 ? SEAT_ORDER.length : i;
  };
  const wanted = seats
    .filter((s) => filter === "all" || s.state === filter)
    .sort((a, b) => order(a) - order(b) || String(a.agent_id).localeCompare(String(b.agent_id)));
  const tbody = $("wb-seat-rows", HTMLTableSectionElement);
  const existing = new Map([...tbody.rows].map((row) => [row.dataset.agent, row]));
  const figs = agentFigures();
  wanted.forEach((seat, i) => {
    const id = String(seat.agent_id);
    const row = existing.get(id) ?? buildSeatRow(id);
    existing.delete(id);
    fillSeatRow(row, seat, figs.get(id));
    if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] ?? null);
  });
  for (const row of existing.values()) row.remove();
}

/** @param {string} agentId */
function buildSeatRow(agentId) {
  const tr = document.createElement("tr");
  tr.dataset.agent = agentId;
  tr.dataset.testid = `wb-seat-${agentId}`;
  for (const col of ["agent", "name", "state", "reason", "time", "call", "handled", "aht",
    "occupancy"]) {
    const td = document.createElement("td");
    td.dataset.col = col;
    if (["time", "handled", "aht", "occupancy"].includes(col)) td.className = "num";
    if (col === "call") {
      // the caller's masked number, and how long they have talked (a clock)
      for (const part of ["caller", "sep", "talk"]) {
        const span = document.createElement("span");
        span.dataset.part = part;
        if (part === "talk") span.className = "num";
        td.append(span);
      }
    }
    tr.append(td);
  }
  // the buttons sit in a flex box inside the cell: a flex <td> would lose its table borders
  const cellBox = document.createElement("td");
  cellBox.className = "actions-cell";
  const actions = document.createElement("div");
  actions.className = "actions";
  cellBox.append(actions);
  for (const [kind, value] of SEAT_ACTIONS) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = kind === "force" ? "small ghost" : "small";
    button.dataset.action = kind;
    button.dataset.value = value;
    button.dataset.testid = `${kind}-${value.replace("_", "-")}`;
    actions.append(button);
  }
  tr.append(cellBox);
  return tr;
}

/** @param {HTMLTableRowElement} row @param {SeatData} seat
 * @param {AgentFigures | undefined} figs */
function fillSeatRow(row, seat, figs) {
  const cells = row.cells;
  cells[0].textContent = String(seat.agent_id ?? "");
  cells[1].textContent = String(seat.name ?? "");
  const badge = document.createElement("span");
  badge.className = "state-pill";
  badge.dataset.state = String(seat.state ?? "");
  badge.textContent = tValue("state", seat.state);
  cells[2].replaceChildren(badge);
  cells[3].textContent = seat.state === "not_ready" && seat.reason
    ? tValue("reason", seat.reason) : "";
  setClock(cells[4], "since", toMs(seat.since));
  fillCallCell(cells[5], seat);
  cells[6].textContent = String(num(figs?.handled) ?? 0);
  const aht = num(figs?.aht_s);
  cells[7].textContent = aht === null ? t("none") : fmtDuration(aht);
  cells[8].textContent = fmtPercent(figs?.occupancy);
  row.dataset.state = String(seat.state ?? "");
  const onCall = seat.state === "on_call" || seat.state === "on_hold";
  for (const button of row.querySelectorAll("button[data-action]")) {
    if (!(button instanceof HTMLButtonElement)) continue;
    const action = SEAT_ACTIONS.find(([k, v]) =>
      k === button.dataset.action && v === button.dataset.value);
    button.textContent = action ? t(action[2]) : "";
    // Spying needs a call to spy on; a force is refused on a call (acd/seat.py FORCE_TARGETS)
    // and pointless into the state the seat is already in.
    button.disabled = button.dataset.action === "spy"
      ? !onCall : onCall || seat.state === button.dataset.value;
  }
}

/**
 * The seat's call as a supervisor reads it: the caller's masked number (the engine masks it)
 * and the talk time since the call was answered; the call id is left for the hover text.
 * @param {HTMLTableCellElement} td @param {SeatData} seat
 */
function fillCallCell(td, seat) {
  const callId = seat.call_id ? String(seat.call_id) : "";
  const [caller, sep, talk] = /** @type {HTMLElement[]} */ ([...td.children]);
  caller.textContent = !callId ? "" : seat.caller ? String(seat.caller) : t("wb.no_number");
  const since = callId ? toMs(seat.talking_since) : null;
  setClock(talk, "since", since);
  sep.textContent = since === null ? "" : " · ";
  td.title = callId;
}

/** @param {MouseEvent} event */
async function onSeatAction(event) {
  const button = event.target instanceof Element
    ? event.target.closest("button[data-action]") : null;
  if (!(button instanceof HTMLButtonElement)) return;
  const agentId = button.closest("tr")?.dataset.agent ?? "";
  const value = button.dataset.value ?? "";
  if (button.dataset.action === "spy") {
    // the supervisor's phone rings because they asked: a browser phone answers by itself
    expectSpyCall();
    const reply = await send("spy", { agent_id: agentId, mode: value }, button);
    if (reply !== null) toast(t("ok.spy"));
  } else {
    const reply = await send("force_state", { agent_id: agentId, state: value, reason: "" },
      button);
    if (reply !== null) toast(t("ok.force", { agent: agentId, state: tValue("state", value) }));
    const wb = state.wallboard;
    if (reply?.seat && wb && Array.isArray(wb.seats)) {
      // show the forced state at once; the next wallboard event confirms it
      wb.seats = wb.seats.map((seat) =>
        seat.agent_id === reply.seat.agent_id ? { ...seat, ...reply.seat } : seat);
    }
  }
  renderWallboard(); // busy() re-enabled the button; the seat's state decides
}

export function wire() {
  handleEvents({
    wallboard(data) {
      state.wallboard = { ...data, atMs: Date.now() };
      renderWallboard();
    },
  });
  onSession({
    start() {
      state.wallboard = null;
      wallboardAsked = false;
      forgetAlerts();
    },
    end() {
      state.wallboard = null;
      wallboardAsked = false;
      forgetAlerts();
    },
  });
  onRender(() => {
    fillStateFilter();
    renderWallboard();
  });
  registerTab("wallboard", {
    allowed: isSupervisor,
    shown() {
      if (!wallboardAsked) askWallboard();
    },
  });
  stateFilter().addEventListener("change", renderWallboard);
  $("wb-state-counts").addEventListener("click", (event) => {
    const pill = event.target instanceof Element ? event.target.closest("button[data-state]")
      : null;
    if (!(pill instanceof HTMLElement)) return;
    const filter = stateFilter();
    filter.value = filter.value === pill.dataset.state ? "all" : pill.dataset.state ?? "all";
    renderWallboard();
  });
  $("wb-seat-rows").addEventListener("click", onSeatAction);
  $("wb-alerts").addEventListener("click", (event) => {
    const button = event.target instanceof Element
      ? event.target.closest("[data-testid=wb-alert-dismiss]") : null;
    const id = button?.closest(".wb-alert")?.getAttribute("data-id");
    if (!id) return;
    banners = banners.filter((b) => String(b.id) !== id);
    renderBanners();
  });
  window.setInterval(tick, 1000);
  figures.wire();
}

function forgetAlerts() {
  crossed.clear();
  banners = [];
}
