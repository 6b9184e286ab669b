"""Playbook runs in the store: attach, detach, and step progress, every change audited.

The edge where playbooks meet I/O. A run (``PlaybookRun``, id ``<incident id>.<playbook id>``) is
created with every step of the playbook version it follows set to ``todo``, so a step id that is not
in the run is an error without looking the playbook up again, and a run keeps following the
version it started with after the library moves on.

Policy:

- ``attach_matching`` is what the incident pipeline calls when an incident is created or gains
  techniques: it creates runs for matching playbooks that have none yet. It never re-attaches a
  run an analyst detached (that run still exists, with ``detached=True``), and calling it again
  changes nothing.
- ``attach`` by an analyst re-attaches a detached run, keeping its progress.
- Step changes are read-modify-write guarded by the run's version: with ``expected_version`` (the
  API's ``If-Match``) a concurrent change raises ``VersionConflict``; without one, the change is
  applied to the latest run (steps are independent, so retrying is safe).
- A skipped step needs a note saying why: an auditor will ask.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from civicsoc import audit
from civicsoc.errors import AlreadyExists, NotFound, VersionConflict
from civicsoc.event import format_timestamp
from civicsoc.records import Incident, NotificationRegime, PlaybookRun, Record, StepStatus, Submission, utcnow
from civicsoc.store import RecordCollection, RecordQuery, Scope, Store, Versioned
from civicsoc.store.base import MAX_PAGE
from civicsoc.tenancy import notification_regime
from civicsoc.triage import of_incident
from playbooks.clocks import (
    Deadline,
    RegulatoryFlags,
    flags_of,
    incident_deadlines,
    next_deadline,
)
from playbooks.loader import PlaybookLibrary
from playbooks.matching import match_playbooks
from playbooks.model import Playbook, PlaybookError, UnknownStep

RETRIES = 8


def _runs(store: Store) -> RecordCollection[PlaybookRun]:
    return store.records(PlaybookRun)


def _target(run_id: str) -> str:
    return f"playbook_runs/{run_id}"


def new_run(incident: Incident, playbook: Playbook, actor: str) -> PlaybookRun:
    """A fresh run: every step ``todo``."""
    steps = {step.id: {"status": StepStatus.todo.value, "note": "", "by": None, "at": None} for step in playbook.steps}
    return PlaybookRun(id=PlaybookRun.id_for(incident.id, playbook.id), tenant=incident.tenant, incident_id=incident.id,
                       playbook_id=playbook.id, playbook_version=playbook.version, attached_by=actor, steps=steps)


def _create(store: Store, scope: Scope, run: PlaybookRun, actor: str,
            details: dict[str, Any]) -> Versioned[PlaybookRun]:
    saved = _runs(store).create(scope, run)
    audit.append(store, tenant=run.tenant, actor=actor, action="playbook.attach", target=_target(run.id),
                 after={"incident_id": run.incident_id, "playbook_id": run.playbook_id,
                        "playbook_version": run.playbook_version, "detached": False, **details})
    return saved


def _check_version(run_id: str, current: Versioned[PlaybookRun], expected_version: str | None) -> None:
    if expected_version is not None and current.version != expected_version:
        raise VersionConflict(PlaybookRun.collection, run_id, expected_version)


def attach_matching(store: Store, library: PlaybookLibrary, incident: Incident, actor: str = "civicsoc", *,
                    tags: Iterable[str] = ()) -> list[PlaybookRun]:
    """Attach every playbook that matches ``incident`` and has no run on it yet; returns the runs created.

    ``tags``: Sigma tags of the incident's alerts' rules besides its ATT&CK fields (see
    ``playbooks.matching.incident_tags``). Idempotent; a detached run stays detached.
    """
    scope = Scope.of(incident.tenant)
    created: list[PlaybookRun] = []
    for match in match_playbooks(library.latest(), incident, tags=tags):
        run = new_run(incident, match.playbook, actor)
        try:
            _runs(store).get(scope, run.id)
            continue  # attached before, perhaps detached by an analyst since: leave it as it is
        except NotFound:
            pass
        try:
            saved = _create(store, scope, run, actor, {"automatic": True, "reasons": list(match.reasons)})
        except AlreadyExists:  # another worker attached it meanwhile
            continue
        created.append(saved.record)
    return created


def attach(store: Store, library: PlaybookLibrary, scope: Scope, incident_id: str, playbook_id: str, actor: str, *,
           version: str | None = None) -> Versioned[PlaybookRun]:
    """Attach a playbook by hand (the highest version unless ``version``), or re-attach a detached run with
    its progress. Attaching an attached playbook changes nothing."""
    incident = store.incidents.get(scope, incident_id).record  # NotFound outside the caller's tenants
    playbook = library.get(playbook_id, version)
    run_id = PlaybookRun.id_for(incident.id, playbook.id)
    for _ in range(RETRIES):
        try:
            current = _runs(store).get(scope, run_id)
        except NotFound:
            try:
                return _create(store, scope, new_run(incident, playbook, actor), actor, {"automatic": False})
            except AlreadyExists:
                continue
        if not current.record.detached:
            return current
        changed = current.record.model_copy(update={"detached": False, "attached_by": actor,
                                                    "attached_at": utcnow()})
        try:
            saved = _runs(store).update(scope, changed, current.version)
        except VersionConflict:
            continue
        audit.append(store, tenant=changed.tenant, actor=actor, action="playbook.attach", target=_target(run_id),
                     before={"detached": True}, after={"detached": False, "automatic": False})
        return saved
    raise VersionConflict(PlaybookRun.collection, run_id, "(kept changing while attaching)")


def detach(store: Store, scope: Scope, incident_id: str, playbook_id: str, actor: str, *, reason: str = "",
           expected_version: str | None = None) -> Versioned[PlaybookRun]:
    """Detach a playbook from an incident: the run and its progress stay (for the audit and a later
    re-attach), but ``attach_matching`` will not bring it back."""
    run_id = PlaybookRun.id_for(incident_id, playbook_id)
    current = _runs(store).get(scope, run_id)
    _check_version(run_id, current, expected_version)
    if current.record.detached:
        return current
    changed = current.record.model_copy(update={"detached": True})
    saved = _runs(store).update(scope, changed, current.version)
    audit.append(store, tenant=changed.tenant, actor=actor, action="playbook.detach", target=_target(run_id),
                 before={"detached": False}, after={"detached": True, "reason": reason})
    return saved


def _status(status: StepStatus | str) -> StepStatus:
    try:
        return StepStatus(status)
    except ValueError:
        raise PlaybookError(f"step status {status!r}: expected one of {', '.join(s.value for s in StepStatus)}") \
            from None


def set_step(store: Store, scope: Scope, run_id: str, step_id: str, status: StepStatus | str, note: str, actor: str,
             expected_version: str | None = None) -> Versioned[PlaybookRun]:
    """Record a step's progress (``todo``/``done``/``skipped`` with a note): who, when, and why.

    ``UnknownStep`` (a ``NotFound``) names the run's steps; a detached run or a skip without a note is
    a ``PlaybookError``; a stale ``expected_version`` is a ``VersionConflict``.
    """
    new_status, note = _status(status), note.strip()
    if new_status == StepStatus.skipped and not note:
        raise PlaybookError(f"playbook run {run_id!r}, step {step_id!r}: a skipped step needs a note saying why")
    for _ in range(RETRIES if expected_version is None else 1):
        current = _runs(store).get(scope, run_id)
        _check_version(run_id, current, expected_version)
        run = current.record
        if run.detached:
            raise PlaybookError(f"playbook run {run_id!r} is detached; attach the playbook again to record progress")
        if step_id not in run.steps:
            raise UnknownStep(f"playbook run {run_id!r}", step_id, list(run.steps))
        before = run.steps[step_id]
        if before.get("status") == new_status.value and before.get("note", "") == note:
            return current  # nothing changes: no write, no audit record
        after = {"status": new_status.value, "note": note, "by": actor, "at": format_timestamp(utcnow())}
        changed = run.model_copy(update={"steps": {**run.steps, step_id: after}})
        try:
            saved = _runs(store).update(scope, changed, current.version)
        except VersionConflict:
            if expected_version is not None:
                raise
            continue  # another step changed meanwhile: apply ours to the new version
        audit.append(store, tenant=run.tenant, actor=actor, action="playbook.step", target=_target(run_id),
                     before={"step": step_id, **before}, after={"step": step_id, **after})
        return saved
    raise VersionConflict(PlaybookRun.collection, run_id, "(kept changing while recording the step)")


def runs_for_incident(store: Store, scope: Scope, incident_id: str) -> list[Versioned[PlaybookRun]]:
    """Every run on an incident, detached ones included, by playbook id."""
    return list(_runs(store).list(scope, of_incident(PlaybookRun, incident_id).query).items)


def regulatory_flags(store: Store, incident: Incident, runs: Iterable[PlaybookRun], playbooks: Iterable[Playbook],
                     submissions: Iterable[Submission]) -> RegulatoryFlags:
    """The incident's flags, its tenant's regime, and when each report went out: the earlier of a
    notification step marked done and a recorded submission."""
    return flags_of(incident, runs, playbooks, submissions, notification_regime(store, incident.tenant))


def _followed(library: PlaybookLibrary, runs: Iterable[PlaybookRun]) -> list[tuple[PlaybookRun, Playbook | None]]:
    followed: list[tuple[PlaybookRun, Playbook | None]] = []
    for run in runs:
        try:
            followed.append((run, library.get(run.playbook_id, run.playbook_version)))
        except NotFound:  # the version it started with left the library: show progress without instructions
            followed.append((run, None))
    return followed


def describe_progress(library: PlaybookLibrary, incident: Incident, runs: Sequence[Versioned[PlaybookRun]],
                      regime: NotificationRegime, now: datetime,
                      submissions: Iterable[Submission] = ()) -> tuple[list[dict[str, Any]], list[Deadline]]:
    """An incident's playbook runs (with each step's instructions, progress and due time) and every
    deadline that applies to it, regulatory ones first: what the incident page shows. Pure: the page
    reads the runs, the tenant's regime and the submissions together with the rest (``triage.incident_detail``)."""
    versions = {current.record.id: current.version for current in runs}
    followed = _followed(library, [current.record for current in runs])
    flags = flags_of(incident, [run for run, _ in followed], [p for _, p in followed if p is not None],
                     submissions, regime)
    deadlines, by_run = incident_deadlines(incident, followed, flags, now)
    described = []
    for run, playbook in followed:
        due = by_run[run.id]
        steps = []
        for step_id, progress in run.steps.items():
            step = playbook.step(step_id).to_dict() if playbook is not None else {"id": step_id}
            deadline = due.get(step_id)
            steps.append({**step, **progress, "due_at": deadline.as_dict()["due_at"] if deadline else None,
                          "deadline_status": deadline.status.value if deadline else None})
        described.append({"id": run.id, "version": versions[run.id], "playbook_id": run.playbook_id,
                          "playbook_version": run.playbook_version,
                          "title": playbook.title if playbook else run.playbook_id, "detached": run.detached,
                          "attached_by": run.attached_by, "attached_at": format_timestamp(run.attached_at),
                          "steps": steps})
    return described, deadlines


BATCH = 500
R = TypeVar("R", bound=Record)


def records_by_incident(store: Store, record_type: type[R], scope: Scope,
                        incident_ids: Sequence[str]) -> dict[str, list[R]]:
    """Records of many incidents (playbook runs, submissions), ``BATCH`` incidents a query."""
    found: dict[str, list[R]] = defaultdict(list)
    collection = store.records(record_type)
    for start in range(0, len(incident_ids), BATCH):
        cursor: str | None = None
        while True:
            query = RecordQuery.where({"incident_id": list(incident_ids[start:start + BATCH])}, sort="id",
                                      descending=False, limit=MAX_PAGE, cursor=cursor)
            page = collection.list(scope, query)
            for item in page.items:
                found[item.record.incident_id].append(item.record)  # type: ignore[attr-defined]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return found


def next_deadlines(store: Store, library: PlaybookLibrary, scope: Scope, incidents: Sequence[Incident],
                   now: datetime) -> dict[str, Deadline | None]:
    """The next deadline still to be met of each incident (``None``: none running), in two queries for
    any number of incidents (runs and submissions) plus one read per tenant: for the queue."""
    ids = [incident.id for incident in incidents]
    runs = records_by_incident(store, PlaybookRun, scope, ids)
    submissions = records_by_incident(store, Submission, scope, ids)
    regimes = {tenant: notification_regime(store, tenant) for tenant in {incident.tenant for incident in incidents}}
    found: dict[str, Deadline | None] = {}
    for incident in incidents:
        followed = _followed(library, runs.get(incident.id, []))
        playbooks = [p for _, p in followed if p is not None]
        flags = flags_of(incident, runs.get(incident.id, []), playbooks, submissions.get(incident.id, []),
                       regimes[incident.tenant])
        found[incident.id] = next_deadline(incident_deadlines(incident, followed, flags, now)[0])
    return found
