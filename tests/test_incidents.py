"""Grouping alerts into incidents on real events: order-independent, idempotent, and equal to the
policy computed independently (connected components over the documented relation)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from civicsoc.event import Event
from civicsoc.records import Alert, IncidentStatus, Severity
from civicsoc.store import RecordQuery, Scope, Store
from civicsoc.store.sqlite import SqliteStore
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.entities import entities_of, linking_users
from detection.incidents import DEFAULT_WINDOW, IncidentGrouper, batch_components, merged_windows

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
    return stored_partition(store, alerts)


def stored_partition(store: Store, alerts: list[Alert]) -> set[frozenset[str]]:
    """The alert groups of the open incidents, after checking that every alert is in exactly one and
    points at the incident that holds it."""
    store.refresh()
    incidents = store.incidents.list(Scope.all(), RecordQuery(sort="created_at", limit=5000)).items
    open_ones = [i.record for i in incidents if i.record.status != IncidentStatus.duplicate]
    for incident in open_ones:
        for alert_id in incident.alert_ids:
            assert store.alerts.get(Scope.all(), alert_id).record.incident_id == incident.id
    assert sum(len(i.alert_ids) for i in open_ones) == len({a.id for a in alerts})
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


# --- batches: a shipper batch's alerts grouped in a few writes ---------------------------------------------


def group_in_batches(store: Store, alerts: list[Alert], seed: int) -> set[frozenset[str]]:
    """Feed ``alerts`` through ``add_batch`` in random batch sizes; the same checks as ``group_all``."""
    grouper = IncidentGrouper(store)
    rng = random.Random(seed)
    start = 0
    while start < len(alerts):
        size = rng.randint(1, 60)
        grouper.add_batch(alerts[start:start + size])
        start += size
    return stored_partition(store, alerts)


def test_batch_components_are_the_policys_groups(alerts: list[Alert]) -> None:
    expected = expected_partition(alerts, DEFAULT_WINDOW)
    found = {frozenset(a.id for a in group) for group in batch_components(alerts, DEFAULT_WINDOW)}
    assert found == expected
    shuffled = alerts[:]
    random.Random(3).shuffle(shuffled)
    groups = batch_components(shuffled, DEFAULT_WINDOW)
    assert {frozenset(a.id for a in group) for group in groups} == expected
    for group in groups:  # each group in time order, groups by their first alert
        assert [a.timestamp for a in group] == sorted(a.timestamp for a in group)
    assert [g[0].timestamp for g in groups] == sorted(g[0].timestamp for g in groups)


def test_merged_windows_cover_exactly_the_alerts_within_the_window() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    # 0 h and 3 h overlap ([-2, 2] and [1, 5]); 7 h's [5, 9] starts where [1, 5] ends, so it joins them;
    # 12 h's [10, 14] starts after 9 and stands alone, and so does 20 h's [18, 22].
    assert merged_windows([t0 + 3 * hour, t0, t0 + 7 * hour, t0 + 20 * hour, t0 + 12 * hour], 2 * hour) == [
        (t0 - 2 * hour, t0 + 9 * hour), (t0 + 10 * hour, t0 + 14 * hour), (t0 + 18 * hour, t0 + 22 * hour)]


def test_batched_grouping_equals_the_policy_on_each_backend(store: Store, alerts: list[Alert]) -> None:
    subset = alerts[:120]
    shuffled = subset[:]
    random.Random(5).shuffle(shuffled)
    assert group_in_batches(store, shuffled, seed=5) == expected_partition(subset, DEFAULT_WINDOW)


def test_batched_and_single_grouping_agree_whatever_the_batches(alerts: list[Alert], tmp_path: Path) -> None:
    expected = expected_partition(alerts, DEFAULT_WINDOW)
    for seed in (1, 2):
        store = SqliteStore(f"sqlite:///{tmp_path / f'b{seed}.db'}")
        store.setup()
        shuffled = alerts[:]
        random.Random(seed).shuffle(shuffled)
        assert group_in_batches(store, shuffled, seed) == expected


def test_a_replayed_batch_adds_nothing_and_a_crash_between_writes_is_repaired(sqlite_store: Store,
                                                                            alerts: list[Alert]) -> None:
    host = alerts[0].hosts[0]
    batch = [a for a in alerts if host in a.hosts][:20]
    grouper = IncidentGrouper(sqlite_store)
    # A crash after the incident was written and before its alerts were: the incident exists, no alert does.
    [group, *_] = batch_components(batch, DEFAULT_WINDOW)
    crashed = grouper._place(group)
    assert sqlite_store.alerts.get_many(Scope.all(), [a.id for a in group]) == []
    first = grouper.add_batch(batch)
    assert (first.created, first.known) == (len(batch), 0)
    again = grouper.add_batch(batch)
    assert (again.created, again.known) == (0, len(batch))
    incidents = [i.record for i in sqlite_store.incidents.list(Scope.all(), RecordQuery(limit=100)).items]
    holding = [i for i in incidents if set(i.alert_ids) & {a.id for a in group}]
    assert [i.id for i in holding] == [crashed.id]  # the replay joined the incident, never a second one
    assert set(holding[0].alert_ids) == {a.id for a in group}
    assert {sqlite_store.alerts.get(Scope.all(), a.id).record.incident_id for a in group} == {crashed.id}
