"""Retro-hunts: the same rules over files (no store, no server) or over stored events.

- ``hunt_files``: like Chainsaw/Hayabusa/Zircolite — read EVTX, logs, captures through the collectors'
  readers, run the indexed engine and the correlations, hand each match to a callback. Memory does
  not grow with the input: events stream through and only correlation windows are kept.
- ``hunt_store``: over a time range of stored events. On the embedded store the events are scanned
  with the stream matcher; on Elasticsearch each rule runs as the query pySigma converts it to (with
  the very pipeline the matcher uses). Correlations run over the rule matches either way. Matches
  become alerts like streamed ones; an alert id hashes rule and event(s), so a hunt never duplicates
  what the stream already raised. Findings a tenant suppressed (a disabled rule, an exception) raise no
  alert and are counted in ``HuntSummary.suppressed``, as on the stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from civicsoc.event import Event
from civicsoc.records import Alert, Severity
from civicsoc.store import EventQuery, Scope, Store
from collectors.base import CollectorContext, DeadLetter
from collectors.sources import FileKind, FileReport, read_files
from detection.alerts import alert_from_events
from detection.engine import IndexedEngine
from detection.findings import Finding, findings_from_matches
from detection.incidents import IncidentGrouper
from detection.rules import RuleSet
from detection.suppression import Suppressions, load_suppressions

ALERT_BATCH = 500
"""Alerts a store hunt groups into incidents at a time (``IncidentGrouper.add_batch``)."""


@dataclass
class HuntSummary:
    files: int = 0
    events: int = 0
    matches: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    alerts_created: int = 0
    alerts_known: int = 0
    suppressed: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.events} events, {self.matches} matches, {self.rate:.0f} events/s"
                f" ({self.files} files, {self.dead_lettered} unreadable records)")


def hunt_events(events: Iterable[tuple[Event, str | None]], rules: RuleSet, *,
                engine: IndexedEngine | None = None, min_level: Severity | None = None) -> Iterator[Finding]:
    """Every finding over a stream of (event, source) pairs, in input order."""
    matcher = engine or IndexedEngine(rules.detections)
    matches = ((match, source) for event, source in events for match in matcher.match(event))
    return findings_from_matches(matches, rules, min_level=min_level)


def hunt_files(
    paths: list[Path],
    rules: RuleSet,
    on_finding: Callable[[Finding], None],
    *,
    kind: FileKind | None = None,
    min_level: Severity | None = None,
    progress: Callable[[Path, int], None] | None = None,
) -> HuntSummary:
    """Hunt through files; reading errors of one file are reported and the others go on."""
    summary = HuntSummary()
    report = FileReport()
    started = time.perf_counter()
    context = CollectorContext(tenant="hunt", agent_id="civicsoc-hunt")

    def events() -> Iterator[tuple[Event, str | None]]:
        for path, item in read_files(paths, context, report, kind=kind, progress=progress, progress_every=2000):
            if isinstance(item.value, DeadLetter):
                summary.dead_lettered += 1
            else:
                yield item.value, str(path)

    for finding in hunt_events(events(), rules, min_level=min_level):
        summary.matches += 1
        on_finding(finding)
    summary.files, summary.events = report.files, report.events
    summary.failed, summary.skipped = report.failed, report.skipped
    summary.seconds = time.perf_counter() - started
    return summary


def hunt_store(store: Store, scope: Scope, query: EventQuery, rules: RuleSet, *,
               min_level: Severity | None = None, create_alerts: bool = True,
               on_finding: Callable[[Finding], None] | None = None,
               suppressions: Suppressions | None = None) -> HuntSummary:
    """Hunt over stored events; findings become alerts (origin ``hunt``) grouped into incidents.

    ``suppressions`` default to those in force in ``scope`` now; a suppressed finding is neither reported
    to ``on_finding`` nor raised (pass ``Suppressions.empty()`` to see everything)."""
    from civicsoc.store.elasticsearch import ElasticsearchStore

    summary = HuntSummary()
    started = time.perf_counter()
    if suppressions is None:
        suppressions = load_suppressions(store, scope)
    if isinstance(store, ElasticsearchStore):
        from detection.eshunt import matches_from_queries

        matches = matches_from_queries(store, scope, query, rules.detections)
        summary.events = store.count_events(scope, query)
        findings = findings_from_matches(((match, None) for match in matches), rules, min_level=min_level)
    else:
        def scanned() -> Iterator[tuple[Event, str | None]]:
            for event in store.iter_events(scope, query):
                summary.events += 1
                yield event, None

        findings = hunt_events(scanned(), rules, min_level=min_level)
    grouper = IncidentGrouper(store) if create_alerts else None
    pending: list[Alert] = []

    def flush() -> None:
        if grouper is not None and pending:
            result = grouper.add_batch(pending)
            summary.alerts_created += result.created
            summary.alerts_known += result.known
            pending.clear()

    for finding in findings:
        summary.matches += 1
        if suppressions.check_finding(finding) is not None:
            summary.suppressed += 1
            continue
        if on_finding is not None:
            on_finding(finding)
        if grouper is None:
            continue
        pending.append(alert_from_events(finding.rule, list(finding.events), origin="hunt"))
        if len(pending) >= ALERT_BATCH:
            flush()
    flush()
    summary.seconds = time.perf_counter() - started
    return summary
