"""What only the Elasticsearch store has to prove: the engine itself, the index layout, the
mappings pySigma's queries rely on, and mapping rejections."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.sample_events import otrf_events
from civicsoc.errors import StoreError, StoreUnavailable
from civicsoc.event import Event, event_id
from civicsoc.store import EventQuery, EventRead, Scope, TimeRange
from civicsoc.store.elasticsearch import ElasticsearchStore, redact_url
from tests.test_cli import free_port

REPO = Path(__file__).resolve().parents[1]


def test_the_node_is_real_elasticsearch_9(es_url: str) -> None:
    with urllib.request.urlopen(es_url, timeout=10) as response:
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
        banner = json.loads(response.read())
    assert int(banner["version"]["number"].split(".")[0]) >= 9
    assert banner["tagline"] == "You Know, for Search"


def test_smoke_of_the_engine_with_the_official_client(es_url: str) -> None:
    """The node's own acceptance check: info, template, 100k docs via helpers.bulk, search, aggs, PIT,
    if_seq_no conflicts, delete."""
    result = subprocess.run([sys.executable, str(REPO / "tools" / "elasticsearch" / "smoke.py"), es_url],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_event_indices_are_per_tenant_and_day_behind_one_alias(es_store: ElasticsearchStore) -> None:
    events = list(otrf_events("agency-a", 200)) + list(otrf_events("agency-a-b", 50))
    es_store.append_events(events)
    indices = set(es_store.client.indices.get_alias(name=es_store.events_alias))
    expected = {es_store.event_index(e.tenant, e.timestamp) for e in events}
    assert indices == expected
    assert all(name.startswith(f"{es_store.prefix}-events-agency-a") for name in indices)
    # tenant "agency-a" must not pick up "agency-a-b"'s indices through its pattern
    es_store.refresh()
    pattern_hits = es_store.client.count(index=es_store.event_indices(Scope.of("agency-a")))["count"]
    assert pattern_hits == 200


def test_caseless_subfields_match_whatever_the_case(es_store: ElasticsearchStore) -> None:
    events = [e for e in otrf_events("agency-a") if "Image" in e.fields["winlog"]["event_data"]][:300]
    es_store.append_events(events)
    es_store.refresh()
    image = events[0].fields["winlog"]["event_data"]["Image"]
    assert image != image.upper(), "the sample needs a mixed-case value"
    expected = sum(e.fields["winlog"]["event_data"]["Image"].lower() == image.lower() for e in events)
    shouted = es_store.client.count(index=es_store.events_alias,
                                    query={"term": {"winlog.event_data.Image.caseless": image.upper()}})
    exact_wrong_case = es_store.client.count(index=es_store.events_alias,
                                             query={"term": {"winlog.event_data.Image": image.upper()}})
    assert shouted["count"] == expected > 0
    assert exact_wrong_case["count"] == 0


def test_ecs_types_are_explicit(es_store: ElasticsearchStore) -> None:
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    event = Event.from_ecs({"source": {"ip": "10.1.2.3", "port": 445}, "message": "hello"}, tenant="agency-a",
                           timestamp=moment, id=event_id("agency-a", "t", 1))
    es_store.append_events([event])
    mapping = es_store.client.indices.get_mapping(index=es_store.event_index("agency-a", moment))
    properties = next(iter(mapping.body.values()))["mappings"]["properties"]
    assert properties["@timestamp"]["type"] == "date_nanos"
    assert properties["source"]["properties"]["ip"]["type"] == "ip"
    assert properties["source"]["properties"]["port"]["type"] == "long"
    assert properties["event"]["properties"]["code"]["fields"]["caseless"]["normalizer"] == "lowercase"
    assert properties["message"]["type"] == "text"


def test_a_mapping_conflict_is_a_rejection_naming_the_event_and_field(es_store: ElasticsearchStore) -> None:
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    first = Event.from_ecs({"labels": {"owner": "it"}}, tenant="agency-a", timestamp=moment,
                           id=event_id("agency-a", "t", 1))
    clash = Event.from_ecs({"labels": {"owner": {"team": "it"}}}, tenant="agency-a", timestamp=moment,
                           id=event_id("agency-a", "t", 2))
    assert es_store.append_events([first]).stored == 1
    result = es_store.append_events([clash])
    assert result.stored == 0
    assert [r.event_id for r in result.rejected] == [clash.id]
    assert "labels.owner" in result.rejected[0].reason


def test_an_unreachable_node_is_one_line_with_url_and_cause() -> None:
    port = free_port()
    store = ElasticsearchStore(f"http://elastic:hunter2@127.0.0.1:{port}", request_timeout=2)
    with pytest.raises(StoreUnavailable) as caught:
        store.ping()
    message = str(caught.value)
    assert message == f"store http://elastic:***@127.0.0.1:{port}: connect: cannot connect (Connection refused)"
    store.close()


def test_redact_url_keeps_everything_but_the_password() -> None:
    assert redact_url("https://user:pw@es.example:9243/base") == "https://user:***@es.example:9243/base"
    assert redact_url("http://es.example:9200") == "http://es.example:9200"


def test_a_short_time_range_reads_only_its_days_indices(es_store: ElasticsearchStore) -> None:
    # Events of two tenants spread over three UTC days, one of them at midnight sharp.
    day = datetime(2024, 5, 1, tzinfo=UTC)
    moments = [day + timedelta(hours=hours) for hours in (1, 23, 24, 30, 47, 50)]  # 24 h: 2024-05-02T00:00Z
    events = [Event.from_ecs({"message": f"event {n}"}, tenant=tenant, timestamp=moment,
                             id=event_id(tenant, "days", f"{n}"))
              for n, moment in enumerate(moments) for tenant in ("agency-a", "agency-b")]
    es_store.append_events(events)
    es_store.refresh()
    prefix = es_store.prefix

    second_day = TimeRange(day + timedelta(days=1), day + timedelta(days=2))  # half open: the third day is out
    assert es_store.event_indices(Scope.of("agency-a"), second_day) == f"{prefix}-events-agency-a.2024-05-02"
    assert es_store.event_indices(Scope.all(), second_day) == f"{prefix}-events-*.2024-05-02"
    assert es_store.event_indices(Scope.of("agency-b", "agency-a"), TimeRange(day, day + timedelta(hours=30))) == (
        f"{prefix}-events-agency-a.2024-05-01,{prefix}-events-agency-a.2024-05-02,"
        f"{prefix}-events-agency-b.2024-05-01,{prefix}-events-agency-b.2024-05-02")
    a_year = TimeRange(day, day + timedelta(days=365))
    assert es_store.event_indices(Scope.of("agency-a"), a_year) == f"{prefix}-events-agency-a.*"

    def expected(scope: Scope, window: TimeRange) -> list[str]:
        return [e.id for e in sorted(events, key=lambda e: (e.timestamp, e.id))
                if scope.allows(e.tenant) and window.start <= e.timestamp < window.end]

    windows = [second_day, TimeRange(day + timedelta(hours=23), day + timedelta(hours=48)),
               TimeRange(day - timedelta(days=3), day), a_year]  # the third: days without any index
    for scope in (Scope.of("agency-a"), Scope.all()):
        for window in windows:
            got = es_store.search_events(scope, EventQuery(window), limit=100).items
            assert [e.id for e in got] == expected(scope, window)
            assert es_store.count_events(scope, EventQuery(window)) == len(expected(scope, window))
            assert [e.id for e in es_store.iter_events(scope, EventQuery(window))] == expected(scope, window)


def test_a_search_failing_in_the_node_fails_read_together_naming_it(es_store: ElasticsearchStore) -> None:
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    es_store.append_events([Event.from_ecs({"message": "x"}, tenant="agency-a", timestamp=moment,
                                           id=event_id("agency-a", "msearch", 1))])
    es_store.refresh()
    day = TimeRange(moment, moment + timedelta(days=1))
    good = EventRead(EventQuery(day), limit=10)
    # A date field compared with text is refused by the node, not by civicsoc: the multi-search answers
    # that one search with an error while the others succeed.
    bad = EventRead(EventQuery.where(day, {"@timestamp": "not a date"}), limit=10)
    assert [len(page.items) for page in es_store.read_together(Scope.of("agency-a"), [good, good])] == [1, 1]
    with pytest.raises(StoreError) as caught:
        es_store.read_together(Scope.of("agency-a"), [good, bad])
    message = str(caught.value)
    assert "search events: HTTP 400" in message and "not a date" in message


def test_the_incident_queue_is_kept_sorted_newest_first_and_other_records_are_not(
        es_store: ElasticsearchStore) -> None:
    def index_sort(index: str) -> dict[str, object] | None:
        settings = es_store.client.indices.get_settings(index=index, flat_settings=True)[index]["settings"]
        fields, orders = settings.get("index.sort.field"), settings.get("index.sort.order")
        return {"field": fields, "order": orders} if fields else None

    assert index_sort(es_store.incidents.index) == {"field": ["created_at", "id"], "order": ["desc", "desc"]}
    assert index_sort(es_store.alerts.index) is None  # bulk-written in floods: index sorting would slow that
