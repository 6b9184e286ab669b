"""The incident register: one row per incident of a period, as a typed pandas DataFrame, and its CSV, XLSX
and JSON files.

Columns (times in UTC; ``*_h`` are hours):

- ``tenant``, ``incident_id``, ``title``, ``severity`` (ordered category), ``status``, ``assignee``, ``alerts``;
- ``first_event`` (the earliest alert's event), ``detected`` (civicsoc opened the incident), ``acknowledged``,
  ``contained``, ``resolved``, ``significant`` (confirmed significant: the regulatory clocks start);
- ``time_to_detect_h`` (first event → detection), ``time_to_acknowledge_h`` (detection → acknowledged),
  ``time_to_resolve_h`` (detection → resolved): the per-incident values behind MTTD, MTTA and MTTR;
- ``techniques``, ``tactics`` (ATT&CK), ``hosts_affected``, ``users_affected`` and the ``hosts`` and
  ``users`` themselves;
- ``playbooks``, ``playbook_steps``, ``playbook_steps_completed`` (done or skipped with a reason),
  ``playbook_completion`` (0..1, empty without playbooks);
- ``nis2``, ``gdpr`` and, per regulatory report, ``<report>_due``, ``<report>_submitted`` and
  ``<report>_status`` (``met``, ``missed``, ``open``; empty where the report does not apply or its clock has
  not started).

Spreadsheet safety: a text cell starting with ``=``, ``+``, ``-``, ``@`` (a user name from an event log can
be anything) is written so that no spreadsheet runs it as a formula: prefixed with ``'`` in CSV (OWASP's
advice for CSV injection), stored as a string cell in XLSX.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from civicsoc.event import format_timestamp
from civicsoc.records import Severity
from reports.context import ExportContext
from reports.facts import CLOCKS, IncidentFacts
from reports.redaction import Redactor

SEVERITIES = [s.value for s in Severity]
CLOCK_COLUMNS = {clock: clock.value.replace("-", "_").replace("_breach", "") for clock in CLOCKS}
"""``nis2-early-warning`` → ``nis2_early_warning``; ``gdpr-breach-notification`` → ``gdpr_notification``."""
TIME_COLUMNS = ["first_event", "detected", "acknowledged", "contained", "resolved", "significant",
                *[f"{name}_{part}" for name in CLOCK_COLUMNS.values() for part in ("due", "submitted")]]
HOUR_COLUMNS = ["time_to_detect_h", "time_to_acknowledge_h", "time_to_resolve_h"]
LIST_COLUMNS = ["techniques", "tactics", "hosts", "users", "playbooks"]
INT_COLUMNS = ["alerts", "hosts_affected", "users_affected", "playbook_steps", "playbook_steps_completed"]
BOOL_COLUMNS = ["nis2", "gdpr"]
COLUMNS = ["tenant", "incident_id", "title", "severity", "status", "assignee", "alerts",
           "first_event", "detected", "acknowledged", "contained", "resolved", "significant", *HOUR_COLUMNS,
           "techniques", "tactics", "hosts_affected", "users_affected", "hosts", "users",
           "playbooks", "playbook_steps", "playbook_steps_completed", "playbook_completion", *BOOL_COLUMNS,
           *[f"{name}_{part}" for name in CLOCK_COLUMNS.values() for part in ("due", "submitted", "status")]]
LIST_SEPARATOR = "; "
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXCEL_CELL_LIMIT = 32_767


def _hours(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 3600


def _row(facts: IncidentFacts, redactor: Redactor | None) -> dict[str, Any]:
    incident = facts.incident
    hosts, users = list(incident.hosts), list(incident.users)
    title, assignee = incident.title, incident.assignee
    if redactor is not None:
        hosts, users, title = redactor.hosts(hosts), redactor.users(users), redactor.text(title)
        assignee = redactor.user(assignee) if assignee else assignee
    row: dict[str, Any] = {
        "tenant": incident.tenant, "incident_id": incident.id, "title": title,
        "severity": incident.severity.value, "status": incident.status.value, "assignee": assignee,
        "alerts": len(incident.alert_ids),
        "first_event": incident.first_seen, "detected": incident.created_at,
        "acknowledged": incident.acknowledged_at, "contained": incident.contained_at,
        "resolved": incident.resolved_at, "significant": incident.significant_at,
        "time_to_detect_h": _hours(incident.first_seen, incident.created_at),
        "time_to_acknowledge_h": _hours(incident.created_at, incident.acknowledged_at),
        "time_to_resolve_h": _hours(incident.created_at, incident.resolved_at),
        "techniques": list(incident.techniques), "tactics": list(incident.tactics),
        "hosts_affected": len(incident.hosts), "users_affected": len(incident.users),
        "hosts": hosts, "users": users, "playbooks": list(facts.playbooks),
        "playbook_steps": len(facts.steps), "playbook_steps_completed": facts.steps_completed,
        "playbook_completion": facts.steps_completed / len(facts.steps) if facts.steps else None,
        "nis2": incident.nis2, "gdpr": incident.gdpr,
    }
    for clock, name in CLOCK_COLUMNS.items():
        deadline = facts.deadline(clock)
        row[f"{name}_due"] = deadline.due_at if deadline else None
        row[f"{name}_submitted"] = deadline.done_at if deadline else None
        row[f"{name}_status"] = deadline.status.value if deadline else None
    return row


def register_frame(facts: Sequence[IncidentFacts], redactor: Redactor | None = None) -> pd.DataFrame:
    """The register as a typed DataFrame (UTC datetimes, ordered severity, nullable numbers)."""
    frame = pd.DataFrame([_row(item, redactor) for item in facts], columns=COLUMNS)
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    for column in [*HOUR_COLUMNS, "playbook_completion"]:
        frame[column] = frame[column].astype("float64")
    for column in INT_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for column in BOOL_COLUMNS:
        frame[column] = frame[column].astype("bool")
    frame["severity"] = pd.Categorical(frame["severity"], categories=SEVERITIES, ordered=True)
    for column in ["tenant", "incident_id", "title", "status", "assignee",
                   *[f"{name}_status" for name in CLOCK_COLUMNS.values()]]:
        frame[column] = frame[column].astype("string")
    for column in LIST_COLUMNS:
        frame[column] = frame[column].astype("object")
    return frame


# files --------------------------------------------------------------------------------------------


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series.dtype) or pd.api.types.is_object_dtype(series.dtype)


def _defuse(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists joined with ``; ``, categories as text: the shape of a CSV or a spreadsheet."""
    flat = frame.copy()
    for column in LIST_COLUMNS:
        flat[column] = flat[column].map(lambda values: LIST_SEPARATOR.join(values))
    flat["severity"] = flat["severity"].astype("string")
    return flat


def to_csv(frame: pd.DataFrame, context: ExportContext) -> bytes:
    """UTF-8 CSV with a header row; the first column, ``tlp``, stamps every row with the TLP label."""
    flat = _flat(frame)
    for column in flat.columns:
        if column not in TIME_COLUMNS and _is_text(flat[column]):
            flat[column] = flat[column].map(_defuse)
    flat.insert(0, "tlp", context.tlp.label)
    return flat.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ").encode("utf-8")


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return format_timestamp(value.to_pydatetime())
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-able dicts: ISO 8601 times, ``None`` for empty cells, lists as lists."""
    records = []
    for row in frame.astype("object").to_dict(orient="records"):
        records.append({key: _jsonable(value) if not isinstance(value, list) else value for key, value in row.items()})
    return records


def to_json(frame: pd.DataFrame, summary: pd.DataFrame, context: ExportContext) -> bytes:
    document = {"report": "incident-register", **context.as_dict(), "summary": frame_records(summary),
                "incidents": frame_records(frame)}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def sheet_names(tenants: Sequence[str], reserved: Sequence[str]) -> dict[str, str]:
    """Excel sheet names: at most 31 characters and unique without regard to case."""
    taken = {name.lower() for name in reserved}
    names = {}
    for tenant in tenants:
        name, counter = tenant[:31], 2
        while name.lower() in taken:
            suffix = f"~{counter}"
            name, counter = tenant[:31 - len(suffix)] + suffix, counter + 1
        taken.add(name.lower())
        names[tenant] = name
    return names


def _excel_frame(frame: pd.DataFrame) -> pd.DataFrame:
    flat = _flat(frame)
    for column in TIME_COLUMNS:
        if column in flat:
            flat[column] = flat[column].dt.tz_convert("UTC").dt.tz_localize(None)
    for column in flat.columns:
        if _is_text(flat[column]):
            flat[column] = flat[column].map(lambda v: v[:EXCEL_CELL_LIMIT] if isinstance(v, str) else v)
    return flat


def _style_sheet(sheet: Worksheet, frame: pd.DataFrame, context: ExportContext, *, freeze: str) -> None:
    header_fill = PatternFill("solid", fgColor="1F2937")
    for cell in sheet[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = header_fill
        cell.alignment = Alignment(vertical="top", wrap_text=True)
    for index, column in enumerate(frame.columns, start=1):
        fmt = None
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            width = 20  # pandas gives datetime cells a date-time number format itself
        elif column == "playbook_completion":
            fmt, width = "0%", 12
        elif column.endswith("_h") and pd.api.types.is_float_dtype(frame[column]):
            fmt, width = "0.00", 14
        else:
            longest = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200).tolist()])
            width = min(max(longest + 2, 8), 60)
        sheet.column_dimensions[get_column_letter(index)].width = width
        if fmt:
            for (cell,) in sheet.iter_rows(min_row=2, max_row=len(frame) + 1, min_col=index, max_col=index):
                cell.number_format = fmt
        elif _is_text(frame[column]):
            # openpyxl stores a string starting with "=" as a formula: make those cells text, never executed
            looks_like_formula = frame[column].map(lambda v: isinstance(v, str) and v.startswith("=")).to_numpy()
            for offset in looks_like_formula.nonzero()[0]:
                sheet.cell(row=int(offset) + 2, column=index).data_type = "s"
    sheet.freeze_panes = freeze
    if sheet.max_row > 1:
        sheet.auto_filter.ref = sheet.dimensions
    sheet.oddHeader.center.text = context.tlp.label
    sheet.oddHeader.center.color = "{:02X}{:02X}{:02X}".format(*context.tlp.rgb)
    sheet.oddFooter.left.text = context.privacy
    sheet.oddFooter.right.text = "Page &P of &N"
    sheet.sheet_properties.tabColor = "{:02X}{:02X}{:02X}".format(*context.tlp.rgb)


def to_xlsx(frame: pd.DataFrame, summary: pd.DataFrame, context: ExportContext) -> bytes:
    """A workbook: ``Summary`` (one row per tenant and one for all), one sheet per tenant with its incidents
    (header row frozen, id columns frozen, filters on), and ``About`` (period, TLP, definitions). Times are
    Excel dates in UTC; every sheet's printed header carries the TLP label."""
    buffer = io.BytesIO()
    names = sheet_names(context.tenants, ["Summary", "About"])
    excel = _excel_frame(frame)
    about = pd.DataFrame([
        ("report", "civicsoc incident register"), ("tlp", context.tlp.label), ("privacy", context.privacy),
        ("period", context.period_text), ("period by", context.time_field), ("tenants", context.tenants_text),
        ("generated at", format_timestamp(context.generated_at)), ("generated by", context.generated_by),
        ("times", "UTC"), ("MTTD", "mean of first event -> detection, hours"),
        ("MTTA", "mean of detection -> acknowledged, hours"), ("MTTR", "mean of detection -> resolved, hours"),
    ], columns=["item", "value"])
    parts = {tenant: excel[excel["tenant"] == tenant].reset_index(drop=True) for tenant in context.tenants}
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        summary.to_excel(writer, sheet_name="Summary", index=False)
        for tenant, part in parts.items():
            part.to_excel(writer, sheet_name=names[tenant], index=False)
        about.to_excel(writer, sheet_name="About", index=False)
        book = writer.book
        _style_sheet(book["Summary"], summary, context, freeze="B2")
        for tenant, part in parts.items():
            _style_sheet(book[names[tenant]], part, context, freeze="C2")
        _style_sheet(book["About"], about, context, freeze="A2")
        book.properties.title = "civicsoc incident register"
        book.properties.subject = context.period_text
        book.properties.keywords = context.tlp.label
        book.properties.description = context.stamp
        book.properties.creator = "civicsoc"
    return buffer.getvalue()
