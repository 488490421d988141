// The websocket link to the console server: open, send requests, match replies, deliver events.
//
// Only I/O lives here (as in websockets' asyncio layer): the page decides what messages mean.
// Every request carries an incrementing id; its reply (result or error) settles that request's
// promise. If the socket closes, every pending request fails with code "closed", so no caller
// waits for a reply that can no longer come.

export const PROTOCOL_VERSION = 1;

/** A refused or failed request: `code` is a protocol ErrorCode, or one of ours
 * ("timeout", "closed", "offline"). `message` is the server's text, if any. */
export class LinkError extends Error {
  constructor(code, message = "") {
    super(message || code);
    this.code = code;
    this.serverMessage = message;
  }
}

/** The console's websocket URL: same host as the page, /ws (the CSP allows only that). */
export function consoleUrl(loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}

export class Link {
  /**
   * @param {object} opts
   * @param {string} opts.url
   * @param {(name: string, data: object) => void} opts.onEvent   a pushed event
   * @param {(err: LinkError) => void} opts.onStrayError   an error matching no request
   * @param {(info: {byUs: boolean}) => void} opts.onClose   the socket is gone
   */
  constructor({ url, onEvent, onStrayError, onClose }) {
    this.url = url;
    this.onEvent = onEvent;
    this.onStrayError = onStrayError;
    this.onClose = onClose;
    this.ws = null;
    this.nextId = 0;
    this.pending = new Map();
    this.closedByUs = false;
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
    this.opening = new Promise((resolve, reject) => {
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
    const clear = () => {
      this.opening = null;
    };
    this.opening.then(clear, clear);
    return this.opening;
  }

  /** Send a request; resolves with the reply's data or rejects with a LinkError. */
  request(type, fields = {}, { timeoutMs = 15000 } = {}) {
    if (!this.isOpen) return Promise.reject(new LinkError("closed"));
    this.nextId += 1;
    const id = String(this.nextId);
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new LinkError("timeout"));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id, type, ...fields }));
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

  receive(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
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

  settle(id, how) {
    const waiter = this.pending.get(String(id));
    window.clearTimeout(waiter.timer);
    this.pending.delete(String(id));
    how();
  }

  failPending(err) {
    for (const waiter of this.pending.values()) {
      window.clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    this.pending.clear();
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
