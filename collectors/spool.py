"""The on-disk spool: batches from sources that cannot replay (syslog, live capture) are written
here, fsync'd, before they are sent, and removed only once the store acknowledged them.

A file source needs no spool — its committed offset is its replay log — but a syslog message that
was received and not yet stored exists nowhere else. With the spool, such a message survives a
crash and a store outage: on start, pending segments are sent first, in order.

One segment per batch: ``<sequence>.ndjson``, a header line (source names, checkpoints) and one
ECS document per line. A segment is written to a temporary name and renamed, so it is either whole
or absent.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

from civicsoc.errors import CivicsocError
from civicsoc.event import Event
from collectors.base import Checkpoint


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    size: int


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):  # a crash while writing: that batch was never acknowledged
            leftover.unlink()
        self._lock = threading.Lock()
        self._bytes = sum(path.stat().st_size for path in directory.glob("*.ndjson"))
        existing = sorted(directory.glob("*.ndjson"))
        self._next = int(existing[-1].stem) + 1 if existing else 0

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def pending(self) -> list[Segment]:
        """Segments left by an earlier run, oldest first."""
        return [Segment(path, path.stat().st_size) for path in sorted(self.directory.glob("*.ndjson"))]

    def write(self, events: list[tuple[str, Event]], checkpoints: list[Checkpoint]) -> Segment:
        header = {
            "sources": [source for source, _ in events],
            "checkpoints": [[c.source, c.offset] for c in checkpoints],
        }
        body = b"".join(orjson.dumps(event.fields) + b"\n" for _, event in events)
        data = orjson.dumps(header) + b"\n" + body
        with self._lock:
            sequence = self._next
            self._next += 1
        path = self.directory / f"{sequence:012d}.ndjson"
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        with self._lock:
            self._bytes += len(data)
        return Segment(path, len(data))

    def read(self, segment: Segment) -> tuple[list[tuple[str, Event]], list[Checkpoint]]:
        try:
            with segment.path.open("rb") as handle:
                header = orjson.loads(handle.readline())
                events = [Event.from_document(orjson.loads(line)) for line in handle]
        except (OSError, orjson.JSONDecodeError, KeyError) as exc:
            raise CivicsocError(f"spool segment {segment.path}: unreadable ({exc})") from None
        checkpoints = [Checkpoint(source, offset) for source, offset in header["checkpoints"]]
        return list(zip(header["sources"], events, strict=True)), checkpoints

    def remove(self, segment: Segment) -> None:
        segment.path.unlink(missing_ok=True)
        with self._lock:
            self._bytes -= segment.size
