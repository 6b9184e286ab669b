"""The embedded store: one SQLite file, zero setup, for an agency that runs civicsoc on one machine.

WAL mode lets the API and a collector (separate processes) read and write at once; every write is
one transaction, committed with ``synchronous=FULL`` by default, so what ``append_events`` returns
as stored survives a killed process and a power cut. Documents are kept as JSON and queried with
SQLite's JSON functions; the columns that every query needs (id, tenant, time, version) are real
columns with indices.

Records have expression indices on the fields lists sort and filter by, each also led by ``tenant``
(and by ``tenant, status`` where a record has one) so that one tenant's page is read in order from the
index, never sorted from the whole table. The elements of list fields (an incident's techniques, hosts,
users ...) are kept in a side table ``terms_<collection>`` (field, value, tenant, id) that triggers
maintain in the same transaction as every insert, update and delete, whoever writes the file.
``setup`` migrates older files (creates what is missing, fills the side tables) and refreshes the
planner's statistics where they are missing or stale.
"""

from __future__ import annotations

import sqlite3
import threading
import typing
import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
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
GET_MANY_CHUNK = 500
"""Ids per ``IN (...)`` of ``get_many``: well under SQLite's limit on bound parameters."""
EVENT_ID_FIELD = "event.id"
"""An event's id inside its document, equal to the ``id`` column."""

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

TERMS_SCHEMA = """CREATE TABLE {terms} (
    field TEXT NOT NULL,
    value NOT NULL,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (field, value, tenant, id)
) WITHOUT ROWID"""
"""One row per element of a record's list fields. ``value`` has no type, so a list's numbers stay numbers
and its strings strings: a filter compares them exactly as ``json_each`` does."""


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

TENANT_SORT_FIELDS = ("created_at", "updated_at", "timestamp", "first_seen", "last_seen", "seq")
"""Time fields lists are sorted by. Each gets a (tenant, field, id) index, and a (tenant, status, field, id)
one where the record has a status: a tenant's queue (filtered by status or not) is then read in order
from an index and stops after one page, instead of sorting every record of the tenant."""

UNTERMED_LIST_FIELDS = frozenset({"alert_ids", "event_ids"})
"""List fields left out of the side table: long id lists, looked up from the other side (an alert's
``incident_id``), whose term rows would outnumber all the others. Filters on them still work (json_each)."""

DRIVE_LIMIT = 256
"""A list-field filter matching fewer records than this drives the query (look up each match, sort them);
one matching more is checked while the sort index is walked in order. SQLite's statistics know only the
average number of records per value, not this value's (no STAT4 in the stock build), so ``list`` counts
up to this many matches itself (at most ``DRIVE_LIMIT`` index steps). Driving costs a record read per match;
walking costs an index step per record passed, about ``page size * records / matches`` of them when the
matches are spread over time, and never more than the tenant's records, read from the index alone."""

STATS_GROWTH = 2.0
"""Setup re-analyzes a table that grew more than this factor since its statistics were gathered."""


def _list_elements(fields: Sequence[str], record: str, *, scan: bool = False) -> str:
    """SQL selecting ``(field, value, tenant, id)`` for every element of the list ``fields`` of ``record``:
    a trigger's ``NEW`` or ``OLD`` row, or (``scan``) every row of the table named ``record``."""
    names = ", ".join(f"'{check_field_name(name)}'" for name in fields)
    source = f"{record}, " if scan else ""
    return (f"SELECT f.key, j.value, {record}.tenant, {record}.id FROM {source}json_each({record}.doc) AS f, "
            f"json_each(f.value) AS j "
            f"WHERE f.key IN ({names}) AND f.type = 'array' AND j.type NOT IN ('object', 'array', 'null')")


def terms_definition(table: str, terms: str, fields: Sequence[str]) -> dict[str, str]:
    """The side table of ``table``'s list ``fields`` and the triggers that keep it equal to the documents,
    by name, exactly as ``sqlite_master`` keeps them (so setup can tell whether they changed).

    Triggers rather than code in ``create``/``update``: they run inside the writing statement's transaction,
    for every writer of the file (``create_many`` included, and a process of another civicsoc version)."""
    new = _list_elements(fields, "NEW")
    old = _list_elements(fields, "OLD")
    insert_new = f"INSERT OR IGNORE INTO {terms} (field, value, tenant, id) {new};"
    delete_old = f"DELETE FROM {terms} WHERE (field, value, tenant, id) IN ({old});"
    return {
        terms: TERMS_SCHEMA.format(terms=terms),
        f"{terms}_insert": f"CREATE TRIGGER {terms}_insert AFTER INSERT ON {table} BEGIN {insert_new} END",
        f"{terms}_update": f"CREATE TRIGGER {terms}_update AFTER UPDATE OF doc, tenant ON {table} "
                           f"BEGIN {delete_old} {insert_new} END",
        f"{terms}_delete": f"CREATE TRIGGER {terms}_delete AFTER DELETE ON {table} BEGIN {delete_old} END",
    }


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` is relative to the working directory, ``sqlite:////abs.db`` absolute
    (the SQLAlchemy convention)."""
    if not url.startswith("sqlite:///"):
        raise StoreError(url, "expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    rest = url[len("sqlite:///"):]
    if not rest:
        raise StoreError(url, "the URL names no database file")
    return Path(rest)


class _ThreadToken:
    """Lives in a thread's locals only so that its finalizer tells when the thread has ended."""


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
        self._idle: list[sqlite3.Connection] = []
        """Connections of threads that ended, for the next new thread."""
        self._lock = threading.Lock()
        self._open_collections(SqliteRecords)

    # connection handling -------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """One connection per thread at a time: a connection must not be used by two threads at once.

        A thread's connection goes back to the store when the thread ends, for the next new thread: the
        API's thread pool (anyio) retires threads idle for 10 s and starts new ones, and a connection per
        new thread would mean a cold page cache and statement cache each time, and connections piling up
        until ``close``.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
                with self._lock:
                    self._connections.append(conn)
            self._local.conn = conn
            # The thread's locals go when the thread ends, and with them this token, whose finalizer
            # hands the connection back.
            self._local.token = token = _ThreadToken()
            weakref.finalize(token, self._release, conn)
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if any(conn is managed for managed in self._connections):  # not closed by ``close`` meanwhile
                self._idle.append(conn)

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
        """Create or migrate the schema, then refresh missing or stale planner statistics.

        On a file of an older version this adds the indices and side tables it lacks (a one-off that
        reads every record; minutes on millions); later calls find everything in place and cost a few
        milliseconds."""
        conn = self.connection()
        try:
            conn.executescript(SCHEMA)
            for collection in self._record_collections():
                conn.executescript(RECORD_SCHEMA.format(name=collection.name))
                for name, columns in collection.index_definitions().items():
                    conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {collection.table} ({columns})")
                self._migrate_terms(conn, collection)
            self._refresh_statistics(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(self.url, f"cannot create the schema in {self.path} ({exc})") from None

    def _record_collections(self) -> list[SqliteRecords[Any]]:
        return [typing.cast(SqliteRecords[Any], collection) for collection in self.collections]

    def _migrate_terms(self, conn: sqlite3.Connection, collection: SqliteRecords[Any]) -> None:
        """(Re)build a side table and its triggers unless they exist exactly as this version defines them."""
        if not collection.term_fields:
            return
        wanted = terms_definition(collection.table, collection.terms, collection.term_fields)

        def current() -> dict[str, str]:
            marks = ",".join("?" * len(wanted))
            return dict(conn.execute(f"SELECT name, sql FROM sqlite_master WHERE name IN ({marks})", list(wanted)))

        if current() == wanted:
            return
        with self.transaction():
            if current() == wanted:  # another process migrated it while we waited for the write lock
                return
            for name in wanted:
                if name != collection.terms:
                    conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            conn.execute(f"DROP TABLE IF EXISTS {collection.terms}")
            for sql in wanted.values():
                conn.execute(sql)
            # In key order: appending to the b-tree is several times faster than inserting all over it.
            rows = _list_elements(collection.term_fields, collection.table, scan=True)
            conn.execute(f"INSERT OR IGNORE INTO {collection.terms} (field, value, tenant, id) {rows} "
                         "ORDER BY 1, 2, 3, 4")

    def _refresh_statistics(self, conn: sqlite3.Connection) -> None:
        """ANALYZE the tables whose statistics are missing (new tables and indices) or stale (the table
        grew ``STATS_GROWTH`` times since): without them SQLite guesses how selective a tenant or a
        status is, and guesses wrong on big files. Counting rows is avoided: ``max(rowid)`` is one seek."""
        has_stats = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone() is not None
        analyzed: dict[str, set[str]] = defaultdict(set)
        analyzed_rows: dict[str, int] = {}
        if has_stats:
            for table, index, stat in conn.execute("SELECT tbl, idx, stat FROM sqlite_stat1"):
                analyzed[table].add(index)
                analyzed_rows[table] = int(str(stat).split()[0])
        indices: dict[str, set[str]] = defaultdict(set)
        for table, index in conn.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'"):
            indices[table].add(index)
        stale: list[str] = []
        for collection in [None, *self._record_collections()]:
            table = "events" if collection is None else collection.table
            size = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
            grown = size > STATS_GROWTH * max(analyzed_rows.get(table, 0), 100)
            if grown or not indices[table] <= analyzed[table]:
                stale.append(table)
                if collection is not None and collection.term_fields:
                    stale.append(collection.terms)
            elif collection is not None and collection.term_fields and collection.terms not in analyzed:
                stale.append(collection.terms)
        for table in stale:
            conn.execute(f"ANALYZE {table}")

    def ping(self) -> None:
        self.query("SELECT 1")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._idle.clear()
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
            if field == EVENT_ID_FIELD and all(isinstance(value, str) for value in values):
                # The id column holds event.id (an Event's invariant): its unique index finds each event,
                # where the JSON path would parse every document of the time range.
                where.add(f"id IN ({','.join('?' * len(values))})", *values)
            else:
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
        self.terms = f"terms_{self.name}"
        fields = record_type.model_fields
        self._scalars = frozenset(name for name, info in fields.items()
                                  if typing.get_origin(info.annotation) is not list)
        self.term_fields: tuple[str, ...] = tuple(sorted(
            name for name, info in fields.items()
            if typing.get_origin(info.annotation) is list and name not in record_type.unindexed
            and name not in UNTERMED_LIST_FIELDS))
        """The list fields whose elements the side table ``terms`` holds."""

    def index_definitions(self) -> dict[str, str]:
        """Index name → indexed columns, for the fields of ``INDEXED_RECORD_FIELDS`` this record type has."""
        fields = self.record_type.model_fields
        definitions = {f"{self.table}_{field}": f"{json_value(field)}, id"
                       for field in INDEXED_RECORD_FIELDS if field in fields}
        for field in TENANT_SORT_FIELDS:
            if field in fields:
                definitions[f"{self.table}_tenant_{field}"] = f"tenant, {json_value(field)}, id"
                if "status" in fields:
                    definitions[f"{self.table}_tenant_status_{field}"] = \
                        f"tenant, {json_value('status')}, {json_value(field)}, id"
        return definitions

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
            # rowcount, not total_changes: the latter also counts the side-table rows the triggers write.
            return conn.executemany(f"INSERT INTO {self.table} (id, tenant, version, doc) VALUES (?, ?, 1, ?) "
                                    "ON CONFLICT (id) DO NOTHING",
                                    [(r.id, r.tenant, r.model_dump_json()) for r in records]).rowcount

    def get(self, scope: Scope, record_id: str) -> Versioned[R]:
        rows = self.store.query(f"SELECT tenant, version, doc FROM {self.table} WHERE id = ?", [record_id])
        if not rows or not scope.allows(rows[0][0]):
            raise NotFound(self.name, record_id)
        _, version, doc = rows[0]
        return Versioned(self._load(doc), str(version))

    def get_many(self, scope: Scope, record_ids: Iterable[str]) -> list[Versioned[R]]:
        wanted = list(dict.fromkeys(record_ids))
        found: dict[str, Versioned[R]] = {}
        for start in range(0, len(wanted), GET_MANY_CHUNK):
            chunk = wanted[start:start + GET_MANY_CHUNK]
            where = _Where()
            where.add(f"id IN ({','.join('?' * len(chunk))})", *chunk)
            where.scope(scope)
            for record_id, version, doc in self.store.query(
                    f"SELECT id, version, doc FROM {self.table} WHERE {where.sql()}", where.params):
                found[record_id] = Versioned(self._load(doc), str(version))
        return [found[record_id] for record_id in wanted if record_id in found]

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

    def _term_ids(self, scope: Scope, field: str, values: Sequence[Any], *,
                  column: str = "id") -> tuple[str, list[Any]]:
        """``SELECT <column> FROM terms ...`` for the records whose list ``field`` holds one of ``values``,
        and its parameters."""
        where = _Where()
        where.add(f"field = ? AND value IN ({','.join('?' * len(values))})", field, *values)
        where.scope(scope)
        return f"SELECT {column} FROM {self.terms} WHERE {where.sql()}", where.params

    def _where(self, scope: Scope, query: RecordQuery, *, sorted_: bool = True, driver: str | None = None,
               joined: bool = False) -> _Where:
        """The conditions of ``query``. A list-field filter is a lookup in the side table: the ``driver`` (see
        ``_driving_filter``) one SQLite may start from, or that ``list`` joins (``joined``: left out here);
        the others are membership tests only (unary ``+`` keeps SQLite from starting from them), so that it
        reads a sort or time index instead of every record of a common value."""
        self.check_query(query, sorted_=sorted_)
        where = _Where()
        where.scope(scope)
        for field, values in query.filters.items():
            if field in self.term_fields:
                if field == driver and joined:
                    continue
                ids, params = self._term_ids(scope, field, values)
                where.add(f"{'' if field == driver else '+'}{self.table}.id IN ({ids})", *params)
            else:
                where.any_equal(field, values, scalar=field in self._scalars)
        if query.text is not None and self.record_type.text_field is not None:
            where.add("instr(lower(json_extract(doc, ?)), ?) > 0", json_path(self.record_type.text_field),
                      query.text.lower())
        if query.time is not None and query.time_field is not None:
            time_value = json_value(query.time_field)
            where.add(f"{time_value} >= ? AND {time_value} < ?", format_timestamp(query.time.start),
                      format_timestamp(query.time.end))
        return where

    def _driving_filter(self, scope: Scope, query: RecordQuery) -> str | None:
        """The list-field filter matching fewest records, if fewer than ``DRIVE_LIMIT`` (see there)."""
        best, fewest = None, DRIVE_LIMIT
        for field, values in query.filters.items():
            if field in self.term_fields:
                ids, params = self._term_ids(scope, field, values, column="1")
                matches = self.store.query(f"SELECT count(*) FROM ({ids} LIMIT ?)", [*params, DRIVE_LIMIT])[0][0]
                if matches < fewest:
                    best, fewest = field, matches
        return best

    def list(self, scope: Scope, query: RecordQuery) -> Page[Versioned[R]]:
        self.check_query(query)
        driver = self._driving_filter(scope, query)
        where = self._where(scope, query, driver=driver, joined=True)
        source, source_params = self.table, []
        if driver is not None:
            # CROSS JOIN fixes the order: the few matching ids first, then each record by its primary key.
            ids, source_params = self._term_ids(scope, driver, query.filters[driver], column="DISTINCT id AS term_id")
            source = f"({ids}) AS driver CROSS JOIN {self.table} ON {self.table}.id = driver.term_id"
        sort_key = json_value(query.sort)
        if query.cursor is not None:
            after_key, after_id = decode_cursor(query.cursor, query.sort, query.descending)
            op = "<" if query.descending else ">"
            # The first condition is implied by the second; it is there as a range the sort index can seek to.
            where.add(f"{sort_key} {op}= ?", after_key)
            where.add(f"({sort_key} {op} ? OR ({sort_key} = ? AND id {op} ?))", after_key, after_key, after_id)
        order = "DESC" if query.descending else "ASC"
        rows = self.store.query(
            f"SELECT {sort_key} AS sort_key, id, version, doc FROM {source} WHERE {where.sql()} "
            f"ORDER BY {sort_key} {order}, id {order} LIMIT ?",
            [*source_params, *where.params, query.limit + 1],
        )
        items = [Versioned(self._load(doc), str(version)) for _, _, version, doc in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            sort_value, record_id, _, _ = rows[query.limit - 1]
            next_cursor = encode_cursor(query.sort, query.descending, [sort_value, record_id])
        return Page(items, next_cursor)

    def count(self, scope: Scope, query: RecordQuery) -> int:
        self.check_query(query, sorted_=False)
        where = self._where(scope, query, sorted_=False, driver=self._driving_filter(scope, query))
        return self.store.query(f"SELECT COUNT(*) FROM {self.table} WHERE {where.sql()}", where.params)[0][0]

    def count_by(self, scope: Scope, query: RecordQuery, field: str, *, size: int = 100) -> list[Bucket]:
        self.check_query(query, sorted_=False)
        where = self._where(scope, query, sorted_=False, driver=self._driving_filter(scope, query))
        # json_each yields a list's elements, or a scalar once: one query for both kinds of field.
        rows = self.store.query(
            f"SELECT value, COUNT(*) AS n FROM {self.table}, json_each({self.table}.doc, ?) "
            f"WHERE {where.sql()} AND value IS NOT NULL GROUP BY value ORDER BY n DESC, value ASC LIMIT ?",
            [json_path(self.check_field(field)), *where.params, size],
        )
        return [Bucket(key, count) for key, count in rows]


__all__ = ["Record", "SqliteRecords", "SqliteStore"]
