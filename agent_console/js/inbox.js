// The inbox tab: mail and faxes that came in, taken and closed by agents. Owns state.contacts.

import { t, tValue } from "../i18n.js";
import { handleEvents, onRender, onSession } from "./registry.js";
import { send } from "./session.js";
import { isSupervisor, state } from "./state.js";
import { registerTab } from "./tabs.js";
import { $, cell, fmtDateTime, show, toast } from "./ui.js";

/** @typedef {import("./state.js").Contact} Contact */

/** the list was asked for this session (a tab visit asks again only after a failure) */
let contactsAsked = false;

/** @type {Record<string, (c: Contact) => boolean>} */
const INBOX_FILTERS = {
  open: (c) => c.state === "new" || c.state === "taken",
  new: (c) => c.state === "new",
  taken: (c) => c.state === "taken",
  done: (c) => c.state === "done",
  all: () => true,
};

/** The `contact` event, and the contact in replies to take/close.
 * @param {Record<string, any>} data */
function applyContact(data) {
  if (typeof data.contact_id !== "string" || !data.contact_id) return;
  const id = data.contact_id;
  state.contacts.set(id, { ...state.contacts.get(id), ...data, contact_id: id });
  renderInbox();
}

async function loadContacts() {
  if (!state.me || !state.link) return;
  contactsAsked = true;
  const reply = await send("contacts", { limit: 100 });
  if (reply === null) {
    contactsAsked = false; // a later visit to the tab tries again
    return;
  }
  if (!Array.isArray(reply.contacts)) return;
  // what a `contact` event told meanwhile is at least as new as the list
  const pushed = state.contacts;
  /** @type {Contact[]} */
  const listed = reply.contacts;
  state.contacts = new Map(listed.map((c) => [String(c.contact_id), c]));
  for (const [id, c] of pushed) state.contacts.set(id, { ...state.contacts.get(id), ...c });
  renderInbox();
}

function renderInbox() {
  const all = [...state.contacts.values()];
  const fresh = all.filter((c) => c.state === "new").length;
  const count = $("inbox-count");
  count.textContent = String(fresh);
  show(count, fresh > 0);
  const keep = INBOX_FILTERS[$("inbox-filter", HTMLSelectElement).value] ?? INBOX_FILTERS.open;
  const shown = all.filter(keep)
    .sort((a, b) => (Number(b.received_at) || 0) - (Number(a.received_at) || 0));
  show($("inbox-empty"), shown.length === 0);
  const me = state.me?.agent_id ?? "";
  $("inbox-rows").replaceChildren(...shown.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.testid = `contact-${c.contact_id}`;
    tr.dataset.id = String(c.contact_id);
    tr.dataset.state = String(c.state ?? "");
    const about = cell("", "about", "subject");
    const subject = document.createElement("strong");
    subject.textContent = String(c.subject ?? "");
    const text = document.createElement("span");
    text.className = "snippet";
    text.textContent = String(c.text ?? "") + (c.text_truncated ? t("inbox.truncated") : "");
    text.title = String(c.text ?? ""); // the whole text on hover: two lines show here
    about.append(subject, text);
    const file = cell(String(c.attachment_name || t("none")), "mono", "attachment");
    if (c.pages) file.append(` (${t("inbox.pages", { n: c.pages })})`);
    const stateCell = cell("", "", "state");
    const pill = document.createElement("span");
    pill.className = "contact-state";
    pill.dataset.state = String(c.state ?? "");
    pill.textContent = tValue("contact_state", c.state ?? "");
    stateCell.append(pill);
    if (c.agent_id) stateCell.append(t("inbox.by", { agent: c.agent_id }));
    const actions = document.createElement("td");
    actions.className = "actions-cell";
    const box = document.createElement("div");
    box.className = "actions";
    const mine = c.agent_id === me;
    const take = document.createElement("button");
    take.type = "button";
    take.className = "small";
    take.dataset.action = "take_contact";
    take.dataset.testid = "contact-take";
    take.textContent = t("inbox.take");
    take.disabled = c.state !== "new";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "small ghost";
    close.dataset.action = "close_contact";
    close.dataset.testid = "contact-close";
    close.textContent = t("inbox.close");
    close.disabled = c.state === "done" || (c.state === "taken" && !mine && !isSupervisor());
    box.append(take, close);
    actions.append(box);
    tr.append(
      cell(fmtDateTime(c.received_at), "mono", "received"),
      cell(tValue("msg.channel", c.channel ?? ""), "", "channel"),
      cell(String(c.sender ?? ""), "mono", "sender"),
      about, file, stateCell, actions,
    );
    return tr;
  }));
}

/** @param {MouseEvent} event */
async function onContactAction(event) {
  const button = event.target instanceof Element
    ? event.target.closest("button[data-action]") : null;
  if (!(button instanceof HTMLButtonElement)) return;
  const id = button.closest("tr")?.dataset.id;
  const kind = button.dataset.action ?? "";
  const reply = await send(kind, { contact_id: id }, button);
  if (reply?.contact) applyContact(reply.contact);
  if (reply !== null) toast(t(kind === "take_contact" ? "ok.contact_taken" : "ok.contact_closed"));
  renderInbox(); // busy() re-enabled the button; the contact's state decides
}

export function wire() {
  handleEvents({ contact: applyContact });
  onSession({
    start() {
      state.contacts = new Map();
      contactsAsked = false;
    },
    started: loadContacts,
    end() {
      state.contacts = new Map();
      contactsAsked = false;
    },
  });
  onRender(renderInbox);
  registerTab("inbox", {
    shown() {
      if (!contactsAsked) loadContacts();
    },
  });
  $("inbox-filter").addEventListener("change", renderInbox);
  $("inbox-refresh").addEventListener("click", loadContacts);
  $("inbox-rows").addEventListener("click", onContactAction);
}
