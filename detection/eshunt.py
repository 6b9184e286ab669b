"""Hunting on Elasticsearch with the queries pySigma converts the rules to.

Each rule's processed pySigma object (``Rule.sigma``: the civicsoc pipeline already applied, the
same one the stream matcher was compiled from) goes through ``detection.lucene``'s backend, which
writes queries that select exactly what the stream matcher matches on the civicsoc index template
(``tests/test_detection_es_differential.py`` holds the two to that). Each query runs as a
``query_string`` inside the hunt's tenant and time filter, and every hit is a match. A rule the
backend cannot express (field references, ``\\b`` in a regular expression ...) or whose query
Elasticsearch refuses is not dropped: those rules run with the stream matcher over one scan of the
same events. Matches come back in event-time order so correlations can be fed as on a stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sigma.exceptions import SigmaError

from civicsoc.errors import StoreError, StoreUnavailable
from civicsoc.store import EventQuery, Scope
from civicsoc.store.elasticsearch import ElasticsearchStore
from detection.engine import IndexedEngine, Match
from detection.lucene import civicsoc_backend
from detection.rules import Rule


@dataclass
class QueryHuntReport:
    by_query: int = 0
    by_scan: list[tuple[str, str]] = field(default_factory=list)
    """Rules run with the stream matcher instead: (rule id, why — pySigma's or Elasticsearch's reason)."""


def rule_queries(rule: Rule) -> list[str]:
    """The Lucene query strings of a detection rule, one per condition. Raises pySigma's ``SigmaError`` for
    a rule the backend cannot express.

    A ``generate: false`` base rule has queries too (its matches feed the correlation): pySigma converts
    it but returns nothing, keeping the queries on the rule for the correlation's own query."""
    sigma = rule.sigma
    queries = civicsoc_backend().convert_rule(sigma)
    if not queries and not rule.generates_alerts:
        queries = sigma.get_conversion_result()
    return [str(query) for query in queries]


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
        try:
            # by event id: an event two of a rule's conditions select is one match
            found = {event.id: event for lucene in queries
                     for event in store.iter_events_matching(scope, query, lucene)}
        except StoreUnavailable:
            raise
        except StoreError as exc:  # a query Elasticsearch refuses (too large, too complex): scan instead
            scanned.append(rule)
            report.by_scan.append((rule.id, f"Elasticsearch refused the query: {exc.cause}"))
            continue
        report.by_query += 1
        matches.extend(Match(rule, event) for event in found.values())
    if scanned:
        engine = IndexedEngine(scanned)
        for event in store.iter_events(scope, query):
            matches.extend(engine.match(event))
    matches.sort(key=lambda m: (m.event.timestamp, m.event.id, m.rule.id))
    return matches
