// The console protocol's constants, GENERATED from the engine's Python models by
// callcenter/seats/console_constants.py: do not edit. After changing a source named below, run
//   .venv/bin/python -m callcenter.seats.console_constants
// (tests/unit/test_console_constants.py fails while this file is out of date).
//
// Lists are frozen arrays with a JSDoc union type of their words; check a value from the server
// with isOneOf() before treating it as one. Patterns are anchored JavaScript regular expressions
// meaning what the engine's do; those of optional fields match "" too, as on the engine.

/** The protocol version every message carries (seats/protocol.py). */
export const PROTOCOL_VERSION = 1;

/**
 * @typedef {(
 *   | "logged_out"
 *   | "ready"
 *   | "not_ready"
 *   | "ringing"
 *   | "on_call"
 *   | "on_hold"
 *   | "wrap_up"
 * )} SeatState
 */
/** An agent seat's states (acd/seat.py SeatState), in the machine's order.
 * @type {readonly SeatState[]}
 */
export const SEAT_STATES = Object.freeze([
  "logged_out",
  "ready",
  "not_ready",
  "ringing",
  "on_call",
  "on_hold",
  "wrap_up",
]);

/** @typedef {"break" | "meal" | "training" | "meeting" | "after-call"} AgentReason */
/** The not-ready reasons an agent may pick (seats/backend.py AGENT_REASONS: state.py
 * DEFAULT_REASONS less IMPLIED_REASONS and SYSTEM_REASONS). The login reply's `reasons` is the
 * authority; this is the page's fallback.
 * @type {readonly AgentReason[]}
 */
export const AGENT_REASONS = Object.freeze(["break", "meal", "training", "meeting", "after-call"]);

/**
 * @typedef {(
 *   | "break"
 *   | "meal"
 *   | "training"
 *   | "meeting"
 *   | "after-call"
 *   | "no answer"
 *   | "login"
 *   | "rejected"
 *   | "forced"
 *   | "console gone"
 *   | "phone unregistered"
 * )} SeatReason
 */
/** Every reason a seat may show (state.py DEFAULT_REASONS and SYSTEM_REASONS).
 * @type {readonly SeatReason[]}
 */
export const SEAT_REASONS = Object.freeze([
  "break",
  "meal",
  "training",
  "meeting",
  "after-call",
  "no answer",
  "login",
  "rejected",
  "forced",
  "console gone",
  "phone unregistered",
]);

/**
 * @typedef {(
 *   | "resolved"
 *   | "follow_up"
 *   | "complaint"
 *   | "order_help"
 *   | "info"
 *   | "other"
 * )} Disposition
 */
/** A wrap-up's outcomes (seats/protocol.py WrapUp.disposition).
 * @type {readonly Disposition[]}
 */
export const DISPOSITIONS = Object.freeze([
  "resolved",
  "follow_up",
  "complaint",
  "order_help",
  "info",
  "other",
]);

/** @typedef {"ordinary" | "silver" | "gold" | "platinum"} Tier */
/** The customers' tiers (broker/interface.py Tier).
 * @type {readonly Tier[]}
 */
export const TIERS = Object.freeze(["ordinary", "silver", "gold", "platinum"]);

/** @typedef {"agent" | "supervisor" | "admin"} Role */
/** Who is logged in (seats/protocol.py Role).
 * @type {readonly Role[]}
 */
export const ROLES = Object.freeze(["agent", "supervisor", "admin"]);

/** @typedef {"queue" | "agent" | "number"} TargetKind */
/** What a transfer, consult or conference goes to (acd/targets.py Target.kind).
 * @type {readonly TargetKind[]}
 */
export const TARGET_KINDS = Object.freeze(["queue", "agent", "number"]);

/**
 * @typedef {(
 *   | "malformed"
 *   | "unsupported_version"
 *   | "unknown_command"
 *   | "login_required"
 *   | "bad_credentials"
 *   | "login_paused"
 *   | "login_timeout"
 *   | "already_logged_in"
 *   | "forbidden"
 *   | "rate_limited"
 *   | "too_large"
 *   | "invalid_state"
 *   | "disposition_required"
 *   | "no_call"
 *   | "bad_number"
 *   | "not_found"
 *   | "unavailable"
 *   | "internal"
 * )} ErrorCode
 */
/** A refused request's `code` (seats/protocol.py ErrorCode).
 * @type {readonly ErrorCode[]}
 */
export const ERROR_CODES = Object.freeze([
  "malformed",
  "unsupported_version",
  "unknown_command",
  "login_required",
  "bad_credentials",
  "login_paused",
  "login_timeout",
  "already_logged_in",
  "forbidden",
  "rate_limited",
  "too_large",
  "invalid_state",
  "disposition_required",
  "no_call",
  "bad_number",
  "not_found",
  "unavailable",
  "internal",
]);

/** @typedef {"price_above" | "price_below"} PriceKind */
/** Subscriptions that need a stock code and a price level (channels/secretary.py Kind).
 * @type {readonly PriceKind[]}
 */
export const PRICE_KINDS = Object.freeze(["price_above", "price_below"]);

/** An agent id, queue name or agent target (acd/targets.py AGENT_ID). */
export const AGENT_ID = /^[A-Za-z0-9_.-]{1,32}$/;

/** An inbound contact's id (seats/protocol.py CONTACT_ID). */
export const CONTACT_ID = /^[A-Za-z0-9_.-]{8,64}$/;

/** The engine's one phone-number rule, for numbers it dials (telephony/values.py PHONE_NUMBER). */
export const PHONE_NUMBER = /^\+?[0-9]{2,20}$/;

/** A customer's account, digits (seats/protocol.py, e.g. SendMessage.account). Matches "": the
 * field is optional. */
export const ACCOUNT = /^[0-9]{0,16}$/;

/** A fax number the fax server dials (seats/protocol.py FAX_NUMBER). Matches "": the field is
 * optional. */
export const FAX_NUMBER = /^(\+?[0-9]{3,20})?$/;

/** A fax number for the financial secretary's notices, digits only (channels/secretary.py). */
export const NOTICE_FAX = /^[0-9]{5,20}$/;

/** A stock code (seats/protocol.py Subscribe.code). Matches "". */
export const STOCK_CODE = /^([0-9]{6})?$/;

/** A price level, sent as text, never a float (seats/protocol.py Subscribe.price). Matches "";
 * the engine also wants it above zero. */
export const PRICE = /^([0-9]{1,9}(\.[0-9]{1,2})?)?$/;

/** A time of day, HH:MM (seats/protocol.py HHMM). Matches "". */
export const HHMM = /^(([01][0-9]|2[0-3]):[0-5][0-9])?$/;

/**
 * Whether `value` is one of `list`'s words (a type guard for the lists above).
 * @template {string} T
 * @param {readonly T[]} list
 * @param {unknown} value
 * @returns {value is T}
 */
export function isOneOf(list, value) {
  return typeof value === "string" && /** @type {readonly string[]} */ (list).includes(value);
}
