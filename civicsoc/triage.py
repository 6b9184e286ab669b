"""The analyst's workflow on incidents and alerts: status, assignment, severity, comments, merge, split.

Every change is a read-modify-write guarded by the version the analyst saw (``expected_version``, the
API's ``If-Match``): a second analyst who edited the same incident meanwhile makes the write fail with
``VersionConflict`` instead of being overwritten silently. Every change is audited with before/after.

Status workflow: ``new → acknowledged → investigating → contained → resolved``; an open incident can
also become ``false_positive`` or ``duplicate`` (of another incident), and a closed one can be
reopened as ``investigating``. Skipping forward (``new → investigating``) is allowed: a busy analyst
should not have to click through every state. The times of reaching acknowledged, contained and
resolved are kept for the compliance figures (MTTA, MTTR).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from civicsoc import audit
from civicsoc.errors import CivicsocError, NotFound
from civicsoc.event import Event
from civicsoc.records import (
    Alert,
    AlertStatus,
    Comment,
    Incident,
    IncidentStatus,
    NotificationRegime,
    PlaybookRun,
    Record,
    Severity,
    Submission,
    utcnow,
)
from civicsoc.store import EventQuery, EventRead, Page, RecordQuery, RecordRead, Scope, Store, TimeRange, Versioned
from civicsoc.store.base import MAX_PAGE, R
from civicsoc.tenancy import regime_of, tenant_of, tenant_read

FORWARD = [IncidentStatus.new, IncidentStatus.acknowledged, IncidentStatus.investigating,
           IncidentStatus.contained, IncidentStatus.resolved]
CLOSED = frozenset({IncidentStatus.resolved, IncidentStatus.false_positive, IncidentStatus.duplicate})
STATUS_TIMES = {IncidentStatus.acknowledged: "acknowledged_at", IncidentStatus.contained: "contained_at",
                IncidentStatus.resolved: "resolved_at"}
TIMELINE_LIMIT = 5000


class WorkflowError(CivicsocError):
    """A change the workflow does not allow (the API answers 409 with this message)."""


def allowed_transitions(current: IncidentStatus) -> frozenset[IncidentStatus]:
    if current in CLOSED:
        return frozenset({IncidentStatus.investigating})
    later = FORWARD[FORWARD.index(current) + 1:]
    return frozenset({*later, IncidentStatus.false_positive, IncidentStatus.duplicate})


def _changed(before: Incident, after: Incident, fields: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    old = before.model_dump(mode="json", include=set(fields))
    new = after.model_dump(mode="json", include=set(fields))
    return old, new


def _save(store: Store, scope: Scope, actor: str, action: str, before: Incident, after: Incident,
          version: str, fields: Iterable[str]) -> Versioned[Incident]:
    saved = store.incidents.update(scope, after, version)
    old, new = _changed(before, after, fields)
    audit.append(store, tenant=after.tenant, actor=actor, action=action, target=f"incidents/{after.id}",
                 before=old, after=new)
    return saved


def change_status(store: Store, scope: Scope, actor: str, incident_id: str, status: IncidentStatus,
                  expected_version: str, *, duplicate_of: str | None = None) -> Versioned[Incident]:
    current = store.incidents.get(scope, incident_id)
    incident = current.record
    if status == incident.status:
        return current
    if status not in allowed_transitions(incident.status):
        allowed = ", ".join(sorted(s.value for s in allowed_transitions(incident.status)))
        raise WorkflowError(f"incident {incident_id}: cannot go from {incident.status.value} to {status.value} "
                            f"(allowed: {allowed})")
    now = utcnow()
    update: dict[str, Any] = {"status": status, "updated_at": now,
                              "duplicate_of": None if status != IncidentStatus.duplicate else duplicate_of}
    if status == IncidentStatus.duplicate:
        if not duplicate_of or duplicate_of == incident_id:
            raise WorkflowError(f"incident {incident_id}: a duplicate needs the id of the incident it duplicates")
        store.incidents.get(scope, duplicate_of)  # NotFound if it is not one the caller can see
    reached = FORWARD.index(status) if status in FORWARD else -1
    for passed, field in STATUS_TIMES.items():  # skipping forward passes the states in between
        if FORWARD.index(passed) <= reached and getattr(incident, field) is None:
            update[field] = now
    if status == IncidentStatus.investigating and incident.status in CLOSED:
        update["resolved_at"] = None
    changed = incident.model_copy(update=update)
    fields = {"status", "duplicate_of", *STATUS_TIMES.values()}
    return _save(store, scope, actor, "incident.status", incident, changed, expected_version, fields)


def assign(store: Store, scope: Scope, actor: str, incident_id: str, assignee: str | None,
           expected_version: str) -> Versioned[Incident]:
    current = store.incidents.get(scope, incident_id)
    changed = current.record.model_copy(update={"assignee": assignee or None, "updated_at": utcnow()})
    return _save(store, scope, actor, "incident.assign", current.record, changed, expected_version, {"assignee"})


def override_severity(store: Store, scope: Scope, actor: str, incident_id: str, severity: Severity, reason: str,
                      expected_version: str) -> Versioned[Incident]:
    if not reason.strip():
        raise WorkflowError("severity override: a reason is required")
    current = store.incidents.get(scope, incident_id)
    changed = current.record.model_copy(update={"severity": severity, "severity_reason": reason.strip(),
                                                "updated_at": utcnow()})
    return _save(store, scope, actor, "incident.severity", current.record, changed, expected_version,
                 {"severity", "severity_reason"})


def mark_significant(store: Store, scope: Scope, actor: str, incident_id: str, significant: bool,
                     expected_version: str, at: datetime | None = None) -> Versioned[Incident]:
    """Confirm (or withdraw) that the incident is significant: the moment regulatory clocks start."""
    current = store.incidents.get(scope, incident_id)
    moment = (at or utcnow()) if significant else None
    changed = current.record.model_copy(update={"significant_at": moment, "updated_at": utcnow()})
    return _save(store, scope, actor, "incident.significant", current.record, changed, expected_version,
                 {"significant_at"})


def set_regulatory(store: Store, scope: Scope, actor: str, incident_id: str, expected_version: str, *,
                   nis2: bool | None = None, gdpr: bool | None = None,
                   gdpr_aware_at: datetime | None = None) -> Versioned[Incident]:
    """Record whether NIS2 reporting and GDPR notification apply (the analyst's and DPO's call)."""
    current = store.incidents.get(scope, incident_id)
    update: dict[str, Any] = {"updated_at": utcnow()}
    if nis2 is not None:
        update["nis2"] = nis2
    if gdpr is not None:
        update["gdpr"] = gdpr
    if gdpr_aware_at is not None:
        update["gdpr_aware_at"] = gdpr_aware_at
    changed = current.record.model_copy(update=update)
    return _save(store, scope, actor, "incident.regulatory", current.record, changed, expected_version,
                 {"nis2", "gdpr", "gdpr_aware_at"})


def add_comment(store: Store, scope: Scope, actor: str, incident_id: str, text: str) -> Comment:
    incident = store.incidents.get(scope, incident_id).record
    comment = Comment(id=f"{incident_id}.{utcnow():%Y%m%dT%H%M%S%f}.{secrets.token_hex(3)}", tenant=incident.tenant,
                      incident_id=incident_id, author=actor, text=text)
    store.records(Comment).create(scope, comment)
    audit.append(store, tenant=incident.tenant, actor=actor, action="incident.comment",
                 target=f"incidents/{incident_id}", after={"comment": comment.id, "text": text})
    return comment


INCIDENT_RECORD_ORDER: dict[type[Record], str] = {Comment: "created_at", PlaybookRun: "id",
                                                  Submission: "submitted_at"}
"""Records kept per incident, and the field each is shown in order of (oldest first)."""


def of_incident(record_type: type[R], incident_id: str) -> RecordRead[R]:
    """All of an incident's records of one kind (comments, playbook runs, submissions) on one page."""
    query = RecordQuery.where({"incident_id": incident_id}, sort=INCIDENT_RECORD_ORDER[record_type],
                              descending=False, limit=MAX_PAGE)
    return RecordRead(record_type, query)


def comments(store: Store, scope: Scope, incident_id: str) -> list[Comment]:
    read = of_incident(Comment, incident_id)
    return [item.record for item in store.records(Comment).list(scope, read.query).items]


# merge and split --------------------------------------------------------------------------------


def summarize(alerts: list[Alert]) -> dict[str, Any]:
    """An incident's alert-derived fields, computed afresh from its alerts."""

    def union(attribute: str) -> list[str]:
        return sorted({value for alert in alerts for value in getattr(alert, attribute)})

    worst = max(alerts, key=lambda a: (Severity(a.severity).rank, -a.timestamp.timestamp()))
    return {
        "alert_ids": sorted(a.id for a in alerts), "rule_ids": sorted({a.rule_id for a in alerts}),
        "tags": union("tags"),
        "techniques": union("techniques"), "tactics": union("tactics"), "hosts": union("hosts"),
        "users": union("users"), "ips": union("ips"), "domains": union("domains"), "hashes": union("hashes"),
        "severity": worst.severity, "first_seen": min(a.timestamp for a in alerts),
        "last_seen": max(a.timestamp for a in alerts),
    }


def _alerts(store: Store, scope: Scope, alert_ids: Iterable[str]) -> list[Versioned[Alert]]:
    """Every alert of ``alert_ids`` (one request); ``NotFound`` names the first one missing."""
    wanted = list(alert_ids)
    found = {current.record.id: current for current in store.alerts.get_many(scope, wanted)}
    for alert_id in wanted:
        if alert_id not in found:
            raise NotFound(store.alerts.name, alert_id)
    return [found[alert_id] for alert_id in wanted]


def _point_alerts(store: Store, scope: Scope, alerts: list[Versioned[Alert]], incident_id: str) -> None:
    for current in alerts:
        store.alerts.update(scope, current.record.model_copy(update={"incident_id": incident_id,
                                                                     "updated_at": utcnow()}), current.version)


def merge(store: Store, scope: Scope, actor: str, source_id: str, target_id: str,
          expected_version: str) -> Versioned[Incident]:
    """Move every alert of ``source`` into ``target`` (whose version the caller saw); ``source`` becomes
    a duplicate of ``target``."""
    if source_id == target_id:
        raise WorkflowError("merge: an incident cannot be merged into itself")
    target = store.incidents.get(scope, target_id)
    source = store.incidents.get(scope, source_id)
    if source.record.tenant != target.record.tenant:
        raise WorkflowError("merge: incidents of different tenants cannot be merged")
    if source.record.status == IncidentStatus.duplicate:
        raise WorkflowError(f"merge: {source_id} is already a duplicate of {source.record.duplicate_of}")
    moving = _alerts(store, scope, source.record.alert_ids)
    staying = [a.record for a in _alerts(store, scope, target.record.alert_ids)]
    merged = target.record.model_copy(update={**summarize(staying + [a.record for a in moving]),
                                              "updated_at": utcnow()})
    # an analyst's override stands unless the merge raises it
    if target.record.severity_reason and Severity(target.record.severity).rank > Severity(merged.severity).rank:
        merged = merged.model_copy(update={"severity": target.record.severity})
    saved = _save(store, scope, actor, "incident.merge", target.record, merged, expected_version,
                  {"alert_ids", "severity"})
    _point_alerts(store, scope, moving, target_id)
    store.incidents.update(scope, source.record.model_copy(update={
        "status": IncidentStatus.duplicate, "duplicate_of": target_id, "updated_at": utcnow()}), source.version)
    audit.append(store, tenant=source.record.tenant, actor=actor, action="incident.status",
                 target=f"incidents/{source_id}", before={"status": source.record.status.value},
                 after={"status": "duplicate", "duplicate_of": target_id})
    return saved


def split(store: Store, scope: Scope, actor: str, incident_id: str, alert_ids: list[str],
          expected_version: str) -> tuple[Versioned[Incident], Versioned[Incident]]:
    """Move some alerts out into a new incident; returns (the remaining incident, the new one)."""
    current = store.incidents.get(scope, incident_id)
    chosen = set(alert_ids)
    unknown = chosen - set(current.record.alert_ids)
    if unknown:
        raise WorkflowError(f"split: alerts {sorted(unknown)} are not in incident {incident_id}")
    if not chosen or chosen == set(current.record.alert_ids):
        raise WorkflowError("split: choose some, but not all, of the incident's alerts")
    everything = _alerts(store, scope, current.record.alert_ids)
    moving = [a for a in everything if a.record.id in chosen]
    staying = [a.record for a in everything if a.record.id not in chosen]
    remaining = current.record.model_copy(update={**summarize(staying), "updated_at": utcnow()})
    saved = _save(store, scope, actor, "incident.split", current.record, remaining, expected_version,
                  {"alert_ids", "severity"})
    moved = [a.record for a in moving]
    now = utcnow()
    new = Incident(id=f"{incident_id}-split-{secrets.token_hex(4)}", tenant=current.record.tenant,
                   title=f"{moved[0].rule_title} (split from {incident_id})", created_at=now, updated_at=now,
                   **summarize(moved))
    created = store.incidents.create(scope, new)
    _point_alerts(store, scope, moving, new.id)
    audit.append(store, tenant=new.tenant, actor=actor, action="incident.create", target=f"incidents/{new.id}",
                 after={"split_from": incident_id, "alert_ids": new.alert_ids})
    return saved, created


# alerts -----------------------------------------------------------------------------------------


def set_alert_status(store: Store, scope: Scope, actor: str, alert_id: str, status: AlertStatus,
                     expected_version: str | None = None) -> Versioned[Alert]:
    current = store.alerts.get(scope, alert_id)
    if current.record.status == status:
        return current
    changed = current.record.model_copy(update={"status": status, "updated_at": utcnow()})
    saved = store.alerts.update(scope, changed, expected_version or current.version)
    audit.append(store, tenant=changed.tenant, actor=actor, action="alert.status", target=f"alerts/{alert_id}",
                 before={"status": current.record.status.value}, after={"status": status.value})
    return saved


# reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    """Everything the incident page shows, read in three steps: the incident, its alerts, then the
    rest together (``Store.read_together``: one round trip on Elasticsearch)."""

    incident: Versioned[Incident]
    alerts: list[Alert]
    timeline: list[Event]
    comments: list[Comment]
    submissions: list[Submission]
    runs: list[Versioned[PlaybookRun]]
    regime: NotificationRegime


def incident_alerts(store: Store, scope: Scope, incident: Incident) -> list[Alert]:
    """The incident's alerts in time order, in one request; alerts removed since (retention) are left out,
    while the incident keeps their ids."""
    found = [current.record for current in store.alerts.get_many(scope, incident.alert_ids)]
    return sorted(found, key=lambda a: (a.timestamp, a.id))


def timeline_reads(alerts: list[Alert]) -> list[EventRead]:
    """The searches for the events behind the alerts, 500 ids each."""
    event_ids = sorted({event_id for alert in alerts for event_id in alert.event_ids})
    if not event_ids:
        return []
    start = min(a.timestamp for a in alerts) - timedelta(days=1)  # correlation events precede their alert
    end = max(a.timestamp for a in alerts) + timedelta(days=1)
    # An id names one event at most: asking for more than the ids would only make Elasticsearch size its
    # per-shard queues for 5,000 hits.
    return [EventRead(EventQuery.where(TimeRange(start, end), {"event.id": wanted}), limit=len(wanted))
            for wanted in (event_ids[chunk:chunk + 500] for chunk in range(0, len(event_ids), 500))]


def timeline_of(pages: Iterable[Page[Event]]) -> list[Event]:
    """The timeline from the pages ``timeline_reads`` asked for: time order, at most ``TIMELINE_LIMIT``."""
    events = [event for page in pages for event in page.items]
    return sorted(events, key=lambda e: (e.timestamp, e.id))[:TIMELINE_LIMIT]


def timeline(store: Store, scope: Scope, alerts: list[Alert]) -> list[Event]:
    """The events behind the alerts, in time order (correlation alerts bring all of theirs)."""
    return timeline_of(store.read_together(scope, timeline_reads(alerts)))


def incident_detail(store: Store, scope: Scope, incident_id: str) -> IncidentDetail:
    current = store.incidents.get(scope, incident_id)
    alerts = incident_alerts(store, scope, current.record)
    events = timeline_reads(alerts)
    *event_pages, comment_page, submission_page, run_page, tenant_page = store.read_together(scope, [
        *events, of_incident(Comment, incident_id), of_incident(Submission, incident_id),
        of_incident(PlaybookRun, incident_id), tenant_read(current.record.tenant)])
    return IncidentDetail(current, alerts, timeline_of(event_pages), [item.record for item in comment_page.items],
                          [item.record for item in submission_page.items], list(run_page.items),
                          regime_of(tenant_of(tenant_page)))
