// The call: the call card (screen pop), its controls (hang up, hold, recording, transfer,
// consult, conference), the target dialog, wrap-up and calling the customer back afterwards.
// Owns state.call (customer.js fills in the customer panels' lists on it).

import { t, tValue } from "../i18n.js";
import { now, setClock } from "./clock.js";
import { linkTaskToCall, renderTaskLink } from "./desk.js";
import { refreshCustomerPanels, renderCustomerPanels } from "./customer.js";
import { renderPhone } from "./phone.js";
import { AGENT_ID, DISPOSITIONS, PHONE_NUMBER, isOneOf } from "./protocol.js";
import { handleEvents, onControls, onRender, onSession, renderControls } from "./registry.js";
import { applySeatReply } from "./seat.js";
import { request, send, submitter } from "./session.js";
import { state } from "./state.js";
import { selectTab } from "./tabs.js";
import { $, cleanNumber, fieldError, option, show, toast, toMs } from "./ui.js";

/** @typedef {import("./state.js").Call} Call */
/** @typedef {import("./registry.js").EventData} EventData */
/** @typedef {"transfer" | "consult" | "conference"} TargetAction */

/** What the target dialog may aim at, per action. @type {Record<TargetAction, string[]>} */
const TARGET_KINDS = {
  transfer: ["queue", "agent", "number"],
  consult: ["agent", "number"],
  conference: ["agent", "number"],
};

/** what the target dialog is for @type {TargetAction} */
let targetAction = "transfer";

/**
 * The `directory` reply: who and what a call may go to now.
 * @typedef {object} Directory
 * @property {{agent_id: string, name?: string, state?: string, reason?: string,
 *   available?: boolean}[]} agents   ready (available) ones first
 * @property {{name: string, waiting?: number}[]} queues
 * @property {{label: string, number: string}[]} numbers   the saved numbers
 */

/** the directory as last received; null until it came (or when it failed)
 * @type {Directory | null} */
let directory = null;
/** counts the dialog's openings: a late directory reply for an earlier one is dropped */
let directoryAsk = 0;

/** The dialog's other action: transfer and consult are offered side by side ("Transfer now",
 * "Talk first"); a conference has none. @type {Record<TargetAction, TargetAction | null>} */
const OTHER_ACTION = { transfer: "consult", consult: "transfer", conference: null };

/**
 * The login reply's call (after a reload, say): call_offered data plus what the call is now:
 * state, recording ("on" | "paused" | "off"), consult (its state or null), connected_at and
 * wrap_up_until (unix s or null). The timer runs from the answer while talking or held, from
 * the seat's `since` otherwise (ringing, wrap-up).
 * @param {Record<string, any>} call
 * @param {import("./state.js").SeatData | undefined} seat
 * @returns {Call}
 */
function callFromSnapshot(call, seat) {
  const live = call.state === "talking" || call.state === "held";
  const consult = typeof call.consult === "string" && call.consult !== "ended"
    ? { state: call.consult, target: "" } : null;
  return {
    ...call,
    call_id: call.call_id,
    state: call.state,
    sinceMs: (live ? toMs(call.connected_at) : null) ?? toMs(seat?.since) ?? now(),
    recording: call.recording === "on" || call.recording === "paused" || call.recording === "off"
      ? call.recording : (call.recording === false ? "off" : "on"),
    consult,
    conference: [],
    wrapDeadlineMs: call.state === "wrap_up" ? toMs(call.wrap_up_until) : null,
    saved: false,
    dispositionRequired: call.disposition_required === true,
  };
}

/** Whether an event is about the call on the card. @param {EventData} data
 * @returns {boolean} */
function isCurrentCall(data) {
  return state.call !== null && (!data.call_id || data.call_id === state.call.call_id);
}

/** The call card's call when the event is about it, else null. @param {EventData} data */
function currentCall(data) {
  return isCurrentCall(data) ? state.call : null;
}

// Rendering ------------------------------------------------------------------------------------

export function renderCall() {
  const call = state.call;
  show($("no-call"), call === null);
  show($("call-card"), call !== null);
  document.title = call?.state === "ringing"
    ? `☎ ${t("call.status.ringing")} · ${t("app.title")}` : t("app.title");
  renderTaskLink(call);
  renderPhone(); // the ringing phone shows who the caller is (call_offered)
  if (!call) return;
  $("call-card").dataset.status = call.state;
  renderCallStatus(call);
  renderCallControls();
  renderWrapUp(call);
  renderCustomerPanels(call);
}

function fillDispositions() {
  const select = $("wrapup-disposition", HTMLSelectElement);
  const keep = select.value;
  select.replaceChildren(option("", t("wrap.choose")),
    ...DISPOSITIONS.map((value) => option(value, t(`disp.${value}`))));
  select.value = keep;
}

/** @param {Call} call */
function renderCallStatus(call) {
  $("call-status").textContent = t(`call.status.${call.state}`);
  $("call-status-box").dataset.status = call.state;
  setClock($("call-timer"), "since", call.sinceMs);
  show($("answer-hint"), call.state === "ringing");
  $("answer-hint").textContent = t(state.phone?.kind === "browser" ? "call.answer_hint_browser"
    : "call.answer_hint");
  const rec = $("recording-state");
  const live = call.state === "talking" || call.state === "held";
  show(rec, live);
  rec.dataset.rec = call.recording;
  rec.textContent = t(`call.recording_${call.recording}`);
}

/** @param {string} id */
function button(id) {
  return $(id, HTMLButtonElement);
}

function renderCallControls() {
  const call = state.call;
  if (!call) return;
  const live = call.state === "talking" || call.state === "held";
  const consult = call.consult;
  const consulting = consult !== null;
  const controls = $("call-card").querySelector(".controls");
  if (controls instanceof HTMLElement) show(controls, call.state !== "wrap_up");
  button("btn-hangup").disabled = call.state === "wrap_up";
  show($("btn-hold"), call.state !== "held");
  show($("btn-resume"), call.state === "held");
  // during a consultation the way back to the caller is "cancel consult"
  button("btn-hold").disabled = call.state !== "talking" || consulting;
  button("btn-resume").disabled = call.state !== "held" || consulting;
  show($("btn-record-pause"), call.recording !== "paused");
  show($("btn-record-resume"), call.recording === "paused");
  button("btn-record-pause").disabled = !live || call.recording !== "on";
  button("btn-record-resume").disabled = !live;
  for (const id of ["btn-transfer", "btn-consult", "btn-conference"]) {
    button(id).disabled = !live || consulting;
  }
  show($("consult-bar"), consulting);
  // the caller can only be joined to a party who answered
  button("btn-consult-complete").disabled = !consult || consult.state !== "talking";
  // after the call: ring the agent, then this caller's number (the engine knows it)
  show($("btn-callback"), call.state === "wrap_up");
  button("btn-callback").disabled = !call.caller || state.seat?.state !== "ready";
  $("consult-bar").dataset.state = consult?.state ?? "";
  if (consult) {
    $("consult-hint").textContent = t(`ctl.consult_hint.${consult.state === "talking"
      ? "talking" : "ringing"}`);
    const target = consult.target;
    const targetText = target && typeof target === "object" ? String(target.value ?? "")
      : String(target ?? "");
    $("consult-status").textContent = t("ctl.consult_with", {
      target: targetText, state: tValue("consult", consult.state),
    });
  }
  const conf = $("conference-status");
  show(conf, live && call.conference.length > 0);
  conf.textContent = t("ctl.conference_with", { targets: call.conference.join(", ") });
}

/** @param {Call} call */
function renderWrapUp(call) {
  const inWrap = call.state === "wrap_up";
  show($("wrapup-form"), inWrap);
  if (!inWrap) return;
  setClock($("wrapup-countdown"), "deadline", call.saved ? null : call.wrapDeadlineMs);
  show($("wrapup-saved"), call.saved);
  show($("btn-close-call"), call.saved);
  button("wrapup-save").disabled = call.saved;
  $("wrapup-disposition", HTMLSelectElement).disabled = call.saved;
  $("wrapup-notes", HTMLTextAreaElement).disabled = call.saved;
}

// The server's events about the call -----------------------------------------------------------

/** @type {Record<string, import("./registry.js").EventHandler>} */
const CALL_EVENTS = {
  call_offered(data) {
    state.call = {
      ...data, call_id: data.call_id, state: "ringing", sinceMs: now(), recording: "on",
      consult: null, conference: [], wrapDeadlineMs: null, saved: false,
    };
    $("wrapup-form", HTMLFormElement).reset();
    linkTaskToCall(); // a task made now is most likely about this caller
    fieldError($("wrapup-error"), "");
    selectTab("desk"); // the screen pop must be seen
    renderCall();
    refreshCustomerPanels();
  },
  call_customer(data) {
    // the back office's part of the screen pop, after call_offered
    const call = currentCall(data);
    if (!call) return;
    call.customer = /** @type {Call["customer"]} */ (data.customer ?? null);
    call.recent_contacts = Array.isArray(data.recent_contacts) ? data.recent_contacts : [];
    call.customer_pending = false;
    renderCall();
    refreshCustomerPanels();
  },
  wrap_up_overdue(data) {
    // to the agent (their own call) and to supervisors (any agent's)
    if (data.agent_id && data.agent_id !== state.me?.agent_id) {
      toast(t("wrap.overdue_agent", { agent: String(data.agent_id) }), { kind: "error" });
      return;
    }
    const call = currentCall(data);
    if (!call || call.saved) return;
    call.overdue = true;
    renderCall();
    toast(t("wrap.overdue"), { kind: "error" });
    $("wrapup-disposition").focus();
  },
  call_connected(data) {
    const call = currentCall(data);
    if (!call) return;
    call.state = "talking";
    call.sinceMs = now();
    call.recording = data.recording === false ? "off" : "on";
    renderCall();
  },
  call_held(data) {
    const call = currentCall(data);
    if (!call) return;
    call.state = "held";
    renderCall();
  },
  call_resumed(data) {
    const call = currentCall(data);
    if (!call) return;
    call.state = "talking";
    call.consult = null; // the caller is back with the agent: no consultation any more
    renderCall();
  },
  recording(data) {
    const call = currentCall(data);
    if (!call) return;
    call.recording = data.state === "paused" ? "paused" : "on";
    renderCall();
  },
  consult(data) {
    const call = currentCall(data);
    if (!call) return;
    if (data.state === "ended") {
      // the consulted party hung up (or never answered): the caller is still on hold, and
      // "resume" takes them back
      call.consult = null;
    } else {
      const known = call.consult?.target;
      call.consult = { state: data.state, target: data.target || known || "" };
      call.state = "held"; // the caller waits on hold meanwhile
    }
    renderCall();
  },
  conference(data) {
    const call = currentCall(data);
    if (!call) return;
    const target = String(data.target ?? "");
    if (target && !call.conference.includes(target)) call.conference.push(target);
    renderCall();
  },
  call_ended(data) {
    const call = currentCall(data);
    if (!call) return;
    call.dispositionRequired = data.disposition_required === true;
    if (data.answered === false) {
      // e.g. the caller gave up while it rang: no work was done, nothing to wrap up
      state.call = null;
      renderCall();
      return;
    }
    const wrapS = typeof data.wrap_up_s === "number" ? data.wrap_up_s : null;
    Object.assign(call, {
      state: "wrap_up",
      sinceMs: now(),
      consult: null,
      wrapDeadlineMs: wrapS === null ? null : now() + wrapS * 1000,
    });
    renderCall();
    renderControls(); // Ready waits for the form when the disposition is required
    $("wrapup-disposition").focus();
  },
};

// The agent's actions --------------------------------------------------------------------------

/**
 * A call control; on success the implied call state is applied at once (the matching event,
 * when it comes, applies the same state again).
 * @param {string} type
 * @param {Record<string, unknown>} fields
 * @param {HTMLButtonElement} btn
 * @param {(call: Call) => void} [after]
 */
async function callControl(type, fields, btn, after) {
  const reply = await send(type, fields, btn);
  if (reply === null || !state.call) return;
  after?.(state.call);
  renderCall();
}

/** The kinds the dialog offers: its action's, and the other action's (transfer: queues too).
 * @param {TargetAction} action */
function dialogKinds(action) {
  const other = OTHER_ACTION[action];
  const kinds = new Set([...TARGET_KINDS[action], ...(other ? TARGET_KINDS[other] : [])]);
  return ["queue", "agent", "number"].filter((kind) => kinds.has(kind));
}

/** @param {TargetAction} action */
export function openTargetDialog(action) {
  targetAction = action;
  $("target-title").textContent = t(`target.title.${action}`);
  $("target-kind").replaceChildren(...dialogKinds(action).map((value) =>
    option(value, t(`target.kind.${value}`))));
  $("target-kind", HTMLSelectElement).value = TARGET_KINDS[action][0];
  $("target-value", HTMLInputElement).value = "";
  fieldError($("target-error"), "");
  renderTargetButtons();
  fillTargetOptions();
  renderDirectory();
  $("target-dialog", HTMLDialogElement).showModal();
  $("target-value").focus();
  loadDirectory();
}

/** Ask for the directory afresh (who is ready changes from minute to minute). */
async function loadDirectory() {
  const ask = ++directoryAsk;
  $("target-directory").dataset.status = "loading";
  renderDirectory();
  /** @type {Directory | null} */
  let reply = null;
  try {
    reply = /** @type {Directory} */ (await request("directory"));
  } catch {
    reply = null; // typing the target still works; the list says it is unavailable
  }
  if (ask !== directoryAsk) return;
  directory = reply && Array.isArray(reply.agents) ? {
    agents: reply.agents, queues: Array.isArray(reply.queues) ? reply.queues : [],
    numbers: Array.isArray(reply.numbers) ? reply.numbers : [],
  } : null;
  $("target-directory").dataset.status = directory ? "ready" : "failed";
  renderDirectory();
  fillTargetOptions();
}

/** The dialog's buttons: its own action (the default: Enter), and the other one beside it. */
function renderTargetButtons() {
  const kind = $("target-kind", HTMLSelectElement).value;
  const ok = button("target-ok");
  ok.dataset.action = targetAction;
  ok.textContent = t(`target.do.${targetAction}`);
  ok.disabled = !TARGET_KINDS[targetAction].includes(kind);
  const other = OTHER_ACTION[targetAction];
  const alt = button("target-alt");
  show(alt, other !== null && TARGET_KINDS[other].includes(kind));
  if (other) {
    alt.dataset.action = other;
    alt.textContent = t(`target.do.${other}`);
  }
  show($("target-flow"), other !== null && kind !== "queue");
  $("target-flow").textContent = t("target.flow");
}

/** Choose a directory entry: it fills the kind and the target. @param {HTMLElement} item */
function chooseEntry(item) {
  const kind = item.dataset.kind ?? "";
  const value = item.dataset.value ?? "";
  if (!kind || !value) return;
  $("target-kind", HTMLSelectElement).value = kind;
  $("target-value", HTMLInputElement).value = value;
  fieldError($("target-error"), "");
  renderTargetButtons();
  fillTargetOptions();
  renderDirectory();
  (button("target-ok").disabled ? button("target-alt") : button("target-ok")).focus();
}

/**
 * One entry of the directory: a button that fills the form.
 * @param {string} kind
 * @param {string} value
 * @param {string} name
 * @param {string} detail
 * @param {{disabled?: boolean, state?: string}} [opts]
 */
function entry(kind, value, name, detail, opts = {}) {
  const item = document.createElement("button");
  item.type = "button";
  item.className = "dir-item";
  item.dataset.kind = kind;
  item.dataset.value = value;
  item.dataset.testid = `dir-${kind}-${value}`;
  if (opts.state) item.dataset.state = opts.state;
  item.disabled = opts.disabled === true;
  const current = $("target-kind", HTMLSelectElement).value === kind
    && $("target-value", HTMLInputElement).value.trim() === value;
  item.setAttribute("aria-pressed", String(current));
  const nameEl = document.createElement("span");
  nameEl.className = "dir-name";
  nameEl.textContent = name;
  const detailEl = document.createElement("span");
  detailEl.className = "dir-detail";
  detailEl.textContent = detail;
  item.append(nameEl, detailEl);
  return item;
}

/**
 * A section of the directory.
 * @param {string} kind
 * @param {HTMLElement[]} items
 */
function section(kind, items) {
  const box = document.createElement("section");
  box.className = "dir-section";
  box.dataset.kind = kind;
  const head = document.createElement("h3");
  head.textContent = t(`dir.${kind}`);
  box.append(head);
  if (items.length === 0) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = t("dir.none");
    box.append(none);
  } else {
    const list = document.createElement("div");
    list.className = "dir-list";
    list.append(...items);
    box.append(list);
  }
  return box;
}

/** The directory in the dialog: the kinds it offers, agents that cannot take a call disabled. */
function renderDirectory() {
  const box = $("target-directory");
  const status = box.dataset.status ?? "";
  if (!directory) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = t(status === "failed" ? "dir.failed" : "dir.loading");
    box.replaceChildren(p);
    return;
  }
  const kinds = dialogKinds(targetAction);
  /** @type {HTMLElement[]} */
  const sections = [];
  if (kinds.includes("agent")) {
    sections.push(section("agent", directory.agents.map((a) => {
      const seatState = String(a.state ?? "logged_out");
      const reason = seatState === "not_ready" && a.reason ? ` · ${tValue("reason", a.reason)}`
        : "";
      return entry("agent", String(a.agent_id), a.name ? `${a.name} ${a.agent_id}`
        : String(a.agent_id), `${tValue("state", seatState)}${reason}`,
      { disabled: a.available !== true, state: seatState });
    })));
  }
  if (kinds.includes("queue")) {
    sections.push(section("queue", directory.queues.map((q) =>
      entry("queue", String(q.name), String(q.name),
        t("dir.waiting", { n: Number(q.waiting ?? 0) })))));
  }
  if (kinds.includes("number")) {
    sections.push(section("number", directory.numbers.map((n) =>
      entry("number", String(n.number), String(n.label), String(n.number)))));
  }
  box.replaceChildren(...sections);
}

/** Suggestions for the target field: queue names we know, or agent ids (the directory's, else
 * the wallboard's). */
function fillTargetOptions() {
  const kind = $("target-kind", HTMLSelectElement).value;
  /** @type {string[]} */
  let values = [];
  if (kind === "queue") {
    values = (directory?.queues ?? state.queues).map((q) => String(q.name));
  }
  if (kind === "agent") {
    values = directory ? directory.agents.filter((a) => a.available).map((a) => a.agent_id)
      : (state.wallboard?.seats ?? []).map((s) => String(s.agent_id));
  }
  if (kind === "number" && directory) values = directory.numbers.map((n) => n.number);
  $("target-options").replaceChildren(...values.map((value) => option(value)));
}

/** @param {SubmitEvent} event */
async function onTargetSubmit(event) {
  event.preventDefault();
  const kind = $("target-kind", HTMLSelectElement).value;
  const raw = $("target-value", HTMLInputElement).value;
  const value = kind === "number" ? cleanNumber(raw) : raw.trim();
  const ok = kind === "number" ? PHONE_NUMBER.test(value) : AGENT_ID.test(value);
  if (!ok) {
    fieldError($("target-error"), kind === "number" ? "val.dialable" : "target.bad_id");
    return;
  }
  const by = submitter(event) ?? button("target-ok");
  const chosen = by.dataset.action;
  /** @type {TargetAction} */
  const action = chosen === "transfer" || chosen === "consult" || chosen === "conference"
    ? chosen : targetAction;
  if (!TARGET_KINDS[action].includes(kind)) return; // its button is not offered for this kind
  const reply = await send(action, { target: { kind, value } }, by);
  if (reply === null) return; // the toast says why; the dialog stays for a correction
  $("target-dialog", HTMLDialogElement).close();
  toast(t(`ok.${action}`));
  if (action === "consult" && state.call) {
    // the `consult` event may have come first (and may be further along): keep it then
    state.call.consult ??= { state: "ringing", target: { kind, value } };
    state.call.state = "held";
    renderCall();
  }
}

/** @param {SubmitEvent} event */
async function onWrapUpSubmit(event) {
  event.preventDefault();
  const call = state.call;
  if (!call || call.saved) return;
  const disposition = $("wrapup-disposition", HTMLSelectElement).value;
  if (!isOneOf(DISPOSITIONS, disposition)) {
    fieldError($("wrapup-error"), "wrap.need_disposition");
    $("wrapup-disposition").focus();
    return;
  }
  fieldError($("wrapup-error"), "");
  const reply = await send("wrap_up", {
    call_id: String(call.call_id), disposition,
    notes: $("wrapup-notes", HTMLTextAreaElement).value,
  }, button("wrapup-save"));
  if (reply === null || state.call !== call) return;
  call.saved = true;
  renderCall();
  applySeatReply(reply); // saving ends the wrap-up: the seat is ready again
}

/** Call the caller of the finished call back: the engine dials the number it knows. */
async function onCallBack() {
  const call = state.call;
  if (!call) return;
  const reply = await send("click_to_call", { call_id: String(call.call_id) },
    button("btn-callback"));
  if (reply !== null) toast(t("ok.callback"));
}

/**
 * A call-control button: click sends `type` with `fields`, then `after` applies what it implies.
 * @param {string} id
 * @param {string} type
 * @param {Record<string, unknown>} fields
 * @param {(call: Call) => void} [after]
 */
function control(id, type, fields, after) {
  const btn = button(id);
  btn.addEventListener("click", () => callControl(type, fields, btn, after));
}

export function wire() {
  handleEvents(CALL_EVENTS);
  onSession({
    start(data) {
      state.call = data.call ? callFromSnapshot(data.call, data.seat) : null;
      $("wrapup-form", HTMLFormElement).reset();
    },
    end() {
      state.call = null;
    },
  });
  onRender(() => {
    fillDispositions();
    renderCall();
    if ($("target-dialog", HTMLDialogElement).open) {
      $("target-title").textContent = t(`target.title.${targetAction}`);
      renderTargetButtons();
      renderDirectory();
    }
  });
  onControls(renderCallControls);

  control("btn-hangup", "hangup", {});
  control("btn-hold", "hold", {}, (call) => { call.state = "held"; });
  control("btn-resume", "resume", {}, (call) => { call.state = "talking"; });
  control("btn-record-pause", "recording", { action: "pause" },
    (call) => { call.recording = "paused"; });
  control("btn-record-resume", "recording", { action: "resume" },
    (call) => { call.recording = "on"; });
  control("btn-consult-complete", "consult_complete", {}, (call) => { call.consult = null; });
  control("btn-consult-cancel", "consult_cancel", {}, (call) => { call.consult = null; });
  $("btn-transfer").addEventListener("click", () => openTargetDialog("transfer"));
  $("btn-consult").addEventListener("click", () => openTargetDialog("consult"));
  $("btn-conference").addEventListener("click", () => openTargetDialog("conference"));

  $("target-form").addEventListener("submit", onTargetSubmit);
  $("target-kind").addEventListener("change", () => {
    renderTargetButtons();
    fillTargetOptions();
    renderDirectory();
  });
  $("target-directory").addEventListener("click", (event) => {
    const item = event.target instanceof Element ? event.target.closest("button.dir-item")
      : null;
    if (item instanceof HTMLButtonElement && !item.disabled) chooseEntry(item);
  });
  $("target-cancel").addEventListener("click", () => $("target-dialog", HTMLDialogElement).close());
  $("wrapup-form").addEventListener("submit", onWrapUpSubmit);
  $("btn-close-call").addEventListener("click", () => {
    state.call = null;
    renderCall();
  });
  $("btn-callback").addEventListener("click", onCallBack);
}
