"""Detection: Sigma rules evaluated on every event as it streams in, and hunts over stored events.

The public surface, for hunts, the streaming hook and the Elasticsearch conversion:

- ``load_rules(paths, placeholders=None) -> RuleSet`` (``detection.rules``): ``RuleSet.loaded`` /
  ``.detections`` / ``.correlations`` / ``.skipped``; each ``Rule`` carries its metadata, its compiled
  matcher and ``Rule.sigma``, the pySigma rule with the civicsoc pipeline already applied.
- ``IndexedEngine(rules)`` / ``NaiveEngine(rules)`` (``detection.engine``): ``match(event) -> list[Match]``.
- ``CorrelationEngine(rules)`` (``detection.correlation``): ``feed(match)``, ``advance(now)``, ``flush()``.
- ``conversion_backend()`` (``detection.pipelines``): a Lucene backend for ``Rule.sigma``.
"""

from detection.correlation import CorrelationEngine, CorrelationMatch
from detection.engine import IndexedEngine, Match, NaiveEngine
from detection.pipelines import civicsoc_pipeline, conversion_backend
from detection.rules import Rule, RuleSet, SkippedRule, load_rules

__all__ = [
    "CorrelationEngine",
    "CorrelationMatch",
    "IndexedEngine",
    "Match",
    "NaiveEngine",
    "Rule",
    "RuleSet",
    "SkippedRule",
    "civicsoc_pipeline",
    "conversion_backend",
    "load_rules",
]
