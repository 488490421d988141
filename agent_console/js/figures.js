// The supervisors' figures tab: service level, offered / answered / abandoned and ASA per
// interval (30 minutes for one day, one per day for a range), drawn as inline SVG bar charts.
// The figures are the report's own (the `intervals` request, seats/intervals.py). Each chart is
// an image with a title and a description, and every bar carries its value as its <title>.
// Wired by wallboard.js (the supervisors' views).

import { t } from "../i18n.js";
import { now } from "./clock.js";
import { onRender, onSession } from "./registry.js";
import { send } from "./session.js";
import { isSupervisor } from "./state.js";
import { registerTab } from "./tabs.js";
import { $, fmtDuration, fmtPercent, locale, option, show } from "./ui.js";

/**
 * One queue's (or all queues') figures over one interval.
 * @typedef {object} IntervalFigures
 * @property {string | null} [queue]
 * @property {number} [offered]
 * @property {number} [answered]
 * @property {number} [abandoned]
 * @property {number | null} [service_level]
 * @property {number | null} [asa_s]
 */

/**
 * @typedef {object} IntervalRow
 * @property {number} start   the server's unix seconds
 * @property {number} end
 * @property {IntervalFigures[]} queues
 * @property {IntervalFigures} total
 */

/**
 * The `intervals` reply.
 * @typedef {object} IntervalsReply
 * @property {string} from
 * @property {string} to
 * @property {number} step_s
 * @property {string} [timezone]   the site's (IANA name): the axis is drawn in it
 * @property {Record<string, number>} [target_shares]
 * @property {IntervalRow[]} intervals
 */

/** The longest range the server answers (protocol.MAX_INTERVAL_DAYS). */
const MAX_DAYS = 31;
const DAY_MS = 86400000;
const SVG_NS = "http://www.w3.org/2000/svg";
/** the charts' drawing box (the SVG scales to the panel's width) */
const W = 960;
const H = 200;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

/** @type {IntervalsReply | null} */
let shown = null;
let asked = false;

/** A date as the date inputs write it (YYYY-MM-DD, the page's calendar). @param {number} ms */
function isoDay(ms) {
  const d = new Date(ms);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Days from `from` to `to`, both included, or null if either is not a date.
 * @param {string} from @param {string} to */
function daysBetween(from, to) {
  const a = Date.parse(`${from}T00:00:00Z`);
  const b = Date.parse(`${to}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(from) || !/^\d{4}-\d{2}-\d{2}$/.test(to)
      || Number.isNaN(a) || Number.isNaN(b)) return null;
  return Math.round((b - a) / DAY_MS) + 1;
}

function fromInput() {
  return $("fig-from", HTMLInputElement);
}

function toInput() {
  return $("fig-to", HTMLInputElement);
}

function queueSelect() {
  return $("fig-queue", HTMLSelectElement);
}

/** @param {string} text */
function showError(text) {
  const el = $("fig-error");
  el.textContent = text;
  show(el, Boolean(text));
}

function setToday() {
  const today = isoDay(now());
  fromInput().value = today;
  toInput().value = today;
}

/** @param {HTMLButtonElement | null} [button] */
async function load(button = null) {
  const from = fromInput().value;
  const to = toInput().value;
  const days = daysBetween(from, to);
  if (days === null || days < 1 || days > MAX_DAYS) {
    showError(t("fig.bad_range", { days: MAX_DAYS }));
    return;
  }
  showError("");
  asked = true;
  $("fig-period").textContent = t("fig.loading");
  const data = await send("intervals", { from, to }, button);
  if (data === null) {
    asked = false;
    $("fig-period").textContent = "";
    return;
  }
  shown = /** @type {IntervalsReply} */ (data);
  fillQueues();
  renderFigures();
}

function fillQueues() {
  const select = queueSelect();
  const keep = select.value || "";
  const names = shown?.intervals?.[0]?.queues?.map((q) => String(q.queue ?? "")) ?? [];
  select.replaceChildren(option("", t("fig.all_queues")), ...names.map((n) => option(n, n)));
  select.value = names.includes(keep) ? keep : "";
}

/** The chosen queue's figures of an interval (the total for "all queues").
 * @param {IntervalRow} row @returns {IntervalFigures} */
function pick(row) {
  const queue = queueSelect().value;
  if (!queue) return row.total ?? {};
  return row.queues?.find((q) => q.queue === queue) ?? {};
}

/** The goal line: the queue's target share, or the one all queues share (none if they differ). */
function goalShare() {
  const shares = shown?.target_shares ?? {};
  const queue = queueSelect().value;
  if (queue) return typeof shares[queue] === "number" ? shares[queue] : null;
  const all = new Set(Object.values(shares));
  return all.size === 1 ? [...all][0] : null;
}

/** The site's time zone (the days and hours the figures are counted in), if the reply says.
 * @returns {string | undefined} */
function siteZone() {
  const zone = shown?.timezone;
  return typeof zone === "string" && zone ? zone : undefined;
}

/** A time of day in the site's zone. @param {number} unixS */
function timeOfDay(unixS) {
  return new Date(unixS * 1000).toLocaleTimeString(locale(), { hour: "2-digit",
    minute: "2-digit", hour12: false, timeZone: siteZone() });
}

/** An interval's label: its time of day, or its date for day-long intervals (in the site's
 * zone, not the browser's). @param {IntervalRow} row */
function label(row) {
  if ((shown?.step_s ?? 0) >= 86400) {
    return new Date(row.start * 1000).toLocaleDateString(locale(), { month: "2-digit",
      day: "2-digit", timeZone: siteZone() });
  }
  return timeOfDay(row.start);
}

/** @param {IntervalRow} row */
function span(row) {
  if ((shown?.step_s ?? 0) >= 86400) return label(row);
  return `${label(row)}–${timeOfDay(row.end)}`;
}

function renderFigures() {
  const box = $("fig-charts");
  if (!shown) {
    box.replaceChildren();
    $("fig-period").textContent = "";
    return;
  }
  const step = shown.step_s >= 86400 ? t("fig.step_day")
    : t("fig.step_min", { n: Math.round(shown.step_s / 60) });
  $("fig-period").textContent = t("fig.period", { from: shown.from, to: shown.to, step });
  const rows = Array.isArray(shown.intervals) ? shown.intervals : [];
  if (rows.length === 0) {
    const empty = document.createElement("p");
    empty.className = "muted";
    empty.dataset.testid = "fig-empty";
    empty.textContent = t("fig.empty");
    box.replaceChildren(empty);
    return;
  }
  box.replaceChildren(slChart(rows), volumeChart(rows), asaChart(rows));
}

// -- drawing ---------------------------------------------------------------------------------

/** @param {string} name @param {Record<string, string | number>} [attrs] */
function svg(name, attrs = {}) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

/** A "nice" top for an axis: 1, 2 or 5 times a power of ten, at least `max`; with `whole`
 * (counts) at least 2, so the middle tick is a whole number too.
 * @param {number} max @param {boolean} [whole] */
function niceTop(max, whole = false) {
  if (whole && max <= 2) return 2;
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  let top = 10 * power;
  for (const k of [1, 2, 5, 10]) {
    if (k * power >= max) {
      top = k * power;
      break;
    }
  }
  return whole && !Number.isInteger(top / 2) ? top * 2 : top;
}

/**
 * A chart's frame: the <figure> with its heading, the <svg> (an image named by its title and
 * description), the y axis with its ticks and the interval labels.
 * @param {string} id
 * @param {string} title
 * @param {string} desc
 * @param {IntervalRow[]} rows
 * @param {number} top   the y axis' top value
 * @param {(value: number) => string} fmt   a tick's text
 */
function frame(id, title, desc, rows, top, fmt) {
  const figure = document.createElement("figure");
  figure.className = "fig-chart";
  figure.dataset.testid = `fig-chart-${id}`;
  const heading = document.createElement("h3");
  heading.textContent = title;
  figure.append(heading);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-labelledby": `fig-${id}-title fig-${id}-desc` });
  const titleEl = svg("title", { id: `fig-${id}-title` });
  titleEl.textContent = title;
  const descEl = svg("desc", { id: `fig-${id}-desc` });
  descEl.textContent = desc;
  root.append(titleEl, descEl);
  const plotH = H - PAD.top - PAD.bottom;
  for (const share of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - share);
    root.append(svg("line", { class: share === 0 ? "axis" : "gridline", x1: PAD.left,
      x2: W - PAD.right, y1: y, y2: y }));
    const tick = svg("text", { class: "tick", x: PAD.left - 6, y: y + 3, "text-anchor": "end" });
    tick.textContent = fmt(top * share);
    root.append(tick);
  }
  const band = (W - PAD.left - PAD.right) / rows.length;
  const every = Math.max(1, Math.ceil(rows.length / 12));
  rows.forEach((row, i) => {
    if (i % every !== 0) return;
    const text = svg("text", { class: "tick", x: PAD.left + band * i + band / 2,
      y: H - PAD.bottom + 14, "text-anchor": "middle" });
    text.textContent = label(row);
    root.append(text);
  });
  figure.append(root);
  return { figure, root, band, plotH };
}

/**
 * A bar with its value as its title (what a screen reader and a hover tell).
 * @param {SVGElement} root
 * @param {{x: number, width: number, value: number, top: number, plotH: number,
 *   cls: string, text: string, index: number}} bar
 */
function drawBar(root, { x, width, value, top, plotH, cls, text, index }) {
  const height = top > 0 ? plotH * Math.min(1, Math.max(0, value / top)) : 0;
  const rect = svg("rect", { class: `bar ${cls}`, x: x.toFixed(1),
    y: (PAD.top + plotH - height).toFixed(1), width: Math.max(1, width).toFixed(1),
    height: height.toFixed(1), "data-interval": index });
  const tip = svg("title");
  tip.textContent = text;
  rect.append(tip);
  root.append(rect);
}

/** @param {IntervalRow[]} rows */
function slChart(rows) {
  const goal = goalShare();
  const desc = t("fig.sl_desc", { goal: goal === null ? t("none") : fmtPercent(goal) });
  const { figure, root, band, plotH } = frame("sl", t("fig.sl"), desc, rows, 1, fmtPercent);
  rows.forEach((row, i) => {
    const sl = pick(row).service_level;
    if (typeof sl !== "number") return;
    const below = goal !== null && sl < goal - 1e-9;
    drawBar(root, { x: PAD.left + band * i + band * 0.15, width: band * 0.7, value: sl, top: 1,
      plotH, cls: below ? "sl below" : "sl", index: i,
      text: t("fig.bar_sl", { time: span(row), value: fmtPercent(sl) }) });
  });
  if (goal !== null) {
    const y = PAD.top + plotH * (1 - goal);
    const line = svg("line", { class: "goal", x1: PAD.left, x2: W - PAD.right, y1: y, y2: y });
    const tip = svg("title");
    tip.textContent = `${t("fig.goal")} ${fmtPercent(goal)}`;
    line.append(tip);
    root.append(line);
  }
  return figure;
}

/** @param {IntervalRow[]} rows */
function volumeChart(rows) {
  /** @type {["offered" | "answered" | "abandoned", string][]} */
  const series = [["offered", "fig.offered"], ["answered", "fig.answered"],
    ["abandoned", "fig.abandoned"]];
  const max = Math.max(0, ...rows.map((r) => Number(pick(r).offered ?? 0)),
    ...rows.map((r) => Number(pick(r).answered ?? 0) + Number(pick(r).abandoned ?? 0)));
  const top = niceTop(max, true);
  const { figure, root, band, plotH } = frame("volume", t("fig.volume"), t("fig.volume_desc"),
    rows, top, (v) => String(Math.round(v)));
  const width = (band * 0.8) / series.length;
  rows.forEach((row, i) => {
    const figs = pick(row);
    series.forEach(([key, labelKey], k) => {
      const value = Number(figs[key] ?? 0);
      drawBar(root, { x: PAD.left + band * i + band * 0.1 + width * k, width, value, top,
        plotH, cls: key, index: i,
        text: t("fig.bar_volume", { time: span(row), what: t(labelKey), value }) });
    });
  });
  const legend = document.createElement("div");
  legend.className = "fig-legend";
  for (const [key, labelKey] of series) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${key}`;
    item.append(swatch, t(labelKey));
    legend.append(item);
  }
  figure.append(legend);
  return figure;
}

/** @param {IntervalRow[]} rows */
function asaChart(rows) {
  const values = rows.map((r) => pick(r).asa_s);
  const top = niceTop(Math.max(0, ...values.map((v) => (typeof v === "number" ? v : 0))));
  const { figure, root, band, plotH } = frame("asa", t("fig.asa"), t("fig.asa_desc"), rows,
    top, (v) => fmtDuration(v));
  rows.forEach((row, i) => {
    const asa = values[i];
    if (typeof asa !== "number") return;
    drawBar(root, { x: PAD.left + band * i + band * 0.15, width: band * 0.7, value: asa, top,
      plotH, cls: "asa", index: i,
      text: t("fig.bar_asa", { time: span(row), value: fmtDuration(asa) }) });
  });
  return figure;
}

export function wire() {
  registerTab("figures", {
    allowed: isSupervisor,
    shown() {
      if (!fromInput().value || !toInput().value) setToday();
      if (!asked) load();
    },
  });
  onSession({
    end() {
      shown = null;
      asked = false;
      fromInput().value = "";
      toInput().value = "";
    },
  });
  onRender(() => {
    show($("tab-figures"), isSupervisor());
    fillQueues();
    renderFigures();
  });
  $("fig-form").addEventListener("submit", (event) => {
    event.preventDefault();
    load($("fig-show", HTMLButtonElement));
  });
  $("fig-today").addEventListener("click", () => {
    setToday();
    load($("fig-today", HTMLButtonElement));
  });
  queueSelect().addEventListener("change", renderFigures);
}
