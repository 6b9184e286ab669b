"""Query parameters shared by the list routes: time ranges, sorting, paging."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException

from civicsoc.store import TimeRange


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+00:01 is a valid ISO time with no UTC equivalent
        raise HTTPException(422, f"time {moment.isoformat()}: out of range") from None


def time_range(start: datetime | None, end: datetime | None, *, required: bool = False) -> TimeRange | None:
    start, end = as_utc(start), as_utc(end)
    if start is None and end is None and not required:
        return None
    if start is None:
        raise HTTPException(422, "from: give the start of the time range (ISO 8601)")
    end = end or datetime.now(UTC)
    if end < start:
        raise HTTPException(422, "to: the end of the time range is before its start")
    return TimeRange(start, end)


def filters(**values: Any) -> dict[str, Any]:
    """Drop the filters the caller left out (None or empty lists)."""
    return {name: value for name, value in values.items() if value not in (None, [], "")}
