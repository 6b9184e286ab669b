// Alerts: filter, acknowledge, mark a false positive (with a reason).

import { api } from "./api.js";
import { $, announce, badge, clear, fillForm, formQuery, h, timeElement } from "./dom.js";
import { guarded, startPage } from "./page.js";

const FILTERS = ["status", "severity", "q", "host", "user", "rule_id"];
const PAGE_SIZE = 50;
const form = $("#filters");
const body = $("#alerts tbody");
let cursors = [null];
let nextCursor = null;

function filterQuery() {
  const params = formQuery(form);
  for (const name of [...params.keys()]) if (!FILTERS.includes(name)) params.delete(name);
  return params;
}

async function act(alert, path, payload, verb) {
  const changed = await guarded(() => api(`/api/v1/alerts/${encodeURIComponent(alert.id)}/${path}`,
    { method: "POST", body: payload }), `${verb} failed`);
  if (changed) {
    await load(false);
    announce(`${verb}: ${alert.rule_title}.`);
  }
}

function actions(alert) {
  const reasonId = `fp-${alert.id}`;
  const reason = h("input", { id: reasonId, autocomplete: "off" });
  return h("div", { class: "row-actions" },
    alert.status === "new" ? h("button", { type: "button", class: "small-button", text: "Acknowledge",
      "aria-label": `Acknowledge alert: ${alert.rule_title}`,
      on: { click: () => act(alert, "status", { status: "acknowledged" }, "Acknowledged") } }) : null,
    alert.status !== "false_positive" ? h("details", {},
      h("summary", { text: "False positive…" }),
      h("div", { class: "field" }, h("label", { for: reasonId, text: "Reason" }), reason),
      h("button", { type: "button", class: "small-button secondary", text: "Mark false positive",
        on: { click: () => act(alert, "false-positive", { reason: reason.value.trim() }, "Marked false positive") } }))
      : h("span", { class: "muted", text: "—" }));
}

async function load(announceCount = true) {
  const query = filterQuery();
  query.set("limit", String(PAGE_SIZE));
  const cursor = cursors[cursors.length - 1];
  if (cursor) query.set("cursor", cursor);
  const page = await guarded(() => api("/api/v1/alerts", { query }), "Loading alerts failed");
  if (!page) return;
  nextCursor = page.next_cursor;
  clear(body);
  if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: "9", class: "muted", text: "No alerts match." })));
  for (const alert of page.items) {
    body.append(h("tr", { dataset: { alertId: alert.id } },
      h("td", {}, timeElement(alert.timestamp)),
      h("td", {}, badge("severity", alert.severity)),
      h("td", { text: alert.rule_title }),
      h("td", {}, badge("alert", alert.status)),
      h("td", { text: alert.hosts.join(", ") || "—" }),
      h("td", { text: alert.users.join(", ") || "—" }),
      h("td", { text: alert.techniques.join(", ") || "—" }),
      h("td", {}, alert.incident_id ? h("a", { href: `/ui/incidents/${encodeURIComponent(alert.incident_id)}`,
        text: "open" , "aria-label": `Open the incident of alert ${alert.rule_title}` }) : "—"),
      h("td", {}, actions(alert))));
  }
  $("#prev-page").disabled = cursors.length <= 1;
  $("#next-page").disabled = !nextCursor;
  if (announceCount) announce(`${page.items.length} alert${page.items.length === 1 ? "" : "s"} shown.`);
}

function applyFilters() {
  const query = filterQuery();
  history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
  cursors = [null];
  load();
}

await startPage();
fillForm(form, new URLSearchParams(location.search));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilters();
});
form.addEventListener("reset", () => setTimeout(applyFilters, 0));
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
load();
