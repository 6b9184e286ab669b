"""Findings: a rule over one event, or a correlation over several — what streams and hunts produce.

Shared by the streaming hook (``detection.stream``) and retro-hunts (``detection.hunt``), so both
turn rule matches and correlation matches into findings the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from civicsoc.event import Event
from civicsoc.records import Severity
from detection.correlation import CorrelationEngine, CorrelationMatch
from detection.engine import Match
from detection.rules import Rule, RuleSet

RECENT_EVENTS = 100_000
"""Events kept so a correlation's alert can name its entities: the ones that matched a referenced rule."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One hunt result: a rule over one event, or a correlation over several."""

    rule: Rule
    events: tuple[Event, ...]
    source: str | None = None
    """The file the (first) event came from, for file hunts."""

    @property
    def first(self) -> Event:
        return min(self.events, key=lambda e: (e.timestamp, e.id))


def level_at_least(rule: Rule, minimum: Severity | None) -> bool:
    if minimum is None:
        return True
    try:
        return Severity(rule.level or "informational").rank >= minimum.rank
    except ValueError:
        return True


class Correlator:
    """Feeds matches to the correlation engine and turns its results into findings."""

    def __init__(self, rules: RuleSet) -> None:
        self.engine = CorrelationEngine(rules.correlations) if rules.correlations else None
        self.wanted = self.engine.referenced_rule_ids if self.engine else frozenset()
        self.recent: OrderedDict[str, tuple[Event, str | None]] = OrderedDict()

    def feed(self, match: Match, source: str | None) -> list[Finding]:
        if self.engine is None or match.rule.id not in self.wanted:
            return []
        self.recent[match.event.id] = (match.event, source)
        if len(self.recent) > RECENT_EVENTS:
            self.recent.popitem(last=False)
        return self._findings(self.engine.feed(match))

    def flush(self) -> list[Finding]:
        return self._findings(self.engine.flush()) if self.engine else []

    def _findings(self, results: list[CorrelationMatch]) -> list[Finding]:
        findings = []
        for result in results:
            known = [self.recent[event_id] for event_id in result.event_ids if event_id in self.recent]
            if known:
                findings.append(Finding(result.rule, tuple(event for event, _ in known), known[0][1]))
        return findings


def findings_from_matches(matches: Iterable[tuple[Match, str | None]], rules: RuleSet, *,
                          min_level: Severity | None = None) -> Iterator[Finding]:
    """Findings of rule matches (in event-time order) and of the correlations they complete."""
    correlator = Correlator(rules)
    for match, source in matches:
        if match.rule.generates_alerts and level_at_least(match.rule, min_level):
            yield Finding(match.rule, (match.event,), source)
        for finding in correlator.feed(match, source):
            if level_at_least(finding.rule, min_level):
                yield finding
    for finding in correlator.flush():
        if level_at_least(finding.rule, min_level):
            yield finding
