"""Rule preview: what a rule would match in given events, without raising alerts.

Analysts write or tune a rule and want to see its matches before it goes live (the API's
``POST /rules/test``). The rule text is loaded exactly as rule files are (same pipelines, same
validation), so a preview never disagrees with what the rule will do once deployed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from civicsoc.event import Event
from detection.engine import IndexedEngine
from detection.findings import Finding, findings_from_matches
from detection.rules import RuleSet, load_rules


def load_rule_text(text: str) -> RuleSet:
    """Load rules from YAML text (one or more documents) as if they were a rule file."""
    with tempfile.TemporaryDirectory(prefix="civicsoc-rule-") as folder:
        path = Path(folder) / "rule.yml"
        path.write_text(text, encoding="utf-8")
        return load_rules([path])


def preview(ruleset: RuleSet, events: Iterable[Event]) -> list[Finding]:
    """Findings of ``ruleset`` over ``events`` (sorted into event-time order first, as correlations need)."""
    engine = IndexedEngine(ruleset.detections)
    ordered = sorted(events, key=lambda e: (e.timestamp, e.id))
    matches = ((match, None) for event in ordered for match in engine.match(event))
    return list(findings_from_matches(matches, ruleset))
