"""What only the embedded store has to prove: durability and several processes on one file."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import typing
from pathlib import Path

import pytest

from bench.sample_events import otrf_events
from civicsoc.errors import StoreError, StoreUnavailable
from civicsoc.records import RECORD_TYPES, Incident
from civicsoc.store import EventQuery, RecordQuery, Scope, Store, TimeRange
from civicsoc.store.sqlite import (
    INDEXED_RECORD_FIELDS,
    RECORD_SCHEMA,
    SCHEMA,
    SqliteStore,
    json_value,
    path_from_url,
)
from tests.test_store_conformance import EVERYTHING, incident

REPO = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent("""
    import itertools, sys
    from bench.sample_events import otrf_events
    from civicsoc.store.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1])
    store.setup()
    limit = int(sys.argv[2])
    events = otrf_events("agency-a", limit)  # past the data's end it cycles with fresh ids
    acked = 0
    while batch := list(itertools.islice(events, 250)):
        store.append_events(batch)
        acked += len(batch)
        print(acked, flush=True)  # only now is the batch acknowledged
    print("done", flush=True)
""")


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigkill_loses_nothing_acknowledged_and_corrupts_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    writer = run_python(WRITER, url, str(10**7))
    acked = 0
    assert writer.stdout is not None
    for line in writer.stdout:
        if line.startswith("done"):
            break
        acked = int(line.split()[0])
        if acked >= 5000:
            writer.send_signal(signal.SIGKILL)  # mid-stream: the next batch is being written
            break
    writer.wait(timeout=30)
    assert acked >= 5000, writer.stderr.read() if writer.stderr else ""

    with sqlite3.connect(tmp_path / "kill.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SqliteStore(url)
    acknowledged = {e.id for e in otrf_events("agency-a", acked)}
    stored = {row[0] for row in store.query("SELECT id FROM events")}
    assert acknowledged <= stored
    assert len(stored) % 250 == 0  # whole batches only: a batch is one transaction
    store.close()


def test_two_processes_write_the_same_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    setup = SqliteStore(url)
    setup.setup()
    records = textwrap.dedent("""
        import sys
        from datetime import UTC, datetime
        from civicsoc.records import Incident
        from civicsoc.store import Scope
        from civicsoc.store.sqlite import SqliteStore

        store = SqliteStore(sys.argv[1])
        now = datetime(2026, 1, 1, tzinfo=UTC)
        for n in range(200):
            incident = Incident(id=f"i{n}", tenant="agency-a", title="t", severity="high", first_seen=now,
                                last_seen=now)
            version = store.incidents.create(Scope.all(), incident).version
            store.incidents.update(Scope.all(), incident.model_copy(update={"title": "seen"}), version)
        print("ok", flush=True)
    """)
    writer = run_python(WRITER, url, "9554")
    updater = run_python(records, url)
    assert updater.wait(timeout=120) == 0, updater.stderr.read() if updater.stderr else ""
    assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""
    setup.refresh()
    assert setup.count_events(Scope.all(), EventQuery(EVERYTHING)) == 9554
    seen = RecordQuery.where({"title": "seen"})
    assert setup.incidents.count(Scope.all(), seen) == 200
    setup.close()


def test_url_forms() -> None:
    assert path_from_url("sqlite:///data/civicsoc.db") == Path("data/civicsoc.db")
    assert path_from_url("sqlite:////var/lib/civicsoc.db") == Path("/var/lib/civicsoc.db")
    with pytest.raises(StoreError, match="names no database file"):
        path_from_url("sqlite:///")


def test_an_unopenable_file_is_a_one_line_error_naming_the_url(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'sub' / 'civicsoc.db'}"
    with pytest.raises(StoreUnavailable) as caught:
        SqliteStore(url).setup()
    assert str(caught.value).startswith(f"store {url}: cannot open")
    assert "\n" not in str(caught.value)


def test_reads_see_writes_of_another_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    writer, reader = SqliteStore(url), SqliteStore(url)
    writer.setup()
    events = list(otrf_events("agency-a", 100))
    writer.append_events(events)
    window = TimeRange(min(e.timestamp for e in events), max(e.timestamp for e in events))
    # the half-open range leaves out the events at the very last instant
    expected = sum(e.timestamp < window.end for e in events)
    assert reader.count_events(Scope.all(), EventQuery(window)) == expected
    writer.close()
    reader.close()


# schema: indices, the list-field side table, migration of older files, statistics -----------------------


def incidents_for_layout(count: int) -> list[Incident]:
    return [incident(number, hosts=[f"ws{number % 3}", *(["rare-host"] if number % 97 == 5 else [])])
            for number in range(count)]


def expected_terms(records: list[Incident], fields: tuple[str, ...]) -> set[tuple[str, str, str, str]]:
    """What the side table must hold, from the records themselves."""
    return {(field, value, record.tenant, record.id)
            for record in records for field in fields for value in getattr(record, field)}


def stored_terms(store: SqliteStore) -> set[tuple[str, str, str, str]]:
    return set(store.query("SELECT field, value, tenant, id FROM terms_incidents"))


def write_previous_layout(path: Path, records: list[Incident]) -> None:
    """A file as the previous version wrote it: tables and (field, id) indices only, no statistics,
    no tenant-led indices, no side tables."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for record_type in RECORD_TYPES:
        conn.executescript(RECORD_SCHEMA.format(name=record_type.collection))
        for field in INDEXED_RECORD_FIELDS:
            if field in record_type.model_fields:
                conn.execute(f"CREATE INDEX records_{record_type.collection}_{field} "
                             f"ON records_{record_type.collection} ({json_value(field)}, id)")
    conn.executemany("INSERT INTO records_incidents (id, tenant, version, doc) VALUES (?, ?, 1, ?)",
                     [(r.id, r.tenant, r.model_dump_json()) for r in records])
    conn.commit()
    conn.close()


def test_setup_migrates_a_file_of_the_previous_layout(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    records = incidents_for_layout(300)
    write_previous_layout(path, records)
    store = SqliteStore(f"sqlite:///{path}")
    store.setup()
    fields = store.incidents.term_fields  # type: ignore[attr-defined]
    assert {"techniques", "hosts", "users", "tags"} <= set(fields) and "alert_ids" not in fields
    assert stored_terms(store) == expected_terms(records, fields)
    names = {row[0] for row in store.query("SELECT name FROM sqlite_master WHERE tbl_name = 'records_incidents'")}
    assert {"records_incidents_tenant_created_at", "records_incidents_tenant_status_created_at",
            "terms_incidents_insert", "terms_incidents_update", "terms_incidents_delete"} <= names
    analyzed = {row[0] for row in store.query("SELECT DISTINCT tbl FROM sqlite_stat1")}
    assert {"records_incidents", "terms_incidents"} <= analyzed
    rare = RecordQuery.where({"hosts": "rare-host"}, sort="created_at", descending=True)
    assert [item.record.id for item in store.incidents.list(Scope.of("agency-a"), rare).items] == [
        r.id for r in sorted(records, key=lambda r: (r.created_at, r.id), reverse=True) if "rare-host" in r.hosts]
    store.close()


def test_setup_again_changes_nothing_and_analyzes_nothing_big(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    store = SqliteStore(url)
    store.setup()
    store.incidents.create_many(Scope.all(), incidents_for_layout(300))
    store.close()
    first = SqliteStore(url)
    first.setup()  # the incidents were never analyzed: this does it
    first.close()
    again = SqliteStore(url)
    statements: list[str] = []
    again.connection().set_trace_callback(statements.append)
    again.setup()
    changes = [sql for sql in statements if sql.split()[0].upper() in ("INSERT", "DROP", "DELETE", "BEGIN")]
    assert changes == []
    assert not [sql for sql in statements if sql.startswith("ANALYZE") and "incidents" in sql]
    again.close()


def test_the_side_table_follows_every_write(sqlite_store: Store) -> None:
    store = typing.cast(SqliteStore, sqlite_store)
    fields = store.incidents.term_fields  # type: ignore[attr-defined]
    records = incidents_for_layout(20)
    store.incidents.create(Scope.all(), records[0])
    assert store.incidents.create_many(Scope.all(), records) == 19  # the first one is taken already
    assert stored_terms(store) == expected_terms(records, fields)
    current = store.incidents.get(Scope.all(), records[3].id)
    moved = current.record.model_copy(update={"hosts": ["dc01", "dc01"], "techniques": [], "users": ["ana"]})
    store.incidents.update(Scope.all(), moved, current.version)
    records[3] = moved
    assert stored_terms(store) == expected_terms(records, fields)
    with store.transaction() as conn:  # not an API operation, but the table must follow it too
        conn.execute("DELETE FROM records_incidents WHERE id = ?", [records[4].id])
    assert stored_terms(store) == expected_terms(records[:4] + records[5:], fields)


def query_plan(store: SqliteStore, run: typing.Callable[[], object]) -> str:
    """EXPLAIN QUERY PLAN of the last SELECT that ``run`` makes the store execute."""
    statements: list[str] = []
    conn = store.connection()
    conn.set_trace_callback(statements.append)
    try:
        run()
    finally:
        conn.set_trace_callback(None)
    sql = [s for s in statements if s.lstrip().upper().startswith("SELECT")][-1]
    return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))


def test_a_tenant_queue_page_is_read_in_order_from_an_index(sqlite_store: Store) -> None:
    store = typing.cast(SqliteStore, sqlite_store)
    records = [*incidents_for_layout(400), *(incident(n, tenant="agency-b") for n in range(400))]
    store.incidents.create_many(Scope.all(), records)
    store.setup()  # statistics of the filled tables, as a restart would gather them
    scope = Scope.of("agency-a")

    def page(filters: dict[str, str], cursor: bool = False) -> typing.Callable[[], object]:
        query = RecordQuery.where(filters, sort="created_at", descending=True, limit=10)
        if cursor:
            first = store.incidents.list(scope, query)
            query = RecordQuery(**{**query.__dict__, "cursor": first.next_cursor})
        return lambda: store.incidents.list(scope, query)

    queue = query_plan(store, page({"status": "new"}, cursor=True))
    assert "USING INDEX records_incidents_tenant_status_created_at (tenant=? AND <expr>=? AND <expr><?)" in queue
    common = query_plan(store, page({"techniques": "T1110"}))  # 300 matches: walk the index, test membership
    assert "USING INDEX records_incidents_tenant_created_at" in common and "json_each" not in common
    rare = query_plan(store, page({"hosts": "rare-host"}))  # 4 matches: look each up
    assert rare.startswith("CO-ROUTINE driver | SEARCH terms_incidents USING PRIMARY KEY")
    for plan in (queue, common):
        assert "TEMP B-TREE" not in plan


def test_a_thread_that_ends_hands_its_connection_to_the_next(tmp_path: Path) -> None:
    # The API's thread pool retires idle threads and starts new ones: connections must not pile up.
    store = SqliteStore(f"sqlite:///{tmp_path / 'x.db'}")
    store.setup()
    store.incidents.create(Scope.all(), incident(1))
    seen: list[sqlite3.Connection] = []

    def work() -> None:
        seen.append(store.connection())
        assert store.incidents.get(Scope.all(), incident(1).id).record.title == "incident 1"

    for _ in range(5):  # one after another: each finds the one before's connection idle
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert len({id(conn) for conn in seen}) == 1
    assert seen[0] is not store.connection()  # this thread keeps its own

    together = threading.Barrier(3)
    at_once: list[sqlite3.Connection] = []

    def concurrent() -> None:
        at_once.append(store.connection())
        together.wait()  # all three alive at once: three different connections

    threads = [threading.Thread(target=concurrent) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(conn) for conn in at_once}) == 3
    store.close()
    assert store.incidents.count(Scope.all(), RecordQuery()) == 1  # usable again after close: a new connection
    store.close()
