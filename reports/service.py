"""One function per export, called by the API routes and the CLI alike: read (within the caller's scope),
build, render, and write an audit record saying who exported what, when, for which period and tenants, in
which format, at which TLP label and whether personal data was pseudonymized.

Policy, enforced here so no caller can skip it:

- ``redaction_key=None`` means an unredacted export; whether the caller may have one is the caller's
  permission check (the API: ``export`` permission, i.e. the compliance or admin role).
- ``TLP:CLEAR`` and ``TLP:GREEN`` allow sharing beyond the agency, so an export at those levels must be
  redacted: personal data of citizens never leaves at a label that lets it travel on.
- The audit record is written once per tenant the export covers (in that tenant's trail, so each agency
  sees who exported its data), after the file was built and before it is handed out; it carries the
  file's SHA-256, so the file that left can be matched to the record later.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from civicsoc import audit
from civicsoc.errors import InvalidQuery
from civicsoc.event import format_timestamp
from civicsoc.records import utcnow
from civicsoc.store import Scope, Store, TimeRange
from playbooks.loader import PlaybookLibrary
from reports import charts, notifications, pdf, register, statistics, stix
from reports.context import ExportContext, Interval
from reports.facts import IncidentCase, IncidentFacts
from reports.notifications import NotificationDraft, NotificationKind
from reports.redaction import Redactor
from reports.sources import TimeField, incident_case, register_facts, resolve_tenants, tenant_names
from reports.statistics import Statistics
from reports.tlp import Tlp

RegisterFormat = Literal["csv", "xlsx", "json"]
DocumentFormat = Literal["json", "pdf"]
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "pdf": "application/pdf",
    "stix": stix.MEDIA_TYPE,
}


@dataclass(frozen=True)
class ExportFile:
    filename: str
    media_type: str
    content: bytes
    tlp: Tlp
    redacted: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class PeriodRequest:
    """What a period export covers and how it may be shared."""

    period: TimeRange
    tenants: tuple[str, ...] = ()
    """Tenants asked for; empty: every tenant in the caller's scope."""
    time_field: TimeField = "created_at"
    interval: Interval = "week"
    tlp: Tlp = Tlp.amber
    redaction_key: bytes | None = None
    """``None``: unredacted (needs the export permission)."""


def check_sharing(tlp: Tlp, redacted: bool) -> None:
    if tlp.allows_wide_sharing and not redacted:
        raise InvalidQuery(f"tlp: {tlp.label} allows sharing beyond the agency; export it redacted "
                           "(personal data leaves unredacted only at TLP:AMBER, TLP:AMBER+STRICT or TLP:RED)")


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)[:200]


def _audit(store: Store, tenants: Iterable[str], actor: str, action: str, target: str, file: ExportFile,
           details: dict[str, Any]) -> None:
    after = {**details, "format": file.filename.rsplit(".", 1)[-1], "file": file.filename,
             "bytes": len(file.content), "sha256": file.sha256, "tlp": file.tlp.label, "redacted": file.redacted}
    for tenant in sorted(set(tenants)):
        audit.append(store, tenant=tenant, actor=actor, action=action, target=target, after=after)


@dataclass(frozen=True)
class PeriodData:
    context: ExportContext
    facts: list[IncidentFacts]
    frame: Any
    """The register ``pandas.DataFrame``."""
    redactor: Redactor | None


def period_data(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str, request: PeriodRequest,
                now: datetime) -> PeriodData:
    redacted = request.redaction_key is not None
    check_sharing(request.tlp, redacted)
    tenants = resolve_tenants(store, scope, request.tenants)
    facts = register_facts(store, library, scope, tenants, request.period, now, request.time_field)
    redactor = Redactor.for_incidents(request.redaction_key, [f.incident for f in facts]) \
        if request.redaction_key is not None else None
    context = ExportContext(period=request.period, tenants=tenants, tlp=request.tlp, redacted=redacted,
                            generated_at=now, generated_by=redactor.user(actor) if redactor else actor,
                            time_field=request.time_field, interval=request.interval,
                            tenant_names=tenant_names(store, scope, tenants))
    return PeriodData(context, facts, register.register_frame(facts, redactor), redactor)


def _period_details(data: PeriodData, report: str) -> dict[str, Any]:
    context = data.context
    return {"report": report, "from": format_timestamp(context.period.start),
            "to": format_timestamp(context.period.end), "time_field": context.time_field,
            "tenants": list(context.tenants), "incidents": len(data.facts),
            "pseudonyms": len(data.redactor.issued) if data.redactor else 0}


def register_export(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str, request: PeriodRequest,
                    fmt: RegisterFormat, now: datetime | None = None) -> ExportFile:
    """The incident register of a period as CSV, XLSX or JSON."""
    data = period_data(store, library, scope, actor, request, now or utcnow())
    summary = statistics.summary_table(data.frame, data.context.tenants)
    if fmt == "csv":
        content = register.to_csv(data.frame, data.context)
    elif fmt == "xlsx":
        content = register.to_xlsx(data.frame, summary, data.context)
    elif fmt == "json":
        content = register.to_json(data.frame, summary, data.context)
    else:
        raise InvalidQuery(f"format: expected csv, xlsx or json; got {fmt!r}")
    file = ExportFile(data.context.file_name("register", fmt), MEDIA_TYPES[fmt], content, request.tlp,
                      data.context.redacted)
    _audit(store, data.context.tenants, actor, "report.register", "reports/register", file,
           _period_details(data, "register"))
    return file


def statistics_export(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str,
                      request: PeriodRequest, now: datetime | None = None) -> tuple[Statistics, ExportFile]:
    """The period's figures (counts, MTTD/MTTA/MTTR, deadlines) as a model and as a JSON file."""
    data = period_data(store, library, scope, actor, request, now or utcnow())
    stats = statistics.statistics(data.frame, data.context)
    file = ExportFile(data.context.file_name("statistics", "json"), MEDIA_TYPES["json"],
                      stats.model_dump_json(indent=2).encode(), request.tlp, data.context.redacted)
    _audit(store, data.context.tenants, actor, "report.statistics", "reports/statistics", file,
           _period_details(data, "statistics"))
    return stats, file


def pdf_export(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str, request: PeriodRequest,
               now: datetime | None = None) -> ExportFile:
    """The period report: cover, summary figures, charts, incident table, open regulatory deadlines."""
    data = period_data(store, library, scope, actor, request, now or utcnow())
    stats = statistics.statistics(data.frame, data.context)
    content = pdf.period_report(stats, data.frame, statistics.open_deadlines(data.frame), charts.all_charts(stats),
                                data.context)
    file = ExportFile(data.context.file_name("report", "pdf"), MEDIA_TYPES["pdf"], content, request.tlp,
                      data.context.redacted)
    _audit(store, data.context.tenants, actor, "report.pdf", "reports/pdf", file, _period_details(data, "pdf"))
    return file


# one incident -----------------------------------------------------------------------------------------


def _staff(case: IncidentCase) -> list[str]:
    people = [comment.author for comment in case.comments]
    people += [step.by for step in case.facts.steps if step.by]
    return people


def _incident_context(case: IncidentCase, tlp: Tlp, redactor: Redactor | None, actor: str,
                      now: datetime) -> ExportContext:
    incident = case.incident
    return ExportContext(period=TimeRange(incident.first_seen, max(now, incident.first_seen)),
                         tenants=(incident.tenant,), tlp=tlp, redacted=redactor is not None, generated_at=now,
                         generated_by=redactor.user(actor) if redactor else actor,
                         tenant_names={incident.tenant: case.tenant_name})


def _incident_file(incident_id: str, stem: str, suffix: str, media_type: str, content: bytes, tlp: Tlp,
                   redacted: bool) -> ExportFile:
    name = f"civicsoc-{stem}_{incident_id}_{tlp.slug}{'_redacted' if redacted else ''}.{suffix}"
    return ExportFile(safe_filename(name), media_type, content, tlp, redacted)


def _prepare(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str, incident_id: str, tlp: Tlp,
             redaction_key: bytes | None, now: datetime) -> tuple[IncidentCase, Redactor | None, ExportContext]:
    check_sharing(tlp, redaction_key is not None)
    case = incident_case(store, library, scope, incident_id, now)
    redactor = Redactor.for_incidents(redaction_key, [case.incident], staff=_staff(case)) \
        if redaction_key is not None else None
    return case, redactor, _incident_context(case, tlp, redactor, actor, now)


def notification_draft(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str, incident_id: str,
                       kind: NotificationKind, tlp: Tlp = Tlp.amber, redaction_key: bytes | None = None,
                       now: datetime | None = None) -> tuple[NotificationDraft, ExportContext]:
    """The draft alone (no file, no audit record): for showing in the UI before exporting."""
    case, redactor, context = _prepare(store, library, scope, actor, incident_id, tlp, redaction_key,
                                       now or utcnow())
    return notifications.draft_notification(kind, case, context, redactor), context


def notification_export(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str, incident_id: str,
                        kind: NotificationKind, fmt: DocumentFormat, tlp: Tlp = Tlp.amber,
                        redaction_key: bytes | None = None, now: datetime | None = None) -> ExportFile:
    """A NIS2 or GDPR notification draft of an incident, as JSON or PDF."""
    draft, context = notification_draft(store, library, scope, actor, incident_id, kind, tlp, redaction_key, now)
    if fmt == "pdf":
        header, fields = notifications.pdf_rows(draft)
        content = pdf.notification(draft.title, draft.legal_basis, header, fields, draft.missing, draft.warnings,
                                   context)
    elif fmt == "json":
        content = draft.model_dump_json(indent=2).encode()
    else:
        raise InvalidQuery(f"format: expected json or pdf; got {fmt!r}")
    file = _incident_file(draft.incident_id, kind.value, fmt, MEDIA_TYPES[fmt], content, tlp, draft.redacted)
    _audit(store, [draft.tenant], actor, "report.notification", f"incidents/{incident_id}", file,
           {"report": kind.value, "incident_id": incident_id, "missing": draft.missing})
    return file


def stix_export(store: Store, library: PlaybookLibrary | None, scope: Scope, actor: str, incident_id: str,
                tlp: Tlp = Tlp.amber, redaction_key: bytes | None = None, now: datetime | None = None) -> ExportFile:
    """The incident's indicators of compromise as a STIX 2.1 bundle."""
    case, redactor, context = _prepare(store, library, scope, actor, incident_id, tlp, redaction_key,
                                       now or utcnow())
    bundle = stix.incident_bundle(case, context, redactor)
    file = _incident_file(case.incident.id, "stix", "json", MEDIA_TYPES["stix"], stix.bundle_json(bundle), tlp,
                          redactor is not None)
    indicators = sum(1 for obj in bundle.objects if obj.type == "indicator")
    _audit(store, [case.incident.tenant], actor, "report.stix", f"incidents/{incident_id}", file,
           {"report": "stix", "incident_id": incident_id, "indicators": indicators})
    return file
