"""The dead-letter file: every record that could not become a stored event, with why and where.

One JSON object per line: ``time``, ``source`` (the collector's name for the source), ``location``
(file and line or record), ``reason`` and ``raw``. Nothing is ever dropped silently: a record is
either stored or written here, and both are counted.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson

from collectors.base import DeadLetter


class DeadLetterFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle = None
        self.written = 0

    def write(self, letters: list[tuple[str, DeadLetter]]) -> None:
        """Append ``(source name, letter)`` pairs and fsync: once this returns they are on disk."""
        if not letters:
            return
        now = datetime.now(UTC).isoformat()
        lines = b"".join(
            orjson.dumps({"time": now, "source": source, "location": letter.location, "reason": letter.reason,
                          "raw": letter.raw}) + b"\n"
            for source, letter in letters
        )
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("ab")
            self._handle.write(lines)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.written += len(letters)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
