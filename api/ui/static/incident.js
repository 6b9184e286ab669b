// One incident: summary, triage (status, assignee, reporting) with conflict handling, deadlines, playbook
// checklist, alerts, entities, ATT&CK techniques, event timeline and comments.

import { ApiError, api, request } from "./api.js";
import {
  $, announce, badge, clear, countdown, field, formatTime, h, humanize, list, startCountdowns, table, timeElement,
} from "./dom.js";
import { guarded, startPage } from "./page.js";

const STATUSES = ["new", "acknowledged", "investigating", "contained", "resolved", "false_positive", "duplicate"];
const CONFLICT = "This incident was changed by someone else — reloaded. Check what changed, then try again.";
const incidentId = document.body.dataset.incidentId;
const base = `/api/v1/incidents/${encodeURIComponent(incidentId)}`;

let current = null; // the last detail read: {incident, alerts, timeline, comments, playbooks, deadlines}
let version = null; // the incident's ETag when it was read: every change is made against it

async function load() {
  let answer;
  try {
    answer = await request(base);
  } catch (error) {
    if (error.status === 404) {
      showMissing();
      return false;
    }
    if (error.status !== 401) announce(`Loading the incident failed: ${error.message}`, { error: true });
    return false;
  }
  current = answer.data;
  version = answer.version || current.incident.version;
  render();
  return true;
}

function showMissing() {
  document.title = "Incident not found · civicsoc";
  $("#missing-id").textContent = incidentId;
  $("#incident").hidden = true;
  $("#incident-missing").hidden = false;
  announce("Incident not found.", { error: true });
}

function render() {
  const { incident } = current;
  document.title = `${incident.title} · civicsoc`;
  $("#incident").hidden = false;
  $("#incident-missing").hidden = true;
  $("#incident-title").textContent = incident.title;
  $("#incident-severity").replaceChildren(badge("severity", incident.severity));
  $("#incident-status").replaceChildren(badge("status", incident.status));
  renderSummary(incident);
  renderForms(incident);
  renderDeadlines(current.deadlines || []);
  renderSubmissions(current.submissions || [], current.deadlines || []);
  renderPlaybooks(current.playbooks || []);
  renderAlerts(current.alerts);
  renderEntities(incident);
  renderAttack(incident, current.alerts);
  renderTimeline(current.timeline);
  renderComments(current.comments);
}

function pairs(target, entries) {
  clear(target);
  for (const [label, value] of entries) {
    target.append(h("dt", { text: label }), h("dd", {}, value instanceof Node ? value : String(value ?? "—")));
  }
}

function renderSummary(incident) {
  pairs($("#summary"), [
    ["Id", incident.id],
    ["Agency", incident.tenant],
    ["Assignee", incident.assignee || "unassigned"],
    ["Detected", timeElement(incident.created_at)],
    ["First seen", timeElement(incident.first_seen)],
    ["Last seen", timeElement(incident.last_seen)],
    ["Acknowledged", timeElement(incident.acknowledged_at)],
    ["Confirmed significant", timeElement(incident.significant_at)],
    ["Contained", timeElement(incident.contained_at)],
    ["Resolved", timeElement(incident.resolved_at)],
    ["NIS2 reporting", incident.nis2 ? "applies" : "no"],
    ["GDPR breach notification", incident.gdpr ? "applies" : "no"],
    ["Duplicate of", incident.duplicate_of
      ? h("a", { href: `/ui/incidents/${encodeURIComponent(incident.duplicate_of)}`, text: incident.duplicate_of })
      : "—"],
    ["Severity override", incident.severity_reason || "—"],
    ["Version", version],
  ]);
}

function renderForms(incident) {
  const select = $("#new-status");
  const keep = select.value;
  clear(select);
  for (const status of STATUSES) {
    if (status === incident.status) continue;
    select.append(h("option", { value: status, text: humanize(status) }));
  }
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  $("#duplicate-field").hidden = select.value !== "duplicate";
  $("#assignee").value = incident.assignee || "";
  $("#significant").checked = Boolean(incident.significant_at);
  $("#nis2").checked = incident.nis2;
  $("#gdpr").checked = incident.gdpr;
}

function renderDeadlines(deadlines) {
  const target = clear($("#deadlines"));
  if (!deadlines.length) {
    target.append(h("p", { class: "muted",
      text: "No deadline is running. Regulatory clocks start when the incident is confirmed significant." }));
    return;
  }
  target.append(table("Deadlines, regulatory first", ["Deadline", "Source", "Due", "Time left", "State"],
    deadlines.map((d) => [
      h("span", { text: d.name, title: d.basis || "" }),
      d.regulation || "playbook",
      timeElement(d.due_at),
      d.done_at ? `done ${formatTime(d.done_at)}` : countdown(d.due_at),
      badge("deadline", d.status),
    ])));
}

function renderSubmissions(submissions, deadlines) {
  const names = Object.fromEntries(deadlines.map((d) => [d.key, d.name]));
  const target = clear($("#submissions"));
  if (!submissions.length) {
    target.append(h("p", { class: "muted", text: "No report has been recorded as sent." }));
  } else {
    target.append(table("Reports recorded as sent", ["Report", "Sent", "By", "To", "Reference", "SHA-256"],
      submissions.map((s) => [names[s.clock] || humanize(s.clock), timeElement(s.submitted_at), s.author,
        s.recipient || "—", s.reference || "—", h("code", { class: "small", title: s.sha256,
          text: `${s.sha256.slice(0, 16)}…` })]), { id: "submissions-table" }));
  }
  const regulatory = deadlines.filter((d) => d.regulation);
  const select = $("#submission-clock");
  const keep = select.value;
  clear(select).append(...regulatory.map((d) => h("option", { value: d.key, text: d.name })));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  $("#submission-details").hidden = !regulatory.length;
}

/** The file as base64, for the JSON body (the server hashes the decoded bytes). */
function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function stepRow(run, step) {
  const id = `step-${run.playbook_id}-${step.id}`;
  const disabled = run.detached;
  const checkbox = h("input", {
    type: "checkbox", id, checked: step.status === "done", disabled,
    "aria-describedby": `${id}-meta`,
    on: { change: (event) => setStep(run, step, event.target.checked ? "done" : "todo", "", id) },
  });
  const note = h("input", { id: `${id}-note`, autocomplete: "off", disabled });
  const skip = h("details", { class: "skip" },
    h("summary", { text: "Skip this step…" }),
    h("div", { class: "field inline" }, h("label", { for: `${id}-note`, text: "Why skip it (required)" }), note),
    h("button", { type: "button", class: "secondary", disabled, text: "Skip step",
      on: { click: () => setStep(run, step, "skipped", note.value, id) } }));
  const meta = [humanize(step.phase), step.owner ? `owner: ${humanize(step.owner)}` : null,
    step.due_at ? `due ${formatTime(step.due_at)}` : null].filter(Boolean).join(" · ");
  return h("li", { class: `step step-${step.status}`, dataset: { stepId: step.id } },
    h("div", { class: "step-head" },
      checkbox, h("label", { for: id, text: step.title || step.id }),
      badge("step", step.status),
      step.deadline_status ? badge("deadline", step.deadline_status) : null,
      step.due_at && step.status !== "done" && step.deadline_status !== "met" ? countdown(step.due_at) : null),
    h("p", { id: `${id}-meta`, class: "muted small", text: meta }),
    step.note ? h("p", { class: "small", text: `Note: ${step.note}` }) : null,
    step.by ? h("p", { class: "muted small", text: `by ${step.by} at ${formatTime(step.at)}` }) : null,
    step.instructions ? h("details", {}, h("summary", { text: "Instructions" }),
      h("p", { class: "instructions", text: step.instructions })) : null,
    step.status !== "skipped" ? skip : null);
}

function renderPlaybooks(runs) {
  const target = clear($("#playbooks"));
  if (!runs.length) target.append(h("p", { class: "muted", text: "No playbook is attached." }));
  for (const run of runs) {
    const done = run.steps.filter((s) => s.status !== "todo").length;
    target.append(h("section", { class: "playbook", "aria-label": `Playbook ${run.title}` },
      h("h3", { text: `${run.title} (v${run.playbook_version})` }),
      h("p", { class: "muted small", text: `${done} of ${run.steps.length} steps done or skipped` +
        (run.detached ? " · detached: attach it again to record progress" : "") }),
      h("ol", { class: "steps" }, run.steps.map((step) => stepRow(run, step)))));
  }
}

function renderAlerts(alerts) {
  const target = clear($("#alerts"));
  if (!alerts.length) {
    target.append(h("p", { class: "muted", text: "No alerts." }));
    return;
  }
  target.append(table(`${alerts.length} alert${alerts.length === 1 ? "" : "s"}`,
    ["Time", "Severity", "Rule", "Status", "Hosts", "Users", "Techniques"],
    alerts.map((a) => [timeElement(a.timestamp), badge("severity", a.severity), a.rule_title, badge("alert", a.status),
      a.hosts.join(", ") || "—", a.users.join(", ") || "—", a.techniques.join(", ") || "—"]), { id: "alerts-table" }));
}

function renderEntities(incident) {
  pairs($("#entities"), [
    ["Hosts", list(incident.hosts)], ["Users", list(incident.users)], ["IP addresses", list(incident.ips)],
    ["Domains", list(incident.domains)], ["File hashes", list(incident.hashes)],
  ]);
}

function techniqueUrl(id) {
  const [main, sub] = id.toUpperCase().split(".");
  return `https://attack.mitre.org/techniques/${main}/${sub ? `${sub}/` : ""}`;
}

function renderAttack(incident, alerts) {
  const target = clear($("#attack"));
  if (!incident.techniques.length) {
    target.append(h("p", { class: "muted", text: "No ATT&CK technique is tagged on these alerts." }));
  } else {
    target.append(h("ul", { class: "plain techniques" }, incident.techniques.map((technique) => {
      const rules = [...new Set(alerts.filter((a) => a.techniques.includes(technique)).map((a) => a.rule_title))];
      return h("li", {}, h("a", { href: techniqueUrl(technique), rel: "noreferrer noopener", target: "_blank",
        text: technique }), rules.length ? h("span", { class: "muted small", text: ` — ${rules.join("; ")}` }) : null);
    })));
  }
  if (incident.tactics.length) target.append(h("p", {}, h("strong", { text: "Tactics: " }),
    incident.tactics.map(humanize).join(", ")));
}

function clip(text, length = 300) {
  return text.length > length ? `${text.slice(0, length)}…` : text;
}

/** The most telling part of an event: a command line or message if it has one, else its event data. */
function eventSummary(fields) {
  for (const name of ["process.command_line", "message", "powershell.command.value", "url.original", "file.path",
    "dns.question.name"]) {
    const value = field(fields, name);
    if (typeof value === "string" && value) return clip(value);
  }
  const data = field(fields, "winlog.event_data");
  if (data && typeof data === "object") {
    return clip(Object.entries(data).filter(([, v]) => v !== "" && v !== null && typeof v !== "object")
      .slice(0, 6).map(([k, v]) => `${k}=${v}`).join(" "));
  }
  return "";
}

function renderTimeline(events) {
  const target = clear($("#timeline"));
  if (!events.length) {
    target.append(h("p", { class: "muted", text: "No stored events for these alerts." }));
    return;
  }
  target.append(table(`${events.length} event${events.length === 1 ? "" : "s"}, oldest first`,
    ["Time", "Host", "Event", "User", "Details"],
    events.map((e) => {
      const code = field(e.fields, "event.code");
      const action = field(e.fields, "event.action");
      const user = [field(e.fields, "user.domain"), field(e.fields, "user.name")].filter(Boolean).join("\\");
      return [timeElement(e.timestamp), field(e.fields, "host.name") || "—",
        [code, action].filter(Boolean).join(" · ") || "—", user || "—",
        h("span", { class: "code small", text: eventSummary(e.fields) })];
    }), { id: "timeline-table" }));
}

function renderComments(comments) {
  const target = clear($("#comments"));
  if (!comments.length) target.append(h("p", { class: "muted", text: "No comments yet." }));
  for (const comment of comments) {
    target.append(h("article", { class: "comment" },
      h("p", { class: "muted small" }, h("strong", { text: comment.author }), " · ", timeElement(comment.created_at)),
      h("p", { class: "comment-text", text: comment.text })));
  }
}

/** Reload after a change, keeping keyboard focus where it was (the page is rebuilt underneath it). */
async function reloadKeepingFocus(focusId) {
  const id = focusId || document.activeElement?.id;
  await load();
  if (id) document.getElementById(id)?.focus();
}

/** PATCH the incident against the version on screen; a 412 means someone else got there first. */
async function change(body, what) {
  try {
    await request(base, { method: "PATCH", body, ifMatch: version });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) return false;
    if (error.status === 412) {
      await reloadKeepingFocus();
      announce(CONFLICT, { error: true });
      return false;
    }
    if (error.status === 404) {
      showMissing();
      return false;
    }
    announce(`${what} failed: ${error.message}`, { error: true });
    return false;
  }
  await reloadKeepingFocus();
  announce(`${what}: saved.`);
  return true;
}

async function setStep(run, step, status, note, focusId) {
  const path = `${base}/playbooks/${encodeURIComponent(run.playbook_id)}/steps/${encodeURIComponent(step.id)}`;
  try {
    await request(path, { method: "PUT", body: { status, note }, ifMatch: run.version });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) return;
    await reloadKeepingFocus(focusId);
    announce(error.status === 412
      ? "This playbook was changed by someone else — reloaded. Check the step, then try again."
      : `Step “${step.title}” was not changed: ${error.message}`, { error: true });
    return;
  }
  await reloadKeepingFocus(focusId);
  announce(`Step “${step.title}” marked ${status}.`);
}

async function loadPlaybookChoices() {
  const select = $("#attach-playbook");
  try {
    const library = await api("/api/v1/playbooks");
    clear(select).append(...library.map((p) => h("option", { value: p.id, text: p.title })));
  } catch (error) {
    $("#attach-form").hidden = true;
    if (error.status !== 401 && error.status !== 404) announce(`Loading playbooks failed: ${error.message}`,
      { error: true });
  }
}

$("#new-status").addEventListener("change", (event) => {
  $("#duplicate-field").hidden = event.target.value !== "duplicate";
});
$("#status-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const status = $("#new-status").value;
  const body = { status };
  if (status === "duplicate") body.duplicate_of = $("#duplicate-of").value.trim();
  change(body, `Status change to ${humanize(status)}`);
});
$("#assign-form").addEventListener("submit", (event) => {
  event.preventDefault();
  change({ assignee: $("#assignee").value.trim() }, "Assignee");
});
$("#regulatory-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { incident } = current;
  const body = {};
  if ($("#significant").checked !== Boolean(incident.significant_at)) body.significant = $("#significant").checked;
  if ($("#nis2").checked !== incident.nis2) body.nis2 = $("#nis2").checked;
  if ($("#gdpr").checked !== incident.gdpr) body.gdpr = $("#gdpr").checked;
  if (!Object.keys(body).length) {
    announce("Nothing to save: the reporting flags are unchanged.");
    return;
  }
  change(body, "Reporting flags");
});
$("#attach-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const playbookId = $("#attach-playbook").value;
  const attached = await guarded(() => api(`${base}/playbooks`, { method: "POST", body: { playbook_id: playbookId } }),
    "Attaching the playbook failed");
  if (attached) {
    await load();
    announce("Playbook attached.");
  }
});
$("#submission-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("#submission-file").files[0];
  if (!file) return;
  const sentAt = $("#submission-sent-at").value;
  const body = {
    clock: $("#submission-clock").value, content_base64: await readBase64(file), filename: file.name,
    recipient: $("#submission-recipient").value.trim(), reference: $("#submission-reference").value.trim(),
  };
  if (sentAt) body.submitted_at = new Date(sentAt).toISOString();
  const recorded = await guarded(() => api(`${base}/submissions`, { method: "POST", body }),
    "Recording the report failed");
  if (recorded) {
    $("#submission-form").reset();
    await load();
    announce(`Report recorded as sent (SHA-256 ${recorded.sha256.slice(0, 16)}…).`);
  }
});
$("#comment-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("#comment-text").value.trim();
  if (!text) return;
  const added = await guarded(() => api(`${base}/comments`, { method: "POST", body: { text } }),
    "Adding the comment failed");
  if (added) {
    $("#comment-text").value = "";
    await load();
    announce("Comment added.");
  }
});

await startPage();
startCountdowns();
if (await load()) loadPlaybookChoices();
