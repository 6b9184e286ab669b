// Building the page from API data. Everything from the API goes in as text (textContent, attribute
// values), never as HTML, so a rule title or a hostname can never become markup or script.

/** h("a", {href, class, text, dataset, on: {click}}, ...children): an element; strings become text nodes. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = String(value);
    else if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "on") for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export function $(selector) {
  return document.querySelector(selector);
}

/** A message for screen readers and everyone: the polite status region, or the assertive error region. */
export function announce(message, { error = false } = {}) {
  const status = $("#status");
  const problem = $("#error");
  if (error) {
    problem.textContent = message;
    status.textContent = "";
  } else {
    status.textContent = message;
    problem.textContent = "";
  }
}

export function humanize(value) {
  return String(value ?? "").replaceAll("_", " ");
}

/** A badge: kind (severity, status, deadline, health, level, state) and value pick its colours in ui.css. */
export function badge(kind, value) {
  const safe = String(value ?? "unknown").toLowerCase().replace(/[^a-z0-9-]/g, "-");
  return h("span", { class: `badge badge-${kind} badge-${kind}-${safe}`, text: humanize(value ?? "unknown") });
}

const pad = (n) => String(n).padStart(2, "0");

/** "2026-11-28 17:11 UTC": compliance work is in UTC, and one zone avoids ambiguous local times. */
export function formatTime(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
    `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())} UTC`;
}

export function timeElement(iso) {
  if (!iso) return h("span", { text: "—" });
  return h("time", { datetime: iso, title: new Date(iso).toString(), text: formatTime(iso) });
}

export function duration(ms) {
  const minutes = Math.floor(Math.abs(ms) / 60000);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${rest} min`;
  return `${rest} min`;
}

/** "due in 5 h 12 min" or "overdue by 2 h 3 min". */
export function countdownText(iso, now = Date.now()) {
  const left = new Date(iso).getTime() - now;
  return left >= 0 ? `due in ${duration(left)}` : `overdue by ${duration(left)}`;
}

/** A countdown that keeps itself current (see startCountdowns). */
export function countdown(iso) {
  return h("span", { class: "countdown", dataset: { due: iso }, text: countdownText(iso) });
}

let ticking = false;
export function startCountdowns() {
  if (ticking) return;
  ticking = true;
  setInterval(() => {
    for (const element of document.querySelectorAll(".countdown[data-due]")) {
      element.textContent = countdownText(element.dataset.due);
      element.classList.toggle("overdue", new Date(element.dataset.due).getTime() < Date.now());
    }
  }, 30000);
}

/** A data table with a caption and column headers; rows are arrays of cells (nodes or text). */
export function table(caption, headers, rows, { id } = {}) {
  return h("table", { class: "data", id },
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col", text: name })))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))));
}

export function list(values, empty = "—") {
  if (!values || values.length === 0) return h("span", { class: "muted", text: empty });
  return h("ul", { class: "plain" }, values.map((value) => h("li", { text: value })));
}

/** A value inside an event's fields, by dotted name, whether the fields are nested or flat. */
export function field(fields, dotted) {
  if (!fields) return undefined;
  if (dotted in fields) return fields[dotted];
  let current = fields;
  for (const part of dotted.split(".")) {
    if (current === null || typeof current !== "object" || !(part in current)) return undefined;
    current = current[part];
  }
  return current;
}

/** Form fields as URLSearchParams, empty values left out (repeated names stay repeated). */
export function formQuery(form) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string" && value.trim() !== "") params.append(name, value.trim());
  }
  return params;
}

/** Put a query string back into a form's fields (the URL keeps the filters for reload and sharing). */
export function fillForm(form, params) {
  for (const element of form.elements) {
    if (!element.name) continue;
    const values = params.getAll(element.name);
    if (element.type === "checkbox") element.checked = values.includes(element.value);
    else if (values.length) element.value = values[0];
  }
}
