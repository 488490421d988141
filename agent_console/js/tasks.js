// The tasks tab: an agent's tasks (mine) and their team's open ones, one task's detail (the
// customer's pop, why the strategy matched, the script, claim / call / release, the outcome form
// drawn from the task's fields, reschedule), the progressive-dialling toggle; supervisors see
// all tasks and assign or cancel them (their progress and alerts: taskboard.js).
// Tasks arrive masked: the page never has a whole account or number.

import { t, tValue } from "../i18n.js";
import { now } from "./clock.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { send } from "./session.js";
import { isSupervisor, state } from "./state.js";
import { registerTab } from "./tabs.js";
import { $, cell, fieldError, fmtDateTime, renderTier, show, toast } from "./ui.js";

/**
 * A task as the console gets it (seats/tasks.py console_task).
 * @typedef {object} ConsoleTask
 * @property {number} id
 * @property {string} [text]
 * @property {string} [state]
 * @property {string} [agent_id]
 * @property {string} [claimed_by]
 * @property {string} [team]
 * @property {string} [strategy]
 * @property {number} [priority]
 * @property {number | null} [due_at]
 * @property {number | null} [deadline_at]
 * @property {string} [script]
 * @property {string} [reason]
 * @property {FormField[]} [fields]
 * @property {string} [outcome]
 * @property {string} [account_masked]
 * @property {string} [phone_masked]
 * @property {boolean} [overdue]
 * @property {boolean} [record]   its call is recorded as proof: the outcome follows a reached call
 * @property {{name?: string, tier?: string} | null} [customer]
 */

/**
 * One field of a task's outcome form (tasks/form.py FormField).
 * @typedef {object} FormField
 * @property {string} name
 * @property {string} [label]
 * @property {string} [kind]   choice | text | yes_no | number | date
 * @property {boolean} [required]
 * @property {string[]} [choices]
 * @property {number} [max]
 */

const FINAL = ["done", "failed", "cancelled"];
const TEAM_OPEN = ["open", "retry"];
/** the states a call may be placed in (tasks/state.py DIALABLE) */
const DIALABLE = ["open", "claimed", "retry"];
/** the states a recorded task takes its outcome in: a call reached the customer
 * (tasks/service.py AFTER_A_CALL) */
const AFTER_A_CALL = ["reached", "review"];

/** @type {Map<number, ConsoleTask>} the tasks of the view shown, by id */
let tasks = new Map();
/** the task whose detail is open (0: none) */
let selected = 0;
/** the list was asked for this session (a tab visit asks again only after a failure) */
let asked = false;

function view() {
  return $("tk-view", HTMLSelectElement).value;
}

/** Whether `task` belongs in the view shown. @param {ConsoleTask} task */
function belongs(task) {
  const me = state.me?.agent_id ?? "";
  const finished = FINAL.includes(String(task.state));
  switch (view()) {
    case "team":
      return !task.agent_id && !task.claimed_by && TEAM_OPEN.includes(String(task.state));
    case "all":
      return !finished && (!$("tk-overdue-only", HTMLInputElement).checked || !!task.overdue);
    default:
      return !finished && (task.agent_id === me || task.claimed_by === me);
  }
}

/** A task pushed (`task` event) or in a reply: kept if it belongs in the view.
 * @param {Record<string, any>} data */
function applyTask(data) {
  const id = Number(data.id);
  if (!Number.isInteger(id) || id < 1) return;
  const old = tasks.get(id);
  /** @type {ConsoleTask} */
  const merged = { ...old, ...data, id, customer: data.customer ?? old?.customer ?? null };
  if (belongs(merged)) tasks.set(id, merged);
  else tasks.delete(id);
  if (selected === id && !tasks.has(id)) selected = 0;
  renderTasks();
}

async function loadTasks() {
  if (!state.me || !state.link) return;
  asked = true;
  /** @type {Record<string, unknown>} */
  const fields = { view: view() };
  if (view() === "all" && $("tk-overdue-only", HTMLInputElement).checked) fields.overdue = true;
  const reply = await send("tasks", fields);
  if (reply === null || !Array.isArray(reply.tasks)) {
    asked = false;
    return;
  }
  /** @type {ConsoleTask[]} */
  const listed = reply.tasks;
  tasks = new Map(listed.map((task) => [Number(task.id), task]));
  if (!tasks.has(selected)) selected = 0;
  renderTasks();
}

/** When a task is due: its deadline, else its due time (server seconds), or null.
 * @param {ConsoleTask} task */
function dueOf(task) {
  return task.deadline_at ?? task.due_at ?? null;
}

/** Whether it is overdue now (the server's flag, or the clock has passed it since).
 * @param {ConsoleTask} task */
function isOverdue(task) {
  const due = dueOf(task);
  return !!task.overdue || (due !== null && due * 1000 < now() &&
    !FINAL.includes(String(task.state)));
}

/** The one who has it: claimed by, else assigned to, else the team. @param {ConsoleTask} task */
function holder(task) {
  if (task.claimed_by) return task.claimed_by;
  if (task.agent_id) return task.agent_id;
  return task.team ? t("tk.team_of", { team: task.team }) : t("none");
}

function renderTasks() {
  const me = state.me?.agent_id ?? "";
  const shown = [...tasks.values()].sort((a, b) =>
    (Number(isOverdue(b)) - Number(isOverdue(a))) ||
    ((a.priority ?? 50) - (b.priority ?? 50)) ||
    ((dueOf(a) ?? Infinity) - (dueOf(b) ?? Infinity)) || (a.id - b.id));
  show($("tk-empty"), shown.length === 0);
  const late = [...tasks.values()].filter(isOverdue).length;
  $("tk-rows").replaceChildren(...shown.map((task) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `task-${task.id}`;
    tr.dataset.id = String(task.id);
    tr.dataset.state = String(task.state ?? "");
    tr.dataset.overdue = String(isOverdue(task));
    if (task.id === selected) tr.classList.add("selected");
    const due = cell(dueOf(task) === null ? t("none") : fmtDateTime(dueOf(task)), "mono", "due");
    if (isOverdue(task)) {
      const badge = document.createElement("span");
      badge.className = "overdue";
      badge.dataset.testid = "task-overdue";
      badge.textContent = t("tk.overdue");
      due.append(" ", badge);
    }
    const who = cell("", "", "customer");
    const name = document.createElement("strong");
    name.textContent = task.customer?.name || task.account_masked || t("none");
    const tier = document.createElement("span");
    tier.className = "tier";
    renderTier(tier, task.customer?.tier);
    const phone = document.createElement("span");
    phone.className = "mono muted";
    phone.textContent = task.phone_masked ?? "";
    who.append(name, " ", tier, " ", phone);
    const about = cell("", "about", "about");
    const text = document.createElement("strong");
    text.textContent = String(task.text ?? "");
    const why = document.createElement("span");
    why.className = "snippet";
    why.textContent = String(task.reason ?? "");
    about.append(text, why);
    const stateCell = cell("", "", "state");
    const pill = document.createElement("span");
    pill.className = "task-state";
    pill.dataset.state = String(task.state ?? "");
    pill.textContent = tValue("tk.st", task.state ?? "");
    stateCell.append(pill);
    const actions = document.createElement("td");
    actions.className = "actions-cell";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "small ghost";
    open.dataset.action = "open";
    open.dataset.testid = "task-open";
    open.textContent = t("tk.open");
    actions.append(open);
    const claimable = view() !== "all" && (task.claimed_by ?? "") === "" &&
      ["open", "retry"].includes(String(task.state)) &&
      (task.agent_id === me || !task.agent_id);
    if (claimable) {
      const claim = document.createElement("button");
      claim.type = "button";
      claim.className = "small";
      claim.dataset.action = "claim";
      claim.dataset.testid = "task-claim";
      claim.textContent = t("tk.claim");
      actions.append(" ", claim);
    }
    tr.append(due, cell(String(task.priority ?? ""), "num", "priority"), who, about,
      stateCell, cell(holder(task), "", "holder"), actions);
    return tr;
  }));
  if (!isSupervisor()) { // a supervisor's count is their deadline alerts (taskboard.js)
    const count = $("tasks-count");
    count.textContent = String(late);
    show(count, late > 0);
  }
  renderDetail();
}

// -- one task's detail ----------------------------------------------------------------------

/** @returns {ConsoleTask | undefined} */
function current() {
  return selected ? tasks.get(selected) : undefined;
}

function renderDetail() {
  const task = current();
  show($("tk-detail"), task !== undefined);
  if (!task) return;
  const me = state.me?.agent_id ?? "";
  // the server's rule (seats/tasks.py task_call, the moves' holder): the one who claimed it,
  // else the agent it is assigned to
  const mine = (task.claimed_by || task.agent_id) === me;
  const boss = isSupervisor();
  $("tk-detail-id").textContent = `#${task.id} ${task.strategy || ""}`;
  $("tk-pop-name").textContent = task.customer?.name || t("tk.unknown_customer");
  renderTier($("tk-pop-tier"), task.customer?.tier);
  $("tk-pop-phone").textContent = task.phone_masked || "";
  $("tk-pop-account").textContent = task.account_masked
    ? t("tk.account", { account: task.account_masked }) : "";
  $("tk-reason").textContent = task.reason || t("none");
  const deadline = task.deadline_at ?? null;
  $("tk-deadline").textContent = deadline === null ? t("none") : fmtDateTime(deadline);
  $("tk-deadline").dataset.overdue = String(deadline !== null && isOverdue(task));
  $("tk-script").textContent = task.script || t("tk.no_script");
  const open = !FINAL.includes(String(task.state));
  $("tk-claim", HTMLButtonElement).disabled = !(open && !task.claimed_by &&
    ["open", "retry"].includes(String(task.state)));
  $("tk-call", HTMLButtonElement).disabled = !(mine && DIALABLE.includes(String(task.state)));
  $("tk-release", HTMLButtonElement).disabled = !(task.state === "claimed" &&
    (task.claimed_by === me || boss));
  // a recorded task (its call is the proof) takes its outcome once a call reached the customer
  const afterCall = !task.record || AFTER_A_CALL.includes(String(task.state));
  show($("tk-outcome-form"), open && (mine || boss) && afterCall);
  show($("tk-outcome-wait"), open && (mine || boss) && !afterCall);
  show($("tk-reschedule-form"), open && (mine || boss));
  show($("tk-assign-form"), open && boss);
  const box = $("tk-fields");
  if (box.dataset.task !== String(task.id)) {
    box.dataset.task = String(task.id);
    box.replaceChildren(...(task.fields ?? []).map(fieldInput));
    fieldError($("tk-outcome-error"), "");
  }
}

/** An input for one outcome field. @param {FormField} field */
function fieldInput(field) {
  const label = document.createElement("label");
  label.className = "stack";
  const caption = document.createElement("span");
  caption.textContent = (field.label || field.name) + (field.required ? " *" : "");
  /** @type {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} */
  let input;
  switch (field.kind) {
    case "choice": {
      const select = document.createElement("select");
      select.append(new Option(t("tk.choose"), ""),
        ...(field.choices ?? []).map((c) => new Option(tValue("tk.choice", c), c)));
      input = select;
      break;
    }
    case "yes_no": {
      const select = document.createElement("select");
      select.append(new Option(t("tk.choose"), ""), new Option(t("tk.yes"), "yes"),
        new Option(t("tk.no"), "no"));
      input = select;
      break;
    }
    case "text": {
      const area = document.createElement("textarea");
      area.rows = 2;
      area.maxLength = field.max ?? 500;
      input = area;
      break;
    }
    default: {
      const box = document.createElement("input");
      box.type = field.kind === "date" ? "date" : "text";
      if (field.kind === "number") box.inputMode = "decimal";
      input = box;
    }
  }
  input.name = field.name;
  input.dataset.kind = field.kind ?? "text";
  input.dataset.testid = `tk-field-${field.name}`;
  label.append(caption, input);
  return label;
}

/** @param {SubmitEvent} event */
async function onOutcome(event) {
  event.preventDefault();
  const task = current();
  if (!task) return;
  /** @type {Record<string, string | boolean | null>} */
  const values = {};
  for (const el of $("tk-fields").querySelectorAll("input, select, textarea")) {
    if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement ||
      el instanceof HTMLTextAreaElement)) continue;
    const raw = el.value.trim();
    if (!raw) continue;
    values[el.name] = el.dataset.kind === "yes_no" ? raw === "yes" : raw;
  }
  const missing = (task.fields ?? []).find((f) => f.required && !(f.name in values));
  if (missing) return fieldError($("tk-outcome-error"), "tk.required");
  fieldError($("tk-outcome-error"), "");
  const button = event.submitter instanceof HTMLButtonElement ? event.submitter : null;
  const reply = await send("task_outcome", { task_id: task.id, values }, button);
  if (reply?.task) {
    applyTask(reply.task);
    toast(t("tk.ok_outcome"));
  }
}

/** @param {SubmitEvent} event */
async function onReschedule(event) {
  event.preventDefault();
  const task = current();
  const at = $("tk-reschedule-at", HTMLInputElement).value;
  const due = at ? new Date(at).getTime() / 1000 : NaN;
  if (!task || !Number.isFinite(due)) return toast(t("tk.need_time"), { kind: "error" });
  const note = $("tk-reschedule-note", HTMLInputElement).value.trim();
  const reply = await send("reschedule_task", { task_id: task.id, due_at: due, note });
  if (reply?.task) {
    applyTask(reply.task);
    $("tk-reschedule-form", HTMLFormElement).reset();
    toast(t("tk.ok_reschedule"));
  }
}

/** @param {SubmitEvent} event */
async function onAssign(event) {
  event.preventDefault();
  const task = current();
  const agentId = $("tk-assign-agent", HTMLInputElement).value.trim();
  const team = $("tk-assign-team", HTMLInputElement).value.trim();
  if (!task || (!agentId && !team)) return toast(t("tk.need_assignee"), { kind: "error" });
  const reply = await send("assign_task", { task_id: task.id, agent_id: agentId, team });
  if (reply?.task) {
    applyTask(reply.task);
    toast(t("tk.ok_assign"));
  }
}

/**
 * A move of one task from a button: claim, release, cancel.
 * @param {string} kind   the request's type
 * @param {number} taskId
 * @param {HTMLButtonElement | null} button
 */
async function move(kind, taskId, button) {
  const reply = await send(kind, { task_id: taskId }, button);
  if (reply?.task) {
    applyTask(reply.task);
    toast(t(`tk.ok_${kind}`));
  }
}

/** @param {MouseEvent} event */
async function onRowAction(event) {
  const button = event.target instanceof Element
    ? event.target.closest("button[data-action]") : null;
  if (!(button instanceof HTMLButtonElement)) return;
  const id = Number(button.closest("tr")?.dataset.id);
  if (button.dataset.action === "open") {
    selected = id;
    renderTasks();
    return;
  }
  await claim(id, button);
}

/** Claim a task and show it: from the team's list it moves to the agent's own.
 * @param {number} id @param {HTMLButtonElement | null} button */
async function claim(id, button) {
  const reply = await send("claim_task", { task_id: id }, button);
  if (!reply?.task) return;
  toast(t("tk.ok_claim_task"));
  if (view() === "team") {
    $("tk-view", HTMLSelectElement).value = "mine";
    renderControls();
    await loadTasks();
  }
  applyTask(reply.task);
  selected = tasks.has(id) ? id : 0;
  renderTasks();
}

async function onCall() {
  const task = current();
  if (!task) return;
  const reply = await send("task_call", { task_id: task.id }, $("tk-call", HTMLButtonElement));
  if (reply !== null) toast(t("tk.ok_call", { phone: task.phone_masked ?? "" }));
}

async function onProgressive() {
  const box = $("tk-progressive", HTMLInputElement);
  const reply = await send(box.checked ? "dialer_join" : "dialer_leave");
  if (reply === null) box.checked = !box.checked;
  else toast(t(box.checked ? "tk.ok_dialer_on" : "tk.ok_dialer_off"));
}

function renderControls() {
  const boss = isSupervisor();
  show($("tab-tasks"), state.me !== null);
  const all = $("tk-view", HTMLSelectElement).querySelector('option[value="all"]');
  if (all instanceof HTMLOptionElement) all.hidden = !boss;
  show($("tk-overdue-box"), boss && view() === "all");
}

export function wire() {
  handleEvents({ task: applyTask });
  onSession({
    start() {
      tasks = new Map();
      selected = 0;
      asked = false;
      $("tk-progressive", HTMLInputElement).checked = false;
      $("tk-view", HTMLSelectElement).value = isSupervisor() ? "all" : "mine";
    },
    started: loadTasks,
    end() {
      tasks = new Map();
      selected = 0;
      asked = false;
    },
  });
  onRender(() => {
    renderControls();
    renderTasks();
  });
  registerTab("tasks", {
    allowed: () => state.me !== null,
    shown() {
      if (!asked) loadTasks();
    },
  });
  for (const id of ["tk-view", "tk-overdue-only"]) {
    $(id).addEventListener("change", () => {
      selected = 0;
      renderControls();
      loadTasks();
    });
  }
  $("tk-refresh").addEventListener("click", loadTasks);
  $("tk-rows").addEventListener("click", onRowAction);
  $("tk-detail-close").addEventListener("click", () => {
    selected = 0;
    renderTasks();
  });
  $("tk-claim").addEventListener("click", () => {
    if (selected) claim(selected, $("tk-claim", HTMLButtonElement));
  });
  $("tk-release").addEventListener("click", () => {
    if (selected) move("release_task", selected, $("tk-release", HTMLButtonElement));
  });
  $("tk-cancel").addEventListener("click", () => {
    if (selected) move("cancel_task", selected, $("tk-cancel", HTMLButtonElement));
  });
  $("tk-call").addEventListener("click", onCall);
  $("tk-progressive").addEventListener("change", onProgressive);
  $("tk-outcome-form").addEventListener("submit", onOutcome);
  $("tk-reschedule-form").addEventListener("submit", onReschedule);
  $("tk-assign-form").addEventListener("submit", onAssign);
  // overdue marks move with the clock
  window.setInterval(() => {
    if (state.tab === "tasks" && tasks.size) renderTasks();
  }, 30000);
}
