"""The store interface: the one place above which nobody knows Elasticsearch or SQLite.

Everything here is backend-neutral: the query values, the results, and the two abstract classes
``Store`` (events, plus access to the record collections) and ``RecordCollection`` (alerts,
incidents, audit records). Tenant scoping and optimistic concurrency are part of every signature,
so no caller can forget them.
"""

from __future__ import annotations

import base64
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson

from civicsoc.errors import InvalidQuery, NotFound, TenantDenied
from civicsoc.event import Event
from civicsoc.records import RECORD_TYPES, Alert, AuditRecord, Incident, Record

R = TypeVar("R", bound=Record)
T = TypeVar("T")

FIELD_NAME = re.compile(r"^[A-Za-z0-9_@][A-Za-z0-9_@.\-]*$")
MAX_PAGE = 5000
"""The largest page a list or search returns (Elasticsearch refuses windows over 10,000 hits)."""


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery(f"limit: expected 1..{MAX_PAGE}, got {limit}; page with the cursor for more")
    return limit


def check_field_name(name: str) -> str:
    if not FIELD_NAME.match(name):
        raise InvalidQuery(f"field {name!r}: expected letters, digits, '_', '@', '-' and dots")
    return name


@dataclass(frozen=True, slots=True)
class Scope:
    """The tenants a caller may see. ``tenants=None`` means every tenant (the admin role)."""

    tenants: frozenset[str] | None

    @classmethod
    def all(cls) -> Scope:
        return cls(None)

    @classmethod
    def of(cls, *tenants: str) -> Scope:
        return cls(frozenset(tenants))

    def allows(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def require(self, collection: str, record_id: str, tenant: str) -> None:
        """Refuse a record of another tenant exactly as if it did not exist (no existence leak)."""
        if not self.allows(tenant):
            raise NotFound(collection, record_id)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open interval ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidQuery("time range: start and end need a time zone (UTC)")
        if self.end < self.start:
            raise InvalidQuery(f"time range: end {self.end.isoformat()} is before start {self.start.isoformat()}")

    @classmethod
    def last(cls, span: timedelta, now: datetime | None = None) -> TimeRange:
        end = now or datetime.now(UTC)
        return cls(end - span, end)


FilterValue = str | int | float | bool


def normalize_filters(
    filters: Mapping[str, FilterValue | Sequence[FilterValue]],
) -> dict[str, tuple[FilterValue, ...]]:
    """``{"host.name": "a"}`` → ``{"host.name": ("a",)}``; field names are checked once, here."""
    normalized: dict[str, tuple[FilterValue, ...]] = {}
    for name, value in filters.items():
        values = tuple(value) if isinstance(value, list | tuple | set | frozenset) else (value,)
        if not values:
            raise InvalidQuery(f"filter {name!r}: needs at least one value")
        normalized[check_field_name(name)] = values
    return normalized


@dataclass(frozen=True)
class EventQuery:
    """Events in a time range whose fields equal one of the given values (all filters must hold).

    A filter on a list field (``related.ip``) holds when any element equals one of the values.
    Comparison is exact and typed: a keyword field is compared as a string, a number as a number.
    """

    time: TimeRange
    filters: Mapping[str, tuple[FilterValue, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, time: TimeRange, **filters: FilterValue | Sequence[FilterValue]) -> EventQuery:
        """Convenience for keyword-style filters whose names have no dots (``tenant`` style)."""
        return cls(time, normalize_filters(filters))

    @classmethod
    def where(cls, time: TimeRange, filters: Mapping[str, FilterValue | Sequence[FilterValue]]) -> EventQuery:
        return cls(time, normalize_filters(filters))


@dataclass(frozen=True)
class RecordQuery:
    """Filters, an optional time range on one date field, a sort and a page of a record list."""

    filters: Mapping[str, tuple[FilterValue, ...]] = field(default_factory=dict)
    time_field: str | None = None
    time: TimeRange | None = None
    sort: str = "created_at"
    descending: bool = True
    limit: int = 50
    cursor: str | None = None
    text: str | None = None
    """Case-insensitive substring of the record type's ``text_field`` (an incident's title)."""

    @classmethod
    def where(
        cls, filters: Mapping[str, FilterValue | Sequence[FilterValue]] | None = None, **options: Any
    ) -> RecordQuery:
        return cls(filters=normalize_filters(filters or {}), **options)

    def __post_init__(self) -> None:
        check_limit(self.limit)
        if (self.time_field is None) != (self.time is None):
            raise InvalidQuery("time range: give both time_field and time, or neither")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; ``next_cursor`` is ``None`` on the last page."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Versioned(Generic[R]):
    """A record with the version it was read at; pass the version back to update it."""

    record: R
    version: str


@dataclass(frozen=True, slots=True)
class RecordRead(Generic[R]):
    """One page of one record collection, read together with others (``Store.read_together``)."""

    record_type: type[R]
    query: RecordQuery


@dataclass(frozen=True, slots=True)
class EventRead:
    """One page of events, read together with others (``Store.read_together``)."""

    query: EventQuery
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event the store refused for good (e.g. a mapping conflict): dead-letter material."""

    event_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What became of a batch of events.

    ``stored + duplicates`` events are durable (acknowledged); ``rejected`` ones never will be;
    ``retry`` ids hit a transient refusal (e.g. a full queue) and must be sent again.
    """

    stored: int = 0
    duplicates: int = 0
    rejected: tuple[Rejection, ...] = ()
    retry: tuple[str, ...] = ()

    @property
    def acknowledged(self) -> int:
        return self.stored + self.duplicates


@dataclass(frozen=True, slots=True)
class Terms:
    """Count events per distinct value of a field, largest counts first (ties: smallest key first)."""

    field: str
    size: int = 10


@dataclass(frozen=True, slots=True)
class DateHistogram:
    """Count events per fixed interval of ``@timestamp``; buckets are aligned to the Unix epoch and
    empty buckets are left out."""

    interval: timedelta


@dataclass(frozen=True, slots=True)
class Bucket:
    key: Any
    count: int


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff: datetime
    removed: tuple[str, ...]
    """What went: index names (Elasticsearch) or day partitions (SQLite)."""


def retention_cutoff(days: int, now: datetime) -> datetime:
    """Midnight UTC ``days`` days ago: retention removes whole days older than this, never part of one."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def encode_cursor(sort: str, descending: bool, after: Sequence[Any]) -> str:
    payload = orjson.dumps({"s": sort, "d": descending, "a": list(after)})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, descending: bool) -> list[Any]:
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after, cursor_sort, cursor_descending = payload["a"], payload["s"], payload["d"]
    except (ValueError, KeyError, TypeError):
        raise InvalidQuery("cursor: not a cursor this store issued") from None
    if (cursor_sort, cursor_descending) != (sort, descending):
        raise InvalidQuery("cursor: it belongs to a list with another sort order; start from the first page")
    return after


def sortable_fields(record_type: type[Record]) -> frozenset[str]:
    """Fields a list can be sorted by: required scalars, so every record has a sort key."""
    names = set()
    for name, info in record_type.model_fields.items():
        annotation = info.annotation
        if name in record_type.unindexed or (not info.is_required() and info.default is None):
            continue
        if annotation in (str, int, float, datetime) or (isinstance(annotation, type) and issubclass(annotation, str)):
            names.add(name)
    return frozenset(names)


class RecordCollection(ABC, Generic[R]):
    """Records of one kind (alerts, incidents, audit, tokens...) of every tenant, read and written
    within a ``Scope``."""

    def __init__(self, record_type: type[R]) -> None:
        self.record_type = record_type
        self.name = record_type.collection
        self._sortable = sortable_fields(record_type)

    @abstractmethod
    def create(self, scope: Scope, record: R) -> Versioned[R]:
        """Store a new record; ``AlreadyExists`` if its id is taken (never an overwrite)."""

    @abstractmethod
    def create_many(self, scope: Scope, records: Sequence[R]) -> int:
        """Store many new records in one request (imports, benchmarks); ids already taken are left
        alone. Returns how many were created."""

    @abstractmethod
    def get(self, scope: Scope, record_id: str) -> Versioned[R]:
        """The record and its version; ``NotFound`` if absent or outside ``scope``."""

    def get_many(self, scope: Scope, record_ids: Iterable[str]) -> list[Versioned[R]]:
        """The records of ``record_ids`` that exist within ``scope``, in the order asked, each once.

        Absent ids and ids of other tenants are simply left out, as ``get`` would raise ``NotFound`` for
        both (no existence leak); compare ids to tell which. The backends answer in one request (an
        incident's page needs all its alerts); this fallback asks one at a time.
        """
        found = []
        for record_id in dict.fromkeys(record_ids):
            try:
                found.append(self.get(scope, record_id))
            except NotFound:
                continue
        return found

    @abstractmethod
    def update(self, scope: Scope, record: R, expected_version: str) -> Versioned[R]:
        """Replace the record if nobody changed it since ``expected_version``; else ``VersionConflict``."""

    @abstractmethod
    def list(self, scope: Scope, query: RecordQuery) -> Page[Versioned[R]]:
        """One page of the records matching ``query``, in its sort order, stable across new inserts."""

    @abstractmethod
    def count(self, scope: Scope, query: RecordQuery) -> int:
        """How many records match ``query`` (its sort and page are ignored)."""

    @abstractmethod
    def count_by(self, scope: Scope, query: RecordQuery, field: str, *, size: int = 100) -> list[Bucket]:
        """Records matching ``query`` counted per value of ``field`` (each element, for a list field),
        largest counts first, ties by smallest key."""

    def check_query(self, query: RecordQuery, *, sorted_: bool = True) -> None:
        """Refuse unknown fields; ``sorted_=False`` for counts, which ignore the sort."""
        if sorted_ and query.sort not in self._sortable:
            raise InvalidQuery(f"sort: {self.name} can be sorted by {', '.join(sorted(self._sortable))}; "
                               f"got {query.sort!r}")
        for name in (*query.filters, *([query.time_field] if query.time_field else [])):
            self.check_field(name)
        if query.text is not None and self.record_type.text_field is None:
            raise InvalidQuery(f"text: {self.name} have no text to search")

    def check_field(self, name: str) -> str:
        if name not in self.record_type.model_fields or name in self.record_type.unindexed:
            raise InvalidQuery(f"filter: {self.name} have no searchable field {name!r}")
        return name

    def check_tenant(self, scope: Scope, record: R) -> None:
        """A caller writes only records of its own tenants."""
        if not scope.allows(record.tenant):
            raise TenantDenied(self.name, record.tenant)


class Store(ABC):
    """Events plus the record collections, on one backend."""

    url: str
    """The store URL with any password removed: safe to print."""

    alerts: RecordCollection[Alert]
    incidents: RecordCollection[Incident]
    audit: RecordCollection[AuditRecord]
    _collections: dict[type[Record], RecordCollection[Any]]

    def _open_collections(self, make: Any) -> None:
        """One collection per record type (``make(store, record_type)``), alerts/incidents/audit by name too."""
        self._collections = {record_type: make(self, record_type) for record_type in RECORD_TYPES}
        self.alerts = self.records(Alert)
        self.incidents = self.records(Incident)
        self.audit = self.records(AuditRecord)

    def records(self, record_type: type[R]) -> RecordCollection[R]:
        """The collection of one kind of record (``store.records(Token)``)."""
        return self._collections[record_type]

    @property
    def collections(self) -> list[RecordCollection[Any]]:
        return list(self._collections.values())

    @abstractmethod
    def setup(self) -> None:
        """Create what the store needs (tables, index templates); safe to call on every start."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` (one line: URL and cause) unless the store answers."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def append_events(self, events: Sequence[Event]) -> BulkResult:
        """Store a batch; an event whose id is stored already counts as a duplicate, not a change.

        Returns only once the stored events are durable: what it acknowledges survives a crash.
        """

    @abstractmethod
    def search_events(self, scope: Scope, query: EventQuery, *, limit: int = 100, cursor: str | None = None,
                      descending: bool = False) -> Page[Event]:
        """Events matching ``query`` ordered by ``@timestamp`` (then id), one page at a time."""

    @abstractmethod
    def count_events(self, scope: Scope, query: EventQuery) -> int: ...

    @abstractmethod
    def aggregate_events(self, scope: Scope, query: EventQuery, aggregation: Terms | DateHistogram) -> list[Bucket]: ...

    @abstractmethod
    def apply_retention(self, days: int, now: datetime | None = None) -> RetentionResult:
        """Delete the events of every whole UTC day older than ``days`` days."""

    def refresh(self) -> None:  # noqa: B027 - deliberately a no-op by default
        """Make every acknowledged write visible to searches (a no-op where that is already so)."""

    def read_together(self, scope: Scope, reads: Sequence[RecordRead[Any] | EventRead]) -> list[Page[Any]]:
        """Independent reads answered together, in the order asked: a page of records for a ``RecordRead``
        (as ``records(...).list``), a page of events for an ``EventRead`` (as ``search_events``).

        A page that needs several lookups (the incident page: timeline, comments, playbook runs,
        submissions, tenant) pays one round trip instead of one each where the backend can batch them;
        Elasticsearch does (one multi-search, run in parallel on the node). Here: one after another.
        """
        return [self.records(read.record_type).list(scope, read.query) if isinstance(read, RecordRead)
                else self.search_events(scope, read.query, limit=read.limit) for read in reads]

    def iter_events(self, scope: Scope, query: EventQuery, *, batch_size: int = 1000) -> Iterator[Event]:
        """Every matching event in time order, fetched a batch at a time (never all in memory)."""
        cursor: str | None = None
        while True:
            page = self.search_events(scope, query, limit=batch_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
