// The agent's seat: the header (who, role, seat state and its timer), and the ready / not ready
// buttons with the not-ready reasons. Owns state.seat and state.reasons.

import { t, tValue } from "../i18n.js";
import { setClock } from "./clock.js";
import { AGENT_REASONS } from "./protocol.js";
import { handleEvents, onControls, onRender, onSession, renderControls } from "./registry.js";
import { send } from "./session.js";
import { isSupervisor, state } from "./state.js";
import { $, option, show, toMs } from "./ui.js";

/** @typedef {import("./state.js").SeatData} SeatData */

/** The `seat` event, and the seat in replies to seat commands. @param {SeatData} data */
function applySeat(data) {
  if (state.me && data.agent_id && data.agent_id !== state.me.agent_id) return;
  state.seat = { ...state.seat, ...data };
  renderHeader();
  renderControls();
}

/**
 * Replies to seat commands carry the seat ({seat: {...}}); the `seat` event that follows says
 * the same thing again, harmlessly.
 * @param {Record<string, any> | null} reply
 */
export function applySeatReply(reply) {
  if (reply && reply.seat && typeof reply.seat.state === "string") applySeat(reply.seat);
}

function renderHeader() {
  const me = state.me;
  show($("who"), me !== null);
  show($("seat-badge"), me !== null);
  show($("btn-logout"), me !== null);
  show($("tab-wallboard"), isSupervisor());
  show($("tab-inbox"), me !== null);
  if (!me) return;
  $("agent-name").textContent = me.name ?? "";
  $("agent-id").textContent = me.agent_id ?? "";
  $("agent-role").textContent = tValue("role", me.role);
  const seat = state.seat ?? {};
  const seatState = seat.state ?? "logged_out";
  $("seat-badge").dataset.state = seatState;
  $("seat-state").textContent = tValue("state", seatState);
  $("seat-state").dataset.state = seatState;
  $("seat-reason").textContent = seatState === "not_ready" && seat.reason
    ? tValue("reason", seat.reason) : "";
  setClock($("seat-timer"), "since", toMs(seat.since));
}

function fillReasons() {
  const select = $("reason-select", HTMLSelectElement);
  const keep = select.value;
  select.replaceChildren(...state.reasons.map((reason) =>
    option(reason, tValue("reason", reason))));
  if (state.reasons.includes(keep)) select.value = keep;
}

/** Which seat buttons make sense now, from the seat state table (acd/seat.py). */
function renderSeatControls() {
  const seatState = state.seat?.state ?? "logged_out";
  const ready = $("btn-ready", HTMLButtonElement);
  const notReady = $("btn-not-ready", HTMLButtonElement);
  // the engine refuses to leave wrap-up before the required disposition is saved
  const formDue = seatState === "wrap_up" && !!state.call?.dispositionRequired
    && !state.call.saved;
  ready.disabled = !["not_ready", "wrap_up"].includes(seatState) || formDue;
  notReady.disabled = !["ready", "wrap_up"].includes(seatState) || formDue;
  ready.title = formDue ? t("wrap.need_disposition") : "";
  ready.classList.toggle("active", seatState === "ready");
  notReady.classList.toggle("active", seatState === "not_ready");
}

/**
 * @param {"ready" | "not_ready"} newState
 * @param {HTMLButtonElement} button
 */
async function setSeatState(newState, button) {
  const reason = newState === "not_ready" ? $("reason-select", HTMLSelectElement).value : "";
  const reply = await send("set_state", { state: newState, reason }, button);
  applySeatReply(reply);
}

export function wire() {
  handleEvents({
    seat: applySeat,
  });
  onSession({
    start(data) {
      state.seat = data.seat ?? null;
      state.reasons = Array.isArray(data.reasons) && data.reasons.length
        ? data.reasons.map(String) : AGENT_REASONS;
      fillReasons();
    },
    end() {
      state.seat = null;
      renderHeader();
    },
  });
  onRender(() => {
    renderHeader();
    fillReasons();
  });
  onControls(renderSeatControls);
  const ready = $("btn-ready", HTMLButtonElement);
  const notReady = $("btn-not-ready", HTMLButtonElement);
  ready.addEventListener("click", () => setSeatState("ready", ready));
  notReady.addEventListener("click", () => setSeatState("not_ready", notReady));
}
