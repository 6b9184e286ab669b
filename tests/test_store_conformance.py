"""One behaviour, two backends: every test here runs on SQLite and on Elasticsearch.

Events are real Windows events (OTRF Security-Datasets) shaped into ECS; expected results are
computed from those events in plain Python, independently of either store.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench.sample_events import otrf_events
from civicsoc.errors import AlreadyExists, InvalidQuery, NotFound, TenantDenied, VersionConflict
from civicsoc.event import Event, event_id
from civicsoc.records import AuditRecord, Incident, IncidentStatus, NotificationRegime, Severity, Tenant
from civicsoc.store import (
    Bucket,
    DateHistogram,
    EventQuery,
    EventRead,
    RecordQuery,
    RecordRead,
    Scope,
    Store,
    Terms,
    TimeRange,
)
from civicsoc.tenancy import regime_of, tenant_of, tenant_read

A, B = "agency-a", "agency-b"
EVERYTHING = TimeRange(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def events_a() -> list[Event]:
    # every 7th event, so all datasets (Security, Sysmon, System ...) are represented
    return [event for number, event in enumerate(otrf_events(A)) if number % 7 == 0]


@pytest.fixture(scope="module")
def events_b() -> list[Event]:
    return [event for number, event in enumerate(otrf_events(B)) if number % 11 == 3]


@pytest.fixture
def loaded(store: Store, events_a: list[Event], events_b: list[Event]) -> Store:
    for start in range(0, len(events_a), 500):
        store.append_events(events_a[start:start + 500])
    store.append_events(events_b)
    store.refresh()
    return store


def time_order(events: list[Event], descending: bool = False) -> list[str]:
    return [e.id for e in sorted(events, key=lambda e: (e.timestamp, e.id), reverse=descending)]


# events -------------------------------------------------------------------------------------------


def test_append_twice_stores_once(store: Store, events_a: list[Event]) -> None:
    batch = events_a[:300]
    first = store.append_events(batch)
    assert (first.stored, first.duplicates, first.rejected) == (300, 0, ())
    again = store.append_events(batch)
    assert (again.stored, again.duplicates) == (0, 300)
    store.refresh()
    assert store.count_events(Scope.all(), EventQuery(EVERYTHING)) == 300


def test_an_unserializable_event_is_rejected_with_its_id_and_the_rest_stored(store: Store,
                                                                             events_a: list[Event]) -> None:
    bad = Event.from_ecs({"labels": {"oops": {1, 2}}}, tenant=A, timestamp=datetime(2020, 10, 1, tzinfo=UTC),
                         id=event_id(A, "test", "bad"))
    result = store.append_events([events_a[0], bad, events_a[1]])
    assert result.stored == 2
    assert [r.event_id for r in result.rejected] == [bad.id]
    assert "JSON" in result.rejected[0].reason


def test_scope_limits_every_read_to_its_tenants(loaded: Store, events_a: list[Event],
                                                events_b: list[Event]) -> None:
    query = EventQuery(EVERYTHING)
    assert loaded.count_events(Scope.of(A), query) == len(events_a)
    assert loaded.count_events(Scope.of(B), query) == len(events_b)
    assert loaded.count_events(Scope.of(A, B), query) == len(events_a) + len(events_b)
    assert loaded.count_events(Scope.all(), query) == len(events_a) + len(events_b)
    assert loaded.count_events(Scope.of(), query) == 0
    assert loaded.count_events(Scope.of("agency"), query) == 0  # a prefix of a tenant is not that tenant
    page = loaded.search_events(Scope.of(B), query, limit=1000)
    assert {event.tenant for event in page.items} == {B}
    assert loaded.aggregate_events(Scope.of(), query, Terms("event.code")) == []


def test_time_range_is_half_open(loaded: Store, events_a: list[Event]) -> None:
    moments = sorted({e.timestamp for e in events_a})
    start, end = moments[10], moments[40]
    expected = [e for e in events_a if start <= e.timestamp < end]
    got = loaded.search_events(Scope.of(A), EventQuery(TimeRange(start, end)), limit=1000).items
    assert sorted(e.id for e in got) == sorted(e.id for e in expected)


def test_filters_match_any_value_and_all_fields(loaded: Store, events_a: list[Event]) -> None:
    codes = Counter(e.fields["event"]["code"] for e in events_a)
    (code1, _), (code2, _) = codes.most_common(2)
    query = EventQuery.where(EVERYTHING, {"event.code": [code1, code2], "winlog.channel": "Security"})
    expected = {e.id for e in events_a
                if e.fields["event"]["code"] in (code1, code2) and e.fields["winlog"]["channel"] == "Security"}
    got = loaded.search_events(Scope.of(A), query, limit=5000).items
    assert {e.id for e in got} == expected
    assert loaded.count_events(Scope.of(A), query) == len(expected)


def test_filter_on_raw_event_data(loaded: Store, events_a: list[Event]) -> None:
    with_image = [e for e in events_a if "Image" in e.fields["winlog"]["event_data"]]
    image = Counter(e.fields["winlog"]["event_data"]["Image"] for e in with_image).most_common(1)[0][0]
    expected = {e.id for e in with_image if e.fields["winlog"]["event_data"]["Image"] == image}
    got = loaded.search_events(Scope.of(A), EventQuery.where(EVERYTHING, {"winlog.event_data.Image": image}),
                               limit=5000).items
    assert {e.id for e in got} == expected


def test_filter_on_a_list_field_matches_any_element(store: Store) -> None:
    moment = datetime(2024, 3, 1, 12, tzinfo=UTC)
    docs = [
        {"related": {"user": ["alice", "bob"]}, "process": {"pid": 4}},
        {"related": {"user": ["carol"]}, "process": {"pid": 5}},
        {"related": {"user": "bob"}, "process": {"pid": 4}},
    ]
    events = [Event.from_ecs(doc, tenant=A, timestamp=moment + timedelta(seconds=n), id=event_id(A, "list", n))
              for n, doc in enumerate(docs)]
    store.append_events(events)
    store.refresh()
    bob = store.search_events(Scope.of(A), EventQuery.where(EVERYTHING, {"related.user": "bob"})).items
    assert [e.id for e in bob] == [events[0].id, events[2].id]
    pid4 = store.search_events(Scope.of(A), EventQuery.where(EVERYTHING, {"process.pid": 4})).items
    assert [e.id for e in pid4] == [events[0].id, events[2].id]
    assert store.aggregate_events(Scope.of(A), EventQuery(EVERYTHING), Terms("related.user")) == [
        Bucket("bob", 2), Bucket("alice", 1), Bucket("carol", 1)]


@pytest.mark.parametrize("descending", [False, True])
def test_cursor_pages_walk_every_event_once_in_time_order(loaded: Store, events_a: list[Event],
                                                          descending: bool) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = loaded.search_events(Scope.of(A), EventQuery(EVERYTHING), limit=97, cursor=cursor,
                                    descending=descending)
        seen.extend(e.id for e in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == time_order(events_a, descending)
    assert pages == -(-len(events_a) // 97)


def test_a_cursor_of_another_order_is_refused(loaded: Store) -> None:
    page = loaded.search_events(Scope.of(A), EventQuery(EVERYTHING), limit=5)
    assert page.next_cursor is not None
    with pytest.raises(InvalidQuery, match="sort order"):
        loaded.search_events(Scope.of(A), EventQuery(EVERYTHING), limit=5, cursor=page.next_cursor, descending=True)
    with pytest.raises(InvalidQuery, match="cursor"):
        loaded.search_events(Scope.of(A), EventQuery(EVERYTHING), limit=5, cursor="not-a-cursor")


def test_iter_events_streams_all_in_time_order(loaded: Store, events_b: list[Event]) -> None:
    streamed = [e.id for e in loaded.iter_events(Scope.of(B), EventQuery(EVERYTHING), batch_size=100)]
    assert streamed == time_order(events_b)


def test_events_read_back_equal_what_was_written(loaded: Store, events_b: list[Event]) -> None:
    by_id = {e.id: e for e in events_b}
    for event in loaded.search_events(Scope.of(B), EventQuery(EVERYTHING), limit=50).items:
        assert event.fields == by_id[event.id].fields
        assert event.timestamp == by_id[event.id].timestamp


def test_terms_aggregation_counts_like_python(loaded: Store, events_a: list[Event]) -> None:
    counts = Counter(e.fields["event"]["code"] for e in events_a)
    expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:6]
    got = loaded.aggregate_events(Scope.of(A), EventQuery(EVERYTHING), Terms("event.code", size=6))
    assert [(b.key, b.count) for b in got] == expected


def test_date_histogram_counts_like_python(loaded: Store, events_a: list[Event]) -> None:
    hour = timedelta(hours=1)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    counts = Counter(epoch + ((e.timestamp - epoch) // hour) * hour for e in events_a)
    got = loaded.aggregate_events(Scope.of(A), EventQuery(EVERYTHING), DateHistogram(hour))
    assert [(b.key, b.count) for b in got] == sorted(counts.items())


def test_retention_removes_whole_days_older_than_the_cutoff(loaded: Store, events_a: list[Event],
                                                            events_b: list[Event]) -> None:
    now = datetime(2020, 12, 20, 15, 30, tzinfo=UTC)
    result = loaded.apply_retention(30, now=now)
    cutoff = datetime(2020, 11, 20, tzinfo=UTC)
    assert result.cutoff == cutoff
    loaded.refresh()
    kept = [e for e in events_a + events_b if e.timestamp >= cutoff]
    assert 0 < len(kept) < len(events_a) + len(events_b)
    assert loaded.count_events(Scope.all(), EventQuery(EVERYTHING)) == len(kept)
    days_removed = {e.timestamp.date() for e in events_a + events_b if e.timestamp < cutoff}
    assert len(result.removed) >= len(days_removed)


# records ------------------------------------------------------------------------------------------


def incident(number: int, tenant: str = A, **changes: object) -> Incident:
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=number // 2)  # pairs share a time
    fields = {
        "id": f"inc-{tenant}-{number:03d}",
        "tenant": tenant,
        "title": f"incident {number}",
        "severity": list(Severity)[number % 5],
        "status": IncidentStatus.new if number % 3 else IncidentStatus.investigating,
        "techniques": ["T1003", "T1059"] if number % 4 == 0 else ["T1110"],
        "hosts": [f"ws{number % 3}"],
        "first_seen": created - timedelta(hours=1),
        "last_seen": created,
        "created_at": created,
        "updated_at": created,
    }
    fields.update(changes)
    return Incident(**fields)


def test_record_create_get_update_with_versions(store: Store) -> None:
    created = store.incidents.create(Scope.of(A), incident(1))
    got = store.incidents.get(Scope.of(A), "inc-agency-a-001")
    assert got.record == created.record
    assert got.version == created.version
    changed = got.record.model_copy(update={"status": IncidentStatus.acknowledged, "assignee": "ana"})
    updated = store.incidents.update(Scope.of(A), changed, got.version)
    assert updated.version != got.version
    assert store.incidents.get(Scope.of(A), changed.id).record.assignee == "ana"
    # a second writer that read the old version loses, loudly
    stale = got.record.model_copy(update={"status": IncidentStatus.resolved})
    with pytest.raises(VersionConflict):
        store.incidents.update(Scope.of(A), stale, got.version)
    assert store.incidents.get(Scope.of(A), changed.id).record.status == IncidentStatus.acknowledged


def test_create_never_overwrites(store: Store) -> None:
    store.incidents.create(Scope.of(A), incident(2))
    with pytest.raises(AlreadyExists):
        store.incidents.create(Scope.of(A), incident(2, title="other"))
    assert store.incidents.get(Scope.of(A), "inc-agency-a-002").record.title == "incident 2"


def test_audit_appends_cannot_fork_the_chain(store: Store) -> None:
    def audit(seq: int, actor: str) -> AuditRecord:
        return AuditRecord(id=AuditRecord.id_for(seq), tenant=A, seq=seq, actor=actor, action="status",
                           target="inc-1", prev_hash="0" * 64, hash="1" * 64)

    store.audit.create(Scope.of(A), audit(0, "ana"))
    with pytest.raises(AlreadyExists):
        store.audit.create(Scope.of(A), audit(0, "ben"))
    assert store.audit.get(Scope.all(), AuditRecord.id_for(0)).record.actor == "ana"


def test_records_of_other_tenants_look_absent(store: Store) -> None:
    store.incidents.create(Scope.of(A), incident(3))
    with pytest.raises(NotFound):
        store.incidents.get(Scope.of(B), "inc-agency-a-003")
    with pytest.raises(NotFound):
        store.incidents.get(Scope.of(A), "no-such-incident")
    current = store.incidents.get(Scope.of(A), "inc-agency-a-003")
    with pytest.raises(TenantDenied):
        store.incidents.update(Scope.of(B), current.record, current.version)
    moved = current.record.model_copy(update={"tenant": B})
    with pytest.raises(NotFound):  # B cannot take over A's record either
        store.incidents.update(Scope.of(B), moved, current.version)
    with pytest.raises(TenantDenied):
        store.incidents.create(Scope.of(B), incident(4))
    assert store.incidents.count(Scope.of(B), RecordQuery()) == 0


def walk(store: Store, scope: Scope, query: RecordQuery) -> list[str]:
    ids: list[str] = []
    while True:
        page = store.incidents.list(scope, query)
        ids.extend(item.record.id for item in page.items)
        if page.next_cursor is None:
            return ids
        query = RecordQuery(**{**query.__dict__, "cursor": page.next_cursor})


def test_record_list_filters_sorts_and_pages(store: Store) -> None:
    made = [incident(n) for n in range(30)] + [incident(n, tenant=B) for n in range(5)]
    for record in made:
        store.incidents.create(Scope.all(), record)
    mine = [r for r in made if r.tenant == A]

    new_first = RecordQuery.where({"status": "new"}, sort="created_at", descending=True, limit=4)
    expected = [r.id for r in sorted((r for r in mine if r.status == IncidentStatus.new),
                                     key=lambda r: (r.created_at, r.id), reverse=True)]
    assert walk(store, Scope.of(A), new_first) == expected
    assert store.incidents.count(Scope.of(A), new_first) == len(expected)

    t1003 = RecordQuery.where({"techniques": "T1003"}, sort="created_at", descending=False, limit=100)
    assert walk(store, Scope.of(A), t1003) == [r.id for r in mine if "T1003" in r.techniques]

    window = TimeRange(datetime(2026, 1, 1, 0, 3, tzinfo=UTC), datetime(2026, 1, 1, 0, 6, tzinfo=UTC))
    in_window = RecordQuery.where(time_field="created_at", time=window, sort="created_at", descending=False)
    assert walk(store, Scope.of(A), in_window) == [f"inc-agency-a-{n:03d}" for n in range(6, 12)]


def test_paging_stays_correct_while_new_records_arrive(store: Store) -> None:
    for n in range(20):
        store.incidents.create(Scope.of(A), incident(n))
    query = RecordQuery(sort="created_at", descending=True, limit=6)
    first = store.incidents.list(Scope.of(A), query)
    for n in range(100, 104):  # newer than everything: they belong before page one, not inside later pages
        store.incidents.create(Scope.of(A), incident(n))
    rest = walk(store, Scope.of(A), RecordQuery(**{**query.__dict__, "cursor": first.next_cursor}))
    ids = [item.record.id for item in first.items] + rest
    assert ids == [f"inc-agency-a-{n:03d}" for n in sorted(range(20), key=lambda n: (n // 2, n), reverse=True)]


def test_create_many_creates_new_records_and_leaves_taken_ids_alone(store: Store) -> None:
    store.incidents.create(Scope.of(A), incident(3, title="an analyst's incident"))
    batch = [incident(number) for number in range(10)]
    assert store.incidents.create_many(Scope.of(A), batch) == 9
    assert store.incidents.get(Scope.of(A), incident(3).id).record.title == "an analyst's incident"
    assert store.incidents.count(Scope.of(A), RecordQuery()) == 10
    with pytest.raises(TenantDenied):
        store.incidents.create_many(Scope.of(A), [incident(50, tenant=B)])


def test_text_search_finds_substrings_case_insensitively(store: Store) -> None:
    titles = {1: "Mimikatz on WS1", 2: "Password spray on dc01", 3: "mimikatz* lookalike", 4: "Ransom note"}
    for number, title in titles.items():
        store.incidents.create(Scope.of(A), incident(number, title=title))
    store.incidents.create(Scope.of(B), incident(5, tenant=B, title="mimikatz elsewhere"))

    def found(text: str) -> set[str]:
        page = store.incidents.list(Scope.of(A), RecordQuery(text=text, limit=100))
        return {item.record.title for item in page.items}

    expected = {text: {t for t in titles.values() if text.lower() in t.lower()}
                for text in ("MIMIKATZ", "z*", "on ", "?", "spray on DC")}
    assert {text: found(text) for text in expected} == expected
    assert store.incidents.count(Scope.of(A), RecordQuery(text="mimikatz")) == 2


def test_count_by_counts_scalar_and_list_fields_like_python(store: Store) -> None:
    records = [incident(number) for number in range(30)]
    for record in records:
        store.incidents.create(Scope.of(A), record)
    store.incidents.create(Scope.of(B), incident(99, tenant=B))

    def expected(values: list[str]) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    by_status = store.incidents.count_by(Scope.of(A), RecordQuery(), "status")
    assert [(b.key, b.count) for b in by_status] == expected([r.status.value for r in records])
    by_technique = store.incidents.count_by(Scope.of(A), RecordQuery.where({"status": "new"}), "techniques")
    assert [(b.key, b.count) for b in by_technique] == expected(
        [t for r in records if r.status == IncidentStatus.new for t in r.techniques])
    with pytest.raises(InvalidQuery):
        store.alerts.count_by(Scope.of(A), RecordQuery(), "fields")


def test_record_queries_are_checked(store: Store) -> None:
    with pytest.raises(InvalidQuery, match="sorted by"):
        store.incidents.list(Scope.all(), RecordQuery(sort="assignee"))
    with pytest.raises(InvalidQuery, match="no searchable field"):
        store.incidents.list(Scope.all(), RecordQuery.where({"nonsense": "x"}))
    with pytest.raises(InvalidQuery, match="no searchable field"):
        store.alerts.list(Scope.all(), RecordQuery.where({"fields": "x"}))


def test_reading_an_empty_store_finds_nothing(store: Store) -> None:
    query = EventQuery(EVERYTHING)
    assert list(store.iter_events(Scope.of("nobody"), query)) == []
    assert store.search_events(Scope.all(), query).items == []
    assert store.count_events(Scope.all(), query) == 0
    assert store.aggregate_events(Scope.all(), query, DateHistogram(timedelta(days=1))) == []
    assert store.apply_retention(1).removed == ()


def test_the_largest_page_works_and_a_larger_one_is_refused(loaded: Store, events_a: list[Event]) -> None:
    page = loaded.search_events(Scope.of(A), EventQuery(EVERYTHING), limit=5000)
    assert len(page.items) == min(5000, len(events_a))
    assert loaded.incidents.list(Scope.all(), RecordQuery(limit=5000)).items == []
    with pytest.raises(InvalidQuery, match="limit"):
        loaded.search_events(Scope.of(A), EventQuery(EVERYTHING), limit=5001)
    with pytest.raises(InvalidQuery, match="limit"):
        RecordQuery(limit=5001)


def test_filter_by_event_id_finds_exactly_those_events(loaded: Store, events_a: list[Event],
                                                       events_b: list[Event]) -> None:
    chosen = events_a[::40] + events_b[:3]
    query = EventQuery.where(EVERYTHING, {"event.id": [e.id for e in chosen]})
    got = loaded.search_events(Scope.of(A), query, limit=5000).items
    assert [e.id for e in got] == time_order([e for e in chosen if e.tenant == A])
    assert loaded.count_events(Scope.all(), query) == len(chosen)
    assert loaded.count_events(Scope.of(B), EventQuery.where(EVERYTHING, {"event.id": events_a[0].id})) == 0


def test_get_many_returns_the_records_in_scope_in_the_order_asked(store: Store) -> None:
    mine = [incident(number) for number in range(12)]
    theirs = [incident(number, tenant=B) for number in range(4)]
    store.incidents.create_many(Scope.all(), mine + theirs)
    current = store.incidents.get(Scope.of(A), mine[7].id)
    changed = store.incidents.update(Scope.of(A), current.record.model_copy(update={"assignee": "ana"}),
                                     current.version)
    # Over a thousand ids, most of them absent, so that every backend answers in several requests.
    absent = [f"no-such-incident-{number}" for number in range(1100)]
    asked = [mine[4].id, theirs[0].id, *absent[:600], mine[7].id, mine[4].id, *absent[600:], mine[0].id,
             theirs[1].id]
    got = store.incidents.get_many(Scope.of(A), asked)
    assert [item.record.id for item in got] == [mine[4].id, mine[7].id, mine[0].id]
    assert [(item.record, item.version) for item in got] == [
        (current.record, current.version) for current in (store.incidents.get(Scope.of(A), record_id)
                                                          for record_id in (mine[4].id, mine[7].id, mine[0].id))]
    assert got[1].record.assignee == "ana" and got[1].version == changed.version
    assert store.incidents.get_many(Scope.of(B), [record.id for record in mine]) == []
    assert [item.record.id for item in store.incidents.get_many(Scope.of(A, B), asked)] == [
        mine[4].id, theirs[0].id, mine[7].id, mine[0].id, theirs[1].id]
    assert len(store.incidents.get_many(Scope.all(), asked)) == 5
    assert store.incidents.get_many(Scope.of(), asked) == []
    assert store.incidents.get_many(Scope.of(A), []) == []


def test_list_field_filters_page_alike_for_common_and_rare_values(store: Store) -> None:
    # 400 incidents: T1110 on three in four (a common value), T1003 on one in four, "rare-host" on three;
    # tenant B holds the rare host too, and must never show up.
    rare = {5, 150, 399}
    mine = [incident(number, hosts=[f"ws{number % 3}", *(["rare-host"] if number in rare else [])])
            for number in range(400)]
    store.incidents.create_many(Scope.of(A), mine)
    store.incidents.create_many(Scope.of(B), [incident(number, tenant=B, hosts=["rare-host"]) for number in range(5)])

    def expected(filters: dict[str, list[str]], descending: bool) -> list[str]:
        def holds(record: Incident) -> bool:
            return all(set(values) & set(getattr(record, name) if isinstance(getattr(record, name), list)
                                         else [getattr(record, name)]) for name, values in filters.items())

        return [r.id for r in sorted((r for r in mine if holds(r)), key=lambda r: (r.created_at, r.id),
                                     reverse=descending)]

    cases: list[dict[str, list[str]]] = [
        {"techniques": ["T1110"]}, {"techniques": ["T1003", "T1110"]}, {"hosts": ["rare-host"]},
        {"hosts": ["rare-host"], "techniques": ["T1110"]}, {"techniques": ["T1003"], "status": ["new"]},
        {"hosts": ["rare-host", "ws1"]}, {"hosts": ["nobody"]},
    ]
    for filters in cases:
        for descending in (True, False):
            query = RecordQuery.where(filters, sort="created_at", descending=descending, limit=40)
            want = expected(filters, descending)
            assert walk(store, Scope.of(A), query) == want, (filters, descending)
            assert store.incidents.count(Scope.of(A), query) == len(want), filters
    assert len(expected({"techniques": ["T1110"]}, True)) == 300 and len(expected({"hosts": ["rare-host"]}, True)) == 3


def test_read_together_answers_each_read_as_if_asked_alone(loaded: Store, events_a: list[Event],
                                                           events_b: list[Event]) -> None:
    made = [incident(number) for number in range(9)] + [incident(number, tenant=B) for number in range(3)]
    loaded.incidents.create_many(Scope.all(), made)
    current = loaded.incidents.get(Scope.of(A), made[4].id)
    loaded.incidents.update(Scope.of(A), current.record.model_copy(update={"assignee": "ana"}), current.version)
    loaded.records(Tenant).create(Scope.all(), Tenant(id=A, tenant=A, name="Agency A",
                                                      notification_regime=NotificationRegime.us_federal))
    chosen = events_a[::50] + events_b[:4]
    newest_three = RecordQuery.where({"status": "new"}, sort="created_at", descending=True, limit=3)
    reads = [
        RecordRead(Incident, newest_three),
        EventRead(EventQuery.where(EVERYTHING, {"event.id": [e.id for e in chosen]}), limit=len(chosen)),
        RecordRead(Incident, RecordQuery.where({"assignee": "ana"}, sort="id")),
        tenant_read(A),
        tenant_read(B),  # no record: an empty page
        RecordRead(Incident, RecordQuery.where({"status": "no-such-status"}, sort="id")),
    ]
    newest, events, assigned, tenant_a, tenant_b, nothing = loaded.read_together(Scope.of(A), reads)

    new_in_a = sorted((r for r in made if r.tenant == A and r.status == IncidentStatus.new),
                      key=lambda r: (r.created_at, r.id), reverse=True)
    assert [item.record.id for item in newest.items] == [r.id for r in new_in_a[:3]]
    assert [item.version for item in newest.items] == [loaded.incidents.get(Scope.of(A), item.record.id).version
                                                       for item in newest.items]
    rest = loaded.incidents.list(Scope.of(A), RecordQuery(**{**newest_three.__dict__, "cursor": newest.next_cursor}))
    assert [item.record.id for item in rest.items] == [r.id for r in new_in_a[3:6]]
    assert [e.id for e in events.items] == time_order([e for e in chosen if e.tenant == A])
    assert events.next_cursor is None
    assert [(item.record.id, item.record.assignee) for item in assigned.items] == [(made[4].id, "ana")]
    assert regime_of(tenant_of(tenant_a)) == NotificationRegime.us_federal
    assert tenant_b.items == [] and tenant_of(tenant_b) is None and regime_of(None) == NotificationRegime.eu
    assert nothing.items == [] and nothing.next_cursor is None
    # another tenant's scope sees only its own, whatever is asked
    newest_b, assigned_b, tenant_a_from_b = loaded.read_together(Scope.of(B), [reads[0], reads[2], reads[3]])
    assert [item.record.id for item in newest_b.items] == [
        r.id for r in sorted((r for r in made if r.tenant == B and r.status == IncidentStatus.new),
                             key=lambda r: (r.created_at, r.id), reverse=True)][:3]
    assert newest_b.items and assigned_b.items == [] and tenant_a_from_b.items == []
    assert loaded.read_together(Scope.of(A), []) == []


def test_read_together_refuses_an_invalid_read(store: Store) -> None:
    with pytest.raises(InvalidQuery, match="no searchable field"):
        store.read_together(Scope.all(), [tenant_read(A), RecordRead(Incident, RecordQuery.where({"nonsense": "x"}))])
    with pytest.raises(InvalidQuery, match="limit"):
        store.read_together(Scope.all(), [EventRead(EventQuery(EVERYTHING), limit=5001)])
