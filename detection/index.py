"""What an event must contain for a rule to possibly match: the analysis behind the indexed engine.

Two necessary conditions are read off a rule's condition tree (``detection.matcher.Node``):

* ``required_values(tree, field)``: the values a *dispatch* field (``winlog.channel``, ``event.code``,
  ``event.dataset``: where the pipeline puts logsource conditions) must have. Events are routed by them,
  so a Sysmon process-creation event never looks at a Security or Linux rule.
* ``anchors(tree)``: a set of (field, literal) pairs at least one of which every matching event contains
  — as the whole value (``eq``) or as a substring (``sub``, from ``contains``/``startswith``/``endswith``
  and the literal runs of globs). One hash lookup per ``eq`` field and one Aho-Corasick pass per ``sub``
  field then name the few rules worth evaluating.

Both are *necessary*, never sufficient: a rule they admit is still evaluated in full, so the indexed
engine returns exactly what evaluating every rule returns, only faster. Anything they cannot reason about
(negations, regular expressions, keyword searches, comparisons) yields "no constraint", which keeps a
rule in the always-evaluated list instead of risking a miss.
"""

from __future__ import annotations

from collections.abc import Iterable

from detection.matcher import AllOf, AnyOf, BoolTest, Node, Not, TextTest

Anchor = tuple[str, str, str]
"""(``"eq"`` or ``"sub"``, field path, lower-cased literal)."""

CATEGORICAL_FIELDS = frozenset({
    "event.category", "event.type", "event.kind", "event.module", "event.outcome", "event.action",
    "network.transport", "network.direction", "network.protocol", "log.level", "winlog.level",
})
"""Fields with a handful of values across all events: an equality on one of them admits many events, so
it makes a poor anchor (the cost model ranks it below any long substring)."""


def required_values(node: Node, path: str) -> frozenset[str] | None:
    """Lower-cased values ``path`` must have (one of) for ``node`` to hold, or ``None`` if unconstrained."""
    if isinstance(node, TextTest):
        if node.field != path or node.any_text or node.prefixes or node.suffixes or node.needles or node.globs:
            return None
        return frozenset(value.lower() for value in node.exact)
    if isinstance(node, AllOf):
        found: frozenset[str] | None = None
        for child in node.children:
            values = required_values(child, path)
            if values is not None:
                found = values if found is None else found & values
        return found
    if isinstance(node, AnyOf):
        union: set[str] = set()
        for child in node.children:
            values = required_values(child, path)
            if values is None:
                return None
            union |= values
        return frozenset(union)
    return None


def anchors(node: Node, exclude: frozenset[str]) -> frozenset[Anchor] | None:
    """Anchors of ``node`` (fields in ``exclude`` — the dispatch fields — are not used), or ``None``."""
    if isinstance(node, TextTest):
        if node.field is None or node.field in exclude or node.any_text:
            return None
        found: set[Anchor] = {("eq", node.field, value.lower()) for value in node.exact}
        for literal in (*node.prefixes, *node.suffixes, *node.needles, *node.glob_literals):
            if not literal:
                return None
            found.add(("sub", node.field, literal.lower()))
        return frozenset(found)
    if isinstance(node, BoolTest):
        if node.field in exclude:
            return None
        return frozenset({("eq", node.field, "true" if node.value else "false")})
    if isinstance(node, AllOf):
        best: frozenset[Anchor] | None = None
        best_cost = float("inf")
        for child in node.children:
            candidate = anchors(child, exclude)
            if candidate is not None and (cost := anchor_cost(candidate)) < best_cost:
                best, best_cost = candidate, cost
        return best
    if isinstance(node, AnyOf):
        union: set[Anchor] = set()
        for child in node.children:
            candidate = anchors(child, exclude)
            if candidate is None:
                return None
            union |= candidate
        return frozenset(union)
    if isinstance(node, Not):
        return None
    return None


def anchor_cost(found: Iterable[Anchor]) -> float:
    """How often an anchor set is expected to admit an event: whole values are rare, short substrings
    common. Only the ranking matters (it picks which AND branch indexes a rule)."""
    total = 0.0
    for kind, path, literal in found:
        if kind == "eq":
            total += 32 if path in CATEGORICAL_FIELDS else 1
        else:
            length = len(literal)
            total += 2 if length >= 10 else 4 if length >= 6 else 8 if length >= 4 else 16 if length >= 3 else 64
    return total
