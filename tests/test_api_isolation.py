"""Auth and tenant isolation, generated from the app's own route table: a route added later is
covered automatically, and fails here until it has an example request.

For every route and every non-admin role of tenant A, a request aimed at tenant B's data must neither
read nor change it: routes on one record answer 404 (never 403, which would confirm the id exists)
unless the role lacks the permission altogether; lists come back without B's records; and after the
whole matrix, B's records and B's audit trail are exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from civicsoc.records import (
    RECORD_TYPES,
    Role,
    Token,
)
from civicsoc.store import RecordQuery, Scope
from tests.api_support import Soc, soc_per_backend

PUBLIC = {("GET", "/healthz"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"),
          ("GET", "/docs/oauth2-redirect")}


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def soc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soc]:
    yield from soc_per_backend(request, tmp_path_factory)


def operations(soc: Soc) -> list[tuple[str, str]]:
    schema = soc.client.get("/openapi.json").json()
    return sorted((method.upper(), path) for path, item in schema["paths"].items() for method in item)


def test_every_route_but_health_needs_a_token(soc: Soc) -> None:
    checked = 0
    for method, path in operations(soc):
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        for headers in ({}, {"Authorization": "Bearer cs_0123456789abcdef_" + "A" * 43},
                        {"Authorization": "Bearer not-a-token"}):
            response = soc.client.request(method, url, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
        checked += 1
    assert checked >= 20
    assert soc.client.get("/healthz").status_code == 200


def _snapshot(soc: Soc, tenant: str) -> dict[str, Any]:
    """Every record of ``tenant`` (with versions): any change by the matrix shows here."""
    snapshot = {}
    for record_type in RECORD_TYPES:
        page = soc.store.records(record_type).list(Scope.of(tenant), RecordQuery(sort="id", limit=5000))
        snapshot[record_type.collection] = [(item.record.model_dump(mode="json"), item.version)
                                            for item in page.items]
    return snapshot


def _requests(soc: Soc, method: str, path: str) -> list[dict[str, Any]]:
    """Requests of tenant A aimed at tenant B's data for one route (a new route must be added here)."""
    b_incidents, b_alerts = soc.incident_ids("town-b"), soc.alert_ids("town-b")
    a_incidents = soc.incident_ids("town-a")
    b_token = next(t.id for t in _tokens(soc, "town-b"))
    b_rule = _b_rule(soc)
    ids = {"incident_id": b_incidents[0], "alert_id": b_alerts[0], "token_id": b_token,
           "playbook_id": "ransomware", "step_id": "confirm-and-scope", "rule_id": b_rule,
           "exception_id": _b_exception(soc, b_rule), "kind": "gdpr-art33", "tenant_id": "town-b"}
    url = path
    for name, value in ids.items():
        url = url.replace("{" + name + "}", value)
    assert "{" not in url, f"{method} {path}: add its path parameters to this test"
    bodies: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("GET", "/api/v1/incidents"): [{"params": {"tenant": "town-b"}}, {"params": {"deadlines": True}},
                                       {"params": {"due_within": 24 * 366, "status": ["new", "resolved"]}}],
        ("GET", "/api/v1/incidents/{incident_id}"): [{}],
        ("PATCH", "/api/v1/incidents/{incident_id}"): [{"json": {"status": "acknowledged"},
                                                        "headers": {"If-Match": '"1"'}}],
        ("POST", "/api/v1/incidents/bulk"): [{"json": {"ids": b_incidents[:3], "status": "acknowledged",
                                                       "assignee": "mallory"}}],
        ("GET", "/api/v1/incidents/{incident_id}/comments"): [{}],
        ("GET", "/api/v1/incidents/{incident_id}/submissions"): [{}],
        ("POST", "/api/v1/incidents/{incident_id}/submissions"): [
            {"json": {"clock": "gdpr-breach-notification", "sha256": "0" * 64, "recipient": "x"}}],
        ("POST", "/api/v1/incidents/{incident_id}/comments"): [{"json": {"text": "seen"}}],
        ("POST", "/api/v1/incidents/{incident_id}/merge"): [
            {"json": {"source_id": b_incidents[1]}, "headers": {"If-Match": '"1"'}},
            # into one of A's own incidents, pulling B's alerts across
            {"url": f"/api/v1/incidents/{a_incidents[0]}/merge", "json": {"source_id": b_incidents[1]},
             "headers": {"If-Match": '"1"'}},
        ],
        ("POST", "/api/v1/incidents/{incident_id}/split"): [{"json": {"alert_ids": b_alerts[:1]},
                                                             "headers": {"If-Match": '"1"'}}],
        ("GET", "/api/v1/alerts"): [{"params": {"tenant": "town-b"}}, {"params": {}}],
        ("GET", "/api/v1/alerts/{alert_id}"): [{}],
        ("POST", "/api/v1/alerts/{alert_id}/status"): [{"json": {"status": "acknowledged"}}],
        ("POST", "/api/v1/alerts/{alert_id}/false-positive"): [{"json": {"reason": "x"}}],
        ("GET", "/api/v1/events"): [{"params": {"from": "2000-01-01T00:00:00Z", "tenant": "town-b"}},
                                    {"params": {"from": "2000-01-01T00:00:00Z"}}],
        ("GET", "/api/v1/collectors"): [{"params": {"tenant": "town-b"}}],
        ("POST", "/api/v1/collectors/heartbeat"): [{"params": {"tenant": "town-b"},
                                                    "json": {"name": "c1", "version": "1"}}],
        ("GET", "/api/v1/tenants"): [{}],
        ("POST", "/api/v1/tenants"): [{"json": {"id": "town-c"}}],
        ("PATCH", "/api/v1/tenants/{tenant_id}"): [{"json": {"notification_regime": "us-federal"}}],
        ("GET", "/api/v1/tokens"): [{}],
        ("POST", "/api/v1/tokens"): [{"json": {"tenant": "town-b", "role": "viewer", "name": "x"}}],
        ("DELETE", "/api/v1/tokens/{token_id}"): [{}],
        ("GET", "/api/v1/audit"): [{"params": {}}],
        ("GET", "/api/v1/audit/verify"): [{}],
        ("GET", "/metrics"): [{}],
        ("GET", "/api/v1/rules"): [{"params": {"only_alerting": True}}],
        ("GET", "/api/v1/rules/health"): [{"params": {"recent_hours": 24 * 90}}],
        ("POST", "/api/v1/rules/{rule_id}/disable"): [{"json": {"tenant": "town-b", "reason": "noisy"}}],
        ("POST", "/api/v1/rules/{rule_id}/enable"): [{"json": {"tenant": "town-b", "reason": "x"}}],
        ("POST", "/api/v1/rules/test"): [{"json": {"rule": _rule_text(soc, b_rule), "from": "2000-01-01T00:00:00Z",
                                                   "tenant": "town-b"}},
                                         {"json": {"rule": _rule_text(soc, b_rule), "from": "2000-01-01T00:00:00Z"}}],
        ("GET", "/api/v1/exceptions"): [{"params": {"include_inactive": True}}],
        ("POST", "/api/v1/exceptions"): [{"json": {"tenant": "town-b", "rule_id": "*", "reason": "x",
                                                   "conditions": {"host.name": ["x"]},
                                                   "expires_at": "2099-01-01T00:00:00Z"}}],
        ("DELETE", "/api/v1/exceptions/{exception_id}"): [{}],
        ("GET", "/api/v1/reports/register"): [{"params": {"tenant": "town-b"}}, {"params": {"format": "json"}},
                                              {"params": {"format": "json", "redact": "true"}}],
        ("GET", "/api/v1/reports/statistics"): [{"params": {"tenant": "town-b"}}, {"params": {"redact": "true"}}],
        ("GET", "/api/v1/reports/pdf"): [{"params": {"tenant": "town-b", "redact": "true"}}],
        ("GET", "/api/v1/reports/incidents/{incident_id}/notifications/{kind}"): [
            {}, {"params": {"redact": "true", "format": "pdf"}}],
        ("GET", "/api/v1/reports/incidents/{incident_id}/stix"): [{}, {"params": {"redact": "true", "tlp": "green"}}],
        ("GET", "/api/v1/playbooks"): [{}],
        ("GET", "/api/v1/playbooks/{playbook_id}"): [{}],
        ("GET", "/api/v1/playbooks/{playbook_id}/cacao"): [{}],
        ("POST", "/api/v1/incidents/{incident_id}/playbooks"): [{"json": {"playbook_id": "ransomware"}}],
        ("DELETE", "/api/v1/incidents/{incident_id}/playbooks/{playbook_id}"): [{}],
        ("PUT", "/api/v1/incidents/{incident_id}/playbooks/{playbook_id}/steps/{step_id}"): [
            {"json": {"status": "done", "note": "x"}, "headers": {"If-Match": '"1"'}}],
    }
    assert (method, path) in bodies, f"{method} {path}: a new route needs an isolation example in this test"
    return [{"url": url, **request} for request in bodies[(method, path)]]


def _b_rule(soc: Soc) -> str:
    return soc.store.alerts.get(Scope.of("town-b"), soc.alert_ids("town-b")[0]).record.rule_id


def _rule_text(soc: Soc, rule_id: str) -> str:
    rule = soc.rules.by_id()[rule_id]
    assert rule.path is not None
    return rule.path.read_text(encoding="utf-8")


def _b_exception(soc: Soc, rule_id: str) -> str:
    """An exception of town-b (created once) for the routes that name one."""
    from datetime import UTC, datetime, timedelta

    from detection.suppression import add_exception, list_exceptions

    existing = list_exceptions(soc.store, Scope.of("town-b"))
    if existing:
        return existing[0].id
    return add_exception(soc.store, "town-b", rule_id, {"host.name": ["never-seen"]}, "test fixture",
                         datetime.now(UTC) + timedelta(days=30), "test-setup").id


def _tokens(soc: Soc, tenant: str) -> list[Token]:
    page = soc.store.records(Token).list(Scope.of(tenant), RecordQuery(limit=100))
    return [item.record for item in page.items]


ONE_RECORD = re.compile(r"\{(incident_id|alert_id|token_id|exception_id|tenant_id)\}|/rules/\{rule_id\}/")
"""Path parameters naming a tenant's record (a playbook id names shared library content)."""


def test_no_role_of_one_tenant_reads_or_changes_another_tenants_data(soc: Soc) -> None:
    _b_exception(soc, _b_rule(soc))  # B's fixtures exist before the snapshot
    before = _snapshot(soc, "town-b")
    b_ids = set(soc.incident_ids("town-b")) | set(soc.alert_ids("town-b"))
    tried = 0
    for method, path in operations(soc):
        if (method, path) in PUBLIC:
            continue
        for request in _requests(soc, method, path):
            for role in Role:
                if role is Role.admin:
                    continue  # admin acts in every tenant by definition
                headers = {**soc.headers("town-a", role), **request.get("headers", {})}
                response = soc.client.request(method, request["url"], params=request.get("params"),
                                              json=request.get("json"), headers=headers)
                tried += 1
                where = (f"{role.value} of town-a: {method} {request['url']} → {response.status_code} "
                         f"{response.text[:300]}")
                if response.status_code == 403:
                    assert response.json()["detail"].startswith(f"the {role.value} role may not"), where
                    continue
                if ONE_RECORD.search(path) and "source_id" not in (request.get("json") or {}):
                    assert response.status_code == 404, where
                elif response.is_success:
                    body = response.text
                    assert "town-b" not in body, where
                    if path != "/api/v1/incidents/bulk":  # bulk echoes the ids it was given, as "not found"
                        assert not any(record_id in body for record_id in b_ids), where
                    else:
                        assert all(not item["ok"] for item in response.json()), where
                else:
                    assert response.status_code in (404, 409, 412, 422, 428), where
    assert tried > 100
    assert _snapshot(soc, "town-b") == before


def test_admin_sees_every_tenant_and_others_only_their_own(soc: Soc) -> None:
    everything = soc.client.get("/api/v1/incidents", params={"limit": 500}, headers=soc.admin_headers).json()
    assert {item["tenant"] for item in everything["items"]} == {"town-a", "town-b"}
    for role in (Role.analyst, Role.viewer, Role.compliance):
        mine = soc.client.get("/api/v1/incidents", params={"limit": 500},
                              headers=soc.headers("town-b", role)).json()
        assert {item["id"] for item in mine["items"]} == set(soc.incident_ids("town-b"))


def test_a_collector_token_can_only_ingest(soc: Soc) -> None:
    headers = soc.headers("town-a", Role.collector)
    assert soc.client.get("/api/v1/incidents", headers=headers).status_code == 403
    beat = soc.client.post("/api/v1/collectors/heartbeat", json={"name": "dc01-evtx", "version": "0.1"},
                           headers=headers)
    assert beat.status_code == 200 and beat.json()["tenant"] == "town-a"

