// The desk's own forms in the side panel: click-to-call and follow-up tasks (a task made during
// a call is about that call's customer unless the agent says otherwise).

import { t } from "../i18n.js";
import { ACCOUNT, AGENT_ID, PHONE_NUMBER } from "./protocol.js";
import { send, submitter } from "./session.js";
import { state } from "./state.js";
import { $, cleanNumber, fieldError, show, toast } from "./ui.js";

/** @typedef {import("./state.js").Call} Call */

/** @param {SubmitEvent} event */
async function onClickToCall(event) {
  event.preventDefault();
  const number = cleanNumber($("ctc-number", HTMLInputElement).value);
  const account = $("ctc-account", HTMLInputElement).value.trim();
  const error = $("ctc-error");
  if (!PHONE_NUMBER.test(number)) return fieldError(error, "val.dialable");
  if (account && !ACCOUNT.test(account)) return fieldError(error, "val.digits");
  fieldError(error, "");
  const reply = await send("click_to_call", { number, account }, submitter(event));
  if (reply !== null) toast(t("ok.click_to_call", { number }));
}

/**
 * The task form's "about the current customer" box: shown while a call card is.
 * @param {Call | null} call
 */
export function renderTaskLink(call) {
  const linked = call !== null;
  show($("task-use-call-box"), linked);
  const masked = call?.customer?.account_masked || call?.caller || t("none");
  $("task-use-call-label").textContent = t("task.use_call", { who: masked });
  // the engine takes the account from the call: no field to fill (or to contradict it)
  const fromCall = linked && $("task-use-call", HTMLInputElement).checked;
  const account = $("task-account", HTMLInputElement);
  account.disabled = fromCall;
  show(account, !fromCall);
}

/** A new call: a task made now is most likely about this caller. */
export function linkTaskToCall() {
  $("task-use-call", HTMLInputElement).checked = true;
}

/** @param {SubmitEvent} event */
async function onCreateTask(event) {
  event.preventDefault();
  const text = $("task-text", HTMLTextAreaElement).value.trim();
  // about the current customer: the engine fills the account (the page has only the masked one)
  const callId = state.call && $("task-use-call", HTMLInputElement).checked
    ? String(state.call.call_id) : "";
  const account = callId ? "" : $("task-account", HTMLInputElement).value.trim();
  const phone = cleanNumber($("task-phone", HTMLInputElement).value);
  const agentId = $("task-agent", HTMLInputElement).value.trim();
  const due = $("task-due", HTMLInputElement).value;
  const error = $("task-error");
  if (!text) return fieldError(error, "task.need_text");
  if (account && !ACCOUNT.test(account)) return fieldError(error, "val.digits");
  if (phone && !PHONE_NUMBER.test(phone)) return fieldError(error, "val.dialable");
  if (agentId && !AGENT_ID.test(agentId)) return fieldError(error, "login.bad_agent");
  fieldError(error, "");
  const dueAt = due ? new Date(due).getTime() / 1000 : null;
  /** @type {Record<string, unknown>} */
  const fields = {
    text, account, phone, due_at: Number.isFinite(dueAt) ? dueAt : null, agent_id: agentId,
  };
  if (callId) fields.call_id = callId;
  const reply = await send("create_task", fields, submitter(event));
  if (reply === null) return;
  $("task-form", HTMLFormElement).reset();
  linkTaskToCall();
  renderTaskLink(state.call);
  toast(t("ok.task"));
}

export function wire() {
  $("task-use-call").addEventListener("change", () => renderTaskLink(state.call));
  $("ctc-form").addEventListener("submit", onClickToCall);
  $("task-form").addEventListener("submit", onCreateTask);
}
