"""The append-only audit trail: every state change, chained by hash so that tampering shows.

Each record carries the hash of the one before it (``prev_hash``) and its own hash over its
content and ``prev_hash``. Changing, removing or reordering any record breaks the chain from that
point on, which ``verify`` finds. Appending takes the next sequence number as the record id; the
store's create-never-overwrites makes a concurrent append lose the race and retry, so the chain
never forks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from civicsoc.errors import AlreadyExists
from civicsoc.records import AuditRecord, utcnow
from civicsoc.store import RecordQuery, Scope, Store

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""
MAX_RACES = 50


def record_hash(record: AuditRecord) -> str:
    """SHA-256 over the canonical JSON of everything but the hash itself."""
    content = record.model_dump(mode="json", exclude={"hash"})
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _last(store: Store) -> AuditRecord | None:
    page = store.audit.list(Scope.all(), RecordQuery(sort="seq", descending=True, limit=1))
    return page.items[0].record if page.items else None


def append(
    store: Store,
    *,
    tenant: str,
    actor: str,
    action: str,
    target: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append one state change; ``before``/``after`` hold the changed fields (JSON-able values)."""
    for _ in range(MAX_RACES):
        last = _last(store)
        seq = 0 if last is None else last.seq + 1
        draft = AuditRecord(
            id=AuditRecord.id_for(seq), tenant=tenant, seq=seq, at=at or utcnow(), actor=actor, action=action,
            target=target, before=_jsonable(before), after=_jsonable(after),
            prev_hash=GENESIS if last is None else last.hash, hash="",
        )
        record = draft.model_copy(update={"hash": record_hash(draft)})
        try:
            store.audit.create(Scope.all(), record)
        except AlreadyExists:  # another writer took this sequence number: chain onto theirs
            continue
        return record
    raise RuntimeError(f"audit: could not append after {MAX_RACES} concurrent writers took the next number")


def _jsonable(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(dict(values or {}), default=str))


def iter_chain(store: Store, *, batch_size: int = 1000) -> Iterator[AuditRecord]:
    """Every audit record of every tenant in sequence order, a page at a time."""
    cursor: str | None = None
    while True:
        page = store.audit.list(Scope.all(), RecordQuery(sort="seq", descending=False, limit=batch_size,
                                                          cursor=cursor))
        for item in page.items:
            yield item.record
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"audit record {self.seq}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Verification:
    records: int
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(records: Iterator[AuditRecord] | list[AuditRecord]) -> Verification:
    """Check sequence numbers, each record's own hash and its link to the one before."""
    problems: list[ChainProblem] = []
    expected_prev, expected_seq, count = GENESIS, 0, 0
    for record in records:
        count += 1
        if record.seq != expected_seq:
            problems.append(ChainProblem(record.seq, f"expected sequence number {expected_seq} (a record is "
                                                     "missing or was inserted)"))
        if record.prev_hash != expected_prev:
            problems.append(ChainProblem(record.seq, "prev_hash does not match the record before it"))
        if record_hash(record) != record.hash:
            problems.append(ChainProblem(record.seq, "content does not match its hash (the record was changed)"))
        expected_prev, expected_seq = record.hash, record.seq + 1
    return Verification(count, tuple(problems))
