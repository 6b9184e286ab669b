"""The indexed engine returns exactly what evaluating every rule returns.

The whole SigmaHQ corpus (every rule directory pySigma parses, all products) against every event of the
shared EVTX samples, through the real EVTX reader. The naive engine is the reference; it is slow (every
rule on every event), so the events are split over two forked worker processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from civicsoc.event import Event
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.engine import IndexedEngine, Match, NaiveEngine
from detection.fields import EventView
from detection.index import anchors, required_values
from detection.rules import RuleSet, load_rules

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIGMAHQ = SHARED / "sigmahq-sigma"
RULE_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-compliance", "deprecated", "unsupported")
EVTX_DIRS = ("evtx-attack-samples", "hayabusa-sample-evtx", "deepbluecli-evtx", "evtx-to-mitre-attack",
             "evtx-parser-samples", "sigmahq-regression-data")

_WORKER_STATE: dict[str, Any] = {}


def _naive_indexes(bounds: tuple[int, int]) -> list[list[int]]:
    """Runs in a forked worker: the naive engine's matches (as rule positions) for a slice of the events."""
    engine: NaiveEngine = _WORKER_STATE["naive"]
    documents: Sequence[dict[str, Any]] = _WORKER_STATE["documents"]
    position = {id(rule): index for index, rule in enumerate(engine.rules)}
    return [[position[id(rule)] for rule in engine.matching_rules(documents[number])]
            for number in range(*bounds)]


@pytest.fixture(scope="module")
def corpus() -> RuleSet:
    return load_rules([SIGMAHQ / name for name in RULE_DIRS])


@pytest.fixture(scope="module")
def events() -> list[Event]:
    context = CollectorContext(tenant="test")
    found = []
    for directory in EVTX_DIRS:
        for path in sorted((SHARED / directory).rglob("*.evtx")):
            found.extend(item.value for item in read_evtx(path, context) if isinstance(item.value, Event))
    return found


def test_indexed_engine_equals_naive_engine_on_the_whole_corpus(corpus: RuleSet, events: list[Event]) -> None:
    naive = NaiveEngine(corpus.loaded)
    indexed = IndexedEngine(corpus.loaded)
    assert len(naive.rules) == len(indexed.rules) > 3900
    assert len(events) > 25_000
    documents = [event.fields for event in events]
    position = {id(rule): index for index, rule in enumerate(indexed.rules)}
    indexed_results = [[position[id(rule)] for rule in indexed.matching_rules(document)] for document in documents]

    _WORKER_STATE.update(naive=naive, documents=documents)
    middle = len(documents) // 2
    with multiprocessing.get_context("fork").Pool(2) as pool:
        halves = pool.map(_naive_indexes, [(0, middle), (middle, len(documents))])
    _WORKER_STATE.clear()
    naive_results = halves[0] + halves[1]

    differences = [(events[number].id, sorted(set(naive_results[number]) ^ set(indexed_results[number])))
                   for number in range(len(documents)) if naive_results[number] != indexed_results[number]]
    assert differences == []
    matched = sum(1 for result in indexed_results if result)
    assert matched > 1000  # the comparison covers real matches, not just empty results
    print(f"\n{len(documents)} events, {len(indexed.rules)} rules, {sum(map(len, indexed_results))} matches on "
          f"{matched} events: indexed == naive; index {indexed.statistics()}")


def test_match_carries_the_rule_and_the_event(corpus: RuleSet, events: list[Event]) -> None:
    engine = IndexedEngine(corpus.loaded)
    cleared = next(event for event in events
                   if event.fields["event"]["code"] == "1102" and event.fields["winlog"].get("channel") == "Security")
    matches = engine.match(cleared)
    assert all(isinstance(match, Match) and match.event is cleared for match in matches)
    assert "Security Eventlog Cleared" in {match.rule.title for match in matches}


def test_dispatch_requirements_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text("""
title: anchors
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: [4624, 4625]
        TargetUserName|endswith: '$'
    filter:
        LogonType: 3
    condition: selection and not filter
""", encoding="utf-8")
    (rule,) = load_rules([tmp_path]).loaded
    assert rule.matcher is not None
    tree = rule.matcher.tree
    assert required_values(tree, "winlog.channel") == {"security"}
    assert required_values(tree, "event.code") == {"4624", "4625"}
    assert required_values(tree, "event.dataset") is None
    # the negated filter gives no anchor; the endswith does
    assert anchors(tree, frozenset({"winlog.channel", "event.code"})) == {
        ("sub", "winlog.event_data.TargetUserName", "$")}
    engine = IndexedEngine([rule])
    base = {"winlog": {"channel": "Security", "event_data": {"TargetUserName": "PC01$", "LogonType": "2"}},
            "event": {"code": "4624"}}
    assert engine.matching_rules(base) == [rule]
    assert engine.matching_rules({**base, "event": {"code": "4634"}}) == []
    naive = NaiveEngine([rule])
    for document in (base, {**base, "event": {"code": "4634"}}):
        assert naive.matching_rules(document) == engine.matching_rules(document)


def test_events_with_list_valued_dispatch_fields_are_still_exact(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text("""
title: list dispatch
logsource: {product: civicsoc_test}
detection:
    selection:
        event.dataset: 'b'
        message|contains: 'needle'
    condition: selection
""", encoding="utf-8")
    (rule,) = load_rules([tmp_path]).loaded
    document = {"event": {"module": "civicsoc_test", "dataset": ["a", "B"]}, "message": "a NEEDLE here"}
    assert NaiveEngine([rule]).matching_rules(document) == [rule]
    assert IndexedEngine([rule]).matching_rules(document) == [rule]
    assert rule.matcher is not None and rule.matcher(EventView(document))
