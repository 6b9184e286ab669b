"""Playbook runs on both store backends: attaching is idempotent and respects detaching, step progress is
audited with before/after on a chain that verifies, and stale versions are refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from civicsoc import audit
from civicsoc.errors import NotFound, VersionConflict
from civicsoc.records import Incident, PlaybookRun, Severity
from civicsoc.store import Scope, Store
from playbooks.loader import load_playbooks
from playbooks.model import PlaybookError, UnknownStep
from playbooks.service import attach, attach_matching, detach, runs_for_incident, set_step

SCOPE = Scope.of("town-a")
T0 = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def library():
    return load_playbooks()


def store_incident(store: Store, **fields) -> Incident:
    base = {"id": "inc-1", "tenant": "town-a", "title": "shadow copies deleted on ws-12", "severity": Severity.high,
            "techniques": ["T1070", "T1490"], "tactics": ["impact"], "first_seen": T0, "last_seen": T0,
            "created_at": T0}
    incident = Incident(**{**base, **fields})
    store.incidents.create(Scope.all(), incident)
    return incident


def actions(store: Store) -> list[tuple[str, str, str]]:
    return [(record.action, record.target, record.actor) for record in audit.iter_chain(store)]


def test_attach_matching_is_idempotent(store: Store, library) -> None:
    incident = store_incident(store)
    created = attach_matching(store, library, incident)
    assert [run.playbook_id for run in created] == ["ransomware"]
    run = store.records(PlaybookRun).get(SCOPE, "inc-1.ransomware").record
    assert run.playbook_version == "1.0" and run.attached_by == "civicsoc" and not run.detached
    assert list(run.steps) == list(library.get("ransomware").step_ids)
    assert {entry["status"] for entry in run.steps.values()} == {"todo"}
    assert attach_matching(store, library, incident) == []
    [record] = list(audit.iter_chain(store))
    assert (record.action, record.target, record.tenant) == ("playbook.attach", "playbook_runs/inc-1.ransomware",
                                                             "town-a")
    assert record.after["automatic"] is True and "technique T1490" in record.after["reasons"]


def test_an_incident_that_gains_techniques_gets_the_new_playbooks(store: Store, library) -> None:
    incident = store_incident(store)
    attach_matching(store, library, incident)
    grown = incident.model_copy(update={"techniques": [*incident.techniques, "T1021.002"],
                                        "tactics": ["impact", "lateral-movement"]})
    assert [run.playbook_id for run in attach_matching(store, library, grown)] == ["lateral-movement"]
    assert [v.record.playbook_id for v in runs_for_incident(store, SCOPE, "inc-1")] == ["lateral-movement",
                                                                                        "ransomware"]


def test_a_detached_playbook_is_not_reattached_automatically(store: Store, library) -> None:
    incident = store_incident(store)
    attach_matching(store, library, incident)
    detached = detach(store, SCOPE, "inc-1", "ransomware", "ana", reason="test restore, not an attack")
    assert detached.record.detached
    assert attach_matching(store, library, incident) == []
    assert store.records(PlaybookRun).get(SCOPE, "inc-1.ransomware").record.detached
    assert actions(store)[-1] == ("playbook.detach", "playbook_runs/inc-1.ransomware", "ana")
    last = list(audit.iter_chain(store))[-1]
    assert (last.before, last.after) == ({"detached": False}, {"detached": True,
                                                               "reason": "test restore, not an attack"})


def test_attach_by_hand_reattaches_with_progress_kept(store: Store, library) -> None:
    incident = store_incident(store)
    attach_matching(store, library, incident)
    set_step(store, SCOPE, "inc-1.ransomware", "confirm-and-scope", "done", "12 hosts", "ana")
    detach(store, SCOPE, "inc-1", "ransomware", "ana")
    again = attach(store, library, SCOPE, "inc-1", "ransomware", "bob")
    assert not again.record.detached and again.record.attached_by == "bob"
    assert again.record.steps["confirm-and-scope"]["status"] == "done"
    assert attach(store, library, SCOPE, "inc-1", "ransomware", "bob").version == again.version  # no change
    manual = attach(store, library, SCOPE, "inc-1", "insider-citizen-records", "bob")
    assert manual.record.playbook_id == "insider-citizen-records"
    assert [a for a, _, _ in actions(store)] == ["playbook.attach", "playbook.step", "playbook.detach",
                                                  "playbook.attach", "playbook.attach"]


def test_step_progress_is_audited_and_the_chain_verifies(store: Store, library) -> None:
    incident = store_incident(store)
    attach_matching(store, library, incident)
    run_id = "inc-1.ransomware"
    first = set_step(store, SCOPE, run_id, "confirm-and-scope", "done", "  12 hosts, patient zero ws-12 ", "ana")
    entry = first.record.steps["confirm-and-scope"]
    assert (entry["status"], entry["note"], entry["by"]) == ("done", "12 hosts, patient zero ws-12", "ana")
    second = set_step(store, SCOPE, run_id, "police-and-extortion", "skipped", "handled by the ministry", "bob",
                      expected_version=first.version)
    assert second.record.steps["confirm-and-scope"] == entry  # the other step is untouched
    unchanged = set_step(store, SCOPE, run_id, "police-and-extortion", "skipped", "handled by the ministry", "bob")
    assert unchanged.version == second.version  # nothing to record
    stored = store.records(PlaybookRun).get(SCOPE, run_id)
    assert stored.record.steps["police-and-extortion"]["status"] == "skipped"

    chain = list(audit.iter_chain(store))
    assert [r.action for r in chain] == ["playbook.attach", "playbook.step", "playbook.step"]
    step_record = chain[1]
    assert step_record.before == {"step": "confirm-and-scope", "status": "todo", "note": "", "by": None, "at": None}
    assert step_record.after == {"step": "confirm-and-scope", **entry}
    assert (step_record.actor, step_record.tenant) == ("ana", "town-a")
    result = audit.verify(audit.iter_chain(store))
    assert result.ok and result.records == 3


def test_a_stale_version_raises_a_conflict_and_changes_nothing(store: Store, library) -> None:
    attach_matching(store, library, store_incident(store))
    run_id = "inc-1.ransomware"
    seen = store.records(PlaybookRun).get(SCOPE, run_id).version
    set_step(store, SCOPE, run_id, "isolate-hosts", "done", "", "ana", expected_version=seen)
    with pytest.raises(VersionConflict):
        set_step(store, SCOPE, run_id, "protect-backups", "done", "", "bob", expected_version=seen)
    run = store.records(PlaybookRun).get(SCOPE, run_id).record
    assert run.steps["protect-backups"]["status"] == "todo"
    assert [a for a, _, _ in actions(store)] == ["playbook.attach", "playbook.step"]


def test_bad_step_updates_are_refused_clearly(store: Store, library) -> None:
    attach_matching(store, library, store_incident(store))
    run_id = "inc-1.ransomware"
    with pytest.raises(UnknownStep, match=r"playbook run 'inc-1.ransomware' has no step 'isolate'; its steps are: "
                                          r"confirm-and-scope, declare-major-incident, isolate-hosts") as raised:
        set_step(store, SCOPE, run_id, "isolate", "done", "", "ana")
    assert isinstance(raised.value, NotFound)
    with pytest.raises(PlaybookError, match="a skipped step needs a note"):
        set_step(store, SCOPE, run_id, "isolate-hosts", "skipped", "  ", "ana")
    with pytest.raises(PlaybookError, match="expected one of todo, done, skipped"):
        set_step(store, SCOPE, run_id, "isolate-hosts", "finished", "", "ana")
    detach(store, SCOPE, "inc-1", "ransomware", "ana")
    with pytest.raises(PlaybookError, match="is detached"):
        set_step(store, SCOPE, run_id, "isolate-hosts", "done", "", "ana")
    assert [a for a, _, _ in actions(store)] == ["playbook.attach", "playbook.detach"]


def test_other_tenants_cannot_attach_or_see_runs(store: Store, library) -> None:
    attach_matching(store, library, store_incident(store))
    elsewhere = Scope.of("town-b")
    with pytest.raises(NotFound):
        attach(store, library, elsewhere, "inc-1", "ransomware", "mallory")
    with pytest.raises(NotFound):
        set_step(store, elsewhere, "inc-1.ransomware", "isolate-hosts", "done", "", "mallory")
    assert runs_for_incident(store, elsewhere, "inc-1") == []
