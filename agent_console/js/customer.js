// The customer panels of the call card: who is calling (name, tier, account, balance), their way
// through the IVR and recent contacts, sending them a statement or note, their messages
// (deliveries) and their financial-secretary subscriptions. Owns the call's `deliveries*` and
// `subscriptions` fields (the call itself is call.js's).

import { getLang, has, t, tValue } from "../i18n.js";
import { LinkError } from "../link.js";
import {
  ACCOUNT, FAX_NUMBER, NOTICE_FAX, PRICE, PRICE_KINDS, STOCK_CODE, isOneOf,
} from "./protocol.js";
import { handleEvents, onSession } from "./registry.js";
import { request, send, submitter } from "./session.js";
import { state } from "./state.js";
import {
  $, cell, cleanNumber, fieldError, fmtDateTime, fmtDuration, fmtMoney, fmtPath, renderTier, show,
  toast, toastError,
} from "./ui.js";

/** @typedef {import("./state.js").Call} Call */

/** send_message's refusal when the customer has no address for the channel (the protocol's
 * documented start of that `not_found` message). */
const NO_ADDRESS = "no address on file";

/** Everything this module draws on the call card. @param {Call} call */
export function renderCustomerPanels(call) {
  renderCustomer(call);
  renderIvr(call);
  renderMessageForm();
  renderDeliveries(call);
  renderSubscriptions(call);
  renderSubscribeForm();
}

/** Read what an open box shows again (after a new call, a reload, a sent message...). */
export function refreshCustomerPanels() {
  loadDeliveries();
  loadSubscriptions();
}

/** @param {Call} call */
function renderCustomer(call) {
  const customer = call.customer ?? null;
  $("customer-name").textContent = customer?.name || t("call.unknown_customer");
  renderTier($("customer-tier"), customer?.tier ?? "");
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

/** Which password a lock reason names: the flows set ``<kind>_password:account_locked``
 * (ivr_flows/login.yaml, password.yaml, transfer.yaml); ``login`` checks the trading one. */
const LOCKED_KIND = new Map([
  ["trading_password", "trading"], ["fund_password", "fund"], ["bank_password", "bank"],
  ["login", "trading"],
]);

/**
 * The IVR's last failure as a sentence: ``<what>:<detail>``, where what is ``menu``, ``input``
 * or ``confirm`` (no valid key after the retries, at node detail), ``asked_agent`` (the caller
 * pressed for an agent), or an action with its refusal code (``login:account_locked``); a lock
 * names the password (``fund_password:account_locked``: the fund password is locked).
 * @param {string} code
 */
export function failureText(code) {
  const [what, detail = ""] = code.split(":", 2);
  if (what === "menu" || what === "input" || what === "confirm" || what === "asked_agent") {
    return t(`fail.${what}`);
  }
  const locked = detail === "account_locked" ? LOCKED_KIND.get(what) : undefined;
  if (locked) return t(`fail.locked.${locked}`);
  if (has(`fail.refusal.${detail}`)) return t(`fail.refusal.${detail}`);
  return t("fail.other", { code });
}

/** @param {Call} call */
function renderIvr(call) {
  const ivr = call.ivr ?? {};
  // the way through the IVR in the flows' own words (their titles), else the node names
  const words = getLang() === "en" ? ivr.path_en : ivr.path_zh;
  const path = $("ivr-path");
  path.textContent = words ? String(words) : fmtPath(ivr.path);
  path.title = fmtPath(ivr.path); // the exact steps, for who needs them
  const failure = $("last-failure");
  failure.textContent = ivr.last_failure ? failureText(String(ivr.last_failure)) : t("none");
  failure.title = ivr.last_failure ? String(ivr.last_failure) : "";
  failure.classList.toggle("has-failure", Boolean(ivr.last_failure));
  $("caller-lang").textContent = tValue("lang", ivr.lang ?? "zh");
  $("caller-manager").textContent = call.manager ? String(call.manager) : t("none");
  // a colleague consults this agent on their call (the caller may be handed over)
  const by = call.consulted_by ? String(call.consulted_by) : "";
  $("consulted-by").textContent = by;
  $("consulted-by").hidden = !by;
  $("consulted-by-label").hidden = !by;
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

// Sending a message ---------------------------------------------------------------------------

/**
 * The box sits on the call card: left empty, the account is this call's customer's (the
 * engine looks it up from the call id; the page only ever has the masked one). The address is
 * the back office's (SMS, e-mail) or the fax number typed here.
 * @param {SubmitEvent} event
 */
async function onSendMessage(event) {
  event.preventDefault();
  const account = $("msg-account", HTMLInputElement).value.trim();
  const error = $("msg-error");
  const channel = $("msg-channel", HTMLSelectElement).value;
  const template = $("msg-template", HTMLSelectElement).value;
  /** @type {Record<string, string>} */
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
    const fax = cleanNumber($("msg-fax", HTMLInputElement).value);
    if (!fax || !FAX_NUMBER.test(fax)) return fieldError(error, "msg.need_fax");
    fields.fax = fax;
  }
  if (template === "note") {
    const text = $("msg-text", HTMLInputElement).value.trim();
    if (!text) return fieldError(error, "msg.need_text");
    fields.text = text;
  }
  fieldError(error, "");
  try {
    await request("send_message", fields, submitter(event));
  } catch (err) {
    if (err instanceof LinkError && err.code === "not_found"
        && String(err.serverMessage).startsWith(NO_ADDRESS)) {
      return fieldError(error, `msg.no_address.${channel}`);
    }
    return toastError(err);
  }
  $("msg-text", HTMLInputElement).value = "";
  toast(t("ok.message"));
  if (!account) loadDeliveries();
}

/** The fax number and the note's text are asked for only where they mean something. */
function renderMessageForm() {
  show($("msg-fax"), $("msg-channel", HTMLSelectElement).value === "fax");
  show($("msg-text"), $("msg-template", HTMLSelectElement).value === "note");
}

// The customer's messages ---------------------------------------------------------------------

/** The call's customer's messages, when the box is open; a request already under way is
 * followed by one more (what it answers may be out of date by then). */
async function loadDeliveries() {
  const call = state.call;
  if (!call?.customer || !$("deliveries-box", HTMLDetailsElement).open || !state.link) return;
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

/** @param {Call | null} call */
function renderDeliveries(call) {
  const status = $("dlv-status");
  const list = Array.isArray(call?.deliveries) ? call.deliveries : null;
  show($("dlv-table"), list !== null && list.length > 0);
  $("dlv-refresh", HTMLButtonElement).disabled = !call?.customer;
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

// The customer's subscriptions ----------------------------------------------------------------

async function loadSubscriptions() {
  const call = state.call;
  if (!call?.customer || !$("subs-box", HTMLDetailsElement).open || !state.link) return;
  const reply = await send("subscriptions", { call_id: String(call.call_id) });
  if (reply && Array.isArray(reply.subscriptions)) call.subscriptions = reply.subscriptions;
  if (state.call === call) renderSubscriptions(call);
}

/** @param {Call} call */
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
    if (isOneOf(PRICE_KINDS, sub.kind)) {
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
  const priced = isOneOf(PRICE_KINDS, $("sub-kind", HTMLSelectElement).value);
  show($("sub-code"), priced);
  show($("sub-price"), priced);
  show($("sub-fax"), $("sub-channel", HTMLSelectElement).value === "fax");
}

/** @param {SubmitEvent} event */
async function onSubscribe(event) {
  event.preventDefault();
  const call = state.call;
  const error = $("sub-error");
  if (!call?.customer) return fieldError(error, "msg.need_account");
  const kind = $("sub-kind", HTMLSelectElement).value;
  const channel = $("sub-channel", HTMLSelectElement).value;
  /** @type {Record<string, string>} */
  const fields = { call_id: String(call.call_id), kind, channel };
  if (isOneOf(PRICE_KINDS, kind)) {
    const code = $("sub-code", HTMLInputElement).value.trim();
    const price = $("sub-price", HTMLInputElement).value.trim();
    if (!code || !STOCK_CODE.test(code)) return fieldError(error, "sub.need_code");
    if (!PRICE.test(price) || !/[1-9]/.test(price)) return fieldError(error, "sub.need_price");
    Object.assign(fields, { code, price });
  }
  if (channel === "fax") {
    const fax = cleanNumber($("sub-fax", HTMLInputElement).value);
    if (!NOTICE_FAX.test(fax)) return fieldError(error, "sub.need_fax");
    fields.fax = fax;
  }
  const start = $("sub-quiet-start", HTMLInputElement).value;
  const end = $("sub-quiet-end", HTMLInputElement).value;
  if (Boolean(start) !== Boolean(end)) return fieldError(error, "sub.need_quiet");
  if (start) Object.assign(fields, { quiet_start: start.slice(0, 5), quiet_end: end.slice(0, 5) });
  fieldError(error, "");
  const reply = await send("subscribe", fields, submitter(event));
  if (reply === null) return;
  if (reply.address === "missing") {
    toast(t("sub.address_missing"), { kind: "error" });
  } else {
    toast(t(reply.new === false ? "ok.subscribed_again" : "ok.subscribed"));
  }
  for (const id of ["sub-code", "sub-price"]) $(id, HTMLInputElement).value = "";
  await loadSubscriptions();
}

/** @param {MouseEvent} event */
async function onSubscriptionAction(event) {
  const button = event.target instanceof Element
    ? event.target.closest("button[data-testid=sub-remove]") : null;
  const call = state.call;
  if (!(button instanceof HTMLButtonElement) || !call) return;
  const id = Number(button.closest("tr")?.dataset.id);
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

export function wire() {
  handleEvents({
    delivery(data) {
      // one of this customer's messages moved: show it at once, then read the list again
      const call = state.call;
      const masked = call?.customer?.account_masked;
      if (!call || !masked || data.account_masked !== masked) return;
      const known = (call.deliveries ?? []).find((d) => d.message_id === data.message_id);
      if (known) {
        known.state = String(data.state ?? known.state);
        known.reason = String(data.reason ?? "");
        renderDeliveries(call);
      }
      loadDeliveries();
    },
  });
  onSession({ started: refreshCustomerPanels });
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
}
