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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from civicsoc.errors import NotFound, VersionConflict
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
        candidates = self._open_incidents(self._related_incident_ids(alert))
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

    def surviving(self, incident_ref: str) -> Versioned[Incident]:
        """The incident an id stands for now: merged incidents point at the one that absorbed them."""
        seen = set()
        current = self.store.incidents.get(self.scope, incident_ref)
        while current.record.duplicate_of is not None and current.record.id not in seen:
            seen.add(current.record.id)
            current = self.store.incidents.get(self.scope, current.record.duplicate_of)
        return current

    def _related_incident_ids(self, alert: Alert) -> set[str]:
        # The store counts the incident ids of the related alerts (one aggregation per entity kind) rather
        # than returning the alerts: during a brute force thousands of alerts share one host.
        window = TimeRange(alert.timestamp - self.window, alert.timestamp + self.window + timedelta(microseconds=1))
        found: set[str] = set()
        for field, values in (("hosts", alert.hosts), ("users", linking_users(alert.users))):
            if not values:
                continue
            query = RecordQuery.where({field: list(values), "tenant": alert.tenant}, time_field="timestamp",
                                      time=window)
            found.update(str(bucket.key) for bucket in
                         self.store.alerts.count_by(self.scope, query, "incident_id", size=10_000))
        return found

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
        now = datetime.now(UTC)
        incident = Incident(
            id=incident_id(alert.tenant, alert.id), tenant=alert.tenant, title=_title(alert),
            severity=alert.severity, alert_ids=[alert.id], rule_ids=[alert.rule_id], tags=sorted(set(alert.tags)),
            techniques=sorted(alert.techniques), tactics=sorted(alert.tactics), hosts=sorted(alert.hosts),
            users=sorted(alert.users), ips=sorted(alert.ips), domains=sorted(alert.domains),
            hashes=sorted(alert.hashes), first_seen=alert.timestamp, last_seen=alert.timestamp,
            created_at=now, updated_at=now,
        )
        return self.store.incidents.create(self.scope, incident).record

    def _join(self, target: Versioned[Incident], alerts: list[Alert]) -> Versioned[Incident]:
        incident = target.record
        worst = max(alerts, key=lambda a: Severity(a.severity).rank)
        raise_severity = Severity(worst.severity).rank > Severity(incident.severity).rank
        updated = incident.model_copy(update={
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
        return self.store.incidents.update(self.scope, updated, target.version)

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
