"""One-shot import of files (``civicsoc ingest``): detect each file's kind, read it, ship it, report.

Re-running on the same files adds nothing: every event's id comes from its source and position,
and the store acknowledges a known id as a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from civicsoc.errors import CivicsocError
from civicsoc.store import Store
from collectors.base import CollectorContext
from collectors.shipper import DetectionHook, Shipper
from collectors.sources import FileKind, FileReport, read_files

Progress = Callable[[Path, int], None]
"""Called as files are read: (the file, events read from it so far)."""


@dataclass
class IngestSummary:
    files: int = 0
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Files inside given folders that are of no known kind: (path, why)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Files that could not be read at all: (path, error)."""
    dead_letter_file: str | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"ingested {self.events} events from {self.files} files in {self.seconds:.1f} s "
                f"({self.rate:.0f} events/s); {self.alerts} alerts; {self.dead_lettered} dead-lettered")

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "rate": round(self.rate, 1)}


def ingest_files(
    paths: list[Path],
    store: Store,
    context: CollectorContext,
    *,
    state_dir: Path,
    kind: FileKind | None = None,
    detection: DetectionHook | None = None,
    alert_count: Callable[[], int] = lambda: 0,
    progress: Progress | None = None,
) -> IngestSummary:
    summary = IngestSummary()
    report = FileReport()
    started = time.perf_counter()
    shipper = Shipper(store, state_dir=state_dir, detection=detection).start()
    try:
        for path, item in read_files(paths, context, report, kind=kind, progress=progress):
            shipper.put(item, str(path))
    finally:
        delivered = shipper.stop(drain=True)
    if not delivered:
        raise CivicsocError(f"the store did not take every event ({shipper.last_store_error}); "
                            "run the same command again: what was stored is skipped")
    summary.files, summary.events = report.files, report.events
    summary.failed, summary.skipped = report.failed, report.skipped
    summary.stored, summary.duplicates = shipper.stored, shipper.duplicates
    summary.dead_lettered = shipper.dead_letters.written
    if summary.dead_lettered:
        summary.dead_letter_file = str(shipper.dead_letters.path)
    summary.alerts = alert_count()
    summary.seconds = time.perf_counter() - started
    return summary
