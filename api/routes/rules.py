"""Rules: the loaded rule set with its alert counts, per-tenant enable/disable, exceptions, and a
preview of what a rule would match (without raising alerts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from api.deps import Reader, ServicesDep, Triager
from api.params import as_utc
from api.schemas import Body, RuleOut, RuleTestIn, RuleTestMatch, RuleTestOut, RuleToggleIn
from civicsoc.errors import TenantDenied
from civicsoc.event import Event
from civicsoc.records import RuleException, RuleSetting
from civicsoc.store import EventQuery, RecordQuery, TimeRange
from civicsoc.tokens import Principal

router = APIRouter(prefix="/api/v1", tags=["rules"])


def _tenant(principal: Principal, tenant: str, collection: str = "rule_settings") -> str:
    if not principal.scope.allows(tenant):
        raise TenantDenied(collection, tenant)
    return tenant


@router.get("/rules", response_model=list[RuleOut])
def list_rules(
    principal: Reader,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=200, description="Text in the title or id")] = None,
    level: str | None = None,
    only_alerting: bool = False,
) -> list[RuleOut]:
    from detection.suppression import list_settings

    ruleset = services.ruleset
    if ruleset is None:
        return []
    counts = {b.key: b.count for b in services.store.alerts.count_by(principal.scope, RecordQuery(), "rule_id",
                                                                      size=10_000)}
    disabled: dict[str, list[str]] = {}
    for setting in list_settings(services.store, principal.scope):
        if not setting.enabled:
            disabled.setdefault(setting.rule_id, []).append(setting.tenant)
    needle = (q or "").lower()
    out = []
    for rule in ruleset.loaded:
        if needle and needle not in rule.title.lower() and needle not in rule.id.lower():
            continue
        if level and rule.level != level:
            continue
        if only_alerting and not counts.get(rule.id):
            continue
        out.append(RuleOut(id=rule.id, title=rule.title, level=rule.level or "", tags=list(rule.tags),
                           logsource={"category": rule.logsource.category, "product": rule.logsource.product,
                                      "service": rule.logsource.service},
                           correlation=rule.is_correlation, alerts=counts.get(rule.id, 0),
                           enabled=not disabled.get(rule.id), disabled_in=sorted(disabled.get(rule.id, []))))
    return out


@router.get("/rules/health")
def rules_health(principal: Reader, services: ServicesDep,
                 recent_hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24,
                 only_problems: bool = False) -> dict[str, Any]:
    """Per rule: loaded or skipped (why), Sigma fields no collector produces, whether events of its
    logsource arrived recently, when it last matched, where it is disabled: no rule fails silently."""
    from datetime import timedelta

    from detection.health import HealthTotals, rule_health

    if services.ruleset is None:
        return {"totals": None, "rules": []}
    items = rule_health(services.ruleset, services.store, principal.scope, recent=timedelta(hours=recent_hours))
    totals = HealthTotals.of(items)
    shown = [item for item in items if not item.ok] if only_problems else items
    return {"totals": totals.line(), "rules": [item.as_dict() for item in shown]}


@router.post("/rules/{rule_id}/disable", response_model=RuleSetting)
def disable(rule_id: str, body: RuleToggleIn, principal: Triager, services: ServicesDep) -> RuleSetting:
    """Stop a rule alerting for one tenant (a reason is required; audited)."""
    from detection.suppression import disable_rule

    known = services.ruleset.by_id() if services.ruleset is not None else None
    return disable_rule(services.store, _tenant(principal, body.tenant), rule_id, principal.actor, body.reason,
                        known_rule_ids=known)


@router.post("/rules/{rule_id}/enable", response_model=RuleSetting)
def enable(rule_id: str, body: RuleToggleIn, principal: Triager, services: ServicesDep) -> RuleSetting:
    from detection.suppression import enable_rule

    return enable_rule(services.store, _tenant(principal, body.tenant), rule_id, principal.actor, body.reason)


@router.post("/rules/test", response_model=RuleTestOut)
def test_rule(body: RuleTestIn, principal: Reader, services: ServicesDep) -> RuleTestOut:
    """What a rule (YAML) would match in the given events, or in stored events of a time range: a preview
    that raises no alert."""
    from detection.preview import load_rule_text, preview

    ruleset = load_rule_text(body.rule)
    errors = [f"{s.title or s.rule_id or 'rule'}: {s.reason}" for s in ruleset.skipped]
    if body.events and body.start is not None:
        raise HTTPException(422, "give events or a time range (from/to), not both")
    if body.events:
        events = [_event(document, position) for position, document in enumerate(body.events)]
    elif body.start is not None:
        start = as_utc(body.start)
        end = as_utc(body.end) or datetime.now(UTC)
        filters = {"organization.id": [_tenant(principal, body.tenant, "events")]} if body.tenant else {}
        events = []
        for event in services.store.iter_events(principal.scope, EventQuery.where(TimeRange(start, end), filters)):
            events.append(event)
            if len(events) >= body.limit:
                break
    else:
        raise HTTPException(422, "give sample events, or a time range of stored events (from/to)")
    position = {event.id: index for index, event in enumerate(events)}
    matches = []
    for finding in preview(ruleset, events):
        ids = [event.id for event in finding.events]
        matches.append(RuleTestMatch(rule_id=finding.rule.id, rule_title=finding.rule.title,
                                     level=finding.rule.level or "", event_ids=ids,
                                     event_index=[position[i] for i in ids] if body.events else []))
    return RuleTestOut(rules=[rule.id for rule in ruleset.loaded], events_tested=len(events), matches=matches,
                       errors=errors)


def _event(document: dict[str, Any], position: int) -> Event:
    """A sample event as given; id and time default to its position and now (only the rule needs them)."""
    stamp = document.get("@timestamp")
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else datetime.now(UTC)
    except ValueError:
        raise HTTPException(422, f"events[{position}].@timestamp: expected ISO 8601, got {stamp!r}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    event_id = str((document.get("event") or {}).get("id") or f"sample-{position}")
    return Event(event_id, "preview", moment.astimezone(UTC), document)


class ExceptionIn(Body):
    tenant: str
    rule_id: str = Field(min_length=1, description="A rule id, or * for every rule")
    conditions: dict[str, list[str]] = Field(min_length=1, description="ECS field → values (all fields must hold)")
    reason: str = Field(min_length=1, max_length=2000)
    expires_at: datetime


@router.get("/exceptions", response_model=list[RuleException])
def list_exceptions(principal: Reader, services: ServicesDep, include_inactive: bool = False) -> list[RuleException]:
    from detection.suppression import list_exceptions as listed

    return listed(services.store, principal.scope, include_inactive=include_inactive)


@router.post("/exceptions", response_model=RuleException, status_code=201)
def add_exception(body: ExceptionIn, principal: Triager, services: ServicesDep) -> RuleException:
    """Stop matching events of one tenant alerting (expiry and reason required; audited)."""
    from detection.suppression import add_exception as add

    known = services.ruleset.by_id() if services.ruleset is not None else None
    return add(services.store, _tenant(principal, body.tenant, "exceptions"), body.rule_id, body.conditions,
               body.reason, as_utc(body.expires_at) or body.expires_at, principal.actor, known_rule_ids=known)


@router.delete("/exceptions/{exception_id}", response_model=RuleException)
def revoke_exception(exception_id: str, principal: Triager, services: ServicesDep) -> RuleException:
    from detection.suppression import revoke_exception as revoke

    current = services.store.records(RuleException).get(principal.scope, exception_id).record
    return revoke(services.store, current.tenant, exception_id, principal.actor)
