"""Alerts: list and filter, acknowledge, mark false positive (optionally excepting events like it)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import Reader, ServicesDep, Triager, etag
from api.params import filters, time_range
from api.schemas import AlertOut, AlertStatusIn, FalsePositiveIn, Page, alert_out
from civicsoc import triage
from civicsoc.event import get_field
from civicsoc.records import AlertStatus, Severity, utcnow
from civicsoc.store import RecordQuery
from civicsoc.triage import WorkflowError

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("", response_model=Page[AlertOut])
def list_alerts(
    principal: Reader,
    services: ServicesDep,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    rule_id: str | None = None,
    incident_id: str | None = None,
    tenant: Annotated[list[str] | None, Query()] = None,
    technique: str | None = None,
    host: str | None = None,
    user: str | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the rule title")] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    sort: Literal["timestamp", "created_at", "updated_at", "rule_title", "status"] = "timestamp",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> Page[AlertOut]:
    window = time_range(start, end)
    query = RecordQuery.where(
        filters(status=[s.value for s in status or []], severity=[s.value for s in severity or []],
                rule_id=rule_id, incident_id=incident_id, tenant=tenant, techniques=technique, hosts=host,
                users=user),
        time_field="timestamp" if window else None, time=window, sort=sort, descending=order == "desc",
        limit=limit, cursor=cursor, text=q or None,
    )
    page = services.store.alerts.list(principal.scope, query)
    return Page(items=[alert_out(item) for item in page.items], next_cursor=page.next_cursor)


@router.get("/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: str, principal: Reader, services: ServicesDep, response: Response) -> AlertOut:
    current = services.store.alerts.get(principal.scope, alert_id)
    response.headers["ETag"] = etag(current.version)
    return alert_out(current)


@router.post("/{alert_id}/status", response_model=AlertOut)
def set_status(alert_id: str, body: AlertStatusIn, principal: Triager, services: ServicesDep) -> AlertOut:
    """Acknowledge an alert (or reopen it as new)."""
    return alert_out(triage.set_alert_status(services.store, principal.scope, principal.actor, alert_id, body.status))


@router.post("/{alert_id}/false-positive", response_model=AlertOut)
def false_positive(alert_id: str, body: FalsePositiveIn, principal: Triager, services: ServicesDep) -> AlertOut:
    """Mark the alert a false positive; with `create_exception`, stop its rule alerting on events that
    share the chosen field values (for `exception_days`)."""
    store, scope = services.store, principal.scope
    alert = store.alerts.get(scope, alert_id).record
    if body.create_exception:
        from detection.suppression import add_exception

        if not body.exception_fields:
            raise WorkflowError("exception_fields: name the alert fields whose values the exception matches")
        conditions: dict[str, list[str]] = {}
        for name in body.exception_fields:
            value = get_field(alert.fields, name)
            if value is None:
                raise WorkflowError(f"exception_fields: the alert has no value for {name!r}")
            conditions[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        add_exception(store, tenant=alert.tenant, rule_id=alert.rule_id, conditions=conditions,
                      reason=body.reason or f"false positive {alert_id}",
                      expires_at=utcnow() + timedelta(days=body.exception_days), actor=principal.actor)
    return alert_out(triage.set_alert_status(store, scope, principal.actor, alert_id, AlertStatus.false_positive))

