"""Per-tenant suppression: rules a tenant disabled, and exceptions that keep chosen events from alerting.

An agency tunes detection without editing rules: it disables a rule that does not fit it, or excepts the
events a rule rightly matches but that are known and accepted (the backup server's nightly ``vssadmin``).
Every such choice is a stored record (``RuleSetting``, ``RuleException``) and an audit record, so an
auditor can see who silenced what, when and why — and an exception always expires.

The core is pure: ``Suppressions`` is a frozen view of one scope's choices at one time, and deciding
whether a finding alerts is a couple of dict look-ups plus, only for rules with exceptions, the exceptions'
field tests. Reading and writing the records are the edge functions below; the streaming hook keeps a
``SuppressionCache`` so it never reads the store per event.

Semantics, stated once:

- A disabled rule raises no alert for that tenant. Its matches still feed the correlations that reference
  it: disabling a rule silences *its* alerts, not another rule that counts its matches.
- An exception applies to one rule of one tenant, or to every rule (``rule_id`` ``*``). It holds for an
  event when every condition holds; a condition holds when the field (a dotted ECS path, read as the
  detection engine reads it: nested objects, lists element-wise, numbers and booleans as text) has one of
  the condition's values, compared case-insensitively as Sigma compares. A correlation's finding is
  excepted only when the exception holds for each of its events.
- An exception that expired or was revoked never applies.
"""

from __future__ import annotations

import difflib
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from civicsoc import audit
from civicsoc.config import TENANT_PATTERN
from civicsoc.errors import AlreadyExists, CivicsocError, NotFound, VersionConflict
from civicsoc.records import Record, RuleException, RuleSetting, utcnow
from civicsoc.store import RecordQuery, Scope, Store, TimeRange
from civicsoc.store.base import FIELD_NAME, MAX_PAGE
from detection.fields import resolve, split_path, texts_of

ANY_RULE = "*"
"""An exception's ``rule_id`` meaning "every rule"."""
MAX_EXCEPTION_LIFETIME = timedelta(days=366)
"""Longest an exception may run: an accepted risk is reviewed at least yearly (a rule that never fits a
tenant is disabled instead, which is as visible and needs no expiry)."""
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
RETRIES = 8
DEFAULT_REFRESH_SECONDS = 30.0

TENANT_SHAPE = re.compile(TENANT_PATTERN)

R = TypeVar("R", bound=Record)


class SuppressionError(CivicsocError):
    """A disable, exception or revocation that cannot be done as asked; the message says what to fix."""


# --- the pure core ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Suppressed:
    """Why a rule's finding raises no alert: the rule is disabled, or an exception (``exception_id``) holds."""

    rule_id: str
    tenant: str
    reason: str
    exception_id: str | None = None

    @property
    def disabled(self) -> bool:
        return self.exception_id is None

    def __str__(self) -> str:
        if self.exception_id is None:
            return f"rule {self.rule_id} is disabled for tenant {self.tenant}: {self.reason}"
        return f"exception {self.exception_id} of tenant {self.tenant} holds: {self.reason}"


@dataclass(frozen=True, slots=True)
class Condition:
    """One field of an exception and the values it may hold (kept lower-cased)."""

    field: str
    values: frozenset[str]
    _parts: tuple[str, ...]
    _rests: tuple[str, ...]

    @classmethod
    def of(cls, name: str, values: Iterable[str]) -> Condition:
        parts, rests = split_path(name)
        return cls(name, frozenset(value.lower() for value in values), parts, rests)

    def holds(self, document: dict[str, Any]) -> bool:
        # detection.fields reads the path exactly as the matcher does (nested dicts, literal dotted keys,
        # lists element-wise), so an exception sees the same value a rule saw.
        value = resolve(document, self._parts, self._rests)
        return any(text.lower() in self.values for text in texts_of(value))


@dataclass(frozen=True, slots=True)
class ActiveException:
    """A ``RuleException`` in force, ready to test events."""

    id: str
    tenant: str
    rule_id: str
    reason: str
    expires_at: datetime
    conditions: tuple[Condition, ...]

    @classmethod
    def of(cls, record: RuleException) -> ActiveException:
        conditions = tuple(Condition.of(name, values) for name, values in sorted(record.conditions.items()))
        return cls(record.id, record.tenant, record.rule_id, record.reason, record.expires_at, conditions)

    def holds(self, document: dict[str, Any]) -> bool:
        return all(condition.holds(document) for condition in self.conditions)


def is_active(exception: RuleException, now: datetime) -> bool:
    """Neither revoked nor expired at ``now``."""
    return exception.revoked_at is None and exception.expires_at > now


@dataclass(frozen=True)
class Suppressions:
    """The disabled rules and active exceptions of some tenants at one moment (``built_at``).

    ``valid_until`` is the earliest expiry among the exceptions in the view: from then on the view holds
    an exception that no longer applies, so a cache must rebuild it (``SuppressionCache`` does).
    """

    built_at: datetime
    disabled: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(tenant, rule id) → why it was disabled."""
    exceptions: Mapping[tuple[str, str], tuple[ActiveException, ...]] = field(default_factory=dict)
    """(tenant, rule id or ``*``) → the exceptions in force for it."""
    valid_until: datetime | None = None

    @classmethod
    def build(cls, settings: Iterable[RuleSetting], exceptions: Iterable[RuleException],
              now: datetime) -> Suppressions:
        disabled = {(setting.tenant, setting.rule_id): setting.reason for setting in settings if not setting.enabled}
        grouped: dict[tuple[str, str], list[ActiveException]] = {}
        for record in exceptions:
            if is_active(record, now):
                grouped.setdefault((record.tenant, record.rule_id), []).append(ActiveException.of(record))
        active = {key: tuple(sorted(items, key=lambda item: item.id)) for key, items in grouped.items()}
        expiries = [item.expires_at for items in active.values() for item in items]
        return cls(now, MappingProxyType(disabled), MappingProxyType(active), min(expiries) if expiries else None)

    @classmethod
    def empty(cls, now: datetime | None = None) -> Suppressions:
        return cls(now or utcnow())

    def __bool__(self) -> bool:
        return bool(self.disabled or self.exceptions)

    def is_disabled(self, tenant: str, rule_id: str) -> bool:
        return (tenant, rule_id) in self.disabled

    def exceptions_for(self, tenant: str, rule_id: str) -> tuple[ActiveException, ...]:
        """The exceptions that may hold for a rule: its own and the tenant's every-rule ones."""
        return self.exceptions.get((tenant, rule_id), ()) + self.exceptions.get((tenant, ANY_RULE), ())

    def check(self, rule_id: str, tenant: str, documents: Sequence[dict[str, Any]]) -> Suppressed | None:
        """Why a finding of ``rule_id`` over ``documents`` (its events' fields) must not alert, or ``None``."""
        if not self.disabled and not self.exceptions:
            return None
        reason = self.disabled.get((tenant, rule_id))
        if reason is not None:
            return Suppressed(rule_id, tenant, reason or "disabled")
        if not documents:
            return None
        for exception in self.exceptions_for(tenant, rule_id):
            if all(exception.holds(document) for document in documents):
                return Suppressed(rule_id, tenant, exception.reason, exception.id)
        return None

    def why_not(self, rule_id: str, tenant: str, event_fields: dict[str, Any]) -> Suppressed | None:
        """Why a match of ``rule_id`` on one event (its ECS fields) must not alert, or ``None``."""
        return self.check(rule_id, tenant, (event_fields,))

    def allows(self, rule_id: str, tenant: str, event_fields: dict[str, Any]) -> bool:
        return self.why_not(rule_id, tenant, event_fields) is None

    def check_finding(self, finding: Any) -> Suppressed | None:
        """``check`` for a ``detection.findings.Finding``, in the tenant its alert would belong to."""
        return self.check(finding.rule.id, finding.first.tenant, [event.fields for event in finding.events])


# --- validation ---------------------------------------------------------------------------------------------

def parse_conditions(pairs: Iterable[str]) -> dict[str, list[str]]:
    """``["host.name=srv1", "host.name=srv2", "user.name=backup"]`` → ``{"host.name": ["srv1", "srv2"],
    "user.name": ["backup"]}`` (one field given twice means either value)."""
    conditions: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SuppressionError(f"condition {pair!r}: expected FIELD=VALUE, e.g. host.name=backup-01")
        values = conditions.setdefault(name.strip(), [])
        if value not in values:
            values.append(value)
    return conditions


def validate_conditions(conditions: Mapping[str, Sequence[str]], *,
                        allow_unknown_fields: bool = False) -> dict[str, list[str]]:
    """Check an exception's conditions; the error names the field and what was expected.

    A field no collector writes would make the exception silently never apply, so it is refused unless
    ``allow_unknown_fields`` (events imported as NDJSON may carry fields of their own)."""
    from detection.health import known_event_fields, produced_anywhere

    if not conditions:
        raise SuppressionError("conditions: give at least one FIELD=VALUE (an exception without conditions would "
                               "silence the rule entirely; disable the rule instead)")
    checked: dict[str, list[str]] = {}
    for name, values in conditions.items():
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            raise SuppressionError(f"condition field {name!r}: expected a dotted ECS field name such as host.name")
        if not allow_unknown_fields and not produced_anywhere(name):
            close = difflib.get_close_matches(name, known_event_fields(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise SuppressionError(f"condition field {name!r}: no civicsoc collector writes this field, so the "
                                   f"exception would never apply{hint}")
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise SuppressionError(f"condition {name}: expected a list of one or more values")
        for value in values:
            if not isinstance(value, str) or not value.strip():
                raise SuppressionError(f"condition {name}: expected non-empty text values, got {value!r}")
        checked[name] = list(dict.fromkeys(values))
    return checked


def _check_rule_id(rule_id: str, known_rule_ids: Collection[str] | None, *, wildcard: bool) -> None:
    if not rule_id or not rule_id.strip():
        raise SuppressionError("rule id: expected a rule id" + (" or * for every rule" if wildcard else ""))
    if rule_id == ANY_RULE:
        if not wildcard:
            raise SuppressionError("rule id *: a rule is disabled one at a time (an exception may name *)")
        return
    if known_rule_ids is not None and rule_id not in known_rule_ids:
        close = difflib.get_close_matches(rule_id, list(known_rule_ids), n=1)
        raise SuppressionError(f"rule id {rule_id!r}: no loaded rule has it"
                               + (f"; did you mean {close[0]}?" if close else " (civicsoc rules check lists them)"))


def _check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT_SHAPE.match(tenant):
        raise SuppressionError(f"tenant {tenant!r}: expected lowercase letters, digits, '_' and '-' (at most 63)")
    return tenant


def _check_reason(reason: str, what: str) -> str:
    if not reason or not reason.strip():
        raise SuppressionError(f"reason: {what} needs a reason (it goes into the audit trail)")
    return reason.strip()


# --- edge functions: reading and writing the records --------------------------------------------------------

def _every(store: Store, record_type: type[R], scope: Scope, query: RecordQuery) -> Iterator[R]:
    collection = store.records(record_type)
    cursor: str | None = None
    while True:
        page = collection.list(scope, replace(query, cursor=cursor))
        for item in page.items:
            yield item.record
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def list_settings(store: Store, scope: Scope) -> list[RuleSetting]:
    """Every rule setting in ``scope`` (a tenant's handful of tuned rules, so read whole)."""
    return list(_every(store, RuleSetting, scope, RecordQuery(sort="id", descending=False, limit=MAX_PAGE)))


def list_exceptions(store: Store, scope: Scope, *, now: datetime | None = None,
                    include_inactive: bool = False) -> list[RuleException]:
    """The exceptions in ``scope``: those in force at ``now``, or with ``include_inactive`` every one."""
    moment = now or utcnow()
    if include_inactive:
        query = RecordQuery(sort="id", descending=False, limit=MAX_PAGE)
    else:
        query = RecordQuery(time_field="expires_at", time=TimeRange(moment, FAR_FUTURE), sort="id",
                            descending=False, limit=MAX_PAGE)
    found = _every(store, RuleException, scope, query)
    return [record for record in found if include_inactive or is_active(record, moment)]


def load_suppressions(store: Store, scope: Scope, now: datetime | None = None) -> Suppressions:
    """The suppressions in force in ``scope`` at ``now`` (two listings: settings and active exceptions)."""
    moment = now or utcnow()
    return Suppressions.build(list_settings(store, scope), list_exceptions(store, scope, now=moment), moment)


def disable_rule(store: Store, tenant: str, rule_id: str, actor: str, reason: str, *,
                 known_rule_ids: Collection[str] | None = None, now: datetime | None = None) -> RuleSetting:
    """Disable ``rule_id`` for ``tenant`` (audited); ``known_rule_ids``, when given, must contain it."""
    _check_tenant(tenant)
    _check_rule_id(rule_id, known_rule_ids, wildcard=False)
    return _set_enabled(store, tenant, rule_id, actor, False, _check_reason(reason, "disabling a rule"), now)


def enable_rule(store: Store, tenant: str, rule_id: str, actor: str, reason: str = "", *,
                now: datetime | None = None) -> RuleSetting:
    """Enable ``rule_id`` again for ``tenant`` (audited). Enabling a rule that is not disabled changes nothing."""
    _check_tenant(tenant)
    _check_rule_id(rule_id, None, wildcard=False)
    return _set_enabled(store, tenant, rule_id, actor, True, reason.strip(), now)


def _set_enabled(store: Store, tenant: str, rule_id: str, actor: str, enabled: bool, reason: str,
                 now: datetime | None) -> RuleSetting:
    collection = store.records(RuleSetting)
    scope = Scope.of(tenant)
    setting_id = RuleSetting.id_for(tenant, rule_id)
    for _ in range(RETRIES):
        try:
            current = collection.get(scope, setting_id)
        except NotFound:
            current = None
        was_enabled = current.record.enabled if current is not None else True
        if was_enabled == enabled and (current is None or current.record.reason == reason or enabled):
            # Nothing changes: no write and no audit record for a no-op.
            if current is not None:
                return current.record
            return RuleSetting(id=setting_id, tenant=tenant, rule_id=rule_id, enabled=True, updated_by=actor,
                               updated_at=now or utcnow())
        changed = RuleSetting(id=setting_id, tenant=tenant, rule_id=rule_id, enabled=enabled, reason=reason,
                              updated_by=actor, updated_at=now or utcnow())
        try:
            if current is None:
                collection.create(scope, changed)
            else:
                collection.update(scope, changed, current.version)
        except (AlreadyExists, VersionConflict):
            continue  # someone else changed it meanwhile: read again
        before = {"enabled": was_enabled, "reason": current.record.reason if current is not None else ""}
        audit.append(store, tenant=tenant, actor=actor, action="rule.enable" if enabled else "rule.disable",
                     target=f"{RuleSetting.collection}/{setting_id}", before=before,
                     after={"enabled": enabled, "reason": reason}, at=changed.updated_at)
        return changed
    raise VersionConflict(RuleSetting.collection, setting_id, "(kept changing while being written)")


def add_exception(store: Store, tenant: str, rule_id: str, conditions: Mapping[str, Sequence[str]], reason: str,
                  expires_at: datetime, actor: str, *, known_rule_ids: Collection[str] | None = None,
                  allow_unknown_fields: bool = False, now: datetime | None = None) -> RuleException:
    """Store an exception for ``rule_id`` (or ``*``) of ``tenant`` and audit it; every input is checked first."""
    moment = now or utcnow()
    _check_tenant(tenant)
    _check_rule_id(rule_id, known_rule_ids, wildcard=True)
    checked = validate_conditions(conditions, allow_unknown_fields=allow_unknown_fields)
    why = _check_reason(reason, "an exception")
    if expires_at.tzinfo is None:
        raise SuppressionError(f"expiry {expires_at.isoformat()}: expected a time with a time zone (UTC)")
    if expires_at <= moment:
        raise SuppressionError(f"expiry {expires_at.isoformat()}: expected a time in the future (now is "
                               f"{moment.isoformat(timespec='seconds')})")
    if expires_at - moment > MAX_EXCEPTION_LIFETIME:
        raise SuppressionError(f"expiry {expires_at.isoformat()}: at most {MAX_EXCEPTION_LIFETIME.days} days ahead "
                               "(exceptions are reviewed at least yearly; disable the rule if it never fits)")
    record = RuleException(id=f"ex-{secrets.token_hex(8)}", tenant=tenant, rule_id=rule_id, conditions=checked,
                           reason=why, expires_at=expires_at, created_by=actor, created_at=moment)
    store.records(RuleException).create(Scope.of(tenant), record)
    audit.append(store, tenant=tenant, actor=actor, action="rule_exception.create",
                 target=f"{RuleException.collection}/{record.id}", before={},
                 after={"rule_id": rule_id, "conditions": checked, "reason": why,
                        "expires_at": record.expires_at.isoformat()}, at=moment)
    return record


def revoke_exception(store: Store, tenant: str, exception_id: str, actor: str, *,
                     now: datetime | None = None) -> RuleException:
    """End an exception now (audited). It stays stored, revoked, so the trail and listings keep it."""
    collection = store.records(RuleException)
    scope = Scope.of(tenant)
    for _ in range(RETRIES):
        current = collection.get(scope, exception_id)  # NotFound also for another tenant's exception
        if current.record.revoked_at is not None:
            raise SuppressionError(f"exception {exception_id}: already revoked at "
                                   f"{current.record.revoked_at.isoformat(timespec='seconds')}")
        moment = now or utcnow()
        revoked = current.record.model_copy(update={"revoked_at": moment})
        try:
            collection.update(scope, revoked, current.version)
        except VersionConflict:
            continue
        audit.append(store, tenant=tenant, actor=actor, action="rule_exception.revoke",
                     target=f"{RuleException.collection}/{exception_id}", before={"revoked_at": None},
                     after={"revoked_at": moment.isoformat()}, at=moment)
        return revoked
    raise VersionConflict(RuleException.collection, exception_id, "(kept changing while being revoked)")


class SuppressionCache:
    """A store's suppressions for the streaming hook, read again at most every ``refresh_seconds``.

    The stream decides per finding, thousands of times a second at worst; reading two collections each
    time would make the store the bottleneck. A change made through the CLI or API therefore takes effect
    within ``refresh_seconds`` — and an exception stops applying the moment it expires, because the view
    is rebuilt once its ``valid_until`` has passed."""

    def __init__(self, store: Store, scope: Scope | None = None, *,
                 refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.scope = scope or Scope.all()
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._now = now
        self._view: Suppressions | None = None
        self._loaded_at = 0.0
        self.loads = 0

    def current(self) -> Suppressions:
        view = self._view
        if (view is None or self._clock() - self._loaded_at >= self.refresh_seconds
                or (view.valid_until is not None and self._now() >= view.valid_until)):
            view = self.refresh()
        return view

    def refresh(self) -> Suppressions:
        self._view = load_suppressions(self.store, self.scope, self._now())
        self._loaded_at = self._clock()
        self.loads += 1
        return self._view
