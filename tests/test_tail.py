"""Following real log lines through rotation, truncation and restarts: exact counts, no duplicates."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from civicsoc.event import Event
from collectors.base import CollectorContext, DeadLetter, Item
from collectors.ecs.ndjson import parse_ndjson_line
from collectors.tail import INVALID_UTF8_TAG, Tailer, read_file_once

ZEEK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "zeek-sample-logs" / "zeek-json"
CONTEXT = CollectorContext(tenant="agency-a", agent_id="test")


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    """Real Zeek JSON log lines (syslog messages seen on the wire), each ending in a line break."""
    with (ZEEK / "syslog.json").open("rb") as handle:
        collected = [line for line in handle if line.strip()]
    assert len(collected) > 100
    return collected


class Collecting:
    def __init__(self) -> None:
        self.items: list[Item] = []

    def __call__(self, item: Item) -> None:
        self.items.append(item)

    @property
    def events(self) -> list[Event]:
        return [item.value for item in self.items if isinstance(item.value, Event)]

    def originals(self) -> list[str]:
        return [e.fields["event"]["original"] for e in self.events]


def append(path: Path, chunk: list[bytes] | bytes) -> None:
    with path.open("ab") as handle:
        handle.write(b"".join(chunk) if isinstance(chunk, list) else chunk)


def text(lines: list[bytes]) -> list[str]:
    return [line.decode().rstrip("\n") for line in lines]


def test_read_once_maps_every_line(lines: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "syslog.json"
    append(path, lines)
    items = list(read_file_once(path, parse_ndjson_line, CONTEXT))
    events = [i.value for i in items if isinstance(i.value, Event)]
    assert len(events) == len(lines)
    assert items[-1].checkpoint is not None and items[-1].checkpoint.offset == path.stat().st_size
    assert len({e.id for e in events}) == len(events)
    first = events[0].fields
    assert first["log"]["file"]["path"] == str(path)
    assert first["log"]["offset"] == 0
    assert first["event"]["original"] == lines[0].decode().rstrip("\n")
    # ids do not depend on the name: the same content elsewhere is the same events
    copy = tmp_path / "copy.json"
    shutil.copy(path, copy)
    assert [i.value.id for i in read_file_once(copy, parse_ndjson_line, CONTEXT)] == [e.id for e in events]


def test_rename_and_create_rotation_loses_and_repeats_nothing(lines: list[bytes], tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    sink = Collecting()
    tailer = Tailer([str(log)], parse_ndjson_line, CONTEXT)
    append(log, lines[:40])
    tailer.poll(sink)
    append(log, lines[40:50])              # written just before rotation, not yet read
    log.rename(tmp_path / "app.log.1")      # logrotate: rename ...
    append(log, lines[50:80])              # ... and create
    tailer.poll(sink)
    append(log, lines[80:90])
    tailer.poll(sink)
    assert sink.originals() == text(lines[:90])


def test_copytruncate_continues_in_the_copy(lines: list[bytes], tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    sink = Collecting()
    tailer = Tailer([str(tmp_path / "app.log*")], parse_ndjson_line, CONTEXT)
    append(log, lines[:30])
    tailer.poll(sink)
    append(log, lines[30:45])
    shutil.copy(log, tmp_path / "app.log.1")   # logrotate copytruncate: copy ...
    with log.open("r+b") as handle:            # ... then truncate in place
        handle.truncate(0)
    append(log, lines[45:60])
    tailer.poll(sink)
    tailer.poll(sink)
    assert sorted(sink.originals()) == sorted(text(lines[:60]))
    assert len(sink.events) == 60


def test_restart_resumes_from_the_committed_position(lines: list[bytes], tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, lines[:100])
    first = Collecting()
    Tailer([str(log)], parse_ndjson_line, CONTEXT).poll(first)
    committed = {item.checkpoint.source: item.checkpoint.offset for item in first.items[:64] if item.checkpoint}
    append(log, lines[100:120])
    second = Collecting()  # a new process: only the committed positions survive
    Tailer([str(log)], parse_ndjson_line, CONTEXT, committed=lambda identity: committed.get(identity, 0)).poll(second)
    assert second.originals() == text(lines[64:120])
    # what was read twice has the same ids, so the store keeps one copy
    assert {e.id for e in first.events[64:]} <= {e.id for e in second.events}


def test_a_file_appearing_later_is_read_and_a_partial_line_waits(lines: list[bytes], tmp_path: Path) -> None:
    log = tmp_path / "late.log"
    sink = Collecting()
    tailer = Tailer([str(log)], parse_ndjson_line, CONTEXT)
    tailer.poll(sink)
    assert sink.items == []
    append(log, lines[0])
    append(log, lines[1][:20])  # half a line: the writer is mid-write
    tailer.poll(sink)
    assert sink.originals() == text(lines[:1])
    append(log, lines[1][20:])
    tailer.poll(sink)
    assert sink.originals() == text(lines[:2])


def test_bad_lines_become_dead_letters_and_the_rest_flows(lines: list[bytes], tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    huge = b'{"ts": 1, "x": "' + b"A" * (2 << 20) + b'"}\n'
    broken_utf8 = lines[3].replace(b'"kerberos"', b'"kerb\xffros"') if b'"kerberos"' in lines[3] else \
        lines[3][:-2] + b',"bad":"\xff"}\n'
    append(log, [lines[0], b"this is not json\n", huge, b"\n", broken_utf8, lines[4]])
    sink = Collecting()
    tailer = Tailer([str(log)], parse_ndjson_line, CONTEXT, max_line=1 << 20)
    tailer.poll(sink)
    letters = [item.value for item in sink.items if isinstance(item.value, DeadLetter)]
    assert [letter.location for letter in letters] == [f"{log}:2", f"{log}:3", f"{log}:4"]
    assert "expected one JSON object per line" in letters[0].reason
    assert "line longer than 1048576 bytes" in letters[1].reason
    assert len(letters[1].raw) < 70_000
    assert letters[2].reason == "empty line"
    assert len(sink.events) == 3
    assert INVALID_UTF8_TAG in sink.events[1].fields["tags"]
    assert sink.events[2].fields["event"]["original"] == text([lines[4]])[0]


def test_run_follows_until_stopped(lines: list[bytes], tmp_path: Path) -> None:
    log = tmp_path / "live.log"
    append(log, lines[:10])
    sink = Collecting()
    stop = threading.Event()
    tailer = Tailer([str(log)], parse_ndjson_line, CONTEXT, poll_interval=0.05)
    worker = threading.Thread(target=tailer.run, args=(sink, stop))
    worker.start()
    append(log, lines[10:25])
    stop.set()
    worker.join(timeout=10)
    assert sink.originals() == text(lines[:25])
