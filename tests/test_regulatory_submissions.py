"""Regulatory submissions and notification regimes over HTTP, on incidents built from real EVTX.

What an auditor asks after an incident: was each report sent in time, by whom, to whom, and which
document was it. The hashes here are computed by the test from the bytes it sent (hashlib), the due
times from the texts (NIS2 Art. 23(4): 24 h/72 h; GDPR Art. 33: 72 h; CISA's federal guidelines: 1 h).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from civicsoc import audit
from civicsoc.records import Incident, NotificationRegime, Role, Severity, Submission
from civicsoc.store.sqlite import SqliteStore
from playbooks.clocks import RegulatoryFlags, regulatory_deadlines, submissions_from_records
from playbooks.model import Clock
from tests.api_support import Soc, soc_per_backend

API = "/api/v1"


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def soc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soc]:
    yield from soc_per_backend(request, tmp_path_factory)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def confirmed_incident(confirmed_at: datetime) -> Incident:
    return Incident(id="inc-1", tenant="town-a", title="t", severity=Severity.high, first_seen=confirmed_at,
                    last_seen=confirmed_at, significant_at=confirmed_at, nis2=True, gdpr=True)


def submission(clock: Clock, sent: str) -> Submission:
    return Submission(id=f"sub-{sent}", tenant="town-a", incident_id="inc-1", clock=clock.value,
                      submitted_at=utc(sent), author="analyst", sha256="a" * 64)


# --- the clocks, pure ---------------------------------------------------------------------------------------


def test_the_us_federal_regime_replaces_the_nis2_clocks_by_cisas_hour() -> None:
    confirmed = utc("2026-03-29T00:30:00+00:00")  # the night Europe/Brussels moves to summer time
    incident = confirmed_incident(confirmed)
    eu = {d.key: d.due_at for d in regulatory_deadlines(incident, RegulatoryFlags(nis2=True, gdpr=True), confirmed)}
    us = {d.key: d.due_at for d in regulatory_deadlines(
        incident, RegulatoryFlags(nis2=True, gdpr=True, regime=NotificationRegime.us_federal), confirmed)}
    assert eu == {"nis2-early-warning": utc("2026-03-30T00:30:00+00:00"),
                  "nis2-incident-notification": utc("2026-04-01T00:30:00+00:00"),
                  "nis2-final-report": utc("2026-05-01T00:30:00+00:00"),
                  "gdpr-breach-notification": utc("2026-04-01T00:30:00+00:00")}
    assert us == {"cisa-incident-notification": utc("2026-03-29T01:30:00+00:00"),
                  "gdpr-breach-notification": utc("2026-04-01T00:30:00+00:00")}


def test_the_first_recorded_submission_decides_whether_the_deadline_was_met() -> None:
    confirmed = utc("2026-06-01T10:00:00+00:00")
    incident = confirmed_incident(confirmed)
    late, in_time = submission(Clock.cisa_incident_notification, "2026-06-01T11:20:00+00:00"), \
        submission(Clock.cisa_incident_notification, "2026-06-01T10:45:00+00:00")

    def cisa(*submissions: Submission) -> tuple[str, datetime | None]:
        flags = RegulatoryFlags(regime=NotificationRegime.us_federal,
                                submitted=submissions_from_records(submissions))
        [deadline] = [d for d in regulatory_deadlines(incident, flags, utc("2026-06-02T00:00:00+00:00"))
                      if d.key == "cisa-incident-notification"]
        return deadline.status.value, deadline.done_at

    assert cisa(late) == ("missed", utc("2026-06-01T11:20:00+00:00"))
    assert cisa(late, in_time) == ("met", utc("2026-06-01T10:45:00+00:00"))
    assert cisa() == ("missed", None)  # a day later and nothing sent


# --- over HTTP, both stores ---------------------------------------------------------------------------------


def untouched_incident(soc: Soc, tenant: str) -> dict:
    headers = soc.headers(tenant, Role.analyst)
    page = soc.client.get(f"{API}/incidents", params={"status": "new", "limit": 500}, headers=headers).json()
    used = {s.incident_id for s in _all_submissions(soc)}
    fresh = [item for item in page["items"] if item["significant_at"] is None and item["id"] not in used]
    assert fresh, "the fixture data has run out of untouched incidents"
    return fresh[0]


def _all_submissions(soc: Soc) -> list[Submission]:
    from civicsoc.store import RecordQuery, Scope

    page = soc.store.records(Submission).list(Scope.all(), RecordQuery(sort="id", limit=1000))
    return [item.record for item in page.items]


def confirm(soc: Soc, tenant: str, incident_id: str, **flags: bool) -> datetime:
    headers = soc.headers(tenant, Role.analyst)
    url = f"{API}/incidents/{incident_id}"
    etag = soc.client.get(url, headers=headers).headers["etag"]
    confirmed = soc.client.patch(url, json={"significant": True, **flags}, headers={**headers, "If-Match": etag})
    assert confirmed.status_code == 200, confirmed.text
    return datetime.fromisoformat(confirmed.json()["significant_at"])


def test_a_sent_notification_is_recorded_with_its_hash_and_meets_the_deadline(soc: Soc) -> None:
    incident = untouched_incident(soc, "town-a")
    url = f"{API}/incidents/{incident['id']}"
    confirm(soc, "town-a", incident["id"], nis2=True)
    compliance = soc.headers("town-a", Role.compliance)
    # The compliance officer downloads the early-warning draft, sends it, and records what went out.
    draft = soc.client.get(f"{API}/reports/incidents/{incident['id']}/notifications/nis2-early-warning",
                           params={"format": "pdf"}, headers=compliance)
    assert draft.status_code == 200 and draft.content.startswith(b"%PDF")
    sent = soc.client.post(f"{url}/submissions", headers=compliance, json={
        "clock": "nis2-early-warning", "content_base64": base64.b64encode(draft.content).decode(),
        "filename": "early-warning.pdf", "recipient": "CSIRT", "reference": "CSIRT-2026-0042"})
    assert sent.status_code == 201, sent.text
    recorded = sent.json()
    assert recorded["sha256"] == hashlib.sha256(draft.content).hexdigest()
    assert recorded["size"] == len(draft.content)
    assert recorded["author"].startswith("compliance-town-a")
    detail = soc.client.get(url, headers=compliance).json()
    deadlines = {d["key"]: d for d in detail["deadlines"]}
    assert deadlines["nis2-early-warning"]["status"] == "met"
    assert utc(deadlines["nis2-early-warning"]["done_at"]) == utc(recorded["submitted_at"])
    assert deadlines["nis2-incident-notification"]["status"] == "open"  # only the early warning went out
    assert [s["id"] for s in detail["submissions"]] == [recorded["id"]]
    assert [s["id"] for s in soc.client.get(f"{url}/submissions", headers=compliance).json()] == [recorded["id"]]
    trail = [r for r in audit.iter_chain(soc.store) if r.action == "incident.submission"
             and r.target == f"incidents/{incident['id']}"]
    assert [(r.after["sha256"], r.after["reference"]) for r in trail] == [(recorded["sha256"], "CSIRT-2026-0042")]
    # Sent elsewhere: the hash alone is recorded, as given (case-folded).
    hashed = soc.client.post(f"{url}/submissions", headers=soc.headers("town-a", Role.analyst), json={
        "clock": "nis2-incident-notification", "sha256": "AB" * 32, "submitted_at": "2026-01-01T00:00:00+01:00"})
    assert hashed.status_code == 201, hashed.text
    assert (hashed.json()["sha256"], hashed.json()["size"]) == ("ab" * 32, None)
    assert utc(hashed.json()["submitted_at"]) == utc("2025-12-31T23:00:00+00:00")


def test_submissions_that_do_not_fit_are_refused_with_the_reason(soc: Soc) -> None:
    incident = untouched_incident(soc, "town-a")
    url = f"{API}/incidents/{incident['id']}/submissions"
    analyst = soc.headers("town-a", Role.analyst)
    content = b"notification text"
    body = {"clock": "gdpr-breach-notification", "content_base64": base64.b64encode(content).decode()}
    not_started = soc.client.post(url, json=body, headers=analyst)
    assert not_started.status_code == 409
    assert "gdpr-breach-notification clock has not started" in not_started.json()["detail"]
    confirm(soc, "town-a", incident["id"], gdpr=True)
    wrong_hash = soc.client.post(url, json={**body, "sha256": hashlib.sha256(b"other").hexdigest()}, headers=analyst)
    assert wrong_hash.status_code == 409
    assert hashlib.sha256(content).hexdigest() in wrong_hash.json()["detail"]
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert soc.client.post(url, json={**body, "submitted_at": future}, headers=analyst).status_code == 409
    assert soc.client.post(url, json={"clock": "gdpr-breach-notification"}, headers=analyst).status_code == 422
    assert soc.client.post(url, json={**body, "content_base64": "not base64!"}, headers=analyst).status_code == 422
    assert soc.client.post(url, json={**body, "content_base64": "ü" * 4}, headers=analyst).status_code == 422
    assert soc.client.post(url, json={**body, "clock": "nis2-early-warning"}, headers=analyst).status_code == 409
    viewer = soc.client.post(url, json=body, headers=soc.headers("town-a", Role.viewer))
    assert viewer.status_code == 403
    assert soc.client.get(url, headers=analyst).json() == []  # nothing refused was recorded
    accepted = soc.client.post(url, json=body, headers=analyst)
    assert accepted.status_code == 201 and accepted.json()["sha256"] == hashlib.sha256(content).hexdigest()


def test_a_us_federal_tenant_gets_the_one_hour_cisa_clock(soc: Soc) -> None:
    tenant_url = f"{API}/tenants/town-b"
    denied = soc.client.patch(tenant_url, json={"notification_regime": "us-federal"},
                              headers=soc.headers("town-b", Role.analyst))
    assert denied.status_code == 403
    changed = soc.client.patch(tenant_url, json={"notification_regime": "us-federal"}, headers=soc.admin_headers)
    assert changed.status_code == 200 and changed.json()["notification_regime"] == "us-federal"
    try:
        incident = untouched_incident(soc, "town-b")
        confirmed_at = confirm(soc, "town-b", incident["id"], nis2=True)
        url = f"{API}/incidents/{incident['id']}"
        headers = soc.headers("town-b", Role.analyst)
        deadlines = {d["key"]: d for d in soc.client.get(url, headers=headers).json()["deadlines"] if d["regulation"]}
        assert set(deadlines) == {"cisa-incident-notification"}
        assert utc(deadlines["cisa-incident-notification"]["due_at"]) - confirmed_at == timedelta(hours=1)
        compliance = soc.headers("town-b", Role.compliance)
        draft_url = f"{API}/reports/incidents/{incident['id']}/notifications/cisa-federal"
        draft = soc.client.get(draft_url, headers=compliance).json()
        assert utc(draft["due_at"]) == utc(deadlines["cisa-incident-notification"]["due_at"])
        assert "functional_impact" in draft["missing"] and draft["systems_affected"] == len(incident["hosts"])
        document = soc.client.get(draft_url, params={"format": "pdf"}, headers=compliance)
        assert document.status_code == 200 and document.content.startswith(b"%PDF")
        sent = soc.client.post(f"{url}/submissions", headers=headers, json={
            "clock": "cisa-incident-notification", "content_base64": base64.b64encode(document.content).decode()})
        assert sent.status_code == 201, sent.text
        assert sent.json()["sha256"] == hashlib.sha256(document.content).hexdigest()
        after = {d["key"]: d for d in soc.client.get(url, headers=headers).json()["deadlines"]}
        assert after["cisa-incident-notification"]["status"] == "met"
        register = soc.client.get(f"{API}/reports/register", params={"format": "json", "tenant": "town-b"},
                                  headers=soc.headers("town-b", Role.compliance)).json()
        rows = register["incidents"] if isinstance(register, dict) else register
        [row] = [r for r in rows if r["incident_id"] == incident["id"]]
        assert row["cisa_incident_notification_status"] == "met"
        assert row["nis2_early_warning_status"] in (None, "")
    finally:
        restored = soc.client.patch(tenant_url, json={"notification_regime": "eu"}, headers=soc.admin_headers)
        assert restored.status_code == 200
    changes = [(r.before, r.after) for r in audit.iter_chain(soc.store) if r.action == "tenant.notification_regime"]
    assert changes[-2:] == [({"notification_regime": "eu"}, {"notification_regime": "us-federal"}),
                            ({"notification_regime": "us-federal"}, {"notification_regime": "eu"})]


def test_the_cli_sets_a_tenants_regime_and_refuses_an_unknown_tenant(tmp_path: Path) -> None:
    env = {**os.environ, "CIVICSOC_STORE": f"sqlite:///{tmp_path / 'cli.db'}"}

    def civicsoc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "civicsoc", *args], capture_output=True, text=True, timeout=120,
                              env=env)

    created = civicsoc("tenant", "create", "fed-agency", "--name", "A federal agency",
                       "--notification-regime", "us-federal")
    assert created.returncode == 0, created.stderr
    assert civicsoc("tenant", "create", "town-c").returncode == 0
    assert civicsoc("tenant", "set", "town-c", "--notification-regime", "us-federal").returncode == 0
    assert civicsoc("tenant", "set", "town-c", "--notification-regime", "eu").returncode == 0
    listed = {line.split()[0]: line.split()[1] for line in civicsoc("tenant", "list").stdout.splitlines()}
    assert listed == {"fed-agency": "us-federal", "town-c": "eu"}
    unknown = civicsoc("tenant", "set", "nowhere", "--notification-regime", "eu")
    assert unknown.returncode == 2 and "tenant 'nowhere' does not exist" in unknown.stderr
    wrong = civicsoc("tenant", "set", "town-c", "--notification-regime", "mars")
    assert wrong.returncode == 2 and "mars" in wrong.stderr
    store = SqliteStore(env["CIVICSOC_STORE"])
    try:
        actions = [(r.tenant, r.after) for r in audit.iter_chain(store) if r.action == "tenant.notification_regime"]
    finally:
        store.close()
    assert actions == [("fed-agency", {"notification_regime": "us-federal"}),
                       ("town-c", {"notification_regime": "us-federal"}), ("town-c", {"notification_regime": "eu"})]


def test_the_queue_lists_what_is_due_soonest_as_the_incident_pages_say(soc: Soc) -> None:
    analyst = soc.headers("town-a", Role.analyst)
    soon = untouched_incident(soc, "town-a")
    confirm(soc, "town-a", soon["id"], nis2=True)  # early warning due in 24 h
    later = untouched_incident(soc, "town-a")
    confirm(soc, "town-a", later["id"], gdpr=True)  # GDPR notification due in 72 h
    now = datetime.now(UTC)

    def pending(incident_id: str) -> dict | None:
        """The incident page's earliest deadline not yet met (the oracle for the list)."""
        deadlines = soc.client.get(f"{API}/incidents/{incident_id}", headers=analyst).json()["deadlines"]
        waiting = [d for d in deadlines if d["status"] == "open" or (d["status"] == "missed" and not d["done_at"])]
        return min(waiting, key=lambda d: (utc(d["due_at"]), d["key"]), default=None)

    everything = soc.client.get(f"{API}/incidents", params={"limit": 500, "deadlines": "true"}, headers=analyst)
    assert everything.status_code == 200
    open_ones = [i for i in everything.json()["items"]
                 if i["status"] not in ("resolved", "false_positive", "duplicate")]
    expected = {}
    for item in open_ones:
        oracle = pending(item["id"])
        assert (item["next_deadline"] or {}).get("key") == (oracle or {}).get("key"), item["id"]
        if oracle and utc(oracle["due_at"]) <= now + timedelta(hours=48):
            expected[item["id"]] = utc(oracle["due_at"])
    assert soon["id"] in expected and later["id"] not in expected
    walked, cursor = [], None
    while True:  # one at a time, to exercise the cursor
        page = soc.client.get(f"{API}/incidents", headers=analyst,
                              params={"due_within": 48, "limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i["id"] for i in walked] == sorted(expected, key=lambda i: (expected[i], i))
    assert all(utc(i["next_deadline"]["due_at"]) == expected[i["id"]] for i in walked)
    wider = soc.client.get(f"{API}/incidents", params={"due_within": 96, "limit": 500}, headers=analyst).json()
    assert later["id"] in {i["id"] for i in wider["items"]}
    assert soc.client.get(f"{API}/incidents", params={"due_within": 48, "cursor": "nonsense"},
                          headers=analyst).status_code == 422
