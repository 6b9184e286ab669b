"""The streaming hook: every event on its way to the store goes through the rules.

``StreamDetector`` is the shipper's ``detection`` callable. Matches become alerts (an alert's id
hashes rule and event, so a replayed batch raises nothing twice) and the batch's alerts are grouped
into incidents at once, in a few writes per batch rather than per alert. It runs in the shipper's
delivery thread, before the batch is stored: a crash after the alerts and before the events only
means the replay finds the alerts already there.

A finding of a rule its tenant disabled, or that an active exception covers, raises no alert and is
counted as suppressed (``detection.suppression``). The tenants' choices are read through a
``SuppressionCache`` — at most every ``refresh_seconds``, never per event.

Given a playbook library, an incident that an alert opens or grows gets the playbooks that match it
(``playbooks.service.attach_matching``: idempotent, a detached run stays detached).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from civicsoc.event import Event
from civicsoc.records import Alert
from civicsoc.store import Scope, Store
from detection.alerts import alert_from_events
from detection.engine import IndexedEngine
from detection.findings import Correlator, Finding
from detection.incidents import IncidentGrouper
from detection.rules import RuleSet
from detection.suppression import DEFAULT_REFRESH_SECONDS, SuppressionCache

if TYPE_CHECKING:
    from playbooks.loader import PlaybookLibrary

log = logging.getLogger(__name__)


@dataclass
class StreamCounters:
    events: int = 0
    matches: int = 0
    alerts: int = 0
    known_alerts: int = 0
    suppressed: int = 0
    """Findings that raised no alert: their rule is disabled for the tenant, or an exception holds."""
    playbooks_attached: int = 0


class StreamDetector:
    def __init__(self, rules: RuleSet, store: Store, *, suppressions: SuppressionCache | None = None,
                 refresh_seconds: float = DEFAULT_REFRESH_SECONDS, playbooks: PlaybookLibrary | None = None) -> None:
        self.rules = rules
        self.store = store
        self.engine = IndexedEngine(rules.detections)
        self.correlator = Correlator(rules)
        self.grouper = IncidentGrouper(store)
        self.counters = StreamCounters()
        self.suppressions = suppressions or SuppressionCache(store, Scope.all(), refresh_seconds=refresh_seconds)
        self.playbooks = playbooks

    def __call__(self, events: Sequence[Event]) -> None:
        # Events of a batch arrive in source order; correlations expect event-time order per source,
        # which a batch of one source keeps.
        alerts: list[Alert] = []
        for event in sorted(events, key=lambda e: (e.timestamp, e.id)):
            self.counters.events += 1
            for match in self.engine.match(event):
                self.counters.matches += 1
                if match.rule.generates_alerts:
                    alerts.extend(self._alert(Finding(match.rule, (event,))))
                for finding in self.correlator.feed(match, None):
                    alerts.extend(self._alert(finding))
        if alerts:
            self._store(alerts)

    def _alert(self, finding: Finding) -> list[Alert]:
        if self.suppressions.current().check_finding(finding) is not None:
            self.counters.suppressed += 1
            return []
        return [alert_from_events(finding.rule, list(finding.events))]

    def _store(self, alerts: list[Alert]) -> None:
        """The batch's alerts into their incidents in a few writes (``IncidentGrouper.add_batch``), then
        the playbooks of every incident that opened or grew."""
        result = self.grouper.add_batch(alerts)
        self.counters.alerts += result.created
        self.counters.known_alerts += result.known
        if self.playbooks is None:
            return
        from playbooks.service import attach_matching  # only where playbooks are served

        for incident_id, incident in result.incidents.items():
            tags = sorted({tag for alert in result.received[incident_id] for tag in alert.tags})
            attached = attach_matching(self.store, self.playbooks, incident, tags=tags)
            self.counters.playbooks_attached += len(attached)
