// The supervisors' recordings tab: find recordings by an order's or transfer's number, the
// customer's account, the agent, and days (the `recordings` request), and play one. Playing asks
// the engine for a one-time ticket (`recording_play`, seats/playback.py), fetches the audio's
// parts with it, each once, and plays it from memory (a blob: URL; the CSP's media-src allows
// it); fetching the first part is what the engine logs as a playback, and the tab shows who
// played it before. A fetch that outlives its session is dropped. The page never gets a whole
// account: the engine sends it masked.

import { t } from "../i18n.js";
import { onRender, onSession } from "./registry.js";
import { send } from "./session.js";
import { isSupervisor } from "./state.js";
import { registerTab } from "./tabs.js";
import { $, cell, fmtDuration, locale, show, toast } from "./ui.js";

/**
 * A recording as the console gets it (seats/playback.py console_view).
 * @typedef {object} RecordingRow
 * @property {number} id
 * @property {string} kind   "proof" (the IVR's, of an order or transfer) | "agent"
 * @property {string} call_id
 * @property {string} agent_id
 * @property {string} account_masked
 * @property {number} started_at
 * @property {number | null} ended_at
 * @property {boolean} sealed
 * @property {boolean} held
 * @property {boolean} deleted
 * @property {{kind: string | null, state: string | null, reference: string | null} | null} intent
 */

/**
 * @typedef {object} AccessRow
 * @property {number} at
 * @property {string} actor
 * @property {string} via
 * @property {string} action
 */

/** @type {RecordingRow[] | null} the last search's answer (null: none yet) */
let found = null;
/** the blob: URL playing now, revoked when another plays or the session ends */
let playing = "";
/** @type {{rec: RecordingRow, access: AccessRow[]} | null} the recording in the player */
let shown = null;
/** a recording is being fetched: the play buttons wait */
let loading = false;
/** counts the sessions that ended: a fetch that outlives its session is dropped */
let sessions = 0;
/** results asked for at most (the engine's limit is 200) */
const LIMIT = 200;

/** @param {string} text */
function showError(text) {
  const el = $("rec-error");
  el.textContent = text;
  show(el, Boolean(text));
}

/** the site's time zone (IANA), from the last search: times are shown in it, as the days
 * searched are the site's */
let zone = "";

/** A date and time of day, to the second, in the site's zone. @param {number} unixS */
function when(unixS) {
  return new Date(unixS * 1000).toLocaleString(locale(), { year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    timeZone: zone || undefined });
}

/** What the recording proves, in words. @param {RecordingRow} rec */
function kindText(rec) {
  if (rec.kind !== "proof") return t("rec.kind_agent");
  const kind = rec.intent?.kind ?? "";
  const key = `rec.kind_${kind || "declined"}`;
  const text = t(key);
  if (text === key) return t("rec.kind_declined");
  const state = rec.intent?.state;
  return state && state !== "done" ? t("rec.kind_unfinished", { kind: text }) : text;
}

/** @param {RecordingRow} rec */
function stateText(rec) {
  if (rec.deleted) return t("rec.deleted");
  if (rec.held) return t("rec.held");
  return rec.sealed ? t("rec.sealed") : t("rec.recording");
}

/** @param {HTMLButtonElement | null} [button] */
async function search(button = null) {
  const from = $("rec-from", HTMLInputElement).value;
  const to = $("rec-to", HTMLInputElement).value;
  if (from && to && to < from) {
    showError(t("rec.bad_range"));
    return;
  }
  showError("");
  const data = await send("recordings", {
    reference: $("rec-reference", HTMLInputElement).value.trim(),
    account: $("rec-account", HTMLInputElement).value.trim(),
    agent_id: $("rec-agent", HTMLInputElement).value.trim(),
    day_from: from,
    day_to: to,
    limit: LIMIT,
  }, button);
  if (data === null) return;
  found = Array.isArray(data.recordings) ? /** @type {RecordingRow[]} */ (data.recordings) : [];
  zone = typeof data.timezone === "string" ? data.timezone : "";
  renderRows();
}

function renderRows() {
  const rows = found ?? [];
  $("rec-rows").replaceChildren(...rows.map((rec) => {
    const tr = document.createElement("tr");
    tr.dataset.id = String(rec.id);
    const length = typeof rec.ended_at === "number" ? rec.ended_at - rec.started_at : null;
    const play = document.createElement("button");
    play.type = "button";
    play.className = "small";
    play.dataset.testid = "rec-play";
    play.dataset.id = String(rec.id);
    play.textContent = t("rec.play");
    play.disabled = loading || !rec.sealed || rec.deleted;
    const action = document.createElement("td");
    action.append(play);
    tr.append(cell(when(rec.started_at), "mono", "time"), cell(kindText(rec), "", "kind"),
      cell(rec.agent_id || t("rec.ivr"), "", "agent"),
      cell(rec.account_masked || t("none"), "mono", "account"),
      cell(rec.intent?.reference ?? t("none"), "mono", "reference"),
      cell(fmtDuration(length), "mono", "length"), cell(stateText(rec), "", "state"), action);
    return tr;
  }));
  show($("rec-empty"), found !== null && rows.length === 0);
  const more = $("rec-more");
  more.textContent = rows.length >= LIMIT ? t("rec.more", { n: LIMIT }) : "";
  show(more, rows.length >= LIMIT);
}

/** The audio a ticket opens, its parts fetched in order (each once); null if the session
 * ended meanwhile (nothing is kept). @param {string} url @param {number} parts
 * @param {number} session */
async function fetchAudio(url, parts, session) {
  /** @type {ArrayBuffer[]} */
  const got = [];
  for (let part = 0; part < parts; part += 1) {
    const answer = await fetch(`${url}&p=${part}`, { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    got.push(await answer.arrayBuffer());
    if (session !== sessions) return null;
  }
  return new Blob(got, { type: "audio/wav" });
}

/** @param {HTMLButtonElement} button */
async function play(button) {
  if (loading) return;
  const session = sessions;
  loading = true;
  renderRows();
  try {
    const id = Number(button.dataset.id);
    const data = await send("recording_play", { recording_id: id });
    if (data === null || session !== sessions) return;
    let blob;
    try {
      blob = await fetchAudio(String(data.url), Number(data.parts) || 1, session);
    } catch (err) {
      if (session === sessions) {
        toast(t("rec.fetch_failed"), { kind: "error", detail: String(err) });
      }
      return;
    }
    if (blob === null || session !== sessions) return;
    stop();
    playing = URL.createObjectURL(blob);
    const audio = $("rec-audio", HTMLAudioElement);
    audio.src = playing;
    shown = { rec: /** @type {RecordingRow} */ (data.recording),
      access: Array.isArray(data.access) ? data.access : [] };
    renderPlayer();
    audio.play().catch(() => {}); // autoplay may be refused: the controls are there
  } finally {
    if (session === sessions) {
      loading = false;
      renderRows();
    }
  }
}

/** The recording playing: what it proves, and who listened, held or released it before (this
 * playback is logged as it is fetched); hidden when none. */
function renderPlayer() {
  show($("rec-player"), shown !== null);
  if (shown === null) return;
  const rec = shown.rec;
  $("rec-now").textContent = t("rec.now", { kind: kindText(rec), time: when(rec.started_at),
    reference: rec.intent?.reference ?? t("none") });
  const plays = shown.access.filter((r) => r.action !== "delete");
  $("rec-access").replaceChildren(...plays.map((r) => {
    const li = document.createElement("li");
    li.textContent = t("rec.access_row", { time: when(r.at), actor: r.actor, via: r.via,
      action: t(`rec.action_${r.action}`) });
    return li;
  }));
  show($("rec-access-none"), plays.length === 0);
}

function stop() {
  const audio = $("rec-audio", HTMLAudioElement);
  audio.pause();
  audio.removeAttribute("src");
  if (playing) URL.revokeObjectURL(playing);
  playing = "";
}

export function wire() {
  registerTab("recordings", { allowed: isSupervisor });
  onSession({
    end() {
      sessions += 1;
      loading = false;
      stop();
      found = null;
      shown = null;
      renderPlayer();
      renderRows();
    },
  });
  onRender(() => {
    show($("tab-recordings"), isSupervisor());
    renderRows();
    renderPlayer();
  });
  $("rec-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("rec-search", HTMLButtonElement));
  });
  $("rec-rows").addEventListener("click", (event) => {
    const button = event.target instanceof Element
      ? event.target.closest("[data-testid=rec-play]") : null;
    if (button instanceof HTMLButtonElement) play(button);
  });
}
