"""Hunting on Elasticsearch with the queries pySigma converts the rules to.

Each rule's processed pySigma object (``Rule.sigma``: the civicsoc pipeline already applied, the
same one the stream matcher was compiled from) goes through pySigma's Lucene backend; the query runs
as a ``query_string`` inside the hunt's tenant and time filter, and every hit is a match. A rule the
backend cannot express (field references, for one) is not dropped: those rules run with the stream
matcher over one scan of the same events. Matches come back in event-time order so correlations can
be fed as on a stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sigma.exceptions import SigmaError

from civicsoc.store import EventQuery, Scope
from civicsoc.store.elasticsearch import ElasticsearchStore
from detection.engine import IndexedEngine, Match
from detection.pipelines import conversion_backend
from detection.rules import Rule


@dataclass
class QueryHuntReport:
    by_query: int = 0
    by_scan: list[tuple[str, str]] = field(default_factory=list)
    """Rules the backend could not convert: (rule id, pySigma's reason)."""


def rule_queries(rule: Rule) -> list[str]:
    """The Lucene query strings of a detection rule (empty for a ``generate: false`` base rule)."""
    return [str(query) for query in conversion_backend().convert_rule(rule.sigma)]


def matches_from_queries(store: ElasticsearchStore, scope: Scope, query: EventQuery, rules: Iterable[Rule],
                         report: QueryHuntReport | None = None) -> list[Match]:
    report = report if report is not None else QueryHuntReport()
    matches: list[Match] = []
    scanned: list[Rule] = []
    for rule in rules:
        try:
            queries = rule_queries(rule)
        except SigmaError as exc:
            scanned.append(rule)
            report.by_scan.append((rule.id, str(exc).splitlines()[0]))
            continue
        if not queries and not rule.generates_alerts:
            scanned.append(rule)  # a correlation's base rule: pySigma emits it only inside the correlation
            continue
        report.by_query += 1
        for lucene in queries:
            matches.extend(Match(rule, event) for event in store.iter_events_matching(scope, query, lucene))
    if scanned:
        engine = IndexedEngine(scanned)
        for event in store.iter_events(scope, query):
            matches.extend(engine.match(event))
    matches.sort(key=lambda m: (m.event.timestamp, m.event.id, m.rule.id))
    return matches
