"""``civicsoc token|tenant|audit``: identities and the audit trail, from the shell of the server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from civicsoc.commands.options import parse_expiry
from civicsoc.records import NotificationRegime, Role

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
tenant_app = typer.Typer(help="Create, list and configure tenants (agencies).", no_args_is_help=True)
audit_app = typer.Typer(help="Check the audit trail.", no_args_is_help=True)

REGIME_HELP = "eu: NIS2 24 h/72 h/1 month + GDPR Art. 33 72 h; us-federal: CISA's 1 h notification instead of NIS2"
OPERATOR = "cli"
"""The audit actor of changes made from the server's shell (whoever can run this owns the store)."""


def _store():  # -> Store (imported lazily to keep the CLI quick to start)
    from civicsoc.cli import settings
    from civicsoc.store import open_store

    return open_store(settings())


@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Option(help="The token's tenant (created if it does not exist)")],
    role: Annotated[Role, typer.Option(help="admin, analyst, compliance, collector or viewer")],
    name: Annotated[str | None, typer.Option(help="Who or what uses it (shown in the audit trail)")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry: 90d, 12h, 2w or an ISO 8601 time")] = None,
    also: Annotated[list[str] | None, typer.Option("--also-tenant", help="Further tenants (repeatable)")] = None,
) -> None:
    """Create a token and print it once: it is stored only as a hash and cannot be shown again."""
    from civicsoc import tokens

    expires_at = parse_expiry(expires, datetime.now(UTC)) if expires else None
    with _store() as store:
        for each in [tenant, *(also or [])]:
            tokens.ensure_tenant(store, each, OPERATOR)
        issued = tokens.create_token(store, tenant=tenant, role=role, name=name or f"{role.value}@{tenant}",
                                     actor=OPERATOR, expires_at=expires_at, tenants=also)
    typer.echo(issued.secret)
    typer.echo(f"token {issued.token.id}: role {role.value}, tenants {', '.join(issued.token.tenants)}"
               + (f", expires {expires_at.isoformat()}" if expires_at else "") + " (shown once; keep it safe)",
               err=True)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token id (the part after cs_)")]) -> None:
    """Revoke a token at once; requests with it fail from now on."""
    from civicsoc import tokens
    from civicsoc.store import Scope

    with _store() as store:
        token = tokens.revoke_token(store, Scope.all(), token_id, OPERATOR)
    when = token.revoked_at.isoformat() if token.revoked_at else "?"
    typer.echo(f"token {token.id} ({token.name}) revoked at {when}")


@token_app.command("list")
def token_list() -> None:
    """List tokens (never their secrets)."""
    from civicsoc import tokens
    from civicsoc.store import Scope

    with _store() as store:
        for token in tokens.list_tokens(store, Scope.all()):
            state = "revoked" if token.revoked_at else ("expires " + token.expires_at.isoformat()
                                                        if token.expires_at else "active")
            typer.echo(f"{token.id}  {token.role.value:<10} {','.join(token.tenants):<20} {token.name}  ({state})")


@tenant_app.command("create")
def tenant_create(tenant: Annotated[str, typer.Argument(help="Tenant id: lowercase letters, digits, '-'")],
                  name: Annotated[str, typer.Option(help="The agency's name")] = "",
                  notification_regime: Annotated[NotificationRegime, typer.Option(
                      help=REGIME_HELP)] = NotificationRegime.eu) -> None:
    from civicsoc import tenancy, tokens
    from civicsoc.store import Scope

    with _store() as store:
        created = tokens.create_tenant(store, tenant, name, OPERATOR)
        if notification_regime != created.notification_regime:
            created = tenancy.set_notification_regime(store, Scope.all(), tenant, notification_regime, OPERATOR)
    typer.echo(f"tenant {created.id} ({created.name}) created, notification regime {created.notification_regime}")


@tenant_app.command("set")
def tenant_set(tenant: Annotated[str, typer.Argument(help="Tenant id")],
               notification_regime: Annotated[NotificationRegime, typer.Option(help=REGIME_HELP)]) -> None:
    """Change a tenant's settings (audited)."""
    from civicsoc import tenancy
    from civicsoc.errors import NotFound
    from civicsoc.store import Scope

    with _store() as store:
        try:
            changed = tenancy.set_notification_regime(store, Scope.all(), tenant, notification_regime, OPERATOR)
        except NotFound:
            typer.echo(f"error: tenant {tenant!r} does not exist (civicsoc tenant list)", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"tenant {changed.id}: notification regime {changed.notification_regime}")


@tenant_app.command("list")
def tenant_list() -> None:
    from civicsoc import tokens
    from civicsoc.store import Scope

    with _store() as store:
        for tenant in tokens.list_tenants(store, Scope.all()):
            typer.echo(f"{tenant.id}  {tenant.notification_regime.value:<10} {tenant.name}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the whole audit chain; exit 1 and name each record that was changed, removed or inserted."""
    from civicsoc import audit

    with _store() as store:
        result = audit.verify(audit.iter_chain(store))
    for problem in result.problems:
        typer.echo(str(problem))
    typer.echo(f"audit chain: {result.records} records, " + ("intact" if result.ok else
                                                              f"{len(result.problems)} problems"), err=True)
    if not result.ok:
        raise typer.Exit(1)
