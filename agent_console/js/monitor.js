// Monitoring, shown on both sides: while a supervisor listens to, whispers to or barges into an
// agent's call, the agent's page says who and how, and the supervisor's page says whom, with a
// button to stop (the `monitor` event, the `spy_stop` request).

import { t, tValue } from "../i18n.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { send } from "./session.js";
import { state } from "./state.js";
import { $, show, toast } from "./ui.js";

/**
 * One monitoring going on that concerns this page.
 * @typedef {object} Monitoring
 * @property {string} supervisor_id
 * @property {string} agent_id
 * @property {string} mode   listen | whisper | barge
 */

/** who is monitored (this page's supervisor) or monitors (this page's agent), by agent id
 * @type {Map<string, Monitoring>} */
const monitoring = new Map();

function render() {
  const me = state.me?.agent_id ?? "";
  const bar = $("monitor-bar");
  const text = $("monitor-text");
  const stop = $("monitor-stop", HTMLButtonElement);
  const mine = [...monitoring.values()];
  show(bar, mine.length > 0);
  if (mine.length === 0) return;
  const first = mine[0];
  if (first.agent_id === me) {
    text.textContent = t("monitor.by", { supervisor: first.supervisor_id,
      mode: tValue("monitor.mode", first.mode) });
    show(stop, false);
  } else {
    text.textContent = t("monitor.of", { agent: mine.map((m) => m.agent_id).join(", "),
      mode: tValue("monitor.mode", first.mode) });
    stop.dataset.agent = first.agent_id;
    show(stop, true);
  }
  bar.dataset.mode = first.mode;
}

async function onStop() {
  const stop = $("monitor-stop", HTMLButtonElement);
  const agentId = stop.dataset.agent ?? "";
  if (!agentId) return;
  const reply = await send("spy_stop", { agent_id: agentId }, stop);
  if (reply !== null) toast(t("monitor.stopped", { agent: agentId }));
}

export function wire() {
  handleEvents({
    monitor(data) {
      const me = state.me?.agent_id ?? "";
      const entry = {
        supervisor_id: String(data.supervisor_id ?? ""), agent_id: String(data.agent_id ?? ""),
        mode: String(data.mode ?? "listen"),
      };
      // the agent's page keys it by the agent (itself), the supervisor's by the agent watched
      if (entry.agent_id !== me && entry.supervisor_id !== me) return;
      if (data.state === "on") monitoring.set(entry.agent_id, entry);
      else monitoring.delete(entry.agent_id);
      render();
    },
  });
  onSession({
    start() {
      monitoring.clear();
    },
    end() {
      monitoring.clear();
    },
  });
  onRender(render);
  $("monitor-stop").addEventListener("click", onStop);
}
