"""The analyst's workflow over HTTP on incidents built from real EVTX: statuses, optimistic concurrency,
merge/split, comments, alerts, events, collectors, tokens, metrics, and the audit trail behind them."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import Evtx.Evtx as PythonEvtx
import pytest

from civicsoc import audit, tokens
from civicsoc.records import AuditRecord, Role
from civicsoc.store import EventQuery, RecordQuery, Scope, TimeRange
from tests.api_support import EVTX, FILES, Soc, soc_per_backend

API = "/api/v1"


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def soc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soc]:
    yield from soc_per_backend(request, tmp_path_factory)


def analyst(soc: Soc, tenant: str = "town-a") -> dict[str, str]:
    return soc.headers(tenant, Role.analyst)


def fresh_incident(soc: Soc, *, min_alerts: int = 1) -> dict:
    """An incident nobody has touched yet in this module (status new), with at least ``min_alerts``."""
    page = soc.client.get(f"{API}/incidents", params={"status": "new", "limit": 500}, headers=analyst(soc)).json()
    candidates = [item for item in page["items"] if len(item["alert_ids"]) >= min_alerts]
    assert candidates, "the fixture data has run out of untouched incidents"
    return candidates[-1]


def test_the_queue_filters_like_the_store(soc: Soc) -> None:
    everything = soc.client.get(f"{API}/incidents", params={"limit": 500}, headers=analyst(soc)).json()["items"]
    assert everything and all(item["tenant"] == "town-a" for item in everything)
    high = soc.client.get(f"{API}/incidents", params={"severity": ["high", "critical"], "limit": 500},
                          headers=analyst(soc)).json()["items"]
    assert {i["id"] for i in high} == {i["id"] for i in everything if i["severity"] in ("high", "critical")}
    technique = everything[0]["techniques"][0]
    with_technique = soc.client.get(f"{API}/incidents", params={"technique": technique, "limit": 500},
                                    headers=analyst(soc)).json()["items"]
    assert {i["id"] for i in with_technique} == {i["id"] for i in everything if technique in i["techniques"]}
    word = everything[0]["title"].split()[0].upper()
    by_text = soc.client.get(f"{API}/incidents", params={"q": word, "limit": 500}, headers=analyst(soc)).json()
    assert {i["id"] for i in by_text["items"]} == {i["id"] for i in everything if word.lower() in i["title"].lower()}
    # pages of one put back together give the whole list, in order
    ids, cursor = [], None
    while True:
        params = {"limit": 2, "sort": "first_seen", "order": "asc", **({"cursor": cursor} if cursor else {})}
        page = soc.client.get(f"{API}/incidents", params=params, headers=analyst(soc)).json()
        ids += [item["id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    expected = sorted(everything, key=lambda i: (i["first_seen"], i["id"]))
    assert ids == [i["id"] for i in expected]


def test_detail_has_alerts_timeline_and_etag(soc: Soc) -> None:
    incident = fresh_incident(soc)
    response = soc.client.get(f"{API}/incidents/{incident['id']}", headers=soc.headers("town-a", Role.viewer))
    assert response.status_code == 200
    detail = response.json()
    assert response.headers["etag"] == f'"{detail["incident"]["version"]}"'
    assert {a["id"] for a in detail["alerts"]} == set(incident["alert_ids"])
    event_ids = {e for a in detail["alerts"] for e in a["event_ids"]}
    assert {e["id"] for e in detail["timeline"]} == event_ids
    times = [e["timestamp"] for e in detail["timeline"]]
    assert times == sorted(times)


def test_status_changes_need_the_version_read_and_a_second_writer_gets_412(soc: Soc) -> None:
    incident = fresh_incident(soc)
    url = f"{API}/incidents/{incident['id']}"
    first, second = analyst(soc), soc.headers("town-a", Role.admin)
    etag = soc.client.get(url, headers=first).headers["etag"]
    assert soc.client.patch(url, json={"status": "acknowledged"}, headers=first).status_code == 428
    won = soc.client.patch(url, json={"status": "acknowledged"}, headers={**first, "If-Match": etag})
    assert won.status_code == 200 and won.json()["status"] == "acknowledged"
    assert won.json()["acknowledged_at"] is not None
    lost = soc.client.patch(url, json={"assignee": "bob"}, headers={**second, "If-Match": etag})
    assert lost.status_code == 412
    assert soc.client.get(url, headers=first).json()["incident"]["assignee"] is None
    # the loser re-reads and retries
    retry = soc.client.patch(url, json={"assignee": "bob", "status": "contained"},
                             headers={**second, "If-Match": won.headers["etag"]})
    assert retry.status_code == 200
    body = retry.json()
    assert (body["assignee"], body["status"]) == ("bob", "contained")
    assert body["contained_at"] is not None
    backwards = soc.client.patch(url, json={"status": "new"}, headers={**first, "If-Match": retry.headers["etag"]})
    assert backwards.status_code == 409 and "cannot go from contained to new" in backwards.json()["detail"]
    no_reason = soc.client.patch(url, json={"severity": "low"}, headers={**first, "If-Match": retry.headers["etag"]})
    assert no_reason.status_code == 409
    actions = [r.action for r in _audit_of(soc, incident["id"])]
    assert actions.count("incident.status") == 2 and actions.count("incident.assign") == 1


def _audit_of(soc: Soc, incident_id: str) -> list[AuditRecord]:
    query = RecordQuery.where({"target": f"incidents/{incident_id}"}, sort="seq", descending=False, limit=500)
    return [item.record for item in soc.store.audit.list(Scope.all(), query).items]


def test_merge_and_split_keep_every_alert(soc: Soc) -> None:
    page = soc.client.get(f"{API}/incidents", params={"status": "new", "limit": 500}, headers=analyst(soc)).json()
    target, source = page["items"][0], page["items"][1]
    alerts_before = set(target["alert_ids"]) | set(source["alert_ids"])
    url = f"{API}/incidents/{target['id']}"
    etag = soc.client.get(url, headers=analyst(soc)).headers["etag"]
    merged = soc.client.post(f"{url}/merge", json={"source_id": source["id"]},
                             headers={**analyst(soc), "If-Match": etag})
    assert merged.status_code == 200, merged.text
    assert set(merged.json()["alert_ids"]) == alerts_before
    old = soc.client.get(f"{API}/incidents/{source['id']}", headers=analyst(soc)).json()["incident"]
    assert (old["status"], old["duplicate_of"]) == ("duplicate", target["id"])
    for alert_id in source["alert_ids"]:
        assert soc.client.get(f"{API}/alerts/{alert_id}", headers=analyst(soc)).json()["incident_id"] == target["id"]

    moving = sorted(source["alert_ids"])[:1]
    split = soc.client.post(f"{url}/split", json={"alert_ids": moving},
                            headers={**analyst(soc), "If-Match": merged.headers["etag"]})
    assert split.status_code == 200, split.text
    remaining, created = split.json()["remaining"], split.json()["created"]
    assert set(remaining["alert_ids"]) | set(created["alert_ids"]) == alerts_before
    assert set(created["alert_ids"]) == set(moving) and not set(remaining["alert_ids"]) & set(moving)
    for alert_id in moving:
        assert soc.client.get(f"{API}/alerts/{alert_id}", headers=analyst(soc)).json()["incident_id"] == created["id"]


def test_comments_and_bulk_acknowledge(soc: Soc) -> None:
    incident = fresh_incident(soc)
    url = f"{API}/incidents/{incident['id']}/comments"
    assert soc.client.post(url, json={"text": "called the school's IT"}, headers=analyst(soc)).status_code == 201
    assert soc.client.post(url, json={"text": "x"}, headers=soc.headers("town-a", Role.viewer)).status_code == 403
    comments = soc.client.get(url, headers=soc.headers("town-a", Role.viewer)).json()
    assert [c["text"] for c in comments] == ["called the school's IT"]
    ids = [incident["id"], "inc-does-not-exist"]
    results = soc.client.post(f"{API}/incidents/bulk", json={"ids": ids, "status": "acknowledged",
                                                            "assignee": "eve"}, headers=analyst(soc)).json()
    assert [(r["id"], r["ok"]) for r in results] == [(incident["id"], True), ("inc-does-not-exist", False)]
    after = soc.client.get(f"{API}/incidents/{incident['id']}", headers=analyst(soc)).json()["incident"]
    assert (after["status"], after["assignee"]) == ("acknowledged", "eve")


def test_alert_false_positive_and_acknowledge(soc: Soc) -> None:
    alerts = soc.client.get(f"{API}/alerts", params={"status": "new", "limit": 500}, headers=analyst(soc)).json()
    first, second = alerts["items"][0], alerts["items"][1]
    acked = soc.client.post(f"{API}/alerts/{first['id']}/status", json={"status": "acknowledged"},
                            headers=analyst(soc))
    assert acked.json()["status"] == "acknowledged"
    fp = soc.client.post(f"{API}/alerts/{second['id']}/false-positive", json={"reason": "admin's test"},
                         headers=analyst(soc))
    assert fp.json()["status"] == "false_positive"
    listed = soc.client.get(f"{API}/alerts", params={"status": "false_positive", "limit": 500},
                            headers=analyst(soc)).json()
    assert second["id"] in {a["id"] for a in listed["items"]}


def raw_event_codes() -> Counter[str]:
    """The EventID of every record of the SOC's files, read with python-evtx rather than civicsoc's reader."""
    codes: Counter[str] = Counter()
    for name in FILES:
        with PythonEvtx.Evtx(str(EVTX / name)) as log:
            for record in log.records():
                codes[re.search(r"<EventID[^>]*>(\d+)</EventID>", record.xml()).group(1)] += 1
    return codes


def test_events_search_is_tenant_scoped_and_filters_exactly(soc: Soc) -> None:
    # The third most common code: several events, not all (both tenants hold the same files).
    code, expected = raw_event_codes().most_common(3)[-1]
    found, cursor = [], None
    while True:
        params = {"from": "2000-01-01T00:00:00Z", "field": f"event.code:{code}", "limit": 50,
                  **({"cursor": cursor} if cursor else {})}
        page = soc.client.get(f"{API}/events", params=params, headers=analyst(soc)).json()
        found += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert len(found) == expected
    assert {e["tenant"] for e in found} == {"town-a"}
    assert {e["fields"]["event"]["code"] for e in found} == {code}
    assert len({e["id"] for e in found}) == expected
    bad = soc.client.get(f"{API}/events", params={"from": "2000-01-01", "field": "nocolon"}, headers=analyst(soc))
    assert bad.status_code == 422


def test_collector_heartbeats_and_silence(soc: Soc) -> None:
    collector = soc.headers("town-a", Role.collector)
    beat = {"name": "townhall-dc", "version": "0.1.0", "sources": ["evtx:Security"], "events_total": 10}
    assert soc.client.post(f"{API}/collectors/heartbeat", json=beat, headers=collector).status_code == 200
    beat_b = {"name": "quiet-box", "version": "0.1.0"}
    assert soc.client.post(f"{API}/collectors/heartbeat", json=beat_b,
                           headers=soc.headers("town-b", Role.collector)).status_code == 200
    seen = soc.client.get(f"{API}/collectors", headers=soc.headers("town-a", Role.viewer)).json()
    mine = {c["name"]: c for c in seen}
    assert "quiet-box" not in mine
    assert mine["townhall-dc"]["health"] == "ok" and mine["townhall-dc"]["events_total"] == 10
    failing = {**beat, "errors": 3}
    soc.client.post(f"{API}/collectors/heartbeat", json=failing, headers=collector)
    again = {c["name"]: c for c in soc.client.get(f"{API}/collectors", headers=analyst(soc)).json()}
    assert again["townhall-dc"]["health"] == "failing"
    assert again["townhall-dc"]["first_seen"] == mine["townhall-dc"]["first_seen"]


def test_metrics_count_requests_and_incidents(soc: Soc) -> None:
    soc.client.get(f"{API}/incidents", headers=analyst(soc))
    soc.client.get(f"{API}/incidents")  # no token
    soc.client.get(f"{API}/incidents/no-such-incident", headers=analyst(soc))
    soc.client.get(f"{API}/incidents/no-such-incident", headers=analyst(soc))
    soc.client.get("/no/such/route", headers=analyst(soc))
    text = soc.client.get("/metrics", headers=soc.admin_headers).text
    assert 'civicsoc_http_requests_total{method="GET",route="/api/v1/incidents",status="200"}' in text
    assert 'civicsoc_http_requests_total{method="GET",route="/api/v1/incidents",status="401"} 1.0' in text
    # the route's template, never the id: label values stay bounded
    assert ('civicsoc_http_requests_total{method="GET",route="/api/v1/incidents/{incident_id}",status="404"} 2.0'
            in text)
    assert 'civicsoc_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "no-such-incident" not in text
    total = soc.store.incidents.count(Scope.all(), RecordQuery())
    gauges = [line for line in text.splitlines() if line.startswith("civicsoc_incidents{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in gauges) == total
    assert soc.client.get("/metrics", headers=analyst(soc)).status_code == 403


def test_revoked_and_expired_tokens_stop_working(soc: Soc) -> None:
    issued = tokens.create_token(soc.store, tenant="town-a", role=Role.viewer, name="short-lived", actor="test")
    headers = {"Authorization": f"Bearer {issued.secret}"}
    assert soc.client.get(f"{API}/incidents", headers=headers).status_code == 200
    revoked = soc.client.delete(f"{API}/tokens/{issued.token.id}", headers=soc.admin_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert soc.client.get(f"{API}/incidents", headers=headers).status_code == 401
    soon = tokens.create_token(soc.store, tenant="town-a", role=Role.viewer, name="expiring", actor="test",
                               expires_at=datetime.now(UTC) + timedelta(seconds=30))
    authenticator = soc.client.app.state.services.authenticator
    later = datetime.now(UTC) + timedelta(minutes=1)
    with pytest.raises(tokens.AuthenticationFailed, match="expired"):
        authenticator.authenticate(soon.secret, now=later)
    stored = soc.store.records(tokens.Token).get(Scope.all(), soon.token.id).record
    assert soon.secret not in stored.model_dump_json() and stored.secret_hash.startswith("$argon2")


def test_token_routes_print_the_secret_once(soc: Soc) -> None:
    created = soc.client.post(f"{API}/tokens", json={"tenant": "town-b", "role": "analyst", "name": "ana"},
                              headers=soc.admin_headers)
    assert created.status_code == 201
    secret = created.json()["secret"]
    listed = soc.client.get(f"{API}/tokens", headers=soc.admin_headers).text
    assert created.json()["id"] in listed and secret not in listed and "secret_hash" not in listed
    mine = soc.client.get(f"{API}/incidents", headers={"Authorization": f"Bearer {secret}"}).json()["items"]
    assert mine and {i["tenant"] for i in mine} == {"town-b"}


def test_the_audit_chain_over_everything_the_api_did_verifies(soc: Soc) -> None:
    verified = soc.client.get(f"{API}/audit/verify", headers=soc.admin_headers).json()
    assert verified["ok"] and verified["records"] == soc.store.audit.count(Scope.all(), RecordQuery())
    result = audit.verify(audit.iter_chain(soc.store))
    assert result.ok and result.records > 10


def test_audit_verify_cli_finds_a_tampered_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    from civicsoc.store.sqlite import SqliteStore

    store = SqliteStore(url)
    store.setup()
    tokens.create_tenant(store, "town-a", "Town A", "test")
    for name in ("one", "two", "three"):
        tokens.create_token(store, tenant="town-a", role=Role.viewer, name=name, actor="test")
    command = [sys.executable, "-m", "civicsoc", "--store", url, "audit", "verify"]
    intact = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert intact.returncode == 0, intact.stderr
    assert "4 records, intact" in intact.stderr
    # an insider edits one record straight in the database file
    store.query("UPDATE records_audit SET doc = json_set(doc, '$.actor', 'someone-else') WHERE id = ?",
                [AuditRecord.id_for(2)])
    store.close()
    tampered = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert tampered.returncode == 1
    assert "audit record 2: content does not match its hash" in tampered.stdout


def test_playbook_progress_and_regulatory_clocks_on_an_incident(soc: Soc) -> None:
    incident = fresh_incident(soc)
    url = f"{API}/incidents/{incident['id']}"
    headers = analyst(soc)
    attached = soc.client.post(f"{url}/playbooks", json={"playbook_id": "ransomware"}, headers=headers)
    assert attached.status_code == 201, attached.text
    etag = soc.client.get(url, headers=headers).headers["etag"]
    confirmed = soc.client.patch(url, json={"significant": True, "nis2": True, "gdpr": True},
                                 headers={**headers, "If-Match": etag})
    assert confirmed.status_code == 200, confirmed.text
    significant_at = datetime.fromisoformat(confirmed.json()["significant_at"])
    detail = soc.client.get(url, headers=headers).json()
    deadlines = {d["key"]: d for d in detail["deadlines"]}
    due = {key: datetime.fromisoformat(d["due_at"]) - significant_at for key, d in deadlines.items()}
    assert due["nis2-early-warning"] == timedelta(hours=24)
    assert due["nis2-incident-notification"] == due["gdpr-breach-notification"] == timedelta(hours=72)
    assert all(d["status"] == "open" for d in deadlines.values() if d["regulation"])
    run = next(r for r in detail["playbooks"] if r["playbook_id"] == "ransomware")
    first_step = run["steps"][0]["id"]
    step_url = f"{url}/playbooks/ransomware/steps/{first_step}"
    assert soc.client.put(step_url, json={"status": "done"}, headers=headers).status_code == 428
    done = soc.client.put(step_url, json={"status": "done", "note": "scoped: 3 hosts"},
                          headers={**headers, "If-Match": f'"{run["version"]}"'})
    assert done.status_code == 200, done.text
    stale = soc.client.put(step_url, json={"status": "todo"}, headers={**headers, "If-Match": f'"{run["version"]}"'})
    assert stale.status_code == 412
    skipped = soc.client.put(f"{url}/playbooks/ransomware/steps/{run['steps'][1]['id']}", json={"status": "skipped"},
                             headers={**headers, "If-Match": done.headers["etag"]})
    assert skipped.status_code == 409  # a skip needs a note
    after = soc.client.get(url, headers=headers).json()
    steps = {s["id"]: s for r in after["playbooks"] if r["playbook_id"] == "ransomware" for s in r["steps"]}
    assert (steps[first_step]["status"], steps[first_step]["note"]) == ("done", "scoped: 3 hosts")
    actions = {r.action for r in audit.iter_chain(soc.store) if r.target.startswith("playbook_runs/")}
    assert {"playbook.attach", "playbook.step"} <= actions


def test_rules_list_counts_alerts_and_disabling_is_per_tenant(soc: Soc) -> None:
    rules = soc.client.get(f"{API}/rules", params={"only_alerting": True}, headers=analyst(soc)).json()
    expected: dict[str, int] = {}
    for item in soc.store.alerts.list(Scope.of("town-a"), RecordQuery(limit=5000)).items:
        expected[item.record.rule_id] = expected.get(item.record.rule_id, 0) + 1
    assert {r["id"]: r["alerts"] for r in rules} == expected
    rule_id = rules[0]["id"]
    disabled = soc.client.post(f"{API}/rules/{rule_id}/disable", json={"tenant": "town-a", "reason": "noisy here"},
                               headers=analyst(soc))
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    seen_by_a = {r["id"]: r for r in soc.client.get(f"{API}/rules", headers=analyst(soc)).json()}
    seen_by_b = {r["id"]: r for r in soc.client.get(f"{API}/rules", headers=analyst(soc, "town-b")).json()}
    assert (seen_by_a[rule_id]["enabled"], seen_by_a[rule_id]["disabled_in"]) == (False, ["town-a"])
    assert seen_by_b[rule_id]["enabled"] is True
    no_reason = soc.client.post(f"{API}/rules/{rule_id}/disable", json={"tenant": "town-a"}, headers=analyst(soc))
    assert no_reason.status_code in (400, 422)
    enabled = soc.client.post(f"{API}/rules/{rule_id}/enable", json={"tenant": "town-a"}, headers=analyst(soc))
    assert enabled.json()["enabled"] is True
    actions = [r.action for r in audit.iter_chain(soc.store) if rule_id in r.target]
    assert len(actions) == 2


def test_rule_preview_over_stored_events_equals_what_the_stream_raised(soc: Soc) -> None:
    alerts = [item.record for item in soc.store.alerts.list(Scope.of("town-a"), RecordQuery(limit=5000)).items]
    by_rule: dict[str, set[str]] = {}
    for alert in alerts:
        if not alert.correlation:
            by_rule.setdefault(alert.rule_id, set()).update(alert.event_ids)
    rule_id = max(by_rule, key=lambda r: len(by_rule[r]))
    rule = soc.rules.by_id()[rule_id]
    assert rule.path is not None
    text = rule.path.read_text(encoding="utf-8")
    body = {"rule": text, "from": "2000-01-01T00:00:00Z", "tenant": "town-a", "limit": 10_000}
    preview = soc.client.post(f"{API}/rules/test", json=body, headers=analyst(soc))
    assert preview.status_code == 200, preview.text
    found = {event_id for match in preview.json()["matches"] if match["rule_id"] == rule_id
             for event_id in match["event_ids"]}
    assert found == by_rule[rule_id]
    # sample events: one the rule matched (read back from the store), and an empty one that it cannot match
    matched = next(iter(by_rule[rule_id]))
    window = TimeRange(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
    event = soc.store.search_events(Scope.of("town-a"), EventQuery.where(window, {"event.id": matched})).items[0]
    samples = {"rule": text, "events": [{"message": "nothing to see"}, event.fields]}
    answer = soc.client.post(f"{API}/rules/test", json=samples, headers=analyst(soc)).json()
    assert [m["event_index"] for m in answer["matches"] if m["rule_id"] == rule_id] == [[1]]
    broken = soc.client.post(f"{API}/rules/test", json={"rule": "title: x\ndetection: {}\n", "events": [{}]},
                             headers=analyst(soc)).json()
    assert broken["errors"] and broken["matches"] == []
    assert soc.store.alerts.count(Scope.of("town-a"), RecordQuery()) == len(alerts)  # a preview raises nothing


def test_rule_health_says_which_rules_matched_and_when(soc: Soc) -> None:
    health = soc.client.get(f"{API}/rules/health", params={"recent_hours": 24 * 90},
                            headers=soc.headers("town-a", Role.viewer)).json()
    by_id = {item["id"]: item for item in health["rules"]}
    assert health["totals"].startswith(f"{len(soc.rules.loaded) + len(soc.rules.skipped)} rules")
    latest: dict[str, str] = {}
    for item in soc.store.alerts.list(Scope.of("town-a"), RecordQuery(limit=5000)).items:
        stamp = item.record.timestamp.isoformat()
        latest[item.record.rule_id] = max(latest.get(item.record.rule_id, stamp), stamp)
    for rule_id, stamp in latest.items():
        assert by_id[rule_id]["last_matched"] is not None
        assert datetime.fromisoformat(by_id[rule_id]["last_matched"]) == datetime.fromisoformat(stamp)
    never = [item for rule_id, item in by_id.items() if rule_id not in latest and item["loaded"]]
    assert never and all(item["last_matched"] is None for item in never)


def test_a_time_without_utc_equivalent_is_a_clear_422(soc: Soc) -> None:
    """Found by schemathesis: year 1 with a positive offset is valid ISO 8601 but has no UTC time."""
    edge = "0001-01-01T00:00:00+00:01"
    for path in ("/incidents", "/alerts", "/events"):
        response = soc.client.get(f"{API}{path}", params={"from": edge}, headers=analyst(soc))
        assert response.status_code == 422 and "out of range" in response.json()["detail"], path
