"""Collector heartbeats and the health verdict agency IT reads from them.

A collector that stops sending heartbeats is the failure nobody notices (no events, so no alerts,
so no noise): ``silent`` after a few missed beats is the most important verdict here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from civicsoc.errors import AlreadyExists, NotFound, TenantDenied, VersionConflict
from civicsoc.records import CollectorStatus, Tenant, utcnow
from civicsoc.store import Scope, Store
from civicsoc.tokens import Principal

LAGGING_SECONDS = 300.0
"""Events older than this when read (lag) make a collector ``lagging``."""


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str
    """``ok``, ``lagging`` (behind its sources), ``failing`` (errors or dead letters since the last
    beat) or ``silent`` (no beat within ``silent_after``)."""
    seconds_since_seen: float


def verdict(status: CollectorStatus, *, silent_after: timedelta, now: datetime | None = None) -> Verdict:
    since = ((now or utcnow()) - status.last_seen).total_seconds()
    if since > silent_after.total_seconds():
        return Verdict("silent", since)
    if status.errors or status.dead_letters:
        return Verdict("failing", since)
    if status.lag_seconds > LAGGING_SECONDS:
        return Verdict("lagging", since)
    return Verdict("ok", since)


def record(store: Store, principal: Principal, tenant: str | None, beat: dict[str, Any]) -> CollectorStatus:
    """Keep a collector's latest heartbeat (in the caller's tenant, or ``tenant`` if it has several)."""
    home = tenant or (sorted(principal.tenants)[0] if principal.tenants else None)
    if home is None or not principal.scope.allows(home):
        raise TenantDenied("collectors", home or "")
    scope = Scope.of(home)
    store.records(Tenant).get(scope, home)  # a heartbeat for a tenant nobody created is refused (404)
    status_id = CollectorStatus.id_for(home, beat["name"])
    collection = store.records(CollectorStatus)
    for _ in range(5):
        try:
            current = collection.get(scope, status_id)
        except NotFound:
            try:
                return collection.create(scope, CollectorStatus(id=status_id, tenant=home, **beat)).record
            except AlreadyExists:
                continue
        updated = CollectorStatus(id=status_id, tenant=home, first_seen=current.record.first_seen, **beat)
        try:
            return collection.update(scope, updated, current.version).record
        except VersionConflict:
            continue
    raise VersionConflict("collectors", status_id, "(heartbeats kept conflicting)")
