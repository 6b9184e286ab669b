"""The queue by deadline: "what is due in the next 24 hours", overdue first.

Deadlines are computed when read (they depend on the clock, the tenant's regime, playbook progress and
recorded submissions), so they are not a stored field the store could filter on. An agency's open
incidents are few enough to rank in one pass: the open incidents matching the other filters are read
(at most ``MAX_CANDIDATES``; more asks the caller to narrow the filters), their next deadlines come
from two batched queries, and the page is cut by a keyset cursor over (due time, incident id) so it
stays stable while incidents arrive.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta

from civicsoc.errors import InvalidQuery
from civicsoc.event import format_timestamp, parse_timestamp
from civicsoc.records import Incident, IncidentStatus
from civicsoc.store import RecordQuery, Scope, Store, Versioned
from civicsoc.store.base import MAX_PAGE
from playbooks.clocks import Deadline
from playbooks.loader import PlaybookLibrary
from playbooks.service import next_deadlines

OPEN_STATUSES = (IncidentStatus.new, IncidentStatus.acknowledged, IncidentStatus.investigating,
                 IncidentStatus.contained)
MAX_CANDIDATES = 20_000


@dataclass(frozen=True)
class DuePage:
    items: list[tuple[Versioned[Incident], Deadline]]
    next_cursor: str | None


def _encode(deadline: Deadline, incident_id: str) -> str:
    return base64.urlsafe_b64encode(f"{format_timestamp(deadline.due_at)}|{incident_id}".encode()).decode()


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        due, incident_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return parse_timestamp(due), incident_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery(f"cursor {cursor[:40]!r}: not a cursor of this list (pass next_cursor as given)") \
            from None


def open_incidents(store: Store, scope: Scope, query: RecordQuery) -> list[Versioned[Incident]]:
    """Every incident matching ``query``'s filters, open ones only unless a status filter says otherwise."""
    filters = dict(query.filters)
    filters.setdefault("status", [status.value for status in OPEN_STATUSES])
    found: list[Versioned[Incident]] = []
    cursor: str | None = None
    while True:
        page = store.incidents.list(scope, RecordQuery.where(
            filters, time_field=query.time_field, time=query.time, sort="id", descending=False, limit=MAX_PAGE,
            cursor=cursor, text=query.text))
        found.extend(page.items)
        if len(found) > MAX_CANDIDATES:
            raise InvalidQuery(f"due_within: more than {MAX_CANDIDATES} open incidents match; narrow the filters "
                               "(tenant, status, severity, time range)")
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def due_within(store: Store, library: PlaybookLibrary, scope: Scope, query: RecordQuery, within: timedelta,
               now: datetime, *, limit: int, cursor: str | None = None) -> DuePage:
    """Incidents whose next deadline still to be met falls before ``now + within`` (overdue ones
    included), earliest first."""
    after = _decode(cursor) if cursor else None
    candidates = open_incidents(store, scope, query)
    upcoming = next_deadlines(store, library, scope, [item.record for item in candidates], now)
    horizon = now + within
    ranked = sorted(((item, deadline) for item in candidates
                     if (deadline := upcoming[item.record.id]) is not None and deadline.due_at <= horizon),
                    key=lambda pair: (pair[1].due_at, pair[0].record.id))
    if after is not None:
        ranked = [pair for pair in ranked if (pair[1].due_at, pair[0].record.id) > after]
    page = ranked[:limit]
    more = len(ranked) > limit
    return DuePage(page, _encode(page[-1][1], page[-1][0].record.id) if more else None)
