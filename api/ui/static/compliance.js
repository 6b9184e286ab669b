// Compliance exports. The page offers every GET route the API has under /api/v1/reports, read from the
// API's own OpenAPI description, so each export (register CSV/XLSX/JSON, statistics, PDF report, NIS2/GDPR
// notification drafts, STIX) appears with the parameters it takes, and a server without them says so
// plainly instead of offering buttons that fail. Files are fetched with the token and handed to the
// browser as a blob link (a plain link could not carry the Authorization header).

import { ApiError, api, request } from "./api.js";
import { $, announce, clear, h, humanize } from "./dom.js";
import { startPage } from "./page.js";

const PREFIX = "/api/v1/reports";
const EXTENSIONS = {
  "text/csv": "csv", "application/json": "json", "application/pdf": "pdf", "text/markdown": "md",
  "text/plain": "txt", "text/html": "html", "application/stix+json": "json",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
};

let spec = null;
let tenants = [];
let incidentIds = [];

function resolve(schema) {
  let current = schema || {};
  for (let depth = 0; depth < 10; depth += 1) {
    if (current.$ref) {
      const target = current.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node?.[key], spec) || {};
      current = { ...target, default: current.default ?? target.default };
    } else if (current.anyOf || current.oneOf) {
      const options = (current.anyOf || current.oneOf).filter((s) => s.type !== "null");
      current = { ...options[0], default: current.default, title: current.title };
    } else if (current.allOf && current.allOf.length === 1) {
      current = { ...current.allOf[0], default: current.default };
    } else break;
  }
  return current;
}

function inputFor(parameter, id) {
  const schema = resolve(parameter.schema);
  const required = Boolean(parameter.required);
  const name = parameter.name;
  if (name === "tenant" && tenants.length) {
    return h("select", { id, name, required },
      required ? null : h("option", { value: "", text: "All I can see" }),
      tenants.map((t) => h("option", { value: t.id, text: t.name ? `${t.name} (${t.id})` : t.id })));
  }
  const values = schema.enum || (schema.items && resolve(schema.items).enum);
  if (values) {
    const select = h("select", { id, name, required },
      required ? null : h("option", { value: "", text: "—" }),
      values.map((v) => h("option", { value: String(v), text: humanize(v) })));
    if (schema.default !== undefined && schema.default !== null) select.value = String(schema.default);
    return select;
  }
  if (schema.type === "boolean") {
    return h("input", { id, name, type: "checkbox", value: "true", checked: schema.default === true });
  }
  const attributes = { id, name, required, autocomplete: "off" };
  if (schema.format === "date-time") Object.assign(attributes, { type: "datetime-local", dataset: { utc: "1" } });
  else if (schema.format === "date") attributes.type = "date";
  else if (schema.type === "integer" || schema.type === "number") {
    Object.assign(attributes, { type: "number", min: schema.minimum, max: schema.maximum });
  }
  if (/incident_id/.test(name)) attributes.list = "incident-ids";
  const input = h("input", attributes);
  if (schema.default !== undefined && schema.default !== null && input.type !== "datetime-local") {
    input.value = String(schema.default);
  }
  return input;
}

const ACRONYMS = { tlp: "TLP", stix: "STIX", pdf: "PDF", csv: "CSV", xlsx: "XLSX", json: "JSON", nis2: "NIS2",
  gdpr: "GDPR", id: "id" };
const ORDER = ["register", "statistics", "pdf", "notifications", "stix"]; // the order an auditor asks for them

function words(text) {
  const spaced = humanize(text).split(/\s+/).map((w) => ACRONYMS[w.toLowerCase()] || w.toLowerCase()).join(" ");
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

function rank(path) {
  const found = ORDER.findIndex((word) => path.includes(word));
  return found === -1 ? ORDER.length : found;
}

function label(parameter) {
  const schema = resolve(parameter.schema);
  let text = words(parameter.name);
  if (schema.format === "date-time") text += " (UTC)";
  if (schema.type === "array" && !(parameter.name === "tenant" && tenants.length)) text += " (comma-separated)";
  if (!parameter.required) text += " (optional)";
  return text;
}

function exportForm(path, operation, index) {
  const parameters = (operation.parameters || []).filter((p) => p.in === "path" || p.in === "query");
  const title = words(operation.summary || path.slice(PREFIX.length + 1).replaceAll("/", " ").replace(/[{}]/g, ""));
  const headingId = `export-${index}-heading`;
  const form = h("form", { class: "card export", "aria-labelledby": headingId, dataset: { path } },
    h("h2", { id: headingId, text: title }),
    operation.description ? h("p", { class: "muted", text: operation.description.split("\n\n")[0] }) : null,
    h("p", { class: "small code", text: `GET ${path}` }),
    h("div", { class: "field-row" }, parameters.map((parameter) => {
      const id = `export-${index}-${parameter.name}`;
      const input = inputFor(parameter, id);
      const hint = parameter.description ? h("p", { class: "hint", id: `${id}-hint`, text: parameter.description })
        : null;
      if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
      return input.type === "checkbox"
        ? h("div", { class: "field" }, h("label", { class: "check" }, input, ` ${label(parameter)}`), hint)
        : h("div", { class: "field" }, h("label", { for: id, text: label(parameter) }), input, hint);
    })),
    h("button", { type: "submit", text: `Download: ${title}` }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    download(form, path, parameters, title);
  });
  return form;
}

function urlFor(form, path, parameters) {
  let url = path;
  const query = new URLSearchParams();
  for (const parameter of parameters) {
    const input = form.elements.namedItem(parameter.name);
    if (!input) continue;
    let value = input.type === "checkbox" ? (input.checked ? "true" : "") : input.value.trim();
    if (value && input.dataset.utc) value = `${value.length === 16 ? `${value}:00` : value}Z`;
    if (parameter.in === "path") {
      url = url.replace(`{${parameter.name}}`, encodeURIComponent(value));
    } else if (value) {
      if (resolve(parameter.schema).type === "array") {
        for (const item of value.split(",").map((v) => v.trim()).filter(Boolean)) query.append(parameter.name, item);
      } else query.set(parameter.name, value);
    }
  }
  return { url, query };
}

function filename(response, url) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const star = disposition.match(/filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i);
  if (star) return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
  const plain = disposition.match(/filename\s*=\s*"?([^";]+)"?/i);
  if (plain) return plain[1].trim();
  const type = (response.headers.get("Content-Type") || "").split(";")[0].trim();
  const base = decodeURIComponent(url.split("/").filter(Boolean).slice(-2).join("-")).replace(/[^A-Za-z0-9._-]/g, "_");
  return /\.[a-z0-9]{2,5}$/i.test(base) ? base : `${base}.${EXTENSIONS[type] || "bin"}`;
}

async function download(form, path, parameters, title) {
  const button = form.querySelector("button[type=submit]");
  const { url, query } = urlFor(form, path, parameters);
  button.disabled = true;
  announce(`Preparing ${title}…`);
  try {
    const { response } = await request(url, { query, raw: true });
    const blob = await response.blob();
    const name = filename(response, url);
    const link = h("a", { href: URL.createObjectURL(blob), download: name, text: `${name}` });
    $("#no-downloads").hidden = true;
    $("#downloads").prepend(h("li", {}, link, h("span", { class: "muted small",
      text: ` — ${title}, ${blob.size.toLocaleString("en")} bytes` })));
    link.click();
    announce(`${title}: downloaded ${name}.`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) return;
    announce(error.noRoute
      ? `${title} is not available on this server yet (the API answered 404 for ${path}).`
      : `${title} failed: ${error.message}`, { error: true });
  } finally {
    button.disabled = false;
  }
}

function unavailable(message) {
  const notice = $("#exports-unavailable");
  notice.replaceChildren(h("h2", { text: "Compliance exports are not available yet" }), h("p", { text: message }));
  notice.hidden = false;
}

tenants = await startPage();
try {
  const response = await fetch("/openapi.json", { cache: "no-store", credentials: "omit" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  spec = await response.json();
} catch (error) {
  unavailable(`The list of exports could not be read from the server (${error.message}).`);
}
if (spec) {
  const exports = Object.entries(spec.paths || {})
    .filter(([path, item]) => (path === PREFIX || path.startsWith(`${PREFIX}/`)) && Boolean(item.get))
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
  if (!exports.length) {
    unavailable("This server does not offer compliance exports yet (the API has no routes under " +
      `${PREFIX}). Ask your administrator to update civicsoc.`);
  } else {
    if (exports.some(([path]) => path.includes("{incident_id}"))) {
      try {
        const page = await api("/api/v1/incidents", { query: { limit: "500", sort: "created_at", order: "desc" } });
        incidentIds = page.items.map((i) => [i.id, i.title]);
      } catch {
        incidentIds = [];
      }
    }
    const target = clear($("#exports"));
    target.append(h("datalist", { id: "incident-ids" },
      incidentIds.map(([id, title]) => h("option", { value: id, label: title }))));
    exports.forEach(([path, item], index) => target.append(exportForm(path, item.get, index)));
  }
}
