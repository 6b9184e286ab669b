"""Stored events: search within a time range, scoped to the caller's tenants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import Reader, ServicesDep
from api.params import time_range
from api.schemas import EventOut, Page
from civicsoc.store import EventQuery

router = APIRouter(prefix="/api/v1/events", tags=["events"])


@router.get("", response_model=Page[EventOut])
def search_events(
    principal: Reader,
    services: ServicesDep,
    start: Annotated[datetime, Query(alias="from", description="Start of the time range (ISO 8601)")],
    end: Annotated[datetime | None, Query(alias="to")] = None,
    field: Annotated[list[str] | None, Query(description="Exact filters as `name:value` (repeatable)",
                                             max_length=20)] = None,
    tenant: Annotated[list[str] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=2000,
                                   description="Elasticsearch query string (Elasticsearch store only)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
) -> Page[EventOut]:
    window = time_range(start, end, required=True)
    filters: dict[str, list[str]] = {}
    for item in field or []:
        name, sep, value = item.partition(":")
        if not sep or not name:
            raise HTTPException(422, f"field: expected name:value, got {item!r}")
        filters.setdefault(name, []).append(value)
    if tenant:
        filters["organization.id"] = tenant
    query = EventQuery.where(window, filters)
    store = services.store
    if q:
        matching = getattr(store, "iter_events_matching", None)
        if matching is None:
            raise HTTPException(422, "q: query strings need the Elasticsearch store; use field=name:value filters")
        if cursor is not None:
            raise HTTPException(422, "cursor: query-string searches return one page; narrow the time range")
        events = []
        for event in matching(principal.scope, query, q, page=limit):
            events.append(event)
            if len(events) >= limit:
                break
        return Page(items=[EventOut(id=e.id, tenant=e.tenant, timestamp=e.timestamp, fields=e.fields)
                           for e in events], next_cursor=None)
    page = store.search_events(principal.scope, query, limit=limit, cursor=cursor, descending=order == "desc")
    return Page(items=[EventOut(id=e.id, tenant=e.tenant, timestamp=e.timestamp, fields=e.fields)
                       for e in page.items], next_cursor=page.next_cursor)
