"""What the exports know about an incident besides the incident record: its playbook steps and its
regulatory deadlines. Pure: built from records and the playbook library, every "now" an argument.

``sources`` reads the records from the store; everything downstream (register, statistics, notifications,
STIX) works on these values only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from civicsoc.event import Event, parse_timestamp
from civicsoc.records import Alert, Comment, Incident, NotificationRegime, PlaybookRun, StepStatus, Submission
from playbooks.clocks import Deadline, DeadlineStatus, flags_of, regulatory_deadlines
from playbooks.model import Clock, Phase, Playbook

CLOCKS: tuple[Clock, ...] = (Clock.nis2_early_warning, Clock.nis2_incident_notification, Clock.nis2_final_report,
                             Clock.gdpr_breach_notification, Clock.cisa_incident_notification)
"""The regulatory clocks, in the order the register's columns show them."""
MITIGATION_PHASES = frozenset({Phase.containment, Phase.eradication, Phase.recovery})


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One playbook step of an incident with its progress (from a ``PlaybookRun``)."""

    playbook_id: str
    step_id: str
    title: str
    phase: Phase | None
    """``None`` when the playbook version the run follows is no longer loaded."""
    status: StepStatus
    note: str = ""
    by: str | None = None
    at: datetime | None = None

    @property
    def completed(self) -> bool:
        """Done, or skipped with a reason: either way nobody has to act on it any more."""
        return self.status in (StepStatus.done, StepStatus.skipped)


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """An incident with its (attached) playbook steps and its regulatory deadlines as of ``now``."""

    incident: Incident
    steps: tuple[StepRecord, ...] = ()
    deadlines: tuple[Deadline, ...] = ()
    playbooks: tuple[str, ...] = ()

    @property
    def steps_completed(self) -> int:
        return sum(1 for step in self.steps if step.completed)

    def deadline(self, clock: Clock) -> Deadline | None:
        return next((d for d in self.deadlines if d.key == clock.value), None)

    @property
    def open_deadlines(self) -> list[Deadline]:
        """Regulatory reports not yet submitted, whether still in time or already late."""
        return [d for d in self.deadlines if d.done_at is None and d.status != DeadlineStatus.met]


@dataclass(frozen=True)
class IncidentCase:
    """Everything a notification draft or a STIX bundle is made from."""

    facts: IncidentFacts
    tenant_name: str
    alerts: tuple[Alert, ...] = ()
    comments: tuple[Comment, ...] = ()
    events: tuple[Event, ...] = field(default=(), repr=False)
    """The events behind the alerts (their fields tell which hash is an MD5 and which an imphash)."""

    @property
    def incident(self) -> Incident:
        return self.facts.incident


def step_records(runs: Iterable[PlaybookRun], playbooks: Sequence[Playbook]) -> list[StepRecord]:
    """The steps of the attached runs in playbook order (a detached run no longer applies)."""
    by_version = {(p.id, p.version): p for p in playbooks}
    records: list[StepRecord] = []
    for run in sorted(runs, key=lambda r: r.playbook_id):
        if run.detached:
            continue
        playbook = by_version.get((run.playbook_id, run.playbook_version))
        for step_id, progress in run.steps.items():
            step = next((s for s in playbook.steps if s.id == step_id), None) if playbook else None
            at = progress.get("at")
            records.append(StepRecord(
                playbook_id=run.playbook_id, step_id=step_id, title=step.title if step else step_id,
                phase=step.phase if step else None, status=StepStatus(progress.get("status", StepStatus.todo)),
                note=progress.get("note") or "", by=progress.get("by"),
                at=parse_timestamp(at) if isinstance(at, str) else None))
    return records


def incident_facts(incident: Incident, runs: Sequence[PlaybookRun], playbooks: Sequence[Playbook],
                   now: datetime, *, submissions: Sequence[Submission] = (),
                   regime: NotificationRegime = NotificationRegime.eu) -> IncidentFacts:
    """Steps and deadlines of one incident; ``playbooks`` is the library (every version), ``runs`` its runs,
    ``submissions`` its recorded regulatory submissions, ``regime`` its tenant's."""
    flags = flags_of(incident, runs, playbooks, submissions, regime)
    attached = tuple(sorted({run.playbook_id for run in runs if not run.detached}))
    return IncidentFacts(incident, tuple(step_records(runs, playbooks)),
                         tuple(regulatory_deadlines(incident, flags, now)), attached)
