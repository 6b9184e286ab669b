"""Grouping alerts into incidents on real events: order-independent, idempotent, and equal to the
policy computed independently (connected components over the documented relation)."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from civicsoc.event import Event
from civicsoc.records import Alert, IncidentStatus, Severity
from civicsoc.store import RecordQuery, Scope, Store
from civicsoc.store.sqlite import SqliteStore
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.entities import entities_of, linking_users
from detection.incidents import DEFAULT_WINDOW, IncidentGrouper

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "evtx-attack-samples"
LEVELS = list(Severity)


def real_alerts(count: int, every: int) -> list[Alert]:
    """Alerts as a rule per event code would raise them on real attack-sample events."""
    context = CollectorContext(tenant="agency-a")
    events: list[Event] = []
    for path in sorted(SAMPLES.rglob("*.evtx")):
        events.extend(item.value for item in read_evtx(path, context) if isinstance(item.value, Event))
        if len(events) >= count * every:
            break
    alerts = []
    for event in events[::every][:count]:
        found = entities_of(event.fields)
        code = event.fields["event"]["code"]
        alerts.append(Alert(id=f"al-{event.id}", tenant=event.tenant, rule_id=f"rule-{code}",
                            rule_title=f"Event {code}", severity=LEVELS[int(code) % 5], event_ids=[event.id],
                            hosts=list(found.hosts), users=list(found.users), ips=list(found.ips),
                            timestamp=event.timestamp, techniques=[f"T{1000 + int(code) % 50}"]))
    assert len(alerts) == count
    return alerts


def expected_partition(alerts: list[Alert], window: timedelta) -> set[frozenset[str]]:
    """The policy, computed directly: union-find over every related pair."""
    parent = {a.id: a.id for a in alerts}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, a in enumerate(alerts):
        for b in alerts[i + 1:]:
            shared = set(a.hosts) & set(b.hosts) or set(linking_users(a.users)) & set(linking_users(b.users))
            if a.tenant == b.tenant and shared and abs(a.timestamp - b.timestamp) <= window:
                parent[root(a.id)] = root(b.id)
    groups: dict[str, set[str]] = {}
    for a in alerts:
        groups.setdefault(root(a.id), set()).add(a.id)
    return {frozenset(group) for group in groups.values()}


def group_all(store: Store, alerts: list[Alert]) -> set[frozenset[str]]:
    grouper = IncidentGrouper(store)
    for alert in alerts:
        store.alerts.create(Scope.all(), alert)
        grouper.add(alert.id)
    store.refresh()
    incidents = store.incidents.list(Scope.all(), RecordQuery(sort="created_at", limit=5000)).items
    open_ones = [i.record for i in incidents if i.record.status != IncidentStatus.duplicate]
    # every alert points at the incident that holds it
    for incident in open_ones:
        for alert_id in incident.alert_ids:
            assert store.alerts.get(Scope.all(), alert_id).record.incident_id == incident.id
    return {frozenset(i.alert_ids) for i in open_ones}


@pytest.fixture(scope="module")
def alerts() -> list[Alert]:
    return real_alerts(240, every=7)


def test_grouping_follows_the_policy_whatever_the_order(alerts: list[Alert], tmp_path: Path) -> None:
    expected = expected_partition(alerts, DEFAULT_WINDOW)
    assert len(alerts) > len(expected) > 1, "the sample should group some alerts and not others"
    in_order = SqliteStore(f"sqlite:///{tmp_path / 'a.db'}")
    in_order.setup()
    assert group_all(in_order, alerts) == expected
    for seed in (1, 2):
        shuffled = alerts[:]
        random.Random(seed).shuffle(shuffled)
        store = SqliteStore(f"sqlite:///{tmp_path / f's{seed}.db'}")
        store.setup()
        assert group_all(store, shuffled) == expected


def test_grouping_on_each_backend(store: Store, alerts: list[Alert]) -> None:
    subset = alerts[:60]
    assert group_all(store, list(reversed(subset))) == expected_partition(subset, DEFAULT_WINDOW)


def test_adding_twice_changes_nothing_and_incidents_carry_the_union(sqlite_store: Store,
                                                                    alerts: list[Alert]) -> None:
    grouper = IncidentGrouper(sqlite_store)
    same_host = [a for a in alerts if a.hosts and a.hosts[0] == alerts[0].hosts[0]][:5]
    for alert in same_host:
        sqlite_store.alerts.create(Scope.all(), alert)
        grouper.add(alert.id)
    first = grouper.add(same_host[0].id)
    again = grouper.add(same_host[0].id)
    assert first == again
    members = [a for a in same_host if a.id in first.alert_ids]
    assert first.severity == max((a.severity for a in members), key=lambda s: Severity(s).rank)
    assert first.first_seen == min(a.timestamp for a in members)
    assert set(first.techniques) == {t for a in members for t in a.techniques}
    assert set(first.hosts) == {h for a in members for h in a.hosts}


def test_a_resolved_incident_takes_no_new_alerts(sqlite_store: Store, alerts: list[Alert]) -> None:
    grouper = IncidentGrouper(sqlite_store)
    a, b = [x for x in alerts if x.hosts and x.hosts[0] == alerts[0].hosts[0]][:2]
    b = b.model_copy(update={"timestamp": a.timestamp + timedelta(minutes=5)})
    sqlite_store.alerts.create(Scope.all(), a)
    incident = grouper.add(a.id)
    current = sqlite_store.incidents.get(Scope.all(), incident.id)
    sqlite_store.incidents.update(Scope.all(), current.record.model_copy(update={"status": IncidentStatus.resolved}),
                                  current.version)
    sqlite_store.alerts.create(Scope.all(), b)
    assert grouper.add(b.id).id != incident.id
