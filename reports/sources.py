"""Reading what the exports need from the store, always within the caller's scope.

The only module of ``reports`` that does I/O on the store. Lists are read a page at a time (the store
returns at most 5,000 records a page) and playbook runs for many incidents in batches, not one query per
incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from civicsoc import triage
from civicsoc.errors import NotFound
from civicsoc.records import Incident, NotificationRegime, PlaybookRun, Submission, Tenant
from civicsoc.store import RecordQuery, Scope, Store, TimeRange
from civicsoc.store.base import MAX_PAGE
from civicsoc.tenancy import regime_of
from civicsoc.tokens import list_tenants
from playbooks.loader import PlaybookLibrary
from playbooks.model import Playbook
from playbooks.service import records_by_incident
from reports.facts import IncidentCase, IncidentFacts, incident_facts

TimeField = Literal["created_at", "first_seen"]
"""Which time puts an incident in a period: its detection (``created_at``) or its first event."""


def resolve_tenants(store: Store, scope: Scope, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The tenants an export covers: those asked for (each must exist and be in scope, else ``NotFound``,
    the same answer for both so nobody learns which tenants exist) or every tenant in scope."""
    known = {tenant.id for tenant in list_tenants(store, scope)}
    if not requested:
        return tuple(sorted(known))
    for name in requested:
        if name not in known:
            raise NotFound("tenants", name)
    return tuple(sorted(set(requested)))


def _tenants(store: Store, scope: Scope, tenants: Sequence[str]) -> dict[str, Tenant | None]:
    found: dict[str, Tenant | None] = {}
    for tenant in tenants:
        try:
            found[tenant] = store.records(Tenant).get(scope, tenant).record
        except NotFound:
            found[tenant] = None
    return found


def tenant_names(store: Store, scope: Scope, tenants: Sequence[str]) -> dict[str, str]:
    return {tenant: record.name if record else tenant for tenant, record in _tenants(store, scope, tenants).items()}


def tenant_regimes(store: Store, scope: Scope, tenants: Sequence[str]) -> dict[str, NotificationRegime]:
    """Each tenant's notification regime (``eu`` for a tenant without a record)."""
    return {tenant: regime_of(record) for tenant, record in _tenants(store, scope, tenants).items()}


def load_incidents(store: Store, scope: Scope, tenants: Sequence[str], period: TimeRange,
                   time_field: TimeField = "created_at") -> list[Incident]:
    """Every incident of ``tenants`` whose ``time_field`` lies in ``period``, oldest first."""
    if not tenants:
        return []
    incidents: list[Incident] = []
    cursor: str | None = None
    while True:
        query = RecordQuery.where({"tenant": list(tenants)}, time_field=time_field, time=period, sort=time_field,
                                  descending=False, limit=MAX_PAGE, cursor=cursor)
        page = store.incidents.list(scope, query)
        incidents.extend(item.record for item in page.items)
        if page.next_cursor is None:
            return incidents
        cursor = page.next_cursor


def load_runs(store: Store, scope: Scope, incident_ids: Sequence[str]) -> dict[str, list[PlaybookRun]]:
    """Playbook runs of many incidents, a few queries for all."""
    return records_by_incident(store, PlaybookRun, scope, incident_ids)


def load_submissions(store: Store, scope: Scope, incident_ids: Sequence[str]) -> dict[str, list[Submission]]:
    """Recorded regulatory submissions of many incidents, a few queries for all."""
    return records_by_incident(store, Submission, scope, incident_ids)


def _playbooks(library: PlaybookLibrary | None) -> tuple[Playbook, ...]:
    return tuple(library) if library is not None else ()


def register_facts(store: Store, library: PlaybookLibrary | None, scope: Scope, tenants: Sequence[str],
                   period: TimeRange, now: datetime, time_field: TimeField = "created_at") -> list[IncidentFacts]:
    incidents = load_incidents(store, scope, tenants, period, time_field)
    ids = [incident.id for incident in incidents]
    runs, submissions = load_runs(store, scope, ids), load_submissions(store, scope, ids)
    regimes = tenant_regimes(store, scope, sorted({incident.tenant for incident in incidents}))
    playbooks = _playbooks(library)
    return [incident_facts(incident, runs.get(incident.id, []), playbooks, now,
                           submissions=submissions.get(incident.id, []), regime=regimes[incident.tenant])
            for incident in incidents]


def incident_case(store: Store, library: PlaybookLibrary | None, scope: Scope, incident_id: str,
                  now: datetime) -> IncidentCase:
    """One incident with its alerts, comments, playbook steps, deadlines and events; ``NotFound`` outside
    ``scope`` exactly as if it did not exist."""
    incident = store.incidents.get(scope, incident_id).record
    alerts = triage.incident_alerts(store, scope, incident)
    runs = load_runs(store, scope, [incident.id]).get(incident.id, [])
    submissions = load_submissions(store, scope, [incident.id]).get(incident.id, [])
    tenant = _tenants(store, scope, [incident.tenant])[incident.tenant]  # one read for its name and regime
    facts = incident_facts(incident, runs, _playbooks(library), now, submissions=submissions,
                           regime=regime_of(tenant))
    return IncidentCase(facts=facts, tenant_name=tenant.name if tenant else incident.tenant,
                        alerts=tuple(alerts), comments=tuple(triage.comments(store, scope, incident.id)),
                        events=tuple(triage.timeline(store, scope, alerts)))
