"""The audit chain: appends link by hash, tampering of any kind is found, concurrent writers never fork it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from civicsoc import audit
from civicsoc.records import AuditRecord
from civicsoc.store import Scope, Store


def _append_some(store: Store, count: int) -> list[AuditRecord]:
    return [
        audit.append(store, tenant="town-a", actor=f"analyst-{i % 2}", action="incident.status",
                     target=f"incident/{i}", before={"status": "new"}, after={"status": "acknowledged"})
        for i in range(count)
    ]


def test_appended_records_form_a_verifiable_chain(store: Store) -> None:
    written = _append_some(store, 5)
    chain = list(audit.iter_chain(store, batch_size=2))
    assert [record.seq for record in chain] == [0, 1, 2, 3, 4]
    assert chain[0].prev_hash == audit.GENESIS
    assert [record.prev_hash for record in chain[1:]] == [record.hash for record in chain[:-1]]
    assert chain == written
    result = audit.verify(chain)
    assert result.ok and result.records == 5


def test_a_changed_record_is_detected(store: Store) -> None:
    _append_some(store, 4)
    stored = store.audit.get(Scope.all(), AuditRecord.id_for(2))
    forged = stored.record.model_copy(update={"after": {"status": "resolved"}})
    store.audit.update(Scope.all(), forged, stored.version)
    problems = audit.verify(audit.iter_chain(store)).problems
    assert [(p.seq, "changed" in p.problem) for p in problems] == [(2, True)]


def test_a_rehashed_forgery_breaks_the_link_to_the_next_record(store: Store) -> None:
    _append_some(store, 4)
    stored = store.audit.get(Scope.all(), AuditRecord.id_for(1))
    forged = stored.record.model_copy(update={"actor": "intruder"})
    forged = forged.model_copy(update={"hash": audit.record_hash(forged)})
    store.audit.update(Scope.all(), forged, stored.version)
    problems = audit.verify(audit.iter_chain(store)).problems
    assert [(p.seq, "prev_hash" in p.problem) for p in problems] == [(2, True)]


def test_a_removed_record_is_detected() -> None:
    chain = [record for record in _chain_in_memory(4) if record.seq != 1]
    problems = audit.verify(chain).problems
    assert {p.seq for p in problems} == {2}
    assert any("missing" in p.problem for p in problems)


def _chain_in_memory(count: int) -> list[AuditRecord]:
    records, prev = [], audit.GENESIS
    for seq in range(count):
        draft = AuditRecord(id=AuditRecord.id_for(seq), tenant="t", seq=seq, actor="a", action="x", target="y",
                            prev_hash=prev, hash="")
        record = draft.model_copy(update={"hash": audit.record_hash(draft)})
        records.append(record)
        prev = record.hash
    return records


def test_concurrent_writers_never_fork_the_chain(sqlite_store: Store) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: _append_some(sqlite_store, 5), range(4)))
    chain = list(audit.iter_chain(sqlite_store))
    assert len(chain) == 20
    assert audit.verify(chain).ok
