"""The streaming hook: every event on its way to the store goes through the rules.

``StreamDetector`` is the shipper's ``detection`` callable. Matches become alerts (an alert's id
hashes rule and event, so a replayed batch raises nothing twice) and alerts are grouped into
incidents at once. It runs in the shipper's delivery thread, before the batch is stored: a crash
after the alerts and before the events only means the replay finds the alerts already there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from civicsoc.errors import AlreadyExists
from civicsoc.event import Event
from civicsoc.store import Scope, Store
from detection.alerts import alert_from_events
from detection.engine import IndexedEngine
from detection.findings import Correlator, Finding
from detection.incidents import IncidentGrouper
from detection.rules import RuleSet

log = logging.getLogger(__name__)


@dataclass
class StreamCounters:
    events: int = 0
    matches: int = 0
    alerts: int = 0
    known_alerts: int = 0


class StreamDetector:
    def __init__(self, rules: RuleSet, store: Store) -> None:
        self.rules = rules
        self.store = store
        self.engine = IndexedEngine(rules.detections)
        self.correlator = Correlator(rules)
        self.grouper = IncidentGrouper(store)
        self.counters = StreamCounters()

    def __call__(self, events: Sequence[Event]) -> None:
        # Events of a batch arrive in source order; correlations expect event-time order per source,
        # which a batch of one source keeps.
        for event in sorted(events, key=lambda e: (e.timestamp, e.id)):
            self.counters.events += 1
            for match in self.engine.match(event):
                self.counters.matches += 1
                if match.rule.generates_alerts:
                    self._raise(Finding(match.rule, (event,)))
                for finding in self.correlator.feed(match, None):
                    self._raise(finding)

    def _raise(self, finding: Finding) -> None:
        alert = alert_from_events(finding.rule, list(finding.events))
        try:
            self.store.alerts.create(Scope.all(), alert)
        except AlreadyExists:
            self.counters.known_alerts += 1
            return
        self.counters.alerts += 1
        self.grouper.add(alert.id)
