// The queues panel of the desk, and the service-level figures the wallboard shows too. Owns
// state.queues.

import { t } from "../i18n.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { state } from "./state.js";
import { $, cell, fmtDuration, fmtPercent, show } from "./ui.js";

/** @typedef {import("./state.js").QueueFigures} QueueFigures */

function renderQueues() {
  const rows = state.queues.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `queue-${q.name}`;
    tr.append(
      cell(q.name),
      cell(String(q.waiting ?? 0), "num"),
      cell(fmtDuration(q.longest_wait_s), `num${isLate(q) ? " warn" : ""}`),
      slCell(q),
    );
    return tr;
  });
  $("queue-rows").replaceChildren(...rows);
  show($("queue-empty"), rows.length === 0);
}

/** Whether the queue's longest wait is past its target. @param {QueueFigures} q */
export function isLate(q) {
  return typeof q.target_s === "number" && (q.longest_wait_s ?? 0) > q.target_s;
}

const DEFAULT_TARGET_SHARE = 0.8;

/** The queue's service-level goal: its `target_share` (0..1), or the classic 80%.
 * @param {QueueFigures} q */
function targetShare(q) {
  const share = q?.target_share;
  return typeof share === "number" && share > 0 && share <= 1 ? share : DEFAULT_TARGET_SHARE;
}

/** Colour for a service level against the queue's goal: good at or above it, warning up to 20
 * points below it, bad further down. @param {QueueFigures} q */
function slClass(q) {
  const share = q?.service_level;
  if (typeof share !== "number") return "";
  const target = targetShare(q);
  if (share >= target - 1e-9) return "good";
  return share >= target - 0.2 ? "warn" : "bad";
}

/** A service-level cell: the figure, coloured against the goal, with the goal as its title.
 * @param {QueueFigures} q @param {string} [col] */
export function slCell(q, col = "") {
  const td = cell(fmtPercent(q.service_level), `num ${slClass(q)}`, col);
  td.title = t("queues.sl_goal", {
    share: fmtPercent(targetShare(q)),
    secs: typeof q.target_s === "number" ? String(Math.round(q.target_s)) : "?",
  });
  return td;
}

export function wire() {
  handleEvents({
    queues(data) {
      state.queues = Array.isArray(data.queues) ? data.queues : [];
      renderQueues();
    },
  });
  onSession({
    start(data) {
      state.queues = Array.isArray(data.queues) ? data.queues : [];
    },
  });
  onRender(renderQueues);
}
