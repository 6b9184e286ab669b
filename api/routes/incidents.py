"""Incidents: the triage queue, one incident with everything about it, and the workflow."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import IfMatch, Reader, ServicesDep, Submitter, Triager, etag
from api.params import as_utc, filters, time_range
from api.schemas import (
    BulkIn,
    BulkResultItem,
    CommentIn,
    EventOut,
    IncidentChange,
    IncidentDetailOut,
    IncidentOut,
    MergeIn,
    Page,
    SplitIn,
    SplitOut,
    SubmissionIn,
    incident_out,
)
from civicsoc import triage
from civicsoc.errors import CivicsocError, VersionConflict
from civicsoc.records import Comment, IncidentStatus, Severity, Submission, utcnow
from civicsoc.store import RecordQuery
from civicsoc.tokens import Principal
from playbooks.loader import PlaybookLibrary
from playbooks.queue import due_within as due_within_hours
from playbooks.service import next_deadlines
from playbooks.submissions import list_submissions, record_submission

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])
IncidentSort = Literal["created_at", "updated_at", "first_seen", "last_seen", "status", "title"]


@router.get("", response_model=Page[IncidentOut])
def list_incidents(
    principal: Reader,
    services: ServicesDep,
    status: Annotated[list[IncidentStatus] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    assignee: str | None = None,
    tenant: Annotated[list[str] | None, Query()] = None,
    technique: Annotated[list[str] | None, Query()] = None,
    host: str | None = None,
    user: str | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the title")] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    time_field: Literal["created_at", "first_seen", "last_seen", "updated_at"] = "created_at",
    sort: IncidentSort = "created_at",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    deadlines: Annotated[bool, Query(description="Add each incident's next deadline (next_deadline)")] = False,
    due_within: Annotated[int | None, Query(ge=1, le=24 * 366, description=(
        "Hours: only incidents with a deadline still to be met due within this many hours, overdue ones "
        "included, earliest first (sort and order are ignored); open incidents unless status says otherwise"))] = None,
) -> Page[IncidentOut]:
    window = time_range(start, end)
    query = RecordQuery.where(
        filters(status=[s.value for s in status or []], severity=[s.value for s in severity or []],
                assignee=assignee, tenant=tenant, techniques=technique, hosts=host, users=user),
        time_field=time_field if window else None, time=window, sort=sort, descending=order == "desc",
        limit=limit, cursor=cursor, text=q or None,
    )
    library = services.playbooks or PlaybookLibrary(())
    if due_within is not None:
        due = due_within_hours(services.store, library, principal.scope, query, timedelta(hours=due_within),
                               utcnow(), limit=limit, cursor=cursor)
        return Page(items=[incident_out(item, deadline.as_dict()) for item, deadline in due.items],
                    next_cursor=due.next_cursor)
    page = services.store.incidents.list(principal.scope, query)
    upcoming: dict[str, Any] = {}
    if deadlines:
        upcoming = next_deadlines(services.store, library, principal.scope, [i.record for i in page.items], utcnow())
    return Page(items=[incident_out(item, d.as_dict() if (d := upcoming.get(item.record.id)) else None)
                       for item in page.items], next_cursor=page.next_cursor)


@router.get("/{incident_id}", response_model=IncidentDetailOut)
def get_incident(incident_id: str, principal: Reader, services: ServicesDep, response: Response) -> IncidentDetailOut:
    detail = triage.incident_detail(services.store, principal.scope, incident_id)
    response.headers["ETag"] = etag(detail.incident.version)
    playbooks, deadlines = [], []
    if (describe := services.extra.get("describe_playbooks")) is not None:
        playbooks, deadlines = describe(services, detail)
    return IncidentDetailOut(
        incident=incident_out(detail.incident), alerts=detail.alerts,
        timeline=[EventOut(id=e.id, tenant=e.tenant, timestamp=e.timestamp, fields=e.fields) for e in detail.timeline],
        comments=detail.comments, playbooks=playbooks, deadlines=deadlines, submissions=detail.submissions,
    )


def _apply(services: ServicesDep, principal: Principal, incident_id: str, change: IncidentChange,
           version: str) -> IncidentOut:
    store, scope, actor = services.store, principal.scope, principal.actor
    current = store.incidents.get(scope, incident_id)
    if current.version != version:  # fail before the first step, not half-way
        raise VersionConflict(store.incidents.name, incident_id, version)
    if change.severity is not None:
        current = triage.override_severity(store, scope, actor, incident_id, change.severity,
                                           change.severity_reason or "", current.version)
    if change.assignee is not None:
        current = triage.assign(store, scope, actor, incident_id, change.assignee, current.version)
    if change.significant is not None:
        current = triage.mark_significant(store, scope, actor, incident_id, change.significant, current.version)
    if change.nis2 is not None or change.gdpr is not None or change.gdpr_aware_at is not None:
        current = triage.set_regulatory(store, scope, actor, incident_id, current.version, nis2=change.nis2,
                                        gdpr=change.gdpr, gdpr_aware_at=as_utc(change.gdpr_aware_at))
    if change.status is not None:
        current = triage.change_status(store, scope, actor, incident_id, change.status, current.version,
                                       duplicate_of=change.duplicate_of)
    if (on_change := services.extra.get("on_incident_change")) is not None:
        on_change(services, scope, current.record)
    return incident_out(current)


@router.patch("/{incident_id}", response_model=IncidentOut)
def change_incident(incident_id: str, change: IncidentChange, principal: Triager, services: ServicesDep,
                    version: IfMatch, response: Response) -> IncidentOut:
    """Change status, assignee, severity (with a reason) or significance; 412 if someone changed it since."""
    if change.severity is not None and not (change.severity_reason or "").strip():
        raise triage.WorkflowError("severity: an override needs severity_reason")
    out = _apply(services, principal, incident_id, change, version)
    response.headers["ETag"] = etag(out.version)
    return out


@router.post("/bulk", response_model=list[BulkResultItem])
def bulk_change(change: BulkIn, principal: Triager, services: ServicesDep) -> list[BulkResultItem]:
    """Acknowledge or assign many incidents at once (the queue's bulk actions); each id answers alone."""
    results = []
    for incident_id in dict.fromkeys(change.ids):
        try:
            current = services.store.incidents.get(principal.scope, incident_id)
            _apply(services, principal, incident_id, IncidentChange(status=change.status, assignee=change.assignee),
                   current.version)
            results.append(BulkResultItem(id=incident_id, ok=True))
        except CivicsocError as exc:
            results.append(BulkResultItem(id=incident_id, ok=False,
                                          error="not found" if "not found" in str(exc) else str(exc)))
    return results


@router.get("/{incident_id}/comments", response_model=list[Comment])
def list_comments(incident_id: str, principal: Reader, services: ServicesDep) -> list[Comment]:
    services.store.incidents.get(principal.scope, incident_id)
    return triage.comments(services.store, principal.scope, incident_id)


@router.post("/{incident_id}/comments", response_model=Comment, status_code=201)
def add_comment(incident_id: str, body: CommentIn, principal: Triager, services: ServicesDep) -> Comment:
    return triage.add_comment(services.store, principal.scope, principal.actor, incident_id, body.text)


@router.post("/{incident_id}/merge", response_model=IncidentOut)
def merge_into(incident_id: str, body: MergeIn, principal: Triager, services: ServicesDep, version: IfMatch,
               response: Response) -> IncidentOut:
    """Move every alert of `source_id` into this incident; the source becomes its duplicate."""
    merged = triage.merge(services.store, principal.scope, principal.actor, body.source_id, incident_id, version)
    response.headers["ETag"] = etag(merged.version)
    return incident_out(merged)


@router.post("/{incident_id}/split", response_model=SplitOut)
def split_out(incident_id: str, body: SplitIn, principal: Triager, services: ServicesDep, version: IfMatch,
              response: Response) -> SplitOut:
    """Move some alerts out into a new incident."""
    remaining, created = triage.split(services.store, principal.scope, principal.actor, incident_id,
                                      body.alert_ids, version)
    response.headers["ETag"] = etag(remaining.version)
    return SplitOut(remaining=incident_out(remaining), created=incident_out(created))


@router.get("/{incident_id}/submissions", response_model=list[Submission])
def get_submissions(incident_id: str, principal: Reader, services: ServicesDep) -> list[Submission]:
    """The regulatory reports recorded as sent for this incident, oldest first."""
    services.store.incidents.get(principal.scope, incident_id)
    return list_submissions(services.store, principal.scope, incident_id)


@router.post("/{incident_id}/submissions", response_model=Submission, status_code=201)
def add_submission(incident_id: str, body: SubmissionIn, principal: Submitter, services: ServicesDep) -> Submission:
    """Record that a report (early warning, notification, final report, GDPR Art. 33, CISA) was sent: when,
    by whom, to whom, and the SHA-256 of what was sent. The first one per clock meets that deadline."""
    content = None
    if body.content_base64 is not None:
        try:
            content = base64.b64decode(body.content_base64, validate=True)
        except ValueError as exc:  # binascii.Error, or a character outside ASCII
            raise HTTPException(422, f"content_base64: not valid base64 ({exc})") from None
    return record_submission(services.store, principal.scope, incident_id, body.clock, actor=principal.actor,
                             content=content, sha256=body.sha256, submitted_at=as_utc(body.submitted_at),
                             filename=body.filename, recipient=body.recipient, reference=body.reference,
                             note=body.note)
