// Rules: the loaded rule set with alert counts, enable/disable per agency, and a preview of a rule
// against stored events. Degrades to a clear message while the server has no rule routes.

import { ApiError, api } from "./api.js";
import { $, announce, badge, clear, fillForm, formQuery, h, humanize, table } from "./dom.js";
import { guarded, startPage } from "./page.js";

const PAGE = 100; // rows added per "Show more": thousands of SigmaHQ rules would make a very long page
const form = $("#filters");
const body = $("#rules tbody");
let rules = [];
let shownCount = 0;

const SAMPLE = `title: Security event log cleared
id: 00000000-0000-4000-8000-000000000001
status: experimental
logsource:
  product: windows
  service: security
detection:
  selection:
    EventID: 1102
  condition: selection
level: high
`;

function unavailable(message) {
  const notice = $("#rules-unavailable");
  notice.replaceChildren(h("h2", { text: "Rule management is not available yet" }), h("p", { text: message }));
  notice.hidden = false;
}

function attackTags(tags) {
  return tags.filter((t) => /^attack\.t\d/i.test(t)).map((t) => t.slice(7).toUpperCase()).join(", ") || "—";
}

function ruleRow(rule) {
  const tenant = $("#toggle-tenant").value;
  const disabledHere = rule.disabled_in.includes(tenant);
  const state = rule.enabled ? badge("state", "enabled")
    : h("span", {}, badge("state", "disabled"), h("div", { class: "small", text: `in ${rule.disabled_in.join(", ")}` }));
  const verb = disabledHere ? "Enable" : "Disable";
  return h("tr", { dataset: { ruleId: rule.id } },
    h("td", {}, h("span", { text: rule.title }), h("div", { class: "muted small", text: rule.id })),
    h("td", {}, badge("severity", rule.level || "unknown")),
    h("td", { text: Object.values(rule.logsource).filter(Boolean).join(" / ") || "—" }),
    h("td", { text: attackTags(rule.tags) }),
    h("td", { class: "number", text: String(rule.alerts) }),
    h("td", {}, state),
    h("td", {}, h("button", { type: "button", class: "small-button", text: `${verb}`,
      "aria-label": `${verb} rule ${rule.title} for ${tenant}`,
      on: { click: () => toggle(rule, disabledHere ? "enable" : "disable") } })));
}

function showMore() {
  const next = rules.slice(shownCount, shownCount + PAGE);
  for (const rule of next) body.append(ruleRow(rule));
  shownCount += next.length;
  $("#more-rules").hidden = shownCount >= rules.length;
  $("#rules-caption").textContent = `Rules: ${shownCount} of ${rules.length} shown`;
}

async function load(announceCount = true) {
  const query = formQuery(form);
  try {
    rules = await api("/api/v1/rules", { query });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $("#rules-section").hidden = true;
      unavailable("This server does not offer rule management yet (the API answered 404 for /api/v1/rules). " +
        "Ask your administrator to update civicsoc.");
    } else if (error.status !== 401) announce(`Loading rules failed: ${error.message}`, { error: true });
    return;
  }
  clear(body);
  shownCount = 0;
  if (!rules.length) body.append(h("tr", {}, h("td", { colspan: "7", class: "muted", text: "No rules match." })));
  showMore();
  if (announceCount) announce(`${rules.length} rule${rules.length === 1 ? "" : "s"} found.`);
}

async function toggle(rule, action) {
  const tenant = $("#toggle-tenant").value;
  const reason = $("#toggle-reason").value.trim();
  if (action === "disable" && !reason) {
    announce("Give a reason for disabling the rule: it goes into the audit trail.", { error: true });
    $("#toggle-reason").focus();
    return;
  }
  const done = await guarded(() => api(`/api/v1/rules/${encodeURIComponent(rule.id)}/${action}`,
    { method: "POST", body: { tenant, reason } }), `${humanize(action)} failed`);
  if (done) {
    await load(false);
    announce(`Rule “${rule.title}” ${action}d for ${tenant}.`);
  }
}

function isoFromLocalInput(value) {
  // datetime-local has no zone; the label says UTC, so read it as UTC.
  return value ? `${value.length === 16 ? `${value}:00` : value}Z` : undefined;
}

async function preview(event) {
  event.preventDefault();
  const result = clear($("#preview-result"));
  const payload = {
    rule: $("#rule-yaml").value,
    from: isoFromLocalInput($("#preview-from").value),
    to: isoFromLocalInput($("#preview-to").value),
    tenant: $("#preview-tenant").value || undefined,
    limit: Number($("#preview-limit").value || 1000),
  };
  result.append(h("p", { text: "Running the preview…" }));
  let answer;
  try {
    answer = await api("/api/v1/rules/test", { method: "POST", body: payload });
  } catch (error) {
    clear(result);
    if (error.status === 401) return;
    result.append(h("p", { class: "error-text", text: error.status === 404 && error.noRoute
      ? "Rule preview is not available on this server yet (the API answered 404 for /api/v1/rules/test)."
      : `The preview failed: ${error.message}` }));
    return;
  }
  clear(result);
  const matched = answer.matches.reduce((sum, m) => sum + m.event_ids.length, 0);
  result.append(h("p", { id: "preview-summary",
    text: `${answer.events_tested} events tested; ${answer.matches.length} match${answer.matches.length === 1 ? "" : "es"}` +
      ` covering ${matched} event${matched === 1 ? "" : "s"}.` }));
  if (answer.errors.length) {
    result.append(h("div", { class: "error-text" }, h("p", { text: "Problems with the rule:" }),
      h("ul", {}, answer.errors.map((e) => h("li", { text: e })))));
  }
  if (answer.matches.length) {
    result.append(table("Matches", ["Rule", "Level", "Events"], answer.matches.map((m) => [
      m.rule_title, badge("severity", m.level || "unknown"),
      m.event_ids.slice(0, 5).join(", ") + (m.event_ids.length > 5 ? ` … (${m.event_ids.length})` : ""),
    ]), { id: "preview-matches" }));
  }
}

const tenants = await startPage();
for (const target of [$("#toggle-tenant"), $("#preview-tenant")]) {
  target.append(...tenants.map((t) => h("option", { value: t.id, text: t.name ? `${t.name} (${t.id})` : t.id })));
}
$("#rule-yaml").value = SAMPLE;
const monthAgo = new Date(Date.now() - 30 * 86400000).toISOString().slice(0, 16);
$("#preview-from").value = monthAgo;
fillForm(form, new URLSearchParams(location.search));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const query = formQuery(form);
  history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
  load();
});
form.addEventListener("reset", () => setTimeout(() => {
  history.replaceState(null, "", location.pathname);
  load();
}, 0));
$("#more-rules").addEventListener("click", showMore);
$("#toggle-tenant").addEventListener("change", () => load(false));
$("#preview-form").addEventListener("submit", preview);
load();
