// Where the feature modules plug in: the server's events, the session's start and end, and the
// page-wide "render everything" and "render the controls".
//
// Each feature module's wire() registers its own handlers and hooks here; app.js calls the
// wire()s in a fixed order, and hooks and renderers run in that order. Nothing here knows a
// feature: a new event is one more entry in its module's handleEvents({...}) table. A module
// that reacts to an event another module owns (the ring alert to `call_offered`) observes it
// with onEvent(name, fn): observers run after the owner.

/** A pushed event's `data` (untrusted: handlers check what they use). */
/** @typedef {Record<string, any>} EventData */
/** @typedef {(data: EventData) => void} EventHandler */

/**
 * The login reply: who, their seat, the queues, the reasons they may pick, the call under way
 * (after a reload) and their phone (a browser phone's credentials, used once and dropped).
 * @typedef {object} LoginReply
 * @property {import("./state.js").Agent} [agent]
 * @property {import("./state.js").SeatData} [seat]
 * @property {Record<string, any> | null} [call]
 * @property {import("./state.js").QueueFigures[]} [queues]
 * @property {string[]} [reasons]
 * @property {Record<string, any> | null} [phone]
 * @property {unknown} [fanout]   where this session's pushes to many consoles come from
 *   (js/fanout.js)
 */

/**
 * What a feature module does as a session starts and ends.
 * @typedef {object} SessionHooks
 * @property {(reply: LoginReply) => void} [start]   take your part of the login reply (state
 *   only: the page renders everything right after)
 * @property {() => void} [started]   the session shows: ask the server for what you need
 * @property {() => void} [end]   back to the log-in form: forget the session
 */

/** The server's events, by name: one owner (module) per name. @type {Map<string, EventHandler>} */
const EVENT_HANDLERS = new Map();
/** Observers of events, by name: any number, run after the owner. @type {Map<string, EventHandler[]>} */
const EVENT_OBSERVERS = new Map();
/** @type {SessionHooks[]} */
const sessionHooks = [];
/** @type {(() => void)[]} */
const renderers = [];
/** @type {(() => void)[]} */
const controlRenderers = [];

/**
 * Handle these server events (`{"type": "event", "event": <name>, "data": {...}}`). One module
 * owns each event name: a second handler for a name throws.
 * @param {Record<string, EventHandler>} handlers
 */
export function handleEvents(handlers) {
  for (const [name, handler] of Object.entries(handlers)) {
    if (EVENT_HANDLERS.has(name)) throw new Error(`the "${name}" event has a handler already`);
    EVENT_HANDLERS.set(name, handler);
  }
}

/**
 * Also run `observer` on the server's `name` events, after the event's owner has applied it
 * (so the observer sees the page's state as it now is). Observers do not own the event: they
 * react to it (a ring alert, a notification). Any number per name, run in the order added; one
 * that throws does not stop the others.
 * @param {string} name
 * @param {EventHandler} observer
 */
export function onEvent(name, observer) {
  const list = EVENT_OBSERVERS.get(name) ?? [];
  list.push(observer);
  EVENT_OBSERVERS.set(name, list);
}

/**
 * Deliver a server event to its handler, then to its observers; events nobody handles are
 * ignored.
 * @param {string} name
 * @param {EventData} data
 */
export function dispatchEvent(name, data) {
  EVENT_HANDLERS.get(name)?.(data);
  for (const observer of EVENT_OBSERVERS.get(name) ?? []) {
    try {
      observer(data);
    } catch (err) {
      console.error(`an observer of the "${name}" event failed`, err);
    }
  }
}

/** @param {SessionHooks} hooks */
export function onSession(hooks) {
  sessionHooks.push(hooks);
}

/** @param {LoginReply} reply */
export function sessionStarting(reply) {
  for (const hooks of sessionHooks) hooks.start?.(reply);
}

export function sessionStarted() {
  for (const hooks of sessionHooks) hooks.started?.();
}

export function sessionEnded() {
  for (const hooks of sessionHooks) hooks.end?.();
}

/** Draw this on renderAll() (log-in, language switch). @param {() => void} render */
export function onRender(render) {
  renderers.push(render);
}

export function renderAll() {
  for (const render of renderers) render();
}

/** Draw this on renderControls(): which buttons make sense now. @param {() => void} render */
export function onControls(render) {
  controlRenderers.push(render);
}

/** The buttons' enabled state from the state (after a request, a seat change...). */
export function renderControls() {
  for (const render of controlRenderers) render();
}
