// The second socket: pushes meant for many consoles at once (the wallboard, the queues'
// figures) come from the fan-out relay, a process of its own beside the engine, not over the
// console's /ws (see callcenter/fanout/). With a thousand consoles open, the engine then writes
// each such push once instead of once per console.
//
// The login reply names the relay's port and path (with this session's token); the socket goes
// to the page's own host. It only receives: each message is an event as /ws sends them,
// delivered the same way (dispatchEvent). If it drops while the session lasts, it reconnects
// with backoff, and the relay sends the latest of each kind again at once. The session's end
// (log-out, a lost /ws) closes it. A login reply without `fanout` (an engine that writes these
// pushes itself) opens nothing. While the session lasts and this socket is down, the header says
// so (#fanout-status): the wallboard and the queue figures on screen may be stale.

import { t } from "../i18n.js";
import { dispatchEvent, onRender, onSession } from "./registry.js";
import { $, show } from "./ui.js";

const BACKOFF_MAX_MS = 15000;
/** the relay's close when the console session it served is over: not worth a reconnect */
const CLOSE_SESSION_ENDED = 4000;

/** @typedef {{port: number, path: string}} FanoutInfo */

/** @type {FanoutInfo | null} */
let info = null;
/** @type {WebSocket | null} */
let socket = null;
let retryTimer = 0;
let attempt = 0;
/** the socket was lost (or never opened) and is not back yet */
let lost = false;

/** The relay's URL: the page's host, the relay's port and path.
 * @param {FanoutInfo} where @param {{protocol: string, hostname: string}} [loc] */
export function fanoutUrl(where, loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.hostname}:${where.port}${where.path}`;
}

/** @param {unknown} value @returns {value is FanoutInfo} */
function isInfo(value) {
  if (value === null || typeof value !== "object") return false;
  const v = /** @type {Record<string, unknown>} */ (value);
  return Number.isInteger(v.port) && typeof v.path === "string" && v.path.startsWith("/");
}

/** Say in the header whether the figures on screen are live (hidden when they are). */
function renderStatus() {
  const el = $("fanout-status");
  const down = info !== null && lost;
  el.textContent = t("conn.fanout_down");
  show(el, down);
}

/** @param {unknown} raw */
function receive(raw) {
  let msg;
  try {
    msg = JSON.parse(String(raw));
  } catch {
    return;
  }
  if (msg === null || typeof msg !== "object" || msg.type !== "event") return;
  const data = msg.data;
  const isObject = data !== null && typeof data === "object" && !Array.isArray(data);
  dispatchEvent(String(msg.event ?? ""), isObject ? data : {});
}

function open() {
  if (!info) return;
  const ws = new WebSocket(fanoutUrl(info));
  socket = ws;
  ws.addEventListener("open", () => {
    lost = false;
    renderStatus();
  });
  ws.addEventListener("message", (ev) => {
    if (socket !== ws) return;
    // the backoff starts over only once the relay has sent something: a socket closed right
    // after it opened (too slow, too many) must not be reopened at once, again and again
    attempt = 0;
    receive(ev.data);
  });
  ws.addEventListener("close", (ev) => {
    if (socket !== ws) return;
    socket = null;
    lost = info !== null && ev.code !== CLOSE_SESSION_ENDED;
    renderStatus();
    if (!info || ev.code === CLOSE_SESSION_ENDED) return;
    const base = Math.min(BACKOFF_MAX_MS, 500 * 2 ** attempt);
    attempt += 1;
    retryTimer = window.setTimeout(open, base / 2 + Math.random() * (base / 2));
  });
}

function close() {
  info = null;
  lost = false;
  window.clearTimeout(retryTimer);
  const ws = socket;
  socket = null;
  if (ws) ws.close(1000);
  renderStatus();
}

export function wire() {
  onSession({
    start(reply) {
      close();
      info = isInfo(reply.fanout) ? reply.fanout : null;
    },
    started() {
      attempt = 0;
      open();
    },
    end() {
      close();
    },
  });
  onRender(renderStatus);
}
