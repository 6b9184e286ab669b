"""The shipper: every source's items go through here into the store, at least once.

Two threads, one bounded pipeline::

    sources ──put()──▶ [queue] ──intake──▶ [batches] ──delivery──▶ store
                         │                   │                        │
                   blocks when full    spooled to disk if      checkpoints committed,
                   (backpressure)      not replayable          spool segment removed
                                                               only after the ack

- Intake groups items into batches (``batch_size`` or ``flush_interval``), writes dead letters at
  once, and writes a batch to the spool if any item in it cannot be replayed (no checkpoint).
- Delivery runs the detection hook, stores the batch, retrying with exponential backoff and
  jitter while the store fails, dead-letters what the store rejects for good, and then commits the
  batch's checkpoints — never before the ack.
- Memory stays bounded: the queue, the number of in-memory batches and the spool size all have
  limits; when one is reached, ``put`` blocks and the sources slow down.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from civicsoc.errors import CivicsocError, StoreError
from civicsoc.event import Event
from civicsoc.store import Store
from collectors.base import Checkpoint, DeadLetter, Item
from collectors.checkpoints import CheckpointStore
from collectors.deadletter import DeadLetterFile
from collectors.spool import Segment, Spool

log = logging.getLogger(__name__)

DetectionHook = Callable[[Sequence[Event]], None]
"""Called with each batch before it is stored (the streaming detection engine plugs in here)."""


@dataclass
class SourceMetrics:
    """Counters of one source, as shown by ``civicsoc collect`` and sent in collector heartbeats."""

    read: int = 0
    shipped: int = 0
    """Events the store acknowledged (new or already stored)."""
    dead_lettered: int = 0
    """Records the source could not parse."""
    rejected: int = 0
    """Events the store refused for good (dead-lettered too)."""
    last_event_time: datetime | None = None
    last_ack: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "shipped": self.shipped,
            "dead_lettered": self.dead_lettered,
            "rejected": self.rejected,
            "last_event_time": self.last_event_time.isoformat() if self.last_event_time else None,
            "last_ack": self.last_ack.isoformat() if self.last_ack else None,
        }


@dataclass
class _Batch:
    events: list[tuple[str, Event]] = field(default_factory=list)
    checkpoints: dict[str, int] = field(default_factory=dict)
    replayable: bool = True
    segment: Segment | None = None
    items: int = 0

    def add(self, source: str, item: Item) -> None:
        self.items += 1
        if isinstance(item.value, Event):
            self.events.append((source, item.value))
        if item.checkpoint is None:
            self.replayable = False
        else:
            current = self.checkpoints.get(item.checkpoint.source, -1)
            self.checkpoints[item.checkpoint.source] = max(current, item.checkpoint.offset)

    def checkpoint_list(self) -> list[Checkpoint]:
        return [Checkpoint(source, offset) for source, offset in self.checkpoints.items()]


class ShipperStopped(CivicsocError):
    """The shipper was stopped or failed; the message says why."""


class Shipper:
    def __init__(
        self,
        store: Store,
        *,
        state_dir: Path,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        queue_size: int = 5000,
        max_batches_in_memory: int = 4,
        spool_max_bytes: int = 1 << 30,
        detection: DetectionHook | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_batches_in_memory = max_batches_in_memory
        self.detection = detection
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.checkpoints = CheckpointStore(state_dir / "checkpoints.json")
        self.dead_letters = DeadLetterFile(state_dir / "dead-letter.ndjson")
        self.spool = Spool(state_dir / "spool", max_bytes=spool_max_bytes)
        self.metrics: dict[str, SourceMetrics] = {}
        self.store_errors = 0
        self.last_store_error: str | None = None
        self.error: BaseException | None = None

        self.stored = 0
        self.duplicates = 0
        self._queue: queue.Queue[tuple[str, Item] | None] = queue.Queue(maxsize=queue_size)
        self._batches: deque[_Batch] = deque(_Batch(segment=segment, replayable=False)
                                             for segment in self.spool.pending())
        self._cond = threading.Condition()
        self._put = 0
        self._done = 0
        self._stopping = False
        self._abandon = False
        self._intake_done = False
        self._threads: list[threading.Thread] = []

    # lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Shipper:
        for target, name in ((self._intake, "shipper-intake"), (self._delivery, "shipper-delivery")):
            thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # a bug, not a store outage: stop everything, loudly
                log.exception("shipper thread %s failed", threading.current_thread().name)
                with self._cond:
                    self.error = exc
                    self._abandon = True
                    self._cond.notify_all()
        return run

    def stop(self, *, drain: bool = True, timeout: float | None = None) -> bool:
        """Stop taking items; with ``drain``, deliver what was taken (up to ``timeout`` seconds).

        Returns whether everything taken was delivered. Undelivered items are not lost: file
        sources re-read them (their checkpoints were not committed) and push sources' batches
        wait in the spool for the next start.
        """
        with self._cond:
            self._stopping = True
        with contextlib.suppress(queue.Full):  # wake the intake now rather than at its next flush
            self._queue.put_nowait(None)
        delivered = self.wait_idle(timeout) if drain else False
        with self._cond:
            self._abandon = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self.dead_letters.close()
        return delivered

    def __enter__(self) -> Shipper:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # sources' side ------------------------------------------------------------------------------

    def put(self, item: Item, source: str) -> None:
        """Hand one item over; blocks while the pipeline is full (backpressure)."""
        if self._stopping or self.error is not None:
            raise ShipperStopped(f"shipper is stopped{f' ({self.error})' if self.error else ''}")
        metrics = self._metrics_of(source)
        with self._cond:
            self._put += 1
        while True:
            try:
                self._queue.put((source, item), timeout=0.5)
                metrics.read += 1
                return
            except queue.Full:
                if self.error is not None or self._stopping:
                    with self._cond:
                        self._put -= 1
                        self._cond.notify_all()
                    raise ShipperStopped(f"shipper is stopping{f' after a failure: {self.error}' if self.error else ''}"
                                         ) from None

    def _metrics_of(self, source: str) -> SourceMetrics:
        metrics = self.metrics.get(source)
        if metrics is None:
            metrics = self.metrics.setdefault(source, SourceMetrics())
        return metrics

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every item put so far is stored or dead-lettered (or ``timeout`` passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._done < self._put or self._batches:
                if self.error is not None:
                    raise ShipperStopped(f"shipper failed: {self.error}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(timeout=0.2 if remaining is None else min(remaining, 0.2))
        return True

    def committed_offset(self, source: str) -> int:
        return self.checkpoints.offset(source)

    # intake -------------------------------------------------------------------------------------

    def _intake(self) -> None:
        batch, letters = _Batch(), []
        deadline = time.monotonic() + self.flush_interval
        while True:
            try:
                entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                entry = None
            if entry is None:  # time to flush, or woken by stop()
                if self._stopping and self._queue.empty():
                    self._close_batch(batch, letters)
                    with self._cond:
                        self._intake_done = True
                        self._cond.notify_all()
                    return
                if time.monotonic() < deadline and not self._stopping:
                    continue
            else:
                source, item = entry
                if isinstance(item.value, DeadLetter):
                    letters.append((source, item.value))
                batch.add(source, item)
                if batch.items < self.batch_size and time.monotonic() < deadline:
                    continue
            self._close_batch(batch, letters)
            batch, letters = _Batch(), []
            deadline = time.monotonic() + self.flush_interval

    def _close_batch(self, batch: _Batch, letters: list[tuple[str, DeadLetter]]) -> None:
        if batch.items == 0:
            return
        if letters:
            self.dead_letters.write(letters)
            for source, _ in letters:
                self._metrics_of(source).dead_lettered += 1
        if not batch.replayable and batch.events:
            self._wait_for(lambda: not self.spool.full)
            batch.segment = self.spool.write(batch.events, batch.checkpoint_list())
            batch.events = []  # on disk now: hold only the reference
        else:
            self._wait_for(lambda: self._in_memory() < self.max_batches_in_memory)
        with self._cond:
            self._batches.append(batch)
            self._cond.notify_all()

    def _in_memory(self) -> int:
        return sum(1 for batch in self._batches if batch.segment is None)

    def _wait_for(self, condition: Callable[[], bool]) -> None:
        with self._cond:
            while not condition() and not self._abandon:
                self._cond.wait(timeout=0.5)

    # delivery -----------------------------------------------------------------------------------

    def _delivery(self) -> None:
        while True:
            with self._cond:
                while not self._batches and not self._abandon and not self._intake_done:
                    self._cond.wait(timeout=0.5)
                if self._abandon or not self._batches:
                    return
                batch = self._batches[0]
            if not self._deliver(batch):
                return
            with self._cond:
                self._batches.popleft()
                self._done += batch.items
                self._cond.notify_all()

    def _deliver(self, batch: _Batch) -> bool:
        events = batch.events
        checkpoints = batch.checkpoint_list()
        if batch.segment is not None:
            events, checkpoints = self.spool.read(batch.segment)
        if events and self.detection is not None:
            self.detection([event for _, event in events])
        pending = events
        attempt = 0
        rejected: list[tuple[str, DeadLetter]] = []
        while pending:
            try:
                result = self.store.append_events([event for _, event in pending])
            except StoreError as exc:
                self.store_errors += 1
                self.last_store_error = str(exc)
                if self._abandon:
                    return False
                delay = min(self.backoff_max, self.backoff_initial * 2 ** attempt) * random.uniform(0.5, 1.0)
                log.warning("store refused a batch of %d events (%s); retrying in %.1f s", len(pending), exc, delay)
                attempt += 1
                if self._sleep(delay):
                    return False
                continue
            now = datetime.now(UTC)
            by_id = {event.id: (source, event) for source, event in pending}
            for rejection in result.rejected:
                source, event = by_id[rejection.event_id]
                location = f"event {event.id} ({event.fields.get('event', {}).get('dataset', 'unknown dataset')})"
                rejected.append((source, DeadLetter.of(location, f"store rejected it: {rejection.reason}",
                                                       _document_text(event))))
            retry_ids = set(result.retry)
            for source, event in pending:
                if event.id in retry_ids:
                    continue
                metrics = self._metrics_of(source)
                metrics.last_ack = now
                if metrics.last_event_time is None or event.timestamp > metrics.last_event_time:
                    metrics.last_event_time = event.timestamp
            rejected_ids = {r.event_id for r in result.rejected}
            self.stored += result.stored
            self.duplicates += result.duplicates
            for source, event in pending:
                if event.id not in retry_ids and event.id not in rejected_ids:
                    self._metrics_of(source).shipped += 1
            pending = [(source, event) for source, event in pending if event.id in retry_ids]
            if pending:
                attempt += 1
                if self._sleep(min(self.backoff_max, self.backoff_initial * 2 ** attempt) * random.uniform(0.5, 1.0)):
                    return False
        if rejected:
            self.dead_letters.write(rejected)
            for source, _ in rejected:
                self._metrics_of(source).rejected += 1
        self.checkpoints.commit(checkpoints)
        if batch.segment is not None:
            self.spool.remove(batch.segment)
            with self._cond:
                self._cond.notify_all()
        return True

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless told to abandon; returns True when abandoning."""
        with self._cond:
            self._cond.wait_for(lambda: self._abandon, timeout=seconds)
            return self._abandon

    # reporting ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        with self._cond:
            pending_batches = len(self._batches)
            in_flight = self._put - self._done
        return {
            "sources": {name: metrics.as_dict() for name, metrics in self.metrics.items()},
            "in_flight": in_flight,
            "pending_batches": pending_batches,
            "spool_bytes": self.spool.bytes,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_letters.written,
            "store_errors": self.store_errors,
            "last_store_error": self.last_store_error,
        }


def _document_text(event: Event) -> str:
    return orjson.dumps(event.fields, default=str).decode()
