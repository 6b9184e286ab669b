"""The embedded store: one SQLite file, zero setup, for an agency that runs civicsoc on one machine.

WAL mode lets the API and a collector (separate processes) read and write at once; every write is
one transaction, committed with ``synchronous=FULL`` by default, so what ``append_events`` returns
as stored survives a killed process and a power cut. Documents are kept as JSON and queried with
SQLite's JSON functions; the columns that every query needs (id, tenant, time, version) are real
columns with indices.
"""

from __future__ import annotations

import sqlite3
import threading
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from civicsoc.errors import AlreadyExists, NotFound, StoreError, StoreUnavailable, VersionConflict
from civicsoc.event import Event, format_timestamp
from civicsoc.records import Record
from civicsoc.store.base import (
    Bucket,
    BulkResult,
    DateHistogram,
    EventQuery,
    Page,
    R,
    RecordCollection,
    RecordQuery,
    Rejection,
    RetentionResult,
    Scope,
    Store,
    Terms,
    Versioned,
    check_field_name,
    check_limit,
    decode_cursor,
    encode_cursor,
    retention_cutoff,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_DAY = 86_400_000_000
RETENTION_CHUNK = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    ts INTEGER NOT NULL,          -- @timestamp in microseconds since the epoch (UTC)
    doc TEXT NOT NULL             -- the ECS document as JSON
);
CREATE INDEX IF NOT EXISTS events_tenant_ts ON events (tenant, ts, id);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts, id);
"""

RECORD_SCHEMA = """
CREATE TABLE IF NOT EXISTS records_{name} (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_{name}_tenant ON records_{name} (tenant);
"""


def to_micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def json_path(field: str) -> str:
    """``process.parent.name`` → ``$."process"."parent"."name"`` (quoted, so any key is safe)."""
    return "$." + ".".join(f'"{part}"' for part in check_field_name(field).split("."))


def json_value(field: str) -> str:
    """``json_extract(doc, '$."a"."b"')`` with the path written in: an expression index matches only a
    literal path, never a bound parameter. Safe, because ``json_path`` accepts checked names only."""
    return f"json_extract(doc, '{json_path(field)}')"


INDEXED_RECORD_FIELDS = ("created_at", "updated_at", "timestamp", "first_seen", "last_seen", "seq", "status",
                         "incident_id", "rule_id", "name", "target")
"""Record fields with an expression index (when the record type has them): the sorts of the triage
lists and the filters that look up an incident's alerts, comments and playbook runs."""


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` is relative to the working directory, ``sqlite:////abs.db`` absolute
    (the SQLAlchemy convention)."""
    if not url.startswith("sqlite:///"):
        raise StoreError(url, "expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    rest = url[len("sqlite:///"):]
    if not rest:
        raise StoreError(url, "the URL names no database file")
    return Path(rest)


class _Where:
    """Collects SQL conditions and their parameters, always bound, never formatted in."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def scope(self, scope: Scope, column: str = "tenant") -> None:
        if scope.tenants is not None:
            tenants = sorted(scope.tenants)
            if not tenants:
                self.add("0")
            else:
                self.add(f"{column} IN ({','.join('?' * len(tenants))})", *tenants)

    def any_equal(self, field: str, values: Sequence[Any], *, scalar: bool = False) -> None:
        marks = ",".join("?" * len(values))
        if scalar:  # the same expression as the index on the field, so SQLite can use it
            self.add(f"{json_value(field)} IN ({marks})", *values)
            return
        # json_each walks an array's elements, or yields a scalar itself once: one clause for both.
        self.add(f"EXISTS (SELECT 1 FROM json_each(doc, ?) WHERE value IN ({marks}))", json_path(field), *values)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


class SqliteStore(Store):
    def __init__(self, url: str, *, synchronous: str = "FULL", busy_timeout: float = 30.0) -> None:
        self.url = url
        self.path = path_from_url(url)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._open_collections(SqliteRecords)

    # connection handling -------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """One connection per thread: sqlite3 connections must not be shared across threads."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(self.url, f"cannot open {self.path} ({exc})") from None
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front, so it never fails half-way on
        a lock upgrade (the classic SQLITE_BUSY deadlock between two writers)."""
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(self.url, f"cannot start a write ({exc})") from None
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(self.url, f"commit failed ({exc})") from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(self.url, f"query failed ({exc})") from None

    # Store ---------------------------------------------------------------------------------

    def setup(self) -> None:
        conn = self.connection()
        try:
            conn.executescript(SCHEMA)
            for collection in self.collections:
                conn.executescript(RECORD_SCHEMA.format(name=collection.name))
                for field in INDEXED_RECORD_FIELDS:
                    if field in collection.record_type.model_fields:
                        conn.execute(f"CREATE INDEX IF NOT EXISTS records_{collection.name}_{field} "
                                     f"ON records_{collection.name} ({json_value(field)}, id)")
        except sqlite3.Error as exc:
            raise StoreUnavailable(self.url, f"cannot create the schema in {self.path} ({exc})") from None

    def ping(self) -> None:
        self.query("SELECT 1")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def append_events(self, events: Sequence[Event]) -> BulkResult:
        rows: list[tuple[str, str, int, bytes]] = []
        rejected: list[Rejection] = []
        for event in events:
            try:
                doc = orjson.dumps(event.fields)
            except TypeError as exc:
                rejected.append(Rejection(event.id, f"not serializable as JSON: {exc}"))
                continue
            rows.append((event.id, event.tenant, to_micros(event.timestamp), doc.decode()))
        if not rows:
            return BulkResult(rejected=tuple(rejected))
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO events (id, tenant, ts, doc) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", rows
            )
            stored = conn.total_changes - before
        return BulkResult(stored=stored, duplicates=len(rows) - stored, rejected=tuple(rejected))

    def _event_where(self, scope: Scope, query: EventQuery) -> _Where:
        where = _Where()
        where.add("ts >= ? AND ts < ?", to_micros(query.time.start), to_micros(query.time.end))
        where.scope(scope)
        for field, values in query.filters.items():
            where.any_equal(field, values)
        return where

    def search_events(self, scope: Scope, query: EventQuery, *, limit: int = 100, cursor: str | None = None,
                      descending: bool = False) -> Page[Event]:
        check_limit(limit)
        where = self._event_where(scope, query)
        if cursor is not None:
            ts, event_id = decode_cursor(cursor, "@timestamp", descending)
            op = "<" if descending else ">"
            where.add(f"(ts {op} ? OR (ts = ? AND id {op} ?))", ts, ts, event_id)
        order = "DESC" if descending else "ASC"
        rows = self.query(
            f"SELECT ts, id, doc FROM events WHERE {where.sql()} ORDER BY ts {order}, id {order} LIMIT ?",
            [*where.params, limit + 1],
        )
        events = [Event.from_document(orjson.loads(doc)) for _, _, doc in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            ts, event_id, _ = rows[limit - 1]
            next_cursor = encode_cursor("@timestamp", descending, [ts, event_id])
        return Page(events, next_cursor)

    def count_events(self, scope: Scope, query: EventQuery) -> int:
        where = self._event_where(scope, query)
        return self.query(f"SELECT COUNT(*) FROM events WHERE {where.sql()}", where.params)[0][0]

    def aggregate_events(self, scope: Scope, query: EventQuery, aggregation: Terms | DateHistogram) -> list[Bucket]:
        where = self._event_where(scope, query)
        if isinstance(aggregation, Terms):
            rows = self.query(
                f"SELECT j.value AS key, COUNT(DISTINCT events.rowid) AS n FROM events, json_each(events.doc, ?) j "
                f"WHERE {where.sql()} AND j.type NOT IN ('object', 'array') "
                f"GROUP BY j.value ORDER BY n DESC, key ASC LIMIT ?",
                [json_path(aggregation.field), *where.params, aggregation.size],
            )
            return [Bucket(key, count) for key, count in rows]
        width = aggregation.interval // timedelta(microseconds=1)
        rows = self.query(
            f"SELECT (ts / ?) * ? AS bucket, COUNT(*) FROM events WHERE {where.sql()} GROUP BY bucket ORDER BY bucket",
            [width, width, *where.params],
        )
        return [Bucket(from_micros(key), count) for key, count in rows]

    def apply_retention(self, days: int, now: datetime | None = None) -> RetentionResult:
        cutoff = retention_cutoff(days, now or datetime.now(UTC))
        limit = to_micros(cutoff)
        day_numbers = [row[0] for row in self.query("SELECT DISTINCT ts / ? FROM events WHERE ts < ? ORDER BY 1",
                                                    [MICROS_PER_DAY, limit])]
        while True:  # in chunks, so a collector is never locked out for long
            with self.transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE ts < ? LIMIT ?)",
                    [limit, RETENTION_CHUNK],
                ).rowcount
            if deleted < RETENTION_CHUNK:
                break
        days_removed = tuple(from_micros(day * MICROS_PER_DAY).date().isoformat() for day in day_numbers)
        return RetentionResult(cutoff=cutoff, removed=days_removed)


class SqliteRecords(RecordCollection[R]):
    def __init__(self, store: SqliteStore, record_type: type[R]) -> None:
        super().__init__(record_type)
        self.store = store
        self.table = f"records_{self.name}"
        self._scalars = frozenset(name for name, info in record_type.model_fields.items()
                                  if typing.get_origin(info.annotation) is not list)

    def _load(self, doc: str) -> R:
        return self.record_type.model_validate_json(doc)

    def create(self, scope: Scope, record: R) -> Versioned[R]:
        self.check_tenant(scope, record)
        try:
            with self.store.transaction() as conn:
                conn.execute(f"INSERT INTO {self.table} (id, tenant, version, doc) VALUES (?, ?, 1, ?)",
                             (record.id, record.tenant, record.model_dump_json()))
        except sqlite3.IntegrityError:
            raise AlreadyExists(self.name, record.id) from None
        return Versioned(record, "1")

    def create_many(self, scope: Scope, records: Sequence[R]) -> int:
        for record in records:
            self.check_tenant(scope, record)
        with self.store.transaction() as conn:
            before = conn.total_changes
            conn.executemany(f"INSERT INTO {self.table} (id, tenant, version, doc) VALUES (?, ?, 1, ?) "
                             "ON CONFLICT (id) DO NOTHING",
                             [(r.id, r.tenant, r.model_dump_json()) for r in records])
            return conn.total_changes - before

    def get(self, scope: Scope, record_id: str) -> Versioned[R]:
        rows = self.store.query(f"SELECT tenant, version, doc FROM {self.table} WHERE id = ?", [record_id])
        if not rows or not scope.allows(rows[0][0]):
            raise NotFound(self.name, record_id)
        _, version, doc = rows[0]
        return Versioned(self._load(doc), str(version))

    def update(self, scope: Scope, record: R, expected_version: str) -> Versioned[R]:
        self.check_tenant(scope, record)
        with self.store.transaction() as conn:
            row = conn.execute(f"SELECT tenant, version FROM {self.table} WHERE id = ?", [record.id]).fetchone()
            if row is None or not scope.allows(row[0]):
                raise NotFound(self.name, record.id)
            tenant, version = row
            if tenant != record.tenant:
                raise StoreError(self.store.url, f"{self.name} record {record.id!r} cannot move to another tenant")
            if str(version) != expected_version:
                raise VersionConflict(self.name, record.id, expected_version)
            conn.execute(f"UPDATE {self.table} SET version = ?, doc = ? WHERE id = ?",
                         (version + 1, record.model_dump_json(), record.id))
        return Versioned(record, str(version + 1))

    def _where(self, scope: Scope, query: RecordQuery, *, sorted_: bool = True) -> _Where:
        self.check_query(query, sorted_=sorted_)
        where = _Where()
        where.scope(scope)
        for field, values in query.filters.items():
            where.any_equal(field, values, scalar=field in self._scalars)
        if query.text is not None and self.record_type.text_field is not None:
            where.add("instr(lower(json_extract(doc, ?)), ?) > 0", json_path(self.record_type.text_field),
                      query.text.lower())
        if query.time is not None and query.time_field is not None:
            time_value = json_value(query.time_field)
            where.add(f"{time_value} >= ? AND {time_value} < ?", format_timestamp(query.time.start),
                      format_timestamp(query.time.end))
        return where

    def list(self, scope: Scope, query: RecordQuery) -> Page[Versioned[R]]:
        where = self._where(scope, query)
        sort_key = json_value(query.sort)
        if query.cursor is not None:
            after_key, after_id = decode_cursor(query.cursor, query.sort, query.descending)
            op = "<" if query.descending else ">"
            where.add(f"({sort_key} {op} ? OR ({sort_key} = ? AND id {op} ?))", after_key, after_key, after_id)
        order = "DESC" if query.descending else "ASC"
        rows = self.store.query(
            f"SELECT {sort_key} AS sort_key, id, version, doc FROM {self.table} WHERE {where.sql()} "
            f"ORDER BY {sort_key} {order}, id {order} LIMIT ?",
            [*where.params, query.limit + 1],
        )
        items = [Versioned(self._load(doc), str(version)) for _, _, version, doc in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            sort_value, record_id, _, _ = rows[query.limit - 1]
            next_cursor = encode_cursor(query.sort, query.descending, [sort_value, record_id])
        return Page(items, next_cursor)

    def count(self, scope: Scope, query: RecordQuery) -> int:
        where = self._where(scope, query, sorted_=False)
        return self.store.query(f"SELECT COUNT(*) FROM {self.table} WHERE {where.sql()}", where.params)[0][0]

    def count_by(self, scope: Scope, query: RecordQuery, field: str, *, size: int = 100) -> list[Bucket]:
        where = self._where(scope, query, sorted_=False)
        # json_each yields a list's elements, or a scalar once: one query for both kinds of field.
        rows = self.store.query(
            f"SELECT value, COUNT(*) AS n FROM {self.table}, json_each({self.table}.doc, ?) "
            f"WHERE {where.sql()} AND value IS NOT NULL GROUP BY value ORDER BY n DESC, value ASC LIMIT ?",
            [json_path(self.check_field(field)), *where.params, size],
        )
        return [Bucket(key, count) for key, count in rows]


__all__ = ["Record", "SqliteRecords", "SqliteStore"]
