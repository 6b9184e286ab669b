"""What only the embedded store has to prove: durability and several processes on one file."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.sample_events import otrf_events
from civicsoc.errors import StoreError, StoreUnavailable
from civicsoc.store import EventQuery, RecordQuery, Scope, TimeRange
from civicsoc.store.sqlite import SqliteStore, path_from_url
from tests.test_store_conformance import EVERYTHING

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
