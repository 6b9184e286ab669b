"""The scale-out store: Elasticsearch through the official client, core APIs only.

Only what every cluster has is used — bulk, search, count, core aggregations, composable index
templates, aliases, point in time with search_after, ``if_seq_no``/``if_primary_term``, delete
index — so the same code runs on a bare single node and on a production cluster.

Layout (``P`` = ``store.index_prefix``):

- events: ``P-events-<tenant>.<YYYY-MM-DD>``, one index per tenant and UTC day, all behind the alias
  ``P-events``. Retention deletes whole indices. The dot before the date keeps the pattern of tenant
  ``a`` (``P-events-a.*``) from matching tenant ``a-b``'s indices.
- records: ``P-<collection>`` (alerts, incidents, audit, tokens, ...), mapped from their pydantic models.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    UnsupportedProductError,
)
from elasticsearch.serializer import OrjsonSerializer

from civicsoc.errors import AlreadyExists, NotFound, StoreError, StoreUnavailable, VersionConflict
from civicsoc.event import Event, format_timestamp
from civicsoc.store.base import (
    Bucket,
    BulkResult,
    DateHistogram,
    EventQuery,
    EventRead,
    Page,
    R,
    RecordCollection,
    RecordQuery,
    RecordRead,
    Rejection,
    RetentionResult,
    Scope,
    Store,
    Terms,
    TimeRange,
    Versioned,
    check_field_name,
    check_limit,
    decode_cursor,
    encode_cursor,
    retention_cutoff,
)
from civicsoc.store.mappings import event_index_template, record_mappings

DAY_FORMAT = "%Y-%m-%d"
WILDCARD_SPECIAL = re.compile(r"[\\*?]")
OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^)\]'\"]+)|(certificate verify failed[^)'\"]*)")
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
EVENT_SORT = ("@timestamp", "event.id")
MATCH_NOTHING: dict[str, Any] = {"bool": {"must_not": {"match_all": {}}}}
MAX_NAMED_INDICES = 64
"""Up to this many daily event indices (tenants x days) a read names one by one instead of by pattern."""
GET_MANY_CHUNK = 1000
"""Ids per ``mget`` of ``get_many``: a bounded request body whatever the caller asks for."""


def redact_url(url: str) -> str:
    """The URL without its password: store URLs end up in errors and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{parts.username}:***@{host}", parts.path, parts.query, parts.fragment))


def describe_error_body(status: int | None, error: dict[str, Any]) -> str:
    """One line from an Elasticsearch error object (a failed request's, or one item's of a multi-search)."""
    text = f"HTTP {status}: {error.get('type')}: {error.get('reason')}"
    causes = error.get("root_cause") or []
    if causes and causes[0].get("reason") != error.get("reason"):
        text += f" ({causes[0].get('type')}: {causes[0].get('reason')})"
    return text


def describe_error(exc: Exception) -> str:
    """One line on why a call failed, without the client's multi-line reprs."""
    if isinstance(exc, AuthenticationException):
        return "authentication failed (HTTP 401): check store.username/password or store.api_key"
    if isinstance(exc, AuthorizationException):
        return "permission denied (HTTP 403): the user lacks a privilege civicsoc needs"
    if isinstance(exc, UnsupportedProductError):
        return "the server is not Elasticsearch (no X-Elastic-Product header)"
    if isinstance(exc, ApiError):
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        if isinstance(error, dict):
            return describe_error_body(exc.meta.status, error)
        return f"HTTP {exc.meta.status}: {exc.message}"
    if isinstance(exc, ConnectionTimeout):
        return "cannot connect (timed out)"
    if isinstance(exc, TransportConnectionError):
        text = str(exc)
        reason = OS_ERROR.search(text)
        return f"cannot connect ({next(g for g in reason.groups() if g).strip() if reason else text[:200]})"
    return f"{type(exc).__name__}: {exc}"


def _scope_filter(scope: Scope, field: str) -> dict[str, Any] | None:
    if scope.tenants is None:
        return None
    if not scope.tenants:
        return MATCH_NOTHING
    return {"terms": {field: sorted(scope.tenants)}}


def _terms(field: str, values: Sequence[Any]) -> dict[str, Any]:
    return {"terms": {check_field_name(field): list(values)}}


class ElasticsearchStore(Store):
    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        ca_file: str | None = None,
        verify_certs: bool = True,
        prefix: str = "civicsoc",
        request_timeout: float = 30.0,
        refresh_records: bool | str = True,
    ) -> None:
        self.url = redact_url(url)
        self.prefix = prefix
        parts = urlsplit(url)
        if parts.username and not username:  # credentials in the URL: move them to the client's auth
            username, password = parts.username, parts.password
            host = parts.hostname or ""
            url = urlunsplit((parts.scheme, f"{host}:{parts.port}" if parts.port else host, parts.path, "", ""))
        options: dict[str, Any] = {"request_timeout": request_timeout, "max_retries": 2, "retry_on_timeout": True}
        if username:
            options["basic_auth"] = (username, password or "")
        if api_key:
            options["api_key"] = api_key
        if ca_file:
            options["ca_certs"] = str(ca_file)
        if url.startswith("https://"):
            options["verify_certs"] = verify_certs
        # orjson instead of the standard library: an incident page or a timeline is a few hundred kB of JSON.
        self.client = Elasticsearch(url, serializer=OrjsonSerializer(), **options)
        self.refresh_records = refresh_records
        self._open_collections(EsRecords)

    # naming ----------------------------------------------------------------------------------

    @property
    def events_alias(self) -> str:
        return f"{self.prefix}-events"

    def event_index(self, tenant: str, moment: datetime) -> str:
        return f"{self.prefix}-events-{tenant}.{moment.astimezone(UTC).strftime(DAY_FORMAT)}"

    def event_indices(self, scope: Scope, time: TimeRange | None = None) -> str:
        """The event indices a read in ``scope`` (and within ``time``) needs.

        Within a time range of a few days the daily indices are named one by one (missing ones are
        ignored): a tenant has one per day, hundreds over a retention period, and a search over a pattern
        asks every one of their shards whether it could match before the few that can answer.
        """
        tenants = ["*"] if scope.tenants is None else sorted(scope.tenants)
        if time is not None and tenants:
            first = time.start.astimezone(UTC).date()
            last = max(first, (time.end - timedelta(microseconds=1)).astimezone(UTC).date())
            days = (last - first).days + 1
            if days * len(tenants) <= MAX_NAMED_INDICES:
                return ",".join(f"{self.prefix}-events-{tenant}.{(first + timedelta(days=n)).strftime(DAY_FORMAT)}"
                                for tenant in tenants for n in range(days))
        if scope.tenants is None:
            return f"{self.prefix}-events-*"
        return ",".join(f"{self.prefix}-events-{tenant}.*" for tenant in tenants) or self.events_alias

    def call(self, action: str, fn: Any, **kwargs: Any) -> Any:
        """Run one client call; turn transport and API failures into one-line store errors."""
        try:
            return fn(**kwargs)
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise StoreUnavailable(self.url, f"{action}: {describe_error(exc)}") from None
        except (ApiError, TransportError, UnsupportedProductError) as exc:
            raise StoreError(self.url, f"{action}: {describe_error(exc)}") from None

    # Store -------------------------------------------------------------------------------------

    def ping(self) -> None:
        info = self.call("connect", self.client.info)
        number = str(info["version"]["number"])
        if int(number.split(".")[0]) < 8:
            raise StoreError(self.url, f"Elasticsearch {number} is too old; civicsoc needs 8 or later")

    def setup(self) -> None:
        self.ping()
        template = event_index_template(self.prefix)
        self.call("create the event index template", self.client.indices.put_index_template,
                  name=f"{self.prefix}-events", **template)
        for collection in self.collections:
            collection.setup()

    def close(self) -> None:
        self.client.close()

    def drop(self) -> None:
        """Delete every index and the template under this prefix: for tests, benchmarks and
        decommissioning a deployment. Nothing else calls it."""
        self.client.indices.delete(index=f"{self.prefix}-*", ignore_unavailable=True, allow_no_indices=True)
        self.client.options(ignore_status=404).indices.delete_index_template(name=f"{self.prefix}-events")

    def refresh(self) -> None:
        self.call("refresh", self.client.indices.refresh, index=f"{self.prefix}-*", ignore_unavailable=True,
                  allow_no_indices=True)

    def append_events(self, events: Sequence[Event]) -> BulkResult:
        operations: list[str] = []
        rejected: list[Rejection] = []
        sent: list[str] = []
        for event in events:
            try:
                source = orjson.dumps(event.fields).decode()
            except TypeError as exc:
                rejected.append(Rejection(event.id, f"not serializable as JSON: {exc}"))
                continue
            action = {"create": {"_index": self.event_index(event.tenant, event.timestamp), "_id": event.id}}
            operations.append(orjson.dumps(action).decode())
            operations.append(source)
            sent.append(event.id)
        if not operations:
            return BulkResult(rejected=tuple(rejected))
        response = self.call("bulk", self.client.bulk, operations=operations)
        stored = duplicates = 0
        retry: list[str] = []
        for event_id, item in zip(sent, response["items"], strict=True):
            result = item["create"]
            status = result["status"]
            if status in (200, 201):
                stored += 1
            elif status == 409:
                duplicates += 1
            elif status in TRANSIENT_STATUSES:
                retry.append(event_id)
            else:
                error = result.get("error", {})
                reason = f"{error.get('type')}: {error.get('reason')}"
                if caused := error.get("caused_by"):
                    reason += f" ({caused.get('type')}: {caused.get('reason')})"
                rejected.append(Rejection(event_id, reason))
        return BulkResult(stored=stored, duplicates=duplicates, rejected=tuple(rejected), retry=tuple(retry))

    def _event_query(self, scope: Scope, query: EventQuery) -> dict[str, Any]:
        filters: list[dict[str, Any]] = [
            {"range": {"@timestamp": {"gte": format_timestamp(query.time.start),
                                      "lt": format_timestamp(query.time.end)}}},
        ]
        if (tenant_filter := _scope_filter(scope, "organization.id")) is not None:
            filters.append(tenant_filter)
        filters.extend(_terms(field, values) for field, values in query.filters.items())
        return {"bool": {"filter": filters}}

    def _search_options(self, scope: Scope, query: EventQuery) -> dict[str, Any]:
        return {"index": self.event_indices(scope, query.time), "ignore_unavailable": True, "allow_no_indices": True}

    def _events_body(self, scope: Scope, query: EventQuery, limit: int, cursor: str | None,
                     descending: bool) -> dict[str, Any]:
        check_limit(limit)
        order = "desc" if descending else "asc"
        body: dict[str, Any] = {
            "query": self._event_query(scope, query),
            "sort": [{field: {"order": order}} for field in EVENT_SORT],
            "size": limit + 1,
            "track_total_hits": False,
        }
        if cursor is not None:
            body["search_after"] = decode_cursor(cursor, "@timestamp", descending)
        return body

    @staticmethod
    def _events_page(response: Any, limit: int, descending: bool = False) -> Page[Event]:
        hits = response["hits"]["hits"]
        events = [Event.from_document(hit["_source"]) for hit in hits[:limit]]
        next_cursor = encode_cursor("@timestamp", descending, hits[limit - 1]["sort"]) if len(hits) > limit else None
        return Page(events, next_cursor)

    def search_events(self, scope: Scope, query: EventQuery, *, limit: int = 100, cursor: str | None = None,
                      descending: bool = False) -> Page[Event]:
        body = self._events_body(scope, query, limit, cursor, descending)
        response = self.call("search events", self.client.search, **self._search_options(scope, query), **body)
        return self._events_page(response, limit, descending)

    def read_together(self, scope: Scope, reads: Sequence[RecordRead[Any] | EventRead]) -> list[Page[Any]]:
        """One multi-search: the node runs the searches in parallel and answers them in one response.

        Every query is built (and refused if invalid) before anything is sent; a search that fails in
        the node fails the whole read, naming which one.
        """
        searches: list[dict[str, Any]] = []
        readers: list[tuple[str, Callable[[Any], Page[Any]]]] = []
        for read in reads:
            if isinstance(read, RecordRead):
                collection = cast(EsRecords[Any], self.records(read.record_type))
                searches += [{"index": collection.index}, collection.list_body(scope, read.query)]
                readers.append((f"list {collection.name}", partial(collection.page_of, query=read.query)))
            else:
                options = self._search_options(scope, read.query)
                searches += [options, self._events_body(scope, read.query, read.limit, None, False)]
                readers.append(("search events", partial(self._events_page, limit=read.limit)))
        if not searches:
            return []
        response = self.call("read together", self.client.msearch, searches=searches)
        pages: list[Page[Any]] = []
        for (action, read_page), item in zip(readers, response["responses"], strict=True):
            if "error" in item:
                raise StoreError(self.url, f"{action}: {describe_error_body(item.get('status'), item['error'])}")
            pages.append(read_page(item))
        return pages

    def iter_events(self, scope: Scope, query: EventQuery, *, batch_size: int = 1000) -> Iterator[Event]:
        """A point in time keeps the view fixed while batches are read, however long that takes."""
        try:
            pit = self.client.open_point_in_time(index=self.event_indices(scope, query.time), keep_alive="2m",
                                                 ignore_unavailable=True)
        except NotFoundError:
            return  # no event index of these tenants exists yet
        except (ApiError, TransportError) as exc:
            raise StoreError(self.url, f"open a point in time: {describe_error(exc)}") from None
        pit_id = pit["id"]
        try:
            search_after = None
            while True:
                body: dict[str, Any] = {
                    "query": self._event_query(scope, query),
                    "sort": [{field: {"order": "asc"}} for field in EVENT_SORT],
                    "size": batch_size,
                    "pit": {"id": pit_id, "keep_alive": "2m"},
                    "track_total_hits": False,
                }
                if search_after is not None:
                    body["search_after"] = search_after
                response = self.call("search events", self.client.search, **body)
                pit_id = response.get("pit_id", pit_id)
                hits = response["hits"]["hits"]
                for hit in hits:
                    yield Event.from_document(hit["_source"])
                if len(hits) < batch_size:
                    return
                search_after = hits[-1]["sort"]
        finally:
            with contextlib.suppress(ApiError, TransportError):  # it expires by itself after keep_alive
                self.client.close_point_in_time(id=pit_id)

    def iter_events_matching(self, scope: Scope, query: EventQuery, lucene: str, *,
                             page: int = 1000) -> Iterator[Event]:
        """Events of ``query`` that a Lucene query string also selects, in time order.

        Elasticsearch only: this is how retro-hunts run the queries pySigma converts rules to. The
        tenant scope and time range apply as for every read.
        """
        bool_query = self._event_query(scope, query)
        bool_query["bool"]["must"] = [{"query_string": {"query": lucene, "allow_leading_wildcard": True,
                                                         "lenient": False}}]  # refuse, never answer empty
        search_after = None
        while True:
            body: dict[str, Any] = {"query": bool_query, "size": page, "track_total_hits": False,
                                    "sort": [{field: {"order": "asc"}} for field in EVENT_SORT]}
            if search_after is not None:
                body["search_after"] = search_after
            response = self.call("search events", self.client.search, **self._search_options(scope, query), **body)
            hits = response["hits"]["hits"]
            for hit in hits:
                yield Event.from_document(hit["_source"])
            if len(hits) < page:
                return
            search_after = hits[-1]["sort"]

    def count_events(self, scope: Scope, query: EventQuery) -> int:
        response = self.call("count events", self.client.count, **self._search_options(scope, query),
                             query=self._event_query(scope, query))
        return response["count"]

    def aggregate_events(self, scope: Scope, query: EventQuery, aggregation: Terms | DateHistogram) -> list[Bucket]:
        if isinstance(aggregation, Terms):
            agg = {"terms": {"field": check_field_name(aggregation.field), "size": aggregation.size,
                             "order": [{"_count": "desc"}, {"_key": "asc"}]}}
        else:
            seconds = int(aggregation.interval.total_seconds())
            if seconds < 1 or aggregation.interval != timedelta(seconds=seconds):
                raise StoreError(self.url, "date histogram: the interval must be a whole number of seconds")
            agg = {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{seconds}s", "min_doc_count": 1}}
        response = self.call("aggregate events", self.client.search, **self._search_options(scope, query),
                             query=self._event_query(scope, query), size=0, aggs={"result": agg})
        # no index of the scope exists yet → no "aggregations" in the response at all
        buckets = response.body.get("aggregations", {}).get("result", {}).get("buckets", [])
        if isinstance(aggregation, Terms):
            return [Bucket(bucket["key"], bucket["doc_count"]) for bucket in buckets]
        return [Bucket(datetime.fromtimestamp(bucket["key"] / 1000, UTC), bucket["doc_count"]) for bucket in buckets]

    def apply_retention(self, days: int, now: datetime | None = None) -> RetentionResult:
        cutoff = retention_cutoff(days, now or datetime.now(UTC))
        response = self.call("list event indices", self.client.indices.get, index=f"{self.prefix}-events-*",
                             expand_wildcards="open,closed", allow_no_indices=True, ignore_unavailable=True)
        expired = []
        for name in sorted(response):
            try:
                day = datetime.strptime(name.rsplit(".", 1)[-1], DAY_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                continue  # not one of ours: leave it alone
            if day < cutoff:
                expired.append(name)
        for start in range(0, len(expired), 50):  # bounded URL length
            self.call("delete expired indices", self.client.indices.delete, index=",".join(expired[start:start + 50]))
        return RetentionResult(cutoff=cutoff, removed=tuple(expired))


def _version(seq_no: int, primary_term: int) -> str:
    return f"{seq_no}.{primary_term}"


class EsRecords(RecordCollection[R]):
    def __init__(self, store: ElasticsearchStore, record_type: type[R]) -> None:
        super().__init__(record_type)
        self.store = store
        self.index = f"{store.prefix}-{self.name}"

    def setup(self) -> None:
        client = self.store.client
        settings: dict[str, Any] = {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}}
        if (order := self.record_type.stored_order) is not None:
            # Only at creation: an index made before keeps working, unsorted (slower first pages).
            settings["index"]["sort"] = {"field": [order, "id"], "order": ["desc", "desc"]}
        mappings = record_mappings(self.record_type)
        exists = self.store.call(f"check index {self.index}", client.indices.exists, index=self.index)
        if exists:
            self.store.call(f"update mappings of {self.index}", client.indices.put_mapping, index=self.index,
                            **mappings)
        else:
            try:
                client.indices.create(index=self.index, settings=settings, mappings=mappings)
            except ApiError as exc:
                if "resource_already_exists_exception" not in str(exc):  # lost a race with another process
                    raise StoreError(self.store.url, f"create index {self.index}: {describe_error(exc)}") from None

    def _source(self, record: R) -> bytes:
        return record.model_dump_json().encode()

    def create(self, scope: Scope, record: R) -> Versioned[R]:
        self.check_tenant(scope, record)
        try:
            response = self.store.client.create(index=self.index, id=record.id, document=self._source(record),
                                                refresh=self.store.refresh_records)
        except ConflictError:
            raise AlreadyExists(self.name, record.id) from None
        except (ApiError, TransportError) as exc:
            raise self._error("create", exc) from None
        return Versioned(record, _version(response["_seq_no"], response["_primary_term"]))

    def create_many(self, scope: Scope, records: Sequence[R]) -> int:
        created = 0
        for start in range(0, len(records), 2000):
            chunk = records[start:start + 2000]
            operations: list[Any] = []
            for record in chunk:
                self.check_tenant(scope, record)
                operations.append({"create": {"_index": self.index, "_id": record.id}})
                operations.append(self._source(record))
            response = self.store.call(f"create {self.name}", self.store.client.bulk, operations=operations,
                                       refresh=self.store.refresh_records)
            for item in response["items"]:
                result = item["create"]
                if result.get("status") in (200, 201):
                    created += 1
                elif result.get("status") != 409:
                    raise StoreError(self.store.url, f"create {self.name} {result.get('_id')}: "
                                                     f"{result.get('error', {}).get('reason', result)}")
        return created

    def get(self, scope: Scope, record_id: str) -> Versioned[R]:
        try:
            response = self.store.client.get(index=self.index, id=record_id)
        except NotFoundError:
            raise NotFound(self.name, record_id) from None
        except (ApiError, TransportError) as exc:
            raise self._error("get", exc) from None
        record = self.record_type.model_validate(response["_source"])
        scope.require(self.name, record_id, record.tenant)
        return Versioned(record, _version(response["_seq_no"], response["_primary_term"]))

    def get_many(self, scope: Scope, record_ids: Iterable[str]) -> list[Versioned[R]]:
        wanted = list(dict.fromkeys(record_ids))
        found: list[Versioned[R]] = []
        for start in range(0, len(wanted), GET_MANY_CHUNK):
            # mget reads like get (real time, no refresh needed); a missing id or index is a doc without "found".
            response = self.store.call(f"get {self.name}", self.store.client.mget, index=self.index,
                                       ids=wanted[start:start + GET_MANY_CHUNK])
            for doc in response["docs"]:
                if not doc.get("found"):
                    continue
                record = self.record_type.model_validate(doc["_source"])
                if scope.allows(record.tenant):
                    found.append(Versioned(record, _version(doc["_seq_no"], doc["_primary_term"])))
        return found

    def update(self, scope: Scope, record: R, expected_version: str) -> Versioned[R]:
        self.check_tenant(scope, record)
        current = self.get(scope, record.id)  # NotFound outside scope; also pins the tenant
        if current.record.tenant != record.tenant:
            raise StoreError(self.store.url, f"{self.name} record {record.id!r} cannot move to another tenant")
        try:
            seq_no, primary_term = (int(part) for part in expected_version.split("."))
        except ValueError:
            raise VersionConflict(self.name, record.id, expected_version) from None
        try:
            response = self.store.client.index(index=self.index, id=record.id, document=self._source(record),
                                               if_seq_no=seq_no, if_primary_term=primary_term,
                                               refresh=self.store.refresh_records)
        except ConflictError:
            raise VersionConflict(self.name, record.id, expected_version) from None
        except (ApiError, TransportError) as exc:
            raise self._error("update", exc) from None
        return Versioned(record, _version(response["_seq_no"], response["_primary_term"]))

    def _query(self, scope: Scope, query: RecordQuery, *, sorted_: bool = True) -> dict[str, Any]:
        self.check_query(query, sorted_=sorted_)
        filters: list[dict[str, Any]] = []
        if (tenant_filter := _scope_filter(scope, "tenant")) is not None:
            filters.append(tenant_filter)
        filters.extend(_terms(field, values) for field, values in query.filters.items())
        if query.time is not None and query.time_field is not None:
            filters.append({"range": {query.time_field: {"gte": format_timestamp(query.time.start),
                                                         "lt": format_timestamp(query.time.end)}}})
        if query.text is not None and self.record_type.text_field is not None:
            pattern = "*" + WILDCARD_SPECIAL.sub(r"\\\g<0>", query.text) + "*"
            filters.append({"wildcard": {self.record_type.text_field: {"value": pattern, "case_insensitive": True}}})
        return {"bool": {"filter": filters}}

    def list_body(self, scope: Scope, query: RecordQuery) -> dict[str, Any]:
        """The search of one page of ``list`` (also sent within ``read_together``'s multi-search)."""
        order = "desc" if query.descending else "asc"
        body: dict[str, Any] = {
            "query": self._query(scope, query),
            "sort": [{query.sort: {"order": order}}, {"id": {"order": order}}],
            "size": query.limit + 1,
            "seq_no_primary_term": True,
            "track_total_hits": False,
        }
        if query.cursor is not None:
            body["search_after"] = decode_cursor(query.cursor, query.sort, query.descending)
        return body

    def list(self, scope: Scope, query: RecordQuery) -> Page[Versioned[R]]:
        response = self.store.call(f"list {self.name}", self.store.client.search, index=self.index,
                                   **self.list_body(scope, query))
        return self.page_of(response, query)

    def page_of(self, response: Any, query: RecordQuery) -> Page[Versioned[R]]:
        hits = response["hits"]["hits"]
        items = [
            Versioned(self.record_type.model_validate(hit["_source"]), _version(hit["_seq_no"], hit["_primary_term"]))
            for hit in hits[: query.limit]
        ]
        next_cursor = None
        if len(hits) > query.limit:
            next_cursor = encode_cursor(query.sort, query.descending, hits[query.limit - 1]["sort"])
        return Page(items, next_cursor)

    def count(self, scope: Scope, query: RecordQuery) -> int:
        response = self.store.call(f"count {self.name}", self.store.client.count, index=self.index,
                                   query=self._query(scope, query, sorted_=False))
        return response["count"]

    def count_by(self, scope: Scope, query: RecordQuery, field: str, *, size: int = 100) -> list[Bucket]:
        aggregation = {"terms": {"field": self.check_field(field), "size": size,
                                 "order": [{"_count": "desc"}, {"_key": "asc"}]}}
        response = self.store.call(f"count {self.name} by {field}", self.store.client.search, index=self.index,
                                   query=self._query(scope, query, sorted_=False), size=0,
                                   aggs={"by": aggregation})
        return [Bucket(bucket.get("key_as_string", bucket["key"]), bucket["doc_count"])
                for bucket in response["aggregations"]["by"]["buckets"]]

    def _error(self, action: str, exc: Exception) -> StoreError:
        kind = StoreUnavailable if isinstance(exc, TransportConnectionError | ConnectionTimeout) else StoreError
        return kind(self.store.url, f"{action} {self.name}: {describe_error(exc)}")
