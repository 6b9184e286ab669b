"""Values the command groups parse alike: durations and expiry times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from civicsoc.errors import CivicsocError

SPAN = re.compile(r"^(\d+)([mhdw])$")
SPAN_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_span(text: str) -> timedelta:
    """``30m``, ``12h``, ``1d``, ``2w`` → a duration."""
    found = SPAN.match(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise CivicsocError(f"duration {text!r}: expected a positive number and a unit, such as 30m, 12h, 1d or 2w")
    return int(found.group(1)) * SPAN_UNITS[found.group(2)]


def parse_expiry(text: str, now: datetime) -> datetime:
    """``30d``/``12h``/``2w`` from ``now``, or an ISO 8601 time (UTC if it names no zone)."""
    if SPAN.match(text.strip()):
        return now + parse_span(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CivicsocError(f"--expires {text!r}: expected a duration such as 30d, 12h, 2w "
                            "or an ISO 8601 time such as 2026-12-31T00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
