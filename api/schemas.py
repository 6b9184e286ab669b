"""Request and response bodies of the API (records go out as the store's own pydantic models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from civicsoc.records import (
    Alert,
    AlertStatus,
    CollectorStatus,
    Comment,
    Incident,
    IncidentStatus,
    NotificationRegime,
    Role,
    Severity,
    Submission,
    Token,
)
from civicsoc.store import Versioned

T = TypeVar("T")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentOut(Incident):
    version: str
    next_deadline: dict[str, Any] | None = Field(
        None, description="With deadlines=true or due_within: the earliest deadline still to be met")


class AlertOut(Alert):
    version: str


def incident_out(item: Versioned[Incident], next_deadline: dict[str, Any] | None = None) -> IncidentOut:
    return IncidentOut(**dict(item.record), version=item.version, next_deadline=next_deadline)


def alert_out(item: Versioned[Alert]) -> AlertOut:
    return AlertOut(**dict(item.record), version=item.version)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")


class IncidentChange(Body):
    """Fields to change; each is optional, and all apply against the version in If-Match."""

    status: IncidentStatus | None = None
    duplicate_of: str | None = Field(None, description="With status=duplicate: the incident this one duplicates")
    assignee: str | None = Field(None, max_length=200, description="Empty string unassigns")
    severity: Severity | None = None
    severity_reason: str | None = Field(None, max_length=2000)
    significant: bool | None = Field(None, description="Confirm the incident significant (starts NIS2/GDPR clocks)")
    nis2: bool | None = Field(None, description="NIS2 Art. 23 reporting applies")
    gdpr: bool | None = Field(None, description="A personal data breach: GDPR Art. 33 notification applies")
    gdpr_aware_at: datetime | None = Field(None, description="When the breach became known, if not at significance")


class CommentIn(Body):
    text: str = Field(min_length=1, max_length=20_000)


class MergeIn(Body):
    source_id: str = Field(min_length=1, description="The incident whose alerts move into this one")


class SplitIn(Body):
    alert_ids: list[str] = Field(min_length=1)


class SplitOut(BaseModel):
    remaining: IncidentOut
    created: IncidentOut


class BulkIn(Body):
    ids: list[str] = Field(min_length=1, max_length=500)
    status: IncidentStatus | None = None
    assignee: str | None = Field(None, max_length=200)


class BulkResultItem(BaseModel):
    id: str
    ok: bool
    error: str | None = None


class EventOut(BaseModel):
    id: str
    tenant: str
    timestamp: datetime
    fields: dict[str, Any]


class IncidentDetailOut(BaseModel):
    incident: IncidentOut
    alerts: list[Alert]
    timeline: list[EventOut]
    comments: list[Comment]
    playbooks: list[dict[str, Any]] = []
    deadlines: list[dict[str, Any]] = []
    submissions: list[Submission] = []


class FalsePositiveIn(Body):
    reason: str = Field("", max_length=2000)
    create_exception: bool = Field(False, description="Also stop this rule alerting on events like this one")
    exception_fields: list[str] = Field(default_factory=list,
                                        description="Fields of the alert whose values the exception matches")
    exception_days: int = Field(90, ge=1, le=3650)


class HeartbeatIn(Body):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1, max_length=50)
    hostname: str = Field("", max_length=255)
    sources: list[str] = Field(default_factory=list, max_length=1000)
    lag_seconds: float = Field(0.0, ge=0)
    events_total: int = Field(0, ge=0)
    errors: int = Field(0, ge=0)
    dead_letters: int = Field(0, ge=0)
    details: dict[str, Any] = Field(default_factory=dict)


class CollectorOut(CollectorStatus):
    health: str = Field(description="ok, lagging, failing or silent")
    seconds_since_seen: float


class TokenIn(Body):
    tenant: str
    role: Role
    name: str = Field(min_length=1, max_length=200)
    tenants: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    tenant: str
    tenants: list[str]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: Token) -> TokenOut:
        return cls(**token.model_dump(exclude={"secret_hash"}))


class IssuedTokenOut(TokenOut):
    secret: str = Field(description="The bearer token; shown only in this answer")


class TenantIn(Body):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field("", max_length=200)
    notification_regime: NotificationRegime = NotificationRegime.eu


class TenantChange(Body):
    notification_regime: NotificationRegime = Field(
        description="eu: NIS2 (24 h/72 h/1 month) and GDPR Art. 33 clocks; us-federal: CISA's 1 h instead of NIS2")


MAX_SUBMISSION_BYTES = 10 * 1024 * 1024


class SubmissionIn(Body):
    """A report sent to an authority: give the exact file sent (base64; its SHA-256 is computed here) or,
    when the file stays elsewhere, its SHA-256."""

    clock: str = Field(description="The deadline it answers, e.g. nis2-early-warning, gdpr-breach-notification")
    submitted_at: datetime | None = Field(None, description="When it was sent (default: now)")
    content_base64: str | None = Field(None, max_length=(MAX_SUBMISSION_BYTES + 2) // 3 * 4)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    filename: str = Field("", max_length=300)
    recipient: str = Field("", max_length=300, description="The CSIRT, competent or supervisory authority")
    reference: str = Field("", max_length=300, description="The authority's case or receipt number")
    note: str = Field("", max_length=5000)

    @model_validator(mode="after")
    def _content_or_hash(self) -> SubmissionIn:
        if self.content_base64 is None and self.sha256 is None:
            raise ValueError("give content_base64 (the file sent) or sha256 (its hash)")
        return self


class RuleOut(BaseModel):
    id: str
    title: str
    level: str
    tags: list[str]
    logsource: dict[str, str | None]
    correlation: bool
    alerts: int
    enabled: bool
    """False when the rule is disabled in any tenant the caller sees (``disabled_in`` says which)."""
    disabled_in: list[str] = []


class RuleToggleIn(Body):
    tenant: str
    reason: str = Field("", max_length=2000)


class RuleTestIn(Body):
    rule: str = Field(min_length=1, max_length=200_000, description="Sigma rule YAML (one or more documents)")
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000,
                                         description="ECS events to test against")
    start: datetime | None = Field(None, alias="from", description="Or: stored events from this time")
    end: datetime | None = Field(None, alias="to")
    tenant: str | None = None
    limit: int = Field(1000, ge=1, le=10_000)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RuleTestMatch(BaseModel):
    rule_id: str
    rule_title: str
    level: str
    event_ids: list[str]
    event_index: list[int] = Field(default_factory=list, description="Positions in `events` of the matched events")


class RuleTestOut(BaseModel):
    rules: list[str]
    events_tested: int
    matches: list[RuleTestMatch]
    errors: list[str]


class AlertStatusIn(Body):
    status: AlertStatus
