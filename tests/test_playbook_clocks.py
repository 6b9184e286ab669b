"""Regulatory and step deadlines. Every expected time below was worked out by hand (noted where not obvious):
EU summer time starts 2026-03-29 01:00 UTC and 2027-03-28 01:00 UTC, and ends 2026-10-25 01:00 UTC;
Brussels is UTC+1 in winter and UTC+2 in summer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from civicsoc.records import Incident, PlaybookRun, Severity
from playbooks.clocks import (
    DeadlineStatus,
    RegulatoryFlags,
    add_months,
    deadline_status,
    regulatory_deadlines,
    step_deadlines,
    submissions_from_runs,
)
from playbooks.loader import load_playbooks
from playbooks.model import Clock, parse_duration

BRUSSELS = ZoneInfo("Europe/Brussels")
BOTH = RegulatoryFlags(nis2=True, gdpr=True)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def incident(significant_at: datetime | None, created_at: datetime | None = None) -> Incident:
    created = created_at or (significant_at or utc("2026-01-01T00:00:00+00:00")) - timedelta(hours=1)
    return Incident(id="inc-1", tenant="town-a", title="t", severity=Severity.high, first_seen=created,
                    last_seen=created, created_at=created, significant_at=significant_at)


def due_times(deadlines) -> dict[str, datetime]:
    return {deadline.key: deadline.due_at for deadline in deadlines}


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)), ("24h", timedelta(hours=24)), ("3d", timedelta(days=3)),
    ("1w", timedelta(days=7)), ("PT4H", timedelta(hours=4)), ("P1DT12H", timedelta(hours=36)),
    ("PT90M", timedelta(minutes=90)), ("P2W", timedelta(days=14)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P1M", "P1Y", "1 day", "24", "PT", "P", "0h", "24H", "P1DT"])
def test_durations_without_a_fixed_length_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_clocks_across_the_spring_dst_change() -> None:
    confirmed = datetime(2026, 3, 28, 23, 30, tzinfo=BRUSSELS)  # Saturday 23:30 CET = 22:30 UTC
    deadlines = regulatory_deadlines(incident(confirmed), BOTH, now=utc("2026-03-29T00:00:00+00:00"))
    assert due_times(deadlines) == {
        "nis2-early-warning": utc("2026-03-29T22:30:00+00:00"),
        "nis2-incident-notification": utc("2026-03-31T22:30:00+00:00"),
        "gdpr-breach-notification": utc("2026-03-31T22:30:00+00:00"),
        # provisional: one month after the notification deadline; 31 March → 30 April
        "nis2-final-report": utc("2026-04-30T22:30:00+00:00"),
    }
    assert all(d.due_at.tzinfo is UTC for d in deadlines)
    local = {d.key: d.local(BRUSSELS).isoformat() for d in deadlines}
    assert local == {
        "nis2-early-warning": "2026-03-30T00:30:00+02:00",  # 24 real hours, 25 on the wall clock
        "nis2-incident-notification": "2026-04-01T00:30:00+02:00",
        "gdpr-breach-notification": "2026-04-01T00:30:00+02:00",
        "nis2-final-report": "2026-05-01T00:30:00+02:00",
    }
    assert [d.key for d in deadlines] == ["nis2-early-warning", "gdpr-breach-notification",
                                          "nis2-incident-notification", "nis2-final-report"]
    assert {d.status for d in deadlines} == {DeadlineStatus.open}


def test_clocks_across_the_autumn_dst_change() -> None:
    confirmed = datetime(2026, 10, 24, 23, 30, tzinfo=BRUSSELS)  # Saturday 23:30 CEST = 21:30 UTC
    deadlines = regulatory_deadlines(incident(confirmed), BOTH, now=utc("2026-10-25T00:00:00+00:00"))
    assert due_times(deadlines) == {
        "nis2-early-warning": utc("2026-10-25T21:30:00+00:00"),
        "nis2-incident-notification": utc("2026-10-27T21:30:00+00:00"),
        "gdpr-breach-notification": utc("2026-10-27T21:30:00+00:00"),
        "nis2-final-report": utc("2026-11-27T21:30:00+00:00"),
    }
    local = {d.key: d.local(BRUSSELS).isoformat() for d in deadlines}
    assert local["nis2-early-warning"] == "2026-10-25T22:30:00+01:00"  # 24 real hours, 23 on the wall clock
    assert local["nis2-incident-notification"] == "2026-10-27T22:30:00+01:00"
    assert local["nis2-final-report"] == "2026-11-27T22:30:00+01:00"


def test_the_calendar_zone_gives_the_same_final_report_across_dst() -> None:
    for confirmed in (datetime(2026, 3, 28, 23, 30, tzinfo=BRUSSELS), datetime(2026, 10, 24, 23, 30, tzinfo=BRUSSELS)):
        flags = RegulatoryFlags(nis2=True, calendar=BRUSSELS)
        in_brussels = due_times(regulatory_deadlines(incident(confirmed), flags, now=confirmed))
        in_utc = due_times(regulatory_deadlines(incident(confirmed), RegulatoryFlags(nis2=True), now=confirmed))
        assert in_brussels == in_utc


@pytest.mark.parametrize(("submitted", "final"), [
    ("2026-01-31T10:00:00+00:00", "2026-02-28T10:00:00+00:00"),  # no 31 February: the month's last day
    ("2028-01-31T10:00:00+00:00", "2028-02-29T10:00:00+00:00"),  # leap year
    ("2026-03-31T10:00:00+00:00", "2026-04-30T10:00:00+00:00"),
    ("2026-12-15T08:00:00+00:00", "2027-01-15T08:00:00+00:00"),  # across the year end
    ("2026-02-28T10:00:00+00:00", "2026-03-28T10:00:00+00:00"),  # same date, not "end of month"
])
def test_final_report_is_one_calendar_month_after_the_notification(submitted: str, final: str) -> None:
    confirmed = utc(submitted) - timedelta(hours=30)
    flags = RegulatoryFlags(nis2=True, submitted={Clock.nis2_incident_notification: utc(submitted)})
    deadlines = {d.key: d for d in regulatory_deadlines(incident(confirmed), flags, now=utc(submitted))}
    report = deadlines["nis2-final-report"]
    assert report.due_at == utc(final)
    assert report.regulation == "NIS2 Art. 23(4)(d)"
    assert "submitted at" in report.basis and "provisional" not in report.basis
    assert deadlines["nis2-incident-notification"].status == DeadlineStatus.met


def test_month_counted_on_the_authoritys_calendar() -> None:
    # 2026-01-30T23:30Z is 31 January 00:30 in Brussels: on the UTC calendar 30 January → 28 February 23:30 UTC;
    # on Brussels' calendar 31 January → 28 February 00:30 CET = 27 February 23:30 UTC.
    submitted = utc("2026-01-30T23:30:00+00:00")
    assert add_months(submitted, 1) == utc("2026-02-28T23:30:00+00:00")
    assert add_months(submitted, 1, BRUSSELS) == utc("2026-02-27T23:30:00+00:00")


def test_a_wall_time_that_occurs_twice_resolves_to_the_earlier_instant() -> None:
    # 25 Sept 02:30 CEST → 25 Oct 02:30, which happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET)
    assert add_months(utc("2026-09-25T00:30:00+00:00"), 1, BRUSSELS) == utc("2026-10-25T00:30:00+00:00")


def test_a_wall_time_that_does_not_exist_resolves_to_the_earlier_instant() -> None:
    # 28 Feb 2027 02:30 CET → 28 Mar 2027 02:30, inside the skipped hour; read as CEST it is 00:30 UTC, as CET 01:30
    assert add_months(utc("2027-02-28T01:30:00+00:00"), 1, BRUSSELS) == utc("2027-03-28T00:30:00+00:00")


def test_status_is_met_missed_or_open() -> None:
    due = utc("2026-03-29T22:30:00+00:00")
    assert deadline_status(due, due, now=due + timedelta(days=9)) == DeadlineStatus.met
    assert deadline_status(due, due + timedelta(minutes=1), now=due) == DeadlineStatus.missed
    assert deadline_status(due, None, now=due) == DeadlineStatus.open
    assert deadline_status(due, None, now=due + timedelta(seconds=1)) == DeadlineStatus.missed


def test_a_late_early_warning_is_missed_and_an_overdue_notification_too() -> None:
    confirmed = utc("2026-05-04T08:00:00+00:00")
    flags = RegulatoryFlags(nis2=True, submitted={Clock.nis2_early_warning: utc("2026-05-05T09:00:00+00:00")})
    deadlines = {d.key: d for d in regulatory_deadlines(incident(confirmed), flags,
                                                         now=utc("2026-05-07T08:00:01+00:00"))}
    assert deadlines["nis2-early-warning"].status == DeadlineStatus.missed  # an hour late
    assert deadlines["nis2-early-warning"].done_at == utc("2026-05-05T09:00:00+00:00")
    assert deadlines["nis2-incident-notification"].status == DeadlineStatus.missed  # 72 h passed a second ago
    assert deadlines["nis2-final-report"].status == DeadlineStatus.open
    assert "provisional" in deadlines["nis2-final-report"].basis


def test_no_clock_runs_before_the_incident_is_significant_or_when_no_regulation_applies() -> None:
    now = utc("2026-05-04T08:00:00+00:00")
    assert regulatory_deadlines(incident(None), BOTH, now) == []
    assert regulatory_deadlines(incident(now), RegulatoryFlags(), now) == []
    gdpr_only = regulatory_deadlines(incident(now), RegulatoryFlags(gdpr=True), now)
    assert [(d.key, d.regulation) for d in gdpr_only] == [("gdpr-breach-notification", "GDPR Art. 33(1)")]


def test_gdpr_awareness_can_differ_from_significance() -> None:
    aware = utc("2026-04-02T08:00:00+00:00")
    flags = RegulatoryFlags(gdpr=True, gdpr_aware_at=aware)
    [deadline] = regulatory_deadlines(incident(None), flags, now=aware)
    assert deadline.due_at == utc("2026-04-05T08:00:00+00:00")
    assert "personal data breach became known" in deadline.basis


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        regulatory_deadlines(incident(utc("2026-04-02T08:00:00+00:00")), BOTH, now=datetime(2026, 4, 2))
    with pytest.raises(ValueError, match="no time zone"):
        add_months(datetime(2026, 1, 31), 1)


def test_step_deadlines_of_the_ransomware_playbook() -> None:
    playbook = load_playbooks().get("ransomware")
    detected, confirmed = utc("2026-03-28T21:00:00+00:00"), utc("2026-03-28T22:30:00+00:00")
    made = incident(confirmed, created_at=detected)
    now = utc("2026-03-28T22:45:00+00:00")
    run = PlaybookRun(id="inc-1.ransomware", tenant="town-a", incident_id="inc-1", playbook_id="ransomware",
                      playbook_version=playbook.version, attached_by="civicsoc", steps={
                          "confirm-and-scope": {"status": "done", "note": "", "by": "ana",
                                                "at": "2026-03-28T21:20:00.000000Z"},
                          "isolate-hosts": {"status": "skipped", "note": "done by the EDR", "by": "ana",
                                            "at": "2026-03-28T21:25:00.000000Z"},
                      })
    deadlines = {d.key: d for d in step_deadlines(playbook, made, now, run=run,
                                                  regulatory=regulatory_deadlines(made, BOTH, now))}
    assert deadlines["ransomware/confirm-and-scope"].due_at == utc("2026-03-28T21:30:00+00:00")  # 30m after detection
    assert deadlines["ransomware/confirm-and-scope"].status == DeadlineStatus.met
    assert "ransomware/isolate-hosts" not in deadlines  # skipped
    assert deadlines["ransomware/declare-major-incident"].due_at == utc("2026-03-28T22:00:00+00:00")
    assert deadlines["ransomware/declare-major-incident"].status == DeadlineStatus.missed
    assert deadlines["ransomware/police-and-extortion"].due_at == utc("2026-03-31T21:00:00+00:00")  # 3d
    assert deadlines["ransomware/eradicate-access-and-persistence"].due_at == utc("2026-03-31T22:30:00+00:00")
    early = deadlines["ransomware/nis2-early-warning"]
    assert (early.due_at, early.regulation) == (utc("2026-03-29T22:30:00+00:00"), "NIS2 Art. 23(4)(a)")
    assert deadlines["ransomware/gdpr-notification"].due_at == utc("2026-03-31T22:30:00+00:00")
    assert "ransomware/restore-from-clean-backups" not in deadlines  # no due time
    keys = list(deadlines)
    assert keys == [f"ransomware/{step.id}" for step in playbook.steps if f"ransomware/{step.id}" in deadlines]

    not_yet_significant = step_deadlines(playbook, incident(None, created_at=detected), now)
    assert {d.key.split("/")[1] for d in not_yet_significant} == {
        "confirm-and-scope", "declare-major-incident", "isolate-hosts", "protect-backups", "contain-accounts",
        "preserve-evidence", "police-and-extortion"}


def test_submissions_are_read_from_clock_steps_done() -> None:
    library = load_playbooks()

    def run(playbook_id: str, at: str, detached: bool = False) -> PlaybookRun:
        step = "nis2-early-warning"
        return PlaybookRun(id=f"inc-1.{playbook_id}", tenant="town-a", incident_id="inc-1", playbook_id=playbook_id,
                           playbook_version="1.0", attached_by="civicsoc", detached=detached,
                           steps={step: {"status": "done", "note": "CSIRT ref 42", "by": "lead", "at": at}})

    runs = [run("ransomware", "2026-03-29T10:00:00.000000Z"), run("lateral-movement", "2026-03-29T09:00:00.000000Z"),
            run("c2-beaconing", "2026-03-29T08:00:00.000000Z", detached=True)]
    assert submissions_from_runs(runs, library) == {Clock.nis2_early_warning: utc("2026-03-29T09:00:00+00:00")}
