"""Compliance exports: the incident register, statistics, the period report (PDF), NIS2/GDPR notification
drafts and STIX bundles. Every answer is a file (``Content-Disposition: attachment``, ``X-TLP`` with its
label, ``Cache-Control: no-store``) and every export is audited (``reports.service``).

Who may export what:

- an **unredacted** export (``redact=false``, the default) needs the ``export`` permission: the compliance
  and admin roles;
- a **redacted** export (``redact=true``: user and host names, e-mail and internal IP addresses
  pseudonymized) needs only ``read``, so analysts and viewers can share with a CSIRT without the compliance
  officer: it reveals less than what they can already read in the API;
- ``TLP:CLEAR`` and ``TLP:GREEN`` exports must be redacted (422 otherwise);
- tenants come from the token: asking for a tenant outside it answers 404, like one that does not exist,
  and an incident of another tenant is a 404 too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from api.deps import Reader, Services, ServicesDep
from api.params import as_utc
from civicsoc.store import TimeRange
from civicsoc.tokens import Permission, Principal
from reports import service
from reports.notifications import NotificationKind
from reports.redaction import load_key
from reports.service import ExportFile, PeriodRequest
from reports.statistics import Statistics
from reports.tlp import Tlp

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
DEFAULT_SPAN = timedelta(days=30)
KEY = "redaction_key"
"""``Services.extra`` entry holding the pseudonymization key (loaded from the data dir if absent)."""
FILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "The exported file", "content": {
        "text/csv": {}, "application/json": {}, "application/pdf": {},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
        "application/stix+json;version=2.1": {}}},
}

Redact = Annotated[bool, Query(description="Pseudonymize user and host names, e-mail and internal IP addresses "
                                           "(keyed hash); needed for TLP:CLEAR/GREEN and for roles without export")]
TlpParam = Annotated[str, Query(max_length=30, description="TLP 2.0 label: clear, green, amber, amber+strict "
                                                           "(URL-encode the +) or red")]


def _may_export(principal: Principal, redact: bool) -> None:
    if not redact and not principal.can(Permission.export):
        raise HTTPException(403, f"the {principal.role.value} role may not export unredacted data; ask for "
                                 "redact=true or use a compliance token")


def _redaction_key(services: Services, redact: bool) -> bytes | None:
    if not redact:
        return None
    key = services.extra.get(KEY)
    if key is None:
        from civicsoc.config import load_settings

        key = services.extra[KEY] = load_key(load_settings().data_dir)
    return key


def _moment(value: datetime | None, name: str) -> datetime | None:
    try:
        return as_utc(value)
    except OverflowError:
        raise HTTPException(422, f"{name}: the time is out of range once converted to UTC") from None


def _period(start: datetime | None, end: datetime | None) -> TimeRange:
    """``[from, to)``; ``to`` defaults to now, ``from`` to 30 days before ``to``."""
    end = _moment(end, "to") or datetime.now(UTC)
    begin = _moment(start, "from")
    if begin is None:
        try:
            begin = end - DEFAULT_SPAN
        except OverflowError:
            raise HTTPException(422, "from: give the start of the period") from None
    if end < begin:
        raise HTTPException(422, "to: the end of the period is before its start")
    return TimeRange(begin, end)


@dataclass
class PeriodParams:
    request: PeriodRequest
    redact: bool


def period_params(
    services: ServicesDep,
    start: Annotated[datetime | None, Query(alias="from", description="Start (ISO 8601; default: 30 days "
                                                                      "before `to`)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="End, exclusive (ISO 8601; default: now)")] = None,
    tenant: Annotated[list[str] | None, Query(description="Tenants (repeatable; default: all of the token's)")]
    = None,
    time_field: Annotated[Literal["created_at", "first_seen"], Query(
        description="Which time puts an incident in the period: detection or first event")] = "created_at",
    interval: Annotated[Literal["week", "month"], Query(description="Buckets of the counts over time")] = "week",
    redact: Redact = False,
    tlp: TlpParam = "amber",
) -> PeriodParams:
    request = PeriodRequest(period=_period(start, end), tenants=tuple(dict.fromkeys(tenant or ())),
                            time_field=time_field, interval=interval, tlp=Tlp.parse(tlp),
                            redaction_key=_redaction_key(services, redact))
    return PeriodParams(request, redact)


Period = Annotated[PeriodParams, Depends(period_params)]


def file_response(file: ExportFile) -> Response:
    return Response(file.content, media_type=file.media_type, headers={
        "Content-Disposition": f'attachment; filename="{file.filename}"', "X-TLP": file.tlp.label,
        "Cache-Control": "no-store"})


@router.get("/register", response_class=Response, responses=FILE_RESPONSES)
def incident_register(principal: Reader, services: ServicesDep, params: Period,
                      fmt: Annotated[Literal["csv", "xlsx", "json"], Query(alias="format")] = "csv") -> Response:
    """The incident register of a period: one row per incident with its times, severity, status, ATT&CK
    techniques, affected hosts and users, playbook completion and regulatory deadlines (met or not). XLSX has
    a summary sheet and one sheet per tenant."""
    _may_export(principal, params.redact)
    return file_response(service.register_export(services.store, services.playbooks, principal.scope,
                                                 principal.actor, params.request, fmt))


@router.get("/statistics", response_class=Response, responses={200: {"model": Statistics}})
def period_statistics(principal: Reader, services: ServicesDep, params: Period) -> Response:
    """Counts by severity, status and tactic (in total and per week or month), MTTD, MTTA, MTTR and the
    regulatory deadlines met, missed and open."""
    _may_export(principal, params.redact)
    _, file = service.statistics_export(services.store, services.playbooks, principal.scope, principal.actor,
                                        params.request)
    return file_response(file)


@router.get("/pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
def period_report(principal: Reader, services: ServicesDep, params: Period) -> Response:
    """The period report: cover, summary figures, charts, incident table, open regulatory deadlines."""
    _may_export(principal, params.redact)
    return file_response(service.pdf_export(services.store, services.playbooks, principal.scope, principal.actor,
                                            params.request))


@router.get("/incidents/{incident_id}/notifications/{kind}", response_class=Response,
            responses={200: {"content": {"application/json": {}, "application/pdf": {}}}})
def notification_draft(incident_id: str, kind: NotificationKind, principal: Reader, services: ServicesDep,
                       fmt: Annotated[Literal["json", "pdf"], Query(alias="format")] = "json",
                       redact: Redact = False, tlp: TlpParam = "amber") -> Response:
    """A NIS2 early warning, incident notification or final report, or a GDPR Art. 33 notification, pre-filled
    from the incident, its alerts, playbook steps and comments; `missing` lists what the analyst must add
    (as `field: value` lines in a comment)."""
    _may_export(principal, redact)
    return file_response(service.notification_export(
        services.store, services.playbooks, principal.scope, principal.actor, incident_id, kind, fmt,
        Tlp.parse(tlp), _redaction_key(services, redact)))


@router.get("/incidents/{incident_id}/stix", response_class=Response,
            responses={200: {"content": {"application/stix+json;version=2.1": {}}}})
def stix_bundle(incident_id: str, principal: Reader, services: ServicesDep, redact: Redact = False,
                tlp: TlpParam = "amber") -> Response:
    """The incident's indicators of compromise (IP addresses, domains, file hashes) and ATT&CK techniques as
    a STIX 2.1 bundle with a TLP 2.0 marking, for the national CSIRT."""
    _may_export(principal, redact)
    return file_response(service.stix_export(services.store, services.playbooks, principal.scope,
                                             principal.actor, incident_id, Tlp.parse(tlp),
                                             _redaction_key(services, redact)))
