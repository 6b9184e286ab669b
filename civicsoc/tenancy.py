"""Per-tenant settings an admin changes after creating the tenant (see ``civicsoc.tokens`` for creation).

Kept apart from tokens: these settings change how an agency's incidents are handled, not who may call.
"""

from __future__ import annotations

from civicsoc import audit
from civicsoc.errors import NotFound, VersionConflict
from civicsoc.records import NotificationRegime, Tenant
from civicsoc.store import Page, RecordQuery, RecordRead, Scope, Store, Versioned

RETRIES = 8


def regime_of(tenant: Tenant | None) -> NotificationRegime:
    """A tenant's regime; ``eu`` for a tenant without a record (one created implicitly by ingest)."""
    return tenant.notification_regime if tenant is not None else NotificationRegime.eu


def notification_regime(store: Store, tenant: str) -> NotificationRegime:
    try:
        return regime_of(store.records(Tenant).get(Scope.of(tenant), tenant).record)
    except NotFound:
        return regime_of(None)


def tenant_read(tenant: str) -> RecordRead[Tenant]:
    """The tenant's record as a read to send with others (``Store.read_together``); see ``tenant_of``."""
    return RecordRead(Tenant, RecordQuery.where({"id": tenant}, sort="id", limit=1))


def tenant_of(page: Page[Versioned[Tenant]]) -> Tenant | None:
    """The record in the page ``tenant_read`` asked for, if the tenant has one."""
    return page.items[0].record if page.items else None


def set_notification_regime(store: Store, scope: Scope, tenant: str, regime: NotificationRegime | str,
                            actor: str) -> Tenant:
    """Switch the authority a tenant reports to (which regulatory clocks run), audited with before/after.

    Deadlines are computed when read, so open incidents follow the new regime at once; submissions
    already recorded stay as they were.
    """
    try:
        wanted = NotificationRegime(regime)
    except ValueError:
        raise ValueError(f"notification_regime {regime!r}: expected one of "
                         f"{', '.join(r.value for r in NotificationRegime)}") from None
    tenants = store.records(Tenant)
    for _ in range(RETRIES):
        current = tenants.get(scope, tenant)
        before = current.record.notification_regime
        if before == wanted:
            return current.record
        changed = current.record.model_copy(update={"notification_regime": wanted})
        try:
            tenants.update(scope, changed, current.version)
        except VersionConflict:
            continue
        audit.append(store, tenant=tenant, actor=actor, action="tenant.notification_regime",
                     target=f"tenants/{tenant}", before={"notification_regime": before.value},
                     after={"notification_regime": wanted.value})
        return changed
    raise VersionConflict(Tenant.collection, tenant, "(kept changing while setting the notification regime)")
