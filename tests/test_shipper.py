"""The shipper against real stores: at least once, bounded, nothing dropped silently."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import orjson
import pytest

from bench.sample_events import otrf_events
from civicsoc.store import EventQuery, Scope, Store
from civicsoc.store.sqlite import SqliteStore
from collectors.base import Checkpoint, DeadLetter, Item
from collectors.shipper import Shipper, ShipperStopped
from tests.test_store_conformance import EVERYTHING


def file_items(count: int, source: str = "file:abc") -> list[Item]:
    """Events as a file source yields them: each with the checkpoint just after it."""
    return [Item(event, Checkpoint(source, number + 1)) for number, event in enumerate(otrf_events("agency-a", count))]


def stored_count(store: Store) -> int:
    store.refresh()
    return store.count_events(Scope.all(), EventQuery(EVERYTHING))


def test_ships_everything_and_commits_checkpoints_after_the_ack(store: Store, tmp_path: Path) -> None:
    items = file_items(2500)
    with Shipper(store, state_dir=tmp_path, batch_size=400, flush_interval=0.05) as shipper:
        for item in items:
            shipper.put(item, "security-log")
        assert shipper.wait_idle(timeout=60)
        assert shipper.committed_offset("file:abc") == 2500
        assert shipper.metrics["security-log"].shipped == 2500
        assert shipper.stored == 2500
    assert stored_count(store) == 2500
    # the same items again: acknowledged as duplicates, nothing new stored
    with Shipper(store, state_dir=tmp_path, batch_size=400, flush_interval=0.05) as again:
        for item in items:
            again.put(item, "security-log")
        assert again.wait_idle(timeout=60)
        assert (again.stored, again.duplicates) == (0, 2500)
    assert stored_count(store) == 2500


def test_dead_letters_are_written_counted_and_do_not_hold_back_checkpoints(sqlite_store: Store,
                                                                          tmp_path: Path) -> None:
    items = file_items(10)
    items.insert(5, Item(DeadLetter.of("auth.log:6", "expected a syslog line", b"\xff garbage"),
                         Checkpoint("file:abc", 6)))
    with Shipper(sqlite_store, state_dir=tmp_path, flush_interval=0.05) as shipper:
        for item in items:
            shipper.put(item, "auth")
        assert shipper.wait_idle(timeout=30)
        assert shipper.metrics["auth"].dead_lettered == 1
        assert shipper.committed_offset("file:abc") == 10
    letters = [orjson.loads(line) for line in (tmp_path / "dead-letter.ndjson").read_bytes().splitlines()]
    assert [(x["source"], x["location"], x["reason"]) for x in letters] == [("auth", "auth.log:6",
                                                                            "expected a syslog line")]
    assert letters[0]["raw"] == "\\xff garbage"


def test_store_rejections_go_to_the_dead_letter_file(es_store: Store, tmp_path: Path) -> None:
    good, clash = list(otrf_events("agency-a", 2))
    clash.fields["winlog"]["event_data"] = {"SubjectUserName": {"nested": "object where a keyword was"}}
    good.fields["winlog"]["event_data"]["SubjectUserName"] = "alice"
    with Shipper(es_store, state_dir=tmp_path, flush_interval=0.05) as shipper:
        shipper.put(Item(good, Checkpoint("f", 1)), "evtx")
        shipper.wait_idle(timeout=30)
        shipper.put(Item(clash, Checkpoint("f", 2)), "evtx")
        assert shipper.wait_idle(timeout=30)
        assert shipper.metrics["evtx"].rejected == 1
        assert shipper.committed_offset("f") == 2
    (letter,) = [orjson.loads(line) for line in (tmp_path / "dead-letter.ndjson").read_bytes().splitlines()]
    assert "store rejected it" in letter["reason"] and "SubjectUserName" in letter["reason"]
    assert clash.id in letter["location"]


class LockedDatabase:
    """A real outage of the embedded store: another process-like connection holds the write lock."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> LockedDatabase:
        self.connection.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def test_an_outage_holds_checkpoints_applies_backpressure_and_recovers(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store = SqliteStore(f"sqlite:///{db}", busy_timeout=0.05)
    store.setup()
    items = file_items(3000)
    shipper = Shipper(store, state_dir=tmp_path / "state", batch_size=100, queue_size=200, max_batches_in_memory=2,
                      flush_interval=0.05, backoff_initial=0.05, backoff_max=0.2).start()
    produced = 0

    def produce() -> None:
        nonlocal produced
        for item in items:
            shipper.put(item, "file")
            produced += 1

    with LockedDatabase(db):
        producer = threading.Thread(target=produce)
        producer.start()
        time.sleep(1.5)
        stalled_at = produced
        assert stalled_at < 1000, "put() must block while the store is down, not buffer without bound"
        assert shipper.committed_offset("file:abc") == 0
        assert shipper.store_errors > 0
        assert "database is locked" in (shipper.last_store_error or "")
    producer.join(timeout=60)
    assert shipper.wait_idle(timeout=60)
    assert shipper.committed_offset("file:abc") == 3000
    shipper.stop()
    assert stored_count(store) == 3000


def test_push_items_are_spooled_and_survive_a_stop_without_delivery(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store = SqliteStore(f"sqlite:///{db}", busy_timeout=0.05)
    store.setup()
    pushed = [Item(event) for event in otrf_events("agency-a", 750)]  # syslog-like: no checkpoint, no replay
    with LockedDatabase(db):
        shipper = Shipper(store, state_dir=tmp_path / "state", batch_size=250, flush_interval=0.05,
                          backoff_initial=0.05).start()
        for item in pushed:
            shipper.put(item, "syslog")
        deadline = time.monotonic() + 10
        while shipper.spool.bytes == 0 or len(shipper.spool.pending()) < 3:
            assert time.monotonic() < deadline, "the batches never reached the spool"
            time.sleep(0.05)
        assert shipper.stop(drain=True, timeout=0.5) is False  # the store is still down
    assert len(list((tmp_path / "state" / "spool").glob("*.ndjson"))) == 3
    assert stored_count(store) == 0
    # next start: the spool is sent first
    with Shipper(store, state_dir=tmp_path / "state", flush_interval=0.05) as restarted:
        assert restarted.wait_idle(timeout=30)
        assert restarted.spool.bytes == 0
    assert stored_count(store) == 750
    assert list((tmp_path / "state" / "spool").glob("*.ndjson")) == []


def test_a_detection_hook_sees_every_batch_before_it_is_stored(sqlite_store: Store, tmp_path: Path) -> None:
    seen: list[int] = []

    def hook(events: object) -> None:
        seen.append(sqlite_store.count_events(Scope.all(), EventQuery(EVERYTHING)))
        seen.append(len(events))  # type: ignore[arg-type]

    with Shipper(sqlite_store, state_dir=tmp_path, batch_size=50, flush_interval=0.05, detection=hook) as shipper:
        for item in file_items(100):
            shipper.put(item, "f")
        assert shipper.wait_idle(timeout=30)
    assert seen == [0, 50, 50, 50]


def test_put_after_stop_is_refused(sqlite_store: Store, tmp_path: Path) -> None:
    shipper = Shipper(sqlite_store, state_dir=tmp_path).start()
    shipper.stop()
    with pytest.raises(ShipperStopped, match="stopped"):
        shipper.put(file_items(1)[0], "f")
