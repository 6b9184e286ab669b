"""What the Windows mappers know about one kind of event: its ECS categorization and its filler.

Each channel module (``windows_security``, ``windows_sysmon``, ...) exports a table of these keyed
by event id, and ``windows.map_windows_record`` looks one up with a single dict access (once per
repeating record header, see ``windows.RecordHeader``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Fill = Callable[[dict[str, Any], dict[str, Any]], None]
"""Adds the ECS fields one kind of event carries: ``fill(event_data, document)``, in place.

``event_data`` is the record's EventData (or UserData) with every value as text, exactly what
ends up in ``winlog.event_data``; ``document`` is the ECS dict being built."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """ECS categorization (as Elastic's ingest pipelines set it) and the filler for one event id."""

    category: tuple[str, ...]
    type: tuple[str, ...]
    action: str
    fill: Fill | None = None
    outcome: str | None = None
    """Set only where the event id alone decides it; Security events take it from the keywords."""


def put(document: dict[str, Any], section: str, values: dict[str, Any]) -> None:
    """Merge ``values`` into ``document[section]`` (creating it), skipping nothing: callers filter."""
    if not values:
        return
    existing = document.get(section)
    if existing is None:
        document[section] = values
    else:
        existing.update(values)
