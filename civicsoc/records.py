"""Domain records kept in the store besides events: alerts, incidents and the audit trail.

They are pydantic models (frozen: change one with ``model_copy(update=...)``) because they cross
the store and API edges as JSON and must be validated there. Free-form maps (``fields``,
``before``/``after``) are stored but not indexed; every other field can be filtered on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from civicsoc.config import TENANT_PATTERN
from civicsoc.event import format_timestamp


def utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("expected a time with a time zone (civicsoc stores UTC)")
    return moment.astimezone(UTC)


UtcDateTime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    # One fixed-width form (microseconds, Z) so that stored strings sort in time order.
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]


class Severity(StrEnum):
    """Sigma's levels, which double as incident severities."""

    informational = "informational"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class AlertStatus(StrEnum):
    new = "new"
    acknowledged = "acknowledged"
    false_positive = "false_positive"


class IncidentStatus(StrEnum):
    new = "new"
    acknowledged = "acknowledged"
    investigating = "investigating"
    contained = "contained"
    resolved = "resolved"
    false_positive = "false_positive"
    duplicate = "duplicate"


class Record(BaseModel):
    """A stored record: an id, the tenant it belongs to, and nothing the store does not validate."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    collection: ClassVar[str]
    """The store's name for the collection of this kind of record (also its index suffix)."""
    unindexed: ClassVar[frozenset[str]] = frozenset()
    """Fields kept but never searched: free-form maps whose keys are not known in advance."""

    id: str = Field(min_length=1, max_length=200)
    tenant: str = Field(pattern=TENANT_PATTERN)


class Alert(Record):
    """A rule matched one event (or, for a correlation rule, a group of events)."""

    collection: ClassVar[str] = "alerts"
    unindexed: ClassVar[frozenset[str]] = frozenset({"fields"})

    rule_id: str
    rule_title: str
    severity: Severity
    tags: list[str] = []
    techniques: list[str] = []
    tactics: list[str] = []
    event_ids: list[str] = []
    hosts: list[str] = []
    users: list[str] = []
    ips: list[str] = []
    domains: list[str] = []
    hashes: list[str] = []
    correlation: bool = False
    """A correlation rule's alert: it stands for several events."""
    origin: str = "stream"
    """``stream`` (matched on ingest) or ``hunt`` (found by a retro-hunt)."""
    fields: dict[str, Any] = {}
    """Key fields of the matched event, kept so triage needs no event look-up."""
    status: AlertStatus = AlertStatus.new
    incident_id: str | None = None
    timestamp: UtcDateTime
    """When the (first) matched event happened."""
    created_at: UtcDateTime = Field(default_factory=utcnow)
    updated_at: UtcDateTime = Field(default_factory=utcnow)


class Incident(Record):
    """Related alerts grouped for one analyst to work through."""

    collection: ClassVar[str] = "incidents"

    title: str
    status: IncidentStatus = IncidentStatus.new
    severity: Severity
    assignee: str | None = None
    alert_ids: list[str] = []
    rule_ids: list[str] = []
    techniques: list[str] = []
    tactics: list[str] = []
    hosts: list[str] = []
    users: list[str] = []
    ips: list[str] = []
    domains: list[str] = []
    hashes: list[str] = []
    duplicate_of: str | None = None
    first_seen: UtcDateTime
    last_seen: UtcDateTime
    created_at: UtcDateTime = Field(default_factory=utcnow)
    updated_at: UtcDateTime = Field(default_factory=utcnow)


class AuditRecord(Record):
    """One state change, chained to the one before by hash so tampering shows.

    The id is the zero-padded sequence number: appending is a create of the next id, which the store
    refuses if another writer took it first, so the chain never forks.
    """

    collection: ClassVar[str] = "audit"
    unindexed: ClassVar[frozenset[str]] = frozenset({"before", "after"})

    seq: int = Field(ge=0)
    at: UtcDateTime = Field(default_factory=utcnow)
    actor: str
    action: str
    target: str
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    prev_hash: str
    hash: str

    @staticmethod
    def id_for(seq: int) -> str:
        return f"{seq:012d}"


RECORD_TYPES: tuple[type[Record], ...] = (Alert, Incident, AuditRecord)
