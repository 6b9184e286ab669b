"""``civicsoc report …``: the compliance exports from the server's shell (the same files as
``/api/v1/reports``, audited with the actor ``cli``).

Whoever can run this owns the store, so the commands see every tenant (``--tenant`` narrows) and may
export unredacted; ``--redact`` pseudonymizes personal data with the key from ``CIVICSOC_REDACTION_KEY`` or
``<data dir>/redaction.key``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from civicsoc.errors import CivicsocError

report_app = typer.Typer(help="Compliance exports: incident register, statistics, PDF report, NIS2/GDPR "
                              "notification drafts, STIX bundles.", no_args_is_help=True)

OPERATOR = "cli"
DEFAULT_SPAN = timedelta(days=30)


class RegisterFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    json = "json"


class StatisticsFormat(StrEnum):
    table = "table"
    json = "json"


class DocumentFormat(StrEnum):
    json = "json"
    pdf = "pdf"


class TimeField(StrEnum):
    created_at = "created_at"
    first_seen = "first_seen"


class Interval(StrEnum):
    week = "week"
    month = "month"


class Kind(StrEnum):
    nis2_early_warning = "nis2-early-warning"
    nis2_notification = "nis2-notification"
    nis2_final_report = "nis2-final-report"
    gdpr_art33 = "gdpr-art33"


FromOption = Annotated[str | None, typer.Option("--from", help="Start: ISO 8601 date or time (UTC if no zone); "
                                                               "default 30 days before --to")]
ToOption = Annotated[str | None, typer.Option("--to", help="End, exclusive (ISO 8601; default now)")]
TenantOption = Annotated[list[str] | None, typer.Option("--tenant", help="Only these tenants (repeatable)")]
RedactOption = Annotated[bool, typer.Option("--redact", help="Pseudonymize user/host names, e-mail and internal "
                                                             "IP addresses (keyed hash) for sharing")]
TlpOption = Annotated[str, typer.Option("--tlp", help="TLP 2.0 label: clear, green, amber, amber+strict, red")]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="File to write ('-': standard output; "
                                                                          "default: the export's own name here)")]
TimeFieldOption = Annotated[TimeField, typer.Option("--time-field", help="Incidents by detection (created_at) or "
                                                                         "first event (first_seen)")]


def parse_moment(text: str | None, name: str) -> datetime | None:
    """``2026-11-01`` or ``2026-11-01T08:00+01:00`` → an aware UTC time (a time without zone is UTC)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CivicsocError(f"{name} {text!r}: expected an ISO 8601 date or time such as 2026-11-01 or "
                            "2026-11-01T08:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _period(start: str | None, end: str | None) -> Any:
    from civicsoc.store import TimeRange

    until = parse_moment(end, "--to") or datetime.now(UTC)
    since = parse_moment(start, "--from") or until - DEFAULT_SPAN
    if until < since:
        raise CivicsocError(f"--to {until.isoformat()}: the end of the period is before its start {since.isoformat()}")
    return TimeRange(since, until)


def _settings() -> Any:
    from civicsoc.cli import settings

    return settings()


def _key(redact: bool) -> bytes | None:
    from reports.redaction import load_key

    return load_key(_settings().data_dir) if redact else None


def _store() -> Any:
    from civicsoc.store import open_store

    return open_store(_settings())


def _library() -> Any:
    from playbooks.loader import load_playbooks

    return load_playbooks()


def _tlp(text: str) -> Any:
    from reports.tlp import Tlp

    return Tlp.parse(text)


def _write(file: Any, output: Path | None) -> None:
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(file.content)
        sys.stdout.buffer.flush()
    else:
        path = output or Path(file.filename)
        path.write_bytes(file.content)
        typer.echo(str(path))
    typer.echo(f"{file.filename}: {len(file.content):,} bytes, {file.tlp.label}"
               + (", personal data pseudonymized" if file.redacted else ", contains personal data")
               + f", sha256 {file.sha256[:16]}… (audited)", err=True)


def _request(start: str | None, end: str | None, tenant: list[str] | None, time_field: TimeField,
             interval: Interval, redact: bool, tlp: str) -> Any:
    from reports.service import PeriodRequest

    return PeriodRequest(period=_period(start, end), tenants=tuple(dict.fromkeys(tenant or ())),
                         time_field=time_field.value, interval=interval.value,  # type: ignore[arg-type]
                         tlp=_tlp(tlp), redaction_key=_key(redact))


@report_app.command("register")
def register(
    start: FromOption = None, end: ToOption = None, tenant: TenantOption = None,
    fmt: Annotated[RegisterFormat, typer.Option("--format", help="csv, xlsx or json")] = RegisterFormat.csv,
    time_field: TimeFieldOption = TimeField.created_at, redact: RedactOption = False, tlp: TlpOption = "amber",
    output: OutputOption = None,
) -> None:
    """The incident register of a period (one row per incident; XLSX: a summary sheet and one per tenant)."""
    from civicsoc.store import Scope
    from reports import service

    request = _request(start, end, tenant, time_field, Interval.week, redact, tlp)
    with _store() as store:
        file = service.register_export(store, _library(), Scope.all(), OPERATOR, request, fmt.value)  # type: ignore[arg-type]
    _write(file, output)


@report_app.command("statistics")
def statistics(
    start: FromOption = None, end: ToOption = None, tenant: TenantOption = None,
    interval: Annotated[Interval, typer.Option("--interval", help="Counts per week or month")] = Interval.week,
    fmt: Annotated[StatisticsFormat, typer.Option("--format", help="table (for reading) or json")]
    = StatisticsFormat.table,
    time_field: TimeFieldOption = TimeField.created_at, tlp: TlpOption = "amber",
    charts: Annotated[Path | None, typer.Option("--charts", help="Also write the charts as PNG files into "
                                                                 "this folder")] = None,
    output: OutputOption = None,
) -> None:
    """Counts by severity, status and tactic, MTTD/MTTA/MTTR and regulatory deadlines of a period."""
    from civicsoc.store import Scope
    from reports import service

    request = _request(start, end, tenant, time_field, interval, False, tlp)
    with _store() as store:
        stats, file = service.statistics_export(store, _library(), Scope.all(), OPERATOR, request)
    if charts is not None:
        from reports.charts import all_charts

        charts.mkdir(parents=True, exist_ok=True)
        for name, png in all_charts(stats).items():
            (charts / f"{name}.png").write_bytes(png)
        typer.echo(f"charts written to {charts}", err=True)
    if fmt == StatisticsFormat.json or output is not None:
        _write(file, output or Path("-"))
        return
    _print_statistics(stats)


def _print_statistics(stats: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from reports.statistics import format_hours

    console = Console(soft_wrap=True)
    console.print(f"{stats.info.tlp}  {stats.incidents} incidents, {stats.info.period_from:%Y-%m-%d %H:%M} to "
                  f"{stats.info.period_to:%Y-%m-%d %H:%M} UTC, tenants {', '.join(stats.info.tenants) or '-'}",
                  highlight=False)
    for title, counts in (("severity", stats.by_severity), ("status", stats.by_status), ("tactic", stats.by_tactic),
                          ("tenant", stats.by_tenant)):
        table = Table(title, "incidents", title=f"by {title}", title_justify="left")
        for key, value in counts.items():
            table.add_row(key, str(value))
        console.print(table)
    times = Table("measure", "definition", "mean", "median", "incidents", title="response times",
                  title_justify="left")
    for result in stats.response_times:
        times.add_row(result.measure, result.definition, format_hours(result.mean_hours),
                      format_hours(result.median_hours), str(result.incidents))
    console.print(times)
    deadlines = Table("report", "regulation", "met", "missed", "open", title="regulatory deadlines",
                      title_justify="left")
    for tally in stats.deadlines:
        deadlines.add_row(tally.name, tally.regulation, str(tally.met), str(tally.missed), str(tally.open))
    console.print(deadlines)


@report_app.command("pdf")
def pdf(
    start: FromOption = None, end: ToOption = None, tenant: TenantOption = None,
    interval: Annotated[Interval, typer.Option("--interval", help="Chart buckets")] = Interval.week,
    time_field: TimeFieldOption = TimeField.created_at, redact: RedactOption = False, tlp: TlpOption = "amber",
    output: OutputOption = None,
) -> None:
    """The period report as PDF: cover, summary figures, charts, incidents, open regulatory deadlines."""
    from civicsoc.store import Scope
    from reports import service

    request = _request(start, end, tenant, time_field, interval, redact, tlp)
    with _store() as store:
        file = service.pdf_export(store, _library(), Scope.all(), OPERATOR, request)
    _write(file, output)


@report_app.command("notification")
def notification(
    incident_id: Annotated[str, typer.Argument(help="The incident id")],
    kind: Annotated[Kind, typer.Argument(help="nis2-early-warning, nis2-notification, nis2-final-report or "
                                              "gdpr-art33")],
    fmt: Annotated[DocumentFormat, typer.Option("--format", help="json or pdf")] = DocumentFormat.json,
    redact: RedactOption = False, tlp: TlpOption = "amber", output: OutputOption = None,
) -> None:
    """A notification draft pre-filled from the incident; its `missing` list says what to add (as
    `field: value` lines in an incident comment) before sending."""
    from civicsoc.store import Scope
    from reports import service
    from reports.notifications import NotificationKind

    with _store() as store:
        file = service.notification_export(store, _library(), Scope.all(), OPERATOR, incident_id,
                                           NotificationKind(kind.value), fmt.value,  # type: ignore[arg-type]
                                           _tlp(tlp), _key(redact))
    _write(file, output)


@report_app.command("stix")
def stix(
    incident_id: Annotated[str, typer.Argument(help="The incident id")],
    redact: RedactOption = False, tlp: TlpOption = "amber", output: OutputOption = None,
) -> None:
    """The incident's indicators of compromise as a STIX 2.1 bundle for the national CSIRT."""
    from civicsoc.store import Scope
    from reports import service

    with _store() as store:
        file = service.stix_export(store, _library(), Scope.all(), OPERATOR, incident_id, _tlp(tlp), _key(redact))
    _write(file, output)
