"""Alerts → incidents, incrementally and idempotently.

The policy, stated once:

- Two alerts of one tenant are **related** when they share a host, or a user other than the
  built-in accounts (SYSTEM, LOCAL SERVICE, ...), and happened within ``window`` (12 hours by
  default) of each other.
- An incident is a group of alerts connected by that relation. A new alert joins the open
  incident(s) of the alerts it relates to; when it relates to several open incidents, they merge
  into the oldest (by first alert time, then id) and the others are marked ``duplicate`` of it.
  An alert related to nothing opens an incident of its own. Correlation alerts follow the same
  rule, so they always start or join one.
- Only open incidents (new, acknowledged, investigating, contained) take alerts; after an analyst
  resolved one (or called it a false positive), a related alert opens a new incident.
- Severity is the highest alert severity; hosts, users, IPs, domains, hashes, ATT&CK techniques and
  tactics are the union over the alerts.

The relation is symmetric and merging follows it, so which alerts end up together does not depend
on the order in which they arrive; adding an alert twice changes nothing.

Two ways in: ``add`` groups one stored alert; ``add_batch`` takes the new alerts of a shipper batch
before they are stored. A flood (a brute force raising thousands of alerts on one host) must not cost
three committed writes per alert: the batch is split into its connected groups in memory
(``batch_components``), each group looks up related incidents with one query per entity and merged
time window, and is written as one incident write plus one bulk alert write. The incident is written
first and its id is derived from the group's first alert, so a crash between the two writes is
repaired by the replay (the same id is found and joined, never duplicated).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from civicsoc.errors import AlreadyExists, NotFound, VersionConflict
from civicsoc.records import Alert, Incident, IncidentStatus, Severity
from civicsoc.store import RecordQuery, Scope, Store, TimeRange, Versioned
from detection.entities import linking_users

DEFAULT_WINDOW = timedelta(hours=12)
OPEN_STATUSES = frozenset({IncidentStatus.new, IncidentStatus.acknowledged, IncidentStatus.investigating,
                           IncidentStatus.contained})
RETRIES = 8


def incident_id(tenant: str, first_alert_id: str) -> str:
    return "inc-" + hashlib.blake2b(f"{tenant}\x00{first_alert_id}".encode(), digest_size=10).hexdigest()


def _union(*lists: Iterable[str]) -> list[str]:
    return sorted({value for values in lists for value in values})


def _title(alert: Alert) -> str:
    where = alert.hosts[0] if alert.hosts else (alert.users[0] if alert.users else None)
    return f"{alert.rule_title} on {where}" if where else alert.rule_title


def _incident_from(alert: Alert) -> Incident:
    """A new incident holding one alert. Pure."""
    now = datetime.now(UTC)
    return Incident(
        id=incident_id(alert.tenant, alert.id), tenant=alert.tenant, title=_title(alert),
        severity=alert.severity, alert_ids=[alert.id], rule_ids=[alert.rule_id], tags=sorted(set(alert.tags)),
        techniques=sorted(alert.techniques), tactics=sorted(alert.tactics), hosts=sorted(alert.hosts),
        users=sorted(alert.users), ips=sorted(alert.ips), domains=sorted(alert.domains),
        hashes=sorted(alert.hashes), first_seen=alert.timestamp, last_seen=alert.timestamp,
        created_at=now, updated_at=now,
    )


def _with_alerts(incident: Incident, alerts: Sequence[Alert]) -> Incident:
    """``incident`` grown by ``alerts``: unions, the worst severity (and its title), the time span. Pure."""
    if not alerts:
        return incident
    worst = max(alerts, key=lambda a: Severity(a.severity).rank)
    raise_severity = Severity(worst.severity).rank > Severity(incident.severity).rank
    return incident.model_copy(update={
        "alert_ids": _union(incident.alert_ids, (a.id for a in alerts)),
        "rule_ids": _union(incident.rule_ids, (a.rule_id for a in alerts)),
        "tags": _union(incident.tags, *(a.tags for a in alerts)),
        "techniques": _union(incident.techniques, *(a.techniques for a in alerts)),
        "tactics": _union(incident.tactics, *(a.tactics for a in alerts)),
        "hosts": _union(incident.hosts, *(a.hosts for a in alerts)),
        "users": _union(incident.users, *(a.users for a in alerts)),
        "ips": _union(incident.ips, *(a.ips for a in alerts)),
        "domains": _union(incident.domains, *(a.domains for a in alerts)),
        "hashes": _union(incident.hashes, *(a.hashes for a in alerts)),
        "severity": worst.severity if raise_severity else incident.severity,
        "title": _title(worst) if raise_severity else incident.title,
        "first_seen": min(incident.first_seen, *(a.timestamp for a in alerts)),
        "last_seen": max(incident.last_seen, *(a.timestamp for a in alerts)),
        "updated_at": datetime.now(UTC),
    })


def _entity_keys(alert: Alert) -> list[tuple[str, str, str]]:
    """What can tie an alert to another: (tenant, store field, value)."""
    return [(alert.tenant, "hosts", host) for host in alert.hosts] + \
        [(alert.tenant, "users", user) for user in linking_users(alert.users)]


def batch_components(alerts: Sequence[Alert], window: timedelta) -> list[list[Alert]]:
    """The alerts split into groups connected by the relation (among themselves), each group in time
    order and the groups ordered by their first alert. Pure.

    Per entity, alerts sorted by time are linked to their neighbour when at most ``window`` apart: two
    alerts within the window are then always connected through the ones between them, so this finds
    the same groups as comparing every pair, in O(n log n).
    """
    parent = list(range(len(alerts)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    by_key: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, alert in enumerate(alerts):
        for key in _entity_keys(alert):
            by_key[key].append(index)
    for members in by_key.values():
        members.sort(key=lambda i: (alerts[i].timestamp, alerts[i].id))
        for earlier, later in pairwise(members):
            if alerts[later].timestamp - alerts[earlier].timestamp <= window:
                parent[root(earlier)] = root(later)
    groups: dict[int, list[Alert]] = defaultdict(list)
    for index, alert in enumerate(alerts):
        groups[root(index)].append(alert)
    ordered = [sorted(group, key=lambda a: (a.timestamp, a.id)) for group in groups.values()]
    return sorted(ordered, key=lambda g: (g[0].timestamp, g[0].id))


def merged_windows(times: Iterable[datetime], window: timedelta) -> list[tuple[datetime, datetime]]:
    """The union of ``[t - window, t + window]`` over ``times``, as disjoint intervals. Pure."""
    intervals: list[tuple[datetime, datetime]] = []
    for moment in sorted(times):
        start, end = moment - window, moment + window
        if intervals and start <= intervals[-1][1]:
            intervals[-1] = (intervals[-1][0], end)
        else:
            intervals.append((start, end))
    return intervals


@dataclass
class BatchResult:
    """What ``add_batch`` did: the incidents the new alerts now belong to (after merges), by id, with
    the alerts each received; how many alerts were new and how many were stored already."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    received: dict[str, list[Alert]] = field(default_factory=dict)
    created: int = 0
    known: int = 0


class IncidentGrouper:
    def __init__(self, store: Store, *, window: timedelta = DEFAULT_WINDOW) -> None:
        self.store = store
        self.window = window
        self.scope = Scope.all()  # the pipeline groups for every tenant; each incident stays in its alert's tenant

    def add(self, alert_id: str) -> Incident:
        """Put a stored alert into its incident; returns the incident it belongs to (after merges)."""
        for _ in range(RETRIES):
            try:
                return self._add(alert_id)
            except VersionConflict:
                continue  # someone changed an incident meanwhile: look again
        raise VersionConflict("incidents", alert_id, "(grouping kept conflicting)")

    def _add(self, alert_id: str) -> Incident:
        current = self.store.alerts.get(self.scope, alert_id)
        alert = current.record
        if alert.incident_id is not None:
            return self.surviving(alert.incident_id).record
        candidates = self._open_incidents(self._related_to_group([alert]))
        if not candidates:
            incident = self._open(alert)
        else:
            target, *others = sorted(candidates, key=lambda v: (v.record.first_seen, v.record.id))
            for other in others:
                target = self._merge(other, target)
            incident = self._join(target, [alert]).record
        self.store.alerts.update(self.scope, alert.model_copy(update={"incident_id": incident.id,
                                                                      "updated_at": datetime.now(UTC)}),
                                 current.version)
        return incident

    def add_batch(self, alerts: Sequence[Alert]) -> BatchResult:
        """Store the alerts not stored yet, each in its incident (see the module docstring).

        Alerts stored already are counted as known; one stored without an incident (an older crash)
        is grouped the single way.
        """
        result = BatchResult()
        unique = list({alert.id: alert for alert in alerts}.values())
        stored = {item.record.id: item.record for item in self.store.alerts.get_many(self.scope,
                                                                                      [a.id for a in unique])}
        for alert in stored.values():
            result.known += 1
            incident = self.add(alert.id) if alert.incident_id is None else None
            if incident is not None:
                self._note(result, incident, [alert])
        fresh = [alert for alert in unique if alert.id not in stored]
        for component in batch_components(fresh, self.window):
            for _ in range(RETRIES):
                try:
                    incident = self._place(component)
                    break
                except VersionConflict:
                    continue  # someone changed an incident meanwhile: look again
            else:
                raise VersionConflict("incidents", component[0].id, "(grouping kept conflicting)")
            now = datetime.now(UTC)
            result.created += self.store.alerts.create_many(self.scope, [
                alert.model_copy(update={"incident_id": incident.id, "updated_at": now}) for alert in component])
            self._note(result, incident, component)
        return result

    @staticmethod
    def _note(result: BatchResult, incident: Incident, alerts: list[Alert]) -> None:
        result.incidents[incident.id] = incident
        result.received.setdefault(incident.id, []).extend(alerts)

    def _place(self, component: list[Alert]) -> Incident:
        """Write the incident a group of new alerts belongs to (opened, joined or merged); the alerts
        themselves are written by the caller afterwards."""
        candidates = self._open_incidents(self._related_to_group(component))
        if candidates:
            target, *others = sorted(candidates, key=lambda v: (v.record.first_seen, v.record.id))
            for other in others:
                target = self._merge(other, target)
            return self._join(target, component).record
        first, *rest = component
        opened = _with_alerts(_incident_from(first), rest)
        try:
            return self.store.incidents.create(self.scope, opened).record
        except AlreadyExists:  # a replay after a crash between the incident write and the alerts write
            return self._join(self.store.incidents.get(self.scope, opened.id), component).record

    def _related_to_group(self, component: list[Alert]) -> set[str]:
        """Incident ids of stored alerts related to any alert of the group: per entity value, one
        count per merged time window (exactly the alerts within ``window`` of one of the group's)."""
        times: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
        for alert in component:
            for key in _entity_keys(alert):
                times[key].append(alert.timestamp)
        # Values whose windows coincide (an alert's host and user) share one query.
        values_by_window: dict[tuple[str, str, datetime, datetime], list[str]] = defaultdict(list)
        for (tenant, kind, value), moments in times.items():
            for start, end in merged_windows(moments, self.window):
                values_by_window[(tenant, kind, start, end)].append(value)
        found: set[str] = set()
        for (tenant, kind, start, end), values in values_by_window.items():
            query = RecordQuery.where({kind: values, "tenant": tenant}, time_field="timestamp",
                                      time=TimeRange(start, end + timedelta(microseconds=1)))
            found.update(str(bucket.key) for bucket in
                         self.store.alerts.count_by(self.scope, query, "incident_id", size=10_000))
        return found

    def surviving(self, incident_ref: str) -> Versioned[Incident]:
        """The incident an id stands for now: merged incidents point at the one that absorbed them."""
        seen = set()
        current = self.store.incidents.get(self.scope, incident_ref)
        while current.record.duplicate_of is not None and current.record.id not in seen:
            seen.add(current.record.id)
            current = self.store.incidents.get(self.scope, current.record.duplicate_of)
        return current

    def _open_incidents(self, incident_ids: set[str]) -> list[Versioned[Incident]]:
        by_id: dict[str, Versioned[Incident]] = {}
        for ref in incident_ids:
            try:
                current = self.surviving(ref)
            except NotFound:
                continue
            if current.record.status in OPEN_STATUSES:
                by_id[current.record.id] = current
        return list(by_id.values())

    def _open(self, alert: Alert) -> Incident:
        return self.store.incidents.create(self.scope, _incident_from(alert)).record

    def _join(self, target: Versioned[Incident], alerts: list[Alert]) -> Versioned[Incident]:
        return self.store.incidents.update(self.scope, _with_alerts(target.record, alerts), target.version)

    def _merge(self, absorbed: Versioned[Incident], target: Versioned[Incident]) -> Versioned[Incident]:
        """Move ``absorbed``'s alerts into ``target`` and mark ``absorbed`` a duplicate of it."""
        alerts = [self.store.alerts.get(self.scope, alert_id) for alert_id in absorbed.record.alert_ids]
        target = self._join(target, [a.record for a in alerts])
        for current in alerts:
            self.store.alerts.update(self.scope, current.record.model_copy(update={
                "incident_id": target.record.id, "updated_at": datetime.now(UTC)}), current.version)
        self.store.incidents.update(self.scope, absorbed.record.model_copy(update={
            "status": IncidentStatus.duplicate, "duplicate_of": target.record.id, "updated_at": datetime.now(UTC),
        }), absorbed.version)
        return target
