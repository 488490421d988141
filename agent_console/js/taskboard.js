// The supervisors' part of the tasks tab: progress per strategy and per agent (the
// `task_progress` state), deadline alerts (`task_deadline`: a banner each over whatever tab is
// shown, as the wallboard's alerts, and a count on the Tasks tab), and the task report of a
// period (`task_report`).

import { t, tValue } from "../i18n.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { send } from "./session.js";
import { isSupervisor } from "./state.js";
import { $, cell, fmtDateTime, fmtDuration, fmtPercent, show, toast } from "./ui.js";

/** the banners keep this many alerts, the newest first */
const MAX_BANNERS = 8;
/** the columns of the progress tables: these states, in this order */
const COLUMNS = ["open", "claimed", "dialing", "retry", "reached", "review", "done", "failed",
  "cancelled"];

/** @type {Record<string, any> | null} the last progress */
let progress = null;
/** @type {{id: number, kind: string, task: Record<string, any>, at: string}[]} */
let banners = [];
let bannerIds = 0;
/** @type {Record<string, any> | null} the last report */
let report = null;

/** @param {Record<string, any>} data */
function applyProgress(data) {
  progress = data;
  renderProgress();
}

/** @param {Record<string, any>} data */
function applyDeadline(data) {
  if (!data.task || typeof data.task !== "object") return;
  const at = new Date().toTimeString().slice(0, 8);
  banners = [{ id: ++bannerIds, kind: String(data.kind), task: data.task, at }, ...banners]
    .slice(0, MAX_BANNERS);
  renderBanners();
}

function renderBanners() {
  $("tk-alerts").replaceChildren(...banners.map((banner) => {
    const box = document.createElement("div");
    box.className = "wb-alert";
    box.dataset.testid = "tk-alert";
    box.dataset.kind = banner.kind;
    box.dataset.id = String(banner.id);
    const title = document.createElement("strong");
    title.textContent = `${t("tk.alert_title")} ${banner.at}`;
    const text = document.createElement("span");
    const task = banner.task;
    text.textContent = t(banner.kind === "overdue" ? "tk.alert_overdue" : "tk.alert_soon", {
      id: String(task.id), text: String(task.text ?? ""),
      deadline: fmtDateTime(task.deadline_at),
      who: String(task.claimed_by || task.agent_id || task.team || t("none")),
    });
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "small ghost";
    close.dataset.testid = "tk-alert-dismiss";
    close.textContent = "×";
    close.setAttribute("aria-label", t("alert.dismiss"));
    box.append(title, text, spacer, close);
    return box;
  }));
  if (isSupervisor()) {
    const count = $("tasks-count");
    count.textContent = String(banners.length);
    show(count, banners.length > 0);
  }
}

/** @param {MouseEvent} event */
function onDismiss(event) {
  const button = event.target instanceof Element
    ? event.target.closest('[data-testid="tk-alert-dismiss"]') : null;
  const id = Number(button?.closest("[data-id]")?.getAttribute("data-id"));
  if (!id) return;
  banners = banners.filter((b) => b.id !== id);
  renderBanners();
}

/**
 * A progress table: one row per group, a column per state, the total and the overdue ones.
 * @param {string} head   the header row's id
 * @param {string} body   the body's id
 * @param {string} key   the group's field ("strategy" | "agent_id")
 * @param {string} label   the first column's text key
 * @param {Record<string, any>[]} rows
 */
function progressTable(head, body, key, label, rows) {
  const th = (/** @type {string} */ text, num = true) => {
    const el = document.createElement("th");
    el.textContent = text;
    if (num) el.className = "num";
    return el;
  };
  $(head).replaceChildren(th(t(label), false), ...COLUMNS.map((s) => th(tValue("tk.st", s))),
    th(t("tk.total")), th(t("tk.overdue")));
  $(body).replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    const name = String(row[key] ?? "");
    tr.dataset.testid = `tk-progress-${key === "strategy" ? "s" : "a"}-${name || "none"}`;
    const by = row.by_state ?? {};
    tr.append(cell(name || (key === "strategy" ? t("tk.own_tasks") : t("tk.unassigned")),
      "", "name"),
    ...COLUMNS.map((s) => cell(String(by[s] ?? 0), "num", s)),
    cell(String(row.total ?? 0), "num", "total"),
    cell(String(row.overdue ?? 0), row.overdue ? "num bad" : "num", "overdue"));
    return tr;
  }));
}

function renderProgress() {
  show($("tk-board"), isSupervisor());
  if (!isSupervisor()) return;
  const data = progress ?? {};
  progressTable("tk-ps-head", "tk-ps-rows", "strategy", "tk.r.strategy",
    Array.isArray(data.strategies) ? data.strategies : []);
  progressTable("tk-pa-head", "tk-pa-rows", "agent_id", "tk.r.agent",
    Array.isArray(data.agents) ? data.agents : []);
  $("tk-progress-at").textContent = data.at ? t("tk.as_of", { at: fmtDateTime(data.at) }) : "";
}

async function loadProgress() {
  if (!isSupervisor()) return;
  const reply = await send("task_progress");
  if (reply !== null) applyProgress(reply);
}

/** @param {SubmitEvent} event */
async function onReport(event) {
  event.preventDefault();
  const from = $("tk-report-from", HTMLInputElement).value;
  const to = $("tk-report-to", HTMLInputElement).value || from;
  if (!from) return toast(t("tk.need_period"), { kind: "error" });
  const button = event.submitter instanceof HTMLButtonElement ? event.submitter : null;
  const reply = await send("task_report", { from, to }, button);
  if (reply !== null) {
    report = reply;
    renderReport();
  }
}

function renderReport() {
  /** @type {Record<string, any>[]} */
  const strategies = Array.isArray(report?.strategies) ? report.strategies : [];
  /** @type {Record<string, any>[]} */
  const agents = Array.isArray(report?.agents) ? report.agents : [];
  $("tk-rs-rows").replaceChildren(...strategies.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `tk-report-s-${r.strategy || "none"}`;
    const outcomes = Object.entries(r.outcomes ?? {})
      .map(([k, v]) => `${tValue("tk.choice", k)} ${v}`).join(" · ");
    tr.append(cell(String(r.strategy || t("tk.own_tasks")), "", "strategy"),
      ...["matched", "tasks", "attempts", "contacted", "reached", "done", "done_reached",
        "converted"].map((k) =>
        cell(String(r[k] ?? 0), "num", k)),
      cell(fmtPercent(r.conversion), "num", "conversion"), cell(outcomes || t("none")));
    return tr;
  }));
  $("tk-ra-rows").replaceChildren(...agents.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `tk-report-a-${r.agent_id || "none"}`;
    tr.append(cell(String(r.agent_id || t("none"))),
      ...["done", "attempts", "reached"].map((k) => cell(String(r[k] ?? 0), "num", k)),
      cell(fmtPercent(r.reach_rate), "num", "reach_rate"),
      cell(fmtDuration(r.talk_s), "num", "talk_s"));
    return tr;
  }));
}

export function wire() {
  handleEvents({ task_progress: applyProgress, task_deadline: applyDeadline });
  onSession({
    start() {
      progress = null;
      report = null;
      banners = [];
      // the PC's day (the site's, for agents at the site)
      const d = new Date();
      const today = [d.getFullYear(), String(d.getMonth() + 1).padStart(2, "0"),
        String(d.getDate()).padStart(2, "0")].join("-");
      $("tk-report-from", HTMLInputElement).value = today;
      $("tk-report-to", HTMLInputElement).value = today;
    },
    started: loadProgress,
    end() {
      progress = null;
      report = null;
      banners = [];
    },
  });
  onRender(() => {
    renderProgress();
    renderBanners();
    renderReport();
  });
  $("tk-alerts").addEventListener("click", onDismiss);
  $("tk-report-form").addEventListener("submit", onReport);
}
