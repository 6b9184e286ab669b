"""Figures of a period, computed from the register DataFrame. Pure (pandas only).

Definitions (the ones the PDF and the ``About`` sheet state):

- **MTTD**, mean time to detect: first event of the incident (``first_seen``, the earliest alert's event) →
  detection (``created_at``, when civicsoc opened the incident). Replayed old logs make it large: it measures
  the log's age at ingest as much as detection.
- **MTTA**, mean time to acknowledge: detection → ``acknowledged_at``.
- **MTTR**, mean time to resolve: detection → ``resolved_at``.

Each is the mean (and median) over the incidents that have both times; incidents marked ``duplicate`` are
left out (their alerts were merged into another incident, which is counted), so are not-yet-acknowledged or
unresolved ones for MTTA/MTTR (the count of incidents behind each figure is part of the result).

Counts over time put an incident in the week (Monday to Sunday, UTC, labelled by its Monday) or month of
the time that placed it in the period (detection by default). An incident with several ATT&CK tactics counts
once for each. Regulatory deadlines are tallied by status (``met``, ``missed``, ``open``) as of the export.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from pydantic import BaseModel

from civicsoc.records import IncidentStatus
from civicsoc.triage import CLOSED
from playbooks.clocks import REGULATIONS, DeadlineStatus
from reports.context import ExportContext, ExportInfo, Interval
from reports.register import CLOCK_COLUMNS, SEVERITIES

MEASURES = (
    ("MTTD", "time_to_detect_h", "first event -> detection"),
    ("MTTA", "time_to_acknowledge_h", "detection -> acknowledged"),
    ("MTTR", "time_to_resolve_h", "detection -> resolved"),
)
STATUSES = [s.value for s in IncidentStatus]
CLOSED_STATUSES = frozenset(s.value for s in CLOSED)
DEADLINE_STATES = [s.value for s in DeadlineStatus]


class ResponseTime(BaseModel):
    measure: str
    definition: str
    incidents: int
    """How many incidents the figure is computed over."""
    mean_hours: float | None
    median_hours: float | None


class PeriodCounts(BaseModel):
    period: str
    """The week's Monday (``2026-11-23``) or the month (``2026-11``)."""
    counts: dict[str, int]
    total: int


class DeadlineTally(BaseModel):
    report: str
    name: str
    regulation: str
    met: int
    missed: int
    open: int


class Statistics(BaseModel):
    info: ExportInfo
    interval: Interval
    incidents: int
    by_tenant: dict[str, int]
    by_severity: dict[str, int]
    by_status: dict[str, int]
    by_tactic: dict[str, int]
    over_time: dict[str, list[PeriodCounts]]
    """``severity``, ``status`` and ``tactic`` counts per week or month."""
    response_times: list[ResponseTime]
    deadlines: list[DeadlineTally]

    def response_time(self, measure: str) -> ResponseTime:
        return next(r for r in self.response_times if r.measure == measure)

    @property
    def deadline_totals(self) -> dict[str, int]:
        return {state: sum(getattr(tally, state) for tally in self.deadlines) for state in DEADLINE_STATES}


def _counted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] != IncidentStatus.duplicate.value]


def response_times(frame: pd.DataFrame) -> list[ResponseTime]:
    counted = _counted(frame)
    results = []
    for measure, column, definition in MEASURES:
        values = counted[column].dropna()
        results.append(ResponseTime(measure=measure, definition=definition, incidents=int(values.size),
                                    mean_hours=float(values.mean()) if values.size else None,
                                    median_hours=float(values.median()) if values.size else None))
    return results


def _ordered_counts(values: pd.Series, order: Sequence[str] | None = None) -> dict[str, int]:
    counts = values.value_counts()
    if order is not None:
        return {key: int(counts.get(key, 0)) for key in order}
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return {str(key): int(count) for key, count in ranked}


def _tactics(frame: pd.DataFrame) -> pd.DataFrame:
    exploded = frame[["tactics", "_bucket"]].explode("tactics") if "_bucket" in frame else \
        frame[["tactics"]].explode("tactics")
    return exploded.dropna(subset=["tactics"])


def counts(frame: pd.DataFrame, by: str) -> dict[str, int]:
    """Incidents per severity (every level, most severe first), status (workflow order) or tactic (most
    frequent first)."""
    if by == "severity":
        return _ordered_counts(frame["severity"].astype("string"), list(reversed(SEVERITIES)))
    if by == "status":
        return _ordered_counts(frame["status"], STATUSES)
    if by == "tactic":
        return _ordered_counts(_tactics(frame)["tactics"])
    if by == "tenant":
        return _ordered_counts(frame["tenant"])
    raise ValueError(f"counts by {by!r}: expected severity, status, tactic or tenant")


def bucket_labels(times: pd.Series, interval: Interval) -> pd.Series:
    """Week (labelled by its Monday) or month of each UTC time."""
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None)
    if interval == "week":
        return naive.dt.to_period("W-SUN").dt.start_time.dt.strftime("%Y-%m-%d")
    return naive.dt.to_period("M").astype("string")


def _all_buckets(labels: pd.Series, interval: Interval) -> list[str]:
    """Every week or month from the first to the last with incidents: quiet weeks show as zero."""
    if labels.empty:
        return []
    if interval == "week":
        days = pd.date_range(labels.min(), labels.max(), freq="7D")
        return [f"{day:%Y-%m-%d}" for day in days]
    months = pd.period_range(labels.min(), labels.max(), freq="M")
    return [str(month) for month in months]


def counts_over_time(frame: pd.DataFrame, by: str, interval: Interval, time_column: str = "detected",
                     ) -> list[PeriodCounts]:
    """Counts per week or month; ``total`` is the number of incidents (for tactics, less than the sum of the
    counts when incidents have several tactics)."""
    data = frame.assign(_bucket=bucket_labels(frame[time_column], interval))
    totals = data["_bucket"].value_counts()
    if by == "tactic":
        keyed = _tactics(data).rename(columns={"tactics": "_key"})
        order = list(counts(frame, "tactic"))
    else:
        keyed = data.assign(_key=data[by].astype("string"))
        order = list(reversed(SEVERITIES)) if by == "severity" else STATUSES
    table = pd.crosstab(keyed["_bucket"], keyed["_key"]) if not keyed.empty else pd.DataFrame()
    result = []
    for label in _all_buckets(data["_bucket"], interval):
        row = table.loc[label] if label in table.index else pd.Series(dtype="int64")
        result.append(PeriodCounts(period=label, counts={key: int(row.get(key, 0)) for key in order},
                                   total=int(totals.get(label, 0))))
    return result


def deadline_tallies(frame: pd.DataFrame) -> list[DeadlineTally]:
    tallies = []
    for clock, name in CLOCK_COLUMNS.items():
        states = frame[f"{name}_status"].dropna().value_counts()
        title, regulation = REGULATIONS[clock]
        tallies.append(DeadlineTally(report=clock.value, name=title, regulation=regulation,
                                     **{state: int(states.get(state, 0)) for state in DEADLINE_STATES}))
    return tallies


def _summary_row(label: str, frame: pd.DataFrame) -> dict[str, object]:
    times = {r.measure: r.mean_hours for r in response_times(frame)}
    severities = counts(frame, "severity")
    tallies = deadline_tallies(frame)
    return {
        "tenant": label, "incidents": len(frame),
        "open": int((~frame["status"].isin(list(CLOSED_STATUSES))).sum()),
        "resolved": int((frame["status"] == IncidentStatus.resolved.value).sum()),
        "false_positive": int((frame["status"] == IncidentStatus.false_positive.value).sum()),
        **severities,
        "mttd_h": times["MTTD"], "mtta_h": times["MTTA"], "mttr_h": times["MTTR"],
        **{f"deadlines_{state}": sum(getattr(t, state) for t in tallies) for state in DEADLINE_STATES},
    }


def summary_table(frame: pd.DataFrame, tenants: Sequence[str]) -> pd.DataFrame:
    """One row per tenant and a last row ``all``: counts, response times (hours), deadlines."""
    rows = [_summary_row(tenant, frame[frame["tenant"] == tenant]) for tenant in tenants]
    rows.append(_summary_row("all", frame))
    table = pd.DataFrame(rows)
    for column in ("mttd_h", "mtta_h", "mttr_h"):
        table[column] = table[column].astype("float64")
    return table


def statistics(frame: pd.DataFrame, context: ExportContext) -> Statistics:
    time_column = "detected" if context.time_field == "created_at" else "first_event"
    return Statistics(
        info=context.info(), interval=context.interval, incidents=len(frame),
        by_tenant={tenant: int((frame["tenant"] == tenant).sum()) for tenant in context.tenants},
        by_severity=counts(frame, "severity"), by_status=counts(frame, "status"), by_tactic=counts(frame, "tactic"),
        over_time={by: counts_over_time(frame, by, context.interval, time_column)
                   for by in ("severity", "status", "tactic")},
        response_times=response_times(frame), deadlines=deadline_tallies(frame))


def format_hours(hours: float | None, *, short: bool = False) -> str:
    """``2.50 h``; long spans also in days (``26,304.0 h (1,096.0 d)``); empty for no value. ``short`` for
    table cells: ``2.5 h``, ``1096 d``."""
    if hours is None or hours != hours:
        return "" if short else "-"
    if short:
        return f"{hours:.1f} h" if abs(hours) < 1000 else f"{hours / 24:.0f} d"
    if abs(hours) < 100:
        return f"{hours:.2f} h"
    return f"{hours:,.1f} h ({hours / 24:,.1f} d)"


def open_deadlines(frame: pd.DataFrame) -> pd.DataFrame:
    """Regulatory reports not yet submitted (still open, or late and still not sent), earliest due first."""
    rows = []
    for clock, name in CLOCK_COLUMNS.items():
        title, regulation = REGULATIONS[clock]
        pending = frame[frame[f"{name}_status"].notna() & frame[f"{name}_submitted"].isna()]
        for row in pending.itertuples(index=False):
            rows.append({"incident_id": row.incident_id, "tenant": row.tenant, "report": title,
                         "regulation": regulation, "due": getattr(row, f"{name}_due"),
                         "status": getattr(row, f"{name}_status")})
    table = pd.DataFrame(rows, columns=["incident_id", "tenant", "report", "regulation", "due", "status"])
    return table.sort_values(["due", "incident_id"], kind="stable").reset_index(drop=True)
