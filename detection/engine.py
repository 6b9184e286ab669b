"""Engines: which rules match an event. ``NaiveEngine`` evaluates every rule (the reference);
``IndexedEngine`` evaluates only the rules an event can still satisfy, with the same compiled predicates,
so both return the same matches in the same order (rule-set order).

The indexed engine works in two steps (see ``detection.index`` for why each is exact):

1. Dispatch: the event's ``winlog.channel``, ``event.code``, ``event.dataset`` and ``event.module`` pick the rules whose
   logsource conditions allow those values (rules without such conditions are in every bucket). The
   merged bucket for a combination of values is built the first time an event shows it, then cached.
2. Within the bucket: rules are indexed by an anchor set — whole values in a hash table per field, and
   substrings in one Aho-Corasick automaton per field — and an event is evaluated against the rules whose
   anchors it contains, plus the few rules nothing could be proven about.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any, Protocol

import ahocorasick

from civicsoc.event import Event
from detection.fields import EventView, nested
from detection.index import Anchor, anchors, required_values
from detection.matcher import Predicate
from detection.rules import Rule

DISPATCH_FIELDS: tuple[str, ...] = ("winlog.channel", "event.code", "event.dataset", "event.module")
"""Fields the logsource conditions of ``detection.pipelines`` test: routed on before anything else."""

ANY = None
"""A dispatch bucket key component meaning "no constraint on this field"."""


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched an event."""

    rule: Rule
    event: Event


class Engine(Protocol):
    rules: tuple[Rule, ...]

    def match(self, event: Event) -> list[Match]: ...

    def matching_rules(self, document: dict[str, Any]) -> list[Rule]: ...


def _detection_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(rule for rule in rules if rule.matcher is not None)


class NaiveEngine:
    """Every rule on every event: slow, obviously right — the reference the indexed engine is tested against."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = _detection_rules(rules)
        self._predicates = tuple((rule, rule.matcher.predicate) for rule in self.rules)  # type: ignore[union-attr]

    def matching_rules(self, document: dict[str, Any]) -> list[Rule]:
        view = EventView(document)
        return [rule for rule, predicate in self._predicates if predicate(view)]

    def match(self, event: Event) -> list[Match]:
        return [Match(rule, event) for rule in self.matching_rules(event.fields)]


FieldProbe = tuple[str, str, Any]
"""(leaf key, full path, table or automaton) of one indexed field."""
ProbeGroup = tuple[tuple[str, ...], tuple[FieldProbe, ...]]
"""An object path (``("winlog", "event_data")``) and the indexed fields directly inside it."""


@dataclass(frozen=True, slots=True)
class _Bucket:
    """The rules one combination of dispatch values can reach, indexed by their anchors.

    Indexed fields are grouped by their parent object (``winlog.event_data``, ``process`` ...): one walk
    to the parent, then one dict lookup per field, most of which find nothing."""

    always: frozenset[int]
    exact: tuple[ProbeGroup, ...]
    substrings: tuple[ProbeGroup, ...]
    size: int


def _by_parent(tables: dict[str, Any]) -> tuple[ProbeGroup, ...]:
    groups: dict[tuple[str, ...], list[FieldProbe]] = {}
    for path, table in tables.items():
        parts = tuple(path.split("."))
        groups.setdefault(parts[:-1], []).append((parts[-1], path, table))
    return tuple((parent, tuple(probes)) for parent, probes in groups.items())


class IndexedEngine:
    """Dispatch by logsource, then anchors; exact (same results as ``NaiveEngine``)."""

    def __init__(self, rules: Iterable[Rule], *, dispatch_fields: Sequence[str] = DISPATCH_FIELDS) -> None:
        self.rules = _detection_rules(rules)
        self.dispatch_fields = tuple(dispatch_fields)
        self._predicates: tuple[Predicate, ...] = tuple(
            rule.matcher.predicate for rule in self.rules)  # type: ignore[union-attr]
        excluded = frozenset(self.dispatch_fields)
        self._anchors: tuple[frozenset[Anchor] | None, ...] = tuple(
            anchors(rule.matcher.tree, excluded) for rule in self.rules)  # type: ignore[union-attr]
        self._by_key: dict[tuple[str | None, ...], list[int]] = {}
        for index, rule in enumerate(self.rules):
            tree = rule.matcher.tree  # type: ignore[union-attr]
            requirements = [required_values(tree, field) for field in self.dispatch_fields]
            axes = [(ANY,) if values is None else tuple(sorted(values)) for values in requirements]
            for key in product(*axes):
                self._by_key.setdefault(key, []).append(index)
        self._buckets: dict[tuple[tuple[str, ...], ...], _Bucket] = {}

    # --- matching ---

    def matching_rules(self, document: dict[str, Any]) -> list[Rule]:
        view = EventView(document)
        key = tuple(view.lowered(field) for field in self.dispatch_fields)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = self._build_bucket(key)
        if not bucket.size:
            return []
        candidates = set(bucket.always)
        for parent, probes in bucket.exact:
            node = nested(document, parent)
            fast = node.__class__ is dict
            for leaf, path, table in probes:
                if fast:
                    value = node.get(leaf)
                    if value is None:
                        continue
                    if value.__class__ is str:
                        hit = table.get(value.lower())
                        if hit is not None:
                            candidates.update(hit)
                        continue
                for text in view.lowered(path):  # lists, numbers, paths through lists or dotted keys
                    hit = table.get(text)
                    if hit is not None:
                        candidates.update(hit)
        for parent, probes in bucket.substrings:
            node = nested(document, parent)
            fast = node.__class__ is dict
            for leaf, path, automaton in probes:
                if fast:
                    value = node.get(leaf)
                    if value is None:
                        continue
                    if value.__class__ is str:
                        for _, hit in automaton.iter(value.lower()):
                            candidates.update(hit)
                        continue
                for text in view.lowered(path):
                    for _, hit in automaton.iter(text):
                        candidates.update(hit)
        predicates, rules = self._predicates, self.rules
        return [rules[index] for index in sorted(candidates) if predicates[index](view)]

    def match(self, event: Event) -> list[Match]:
        return [Match(rule, event) for rule in self.matching_rules(event.fields)]

    # --- index construction ---

    def _build_bucket(self, key: tuple[tuple[str, ...], ...]) -> _Bucket:
        """The bucket for an event whose dispatch fields have these (lower-cased) values: the union of
        the rule lists for every combination of "this value" and "no constraint" per field."""
        axes = [(*values, ANY) for values in key]
        members: set[int] = set()
        for combination in product(*axes):
            members.update(self._by_key.get(combination, ()))
        always: set[int] = set()
        exact: dict[str, dict[str, list[int]]] = {}
        substrings: dict[str, dict[str, list[int]]] = {}
        for index in sorted(members):
            found = self._anchors[index]
            if found is None:
                always.add(index)
                continue
            for kind, path, literal in sorted(found):
                table = exact if kind == "eq" else substrings
                table.setdefault(path, {}).setdefault(literal, []).append(index)
        automata: dict[str, ahocorasick.Automaton] = {}
        for path, literals in substrings.items():
            automaton = ahocorasick.Automaton()
            for literal, indexes in literals.items():
                automaton.add_word(literal, tuple(indexes))
            automaton.make_automaton()
            automata[path] = automaton
        return _Bucket(
            always=frozenset(always),
            exact=_by_parent({path: {literal: tuple(indexes) for literal, indexes in table.items()}
                              for path, table in exact.items()}),
            substrings=_by_parent(automata),
            size=len(members),
        )

    def statistics(self) -> dict[str, int]:
        """Index shape, for the benchmark and for ``civicsoc rules health``."""
        unanchored = sum(1 for found in self._anchors if found is None)
        return {"rules": len(self.rules), "unanchored_rules": unanchored, "buckets_built": len(self._buckets),
                "dispatch_keys": len(self._by_key)}
