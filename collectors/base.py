"""What every source yields, and the stamping every event gets on its way out of a source.

A source reads its input and yields ``Item``s: an ``Event`` (already ECS, stamped by
``CollectorContext.event``) or a ``DeadLetter`` (input it could not parse), each with the
``Checkpoint`` to commit once it is safely stored. Sources never write to the store: the shipper
batches, stores, and only then commits checkpoints, which is what makes delivery at-least-once.

Mappers (raw record → ECS dict) are pure functions in ``collectors/ecs/``; the source calls them
and hands their output to ``CollectorContext.event``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from civicsoc import __version__
from civicsoc.errors import CivicsocError
from civicsoc.event import Event, event_id, format_timestamp

DEAD_LETTER_RAW_LIMIT = 64 * 1024


class ParseError(CivicsocError):
    """A record is not of the expected shape. The message says what was expected (and, where it
    knows, which field); the source adds the location and dead-letters the record."""


class Mapped(NamedTuple):
    """What a line or record mapper returns: the event time, the ECS fields, and their dataset.

    A named tuple rather than a frozen dataclass: as immutable, and cheaper to build once per record.
    """

    timestamp: datetime
    fields: dict[str, Any]
    module: str
    """ECS ``event.module``: ``system``, ``auditd``, ``nginx``, ``windows``, ``sysmon`` ..."""
    dataset: str
    """ECS ``event.dataset``: ``system.auth``, ``auditd.log``, ``nginx.access`` ..."""


LineParser = Callable[[str], Mapped]
"""Parses one line of a log (without its line break) or raises ``ParseError``. Mappers that need
the current year or a time zone (RFC 3164 timestamps carry neither) take them as keyword
arguments and are bound with ``functools.partial``."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where to resume a source: everything before ``offset`` of ``source`` is safely stored.

    ``source`` is a stable identity of the input (a file's identity, a listener's address);
    ``offset`` the next byte, record number or frame to read.
    """

    source: str
    offset: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not become an event: kept, counted, never silently dropped."""

    location: str
    """Where a person finds it: ``/var/log/auth.log:1234``, ``Security.evtx record 77``."""
    reason: str
    """What was wrong and what was expected."""
    raw: str
    """The input as text (bytes decoded with backslash escapes), cut at 64 KiB."""

    @classmethod
    def of(cls, location: str, reason: str, raw: bytes | str) -> DeadLetter:
        text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
        if len(text) > DEAD_LETTER_RAW_LIMIT:
            text = text[:DEAD_LETTER_RAW_LIMIT] + f"... [{len(text) - DEAD_LETTER_RAW_LIMIT} more characters]"
        return cls(location=location, reason=reason, raw=text)


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a source produced, and the checkpoint that is safe to commit once it is stored."""

    value: Event | DeadLetter
    checkpoint: Checkpoint | None = None


_ingested_cache: tuple[int, str] = (0, "")


def _ingested_now() -> str:
    """``event.ingested`` to the second, formatted once a second rather than once an event."""
    global _ingested_cache
    now = time.time()
    second, text = _ingested_cache
    if int(now) != second:
        text = format_timestamp(datetime.fromtimestamp(int(now), UTC))
        _ingested_cache = (int(now), text)  # one tuple assignment: safe across threads
    return text


Sink = Callable[[Item], None]
"""Where a push source (syslog, live capture) hands its items. It may block: that is backpressure."""


@dataclass(frozen=True)
class CollectorContext:
    """Who collects for whom: the tenant and the agent stamped on every event."""

    tenant: str
    agent_id: str = "civicsoc-ingest"
    agent_name: str = field(default_factory=socket.gethostname)
    agent_type: str = "civicsoc"
    keep_original: bool = True
    """Keep the raw record in ``event.original`` (ECS); off saves space but loses the evidence."""

    def event(
        self,
        fields: dict[str, Any],
        *,
        timestamp: datetime,
        source: str,
        position: str | int,
        module: str,
        dataset: str,
        original: str | None = None,
        ingested: datetime | None = None,
    ) -> Event:
        """Stamp a mapper's ECS dict (in place) and wrap it as an ``Event``.

        The id hashes tenant, ``source`` and ``position``: reading the same record again yields the
        same id, which the store turns into a no-op.
        """
        event = fields.setdefault("event", {})
        event.setdefault("kind", "event")
        event["module"] = module
        event["dataset"] = dataset
        event["ingested"] = format_timestamp(ingested) if ingested is not None else _ingested_now()
        if original is not None and self.keep_original:
            event["original"] = original
        fields["agent"] = {"id": self.agent_id, "name": self.agent_name, "type": self.agent_type,
                           "version": __version__}
        fields.setdefault("ecs", {"version": "8.17.0"})
        return Event.from_ecs(fields, tenant=self.tenant, timestamp=timestamp,
                              id=event_id(self.tenant, source, position))
