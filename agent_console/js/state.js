// The page's shared memory: every fact more than one module reads, each with one owner.
//
// Only the owner named beside a fact assigns it; other modules read it. A module's private
// bookkeeping (timers, "asked once already" flags, the softphone object) stays in that module.
// The render*() functions of each module draw these facts, so a language switch is "apply the
// texts, render everything again" (registry.js renderAll).

import { AGENT_REASONS } from "./protocol.js";

/** @typedef {import("../link.js").Link} Link */

/**
 * Who is logged in (the login reply's `agent`).
 * @typedef {object} Agent
 * @property {string} agent_id
 * @property {string} [name]
 * @property {string} role   a protocol Role ("agent" | "supervisor" | "admin")
 */

/**
 * A seat as the server sends it: the login reply's `seat`, the `seat` event, a wallboard row.
 * @typedef {object} SeatData
 * @property {string} [agent_id]
 * @property {string} [name]
 * @property {string} [state]   a protocol SeatState
 * @property {string} [reason]
 * @property {number | string} [since]   the server's unix seconds
 * @property {string} [call_id]   "" when none
 * @property {string} [caller]   a wallboard row's: the caller's masked number ("" when none)
 * @property {number | null} [talking_since]   a wallboard row's: when the call was answered
 *   (the server's unix seconds; null while it rings)
 */

/**
 * A queue's figures (the `queues` and `wallboard` events' QueueFigures).
 * @typedef {object} QueueFigures
 * @property {string} name
 * @property {number} [waiting]
 * @property {number} [longest_wait_s]
 * @property {number} [answered]
 * @property {number} [abandoned]
 * @property {number | null} [service_level]   0..1
 * @property {number | null} [asa_s]
 * @property {number | null} [aht_s]
 * @property {number} [target_s]
 * @property {number} [target_share]   0..1
 */

/**
 * The wallboard as last received, with the time it came (ms, the page's clock).
 * @typedef {object} Wallboard
 * @property {QueueFigures[]} [queues]
 * @property {SeatData[]} [seats]
 * @property {number} atMs
 */

/**
 * The customer of a screen pop (the full account never reaches the page).
 * @typedef {object} Customer
 * @property {string} [name]
 * @property {string} [tier]
 * @property {string} [account_masked]
 * @property {{currency?: string, cash?: string | number, market_value?: string | number,
 *   total?: string | number} | null} [balance_summary]
 */

/**
 * A consultation under way: its state ("ringing" | "talking") and whom it goes to.
 * @typedef {object} Consult
 * @property {string} state
 * @property {string | {kind: string, value: string}} target
 */

/** @typedef {"ringing" | "talking" | "held" | "wrap_up"} CallState */

/**
 * The call card: `call_offered` data plus what the page knows of the call since. Written by
 * call.js; the customer panels' lists and their loading flags by customer.js.
 * @typedef {object} Call
 * @property {string} call_id
 * @property {string} [queue]
 * @property {number} [waited_s]
 * @property {Customer | null} [customer]
 * @property {string} [caller]   masked
 * @property {{path?: string | string[], path_zh?: string, path_en?: string,
 *   last_failure?: string, lang?: string}} [ivr]   path_zh/_en: the path in the flows' titles
 * @property {string} [manager]   the caller's own manager (agent id), if any
 * @property {string} [consulted_by]   the colleague consulting this agent on the call
 * @property {{at?: number | string, kind?: string, summary?: string}[]} [recent_contacts]
 * @property {CallState} state
 * @property {number} sinceMs   what the call's timer counts from (server clock, ms)
 * @property {"on" | "paused" | "off"} recording
 * @property {Consult | null} consult
 * @property {string[]} conference   who joined the call
 * @property {number | null} wrapDeadlineMs
 * @property {boolean} saved   the wrap-up was saved
 * @property {boolean} [dispositionRequired]   the seat stays in wrap-up until it is saved
 * @property {boolean} [overdue]   the wrap-up time is over and it is not saved
 * @property {boolean} [customer_pending]   the back office's part of the pop is on its way
 * @property {Delivery[]} [deliveries]   (customer.js)
 * @property {boolean} [deliveriesLoading]   (customer.js)
 * @property {boolean} [deliveriesAgain]   (customer.js) one more request after this one
 * @property {Subscription[]} [subscriptions]   (customer.js)
 */

/**
 * One of the customer's outbox messages (the `deliveries` reply, the `delivery` event).
 * @typedef {object} Delivery
 * @property {string | number} message_id
 * @property {string} [state]
 * @property {string} [reason]
 * @property {string} [kind]
 * @property {string} [template]
 * @property {string} [ref]
 * @property {string} [channel]
 * @property {string} [to]
 * @property {number | string} [created_at]
 * @property {number} [next_attempt_at]
 */

/**
 * One of the customer's financial-secretary subscriptions.
 * @typedef {object} Subscription
 * @property {number} subscription_id
 * @property {string} [kind]
 * @property {string} [channel]
 * @property {string} [code]
 * @property {string} [price]
 * @property {string} [fax]
 * @property {string} [quiet_start]
 * @property {string} [quiet_end]
 */

/**
 * An inbound contact, mail or fax (the `contacts` reply, the `contact` event).
 * @typedef {object} Contact
 * @property {string} contact_id
 * @property {string} [state]   "new" | "taken" | "done"
 * @property {string} [channel]
 * @property {string} [sender]
 * @property {string} [subject]
 * @property {string} [text]
 * @property {boolean} [text_truncated]
 * @property {string} [attachment_name]
 * @property {number} [pages]
 * @property {string} [account_masked]
 * @property {number | string} [received_at]
 * @property {string} [agent_id]
 */

/**
 * The agent's phone: a browser softphone, or a desk phone named by its extension.
 * @typedef {object} Phone
 * @property {"browser" | "desk"} kind
 * @property {string} extension
 */

/**
 * The PBX's view of the phone (the `phone` event).
 * @typedef {object} PhoneServer
 * @property {string} extension
 * @property {boolean} registered
 * @property {string} reason
 */

export const state = {
  // -- session.js: the link and who is logged in
  /** @type {Link | null} */
  link: null,
  /** @type {Agent | null} once logged in */
  me: null,

  // -- clock.js
  /** the server's clock minus ours, ms (clock.js now()) */
  skewMs: 0,

  // -- tabs.js
  /** the tab shown ("desk" | "inbox" | "wallboard") */
  tab: "desk",

  // -- seat.js: the agent's seat
  /** @type {SeatData | null} */
  seat: null,
  /** the not-ready reasons offered (the login reply's; the protocol's as a fallback)
   * @type {readonly string[]} */
  reasons: AGENT_REASONS,

  // -- queues.js
  /** @type {QueueFigures[]} */
  queues: [],

  // -- call.js: the call card
  /** @type {Call | null} */
  call: null,

  // -- wallboard.js
  /** @type {Wallboard | null} */
  wallboard: null,

  // -- inbox.js: inbound contacts by contact_id
  /** @type {Map<string, Contact>} */
  contacts: new Map(),

  // -- phone.js: the agent's phone
  /** @type {Phone | null} */
  phone: null,
  /** @type {PhoneServer | null} */
  phoneServer: null,
};

/** Whether the one logged in may see the wallboard and force or spy on seats. */
export function isSupervisor() {
  return state.me !== null && (state.me.role === "supervisor" || state.me.role === "admin");
}
