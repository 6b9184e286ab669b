"""API tokens, tenants and who a caller is.

A token reads ``cs_<id>_<secret>``. The id finds the stored ``Token``; only an argon2 hash of the
secret is kept, so a stolen store reveals no usable token. Verifying argon2 costs tens of
milliseconds by design, so a successful verification is remembered (by a SHA-256 of the whole token)
for as long as the stored hash stays the same; revocation and expiry are still checked against the
store on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from civicsoc import audit
from civicsoc.config import TENANT_PATTERN
from civicsoc.errors import AlreadyExists, CivicsocError, NotFound
from civicsoc.records import Role, Tenant, Token, utcnow
from civicsoc.store import RecordQuery, Scope, Store

TOKEN_SHAPE = re.compile(r"^cs_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")
TENANT_SHAPE = re.compile(TENANT_PATTERN)
_hasher = PasswordHasher()


class Permission(StrEnum):
    read = "read"
    triage = "triage"
    export = "export"
    ingest = "ingest"
    admin = "admin"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.analyst: frozenset({Permission.read, Permission.triage}),
    Role.compliance: frozenset({Permission.read, Permission.export}),
    Role.collector: frozenset({Permission.ingest}),
    Role.viewer: frozenset({Permission.read}),
}


class AuthenticationFailed(CivicsocError):
    """No token, a malformed one, an unknown one, a wrong secret, a revoked or an expired token.

    The message is for the server log; callers get one undifferentiated 401, so probing learns nothing.
    """


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id and name (the audit actor), role and tenants."""

    token_id: str
    name: str
    role: Role
    tenants: frozenset[str]

    @property
    def actor(self) -> str:
        return f"{self.name} ({self.token_id})"

    @property
    def scope(self) -> Scope:
        return Scope.all() if self.role is Role.admin else Scope(self.tenants)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @classmethod
    def system(cls, name: str = "civicsoc") -> Principal:
        """The pipeline itself, for audit records of automatic changes."""
        return cls("system", name, Role.admin, frozenset())


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: Token
    secret: str
    """The whole bearer token; shown once, never stored."""


def create_tenant(store: Store, tenant: str, name: str, actor: str) -> Tenant:
    if not TENANT_SHAPE.match(tenant):
        raise CivicsocError(f"tenant {tenant!r}: expected lowercase letters, digits and '-' ({TENANT_PATTERN})")
    record = Tenant(id=tenant, tenant=tenant, name=name or tenant)
    store.records(Tenant).create(Scope.all(), record)
    audit.append(store, tenant=tenant, actor=actor, action="tenant.create", target=f"tenants/{tenant}",
                 after={"name": record.name})
    return record


def ensure_tenant(store: Store, tenant: str, actor: str, name: str = "") -> Tenant:
    try:
        return store.records(Tenant).get(Scope.all(), tenant).record
    except NotFound:
        try:
            return create_tenant(store, tenant, name, actor)
        except AlreadyExists:
            return store.records(Tenant).get(Scope.all(), tenant).record


def list_tenants(store: Store, scope: Scope) -> list[Tenant]:
    page = store.records(Tenant).list(scope, RecordQuery(sort="id", descending=False, limit=5000))
    return [item.record for item in page.items]


def create_token(
    store: Store,
    *,
    tenant: str,
    role: Role,
    name: str,
    actor: str,
    expires_at: datetime | None = None,
    tenants: list[str] | None = None,
) -> IssuedToken:
    """Issue a token for ``tenant`` (and any further ``tenants``); its tenants must exist."""
    all_tenants = sorted({tenant, *(tenants or [])})
    for each in all_tenants:
        store.records(Tenant).get(Scope.all(), each)  # NotFound names the missing tenant
    if expires_at is not None and expires_at <= utcnow():
        raise CivicsocError(f"token expiry {expires_at.isoformat()}: expected a time in the future")
    token_id = secrets.token_hex(8)
    secret = f"cs_{token_id}_{secrets.token_urlsafe(32)}"
    record = Token(id=token_id, tenant=tenant, name=name, role=role, tenants=all_tenants,
                   secret_hash=_hasher.hash(secret), created_by=actor, expires_at=expires_at)
    store.records(Token).create(Scope.all(), record)
    audit.append(store, tenant=tenant, actor=actor, action="token.create", target=f"tokens/{token_id}",
                 after={"name": name, "role": role.value, "tenants": all_tenants,
                        "expires_at": expires_at.isoformat() if expires_at else None})
    return IssuedToken(record, secret)


def revoke_token(store: Store, scope: Scope, token_id: str, actor: str) -> Token:
    current = store.records(Token).get(scope, token_id)
    if current.record.revoked_at is not None:
        return current.record
    revoked = current.record.model_copy(update={"revoked_at": utcnow()})
    store.records(Token).update(scope, revoked, current.version)
    audit.append(store, tenant=revoked.tenant, actor=actor, action="token.revoke", target=f"tokens/{token_id}",
                 before={"revoked_at": None}, after={"revoked_at": revoked.revoked_at.isoformat()})
    return revoked


def list_tokens(store: Store, scope: Scope) -> list[Token]:
    page = store.records(Token).list(scope, RecordQuery(limit=5000))
    return [item.record for item in page.items]


class Authenticator:
    """Turns a bearer token into a ``Principal`` or raises ``AuthenticationFailed``.

    Verification is single-flight per presented token: requests that arrive with a token while it is
    being verified wait for that one verification instead of each running argon2 (tens of milliseconds
    and 64 MiB apiece), which after a restart made 50 analysts' first requests take seconds.
    """

    def __init__(self, store: Store, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.hasher = hasher or _hasher
        self._verified: dict[str, str] = {}
        """SHA-256 of a presented token → the stored hash it was verified against."""
        self._in_flight: dict[tuple[str, str], Future[bool]] = {}
        """(SHA-256 of a presented token, stored hash) → the verification running for it."""
        self._lock = threading.Lock()

    def authenticate(self, presented: str | None, now: datetime | None = None) -> Principal:
        if not presented:
            raise AuthenticationFailed("no bearer token")
        shape = TOKEN_SHAPE.match(presented)
        if shape is None:
            raise AuthenticationFailed("malformed token")
        try:
            token = self.store.records(Token).get(Scope.all(), shape.group(1)).record
        except NotFound:
            raise AuthenticationFailed(f"unknown token id {shape.group(1)}") from None
        if token.revoked_at is not None:
            raise AuthenticationFailed(f"token {token.id} was revoked")
        if token.expires_at is not None and token.expires_at <= (now or utcnow()):
            raise AuthenticationFailed(f"token {token.id} expired")
        fingerprint = hashlib.sha256(presented.encode()).hexdigest()
        if self._verified.get(fingerprint) != token.secret_hash and not self._verify(fingerprint, token, presented):
            raise AuthenticationFailed(f"wrong secret for token {token.id}")
        return Principal(token.id, token.name, token.role, frozenset(token.tenants))

    def _verify(self, fingerprint: str, token: Token, presented: str) -> bool:
        """Verify ``presented`` against the token's hash once, however many requests ask at the same time."""
        key = (fingerprint, token.secret_hash)
        with self._lock:
            if self._verified.get(fingerprint) == token.secret_hash:  # verified while we were looking
                return True
            flight = self._in_flight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._in_flight[key] = Future()
        if not leader:
            return flight.result()
        try:
            try:
                self.hasher.verify(token.secret_hash, presented)
                verified = True
            except (VerificationError, InvalidHashError):
                verified = False
            with self._lock:
                if verified:
                    self._verified[fingerprint] = token.secret_hash
                del self._in_flight[key]
            flight.set_result(verified)
        except BaseException as exc:  # anything else (e.g. out of memory): the waiters fail the same way
            with self._lock:
                self._in_flight.pop(key, None)
            flight.set_exception(exc)
            raise
        return verified
