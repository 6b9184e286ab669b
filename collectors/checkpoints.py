"""Committed read positions, one per source identity, kept in a small JSON file.

A position is committed only after the store acknowledged everything before it, so after a crash
a source resumes from its last committed position and re-reads at most one batch (whose events
the store recognizes by id). The file is replaced atomically (write, fsync, rename), so a crash
mid-write leaves the previous commit intact.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from civicsoc.errors import CivicsocError
from collectors.base import Checkpoint


class CheckpointStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._positions: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise CivicsocError(f"checkpoint file {self.path}: unreadable ({exc}); move it aside to re-read "
                                "every source from the start (the store drops the duplicates)") from None
        if not isinstance(data, dict):
            raise CivicsocError(f"checkpoint file {self.path}: expected a JSON object")
        return data

    def offset(self, source: str) -> int:
        """The committed position of ``source``, 0 if it was never committed."""
        with self._lock:
            entry = self._positions.get(source)
            return int(entry["offset"]) if entry else 0

    def commit(self, checkpoints: Iterable[Checkpoint], **details: str) -> None:
        """Record the positions (the furthest per source wins) and persist them durably."""
        now = datetime.now(UTC).isoformat()
        with self._lock:
            changed = False
            for checkpoint in checkpoints:
                entry = self._positions.get(checkpoint.source)
                if entry is None or checkpoint.offset > int(entry["offset"]):
                    self._positions[checkpoint.source] = {"offset": checkpoint.offset, "committed": now, **details}
                    changed = True
            if changed:
                self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as handle:
            handle.write(orjson.dumps(self._positions, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {source: int(entry["offset"]) for source, entry in self._positions.items()}
