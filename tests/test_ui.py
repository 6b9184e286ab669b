"""The triage web UI, driven as a person would drive it: Debian's Chromium (headless, through Playwright)
against a real uvicorn server on 127.0.0.1, serving an app over a SQLite store filled from real EVTX
samples for two agencies (tests/api_support.py).

Expected values come from the store or the raw events, never from the UI's own code; changes made
through the page are checked through the API. Full-page screenshots of the main pages are saved under
``test-output/ui/`` for a person to look at.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from api.app import create_app
from civicsoc.records import Incident, IncidentStatus, Role
from civicsoc.store import EventQuery, RecordQuery, Scope, TimeRange
from playbooks.loader import load_playbooks
from tests.api_support import Soc, build_soc, open_backend, soc_rules

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "ui"
CONFLICT_MESSAGE = "changed by someone else — reloaded"


@dataclass
class UiServer:
    url: str
    soc: Soc

    def api(self, tenant: str = "town-a", role: Role = Role.analyst) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.soc.headers(tenant, role), timeout=30)

    def token(self, tenant: str = "town-a", role: Role = Role.analyst) -> str:
        return self.soc.secrets[(tenant, role)]

    def incidents(self, tenant: str) -> list[Incident]:
        page = self.soc.store.incidents.list(Scope.of(tenant), RecordQuery(sort="id", descending=False, limit=500))
        return [item.record for item in page.items]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    backend = open_backend("sqlite", tmp_path_factory.mktemp("ui"), None)
    store = next(backend)
    rules = soc_rules()
    soc = build_soc(store, rules)
    app = create_app(store, ruleset=rules, playbooks=load_playbooks())
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=uv.run, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield UiServer(f"http://127.0.0.1:{port}", soc)
    finally:
        uv.should_exit = True
        thread.join(timeout=30)
        backend.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "the UI tests need Debian's chromium (make system-deps installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    created = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        yield created
    finally:
        created.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A tab that fails the test on any script error: a broken module shows as a silently empty page."""
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    assert errors == []


def sign_in(page: Page, server: UiServer, tenant: str = "town-a", role: Role = Role.analyst) -> None:
    page.goto(f"{server.url}/ui/signin")
    page.get_by_label("API token").fill(server.token(tenant, role))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/incidents$"))
    expect(page.locator("#queue tbody tr").first).to_be_visible()


def queue_ids(page: Page) -> list[str]:
    expect(page.locator("#queue")).not_to_have_attribute("aria-busy", "true")
    return page.locator("#queue tbody tr[data-incident-id]").evaluate_all(
        "rows => rows.map(row => row.dataset.incidentId)")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def version_of(api: httpx.Client, incident_id: str) -> str:
    response = api.get(f"/api/v1/incidents/{incident_id}")
    assert response.status_code == 200, response.text
    return response.headers["etag"].strip('"')


# --- sign-in ------------------------------------------------------------------------------------


def test_sign_in_keeps_the_token_in_this_tab_only(server: UiServer, page: Page, context: BrowserContext) -> None:
    page.goto(f"{server.url}/ui/incidents")
    page.wait_for_url(re.compile(r"/ui/signin\?next="))  # no token in this tab: off to sign in

    page.get_by_label("API token").fill("cs_0123456789abcdef_" + "A" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#error")).to_have_text("That token was not accepted.")

    page.get_by_label("API token").fill(server.token())
    page.get_by_label("API token").press("Enter")
    page.wait_for_url(re.compile(r"/ui/incidents$"))
    expect(page.locator("#signed-in-as")).to_have_text("Signed in for Town A")
    stored = page.evaluate("() => ({session: {...sessionStorage}, local: localStorage.length})")
    assert stored == {"session": {"civicsoc.token": server.token()}, "local": 0}
    assert context.cookies() == []

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/ui/signin"))
    assert page.evaluate("() => sessionStorage.length") == 0


def test_shell_pages_carry_no_tenant_data(server: UiServer) -> None:
    """The pages answer without a token, so they must hold nothing but the shell."""
    a_incidents = server.incidents("town-a")
    with httpx.Client(base_url=server.url) as anonymous:
        for path in ("/ui/incidents", "/ui/alerts", "/ui/rules", "/ui/collectors", "/ui/compliance",
                     f"/ui/incidents/{a_incidents[0].id}"):
            response = anonymous.get(path)
            assert response.status_code == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            for incident in a_incidents:
                assert incident.title not in response.text, (path, incident.title)
        assert anonymous.get("/ui/static/..%2Fapp.py").status_code == 404
        assert anonymous.get("/ui/static/nope.js").status_code == 404
        script = anonymous.get("/ui/static/api.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert anonymous.get("/api/v1/incidents").status_code == 401


# --- the queue ------------------------------------------------------------------------------------


def test_queue_filters_by_status_and_severity(server: UiServer, page: Page) -> None:
    a_incidents = server.incidents("town-a")
    chosen = a_incidents[0]
    with server.api() as api:
        response = api.patch(f"/api/v1/incidents/{chosen.id}", json={"status": "acknowledged"},
                             headers={"If-Match": f'"{version_of(api, chosen.id)}"'})
        assert response.status_code == 200, response.text
    current = {i.id: i for i in server.incidents("town-a")}
    sign_in(page, server)

    page.get_by_role("checkbox", name="acknowledged", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"[?&]status=acknowledged"))
    expected = {i for i, inc in current.items() if inc.status == IncidentStatus.acknowledged}
    assert chosen.id in expected
    expect(page.locator("#queue tbody tr[data-incident-id]")).to_have_count(len(expected))
    assert set(queue_ids(page)) == expected
    expect(page.locator(f'tr[data-incident-id="{chosen.id}"] .badge-status')).to_have_text("acknowledged")

    page.get_by_role("checkbox", name="acknowledged", exact=True).uncheck()
    page.get_by_role("checkbox", name="new", exact=True).check()
    page.get_by_role("checkbox", name="high", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    expected = {i for i, inc in current.items() if inc.status == IncidentStatus.new and inc.severity == "high"}
    expect(page.locator("#queue tbody tr[data-incident-id]")).to_have_count(len(expected))
    assert set(queue_ids(page)) == expected and chosen.id not in expected

    # A severity no town-a incident has: the queue says so rather than showing an empty table.
    page.get_by_role("checkbox", name="high", exact=True).uncheck()
    page.get_by_role("checkbox", name="critical", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    assert not any(inc.severity == "critical" for inc in current.values())
    expect(page.locator("#queue tbody")).to_have_text("No incidents match these filters.")

    # The filters live in the URL: a reload shows the same selection.
    page.reload()
    expect(page.get_by_role("checkbox", name="critical", exact=True)).to_be_checked()
    expect(page.get_by_role("checkbox", name="new", exact=True)).to_be_checked()


def test_bulk_acknowledge_and_assign_from_the_queue(server: UiServer, page: Page) -> None:
    targets = [i.id for i in server.incidents("town-a")[3:5]]
    sign_in(page, server)
    for incident_id in targets:
        page.locator(f'tr[data-incident-id="{incident_id}"] input[name=select]').check()
    expect(page.locator("#selection-count")).to_have_text("2 selected.")
    page.get_by_role("button", name="Acknowledge selected").click()
    expect(page.locator("#status")).to_have_text("Acknowledge: 2 of 2 incidents changed.")
    for incident_id in targets:
        page.locator(f'tr[data-incident-id="{incident_id}"] input[name=select]').check()
    page.get_by_label("Assign selected to").fill("jana.novak")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator("#status")).to_have_text("Assign to jana.novak: 2 of 2 incidents changed.")
    with server.api() as api:
        for incident_id in targets:
            incident = api.get(f"/api/v1/incidents/{incident_id}").json()["incident"]
            assert (incident["status"], incident["assignee"]) == ("acknowledged", "jana.novak")
    expect(page.locator(f'tr[data-incident-id="{targets[0]}"] td').nth(4)).to_have_text("jana.novak")


def test_queue_shows_deadline_countdowns(server: UiServer, page: Page) -> None:
    """Confirming an incident significant under NIS2 starts the 24 h early-warning clock (Art. 23(4)(a)):
    the queue counts down to the incident's earliest deadline still open."""
    target = server.incidents("town-a")[0]
    with server.api() as api:
        response = api.patch(f"/api/v1/incidents/{target.id}", json={"significant": True, "nis2": True},
                             headers={"If-Match": f'"{version_of(api, target.id)}"'})
        assert response.status_code == 200, response.text
        significant_at = _parse(response.json()["significant_at"])
        deadlines = api.get(f"/api/v1/incidents/{target.id}").json()["deadlines"]
    early = next(d for d in deadlines if d["key"] == "nis2-early-warning")
    assert _parse(early["due_at"]) == significant_at + timedelta(hours=24)
    earliest = min((d for d in deadlines if d["status"] == "open"), key=lambda d: _parse(d["due_at"]))
    sign_in(page, server)
    cell = page.locator(f'tr[data-incident-id="{target.id}"] td.deadline')
    expect(cell.locator(".countdown")).to_be_visible()
    expect(cell).to_contain_text(earliest["name"])
    hours = int((_parse(earliest["due_at"]) - datetime.now(UTC)).total_seconds() // 3600)
    if hours >= 24:
        shown = r"due in \d+ d \d+ h"
    elif hours >= 1:
        shown = rf"due in ({hours}|{hours - 1}) h \d+ min|due in \d+ min"  # a minute may pass meanwhile
    else:
        shown = r"due in \d+ min"
    expect(cell).to_contain_text(re.compile(shown))
    # "Due in the next 24 h": only incidents with a deadline running out by then, earliest first.
    page.get_by_label("Deadline", exact=True).select_option(label="Due in the next 24 h (or overdue)")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"due_within=24"))
    expect(page.locator("#queue-caption")).to_contain_text("shown")
    ids = queue_ids(page)
    assert target.id in ids
    dues = page.locator("#queue tbody td.deadline .countdown").evaluate_all(
        "cells => cells.map(cell => cell.dataset.due)")
    assert len(dues) == len(ids) and dues == sorted(dues, key=_parse)
    assert all(_parse(due) <= datetime.now(UTC) + timedelta(hours=24) for due in dues)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_keyboard_alone_reaches_the_queue_filters(server: UiServer, page: Page) -> None:
    sign_in(page, server)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    focused = page.evaluate("""() => { const e = document.activeElement;
        return {name: e.name, value: e.value, label: e.labels[0].textContent.trim(),
                outline: getComputedStyle(e).outlineStyle, form: e.form && e.form.id}; }""")
    assert focused == {"name": "severity", "value": "critical", "label": "critical", "outline": "solid",
                       "form": "filters"}
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # "high"
    for _ in range(30):
        if page.evaluate("() => document.activeElement.textContent") == "Apply filters":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"\?severity=high"))
    expected = {i.id for i in server.incidents("town-a") if i.severity == "high"}
    expect(page.locator("#queue tbody tr[data-incident-id]")).to_have_count(len(expected))


# --- one incident ---------------------------------------------------------------------------------


def test_incident_page_shows_an_incident_from_real_evtx(server: UiServer, page: Page) -> None:
    incident = max(server.incidents("town-a"), key=lambda i: len(i.alert_ids))
    store, scope = server.soc.store, Scope.of("town-a")
    alerts = [store.alerts.get(scope, alert_id).record for alert_id in incident.alert_ids]
    event_ids = sorted({event_id for alert in alerts for event_id in alert.event_ids})
    sign_in(page, server)
    page.get_by_role("link", name=incident.title).click()
    page.wait_for_url(re.compile(f"/ui/incidents/{incident.id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(incident.title)
    expect(page.locator("#alerts-table tbody tr")).to_have_count(len(alerts))
    for title in {alert.rule_title for alert in alerts}:
        expect(page.locator("#alerts-table")).to_contain_text(title)
    expect(page.locator("#attack li")).to_have_count(len(incident.techniques))
    for host in incident.hosts:
        expect(page.locator("#entities")).to_contain_text(host)
    # The timeline: the stored events behind the alerts, read here straight from the store.
    window = TimeRange(min(a.timestamp for a in alerts).replace(year=2000), datetime.now(UTC))
    events = list(store.iter_events(scope, EventQuery.where(window, {"event.id": event_ids})))
    assert events, "the incident's alerts point at stored events"
    expect(page.locator("#timeline-table tbody tr")).to_have_count(len(events))
    for event in events:
        command_line = (event.fields.get("process") or {}).get("command_line")
        if command_line:
            expect(page.locator("#timeline-table")).to_contain_text(command_line[:60])


def test_status_change_survives_a_conflicting_edit(server: UiServer, page: Page) -> None:
    target = server.incidents("town-a")[1]
    sign_in(page, server)
    page.goto(f"{server.url}/ui/incidents/{target.id}")
    expect(page.locator("#incident-status")).to_have_text(target.status.value)

    with server.api() as api:  # someone else edits the incident after the page read it
        response = api.patch(f"/api/v1/incidents/{target.id}", json={"assignee": "someone.else"},
                             headers={"If-Match": f'"{version_of(api, target.id)}"'})
        assert response.status_code == 200, response.text

    page.get_by_label("Change status to").select_option("investigating")
    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#error")).to_contain_text(CONFLICT_MESSAGE)
    expect(page.get_by_label("Assignee", exact=True)).to_have_value("someone.else")  # reloaded
    expect(page.locator("#incident-status")).to_have_text(target.status.value)  # nothing applied blindly

    page.get_by_label("Change status to").select_option("investigating")
    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#status")).to_have_text("Status change to investigating: saved.")
    expect(page.locator("#incident-status")).to_have_text("investigating")

    # A transition the workflow refuses (investigating → new) is explained, not swallowed.
    page.get_by_label("Change status to").select_option("new")
    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#error")).to_contain_text("cannot go from investigating to new")

    with server.api() as api:
        incident = api.get(f"/api/v1/incidents/{target.id}").json()["incident"]
    assert (incident["status"], incident["assignee"]) == ("investigating", "someone.else")


def test_ticking_a_playbook_step(server: UiServer, page: Page) -> None:
    target = server.incidents("town-a")[2]
    with server.api() as api:
        runs = api.get(f"/api/v1/incidents/{target.id}").json()["playbooks"]
        if not any(run["playbook_id"] == "ransomware" for run in runs):
            response = api.post(f"/api/v1/incidents/{target.id}/playbooks", json={"playbook_id": "ransomware"})
            assert response.status_code == 201, response.text
        run = next(r for r in api.get(f"/api/v1/incidents/{target.id}").json()["playbooks"]
                   if r["playbook_id"] == "ransomware")
    step = next(s for s in run["steps"] if s["status"] == "todo")
    sign_in(page, server)
    page.goto(f"{server.url}/ui/incidents/{target.id}")
    checkbox = page.get_by_role("checkbox", name=step["title"], exact=True)
    expect(checkbox).not_to_be_checked()
    checkbox.check()
    expect(page.locator("#status")).to_have_text(f"Step “{step['title']}” marked done.")
    expect(page.get_by_role("checkbox", name=step["title"], exact=True)).to_be_checked()
    # The page was rebuilt under the keyboard user: focus is back on the same checkbox.
    assert page.evaluate("() => document.activeElement.id") == f"step-ransomware-{step['id']}"
    with server.api() as api:
        after = next(r for r in api.get(f"/api/v1/incidents/{target.id}").json()["playbooks"]
                     if r["playbook_id"] == "ransomware")
    ticked = next(s for s in after["steps"] if s["id"] == step["id"])
    assert ticked["status"] == "done" and ticked["by"]
    assert after["version"] != run["version"]
    untouched = [s["status"] for s in after["steps"] if s["id"] != step["id"]]
    assert untouched == [s["status"] for s in run["steps"] if s["id"] != step["id"]]


def test_recording_a_sent_report_stops_its_clock(server: UiServer, page: Page, tmp_path: Path) -> None:
    target = server.incidents("town-a")[3]
    with server.api() as api:
        confirmed = api.patch(f"/api/v1/incidents/{target.id}", json={"significant": True, "nis2": True},
                              headers={"If-Match": f'"{version_of(api, target.id)}"'})
        assert confirmed.status_code == 200, confirmed.text
    sent = tmp_path / "early-warning.txt"
    sent.write_bytes("NIS2 early warning — incident at the town hall\n".encode())
    sign_in(page, server, role=Role.compliance)
    page.goto(f"{server.url}/ui/incidents/{target.id}")
    expect(page.locator("#submissions")).to_contain_text("No report has been recorded as sent.")
    page.get_by_text("Record a report sent to an authority…").click()
    page.get_by_label("Report", exact=True).select_option(label="NIS2 early warning")
    page.get_by_label("File sent").set_input_files(str(sent))
    page.get_by_label("Sent to").fill("CSIRT")
    page.get_by_label("Authority's reference").fill("CSIRT-2026-7")
    page.get_by_role("button", name="Record report").click()
    digest = hashlib.sha256(sent.read_bytes()).hexdigest()
    expect(page.locator("#status")).to_have_text(f"Report recorded as sent (SHA-256 {digest[:16]}…).")
    row = page.locator("#submissions-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("CSIRT-2026-7")
    assert row.locator("code").get_attribute("title") == digest
    early = page.locator("#deadlines tr", has_text="NIS2 early warning")
    expect(early.locator(".badge-deadline")).to_have_text("met")
    with server.api() as api:
        [recorded] = api.get(f"/api/v1/incidents/{target.id}/submissions").json()
    assert (recorded["sha256"], recorded["filename"], recorded["size"]) == (digest, sent.name, sent.stat().st_size)


def test_another_agencys_incident_is_absent(server: UiServer, page: Page) -> None:
    a_ids = {i.id for i in server.incidents("town-a")}
    b_incidents = server.incidents("town-b")
    assert b_incidents and a_ids
    sign_in(page, server)
    shown = set(queue_ids(page))
    assert shown == a_ids  # under one page: town-a has fewer incidents than the page size
    assert not shown & {i.id for i in b_incidents}
    other = b_incidents[0]
    page.goto(f"{server.url}/ui/incidents/{other.id}")
    expect(page.get_by_role("heading", name="Incident not found")).to_be_visible()
    expect(page.locator("#missing-id")).to_have_text(other.id)
    assert other.title not in page.content()


def test_a_comment_is_shown_as_text_never_as_markup(server: UiServer, page: Page) -> None:
    target = server.incidents("town-a")[1]
    text = 'Checked <b>ie10win7</b> <img src=x onerror="document.title=1">: wevtutil ran as SYSTEM'
    sign_in(page, server)
    page.goto(f"{server.url}/ui/incidents/{target.id}")
    page.get_by_label("Add a comment").fill(text)
    page.get_by_role("button", name="Add comment").click()
    expect(page.locator("#status")).to_have_text("Comment added.")
    shown = page.locator("#comments .comment-text").last
    expect(shown).to_have_text(text)
    assert shown.locator("b, img").count() == 0
    with server.api() as api:
        comments = api.get(f"/api/v1/incidents/{target.id}/comments").json()
    assert comments[-1]["text"] == text and comments[-1]["author"]


# --- the other pages ------------------------------------------------------------------------------


def test_rules_page_disables_a_rule_and_previews_one(server: UiServer, page: Page) -> None:
    store = server.soc.store
    rule = next(r for r in server.soc.rules.loaded if r.title.startswith("Security Eventlog Cleared"))
    sign_in(page, server)
    page.goto(f"{server.url}/ui/rules")
    if page.locator("#rules-unavailable").is_visible():  # the rule routes have not landed on this server
        expect(page.locator("#rules-unavailable")).to_contain_text("answered 404 for /api/v1/rules")
        return
    page.get_by_label("Title or id contains").fill(rule.id)
    page.get_by_role("button", name="Apply filters").click()
    row = page.locator(f'#rules tbody tr[data-rule-id="{rule.id}"]')
    expect(row).to_contain_text(rule.title)
    page.get_by_label("Reason (recorded in the audit trail)").fill("too noisy during the migration")
    row.get_by_role("button", name=f"Disable rule {rule.title} for town-a").click()
    expect(page.locator("#status")).to_contain_text("disabled for town-a")
    with server.api() as api:
        listed = next(r for r in api.get("/api/v1/rules", params={"q": rule.id}).json() if r["id"] == rule.id)
    assert listed["disabled_in"] == ["town-a"]

    # Preview a rule for Security event 1102 ("the audit log was cleared") over town-a's stored events.
    everything = TimeRange(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
    events = list(store.iter_events(Scope.of("town-a"), EventQuery.where(everything, {})))
    cleared = [e for e in events if (e.fields.get("event") or {}).get("code") == "1102"
               and (e.fields.get("winlog") or {}).get("channel") == "Security"]
    assert len(cleared) == 3  # hand-checked: one 1102 in each of three of the five EVTX samples
    page.get_by_label("From (UTC)").fill("2000-01-01T00:00")
    page.get_by_label("Agency", exact=True).select_option("town-a")
    page.get_by_label("Events to test (at most)").fill("10000")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-summary")).to_have_text(
        f"{len(events)} events tested; {len(cleared)} matches covering {len(cleared)} events.")
    page.get_by_label("Title or id contains").fill("")
    page.get_by_label("Only rules that raised alerts").check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#rules tbody tr").first).to_be_visible()


def test_alerts_page_acknowledges_and_marks_false_positives(server: UiServer, page: Page) -> None:
    page_of_alerts = server.soc.store.alerts.list(Scope.of("town-a"), RecordQuery(sort="id", limit=500))
    first, second = [item.record for item in page_of_alerts.items if item.record.status == "new"][:2]
    sign_in(page, server)
    page.goto(f"{server.url}/ui/alerts")
    page.locator(f'tr[data-alert-id="{first.id}"]').get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#status")).to_have_text(f"Acknowledged: {first.rule_title}.")
    row = page.locator(f'tr[data-alert-id="{second.id}"]')
    row.get_by_text("False positive…").click()
    row.get_by_label("Reason").fill("admin maintenance window")
    row.get_by_role("button", name="Mark false positive").click()
    expect(page.locator("#status")).to_have_text(f"Marked false positive: {second.rule_title}.")
    page.get_by_role("checkbox", name="false positive", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#alerts tbody tr[data-alert-id]")).to_have_count(1)
    expect(page.locator(f'tr[data-alert-id="{second.id}"] .badge-alert')).to_have_text("false positive")
    with server.api() as api:
        assert api.get(f"/api/v1/alerts/{first.id}").json()["status"] == "acknowledged"
        assert api.get(f"/api/v1/alerts/{second.id}").json()["status"] == "false_positive"


def test_collectors_page_shows_heartbeats_of_this_agency_only(server: UiServer, page: Page) -> None:
    beats = {"town-a": ("eventlog-forwarder", 1234), "town-b": ("town-b-syslog", 99)}
    for tenant, (name, total) in beats.items():
        with server.api(tenant, Role.collector) as api:
            response = api.post("/api/v1/collectors/heartbeat",
                                json={"name": name, "version": "1.2.0", "hostname": f"{name}.example",
                                      "sources": ["security"], "events_total": total})
            assert response.status_code == 200, response.text
    sign_in(page, server)
    page.goto(f"{server.url}/ui/collectors")
    row = page.locator('#collectors tbody tr[data-collector="town-a.eventlog-forwarder"]')
    expect(row.locator(".badge-health")).to_have_text("ok")
    expect(row).to_contain_text("1,234")
    expect(page.locator("#collectors tbody tr")).to_have_count(1)
    assert "town-b-syslog" not in page.content()


def test_compliance_export_downloads_or_explains(server: UiServer, page: Page, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    reports = sorted(path for path, item in paths.items() if path.startswith("/api/v1/reports") and "get" in item)
    sign_in(page, server, role=Role.compliance)
    page.goto(f"{server.url}/ui/compliance")
    if not reports:
        # The report routes are still being written: the page must say so plainly, not offer dead buttons.
        expect(page.locator("#exports-unavailable")).to_contain_text(
            "This server does not offer compliance exports yet")
        expect(page.locator("form.export")).to_have_count(0)
        return
    expect(page.locator("form.export")).to_have_count(len(reports))
    register = next((path for path in reports if "register" in path), reports[0])
    form = page.locator(f'form.export[data-path="{register}"]')
    for date_input in form.locator("input[required][type=datetime-local]").all():
        date_input.fill("2000-01-01T00:00")  # everything stored: the samples date from 2013 to 2023
    format_choice = form.locator("select[name=format]")
    if format_choice.count() and format_choice.locator("option[value=csv]").count():
        format_choice.select_option("csv")
    with page.expect_download() as download_info:
        form.get_by_role("button").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    content = saved.read_bytes()
    assert content
    if saved.suffix in {".csv", ".json"}:
        text = content.decode("utf-8-sig")
        assert any(i.id in text for i in server.incidents("town-a"))
        assert not any(i.id in text for i in server.incidents("town-b"))
    expect(page.locator("#downloads li")).to_have_count(1)

    stix = next((path for path in reports if path.endswith("/stix")), None)
    if stix is not None:  # a per-incident export: town-a's incident downloads, town-b's is "not found"
        form = page.locator(f'form.export[data-path="{stix}"]')
        mine, theirs = server.incidents("town-a")[0], server.incidents("town-b")[0]
        form.locator("input[name=incident_id]").fill(mine.id)
        with page.expect_download() as download_info:
            form.get_by_role("button").click()
        bundle = json.loads(Path(download_info.value.path()).read_text("utf-8"))
        assert bundle["type"] == "bundle" and mine.id in json.dumps(bundle)
        form.locator("input[name=incident_id]").fill(theirs.id)
        form.get_by_role("button").click()
        expect(page.locator("#error")).to_contain_text("not found")
        expect(page.locator("#downloads li")).to_have_count(2)


# --- accessibility and the screenshots ------------------------------------------------------------

CONTRAST_PROBE = """() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const rgba = parse(getComputedStyle(e).backgroundColor);
      if (rgba.length === 3 || (rgba.length === 4 && rgba[3] === 1)) return rgba.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim() || !element.checkVisibility()) continue;
    const rect = element.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    out.push({text: node.textContent.trim().slice(0, 40), color: parse(getComputedStyle(element).color).slice(0, 3),
              background: background(element), tag: element.tagName});
  }
  return out;
}"""

UNLABELLED_PROBE = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => e.checkVisibility() && e.type !== "hidden")
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby")
                 && !(e.tagName === "BUTTON" && e.textContent.trim()))
  .map((e) => e.outerHTML.slice(0, 120))"""


def _luminance(rgb: list[float]) -> float:
    """WCAG 2.x relative luminance (https://www.w3.org/TR/WCAG21/#dfn-relative-luminance)."""
    channels = []
    for value in rgb:
        c = value / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(foreground: list[float], background: list[float]) -> float:
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_contrast_formula_matches_wcag_reference_values() -> None:
    assert contrast([0, 0, 0], [255, 255, 255]) == pytest.approx(21.0)
    assert contrast([255, 255, 255], [255, 255, 255]) == pytest.approx(1.0)
    assert contrast([118, 118, 118], [255, 255, 255]) == pytest.approx(4.54, abs=0.01)  # #767676, the AA edge


def test_main_pages_are_labelled_readable_and_saved_as_screenshots(server: UiServer, page: Page) -> None:
    incident = server.incidents("town-a")[2]  # the one the playbook test attaches a playbook to
    sign_in(page, server)
    pages = {
        "queue": ("/ui/incidents", "#queue tbody tr[data-incident-id]"),
        "incident-detail": (f"/ui/incidents/{incident.id}", "#alerts-table tbody tr"),
        "alerts": ("/ui/alerts", "#alerts tbody tr[data-alert-id]"),
        "rules": ("/ui/rules?only_alerting=true", "#rules tbody tr[data-rule-id]"),
        "collectors": ("/ui/collectors", "#collectors tbody tr"),
        "compliance": ("/ui/compliance", "#downloads-heading"),
    }
    for name, (path, ready) in pages.items():
        page.goto(f"{server.url}{path}")
        expect(page.locator(ready).first).to_be_visible()
        expect(page.locator("#error")).to_be_empty()
        assert page.evaluate(UNLABELLED_PROBE) == [], name
        low = [(item["text"], item["tag"], round(contrast(item["color"], item["background"]), 2))
               for item in page.evaluate(CONTRAST_PROBE)
               if contrast(item["color"], item["background"]) < 4.5]
        assert low == [], name
        assert page.locator("main h1:visible").count() == 1, name
        path_saved = screenshot(page, name)
        assert path_saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Badges were among the checked text: the queue and the incident page have severity and status badges.
    page.goto(f"{server.url}/ui/incidents")
    expect(page.locator("#queue .badge-severity").first).to_be_visible()
