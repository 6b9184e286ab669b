// The incident queue: filters kept in the URL, badges, deadline countdowns, bulk acknowledge/assign.

import { api } from "./api.js";
import { $, announce, badge, clear, countdown, fillForm, formQuery, h, startCountdowns, timeElement } from "./dom.js";
import { guarded, startPage } from "./page.js";

const FILTERS = ["status", "severity", "q", "assignee", "host", "due_within", "sort", "order"];
const CLOSED = new Set(["resolved", "false_positive", "duplicate"]);
const PAGE_SIZE = 25;

const form = $("#filters");
const body = $("#queue tbody");
let cursors = [null]; // cursor of each page shown so far; the last is the current page's
let nextCursor = null;
let shown = [];

function filterQuery() {
  const params = formQuery(form);
  for (const name of [...params.keys()]) if (!FILTERS.includes(name)) params.delete(name);
  return params;
}

function selectedIds() {
  return [...body.querySelectorAll("input[name=select]:checked")].map((box) => box.value);
}

function updateSelection() {
  const ids = selectedIds();
  $("#selection-count").textContent = ids.length ? `${ids.length} selected.` : "None selected.";
  $("#bulk-ack").disabled = ids.length === 0;
  $("#bulk-assign").disabled = ids.length === 0;
  const all = $("#select-all");
  all.checked = ids.length > 0 && ids.length === shown.length;
  all.indeterminate = ids.length > 0 && ids.length < shown.length;
}

function row(incident) {
  const title = `${incident.title}`;
  return h("tr", { dataset: { incidentId: incident.id } },
    h("td", {}, h("input", { type: "checkbox", name: "select", value: incident.id,
      "aria-label": `Select incident: ${title}`, on: { change: updateSelection } })),
    h("td", {}, badge("severity", incident.severity)),
    h("td", {}, h("a", { href: `/ui/incidents/${encodeURIComponent(incident.id)}`, text: title }),
      h("div", { class: "muted small", text: incident.id })),
    h("td", {}, badge("status", incident.status)),
    h("td", { text: incident.assignee || "—" }),
    h("td", { text: incident.tenant }),
    h("td", { class: "number", text: String(incident.alert_ids.length) }),
    h("td", { text: incident.hosts.slice(0, 3).join(", ") + (incident.hosts.length > 3 ? " …" : "") }),
    h("td", {}, timeElement(incident.created_at)),
    h("td", { class: "deadline" }, deadlineCell(incident)));
}

/** The next deadline still to be met, as the list reports it (deadlines=true): a live countdown. */
function deadlineCell(incident) {
  if (CLOSED.has(incident.status)) return h("span", { class: "muted", text: "closed" });
  const next = incident.next_deadline;
  if (!next) return h("span", { class: "muted", text: "none running" });
  const clock = countdown(next.due_at);
  clock.classList.toggle("overdue", new Date(next.due_at) < Date.now());
  return h("span", {}, clock, h("div", { class: "small", text: next.name }));
}

let loadGeneration = 0;

async function load({ announceCount = true } = {}) {
  const generation = ++loadGeneration;
  const query = filterQuery();
  query.set("limit", String(PAGE_SIZE));
  query.set("deadlines", "true");
  const cursor = cursors[cursors.length - 1];
  if (cursor) query.set("cursor", cursor);
  $("#queue").setAttribute("aria-busy", "true");
  const page = await guarded(() => api("/api/v1/incidents", { query }), "Loading the queue failed");
  $("#queue").removeAttribute("aria-busy");
  if (!page || generation !== loadGeneration) return;
  shown = page.items;
  nextCursor = page.next_cursor;
  clear(body);
  if (shown.length === 0) {
    body.append(h("tr", {}, h("td", { colspan: "10", class: "muted", text: "No incidents match these filters." })));
  }
  for (const incident of shown) body.append(row(incident));
  const pageNumber = cursors.length;
  $("#queue-caption").textContent = `Incidents: ${shown.length} shown` + (pageNumber > 1 ? `, page ${pageNumber}` : "");
  $("#prev-page").disabled = cursors.length <= 1;
  $("#next-page").disabled = !nextCursor;
  updateSelection();
  if (announceCount) announce(`${shown.length} incident${shown.length === 1 ? "" : "s"} shown.`);
}

function applyFilters() {
  const query = filterQuery();
  history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
  cursors = [null];
  load();
}

async function bulk(change, verb) {
  const ids = selectedIds();
  if (!ids.length) return;
  const results = await guarded(() => api("/api/v1/incidents/bulk", { method: "POST", body: { ids, ...change } }),
    `${verb} failed`);
  if (!results) return;
  const failed = results.filter((r) => !r.ok);
  await load({ announceCount: false });
  const done = results.length - failed.length;
  const message = `${verb}: ${done} of ${results.length} incident${results.length === 1 ? "" : "s"} changed.` +
    (failed.length ? ` Not changed: ${failed.map((r) => `${r.id} (${r.error})`).join("; ")}` : "");
  announce(message, { error: failed.length > 0 });
}

await startPage();
fillForm(form, new URLSearchParams(location.search));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilters();
});
form.addEventListener("reset", () => setTimeout(applyFilters, 0));
$("#select-all").addEventListener("change", (event) => {
  for (const box of body.querySelectorAll("input[name=select]")) box.checked = event.target.checked;
  updateSelection();
});
$("#bulk-ack").addEventListener("click", () => bulk({ status: "acknowledged" }, "Acknowledge"));
$("#bulk-assign").addEventListener("click", () => {
  const assignee = $("#bulk-assignee").value.trim();
  bulk({ assignee }, assignee ? `Assign to ${assignee}` : "Unassign");
});
$("#next-page").addEventListener("click", () => {
  if (!nextCursor) return;
  cursors.push(nextCursor);
  load();
});
$("#prev-page").addEventListener("click", () => {
  if (cursors.length <= 1) return;
  cursors.pop();
  load();
});
startCountdowns();
load();
