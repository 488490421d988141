// The websocket link to the console server: open, send requests, match replies, deliver events.
//
// Only I/O lives here (as in websockets' asyncio layer): the page decides what messages mean.
// Every request carries an incrementing id; its reply (result or error) settles that request's
// promise. If the socket closes, every pending request fails with code "closed", so no caller
// waits for a reply that can no longer come.

import { PROTOCOL_VERSION } from "./js/protocol.js";

export { PROTOCOL_VERSION };

/** A refused or failed request: `code` is a protocol ErrorCode, or one of ours
 * ("timeout", "closed", "offline"). `message` is the server's text, if any. */
export class LinkError extends Error {
  /** @param {string} code @param {string} [message] */
  constructor(code, message = "") {
    super(message || code);
    this.code = code;
    this.serverMessage = message;
  }
}

/** The console's websocket URL: same host as the page, /ws (the CSP allows only that).
 * @param {{protocol: string, host: string}} [loc] */
export function consoleUrl(loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}

export class Link {
  /**
   * @param {object} opts
   * @param {string} opts.url
   * @param {(name: string, data: Record<string, any>) => void} opts.onEvent   a pushed event
   * @param {(err: LinkError) => void} opts.onStrayError   an error matching no request
   * @param {(info: {byUs: boolean}) => void} opts.onClose   the socket is gone
   */
  constructor({ url, onEvent, onStrayError, onClose }) {
    this.url = url;
    this.onEvent = onEvent;
    this.onStrayError = onStrayError;
    this.onClose = onClose;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.nextId = 0;
    /** requests waiting for their reply, by id
     * @type {Map<string, {resolve: (data: Record<string, any>) => void,
     *   reject: (err: LinkError) => void, timer: number}>} */
    this.pending = new Map();
    this.closedByUs = false;
    /** @type {Promise<void> | null} */
    this.opening = null;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Open the socket; resolves once it is open, rejects (code "offline") if it cannot be.
   * A second call while one attempt is under way shares that attempt. */
  open() {
    if (this.isOpen) return Promise.resolve();
    if (this.opening) return this.opening;
    this.closedByUs = false;
    /** @type {Promise<void>} */
    const opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      ws.addEventListener("open", () => {
        opened = true;
        resolve();
      });
      ws.addEventListener("message", (ev) => {
        if (this.ws === ws) this.receive(ev.data);
      });
      ws.addEventListener("close", () => {
        // A stale socket (replaced by a newer one) must not disturb the current one.
        if (this.ws !== ws) return;
        this.ws = null;
        this.failPending(new LinkError("closed"));
        if (opened) this.onClose({ byUs: this.closedByUs });
        else reject(new LinkError("offline"));
      });
    });
    this.opening = opening;
    const clear = () => {
      this.opening = null;
    };
    opening.then(clear, clear);
    return opening;
  }

  /**
   * Send a request; resolves with the reply's data or rejects with a LinkError.
   * @param {string} type
   * @param {Record<string, unknown>} [fields]
   * @param {{timeoutMs?: number}} [opts]
   * @returns {Promise<Record<string, any>>}
   */
  request(type, fields = {}, { timeoutMs = 15000 } = {}) {
    const ws = this.ws;
    if (!ws || !this.isOpen) return Promise.reject(new LinkError("closed"));
    this.nextId += 1;
    const id = String(this.nextId);
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new LinkError("timeout"));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id, type, ...fields }));
    });
  }

  /** Close on purpose (log out): no reconnecting afterwards. */
  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close(1000);
  }

  /** Drop a link that looks dead (a ping went unanswered): treated like a lost connection. */
  abort() {
    this.closedByUs = false;
    if (this.ws) this.ws.close(4000, "no reply");
  }

  /** @param {unknown} raw */
  receive(raw) {
    let msg;
    try {
      msg = JSON.parse(String(raw));
    } catch {
      return; // not ours to interpret; the server never sends non-JSON
    }
    if (msg === null || typeof msg !== "object") return;
    if (msg.type === "event") {
      this.onEvent(String(msg.event ?? ""), isObject(msg.data) ? msg.data : {});
      return;
    }
    if (msg.type !== "result" && msg.type !== "error") return;
    const waiter = this.pending.get(String(msg.id ?? ""));
    if (msg.type === "error") {
      const err = new LinkError(String(msg.code ?? "internal"), String(msg.message ?? ""));
      if (waiter) this.settle(msg.id, () => waiter.reject(err));
      else this.onStrayError(err);
      return;
    }
    if (waiter) this.settle(msg.id, () => waiter.resolve(isObject(msg.data) ? msg.data : {}));
  }

  /** @param {unknown} id @param {() => void} how */
  settle(id, how) {
    const waiter = this.pending.get(String(id));
    if (waiter) window.clearTimeout(waiter.timer);
    this.pending.delete(String(id));
    how();
  }

  /** @param {LinkError} err */
  failPending(err) {
    for (const waiter of this.pending.values()) {
      window.clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    this.pending.clear();
  }
}

/** @param {unknown} value @returns {value is Record<string, any>} */
function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
