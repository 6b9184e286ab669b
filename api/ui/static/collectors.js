// Collector health from their heartbeats.

import { api } from "./api.js";
import { $, announce, badge, clear, duration, h, timeElement } from "./dom.js";
import { guarded, startPage } from "./page.js";

const body = $("#collectors tbody");

async function load() {
  const collectors = await guarded(() => api("/api/v1/collectors"), "Loading collectors failed");
  if (!collectors) return;
  clear(body);
  if (!collectors.length) {
    body.append(h("tr", {}, h("td", { colspan: "11", class: "muted",
      text: "No collector has reported yet. Collectors send a heartbeat when they start." })));
  }
  for (const c of collectors) {
    body.append(h("tr", { dataset: { collector: c.id } },
      h("th", { scope: "row", text: c.name }),
      h("td", { text: c.tenant }),
      h("td", {}, badge("health", c.health)),
      h("td", {}, h("span", { text: c.seconds_since_seen < 60 ? "under a minute ago " : `${duration(c.seconds_since_seen * 1000)} ago ` }), timeElement(c.last_seen)),
      h("td", { class: "number", text: c.lag_seconds ? duration(c.lag_seconds * 1000) : "0 min" }),
      h("td", { class: "number", text: c.events_total.toLocaleString("en") }),
      h("td", { class: "number", text: String(c.errors) }),
      h("td", { class: "number", text: String(c.dead_letters) }),
      h("td", { text: c.hostname || "—" }),
      h("td", { text: c.version }),
      h("td", { text: c.sources.join(", ") || "—" })));
  }
  const unhealthy = collectors.filter((c) => c.health !== "ok").length;
  $("#collectors-caption").textContent = `Collectors: ${collectors.length}, ${unhealthy} needing attention`;
  announce(`${collectors.length} collector${collectors.length === 1 ? "" : "s"}, ${unhealthy} needing attention.`);
}

await startPage();
$("#refresh").addEventListener("click", load);
load();
