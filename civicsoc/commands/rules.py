"""``civicsoc rules health|disable|enable|exception-add|exception-list|exception-revoke``.

Rule health answers "can each rule fire at all, and did it?"; the other commands are a tenant's tuning —
disable a rule, except known events — each one stored, audited, and in effect on the stream within the
suppression cache's refresh interval. ``register(rules_app)`` adds them to the ``civicsoc rules`` group.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from civicsoc.commands.options import parse_expiry, parse_span
from civicsoc.errors import CivicsocError

if TYPE_CHECKING:
    from civicsoc.config import Settings
    from civicsoc.store import Store
    from detection.health import RuleHealth
    from detection.rules import RuleSet

OPERATOR = "cli"
"""The audit actor of changes made from the server's shell (as in ``civicsoc.commands.admin``)."""

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="The tenant (agency) the change is for")]
RulesOption = Annotated[
    list[Path] | None,
    typer.Option("--rules", "-r", help="Sigma rule file or folder (repeatable), besides rules.paths and the built-in"),
]


def register(rules_app: typer.Typer) -> None:
    """Add the health, disable/enable and exception commands to ``civicsoc rules``."""
    rules_app.command("health")(rules_health)
    rules_app.command("disable")(rules_disable)
    rules_app.command("enable")(rules_enable)
    rules_app.command("exception-add")(exception_add)
    rules_app.command("exception-list")(exception_list)
    rules_app.command("exception-revoke")(exception_revoke)


# --- helpers -------------------------------------------------------------------------------------------------

@contextmanager
def _reported() -> Iterator[None]:
    """civicsoc's own errors end the command with one line and status 2, as ``civicsoc.cli.main`` does —
    also when the command runs inside a test's CliRunner, which bypasses ``main``."""
    from civicsoc.cli import err

    try:
        yield
    except CivicsocError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    from civicsoc.cli import settings

    return settings()


def _open(config: Settings) -> Store:
    from civicsoc.store import open_store

    return open_store(config)


def _rules(config: Settings, extra: list[Path] | None, *, quiet: bool = False) -> RuleSet:
    from civicsoc.cli import _load_rules

    return _load_rules(config, extra, quiet=quiet)


def _tenant(name: str) -> str:
    from civicsoc.cli import _tenant as check_tenant

    return check_tenant(name)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "never"


def _conditions_text(conditions: dict[str, list[str]]) -> str:
    return " AND ".join(f"{name}={'|'.join(values)}" for name, values in sorted(conditions.items()))


# --- health --------------------------------------------------------------------------------------------------

def rules_health(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant (default: every tenant)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every rule's health and the totals as JSON")] = False,
    only_problems: Annotated[bool, typer.Option("--only-problems", help="List only rules with a problem")] = False,
    recent: Annotated[str, typer.Option("--recent", help="Window for 'events arrived recently': 30m, 12h, 1d, 2w")]
    = "1d",
    rules: RulesOption = None,
) -> None:
    """Per rule: loaded or skipped, unmapped fields, recent events of its logsource, last match, enabled.

    A rule with a problem can never fire (or has nothing to look at): skipped, a field no collector
    writes, or no events of its logsource in the window."""
    from civicsoc.store import Scope
    from detection.health import HealthTotals, rule_health

    with _reported():
        window = parse_span(recent)
        config = _settings()
        ruleset = _rules(config, rules, quiet=as_json)
        scope = Scope.of(_tenant(tenant)) if tenant else Scope.all()
        with _open(config) as store:
            items = rule_health(ruleset, store, scope, datetime.now(UTC), recent=window)
    totals = HealthTotals.of(items)
    shown = [item for item in items if not item.ok] if only_problems else items
    _print_health(shown, totals, as_json=as_json, window=recent, tenant=tenant)


def _print_health(items: list[RuleHealth], totals: Any, *, as_json: bool, window: str, tenant: str | None) -> None:
    from dataclasses import asdict

    from civicsoc.cli import out

    if as_json:
        document = {"tenant": tenant, "recent": window, "totals": asdict(totals),
                    "rules": [item.as_dict() for item in items]}
        out.print_json(json.dumps(document))
        return
    table = Table("title", "level", "enabled", f"events ({window})", "last match", "alerts", "problems")
    # Ids are what disable and exception-add take: shown whole, never cut.
    table.columns.insert(0, Column("rule", min_width=max((len(item.id) for item in items), default=4)))
    for item in items:
        enabled = "yes" if item.enabled else "no: " + ", ".join(item.disabled_for)
        if item.exceptions:
            enabled += f" ({item.exceptions} exc.)"
        events = "-" if item.events_recent is None else str(item.events_recent)
        problems = "; ".join(item.problems) if item.problems else ""
        if item.unmapped:
            problems = "; ".join([*(p for p in item.problems if not p.startswith("unmapped")),
                                  "unmapped: " + ", ".join(str(field) for field in item.unmapped)])
        table.add_row(item.id, item.title or "", item.level or "", enabled, events, _when(item.last_matched),
                      str(item.alerts), problems)
    out.print(table)
    out.print(totals.line(), highlight=False)


# --- disable / enable ----------------------------------------------------------------------------------------

def rules_disable(
    rule_id: Annotated[str, typer.Argument(help="The rule's id (civicsoc rules health lists them)")],
    tenant: TenantOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail)")],
    rules: RulesOption = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="Do not require the rule to be loaded now")] = False,
) -> None:
    """Disable a rule for one tenant: its matches there raise no alerts (other tenants are unaffected)."""
    from detection.suppression import disable_rule

    with _reported():
        config = _settings()
        known = None if no_check else {rule.id for rule in _rules(config, rules, quiet=True).loaded}
        with _open(config) as store:
            setting = disable_rule(store, _tenant(tenant), rule_id, OPERATOR, reason, known_rule_ids=known)
    typer.echo(f"rule {setting.rule_id} disabled for tenant {setting.tenant}: {setting.reason}")


def rules_enable(
    rule_id: Annotated[str, typer.Argument(help="The rule's id")],
    tenant: TenantOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail)")] = "",
) -> None:
    """Enable a rule again for one tenant."""
    from detection.suppression import enable_rule

    with _reported(), _open(_settings()) as store:
        setting = enable_rule(store, _tenant(tenant), rule_id, OPERATOR, reason)
    typer.echo(f"rule {setting.rule_id} enabled for tenant {setting.tenant}")


# --- exceptions ----------------------------------------------------------------------------------------------

def exception_add(
    rule_id: Annotated[str, typer.Argument(help="The rule's id, or * for every rule of the tenant")],
    tenant: TenantOption,
    field: Annotated[list[str], typer.Option("--field", "-f", help="FIELD=VALUE (repeatable; every field must "
                                                                   "hold, one field given twice means either value)")],
    reason: Annotated[str, typer.Option("--reason", help="Why these events are accepted (kept in the audit trail)")],
    expires: Annotated[str, typer.Option("--expires", help="30d, 12h, 2w from now, or an ISO 8601 time")],
    rules: RulesOption = None,
    allow_unknown_field: Annotated[bool, typer.Option(
        "--allow-unknown-field", help="Accept a field no civicsoc collector writes (e.g. of NDJSON imports)")] = False,
    no_check: Annotated[bool, typer.Option("--no-check", help="Do not require the rule to be loaded now")] = False,
) -> None:
    """Stop matching events from alerting: every FIELD=VALUE must hold (case-insensitive), until it expires."""
    from detection.suppression import ANY_RULE, add_exception, parse_conditions

    with _reported():
        now = datetime.now(UTC)
        expires_at = parse_expiry(expires, now)
        conditions = parse_conditions(field)
        config = _settings()
        known = None if no_check or rule_id == ANY_RULE else {rule.id for rule in _rules(config, rules,
                                                                                          quiet=True).loaded}
        with _open(config) as store:
            created = add_exception(store, _tenant(tenant), rule_id, conditions, reason, expires_at, OPERATOR,
                                    known_rule_ids=known, allow_unknown_fields=allow_unknown_field, now=now)
    typer.echo(created.id)
    typer.echo(f"exception {created.id} for rule {created.rule_id} of tenant {created.tenant}: "
               f"{_conditions_text(created.conditions)}, expires {_when(created.expires_at)} UTC", err=True)


def exception_list(
    tenant: TenantOption,
    include_all: Annotated[bool, typer.Option("--all", help="Also list expired and revoked exceptions")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the exceptions as JSON")] = False,
) -> None:
    """List a tenant's exceptions in force (with --all, also the expired and revoked ones)."""
    from civicsoc.cli import out
    from civicsoc.store import Scope
    from detection.suppression import is_active, list_exceptions

    now = datetime.now(UTC)
    with _reported(), _open(_settings()) as store:
        found = list_exceptions(store, Scope.of(_tenant(tenant)), now=now, include_inactive=include_all)

    def state(record: Any) -> str:
        if record.revoked_at is not None:
            return f"revoked {_when(record.revoked_at)}"
        return "active" if is_active(record, now) else "expired"

    if as_json:
        out.print_json(json.dumps([{**record.model_dump(mode="json"), "state": state(record).split()[0]}
                                   for record in found]))
        return
    table = Table(Column("id", min_width=max((len(record.id) for record in found), default=2)), "rule", "conditions",
                  "reason", "expires (UTC)", "state", "by")
    for record in found:
        table.add_row(record.id, record.rule_id, _conditions_text(record.conditions), record.reason,
                      _when(record.expires_at), state(record), record.created_by)
    out.print(table)
    out.print(f"{len(found)} exception{'s' if len(found) != 1 else ''}", highlight=False)


def exception_revoke(
    exception_id: Annotated[str, typer.Argument(help="The exception's id (ex-...)")],
    tenant: TenantOption,
) -> None:
    """End an exception now; it stays listed (with --all) and in the audit trail."""
    from detection.suppression import revoke_exception

    with _reported(), _open(_settings()) as store:
        revoked = revoke_exception(store, _tenant(tenant), exception_id, OPERATOR)
    typer.echo(f"exception {revoked.id} revoked at {_when(revoked.revoked_at)} UTC")
