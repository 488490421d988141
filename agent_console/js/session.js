// The session: the websocket link, log in, log out, reconnect, keepalive, and the request
// helpers every feature uses. Owns state.link and state.me.
//
// - The password lives only in the form field until the login request is sent; the field is
//   cleared at once and nothing keeps it.
// - A lost connection goes back to the log-in form and reconnects with backoff; the agent logs
//   in again (the password was never kept, so the page cannot do it alone).
// - Feature modules take their part of the login reply and forget their part at the end through
//   registry.js's session hooks: this module knows no feature.

import { getLang, t, tValue } from "../i18n.js";
import { Link, LinkError, consoleUrl } from "../link.js";
import { PING_TIMEOUT_MS, renderClocks, syncClock } from "./clock.js";
import { AGENT_ID } from "./protocol.js";
import {
  dispatchEvent, handleEvents, onRender, renderAll, renderControls, sessionEnded, sessionStarted,
  sessionStarting,
} from "./registry.js";
import { state } from "./state.js";
import { selectTab } from "./tabs.js";
import { $, errorText, fieldError, show, toastError } from "./ui.js";

const KEEPALIVE_MS = 25000;
const BACKOFF_MAX_MS = 30000;

/** @typedef {"online" | "offline" | "reconnecting"} ConnState */

/** @type {ConnState} */
let conn = "offline";
/** a logout is under way: the socket closing is its success, not a lost connection */
let loggingOut = false;
let keepalive = 0;
let reconnectTimer = 0;
let reconnectAttempt = 0;

// -- requests ---------------------------------------------------------------------------------

/**
 * Run a request with its button disabled, so a double click does not send it twice.
 * @template R
 * @param {HTMLButtonElement | null} button
 * @param {() => Promise<R>} work
 * @returns {Promise<R>}
 */
async function busy(button, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } finally {
    if (button) button.disabled = false;
    renderControls(); // the right enabled/disabled state comes from the state, not the button
  }
}

/**
 * Send a request; errors become a toast and resolve to null.
 * @param {string} type
 * @param {Record<string, unknown>} [fields]
 * @param {HTMLButtonElement | null} [button]   disabled while the request is under way
 * @returns {Promise<Record<string, any> | null>}
 */
export async function send(type, fields = {}, button = null) {
  try {
    return await request(type, fields, button);
  } catch (err) {
    toastError(err);
    return null;
  }
}

/**
 * Send a request; a refusal is thrown (a LinkError) for the caller to explain.
 * @param {string} type
 * @param {Record<string, unknown>} [fields]
 * @param {HTMLButtonElement | null} [button]
 * @returns {Promise<Record<string, any>>}
 */
export async function request(type, fields = {}, button = null) {
  const link = state.link;
  if (!link) throw new LinkError("closed");
  return busy(button, () => link.request(type, fields));
}

/** The button that submitted a form, if it was a button. @param {SubmitEvent} event */
export function submitter(event) {
  return event.submitter instanceof HTMLButtonElement ? event.submitter : null;
}

/** @param {unknown} err */
function codeOf(err) {
  return err instanceof LinkError ? err.code : "";
}

// -- connection, log in, log out --------------------------------------------------------------

function newLink() {
  const link = new Link({
    url: consoleUrl(),
    onEvent: dispatchEvent,
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
  window.clearTimeout(reconnectTimer);
  const link = state.link ?? newLink();
  state.link = link;
  await link.open();
  setConn("online");
  return link;
}

/** @param {ConnState} kind */
function setConn(kind) {
  conn = kind;
  const el = $("conn-status");
  el.dataset.conn = kind;
  el.textContent = t(`conn.${kind}`);
  // At the log-in form "offline" is normal (the socket opens on submit): say nothing then.
  show(el, state.me !== null || kind === "reconnecting");
}

/** @param {SubmitEvent} event */
async function onLoginSubmit(event) {
  event.preventDefault();
  const agentInput = $("login-agent", HTMLInputElement);
  const passwordInput = $("login-password", HTMLInputElement);
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
  const submit = $("login-submit", HTMLButtonElement);
  submit.disabled = true;
  submit.textContent = t("login.busy");
  try {
    const link = await ensureLink();
    const pending = link.request("login", { agent_id: agentId, password, lang: getLang() });
    password = ""; // the request holds the only copy until it is sent
    const session = await pending;
    const phone = $("login-phone", HTMLInputElement).value.trim();
    if (phone) {
      // Hot-desking: the ACD rings this phone until the agent logs out.
      await link.request("use_phone", { phone });
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

/** @param {import("./registry.js").LoginReply} data */
function startSession(data) {
  state.me = data.agent ?? null;
  reconnectAttempt = 0;
  sessionStarting(data);
  show($("view-login"), false);
  show($("view-work"), true);
  setConn("online");
  selectTab(state.tab);
  renderAll();
  startKeepalive();
  sessionStarted();
  // Correct the timers for the PC's clock; if this ping fails, the keepalive's next one will.
  if (state.link) syncClock(state.link).then(renderClocks, () => {});
}

/**
 * Back to the log-in form, forgetting everything about the session.
 * @param {string} noticeKey
 * @param {Record<string, string>} [params]
 */
function endSession(noticeKey, params = {}) {
  stopKeepalive();
  state.me = null;
  sessionEnded();
  show($("view-work"), false);
  show($("view-login"), true);
  setNotice(noticeKey, params);
  setConn(conn);
  const passwordInput = $("login-password", HTMLInputElement);
  passwordInput.value = "";
  const agentInput = $("login-agent", HTMLInputElement);
  (agentInput.value ? passwordInput : agentInput).focus();
}

/** @param {string} key @param {Record<string, string>} [params] */
function setNotice(key, params = {}) {
  const el = $("login-notice");
  el.textContent = key ? t(key, params) : "";
  show(el, Boolean(key));
}

async function onLogout() {
  if (!state.link) return;
  loggingOut = true;
  const button = $("btn-logout", HTMLButtonElement);
  button.disabled = true;
  try {
    await state.link.request("set_state", { state: "logged_out", reason: "" });
  } catch (err) {
    // The server may end the session (and the socket) as it logs us out: that is success.
    if (codeOf(err) !== "closed") {
      loggingOut = false;
      toastError(err); // refused, e.g. on a call: stay logged in
      return;
    }
  } finally {
    button.disabled = false;
  }
  finishLogout("login.logged_out");
}

/**
 * Close the link on purpose and go back to the log-in form.
 * @param {string} noticeKey
 * @param {Record<string, string>} [params]
 */
function finishLogout(noticeKey, params = {}) {
  const link = state.link;
  state.link = null;
  loggingOut = false;
  link?.close();
  setConn("offline");
  endSession(noticeKey, params);
}

/** @param {{byUs: boolean}} info */
function handleClose({ byUs }) {
  state.link = null;
  if (loggingOut) return finishLogout("login.logged_out");
  setConn("offline");
  if (byUs || state.me === null) return; // at the login form, the next submit reconnects
  endSession("login.lost");
  scheduleReconnect();
}

/** Reconnect with exponential backoff and jitter; once the server answers, ask the agent to
 * log in again. */
function scheduleReconnect() {
  const base = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** reconnectAttempt);
  const delay = base / 2 + Math.random() * (base / 2);
  reconnectAttempt += 1;
  setConn("reconnecting");
  window.clearTimeout(reconnectTimer);
  reconnectTimer = window.setTimeout(async () => {
    try {
      await ensureLink();
      reconnectAttempt = 0;
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
  keepalive = window.setInterval(async () => {
    const link = state.link;
    if (!link) return;
    try {
      await syncClock(link, PING_TIMEOUT_MS);
    } catch (err) {
      if (codeOf(err) === "timeout") link.abort();
    }
  }, KEEPALIVE_MS);
}

function stopKeepalive() {
  window.clearInterval(keepalive);
  keepalive = 0;
}

export function wire() {
  handleEvents({
    session_ended(data) {
      // The server closes the socket next; this is a deliberate end, not a lost connection.
      if (loggingOut) return finishLogout("login.logged_out");
      return finishLogout("login.session_ended", { reason: tValue("reason", data.reason ?? "") });
    },
  });
  onRender(() => setConn(conn));
  $("login-form").addEventListener("submit", onLoginSubmit);
  // index.html ships the button disabled: no login before this handler is there
  $("login-submit", HTMLButtonElement).disabled = false;
  $("btn-logout").addEventListener("click", onLogout);
}
