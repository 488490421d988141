// The supervisor's wallboard tab: queues live, every seat by state, and the seat actions
// (listen, whisper, barge; force a state). Owns state.wallboard.

import { t, tValue } from "../i18n.js";
import { setClock } from "./clock.js";
import { expectSpyCall } from "./phone.js";
import { SEAT_STATES } from "./protocol.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { isLate, slCell } from "./queues.js";
import { send } from "./session.js";
import { isSupervisor, state } from "./state.js";
import { registerTab } from "./tabs.js";
import { $, cell, fmtDuration, locale, option, toast, toMs } from "./ui.js";

/** @typedef {import("./protocol.js").SeatState} SeatState */
/** @typedef {import("./state.js").QueueFigures} QueueFigures */
/** @typedef {import("./state.js").SeatData} SeatData */

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

function renderWallboard() {
  const wb = state.wallboard;
  $("wb-updated").textContent = wb ? t("wb.updated", {
    time: new Date(wb.atMs).toLocaleTimeString(locale()),
  }) : "";
  renderWallboardQueues(Array.isArray(wb?.queues) ? wb.queues : []);
  renderWallboardSeats(Array.isArray(wb?.seats) ? wb.seats : []);
  labelStateFilter();
}

/** @param {QueueFigures[]} queues */
function renderWallboardQueues(queues) {
  $("wb-queue-rows").replaceChildren(...queues.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `wb-queue-${q.name}`;
    tr.append(
      cell(String(q.name), "", "name"),
      cell(String(q.waiting ?? 0), `num${(q.waiting ?? 0) > 0 ? " strong" : ""}`, "waiting"),
      cell(fmtDuration(q.longest_wait_s), `num${isLate(q) ? " warn" : ""}`, "longest"),
      slCell(q, "sl"),
      cell(q.asa_s === null || q.asa_s === undefined ? t("none") : fmtDuration(q.asa_s),
        "num", "asa"),
      cell(String(q.answered ?? 0), "num", "answered"),
      cell(String(q.abandoned ?? 0), `num${(q.abandoned ?? 0) > 0 ? " warn" : ""}`, "abandoned"),
    );
    return tr;
  }));
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
  wanted.forEach((seat, i) => {
    const id = String(seat.agent_id);
    const row = existing.get(id) ?? buildSeatRow(id);
    existing.delete(id);
    fillSeatRow(row, seat);
    if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] ?? null);
  });
  for (const row of existing.values()) row.remove();
}

/** @param {string} agentId */
function buildSeatRow(agentId) {
  const tr = document.createElement("tr");
  tr.dataset.agent = agentId;
  tr.dataset.testid = `wb-seat-${agentId}`;
  for (const col of ["agent", "name", "state", "reason", "time", "call"]) {
    const td = document.createElement("td");
    td.dataset.col = col;
    if (col === "time") td.className = "num";
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

/** @param {HTMLTableRowElement} row @param {SeatData} seat */
function fillSeatRow(row, seat) {
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
  cells[5].textContent = seat.call_id ? String(seat.call_id) : "";
  row.dataset.state = String(seat.state ?? "");
  const onCall = seat.state === "on_call" || seat.state === "on_hold";
  for (const button of row.querySelectorAll("button[data-action]")) {
    if (!(button instanceof HTMLButtonElement)) continue;
    const action = SEAT_ACTIONS.find(([k, v]) =>
      k === button.dataset.action && v === button.dataset.value);
    button.textContent = action ? t(action[2]) : "";
    // Spying needs a call to spy on; a force is refused on a call (seats/state.py FORCE_TARGETS)
    // and pointless into the state the seat is already in.
    button.disabled = button.dataset.action === "spy"
      ? !onCall : onCall || seat.state === button.dataset.value;
  }
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
    },
    end() {
      state.wallboard = null;
      wallboardAsked = false;
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
}
