"""Regulatory and playbook deadlines of an incident. Pure: every "now" is an argument.

The texts the clocks implement (wording checked against published copies of the texts):

- **NIS2**, Directive (EU) 2022/2555, Art. 23(4) (https://eur-lex.europa.eu/eli/dir/2022/2555/oj):
  an essential or important entity submits to the CSIRT or competent authority
  (a) "without undue delay and in any event within 24 hours of becoming aware of the significant
  incident, an early warning"; (b) "without undue delay and in any event within 72 hours of becoming
  aware of the significant incident, an incident notification"; (d) "a final report not later than one
  month after the submission of the incident notification under point (b)". Point (c), an intermediate
  report, is due only on request, and (e) replaces the final report of a still-ongoing incident by a
  progress report; neither has a clock of its own here.
- **GDPR**, Regulation (EU) 2016/679, Art. 33(1) (https://eur-lex.europa.eu/eli/reg/2016/679/oj): the
  controller notifies the supervisory authority "without undue delay and, where feasible, not later
  than 72 hours after having become aware of it", with reasons for any delay beyond 72 hours.
- **CISA**, Federal Incident Notification Guidelines (effective 2017-04-01,
  https://www.cisa.gov/federal-incident-notification-guidelines): a US federal agency reports an
  incident "within one hour of being identified by the agency's top-level Computer Security Incident
  Response Team (CSIRT), Security Operations Center (SOC), or information technology department". A
  tenant whose ``Tenant.notification_regime`` is ``us-federal`` gets this clock instead of NIS2's.

How they are computed (the choices, stated once):

- The clocks start at ``Incident.significant_at``, the moment an analyst confirmed the incident
  significant (recorded in UTC). Under the ``us-federal`` regime that confirmation alone starts the
  one-hour CISA clock (every confirmed incident is reportable); the ``nis2`` flag is then ignored.
  GDPR's "aware" can differ (a data breach may be established later):
  ``RegulatoryFlags.gdpr_aware_at`` overrides it.
- Hours are elapsed hours, computed in UTC: 24 h after 23:30 on the eve of a daylight-saving change is
  00:30 or 22:30 local time two days on, not "the same wall-clock time tomorrow". Convert to local
  time only for display (``Deadline.local``).
- "One month" is a calendar month, as in Regulation (EEC, Euratom) No 1182/71 Art. 3(2)(c) (the EU
  rules on periods): the period ends on the same date of the next month or, when that month has no
  such date, on its last day (31 January → 28 or 29 February). The calendar is UTC unless
  ``RegulatoryFlags.calendar`` names the authority's time zone; a wall time that does not exist or
  occurs twice on that date (a DST change) resolves to the earlier instant.
- Deadlines are kept at the exact instant (same time of day), not extended to the end of the day,
  to the next working day (1182/71 Art. 3(4)), or by the excluded first day (Art. 3(1)): each of those
  can only make the legal end later, so a deadline met here is met there too. National transpositions
  of NIS2 may differ; the clock is a reminder, not legal advice.
- Until the incident notification is submitted, the final report is counted from the notification's
  deadline and its basis says so ("provisional").
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from civicsoc.event import format_timestamp, parse_timestamp
from civicsoc.records import Incident, NotificationRegime, PlaybookRun, StepStatus, Submission
from playbooks.model import Basis, Clock, Playbook

EARLY_WARNING = timedelta(hours=24)
INCIDENT_NOTIFICATION = timedelta(hours=72)
GDPR_NOTIFICATION = timedelta(hours=72)
CISA_NOTIFICATION = timedelta(hours=1)

REGULATIONS: dict[Clock, tuple[str, str]] = {
    Clock.nis2_early_warning: ("NIS2 early warning", "NIS2 Art. 23(4)(a)"),
    Clock.nis2_incident_notification: ("NIS2 incident notification", "NIS2 Art. 23(4)(b)"),
    Clock.nis2_final_report: ("NIS2 final report", "NIS2 Art. 23(4)(d)"),
    Clock.gdpr_breach_notification: ("GDPR notification to the supervisory authority", "GDPR Art. 33(1)"),
    Clock.cisa_incident_notification: ("CISA incident notification", "CISA Federal Incident Notification Guidelines"),
}


class DeadlineStatus(StrEnum):
    open = "open"
    """Not done, and not yet due."""
    met = "met"
    """Done at or before the due time."""
    missed = "missed"
    """Done late, or not done and past due."""


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name}: {moment!r} has no time zone (civicsoc computes deadlines in UTC)")
    return moment.astimezone(UTC)


def deadline_status(due_at: datetime, done_at: datetime | None, now: datetime) -> DeadlineStatus:
    if done_at is not None:
        return DeadlineStatus.met if done_at <= due_at else DeadlineStatus.missed
    return DeadlineStatus.missed if now > due_at else DeadlineStatus.open


@dataclass(frozen=True, slots=True)
class Deadline:
    key: str
    """``nis2-early-warning``... for a regulatory clock; ``<playbook id>/<step id>`` for a playbook step."""
    name: str
    regulation: str | None
    """The article it comes from (``NIS2 Art. 23(4)(a)``); ``None`` for a playbook's own due time."""
    due_at: datetime
    """UTC."""
    basis: str
    """How ``due_at`` was computed, in words an auditor can check."""
    done_at: datetime | None
    status: DeadlineStatus

    def local(self, zone: tzinfo) -> datetime:
        """``due_at`` on the wall clock of ``zone`` (for display only; compare and store in UTC)."""
        return self.due_at.astimezone(zone)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "regulation": self.regulation,
                "due_at": format_timestamp(self.due_at), "basis": self.basis,
                "done_at": format_timestamp(self.done_at) if self.done_at else None, "status": self.status.value}


@dataclass(frozen=True)
class RegulatoryFlags:
    """What the analyst and the DPO decided about an incident, and which reports went out when."""

    nis2: bool = False
    """The agency is an essential or important entity and the incident is significant (Art. 23(3))."""
    gdpr: bool = False
    """The incident is a personal data breach the agency controls (GDPR Art. 4(12), 33)."""
    gdpr_aware_at: datetime | None = None
    """When the agency became aware of the personal data breach, if not when the incident was confirmed significant."""
    submitted: Mapping[Clock, datetime] = field(default_factory=dict)
    """When each report was submitted (see ``submissions_from_runs`` and ``submissions_from_records``)."""
    regime: NotificationRegime = NotificationRegime.eu
    """The tenant's authority: ``us-federal`` replaces the NIS2 clocks by CISA's one hour."""
    calendar: tzinfo = UTC
    """The calendar a "one month" period is counted on (e.g. ``ZoneInfo("Europe/Brussels")``)."""


def add_months(moment: datetime, months: int, zone: tzinfo = UTC) -> datetime:
    """The same wall time ``months`` calendar months later on the calendar of ``zone``, clamped to the last
    day of a shorter month (1182/71 Art. 3(2)(c)); returned in UTC.

    Hand-written because the standard library has no month arithmetic, and dateutil is only an
    indirect dependency; the rule is three lines.
    """
    local = _utc(moment, "add_months").astimezone(zone)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    wall = local.replace(tzinfo=None, year=year, month=month, day=day)
    # A wall time inside a DST gap or overlap has two readings (fold 0 and 1): take the earlier instant.
    return min(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))


def _deadline(clock: Clock, due_at: datetime, basis: str, flags: RegulatoryFlags, now: datetime) -> Deadline:
    name, regulation = REGULATIONS[clock]
    done = flags.submitted.get(clock)
    done_at = _utc(done, f"submitted[{clock.value}]") if done is not None else None
    return Deadline(clock.value, name, regulation, due_at, basis, done_at, deadline_status(due_at, done_at, now))


def regulatory_deadlines(incident: Incident, flags: RegulatoryFlags, now: datetime) -> list[Deadline]:
    """The NIS2 (or CISA) and GDPR deadlines of ``incident`` that have started, earliest first.

    None start before the incident is confirmed significant (``significant_at``), except GDPR's when
    ``flags.gdpr_aware_at`` is given.
    """
    now = _utc(now, "now")
    deadlines: list[Deadline] = []
    aware = incident.significant_at
    if flags.regime == NotificationRegime.us_federal and aware is not None:
        deadlines.append(_deadline(Clock.cisa_incident_notification, aware + CISA_NOTIFICATION,
                                   f"1 h after the incident was confirmed at {format_timestamp(aware)}", flags, now))
    elif flags.nis2 and aware is not None:
        stamp = format_timestamp(aware)
        early = _deadline(Clock.nis2_early_warning, aware + EARLY_WARNING,
                          f"24 h after the incident was confirmed significant at {stamp}", flags, now)
        notification = _deadline(Clock.nis2_incident_notification, aware + INCIDENT_NOTIFICATION,
                                 f"72 h after the incident was confirmed significant at {stamp}", flags, now)
        if notification.done_at is not None:
            start, basis = notification.done_at, f"one calendar month after the incident notification was " \
                                                 f"submitted at {format_timestamp(notification.done_at)}"
        else:
            start, basis = notification.due_at, ("provisional: one calendar month after the incident notification's "
                                                 f"deadline {format_timestamp(notification.due_at)} (not yet "
                                                 "submitted)")
        final = _deadline(Clock.nis2_final_report, add_months(start, 1, flags.calendar), basis, flags, now)
        deadlines += [early, notification, final]
    gdpr_aware = flags.gdpr_aware_at or aware
    if flags.gdpr and gdpr_aware is not None:
        gdpr_aware = _utc(gdpr_aware, "gdpr_aware_at")
        what = "the personal data breach became known" if flags.gdpr_aware_at else "the incident was confirmed " \
                                                                                    "significant"
        deadlines.append(_deadline(Clock.gdpr_breach_notification, gdpr_aware + GDPR_NOTIFICATION,
                                   f"72 h after {what} at {format_timestamp(gdpr_aware)}", flags, now))
    return sorted(deadlines, key=lambda d: (d.due_at, d.key))


def _step_progress(run: PlaybookRun | None, step_id: str) -> tuple[StepStatus, datetime | None]:
    entry = (run.steps if run is not None else {}).get(step_id) or {}
    status = StepStatus(entry.get("status", StepStatus.todo))
    at = entry.get("at")
    if isinstance(at, str):
        at = parse_timestamp(at)
    return status, at if status == StepStatus.done else None


def step_deadlines(playbook: Playbook, incident: Incident, now: datetime, *, run: PlaybookRun | None = None,
                   regulatory: Iterable[Deadline] = ()) -> list[Deadline]:
    """Due times of a playbook's steps for ``incident``, in step order.

    A step with ``due`` counts from detection (``created_at``) or from ``significant_at``; one with a
    ``clock`` is due when that regulatory deadline is (pass ``regulatory_deadlines(...)``). Steps whose
    start has not happened (not yet significant, clock not running) and skipped steps have no deadline.
    """
    now = _utc(now, "now")
    by_clock = {deadline.key: deadline for deadline in regulatory}
    deadlines: list[Deadline] = []
    for step in playbook.steps:
        status, done_at = _step_progress(run, step.id)
        if status == StepStatus.skipped:
            continue
        key, name = f"{playbook.id}/{step.id}", step.title
        if step.clock is not None:
            legal = by_clock.get(step.clock.value)
            if legal is not None:
                deadlines.append(Deadline(key, name, legal.regulation, legal.due_at, legal.basis, done_at,
                                          deadline_status(legal.due_at, done_at, now)))
            continue
        if step.due is None:
            continue
        start = incident.created_at if step.due.relative_to == Basis.detection else incident.significant_at
        if start is None:
            continue
        what = "detection" if step.due.relative_to == Basis.detection else "the incident was confirmed significant"
        due_at = start + step.due.within
        deadlines.append(Deadline(key, name, None, due_at, f"{step.due.text} after {what} at {format_timestamp(start)}",
                                  done_at, deadline_status(due_at, done_at, now)))
    return deadlines


def submissions_from_runs(runs: Iterable[PlaybookRun], playbooks: Iterable[Playbook]) -> dict[Clock, datetime]:
    """When each regulatory report was submitted, read from the clock steps marked done in an incident's
    runs (the earliest if several playbooks carry the same report). ``playbooks``: e.g. the library; a
    run is read against the version it was attached with."""
    by_version = {(playbook.id, playbook.version): playbook for playbook in playbooks}
    submitted: dict[Clock, datetime] = {}
    for run in runs:
        playbook = by_version.get((run.playbook_id, run.playbook_version))
        if run.detached or playbook is None:
            continue
        for step in playbook.steps:
            if step.clock is None:
                continue
            _, done_at = _step_progress(run, step.id)
            if done_at is not None and (step.clock not in submitted or done_at < submitted[step.clock]):
                submitted[step.clock] = done_at
    return submitted


def submissions_from_records(submissions: Iterable[Submission]) -> dict[Clock, datetime]:
    """When each regulatory report was submitted, from the recorded submissions (the earliest per clock;
    a record of a clock this version does not know is ignored rather than failing a whole page)."""
    submitted: dict[Clock, datetime] = {}
    for submission in submissions:
        try:
            clock = Clock(submission.clock)
        except ValueError:
            continue
        if clock not in submitted or submission.submitted_at < submitted[clock]:
            submitted[clock] = submission.submitted_at
    return submitted


def flags_of(incident: Incident, runs: Iterable[PlaybookRun], playbooks: Iterable[Playbook],
             submissions: Iterable[Submission], regime: NotificationRegime) -> RegulatoryFlags:
    """An incident's flags and regime, and when each report went out: the earlier of a notification
    step marked done (``runs`` read against ``playbooks``) and a recorded submission."""
    return RegulatoryFlags(nis2=incident.nis2, gdpr=incident.gdpr, gdpr_aware_at=incident.gdpr_aware_at,
                           submitted=earliest(submissions_from_runs(runs, playbooks),
                                              submissions_from_records(submissions)),
                           regime=regime)


def earliest(*submitted: Mapping[Clock, datetime]) -> dict[Clock, datetime]:
    """Merge submission maps (playbook steps, recorded submissions), keeping the earliest time per clock."""
    merged: dict[Clock, datetime] = {}
    for each in submitted:
        for clock, moment in each.items():
            if clock not in merged or moment < merged[clock]:
                merged[clock] = moment
    return merged


def incident_deadlines(incident: Incident, followed: Iterable[tuple[PlaybookRun, Playbook | None]],
                       flags: RegulatoryFlags, now: datetime) -> tuple[list[Deadline], dict[str, dict[str, Deadline]]]:
    """Every deadline of an incident, regulatory ones first then by due time, and each attached run's
    step deadlines by step id (``followed``: its runs with the playbook version each follows, ``None``
    for a version no longer in the library)."""
    regulatory = regulatory_deadlines(incident, flags, now)
    deadlines: list[Deadline] = list(regulatory)
    by_run: dict[str, dict[str, Deadline]] = {}
    for run, playbook in followed:
        if playbook is None or run.detached:
            by_run[run.id] = {}
            continue
        due = {d.key.split("/", 1)[1]: d for d in step_deadlines(playbook, incident, now, run=run,
                                                                  regulatory=regulatory)}
        by_run[run.id] = due
        deadlines.extend(d for d in due.values() if d.regulation is None)
    deadlines.sort(key=lambda d: (d.regulation is None, d.due_at))
    return deadlines, by_run


def next_deadline(deadlines: Iterable[Deadline]) -> Deadline | None:
    """The earliest deadline still to be met: open ones, and missed ones not done yet (overdue)."""
    pending = [d for d in deadlines if d.done_at is None]  # met needs a done time; open and overdue have none
    return min(pending, key=lambda d: (d.due_at, d.key), default=None)
