"""Sigma correlation rules over the stream of matches: counts, distinct values and sequences per group.

A ``CorrelationEngine`` is fed the matches of the rules its correlations reference, in event-time order,
and returns ``CorrelationMatch``es. State is one small window per (correlation, group); it expires by
event time (never by wall-clock time), so a hunt over last year's logs and a live stream behave alike,
and the same input order always gives the same output.

Window semantics (the Sigma specification leaves the windowing to the implementation):

* ``timespan`` is a sliding window over event time: the matches of a group whose times lie within
  ``timespan`` of each other (inclusive).
* Conditions that can only become true as matches arrive — ``gt``/``gte``/``eq``/``neq`` on counts,
  and every condition on ``value_sum``/``value_avg``/``value_median``/``value_percentile`` — are checked at
  each arriving match, over the group's matches in the window ending there. The first match that makes
  the condition true emits a ``CorrelationMatch`` carrying every match of the window; the group's window
  then starts afresh, so one burst gives one correlation match, not one per further event.
* ``lt``/``lte`` ("fewer than") can only be judged once a window is over: a group's window opens at its
  first match, closes ``timespan`` later, and is judged when a later event (of any group, i.e. event time
  advancing) or ``flush()`` shows it has closed.
* ``temporal``: every referenced rule (or the extended ``condition`` expression over them, a rule being
  true when it matched in the window) within the window. ``temporal_ordered``: the rules matched in the
  listed order within the window; the engine keeps, for each step, the partial sequence that started
  latest, which finds a sequence whenever one exists.
* A group is the tuple of the ``group-by`` field values (aliases resolved per referenced rule); an event
  without a group-by field is grouped under ``None`` for it, as ES|QL's ``STATS ... BY`` does.
* Correlations may reference correlations: an emitted match is fed on like a rule match, its group
  fields being its fields.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from detection.fields import MISSING, EventView, numbers_of
from detection.pipelines import strip_caseless

if TYPE_CHECKING:
    from civicsoc.event import Event
    from detection.rules import Rule

COUNT_TYPES = frozenset({"event_count", "value_count"})
AGGREGATE_TYPES = frozenset({"value_sum", "value_avg", "value_median", "value_percentile"})
TEMPORAL_TYPES = frozenset({"temporal", "temporal_ordered"})
LATE_OPERATORS = frozenset({"lt", "lte"})

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda value, limit: value < limit,
    "lte": lambda value, limit: value <= limit,
    "gt": lambda value, limit: value > limit,
    "gte": lambda value, limit: value >= limit,
    "eq": lambda value, limit: value == limit,
    "neq": lambda value, limit: value != limit,
}


class UnsupportedCorrelation(ValueError):
    """A correlation rule this engine cannot run; the message says why."""


Expression = tuple[Any, ...] | str
"""An extended temporal condition: a referenced rule id, or ("and"|"or"|"not", operands...)."""


@dataclass(frozen=True, slots=True)
class Correlation:
    """What a correlation rule counts, with every field already mapped to ECS by the pipeline."""

    type: str
    rule_ids: tuple[str, ...]
    """The referenced rules (``Rule.id``), in the rule's order (the order ``temporal_ordered`` requires)."""
    group_by: tuple[str, ...]
    caseless: tuple[bool, ...]
    """Per group-by field: compare its values case-insensitively (an ECS ``.caseless`` target)."""
    aliases: Mapping[str, Mapping[str, str]]
    """Alias → {referenced rule id → its field}."""
    timespan: timedelta
    operator: str | None = None
    threshold: float | None = None
    value_field: str | None = None
    percentile: int | None = None
    expression: Expression | None = None


def correlation_of(rule: SigmaCorrelationRule, rules_by_object: Mapping[int, Rule]) -> Correlation:
    """The ``Correlation`` of a pySigma correlation rule whose references are resolved and mapped.

    ``rules_by_object`` maps ``id()`` of referenced pySigma rules to their loaded ``Rule``."""
    kind = rule.type.name.lower()

    def rule_id(reference: SigmaRuleReference) -> str:
        return rules_by_object[id(reference.rule)].id

    references = {reference.reference: rule_id(reference) for reference in rule.referenced_rules}
    rule_ids = tuple(references[reference.reference] for reference in rule.referenced_rules)
    group_by: list[str] = []
    caseless: list[bool] = []
    for name in rule.group_by or ():
        path, is_caseless = strip_caseless(name)
        group_by.append(path)
        caseless.append(is_caseless)
    aliases: dict[str, dict[str, str]] = {}
    for alias in rule.aliases:
        # alias mappings hold their own (unresolved) references: match them to the resolved ones by name/id
        aliases[alias.alias] = {references.get(ref.reference, ref.reference): strip_caseless(target)[0]
                                for ref, target in alias.mapping.items()}
    condition = rule.condition
    operator = threshold = value_field = percentile = expression = None
    if isinstance(condition, SigmaCorrelationCondition):
        operator = condition.op.name.lower()
        threshold = condition.count
        fieldref = condition.fieldref
        if isinstance(fieldref, list):
            if len(fieldref) != 1:
                raise UnsupportedCorrelation(f"condition field list {fieldref} (one field expected)")
            fieldref = fieldref[0]
        value_field = strip_caseless(fieldref)[0] if fieldref else None
        percentile = condition.percentile
    elif isinstance(condition, SigmaExtendedCorrelationCondition):
        if kind == "temporal_ordered":
            raise UnsupportedCorrelation("an extended condition on temporal_ordered: a boolean expression has no order")
        expression = _expression(condition.parsed, references)
    if kind in COUNT_TYPES | AGGREGATE_TYPES and operator is None:
        raise UnsupportedCorrelation(f"{kind} correlation without a condition")
    if kind == "value_percentile" and percentile is None:
        raise UnsupportedCorrelation("value_percentile without a percentile")
    return Correlation(type=kind, rule_ids=rule_ids, group_by=tuple(group_by), caseless=tuple(caseless),
                       aliases=aliases, timespan=timedelta(seconds=rule.timespan.seconds), operator=operator,
                       threshold=threshold, value_field=value_field, percentile=percentile, expression=expression)


def _expression(node: Any, references: Mapping[str, str]) -> Expression:
    if isinstance(node, SigmaRuleReference):
        return references[node.reference]
    if isinstance(node, CorrelationConditionAND):
        return ("and", *(_expression(arg, references) for arg in node.args))
    if isinstance(node, CorrelationConditionOR):
        return ("or", *(_expression(arg, references) for arg in node.args))
    if isinstance(node, CorrelationConditionNOT):
        return ("not", _expression(node.args[0], references))
    raise UnsupportedCorrelation(f"unexpected element {node!r} in an extended correlation condition")


def _evaluate(expression: Expression, present: set[str]) -> bool:
    if isinstance(expression, str):
        return expression in present
    operator, *operands = expression
    if operator == "and":
        return all(_evaluate(operand, present) for operand in operands)
    if operator == "or":
        return any(_evaluate(operand, present) for operand in operands)
    return not _evaluate(operands[0], present)


# --- the engine --------------------------------------------------------------------------------------------

class MatchLike(Protocol):
    """What the engine reads from a rule match (``detection.engine.Match``)."""

    @property
    def rule(self) -> Rule: ...

    @property
    def event(self) -> Event: ...


@dataclass(frozen=True, slots=True)
class CorrelationMatch:
    """A correlation rule that fired: for which group, over which events, with what value."""

    rule: Rule
    group: tuple[tuple[str, Any], ...]
    """(group-by field, value) pairs."""
    event_ids: tuple[str, ...]
    """The contributing events, in the order they arrived."""
    first: datetime
    last: datetime
    value: float
    """The count, distinct count or aggregate that met the condition (temporal: rules seen)."""

    @property
    def id(self) -> str:
        """Deterministic: the same rule over the same events is the same correlation match."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.rule.id.encode())
        for event_id in self.event_ids:
            digest.update(b"\x00" + event_id.encode())
        return digest.hexdigest()

    @property
    def time(self) -> datetime:
        return self.last


@dataclass(slots=True)
class _Occurrence:
    """One input: a rule match, or a correlation match fed on to correlations referencing it."""

    rule_id: str
    time: datetime
    event_ids: tuple[str, ...]
    read: Callable[[str], Any]


@dataclass(slots=True)
class _Entry:
    time: datetime
    rule_id: str
    event_ids: tuple[str, ...]
    value: Any


@dataclass(slots=True)
class _Window:
    entries: deque[_Entry] = field(default_factory=deque)
    opened: datetime | None = None
    """For lt/lte: when the window opened (its first match)."""
    progress: list[tuple[datetime, tuple[str, ...]] | None] = field(default_factory=list)
    """For temporal_ordered: per step, (start time, event ids) of the latest-starting partial sequence."""
    last_seen: datetime | None = None


@dataclass
class CorrelationStats:
    fed: int = 0
    emitted: int = 0
    groups_evicted: int = 0
    """Groups dropped because a rule had ``max_groups`` open groups (oldest first)."""


class CorrelationEngine:
    """Runs correlation rules over matches fed in event-time order. Not thread-safe: one per stream."""

    def __init__(self, rules: Iterable[Rule], *, max_groups: int = 100_000) -> None:
        self.rules = tuple(rule for rule in rules if rule.correlation is not None)
        self.max_groups = max_groups
        self.stats = CorrelationStats()
        self._consumers: dict[str, list[Rule]] = {}
        for rule in self.rules:
            assert rule.correlation is not None
            for referenced in dict.fromkeys(rule.correlation.rule_ids):
                self._consumers.setdefault(referenced, []).append(rule)
        self._windows: dict[str, OrderedDict[tuple[Any, ...], _Window]] = {
            rule.id: OrderedDict() for rule in self.rules}
        self._now: datetime | None = None

    @property
    def referenced_rule_ids(self) -> frozenset[str]:
        """Rules whose matches this engine wants (feeding others is allowed and ignored)."""
        return frozenset(self._consumers)

    def feed(self, match: MatchLike) -> list[CorrelationMatch]:
        """Take one rule match; return the correlation matches it completes (and any windows it closes)."""
        event = match.event
        view = EventView(event.fields)
        occurrence = _Occurrence(match.rule.id, event.timestamp, (event.id,), view.raw)
        self.stats.fed += 1
        return self._process(occurrence)

    def advance(self, now: datetime) -> list[CorrelationMatch]:
        """Event time has reached ``now`` (e.g. a quiet stream's latest event): close the windows that ended."""
        if self._now is None or now > self._now:
            self._now = now
        out: list[CorrelationMatch] = []
        for rule in self.rules:
            out.extend(self._expire(rule, self._now))
        return self._chain(out)

    def flush(self) -> list[CorrelationMatch]:
        """End of input: judge every open ``lt``/``lte`` window and drop all state."""
        out: list[CorrelationMatch] = []
        for rule in self.rules:
            correlation = rule.correlation
            assert correlation is not None
            windows = self._windows[rule.id]
            if correlation.operator in LATE_OPERATORS:
                for group, window in windows.items():
                    result = self._judge(rule, group, window)
                    if result is not None:
                        out.append(result)
            windows.clear()
        return self._chain(out)

    # --- internals ---

    def _process(self, occurrence: _Occurrence) -> list[CorrelationMatch]:
        if self._now is None or occurrence.time > self._now:
            self._now = occurrence.time
        out: list[CorrelationMatch] = []
        for rule in self._consumers.get(occurrence.rule_id, ()):
            out.extend(self._expire(rule, self._now))
            out.extend(self._add(rule, occurrence))
        return self._chain(out)

    def _chain(self, results: list[CorrelationMatch]) -> list[CorrelationMatch]:
        """Feed emitted matches on to correlations that reference correlations."""
        self.stats.emitted += len(results)
        out = list(results)
        for result in results:
            if result.rule.id in self._consumers:
                group = dict(result.group)
                occurrence = _Occurrence(result.rule.id, result.last, result.event_ids,
                                         lambda path, group=group: group.get(path, MISSING))
                out.extend(self._process(occurrence))
        return out

    def _group(self, correlation: Correlation, occurrence: _Occurrence) -> tuple[Any, ...]:
        values = []
        for path, caseless in zip(correlation.group_by, correlation.caseless, strict=True):
            alias = correlation.aliases.get(path)
            if alias is not None:
                path = alias.get(occurrence.rule_id, path)
            values.append(_group_value(occurrence.read(path), caseless))
        return tuple(values)

    def _add(self, rule: Rule, occurrence: _Occurrence) -> list[CorrelationMatch]:
        correlation = rule.correlation
        assert correlation is not None
        windows = self._windows[rule.id]
        group = self._group(correlation, occurrence)
        late = correlation.operator in LATE_OPERATORS and correlation.type not in TEMPORAL_TYPES
        window = windows.get(group)
        if window is None:
            if len(windows) >= self.max_groups:
                windows.popitem(last=False)
                self.stats.groups_evicted += 1
            window = windows[group] = _Window(progress=[None] * len(correlation.rule_ids))
        elif not late:  # early windows expire by last activity, late ones by opening time: keep that order
            windows.move_to_end(group)
        window.last_seen = occurrence.time
        if correlation.type == "temporal_ordered":
            result = self._step_sequence(rule, correlation, group, window, occurrence)
            return [] if result is None else [result]
        entry = _Entry(occurrence.time, occurrence.rule_id, occurrence.event_ids,
                       self._entry_value(correlation, occurrence))
        if late:
            out: list[CorrelationMatch] = []
            if window.opened is not None and occurrence.time > window.opened + correlation.timespan:
                closed = self._judge(rule, group, window)  # closed while the group was active (see _expire)
                if closed is not None:
                    out.append(closed)
                window.entries.clear()
                window.opened = None
            if window.opened is None:
                window.opened = occurrence.time
                windows.move_to_end(group)
            window.entries.append(entry)
            return out
        horizon = occurrence.time - correlation.timespan
        entries = window.entries
        while entries and entries[0].time < horizon:
            entries.popleft()
        entries.append(entry)
        result = self._judge(rule, group, window)
        if result is None:
            return []
        entries.clear()
        return [result]

    def _entry_value(self, correlation: Correlation, occurrence: _Occurrence) -> Any:
        if correlation.value_field is None:
            return None
        path = correlation.value_field
        alias = correlation.aliases.get(path)
        if alias is not None:
            path = alias.get(occurrence.rule_id, path)
        return occurrence.read(path)

    def _judge(self, rule: Rule, group: tuple[Any, ...], window: _Window) -> CorrelationMatch | None:
        correlation = rule.correlation
        assert correlation is not None
        entries = window.entries
        if not entries:
            return None
        value = _measure(correlation, entries)
        if value is None:
            return None
        if correlation.type in TEMPORAL_TYPES:
            present = {entry.rule_id for entry in entries}
            satisfied = (_evaluate(correlation.expression, present) if correlation.expression is not None
                         else present.issuperset(correlation.rule_ids))
        else:
            assert correlation.operator is not None and correlation.threshold is not None
            satisfied = _OPERATORS[correlation.operator](value, correlation.threshold)
        if not satisfied:
            return None
        return CorrelationMatch(
            rule=rule,
            group=tuple(zip(correlation.group_by, group, strict=True)),
            event_ids=tuple(event_id for entry in entries for event_id in entry.event_ids),
            first=entries[0].time,
            last=entries[-1].time,
            value=value,
        )

    def _step_sequence(self, rule: Rule, correlation: Correlation, group: tuple[Any, ...], window: _Window,
                       occurrence: _Occurrence) -> CorrelationMatch | None:
        progress = window.progress
        steps = correlation.rule_ids
        horizon = occurrence.time - correlation.timespan
        for index in range(len(steps) - 1, -1, -1):  # last step first: one event advances a sequence one step
            if steps[index] != occurrence.rule_id:
                continue
            if index == 0:
                candidate: tuple[datetime, tuple[str, ...]] | None = (occurrence.time, occurrence.event_ids)
            else:
                previous = progress[index - 1]
                candidate = None
                if previous is not None and previous[0] >= horizon:
                    candidate = (previous[0], previous[1] + occurrence.event_ids)
            current = progress[index]
            if candidate is not None and (current is None or current[0] < horizon or candidate[0] >= current[0]):
                progress[index] = candidate
        finished = progress[-1]
        if finished is None:
            return None
        window.progress = [None] * len(steps)
        return CorrelationMatch(rule=rule, group=tuple(zip(correlation.group_by, group, strict=True)),
                                event_ids=finished[1], first=finished[0], last=occurrence.time,
                                value=float(len(steps)))

    def _expire(self, rule: Rule, now: datetime) -> list[CorrelationMatch]:
        """Drop groups idle for longer than the timespan; judge lt/lte windows that have closed."""
        correlation = rule.correlation
        assert correlation is not None
        windows = self._windows[rule.id]
        out: list[CorrelationMatch] = []
        late = correlation.operator in LATE_OPERATORS and correlation.type not in TEMPORAL_TYPES
        while windows:
            group, window = next(iter(windows.items()))
            reference = window.opened if late and window.opened is not None else window.last_seen
            if reference is None or now <= reference + correlation.timespan:
                break
            windows.popitem(last=False)
            if late:
                result = self._judge(rule, group, window)
                if result is not None:
                    out.append(result)
        return out


def _measure(correlation: Correlation, entries: deque[_Entry]) -> float | None:
    kind = correlation.type
    if kind == "event_count":
        return float(len(entries))
    if kind == "value_count":
        return float(len({_group_value(entry.value, False) for entry in entries if _present(entry.value)}))
    if kind in TEMPORAL_TYPES:
        return float(len({entry.rule_id for entry in entries}))
    numbers = [number for entry in entries for number in numbers_of(entry.value, parse_text=True)
               if entry.value is not MISSING]
    if not numbers:
        return None
    if kind == "value_sum":
        return float(sum(numbers))
    if kind == "value_avg":
        return float(statistics.fmean(numbers))
    if kind == "value_median":
        return float(statistics.median(numbers))
    percentile = correlation.percentile or 50
    ordered = sorted(numbers)
    rank = max(0, min(len(ordered) - 1, round(percentile / 100 * (len(ordered) - 1))))  # nearest rank
    return float(ordered[rank])


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value != []


def _group_value(value: Any, caseless: bool) -> Any:
    if value is MISSING or value is None:
        return None
    if value.__class__ is list:
        return tuple(_group_value(item, caseless) for item in value)
    if value.__class__ is dict:
        return tuple(sorted((key, _group_value(item, False)) for key, item in value.items()))
    if caseless and value.__class__ is str:
        return value.lower()
    return value
