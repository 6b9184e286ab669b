"""Collector heartbeats: agency IT sees at a glance which collector went silent or is failing."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Ingester, Reader, ServicesDep
from api.schemas import CollectorOut, HeartbeatIn
from civicsoc import heartbeats
from civicsoc.records import CollectorStatus
from civicsoc.store import RecordQuery

router = APIRouter(prefix="/api/v1/collectors", tags=["collectors"])


@router.post("/heartbeat", response_model=CollectorOut)
def heartbeat(body: HeartbeatIn, principal: Ingester, services: ServicesDep,
              tenant: Annotated[str | None, Query(description="For tokens of several tenants")] = None
              ) -> CollectorOut:
    status = heartbeats.record(services.store, principal, tenant, body.model_dump())
    return _out(status)


@router.get("", response_model=list[CollectorOut])
def list_collectors(principal: Reader, services: ServicesDep,
                    tenant: Annotated[list[str] | None, Query()] = None) -> list[CollectorOut]:
    query = RecordQuery.where({"tenant": tenant} if tenant else {}, sort="name", descending=False, limit=5000)
    page = services.store.records(CollectorStatus).list(principal.scope, query)
    return [_out(item.record) for item in page.items]


def _out(status: CollectorStatus) -> CollectorOut:
    verdict = heartbeats.verdict(status, silent_after=timedelta(minutes=5))
    return CollectorOut(**dict(status), health=verdict.state, seconds_since_seen=verdict.seconds_since_seen)
