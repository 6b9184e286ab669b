"""Tenants, tokens and the audit trail: the admin's routes (compliance may read its tenants' audit)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Admin, Reader, ServicesDep
from api.schemas import IssuedTokenOut, Page, TenantChange, TenantIn, TokenIn, TokenOut
from civicsoc import audit, tenancy, tokens
from civicsoc.records import AuditRecord, Tenant
from civicsoc.store import RecordQuery

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/tenants", response_model=list[Tenant])
def list_tenants(principal: Reader, services: ServicesDep) -> list[Tenant]:
    return tokens.list_tenants(services.store, principal.scope)


@router.post("/tenants", response_model=Tenant, status_code=201)
def create_tenant(body: TenantIn, principal: Admin, services: ServicesDep) -> Tenant:
    created = tokens.create_tenant(services.store, body.id, body.name, principal.actor)
    if body.notification_regime != created.notification_regime:
        created = tenancy.set_notification_regime(services.store, principal.scope, created.id,
                                                  body.notification_regime, principal.actor)
    return created


@router.patch("/tenants/{tenant_id}", response_model=Tenant)
def change_tenant(tenant_id: str, body: TenantChange, principal: Admin, services: ServicesDep) -> Tenant:
    """Switch the tenant's notification regime (which regulatory clocks its incidents get)."""
    return tenancy.set_notification_regime(services.store, principal.scope, tenant_id, body.notification_regime,
                                           principal.actor)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(principal: Admin, services: ServicesDep) -> list[TokenOut]:
    return [TokenOut.of(token) for token in tokens.list_tokens(services.store, principal.scope)]


@router.post("/tokens", response_model=IssuedTokenOut, status_code=201)
def create_token(body: TokenIn, principal: Admin, services: ServicesDep) -> IssuedTokenOut:
    issued = tokens.create_token(services.store, tenant=body.tenant, role=body.role, name=body.name,
                                 actor=principal.actor, expires_at=body.expires_at, tenants=body.tenants)
    return IssuedTokenOut(**TokenOut.of(issued.token).model_dump(), secret=issued.secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: str, principal: Admin, services: ServicesDep) -> TokenOut:
    return TokenOut.of(tokens.revoke_token(services.store, principal.scope, token_id, principal.actor))


@router.get("/audit", response_model=Page[AuditRecord])
def list_audit(principal: Reader, services: ServicesDep,
               target: Annotated[str | None, Query(description="e.g. incidents/inc-…")] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None) -> Page[AuditRecord]:
    query = RecordQuery.where({"target": target} if target else {}, sort="seq", descending=True, limit=limit,
                              cursor=cursor)
    page = services.store.audit.list(principal.scope, query)
    return Page(items=[item.record for item in page.items], next_cursor=page.next_cursor)


@router.get("/audit/verify")
def verify_audit(principal: Admin, services: ServicesDep) -> dict[str, Any]:
    """Walk the whole chain and report any record that was changed, removed or inserted."""
    result = audit.verify(audit.iter_chain(services.store))
    return {"ok": result.ok, "records": result.records, "problems": [str(p) for p in result.problems]}
