"""What every route depends on: the services, the caller, and the version it edits against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from civicsoc.store import Store
from civicsoc.tokens import AuthenticationFailed, Authenticator, Permission, Principal


@dataclass
class Services:
    """Everything the routes call into, built once per app."""

    store: Store
    authenticator: Authenticator
    ruleset: Any = None
    """The loaded ``detection.rules.RuleSet`` (``None``: the rule routes answer with an empty list)."""
    playbooks: Any = None
    """The loaded playbook library (``None`` until playbooks are configured)."""
    extra: dict[str, Any] = field(default_factory=dict)


def services(request: Request) -> Services:
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="An API token from `civicsoc token create`")


def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    try:
        principal = services(request).authenticator.authenticate(credentials.credentials if credentials else None)
    except AuthenticationFailed:
        # One answer for every failure (missing, unknown, revoked, expired, wrong): probing learns nothing.
        raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.principal = principal
    return principal


def requires(*permissions: Permission) -> Callable[..., Principal]:
    """A dependency admitting a caller that holds any one of ``permissions``."""

    def check(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if not any(principal.can(permission) for permission in permissions):
            raise HTTPException(403, f"the {principal.role.value} role may not "
                                     f"{' or '.join(p.value for p in permissions)}")
        return principal

    return check


Reader = Annotated[Principal, Depends(requires(Permission.read))]
Triager = Annotated[Principal, Depends(requires(Permission.triage))]
Exporter = Annotated[Principal, Depends(requires(Permission.export))]
Ingester = Annotated[Principal, Depends(requires(Permission.ingest))]
Admin = Annotated[Principal, Depends(requires(Permission.admin))]
Submitter = Annotated[Principal, Depends(requires(Permission.triage, Permission.export))]
"""Records regulatory submissions: the analysts who triage and the compliance team who files reports."""
ServicesDep = Annotated[Services, Depends(services)]


def if_match(if_match: Annotated[str | None, Header(description="The ETag the change is based on")] = None) -> str:
    """The version an edit is based on; edits without one are refused (428), never applied blindly."""
    if not if_match:
        raise HTTPException(428, "this change needs an If-Match header with the ETag you read")
    return if_match.strip().removeprefix("W/").strip('"')


IfMatch = Annotated[str, Depends(if_match)]


def etag(version: str) -> str:
    return f'"{version}"'
