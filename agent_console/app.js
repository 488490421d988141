// The agent console: log in, seat state, the call card (screen pop), call controls, wrap-up,
// the customer's messages and subscriptions, queues, the inbox of mail and faxes, the agent's
// phone (a browser softphone, softphone.js, or the desk phone's name), and the supervisor's
// wallboard.
//
// Rules this file keeps:
// - Server data reaches the page only through textContent and attributes, never innerHTML, so
//   nothing the server (or a caller's data) sends can become markup.
// - No inline styles or scripts (the server's CSP forbids them): state shows through classes,
//   data-* attributes and the hidden attribute.
// - The password lives only in the form field until the login request is sent; the field is
//   cleared at once and nothing keeps it.
// - The state below is the page's only memory; render*() functions draw it, so a language switch
//   is "apply the texts, render everything again".

import { applyTranslations, getLang, setLang, t, tValue } from "./i18n.js";
import { Link, LinkError, consoleUrl } from "./link.js";
import { Softphone } from "./softphone.js";

const AGENT_ID = /^[A-Za-z0-9_.-]{1,32}$/;
// The engine's one phone-number rule (telephony/values.py PHONE_NUMBER).
const DIALABLE = /^\+?[0-9]{2,20}$/;
const ACCOUNT = /^[0-9]{1,16}$/;
/** A fax number as the engine takes it (protocol.py FAX_NUMBER). */
const FAX = /^\+?[0-9]{3,20}$/;
/** A fax number for the financial secretary's notices (secretary.py: digits only). */
const SUB_FAX = /^[0-9]{5,20}$/;
const STOCK_CODE = /^[0-9]{6}$/;
/** A price level: above zero, at most 2 decimals, sent as text (never a float). */
const PRICE = /^[0-9]{1,9}(\.[0-9]{1,2})?$/;
const PRICE_KINDS = ["price_above", "price_below"];
/** send_message's refusal when the customer has no address for the channel (the protocol's
 * documented start of that `not_found` message). */
const NO_ADDRESS = "no address on file";
const DEFAULT_REASONS = ["break", "lunch", "training", "meeting", "after_call", "other"];
const DISPOSITIONS = ["resolved", "follow_up", "complaint", "order_help", "info", "other"];
const TIERS = ["platinum", "gold", "silver", "ordinary"];
/** Wallboard order: the seats that need a supervisor's eye first. */
const SEAT_STATES = [
  "ringing", "on_call", "on_hold", "wrap_up", "ready", "not_ready", "logged_out",
];
const KEEPALIVE_MS = 25000;
const PING_TIMEOUT_MS = 10000;
const BACKOFF_MAX_MS = 30000;
/** How long after a listen/whisper/barge click the supervisor's browser phone answers by itself */
const SPY_ANSWER_MS = 35000;

const state = {
  link: null,
  me: null,          // {agent_id, name, role} once logged in
  seat: null,        // {agent_id, name, state, reason, since, call_id}
  call: null,        // the call card: call_offered data + state, sinceMs, recording, ...
  queues: [],
  reasons: DEFAULT_REASONS,
  wallboard: null,   // {queues, seats, atMs}
  wallboardAsked: false,
  tab: "desk",
  conn: "offline",   // online | offline | reconnecting
  skewMs: 0,         // server clock minus ours (see now())
  loggingOut: false,
  keepalive: 0,
  reconnectTimer: 0,
  reconnectAttempt: 0,
  targetAction: "",  // what the target dialog is for: transfer | consult | conference
  contacts: new Map(), // inbound contacts by contact_id (the inbox)
  contactsAsked: false,
  phone: null,       // the agent's phone: {kind: "browser" | "desk", extension}, or null
  phoneServer: null, // the PBX's view of it (`phone` event): {extension, registered, reason}
};

/** The browser softphone; idle unless the login reply gives a browser phone. */
let softphone = null;

const $ = (id) => document.getElementById(id);

/** Now on the server's clock, in ms. The protocol's times (seat `since`) are the server's unix
 * seconds; a ping reply carries the server's time, so the page corrects for a PC whose clock is
 * off and timers never start at "-0:42" or "7:03" instead of 0:00. */
function now() {
  return Date.now() + state.skewMs;
}

/** Measure the skew from one ping: the server's time against the middle of the round trip. */
async function syncClock(link, timeoutMs = PING_TIMEOUT_MS) {
  const sent = Date.now();
  const reply = await link.request("ping", {}, { timeoutMs });
  const received = Date.now();
  if (typeof reply.time === "number" && Number.isFinite(reply.time)) {
    state.skewMs = reply.time * 1000 - (sent + received) / 2;
  }
}

// -- small helpers --------------------------------------------------------------------------

function show(el, visible) {
  el.hidden = !visible;
}

/** Unix seconds (the protocol's times), ISO strings or ms -> ms since the epoch, or null. */
function toMs(value) {
  if (typeof value === "number" && Number.isFinite(value)) {
    return value < 1e12 ? value * 1000 : value;
  }
  if (typeof value === "string" && value) {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? null : parsed;
  }
  return null;
}

function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return t("none");
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function fmtDateTime(value) {
  const ms = toMs(value);
  if (ms === null) return String(value ?? "");
  const locale = getLang() === "zh" ? "zh-CN" : "en-GB";
  return new Date(ms).toLocaleString(locale, {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
}

const CURRENCY_SIGNS = { CNY: "¥", RMB: "¥", HKD: "HK$", USD: "US$" };

/** Money arrives as a decimal string (or a number): group the digits without going through a
 * float, so what the agent reads is exactly what the back office said. */
function fmtMoney(value, currency) {
  if (value === null || value === undefined || value === "") return t("none");
  const text = String(value);
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  const sign = CURRENCY_SIGNS[currency] ?? (currency ? `${currency} ` : "");
  if (!m) return `${sign}${text}`;
  const grouped = m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${m[1]}${sign}${grouped}${m[3] ?? ""}`;
}

function fmtPercent(share) {
  if (typeof share !== "number" || !Number.isFinite(share)) return t("none");
  return `${Math.round(share * 100)}%`;
}

/** The IVR path: the engine sends node names joined by spaces ("main quotes agent"); a list is
 * accepted too. Shown as a breadcrumb. */
function fmtPath(path) {
  const steps = Array.isArray(path) ? path.map(String)
    : String(path ?? "").split(/\s+/).filter(Boolean);
  return steps.length ? steps.join(" › ") : t("none");
}

function isSupervisor() {
  return state.me !== null && (state.me.role === "supervisor" || state.me.role === "admin");
}

/** A clock element: renderClocks() keeps its text current from data-since / data-deadline. */
function setClock(el, kind, ms) {
  delete el.dataset.since;
  delete el.dataset.deadline;
  if (ms === null || ms === undefined) {
    el.textContent = "";
    return;
  }
  el.dataset[kind] = String(ms);
  renderClock(el);
}

// -- messages to the agent ------------------------------------------------------------------

function errorText(err) {
  const code = err instanceof LinkError ? err.code : "internal";
  const key = `err.${code}`;
  const text = t(key);
  return text === key ? t("err.unknown", { code }) : text;
}

let toastTimer = 0;

/** One toast at a time (the newest): an error's meaning in the agent's language, and the
 * server's own words underneath when it gave any. */
function toast(text, { kind = "info", detail = "" } = {}) {
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

function toastError(err) {
  toast(errorText(err), { kind: "error", detail: err?.serverMessage ?? "" });
}

/** Run a request with its button disabled, so a double click does not send it twice. */
async function busy(button, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } finally {
    if (button) button.disabled = false;
    renderControls(); // the right enabled/disabled state comes from the state, not the button
  }
}

/** Send a request; errors become a toast and resolve to null. */
async function send(type, fields = {}, button = null) {
  try {
    return await request(type, fields, button);
  } catch (err) {
    toastError(err);
    return null;
  }
}

/** Send a request; a refusal is thrown (a LinkError) for the caller to explain. */
async function request(type, fields = {}, button = null) {
  if (!state.link) throw new LinkError("closed");
  return busy(button, () => state.link.request(type, fields));
}

function fieldError(el, key) {
  el.textContent = key ? t(key) : "";
  show(el, Boolean(key));
}

// -- connection, log in, log out ------------------------------------------------------------

function newLink() {
  const link = new Link({
    url: consoleUrl(),
    onEvent: handleEvent,
    onStrayError: (err) => {
      // The server closes an idle login-less connection: nothing the agent needs to see.
      if (err.code !== "login_timeout") toastError(err);
    },
    // Only the current link's end matters: an old one closing must not touch a newer one.
    onClose: (info) => {
      if (state.link === link) handleClose(info);
    },
  });
  return link;
}

async function ensureLink() {
  window.clearTimeout(state.reconnectTimer);
  if (!state.link) state.link = newLink();
  await state.link.open();
  setConn("online");
}

function setConn(kind) {
  state.conn = kind;
  const el = $("conn-status");
  el.dataset.conn = kind;
  el.textContent = t(`conn.${kind}`);
  // At the log-in form "offline" is normal (the socket opens on submit): say nothing then.
  show(el, state.me !== null || kind === "reconnecting");
}

async function onLoginSubmit(event) {
  event.preventDefault();
  const agentInput = $("login-agent");
  const passwordInput = $("login-password");
  const agentId = agentInput.value.trim();
  let password = passwordInput.value;
  passwordInput.value = ""; // never kept: the field empties as soon as it is read
  const error = $("login-error");
  if (!AGENT_ID.test(agentId)) {
    fieldError(error, "login.bad_agent");
    agentInput.focus();
    return;
  }
  if (!password) {
    fieldError(error, "login.no_password");
    passwordInput.focus();
    return;
  }
  fieldError(error, "");
  const submit = $("login-submit");
  submit.disabled = true;
  submit.textContent = t("login.busy");
  try {
    await ensureLink();
    const pending = state.link.request("login", { agent_id: agentId, password, lang: getLang() });
    password = ""; // the request holds the only copy until it is sent
    const session = await pending;
    const phone = $("login-phone").value.trim();
    if (phone) {
      // Hot-desking: the ACD rings this phone until the agent logs out.
      await state.link.request("use_phone", { phone });
    }
    startSession(session);
  } catch (err) {
    error.textContent = errorText(err);
    show(error, true);
    passwordInput.focus();
  } finally {
    password = "";
    submit.disabled = false;
    submit.textContent = t("login.submit");
  }
}

function startSession(data) {
  state.me = data.agent ?? null;
  state.seat = data.seat ?? null;
  state.queues = Array.isArray(data.queues) ? data.queues : [];
  state.reasons = Array.isArray(data.reasons) && data.reasons.length
    ? data.reasons.map(String) : DEFAULT_REASONS;
  state.call = data.call ? callFromSnapshot(data.call, data.seat) : null;
  state.wallboard = null;
  state.wallboardAsked = false;
  state.reconnectAttempt = 0;
  $("wrapup-form").reset();
  startPhone(data);
  show($("view-login"), false);
  show($("view-work"), true);
  setConn("online");
  fillReasons();
  state.contacts = new Map();
  state.contactsAsked = false;
  selectTab(state.tab);
  renderAll();
  startKeepalive();
  loadContacts();
  refreshCustomerPanels();
  // Correct the timers for the PC's clock; if this ping fails, the keepalive's next one will.
  syncClock(state.link).then(renderClocks, () => {});
}

/** The login reply's call (after a reload, say): call_offered data plus what the call is now:
 * state, recording ("on" | "paused" | "off"), consult (its state or null), connected_at and
 * wrap_up_until (unix s or null). The timer runs from the answer while talking or held, from
 * the seat's `since` otherwise (ringing, wrap-up). */
function callFromSnapshot(call, seat) {
  const live = call.state === "talking" || call.state === "held";
  const consult = typeof call.consult === "string" && call.consult !== "ended"
    ? { state: call.consult, target: "" } : null;
  return {
    ...call,
    sinceMs: (live ? toMs(call.connected_at) : null) ?? toMs(seat?.since) ?? now(),
    recording: ["on", "paused", "off"].includes(call.recording) ? call.recording
      : (call.recording === false ? "off" : "on"),
    consult,
    conference: [],
    wrapDeadlineMs: call.state === "wrap_up" ? toMs(call.wrap_up_until) : null,
    saved: false,
  };
}

/** Back to the log-in form, forgetting everything about the session. */
function endSession(noticeKey, params = {}) {
  stopKeepalive();
  stopPhone();
  state.me = null;
  state.seat = null;
  state.call = null;
  state.wallboard = null;
  state.wallboardAsked = false;
  state.contacts = new Map();
  state.contactsAsked = false;
  show($("view-work"), false);
  show($("view-login"), true);
  setNotice(noticeKey, params);
  renderHeader();
  setConn(state.conn);
  $("login-password").value = "";
  const agentInput = $("login-agent");
  (agentInput.value ? $("login-password") : agentInput).focus();
}

function setNotice(key, params = {}) {
  const el = $("login-notice");
  el.textContent = key ? t(key, params) : "";
  show(el, Boolean(key));
}

async function onLogout() {
  if (!state.link) return;
  state.loggingOut = true;
  const button = $("btn-logout");
  button.disabled = true;
  try {
    await state.link.request("set_state", { state: "logged_out", reason: "" });
  } catch (err) {
    // The server may end the session (and the socket) as it logs us out: that is success.
    if (err.code !== "closed") {
      state.loggingOut = false;
      toastError(err); // refused, e.g. on a call: stay logged in
      return;
    }
  } finally {
    button.disabled = false;
  }
  finishLogout("login.logged_out");
}

/** Close the link on purpose and go back to the log-in form. */
function finishLogout(noticeKey, params = {}) {
  const link = state.link;
  state.link = null;
  state.loggingOut = false;
  link?.close();
  setConn("offline");
  endSession(noticeKey, params);
}

function handleClose({ byUs }) {
  state.link = null;
  if (state.loggingOut) return finishLogout("login.logged_out");
  setConn("offline");
  if (byUs || state.me === null) return; // at the login form, the next submit reconnects
  endSession("login.lost");
  scheduleReconnect();
}

/** Reconnect with exponential backoff and jitter; once the server answers, ask the agent to
 * log in again (the password was never kept, so the page cannot do it alone). */
function scheduleReconnect() {
  const base = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** state.reconnectAttempt);
  const delay = base / 2 + Math.random() * (base / 2);
  state.reconnectAttempt += 1;
  setConn("reconnecting");
  window.clearTimeout(state.reconnectTimer);
  state.reconnectTimer = window.setTimeout(async () => {
    try {
      await ensureLink();
      state.reconnectAttempt = 0;
      setNotice("login.reconnected");
    } catch {
      state.link = null;
      scheduleReconnect();
    }
  }, delay);
}

/** An application-level ping: a half-open TCP connection is otherwise invisible here. */
function startKeepalive() {
  stopKeepalive();
  state.keepalive = window.setInterval(async () => {
    const link = state.link;
    if (!link) return;
    try {
      await syncClock(link);
    } catch (err) {
      if (err.code === "timeout") link.abort();
    }
  }, KEEPALIVE_MS);
}

function stopKeepalive() {
  window.clearInterval(state.keepalive);
  state.keepalive = 0;
}

// -- events from the server -----------------------------------------------------------------

const EVENT_HANDLERS = {
  seat(data) {
    if (state.me && data.agent_id && data.agent_id !== state.me.agent_id) return;
    state.seat = { ...state.seat, ...data };
    renderHeader();
    renderControls();
  },
  call_offered(data) {
    state.call = {
      ...data, state: "ringing", sinceMs: now(), recording: "on", consult: null,
      conference: [], wrapDeadlineMs: null, saved: false,
    };
    $("wrapup-form").reset();
    $("task-use-call").checked = true; // a task made now is most likely about this caller
    fieldError($("wrapup-error"), "");
    selectTab("desk"); // the screen pop must be seen
    renderCall();
    refreshCustomerPanels();
  },
  call_connected(data) {
    if (!isCurrentCall(data)) return;
    state.call.state = "talking";
    state.call.sinceMs = now();
    state.call.recording = data.recording === false ? "off" : "on";
    renderCall();
  },
  call_held(data) {
    if (!isCurrentCall(data)) return;
    state.call.state = "held";
    renderCall();
  },
  call_resumed(data) {
    if (!isCurrentCall(data)) return;
    state.call.state = "talking";
    state.call.consult = null; // the caller is back with the agent: no consultation any more
    renderCall();
  },
  recording(data) {
    if (!isCurrentCall(data)) return;
    state.call.recording = data.state === "paused" ? "paused" : "on";
    renderCall();
  },
  consult(data) {
    if (!isCurrentCall(data)) return;
    if (data.state === "ended") {
      // the consulted party hung up (or never answered): the caller is still on hold, and
      // "resume" takes them back
      state.call.consult = null;
    } else {
      const known = state.call.consult?.target;
      state.call.consult = { state: data.state, target: data.target || known || "" };
      state.call.state = "held"; // the caller waits on hold meanwhile
    }
    renderCall();
  },
  conference(data) {
    if (!isCurrentCall(data)) return;
    const target = String(data.target ?? "");
    if (target && !state.call.conference.includes(target)) state.call.conference.push(target);
    renderCall();
  },
  call_ended(data) {
    if (!isCurrentCall(data)) return;
    if (data.disposition_required === false) {
      // e.g. the caller gave up while it rang: no work was done, nothing to wrap up
      state.call = null;
      renderCall();
      return;
    }
    const wrapS = typeof data.wrap_up_s === "number" ? data.wrap_up_s : null;
    Object.assign(state.call, {
      state: "wrap_up",
      sinceMs: now(),
      consult: null,
      wrapDeadlineMs: wrapS === null ? null : now() + wrapS * 1000,
    });
    renderCall();
    $("wrapup-disposition").focus();
  },
  queues(data) {
    state.queues = Array.isArray(data.queues) ? data.queues : [];
    renderQueues();
  },
  wallboard(data) {
    state.wallboard = { ...data, atMs: Date.now() };
    renderWallboard();
  },
  delivery(data) {
    // one of this customer's messages moved: show it at once, then read the list again
    const call = state.call;
    const masked = call?.customer?.account_masked;
    if (!masked || data.account_masked !== masked) return;
    const known = (call.deliveries ?? []).find((d) => d.message_id === data.message_id);
    if (known) {
      known.state = String(data.state ?? known.state);
      known.reason = String(data.reason ?? "");
      renderDeliveries(call);
    }
    loadDeliveries();
  },
  contact(data) {
    if (typeof data.contact_id !== "string" || !data.contact_id) return;
    state.contacts.set(data.contact_id, { ...state.contacts.get(data.contact_id), ...data });
    renderInbox();
  },
  phone(data) {
    const extension = String(data.extension ?? "");
    if (state.phone?.extension && extension && extension !== state.phone.extension) return;
    state.phoneServer = { extension, registered: data.registered === true,
      reason: String(data.reason ?? "") };
    // a desk phone the page did not know of (hot-desking from elsewhere): name it
    if (!state.phone && extension) state.phone = { kind: "desk", extension };
    renderPhone();
  },
  session_ended(data) {
    // The server closes the socket next; this is a deliberate end, not a lost connection.
    if (state.loggingOut) return finishLogout("login.logged_out");
    return finishLogout("login.session_ended", { reason: tValue("reason", data.reason ?? "") });
  },
};

function handleEvent(name, data) {
  const handler = EVENT_HANDLERS[name];
  if (handler) handler(data);
}

function isCurrentCall(data) {
  return state.call !== null && (!data.call_id || data.call_id === state.call.call_id);
}

// -- rendering ------------------------------------------------------------------------------

function renderAll() {
  renderHeader();
  fillReasons();
  fillDispositions();
  renderQueues();
  renderCall();
  renderInbox();
  fillStateFilter();
  renderWallboard();
  renderPhone();
  setConn(state.conn);
}

function renderHeader() {
  const me = state.me;
  show($("who"), me !== null);
  show($("seat-badge"), me !== null);
  show($("btn-logout"), me !== null);
  show($("tab-wallboard"), isSupervisor());
  show($("tab-inbox"), me !== null);
  if (!me) return;
  $("agent-name").textContent = me.name ?? "";
  $("agent-id").textContent = me.agent_id ?? "";
  $("agent-role").textContent = tValue("role", me.role);
  const seat = state.seat ?? {};
  const seatState = seat.state ?? "logged_out";
  $("seat-badge").dataset.state = seatState;
  $("seat-state").textContent = tValue("state", seatState);
  $("seat-state").dataset.state = seatState;
  $("seat-reason").textContent = seatState === "not_ready" && seat.reason
    ? tValue("reason", seat.reason) : "";
  setClock($("seat-timer"), "since", toMs(seat.since));
}

function fillReasons() {
  const select = $("reason-select");
  const keep = select.value;
  select.replaceChildren(...state.reasons.map((reason) => {
    const opt = document.createElement("option");
    opt.value = reason;
    opt.textContent = tValue("reason", reason);
    return opt;
  }));
  if (state.reasons.includes(keep)) select.value = keep;
}

function fillDispositions() {
  const select = $("wrapup-disposition");
  const keep = select.value;
  const blank = document.createElement("option");
  blank.value = "";
  blank.textContent = t("wrap.choose");
  select.replaceChildren(blank, ...DISPOSITIONS.map((value) => {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = t(`disp.${value}`);
    return opt;
  }));
  select.value = keep;
}

/** Which seat buttons make sense now, from the seat state table (seats/state.py). */
function renderControls() {
  const seatState = state.seat?.state ?? "logged_out";
  $("btn-ready").disabled = !["not_ready", "wrap_up"].includes(seatState);
  $("btn-not-ready").disabled = !["ready", "wrap_up"].includes(seatState);
  $("btn-ready").classList.toggle("active", seatState === "ready");
  $("btn-not-ready").classList.toggle("active", seatState === "not_ready");
  renderCallControls();
}

function renderQueues() {
  const rows = state.queues.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `queue-${q.name}`;
    tr.append(
      cell(q.name),
      cell(String(q.waiting ?? 0), "num"),
      cell(fmtDuration(q.longest_wait_s), `num${isLate(q) ? " warn" : ""}`),
      slCell(q),
    );
    return tr;
  });
  $("queue-rows").replaceChildren(...rows);
  show($("queue-empty"), rows.length === 0);
}

function cell(text, className = "", col = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  if (col) td.dataset.col = col;
  return td;
}

function isLate(q) {
  return typeof q.target_s === "number" && (q.longest_wait_s ?? 0) > q.target_s;
}

const DEFAULT_TARGET_SHARE = 0.8;

/** The queue's service-level goal: its `target_share` (0..1), or the classic 80%. */
function targetShare(q) {
  const share = q?.target_share;
  return typeof share === "number" && share > 0 && share <= 1 ? share : DEFAULT_TARGET_SHARE;
}

/** Colour for a service level against the queue's goal: good at or above it, warning up to 20
 * points below it, bad further down. */
function slClass(q) {
  const share = q?.service_level;
  if (typeof share !== "number") return "";
  const target = targetShare(q);
  if (share >= target - 1e-9) return "good";
  return share >= target - 0.2 ? "warn" : "bad";
}

/** A service-level cell: the figure, coloured against the goal, with the goal as its title. */
function slCell(q, col = "") {
  const td = cell(fmtPercent(q.service_level), `num ${slClass(q)}`, col);
  td.title = t("queues.sl_goal", {
    share: fmtPercent(targetShare(q)),
    secs: typeof q.target_s === "number" ? String(Math.round(q.target_s)) : "?",
  });
  return td;
}

// The call card ----------------------------------------------------------------------------

function renderCall() {
  const call = state.call;
  show($("no-call"), call === null);
  show($("call-card"), call !== null);
  document.title = call?.state === "ringing"
    ? `☎ ${t("call.status.ringing")} · ${t("app.title")}` : t("app.title");
  renderTaskLink(call);
  renderPhone(); // the ringing phone shows who the caller is (call_offered)
  if (!call) return;
  $("call-card").dataset.status = call.state;
  renderCustomer(call);
  renderIvr(call);
  renderCallStatus(call);
  renderCallControls();
  renderWrapUp(call);
  renderMessageForm();
  renderDeliveries(call);
  renderSubscriptions(call);
  renderSubscribeForm();
}

function renderCustomer(call) {
  const customer = call.customer ?? null;
  $("customer-name").textContent = customer?.name || t("call.unknown_customer");
  const tier = $("customer-tier");
  const tierValue = customer?.tier ?? "";
  tier.textContent = tierValue ? tValue("tier", tierValue) : "";
  tier.dataset.tier = TIERS.includes(tierValue) ? tierValue : "unknown";
  show(tier, Boolean(tierValue));
  $("account-masked").textContent = customer?.account_masked || t("none");
  $("caller").textContent = call.caller || t("none");
  $("call-queue").textContent = call.queue || t("none");
  $("call-waited").textContent = fmtDuration(call.waited_s);
  const balance = customer?.balance_summary ?? null;
  show($("balance"), balance !== null);
  if (balance) {
    $("balance-cash").textContent = fmtMoney(balance.cash, balance.currency);
    $("balance-market").textContent = fmtMoney(balance.market_value, balance.currency);
    $("balance-total").textContent = fmtMoney(balance.total, balance.currency);
  }
}

function renderIvr(call) {
  const ivr = call.ivr ?? {};
  $("ivr-path").textContent = fmtPath(ivr.path);
  const failure = $("last-failure");
  failure.textContent = ivr.last_failure ? String(ivr.last_failure) : t("none");
  failure.classList.toggle("has-failure", Boolean(ivr.last_failure));
  const contacts = Array.isArray(call.recent_contacts) ? call.recent_contacts : [];
  const items = contacts.map((c) => {
    const li = document.createElement("li");
    const at = document.createElement("span");
    at.className = "at";
    at.textContent = fmtDateTime(c.at);
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = tValue("contact", c.kind ?? "");
    const summary = document.createElement("span");
    summary.className = "summary";
    summary.textContent = String(c.summary ?? "");
    li.append(at, kind, summary);
    return li;
  });
  if (items.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = t("call.recent_none");
    items.push(li);
  }
  $("recent-contacts").replaceChildren(...items);
}

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

function renderCallControls() {
  const call = state.call;
  if (!call) return;
  const live = call.state === "talking" || call.state === "held";
  const consulting = call.consult !== null;
  show($("call-card").querySelector(".controls"), call.state !== "wrap_up");
  $("btn-hangup").disabled = call.state === "wrap_up";
  show($("btn-hold"), call.state !== "held");
  show($("btn-resume"), call.state === "held");
  // during a consultation the way back to the caller is "cancel consult"
  $("btn-hold").disabled = call.state !== "talking" || consulting;
  $("btn-resume").disabled = call.state !== "held" || consulting;
  show($("btn-record-pause"), call.recording !== "paused");
  show($("btn-record-resume"), call.recording === "paused");
  $("btn-record-pause").disabled = !live || call.recording !== "on";
  $("btn-record-resume").disabled = !live;
  for (const id of ["btn-transfer", "btn-consult", "btn-conference"]) {
    $(id).disabled = !live || consulting;
  }
  show($("consult-bar"), consulting);
  // the caller can only be joined to a party who answered
  $("btn-consult-complete").disabled = !consulting || call.consult.state !== "talking";
  // after the call: ring the agent, then this caller's number (the engine knows it)
  show($("btn-callback"), call.state === "wrap_up");
  $("btn-callback").disabled = !call.caller || state.seat?.state !== "ready";
  if (consulting) {
    const target = call.consult.target;
    const targetText = target && typeof target === "object" ? String(target.value ?? "")
      : String(target ?? "");
    $("consult-status").textContent = t("ctl.consult_with", {
      target: targetText, state: tValue("consult", call.consult.state),
    });
  }
  const conf = $("conference-status");
  show(conf, live && call.conference.length > 0);
  conf.textContent = t("ctl.conference_with", { targets: call.conference.join(", ") });
}

/** The task form's "about the current customer" box: shown while a call card is. */
function renderTaskLink(call) {
  const linked = call !== null;
  show($("task-use-call-box"), linked);
  const masked = call?.customer?.account_masked || call?.caller || t("none");
  $("task-use-call-label").textContent = t("task.use_call", { who: masked });
  // the engine takes the account from the call: no field to fill (or to contradict it)
  const fromCall = linked && $("task-use-call").checked;
  $("task-account").disabled = fromCall;
  show($("task-account"), !fromCall);
}

function renderWrapUp(call) {
  const inWrap = call.state === "wrap_up";
  show($("wrapup-form"), inWrap);
  if (!inWrap) return;
  setClock($("wrapup-countdown"), "deadline", call.saved ? null : call.wrapDeadlineMs);
  show($("wrapup-saved"), call.saved);
  show($("btn-close-call"), call.saved);
  $("wrapup-save").disabled = call.saved;
  $("wrapup-disposition").disabled = call.saved;
  $("wrapup-notes").disabled = call.saved;
}

// The clocks -------------------------------------------------------------------------------

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

function renderClocks() {
  for (const el of document.querySelectorAll("[data-since], [data-deadline]")) renderClock(el);
}

// The wallboard ----------------------------------------------------------------------------

function selectTab(name) {
  let tab = "desk";
  if (name === "wallboard" && isSupervisor()) tab = "wallboard";
  if (name === "inbox") tab = "inbox";
  state.tab = tab;
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  show($("panel-desk"), tab === "desk");
  show($("panel-inbox"), tab === "inbox");
  show($("panel-wallboard"), tab === "wallboard");
  if (tab === "wallboard" && !state.wallboardAsked) askWallboard();
  if (tab === "inbox" && !state.contactsAsked) loadContacts();
}

/** The wallboard now, and `wallboard` events from then on (once per session). */
async function askWallboard() {
  state.wallboardAsked = true;
  const data = await send("wallboard");
  if (data === null) {
    state.wallboardAsked = false; // let a later visit to the tab try again
    return;
  }
  state.wallboard = { ...data, atMs: Date.now() };
  renderWallboard();
}

function fillStateFilter() {
  const select = $("wb-state-filter");
  const keep = select.value || "all";
  select.replaceChildren(...["all", ...SEAT_STATES].map((value) => {
    const opt = document.createElement("option");
    opt.value = value;
    return opt;
  }));
  select.value = keep;
  labelStateFilter();
}

/** Seats per state, as option labels of the filter and as a strip of pills beside it (a click
 * on a pill filters on that state): the "by state" view at a glance. */
function labelStateFilter() {
  const seats = state.wallboard?.seats ?? [];
  const count = (value) => (value === "all" ? seats.length
    : seats.filter((s) => s.state === value).length);
  for (const opt of $("wb-state-filter").options) {
    const label = opt.value === "all" ? t("wb.all") : tValue("state", opt.value);
    opt.textContent = `${label} (${count(opt.value)})`;
  }
  $("wb-state-counts").replaceChildren(...SEAT_STATES.filter((s) => count(s) > 0).map((s) => {
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
    time: new Date(wb.atMs).toLocaleTimeString(getLang() === "zh" ? "zh-CN" : "en-GB"),
  }) : "";
  renderWallboardQueues(Array.isArray(wb?.queues) ? wb.queues : []);
  renderWallboardSeats(Array.isArray(wb?.seats) ? wb.seats : []);
  labelStateFilter();
}

function renderWallboardQueues(queues) {
  $("wb-queue-rows").replaceChildren(...queues.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `wb-queue-${q.name}`;
    tr.append(
      cell(String(q.name), "", "name"),
      cell(String(q.waiting ?? 0), `num${q.waiting > 0 ? " strong" : ""}`, "waiting"),
      cell(fmtDuration(q.longest_wait_s), `num${isLate(q) ? " warn" : ""}`, "longest"),
      slCell(q, "sl"),
      cell(q.asa_s === null || q.asa_s === undefined ? t("none") : fmtDuration(q.asa_s),
        "num", "asa"),
      cell(String(q.answered ?? 0), "num", "answered"),
      cell(String(q.abandoned ?? 0), `num${q.abandoned > 0 ? " warn" : ""}`, "abandoned"),
    );
    return tr;
  }));
}

/** Seat rows are updated in place, keyed by agent id, so a supervisor's click on a row's button
 * is not lost to a wallboard event that redraws the table under the pointer. */
function renderWallboardSeats(seats) {
  const filter = $("wb-state-filter").value || "all";
  const order = (s) => {
    const i = SEAT_STATES.indexOf(s.state);
    return i === -1 ? SEAT_STATES.length : i;
  };
  const wanted = seats
    .filter((s) => filter === "all" || s.state === filter)
    .sort((a, b) => order(a) - order(b) || String(a.agent_id).localeCompare(String(b.agent_id)));
  const tbody = $("wb-seat-rows");
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

const SEAT_ACTIONS = [
  ["spy", "listen", "wb.listen"],
  ["spy", "whisper", "wb.whisper"],
  ["spy", "barge", "wb.barge"],
  ["force", "ready", "wb.force_ready"],
  ["force", "not_ready", "wb.force_not_ready"],
  ["force", "logged_out", "wb.force_logout"],
];

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
    const [, , key] = SEAT_ACTIONS.find(([k, v]) =>
      k === button.dataset.action && v === button.dataset.value);
    button.textContent = t(key);
    // Spying needs a call to spy on; a force is refused on a call (seats/state.py FORCE_TARGETS)
    // and pointless into the state the seat is already in.
    button.disabled = button.dataset.action === "spy"
      ? !onCall : onCall || seat.state === button.dataset.value;
  }
}

async function onSeatAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const agentId = button.closest("tr").dataset.agent;
  const value = button.dataset.value;
  if (button.dataset.action === "spy") {
    // the supervisor's phone rings because they asked: a browser phone answers by itself
    if (state.phone?.kind === "browser") softphone?.expectCall(SPY_ANSWER_MS);
    const reply = await send("spy", { agent_id: agentId, mode: value }, button);
    if (reply !== null) toast(t("ok.spy"));
  } else {
    const reply = await send("force_state", { agent_id: agentId, state: value, reason: "" },
      button);
    if (reply !== null) toast(t("ok.force", { agent: agentId, state: tValue("state", value) }));
    if (reply?.seat && state.wallboard && Array.isArray(state.wallboard.seats)) {
      // show the forced state at once; the next wallboard event confirms it
      state.wallboard.seats = state.wallboard.seats.map((seat) =>
        seat.agent_id === reply.seat.agent_id ? { ...seat, ...reply.seat } : seat);
    }
  }
  renderWallboard(); // busy() re-enabled the button; the seat's state decides
}

// -- agent actions --------------------------------------------------------------------------

async function setSeatState(newState, button) {
  const reason = newState === "not_ready" ? $("reason-select").value : "";
  const reply = await send("set_state", { state: newState, reason }, button);
  applySeatReply(reply);
}

/** Replies to seat commands carry the seat ({seat: {...}}); the `seat` event that follows says
 * the same thing again, harmlessly. */
function applySeatReply(reply) {
  if (reply && reply.seat && typeof reply.seat.state === "string") EVENT_HANDLERS.seat(reply.seat);
}

/** A call control; on success the implied call state is applied at once (the matching event,
 * when it comes, applies the same state again). */
async function callControl(type, fields, button, after) {
  const reply = await send(type, fields, button);
  if (reply === null || !state.call) return;
  after?.();
  renderCall();
}

const TARGET_KINDS = {
  transfer: ["queue", "agent", "number"],
  consult: ["agent", "number"],
  conference: ["agent", "number"],
};

function openTargetDialog(action) {
  state.targetAction = action;
  $("target-title").textContent = t(`target.title.${action}`);
  const kind = $("target-kind");
  kind.replaceChildren(...TARGET_KINDS[action].map((value) => {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = t(`target.kind.${value}`);
    return opt;
  }));
  $("target-value").value = "";
  fieldError($("target-error"), "");
  fillTargetOptions();
  $("target-dialog").showModal();
  $("target-value").focus();
}

/** Suggestions for the target field: queue names we know, or agent ids from the wallboard. */
function fillTargetOptions() {
  const kind = $("target-kind").value;
  let values = [];
  if (kind === "queue") values = state.queues.map((q) => String(q.name));
  if (kind === "agent") values = (state.wallboard?.seats ?? []).map((s) => String(s.agent_id));
  $("target-options").replaceChildren(...values.map((value) => {
    const opt = document.createElement("option");
    opt.value = value;
    return opt;
  }));
}

async function onTargetSubmit(event) {
  event.preventDefault();
  const kind = $("target-kind").value;
  const raw = $("target-value").value;
  const value = kind === "number" ? cleanNumber(raw) : raw.trim();
  const ok = kind === "number" ? DIALABLE.test(value) : AGENT_ID.test(value);
  if (!ok) {
    fieldError($("target-error"), kind === "number" ? "val.dialable" : "target.bad_id");
    return;
  }
  const action = state.targetAction;
  const reply = await send(action, { target: { kind, value } }, $("target-ok"));
  if (reply === null) return; // the toast says why; the dialog stays for a correction
  $("target-dialog").close();
  toast(t(`ok.${action}`));
  if (action === "consult" && state.call) {
    // the `consult` event may have come first (and may be further along): keep it then
    state.call.consult ??= { state: "ringing", target: { kind, value } };
    state.call.state = "held";
    renderCall();
  }
}

async function onWrapUpSubmit(event) {
  event.preventDefault();
  const call = state.call;
  if (!call || call.saved) return;
  const disposition = $("wrapup-disposition").value;
  if (!DISPOSITIONS.includes(disposition)) {
    fieldError($("wrapup-error"), "wrap.need_disposition");
    $("wrapup-disposition").focus();
    return;
  }
  fieldError($("wrapup-error"), "");
  const reply = await send("wrap_up", {
    call_id: String(call.call_id), disposition, notes: $("wrapup-notes").value,
  }, $("wrapup-save"));
  if (reply === null || state.call !== call) return;
  call.saved = true;
  renderCall();
  applySeatReply(reply); // saving ends the wrap-up: the seat is ready again
}

/** Strip the separators people type or paste into phone numbers ("138-0000 0000"). */
function cleanNumber(text) {
  return text.replace(/[\s()-]/g, "");
}

async function onClickToCall(event) {
  event.preventDefault();
  const number = cleanNumber($("ctc-number").value);
  const account = $("ctc-account").value.trim();
  const error = $("ctc-error");
  if (!DIALABLE.test(number)) return fieldError(error, "val.dialable");
  if (account && !ACCOUNT.test(account)) return fieldError(error, "val.digits");
  fieldError(error, "");
  const reply = await send("click_to_call", { number, account },
    event.submitter ?? null);
  if (reply !== null) toast(t("ok.click_to_call", { number }));
}

async function onCreateTask(event) {
  event.preventDefault();
  const text = $("task-text").value.trim();
  // about the current customer: the engine fills the account (the page has only the masked one)
  const callId = state.call && $("task-use-call").checked ? String(state.call.call_id) : "";
  const account = callId ? "" : $("task-account").value.trim();
  const phone = cleanNumber($("task-phone").value);
  const agentId = $("task-agent").value.trim();
  const due = $("task-due").value;
  const error = $("task-error");
  if (!text) return fieldError(error, "task.need_text");
  if (account && !ACCOUNT.test(account)) return fieldError(error, "val.digits");
  if (phone && !DIALABLE.test(phone)) return fieldError(error, "val.dialable");
  if (agentId && !AGENT_ID.test(agentId)) return fieldError(error, "login.bad_agent");
  fieldError(error, "");
  const dueAt = due ? new Date(due).getTime() / 1000 : null;
  const fields = {
    text, account, phone, due_at: Number.isFinite(dueAt) ? dueAt : null, agent_id: agentId,
  };
  if (callId) fields.call_id = callId;
  const reply = await send("create_task", fields, event.submitter ?? null);
  if (reply === null) return;
  event.target.reset();
  $("task-use-call").checked = true;
  renderTaskLink(state.call);
  toast(t("ok.task"));
}

/** The box sits on the call card: left empty, the account is this call's customer's (the
 * engine looks it up from the call id; the page only ever has the masked one). The address is
 * the back office's (SMS, e-mail) or the fax number typed here. */
async function onSendMessage(event) {
  event.preventDefault();
  const account = $("msg-account").value.trim();
  const error = $("msg-error");
  const channel = $("msg-channel").value;
  const template = $("msg-template").value;
  const fields = { channel, template };
  if (account) {
    if (!ACCOUNT.test(account)) return fieldError(error, "val.digits");
    fields.account = account;
  } else if (state.call?.customer) {
    fields.call_id = String(state.call.call_id);
  } else {
    return fieldError(error, "msg.need_account");
  }
  if (channel === "fax") {
    const fax = cleanNumber($("msg-fax").value);
    if (!FAX.test(fax)) return fieldError(error, "msg.need_fax");
    fields.fax = fax;
  }
  if (template === "note") {
    const text = $("msg-text").value.trim();
    if (!text) return fieldError(error, "msg.need_text");
    fields.text = text;
  }
  fieldError(error, "");
  try {
    await request("send_message", fields, event.submitter ?? null);
  } catch (err) {
    if (err.code === "not_found" && String(err.serverMessage).startsWith(NO_ADDRESS)) {
      return fieldError(error, `msg.no_address.${channel}`);
    }
    return toastError(err);
  }
  $("msg-text").value = "";
  toast(t("ok.message"));
  if (!account) loadDeliveries();
}

/** The fax number and the note's text are asked for only where they mean something. */
function renderMessageForm() {
  show($("msg-fax"), $("msg-channel").value === "fax");
  show($("msg-text"), $("msg-template").value === "note");
}

// The customer's messages and subscriptions (on the call card) -----------------------------

/** Read what an open box shows again (after a new call, a reload, a sent message...). */
function refreshCustomerPanels() {
  loadDeliveries();
  loadSubscriptions();
}

/** The call's customer's messages, when the box is open; a request already under way is
 * followed by one more (what it answers may be out of date by then). */
async function loadDeliveries() {
  const call = state.call;
  if (!call?.customer || !$("deliveries-box").open || !state.link) return;
  if (call.deliveriesLoading) {
    call.deliveriesAgain = true;
    return;
  }
  call.deliveriesLoading = true;
  if (!Array.isArray(call.deliveries)) renderDeliveries(call);
  try {
    const reply = await send("deliveries", { call_id: String(call.call_id), limit: 50 });
    if (reply && Array.isArray(reply.deliveries)) call.deliveries = reply.deliveries;
  } finally {
    call.deliveriesLoading = false;
  }
  if (state.call === call) renderDeliveries(call);
  if (call.deliveriesAgain) {
    call.deliveriesAgain = false;
    loadDeliveries();
  }
}

function renderDeliveries(call) {
  const status = $("dlv-status");
  const list = Array.isArray(call?.deliveries) ? call.deliveries : null;
  show($("dlv-table"), list !== null && list.length > 0);
  $("dlv-refresh").disabled = !call?.customer;
  if (!call?.customer) {
    status.textContent = t("dlv.unidentified");
    $("dlv-rows").replaceChildren();
    return;
  }
  if (list === null) {
    status.textContent = call.deliveriesLoading ? t("dlv.loading") : "";
    $("dlv-rows").replaceChildren();
    return;
  }
  status.textContent = list.length ? t("dlv.count", { n: list.length }) : t("dlv.none");
  $("dlv-rows").replaceChildren(...list.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `delivery-${d.message_id}`;
    tr.dataset.state = String(d.state ?? "");
    const kind = String(d.kind || d.template || "");
    const what = cell(tValue("dlv.kind", kind), "", "what");
    if (d.ref) {
      const ref = document.createElement("span");
      ref.className = "muted ref";
      ref.textContent = ` #${d.ref}`;
      what.append(ref);
    }
    const stateCell = cell("", "", "state");
    const badge = document.createElement("span");
    badge.className = "dlv-state";
    badge.dataset.state = String(d.state ?? "");
    badge.dataset.testid = "delivery-state";
    badge.textContent = tValue("dlv.state", d.state ?? "");
    stateCell.append(badge);
    let note = String(d.reason ?? "");
    if (d.state === "queued" && typeof d.next_attempt_at === "number") {
      note = t("dlv.held_until", { time: fmtDateTime(d.next_attempt_at) });
    }
    if (note) {
      const reason = document.createElement("span");
      reason.className = "reason";
      reason.dataset.testid = "delivery-reason";
      reason.textContent = note;
      stateCell.append(reason);
    }
    tr.append(
      cell(fmtDateTime(d.created_at), "mono", "time"),
      what,
      cell(tValue("msg.channel", d.channel ?? ""), "", "channel"),
      cell(String(d.to || t("none")), "mono", "to"),
      stateCell,
    );
    return tr;
  }));
}

async function loadSubscriptions() {
  const call = state.call;
  if (!call?.customer || !$("subs-box").open || !state.link) return;
  const reply = await send("subscriptions", { call_id: String(call.call_id) });
  if (reply && Array.isArray(reply.subscriptions)) call.subscriptions = reply.subscriptions;
  if (state.call === call) renderSubscriptions(call);
}

function renderSubscriptions(call) {
  const status = $("sub-status");
  const list = Array.isArray(call?.subscriptions) ? call.subscriptions : null;
  const known = Boolean(call?.customer);
  show($("sub-table"), known && list !== null && list.length > 0);
  show($("sub-form"), known);
  if (!known) {
    status.textContent = t("dlv.unidentified");
    $("sub-rows").replaceChildren();
    return;
  }
  status.textContent = list === null ? "" : list.length ? t("sub.count", { n: list.length })
    : t("sub.none");
  $("sub-rows").replaceChildren(...(list ?? []).map((sub) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `sub-${sub.subscription_id}`;
    tr.dataset.id = String(sub.subscription_id);
    let detail = "";
    if (PRICE_KINDS.includes(sub.kind)) {
      detail = `${sub.code} ${sub.kind === "price_above" ? "≥" : "≤"} ${sub.price}`;
    }
    if (sub.channel === "fax" && sub.fax) detail = [detail, sub.fax].filter(Boolean).join(" · ");
    const quiet = sub.quiet_start && sub.quiet_end ? `${sub.quiet_start}–${sub.quiet_end}`
      : t("none");
    const actions = cell("", "", "actions");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small ghost";
    remove.dataset.testid = "sub-remove";
    remove.textContent = t("sub.remove");
    actions.append(remove);
    tr.append(
      cell(tValue("sub.kind", sub.kind ?? ""), "", "kind"),
      cell(tValue("msg.channel", sub.channel ?? ""), "", "channel"),
      cell(detail || t("none"), "mono", "detail"),
      cell(quiet, "mono", "quiet"),
      actions,
    );
    return tr;
  }));
}

function renderSubscribeForm() {
  const priced = PRICE_KINDS.includes($("sub-kind").value);
  show($("sub-code"), priced);
  show($("sub-price"), priced);
  show($("sub-fax"), $("sub-channel").value === "fax");
}

async function onSubscribe(event) {
  event.preventDefault();
  const call = state.call;
  const error = $("sub-error");
  if (!call?.customer) return fieldError(error, "msg.need_account");
  const kind = $("sub-kind").value;
  const channel = $("sub-channel").value;
  const fields = { call_id: String(call.call_id), kind, channel };
  if (PRICE_KINDS.includes(kind)) {
    const code = $("sub-code").value.trim();
    const price = $("sub-price").value.trim();
    if (!STOCK_CODE.test(code)) return fieldError(error, "sub.need_code");
    if (!PRICE.test(price) || !/[1-9]/.test(price)) return fieldError(error, "sub.need_price");
    Object.assign(fields, { code, price });
  }
  if (channel === "fax") {
    const fax = cleanNumber($("sub-fax").value);
    if (!SUB_FAX.test(fax)) return fieldError(error, "sub.need_fax");
    fields.fax = fax;
  }
  const start = $("sub-quiet-start").value;
  const end = $("sub-quiet-end").value;
  if (Boolean(start) !== Boolean(end)) return fieldError(error, "sub.need_quiet");
  if (start) Object.assign(fields, { quiet_start: start.slice(0, 5), quiet_end: end.slice(0, 5) });
  fieldError(error, "");
  const reply = await send("subscribe", fields, event.submitter ?? null);
  if (reply === null) return;
  if (reply.address === "missing") {
    toast(t("sub.address_missing"), { kind: "error" });
  } else {
    toast(t(reply.new === false ? "ok.subscribed_again" : "ok.subscribed"));
  }
  for (const id of ["sub-code", "sub-price"]) $(id).value = "";
  await loadSubscriptions();
}

async function onSubscriptionAction(event) {
  const button = event.target.closest("button[data-testid=sub-remove]");
  const call = state.call;
  if (!button || !call) return;
  const id = Number(button.closest("tr").dataset.id);
  const reply = await send("unsubscribe", { call_id: String(call.call_id), subscription_id: id },
    button);
  if (reply === null) return;
  toast(t("ok.unsubscribed"));
  if (Array.isArray(call.subscriptions)) {
    call.subscriptions = call.subscriptions.filter((s) => s.subscription_id !== id);
    renderSubscriptions(call);
  }
  loadSubscriptions();
}

// The inbox: mail and faxes that came in ------------------------------------------------------

async function loadContacts() {
  if (!state.me || !state.link) return;
  state.contactsAsked = true;
  const reply = await send("contacts", { limit: 100 });
  if (reply === null) {
    state.contactsAsked = false; // a later visit to the tab tries again
    return;
  }
  if (!Array.isArray(reply.contacts)) return;
  // what a `contact` event told meanwhile is at least as new as the list
  const pushed = state.contacts;
  state.contacts = new Map(reply.contacts.map((c) => [String(c.contact_id), c]));
  for (const [id, c] of pushed) state.contacts.set(id, { ...state.contacts.get(id), ...c });
  renderInbox();
}

const INBOX_FILTERS = {
  open: (c) => c.state === "new" || c.state === "taken",
  new: (c) => c.state === "new",
  taken: (c) => c.state === "taken",
  done: (c) => c.state === "done",
  all: () => true,
};

function renderInbox() {
  const all = [...state.contacts.values()];
  const fresh = all.filter((c) => c.state === "new").length;
  const count = $("inbox-count");
  count.textContent = String(fresh);
  show(count, fresh > 0);
  const keep = INBOX_FILTERS[$("inbox-filter").value] ?? INBOX_FILTERS.open;
  const shown = all.filter(keep)
    .sort((a, b) => (Number(b.received_at) || 0) - (Number(a.received_at) || 0));
  show($("inbox-empty"), shown.length === 0);
  const me = state.me?.agent_id ?? "";
  $("inbox-rows").replaceChildren(...shown.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `contact-${c.contact_id}`;
    tr.dataset.id = String(c.contact_id);
    tr.dataset.state = String(c.state ?? "");
    const about = cell("", "about", "subject");
    const subject = document.createElement("strong");
    subject.textContent = String(c.subject ?? "");
    const text = document.createElement("span");
    text.className = "snippet";
    text.textContent = String(c.text ?? "") + (c.text_truncated ? t("inbox.truncated") : "");
    text.title = String(c.text ?? ""); // the whole text on hover: two lines show here
    about.append(subject, text);
    const file = cell(String(c.attachment_name || t("none")), "mono", "attachment");
    if (c.pages) file.append(` (${t("inbox.pages", { n: c.pages })})`);
    const stateCell = cell("", "", "state");
    const pill = document.createElement("span");
    pill.className = "contact-state";
    pill.dataset.state = String(c.state ?? "");
    pill.textContent = tValue("contact_state", c.state ?? "");
    stateCell.append(pill);
    if (c.agent_id) stateCell.append(t("inbox.by", { agent: c.agent_id }));
    const actions = document.createElement("td");
    actions.className = "actions-cell";
    const box = document.createElement("div");
    box.className = "actions";
    const mine = c.agent_id === me;
    const take = document.createElement("button");
    take.type = "button";
    take.className = "small";
    take.dataset.action = "take_contact";
    take.dataset.testid = "contact-take";
    take.textContent = t("inbox.take");
    take.disabled = c.state !== "new";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "small ghost";
    close.dataset.action = "close_contact";
    close.dataset.testid = "contact-close";
    close.textContent = t("inbox.close");
    close.disabled = c.state === "done" || (c.state === "taken" && !mine && !isSupervisor());
    box.append(take, close);
    actions.append(box);
    tr.append(
      cell(fmtDateTime(c.received_at), "mono", "received"),
      cell(tValue("msg.channel", c.channel ?? ""), "", "channel"),
      cell(String(c.sender ?? ""), "mono", "sender"),
      about, file, stateCell, actions,
    );
    return tr;
  }));
}

async function onContactAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("tr").dataset.id;
  const kind = button.dataset.action;
  const reply = await send(kind, { contact_id: id }, button);
  if (reply?.contact) EVENT_HANDLERS.contact(reply.contact);
  if (reply !== null) toast(t(kind === "take_contact" ? "ok.contact_taken" : "ok.contact_closed"));
  renderInbox(); // busy() re-enabled the button; the contact's state decides
}

/** Call the caller of the finished call back: the engine dials the number it knows. */
async function onCallBack(event) {
  const call = state.call;
  if (!call) return;
  const reply = await send("click_to_call", { call_id: String(call.call_id) },
    event.currentTarget);
  if (reply !== null) toast(t("ok.callback"));
}

// The agent's phone ---------------------------------------------------------------------------

/** The login reply's `phone`: a browser phone starts registering (start() takes the password
 * out of the reply: nothing here keeps it); anything else is a desk or simulated phone, named
 * if the agent gave its extension at log-in. */
function startPhone(data) {
  const phone = data.phone ?? null;
  state.phoneServer = null;
  if (phone?.kind === "browser") {
    state.phone = { kind: "browser", extension: String(phone.extension ?? "") };
    softphone.start(phone); // errors show in the panel
    data.phone = null;
  } else {
    softphone.stop();
    const desk = String(phone?.extension ?? "") || $("login-phone").value.trim();
    state.phone = desk ? { kind: "desk", extension: desk } : null;
  }
  renderPhone();
}

function stopPhone() {
  softphone.stop();
  state.phone = null;
  state.phoneServer = null;
  renderPhone();
}

function renderPhone() {
  const phone = state.phone;
  show($("phone-panel"), phone !== null);
  if (!phone) return;
  const browser = phone.kind === "browser";
  const snap = softphone.snapshot();
  $("phone-ext").textContent = phone.extension;
  show($("phone-soft"), browser);
  renderPhoneServer();
  const status = $("phone-status");
  if (!browser) {
    status.dataset.state = "desk";
    status.textContent = t("phone.desk", { ext: phone.extension });
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
  badge.textContent = t(view.registered ? "phone.pbx_on" : "phone.pbx_off");
  badge.title = view.reason;
}

/** Each error on its own line: the phone's (registration, network) first, then the media's. */
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

function renderPhoneCall(call) {
  const ringing = call?.state === "ringing";
  show($("phone-incoming"), ringing);
  show($("phone-call"), call !== null && !ringing);
  if (ringing) {
    // the console's screen pop (call_offered) knows the customer; the INVITE knows the number
    const offered = state.call?.state === "ringing" ? state.call : null;
    const customer = offered?.customer ?? null;
    // With a screen pop, its (masked) view wins: the INVITE's display name is the tier, and its
    // number is the caller's in full, which the console never shows.
    $("phone-caller-name").textContent = offered
      ? customer?.name || t("call.unknown_customer")
      : call.name || t("call.unknown_customer");
    $("phone-caller-number").textContent = offered ? offered.caller ?? "" : call.number || "";
    const tier = $("phone-caller-tier");
    const tierValue = customer?.tier ?? "";
    tier.textContent = tierValue ? tValue("tier", tierValue) : "";
    tier.dataset.tier = TIERS.includes(tierValue) ? tierValue : "unknown";
    show(tier, Boolean(tierValue));
  }
  if (!call || ringing) {
    setClock($("phone-timer"), "since", null);
    return;
  }
  const live = call.state === "in_call" || call.state === "on_hold";
  setClock($("phone-timer"), "since", live ? call.sinceMs + state.skewMs : null);
  const mute = $("phone-mute");
  mute.textContent = t(call.muted ? "phone.unmute" : "phone.mute");
  mute.setAttribute("aria-pressed", String(call.muted));
  mute.disabled = !live;
  const hold = $("phone-hold");
  hold.textContent = t(call.held ? "phone.unhold" : "phone.hold");
  hold.setAttribute("aria-pressed", String(call.held));
  hold.disabled = !live;
  for (const key of $("phone-keypad").querySelectorAll("button")) {
    key.disabled = call.state !== "in_call";
  }
  $("phone-digits").textContent = call.digits;
}

function renderPhoneDevices(snap) {
  fillDevices($("phone-mic"), snap.devices.inputs, snap.micId, "phone.mic_none");
  fillDevices($("phone-speaker"), snap.devices.outputs, snap.speakerId, "phone.speaker_default");
  const speaker = $("phone-speaker");
  speaker.disabled = !snap.canPickSpeaker;
  speaker.title = snap.canPickSpeaker ? "" : t("phone.speaker_unsupported");
}

/** A device <select>: the browser's devices, or one placeholder option when it lists none. */
function fillDevices(select, devices, current, emptyKey) {
  const options = devices.map((d) => {
    const opt = document.createElement("option");
    opt.value = d.id;
    opt.textContent = d.label;
    return opt;
  });
  if (!devices.some((d) => d.id === "default" || d.id === "")) {
    const first = document.createElement("option");
    first.value = "";
    first.textContent = t(emptyKey);
    options.unshift(first);
  }
  select.replaceChildren(...options);
  select.value = devices.some((d) => d.id === current) ? current : select.options[0].value;
}

function onPhoneLevel(level) {
  $("phone-level").value = level;
}

function wirePhone() {
  softphone = new Softphone({ onChange: renderPhone, onLevel: onPhoneLevel,
    audio: $("phone-audio") });
  window.__softphone = softphone.testHandle();
  $("phone-accept").addEventListener("click", () => softphone.accept());
  $("phone-reject").addEventListener("click", () => softphone.reject());
  $("phone-hangup").addEventListener("click", () => softphone.hangup());
  $("phone-mute").addEventListener("click", () => softphone.toggleMute());
  $("phone-hold").addEventListener("click", () => softphone.toggleHold());
  $("phone-keypad").addEventListener("click", (event) => {
    const key = event.target.closest("button[data-digit]");
    if (key) softphone.sendDigit(key.dataset.digit);
  });
  $("phone-mic").addEventListener("change", (e) => softphone.setMicrophone(e.target.value));
  $("phone-speaker").addEventListener("change", (e) => softphone.setSpeaker(e.target.value));
  navigator.mediaDevices?.addEventListener?.("devicechange", () => {
    if (state.phone?.kind === "browser") softphone.listDevices();
  });
  // Closing the tab unregisters, so the PBX does not ring a phone that is gone. Not during a
  // call: stopping would hang it up (BYE) and the caller would be lost; left alone, the socket
  // closes with the page, the PBX drops the registration and the engine puts the caller back
  // in the queue (docs/phones.md).
  window.addEventListener("pagehide", () => {
    if (!["ringing", "connecting", "in_call", "on_hold"].includes(softphone.state)) {
      softphone.stop();
    }
  });
}

// -- wiring ---------------------------------------------------------------------------------

function onLanguageChange(event) {
  setLang(event.target.value);
  applyTranslations();
  renderAll();
  if (state.tab) selectTab(state.tab);
}

function wire() {
  $("login-form").addEventListener("submit", onLoginSubmit);
  $("lang-switch").addEventListener("change", onLanguageChange);
  $("btn-logout").addEventListener("click", onLogout);
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }
  $("btn-ready").addEventListener("click", (e) => setSeatState("ready", e.currentTarget));
  $("btn-not-ready").addEventListener("click", (e) => setSeatState("not_ready", e.currentTarget));

  $("btn-hangup").addEventListener("click", (e) => callControl("hangup", {}, e.currentTarget));
  $("btn-hold").addEventListener("click", (e) => callControl("hold", {}, e.currentTarget,
    () => { state.call.state = "held"; }));
  $("btn-resume").addEventListener("click", (e) => callControl("resume", {}, e.currentTarget,
    () => { state.call.state = "talking"; }));
  $("btn-record-pause").addEventListener("click", (e) => callControl("recording",
    { action: "pause" }, e.currentTarget, () => { state.call.recording = "paused"; }));
  $("btn-record-resume").addEventListener("click", (e) => callControl("recording",
    { action: "resume" }, e.currentTarget, () => { state.call.recording = "on"; }));
  $("btn-transfer").addEventListener("click", () => openTargetDialog("transfer"));
  $("btn-consult").addEventListener("click", () => openTargetDialog("consult"));
  $("btn-conference").addEventListener("click", () => openTargetDialog("conference"));
  $("btn-consult-complete").addEventListener("click", (e) => callControl("consult_complete",
    {}, e.currentTarget, () => { state.call.consult = null; }));
  $("btn-consult-cancel").addEventListener("click", (e) => callControl("consult_cancel",
    {}, e.currentTarget, () => { state.call.consult = null; }));

  $("target-form").addEventListener("submit", onTargetSubmit);
  $("target-kind").addEventListener("change", fillTargetOptions);
  $("target-cancel").addEventListener("click", () => $("target-dialog").close());
  $("wrapup-form").addEventListener("submit", onWrapUpSubmit);
  $("btn-close-call").addEventListener("click", () => {
    state.call = null;
    renderCall();
  });
  $("btn-callback").addEventListener("click", onCallBack);
  $("task-use-call").addEventListener("change", () => renderTaskLink(state.call));
  $("ctc-form").addEventListener("submit", onClickToCall);
  $("task-form").addEventListener("submit", onCreateTask);
  $("msg-form").addEventListener("submit", onSendMessage);
  $("msg-channel").addEventListener("change", renderMessageForm);
  $("msg-template").addEventListener("change", renderMessageForm);
  $("deliveries-box").addEventListener("toggle", loadDeliveries);
  $("dlv-refresh").addEventListener("click", loadDeliveries);
  $("subs-box").addEventListener("toggle", loadSubscriptions);
  $("sub-form").addEventListener("submit", onSubscribe);
  $("sub-kind").addEventListener("change", renderSubscribeForm);
  $("sub-channel").addEventListener("change", renderSubscribeForm);
  $("sub-rows").addEventListener("click", onSubscriptionAction);
  $("inbox-filter").addEventListener("change", renderInbox);
  $("inbox-refresh").addEventListener("click", loadContacts);
  $("inbox-rows").addEventListener("click", onContactAction);
  $("wb-state-filter").addEventListener("change", renderWallboard);
  $("wb-state-counts").addEventListener("click", (event) => {
    const pill = event.target.closest("button[data-state]");
    if (!pill) return;
    const filter = $("wb-state-filter");
    filter.value = filter.value === pill.dataset.state ? "all" : pill.dataset.state;
    renderWallboard();
  });
  $("wb-seat-rows").addEventListener("click", onSeatAction);
  $("toast").addEventListener("click", () => show($("toast"), false));
}

function main() {
  $("lang-switch").value = getLang();
  applyTranslations();
  wire();
  wirePhone();
  renderAll();
  window.setInterval(renderClocks, 1000);
  $("login-agent").focus();
}

main();
