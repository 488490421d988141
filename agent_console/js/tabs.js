// The tabs of the work view: the desk (always there), and what feature modules add (the inbox,
// the supervisor's wallboard). Owns state.tab.

import { state } from "./state.js";
import { $, show } from "./ui.js";

/**
 * @typedef {object} TabSpec
 * @property {() => boolean} [allowed]   whether the one logged in may open it (default: yes)
 * @property {() => void} [shown]   called each time it is selected
 */

/** @type {Map<string, TabSpec>} the tabs besides the desk, by their data-tab name */
const TABS = new Map();
const DESK = "desk";

/**
 * A tab whose button is `.tabs [data-tab=name]` and whose panel is `#panel-<name>`.
 * @param {string} name
 * @param {TabSpec} spec
 */
export function registerTab(name, spec) {
  TABS.set(name, spec);
}

/** Show a tab; one that does not exist or is not allowed shows the desk. @param {string} name */
export function selectTab(name) {
  const spec = TABS.get(name);
  const tab = spec && (spec.allowed?.() ?? true) ? name : DESK;
  state.tab = tab;
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    if (button instanceof HTMLElement) {
      button.setAttribute("aria-selected", String(button.dataset.tab === tab));
    }
  }
  for (const name of [DESK, ...TABS.keys()]) show($(`panel-${name}`), name === tab);
  TABS.get(tab)?.shown?.();
}

export function wire() {
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    if (!(button instanceof HTMLElement)) continue;
    button.addEventListener("click", () => selectTab(button.dataset.tab ?? DESK));
  }
}
