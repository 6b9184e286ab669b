"""Differential test: the stream matcher and the Elasticsearch queries of the same rules flag the same events.

A real corpus — every EVTX of the SigmaHQ regression data (each file fires a known rule) and of
evtx-attack-samples, read by the real EVTX collector — is matched by the stream matcher
(``IndexedEngine``) and indexed once into Elasticsearch with the project's event index template. Every
Windows rule of SigmaHQ that loads, and civicsoc's own rules, is converted as ``detection.eshunt`` converts
it (``rule_queries``) and run as the ``query_string`` ``ElasticsearchStore.iter_events_matching`` runs
(with ``lenient: false``, see ``QUERY_STRING_OPTIONS``); per rule, the set of event ids must be the same
on both sides. ``test_the_hunt_on_elasticsearch_finds_what_the_stream_finds`` then runs part of the rule
set through the hunt itself (``eshunt.matches_from_queries``), and a last test holds the translation of
regular expressions (``detection.lucene_regex``) to Python's answers on texts made for each expression.

What Elasticsearch cannot express is listed in ``EXPLAINED`` (rule id → why); the hunt runs those rules
with the stream matcher instead (``eshunt``). Any other rule whose sets differ, whose conversion fails or
whose query Elasticsearch refuses fails the test, and so does an entry of ``EXPLAINED`` that no longer
disagrees. The counts (rules compared, agreeing, disagreeing, explained) are printed with the results.

The queries go out in ``_msearch`` batches; one search per rule takes minutes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from re import _constants as sre
from re import _parser
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from sigma.exceptions import SigmaError

from civicsoc.errors import StoreError
from civicsoc.event import Event, event_id
from civicsoc.store import EventQuery, Scope, TimeRange
from civicsoc.store.elasticsearch import ElasticsearchStore
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.engine import IndexedEngine
from detection.eshunt import QueryHuntReport, matches_from_queries, rule_queries
from detection.lucene_regex import UnsupportedRegex, lucene_regex
from detection.matcher import AllOf, AnyOf, Node, Not, RegexTest
from detection.rules import Rule, builtin_rules_path, load_rules

pytestmark = pytest.mark.elasticsearch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIGMAHQ = SHARED / "sigmahq-sigma"
CORPUS_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance")
EVTX_DIRS = (SHARED / "sigmahq-regression-data", SHARED / "evtx-attack-samples")
TENANT = "differential"

MIN_FLAGGED_PAIRS = 1000
MIN_FIRING_RULES = 300
"""The stream matcher flags 1392 (rule, event) pairs of 449 rules on this corpus: a comparison over a
corpus that fires little would prove little."""

BATCH = 200
PAGE = 500
"""Searches per ``_msearch`` request, and hits asked per search (a rule with more is asked again)."""

FIELDREF = "|fieldref: a Lucene query string compares a field with constants, never with another field"
UNICODE_WORD = ("a regular expression repeating Python's Unicode \\w (734 code point ranges): the Lucene "
                "automaton is too large for the node (detection.lucene_regex.MAX_WEIGHT)")
TOO_COMPLEX = ("a regular expression with a long bounded repeat of '.' after an unanchored start: Elasticsearch "
               "refuses it as too complex to determinize")

EXPLAINED: dict[str, str] = {
    "e3c6d245-7b8f-4e2a-c17f-a9d0e5b38f62": FIELDREF,
    "f01d1f70-cd41-42ec-9c0b-26dd9c22bf29": FIELDREF,
    "d2b7a134-9c3e-4f8a-b56d-e0c1f8a29b47": FIELDREF,
    "bafd07c6-3ea5-454a-b4be-058fbb073de7": FIELDREF,
    "9ce4554b-94a0-41db-81e8-89c60b8e75ff": FIELDREF,  # civicsoc's own: MailboxOwnerUPN|fieldref: UserId
    # (?:\.|\b) inside a repeated group
    "cb5a2333-56cf-4562-8fcb-22ba1bca728d": "a regular expression with \\b: Lucene's RegExp has no word boundary",
    "56d19cb4-6414-4769-9644-1ed35ffbb148": "a regular expression with \\b: Lucene's RegExp has no word boundary",
    # Vulnerable Driver Load: 4,432 *MD5=…* values on one field (detection.lucene.MAX_SUBSTRING_PATTERNS)
    "7aaaf4b8-e47c-4295-92ee-6ed40a6f60c8": "4,432 substring patterns in one query: the request circuit breaker",
    "deb9b646-a508-44ee-b7c9-d8965921c6b6": UNICODE_WORD,  # \w+`(\w+|-|.)`[\w+|\s]
    "f3a98ce4-6164-4dd4-867c-4d83de7eca51": UNICODE_WORD,  # \w+`(\w+|-|.)`[\w+|\s]
    "f17211f1-1f24-4d0c-829f-31e28dc93cdd": UNICODE_WORD,  # -k\s\w{1,64}
    "63bf8794-9917-45bc-88dd-e1b5abc0ecfd": TOO_COMPLEX,  # (Copy-Item|cpi) .{2,128} -Destination .{1,32}\\Windows
    "589ac73f-8e12-409c-964e-31a2f5775ae2": TOO_COMPLEX,  # \.exe["']?\s+[^"]{0,64}werfaultsecure ...
    "f1531fa4-5b84-4342-8f68-9cf3fdbd83d4": TOO_COMPLEX,  # ping\s+-n.{6,64}echo EEEE
    "064060aa-09fb-4636-817f-020a32aa7e9e": TOO_COMPLEX,  # (Get-Item|gci|Get-ChildItem).{1,64}-Path.{1,64}...
}
"""Rules whose Elasticsearch side is missing, and why; the hunt runs them with the stream matcher."""


class OneIndexStore(ElasticsearchStore):
    """The real store with one event index per tenant instead of one per tenant and day.

    The attack samples span ~200 days; 3,000 searches over 200 one-shard indices take many minutes, over
    one they take seconds. The index is still made by the project's template (its pattern
    ``<prefix>-events-*`` matches), and events still go through ``append_events``."""

    def event_index(self, tenant: str, moment: datetime) -> str:
        return f"{self.prefix}-events-{tenant}.all"


@dataclass
class Comparison:
    rules: dict[str, Rule]
    stream: dict[str, set[str]]
    """Rule id → ids of the events the stream matcher flags."""
    queried: dict[str, set[str]] = field(default_factory=dict)
    """Rule id → ids of the events its converted queries return (rules that converted and ran)."""
    not_run: dict[str, str] = field(default_factory=dict)
    """Rule id → why it has no Elasticsearch result (pySigma's reason, or Elasticsearch's error)."""
    queries: dict[str, list[str]] = field(default_factory=dict)

    def disagreements(self) -> dict[str, str]:
        """Rule id → what differs, for every rule whose two sides are not the same set."""
        found = dict(self.not_run)
        for rule_id, hits in self.queried.items():
            flagged = self.stream.get(rule_id, set())
            if hits != flagged:
                only_stream, only_es = sorted(flagged - hits), sorted(hits - flagged)
                found[rule_id] = (f"stream only: {len(only_stream)} {only_stream[:3]}, "
                                  f"Elasticsearch only: {len(only_es)} {only_es[:3]}, "
                                  f"query: {self.queries[rule_id][0][:300]}")
        return found


# --- fixtures ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    loaded = load_rules([SIGMAHQ / name for name in CORPUS_DIRS])
    own = load_rules([builtin_rules_path()])
    windows = [rule for rule in loaded.detections if rule.logsource.product == "windows"]
    return windows + list(own.detections)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    context = CollectorContext(tenant=TENANT)
    found = [item.value for folder in EVTX_DIRS for path in sorted(folder.rglob("*.evtx"))
             for item in read_evtx(path, context) if isinstance(item.value, Event)]
    assert len(found) > 5000, "the shared EVTX corpus is not in place"
    return found


@pytest.fixture(scope="module")
def store(es_url: str) -> Iterator[OneIndexStore]:
    """A store on its own index prefix for this module, dropped afterwards."""
    store = OneIndexStore(es_url, prefix=f"test-differential-{uuid.uuid4().hex[:8]}", request_timeout=120)
    store.setup()
    try:
        yield store
    finally:
        store.drop()
        store.close()


@pytest.fixture(scope="module")
def indexed(store: OneIndexStore, events: list[Event]) -> str:
    """The corpus in Elasticsearch, once per module; the name of its index."""
    for start in range(0, len(events), 1000):
        result = store.append_events(events[start:start + 1000])
        assert not result.rejected and not result.retry, result.rejected[:3]
    store.refresh()
    index = store.event_index(TENANT, datetime.now(UTC))
    assert store.client.count(index=index)["count"] == len({event.id for event in events})
    return index


@pytest.fixture(scope="module")
def comparison(rules: list[Rule], events: list[Event], store: OneIndexStore, indexed: str) -> Comparison:
    engine = IndexedEngine(rules)
    stream: dict[str, set[str]] = {}
    for event in events:
        for match in engine.match(event):
            stream.setdefault(match.rule.id, set()).add(event.id)
    result = Comparison(rules={rule.id: rule for rule in rules}, stream=stream)
    # Conversion (Python) and searching (Elasticsearch) overlap: each batch is sent while the next converts.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(_search_batch, store.client, indexed, batch)
                   for batch in _batches(_converted(rules, result), BATCH)]
        for future in pending:
            _collect(future, result)
    return result


def _converted(rules: Iterable[Rule], result: Comparison) -> Iterator[tuple[str, str]]:
    for rule in rules:
        try:
            queries = rule_queries(rule)
        except SigmaError as exc:
            result.not_run[rule.id] = f"not converted: {str(exc).splitlines()[0]}"
            continue
        result.queries[rule.id] = queries
        result.queried[rule.id] = set()
        yield from ((rule.id, query) for query in queries)


def _batches(items: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


QUERY_STRING_OPTIONS = {"allow_leading_wildcard": True, "lenient": False}
"""The options of ``ElasticsearchStore.iter_events_matching``'s ``query_string``, plus ``lenient: false``,
which it lacks: without it Elasticsearch 9.5 answers a regular expression too complex to determinize
with no hits instead of an error (``test_a_too_complex_expression_is_an_error_not_an_empty_answer``)."""


def _search(query: str, size: int) -> dict[str, Any]:
    # The query_string clause the hunt runs, as a filter (same hits, no scores).
    return {"query": {"bool": {"filter": [{"query_string": {"query": query, **QUERY_STRING_OPTIONS}}]}},
            "_source": False, "size": size, "track_total_hits": True}


def _search_batch(client: Elasticsearch, index: str, batch: Sequence[tuple[str, str]]
                  ) -> list[tuple[str, set[str] | str]]:
    """Per (rule, query): the ids it returns, or Elasticsearch's error."""
    searches: list[dict[str, Any]] = []
    for _, query in batch:
        searches += [{"index": index}, _search(query, PAGE)]
    responses = client.msearch(searches=searches)["responses"]
    out: list[tuple[str, set[str] | str]] = []
    for (rule_id, query), response in zip(batch, responses, strict=True):
        if "error" in response:
            cause = (response["error"].get("root_cause") or [response["error"]])[0]
            out.append((rule_id, f"Elasticsearch refused the query: {cause.get('reason')}"))
            continue
        total = response["hits"]["total"]["value"]
        if total > PAGE:
            response = client.search(index=index, **_search(query, total))
        out.append((rule_id, {hit["_id"] for hit in response["hits"]["hits"]}))
    return out


def _collect(future: Future[list[tuple[str, set[str] | str]]], result: Comparison) -> None:
    for rule_id, hits in future.result():
        if isinstance(hits, str):
            result.not_run[rule_id] = hits
            result.queried.pop(rule_id, None)
        elif rule_id in result.queried:
            result.queried[rule_id] |= hits


# --- the comparison ----------------------------------------------------------------------------------------

def test_the_corpus_makes_many_rules_fire(comparison: Comparison) -> None:
    pairs = sum(len(ids) for ids in comparison.stream.values())
    assert pairs >= MIN_FLAGGED_PAIRS
    assert len(comparison.stream) >= MIN_FIRING_RULES
    assert len(comparison.queried) > 2500, "most Windows rules must convert and run"


def test_stream_and_elasticsearch_flag_the_same_events(comparison: Comparison,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    disagreements = comparison.disagreements()
    unexplained = {rule_id: why for rule_id, why in disagreements.items() if rule_id not in EXPLAINED}
    compared = len(comparison.queried) + len(comparison.not_run)
    flagged = sum(len(ids) for ids in comparison.stream.values())
    with capsys.disabled():
        print(f"\nstream vs Elasticsearch: {compared} rules compared, {compared - len(disagreements)} agree, "
              f"{len(disagreements)} disagree ({len(disagreements) - len(unexplained)} explained, "
              f"{len(unexplained)} unexplained); {flagged} (rule, event) pairs flagged by "
              f"{len(comparison.stream)} rules")
    report = "\n".join(f"{rule_id} {comparison.rules[rule_id].title}: {why}" for rule_id, why in unexplained.items())
    assert not unexplained, f"{len(unexplained)} rules disagree without an entry in EXPLAINED:\n{report}"


def test_every_explained_rule_still_disagrees(comparison: Comparison) -> None:
    """An entry whose rule now agrees (or left the corpus) is stale: the list must say what still fails."""
    disagreements = comparison.disagreements()
    stale = sorted(rule_id for rule_id in EXPLAINED if rule_id not in disagreements)
    assert not stale, f"EXPLAINED lists rules that agree now or are not loaded: {stale}"


# --- the hunt itself ---------------------------------------------------------------------------------------

EVERYTHING = EventQuery(TimeRange(datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))


def test_the_hunt_on_elasticsearch_finds_what_the_stream_finds(comparison: Comparison, store: OneIndexStore,
                                                               indexed: str) -> None:
    """``eshunt.matches_from_queries`` as ``civicsoc hunt`` runs it (``iter_events_matching`` per query, the
    stream matcher over a scan for what does not convert), on every 8th firing rule and the rules that
    fall back to the scan: the same (rule, event) pairs as the stream matcher."""
    firing = sorted(comparison.stream)[::8]
    scanned = [rule_id for rule_id, why in EXPLAINED.items() if why != TOO_COMPLEX]  # tested below
    rules = [comparison.rules[rule_id] for rule_id in [*firing, *scanned]]
    report = QueryHuntReport()
    matches = matches_from_queries(store, Scope.of(TENANT), EVERYTHING, rules, report)
    found = {(match.rule.id, match.event.id) for match in matches}
    expected = {(rule.id, event) for rule in rules for event in comparison.stream.get(rule.id, ())}
    assert len(expected) > 150
    assert found == expected
    assert len(found) == len(matches), "a (rule, event) pair is reported once"
    assert {rule_id for rule_id, _ in report.by_scan} == set(scanned)
    assert report.by_query == len(firing)


def test_a_too_complex_expression_is_an_error_not_an_empty_answer(comparison: Comparison,
                                                                  store: OneIndexStore, indexed: str) -> None:
    """The hunt falls back to the stream matcher when Elasticsearch refuses a query (``StoreError``); a
    query it silently answers with nothing would lose the rule's matches instead."""
    rule = comparison.rules["f1531fa4-5b84-4342-8f68-9cf3fdbd83d4"]  # ping\s+-n.{6,64}echo EEEE ...
    (query,) = rule_queries(rule)
    with pytest.raises(StoreError, match="Determinizing automaton"):
        list(store.iter_events_matching(Scope.of(TENANT), EVERYTHING, query))


# --- regular expressions, on their own -----------------------------------------------------------------

def _regexes(node: Node) -> Iterator[RegexTest]:
    if isinstance(node, AllOf | AnyOf):
        for child in node.children:
            yield from _regexes(child)
    elif isinstance(node, Not):
        yield from _regexes(node.child)
    elif isinstance(node, RegexTest):
        yield node


def _example(items: Iterable[tuple[Any, Any]]) -> str:
    """A text the parsed expression matches, built by hand from the parse tree (first alternative, fewest
    repetitions, a plain member of each class); the caller keeps it only if ``re.search`` agrees."""
    out: list[str] = []
    for op, av in items:
        if op is sre.LITERAL:
            out.append(chr(av))
        elif op is sre.NOT_LITERAL:
            out.append("y" if av == ord("x") else "x")
        elif op is sre.ANY:
            out.append("x")
        elif op is sre.IN:
            out.append(_class_member(av))
        elif op is sre.BRANCH:
            out.append(_example(av[1][0].data))
        elif op is sre.SUBPATTERN:
            out.append(_example(av[3].data))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            out.append(_example(av[2].data) * max(av[0], 1 if av[1] else 0))
    return "".join(out)


CATEGORY_MEMBERS = {sre.CATEGORY_DIGIT: "5", sre.CATEGORY_SPACE: " ", sre.CATEGORY_WORD: "w",
                    sre.CATEGORY_NOT_DIGIT: "x", sre.CATEGORY_NOT_SPACE: "x", sre.CATEGORY_NOT_WORD: "-"}


def _class_member(items: list[tuple[Any, Any]]) -> str:
    if items and items[0][0] is sre.NEGATE:
        excluded = "".join(_class_member([item]) for item in items[1:] if item[0] is not sre.CATEGORY)
        return next(char for char in "xqZ7_-~" if char not in excluded)
    op, av = items[0]
    if op is sre.LITERAL:
        return chr(av)
    if op is sre.RANGE:
        return chr(av[0])
    return CATEGORY_MEMBERS.get(av, "x")


def _variants(text: str) -> list[str]:
    """The example, padded (unanchored search), on a later line, before a final newline, in the other case."""
    return [text, f"pre {text} post", f"line one\n{text}", f"{text}\n", f"{text}\nmore", text.swapcase()]


def test_translated_regular_expressions_find_what_python_finds(rules: list[Rule], store: OneIndexStore) -> None:
    """Every ``|re`` of the corpus, translated by ``detection.lucene_regex``, over texts made to exercise it:
    Elasticsearch must return exactly the texts Python's ``re.search`` matches (every expression against
    every text, so the other expressions' texts are the negative cases)."""
    expressions = sorted({(test.pattern, test.flags) for rule in rules if rule.matcher is not None
                          for test in _regexes(rule.matcher.tree)})
    translated: dict[tuple[str, int], str] = {}
    for pattern, flags in expressions:
        try:
            translated[(pattern, flags)] = lucene_regex(pattern, flags)
        except UnsupportedRegex:
            continue
    examples = [_example(_parser.parse(pattern, flags).data) for pattern, flags in translated]
    texts = sorted({variant for (pattern, flags), example in zip(translated, examples, strict=True)
                    if re.search(pattern, example, flags) for variant in _variants(example)})
    assert len(translated) > 100 and len(texts) > 500
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    store.append_events([Event.from_ecs({"probe": {"text": text}}, tenant="regex-probe", timestamp=moment,
                                        id=event_id("regex-probe", "texts", number))
                         for number, text in enumerate(texts)])
    store.refresh()
    index = store.event_index("regex-probe", moment)
    by_id = {event_id("regex-probe", "texts", number): text for number, text in enumerate(texts)}
    items = list(translated.items())
    wrong: list[str] = []
    refused: list[str] = []
    for start in range(0, len(items), BATCH):
        batch = items[start:start + BATCH]
        searches: list[dict[str, Any]] = []
        for _, lucene in batch:
            searches += [{"index": index}, _search(f"probe.text:/{lucene}/", len(texts))]
        responses = store.client.msearch(searches=searches)["responses"]
        for ((pattern, flags), _), response in zip(batch, responses, strict=True):
            if "error" in response:  # too complex to determinize: the hunt scans these rules instead
                assert "Determinizing automaton" in str(response["error"]), (pattern, response["error"])
                refused.append(pattern)
                continue
            found = {by_id[hit["_id"]] for hit in response["hits"]["hits"]}
            expected = {text for text in texts if re.search(pattern, text, flags)}
            if found != expected:
                wrong.append(f"{pattern!r} (flags {flags}): Python only {sorted(expected - found)[:3]}, "
                             f"Elasticsearch only {sorted(found - expected)[:3]}")
    assert not wrong, "\n".join(wrong)
    assert len(refused) < len(translated) / 10, refused
