"""Processed Sigma rules → fast predicates over ECS events.

A rule's condition tree is the one pySigma builds for its backends (``SigmaCondition.parsed``: AND/OR/NOT
over field/value leaves, every modifier already applied to the values), taken after ``detection.pipelines``
mapped the fields. It is translated once into a small tree of ``Node``s — the form the indexed engine
analyses — and from that into nested closures, the fastest way CPython evaluates a tree. Nothing is
compiled or parsed at match time: regular expressions, globs, CIDR networks and Aho-Corasick automata are
all built here.

Semantics (Sigma specification, with the choices it leaves open written down):

* Strings compare case-insensitively unless ``|cased``; a ``.caseless`` field of the ECS mapping is always
  compared case-insensitively (it names a lowercase-normalized Elasticsearch sub-field). ``|re`` is not a
  string comparison: on a ``.caseless`` target it runs on the base field, as the Lucene backend's does.
* ``*`` matches any run of characters (newlines included), ``?`` exactly one; ``contains``/``startswith``/
  ``endswith`` are those wildcards added by pySigma.
* ``|re`` searches the value (unanchored, Python ``re``; case-sensitive unless ``|i``; ``|m``, ``|s``
  flags). SigmaHQ writes its expressions for search semantics.
* A list of values is OR-ed, ``|all`` AND-s it; expansions (``windash``, ``base64offset``) are always OR-ed.
* A multi-valued field matches when any of its values does. ``null`` means the field is missing, ``None``
  or ``[]``; ``|exists`` tests presence only, whatever the value (``None`` included), as the modifier
  appendix specifies.
* Numbers: ``EventID: 4625`` matches the number 4625 and the text ``"4625"`` (``event.code`` is a keyword).
  ``gt``/``gte``/``lt``/``lte`` compare numerically, reading decimal text as a number.
* ``|cidr`` matches IPv4/IPv6 addresses in the network; text that is not an address does not match.
* ``|fieldref`` compares with the other field's value(s), case-insensitively; with ``contains``/
  ``startswith``/``endswith`` the other value must occur inside/at the start/at the end.
* Keywords (values without a field) are searched, as ``*value*``, in every text of the event at any depth
  (``message``, ``event.original`` and all other fields): the same as an unbound Lucene query over all
  fields, and what "the value appears somewhere in the log" means for a structured event.
* Timestamp modifiers (``|minute`` ... ``|year``) read the field as an ISO 8601 time in UTC; ``|week`` is
  the ISO week.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ahocorasick
import hyperscan
import orjson
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaQueryExpression,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from detection.fields import KEYWORD_SEPARATOR, MISSING, EventView, is_absent, numbers_of, parse_datetime
from detection.pipelines import strip_caseless

Predicate = Callable[[EventView], bool]

AUTOMATON_THRESHOLD = 8
"""From this many ``contains`` values on one field an Aho-Corasick automaton beats a loop of ``in`` tests."""


class UnsupportedRule(Exception):
    """A rule the stream matcher cannot evaluate; the message says what and where (the loader skips it)."""


# --- the condition tree ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TextTest:
    """Field text matches any of: an exact value, a prefix, a suffix, a substring, a glob (full match).

    Case-insensitive tests hold lower-cased literals and run on lower-cased text. ``field`` ``None`` is a
    keyword test over every text of the event."""

    field: str | None
    cased: bool
    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    needles: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    """Regular expression sources (``fullmatch``) for wildcard patterns that are not a plain prefix/suffix/substring."""
    glob_literals: tuple[str, ...] = ()
    """Per glob, its longest literal run (folded like the text): every matching text contains it."""
    any_text: bool = False
    """A bare ``*``: any text at all."""

    def literals(self) -> int:
        return len(self.exact) + len(self.prefixes) + len(self.suffixes) + len(self.needles) + len(self.globs)


@dataclass(frozen=True, slots=True)
class NumberTest:
    field: str
    number: int | float


@dataclass(frozen=True, slots=True)
class BoolTest:
    field: str
    value: bool


@dataclass(frozen=True, slots=True)
class NullTest:
    """``field: null``: the field is missing, ``None`` or ``[]`` (nothing Elasticsearch would index)."""

    field: str


@dataclass(frozen=True, slots=True)
class ExistsTest:
    """``|exists``: the field is present (``exists=True``) or not — whatever its value, ``None`` included,
    as the specification says ("only verifies the presence of a field, not its value")."""

    field: str
    exists: bool


@dataclass(frozen=True, slots=True)
class RegexTest:
    field: str | None
    pattern: str
    flags: int


@dataclass(frozen=True, slots=True)
class CidrTest:
    field: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class CompareTest:
    field: str
    op: CompareOperators
    number: int | float


@dataclass(frozen=True, slots=True)
class FieldRefTest:
    field: str
    other: str
    starts_with: bool
    ends_with: bool
    cased: bool


@dataclass(frozen=True, slots=True)
class TimePartTest:
    field: str
    part: TimestampPart
    number: int


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Constant:
    value: bool


Leaf = (TextTest | NumberTest | BoolTest | NullTest | ExistsTest | RegexTest | CidrTest | CompareTest | FieldRefTest
        | TimePartTest)
Node = Leaf | AllOf | AnyOf | Not | Constant


# --- Sigma condition tree → Node ---------------------------------------------------------------------------

def rule_tree(rule: SigmaRule) -> Node:
    """The rule's conditions (several are OR-ed, as a backend emits one query each) as one ``Node``.

    Raises ``UnsupportedRule`` for values the matcher cannot evaluate (an unresolved ``|expand``
    placeholder, a backend-specific query expression) and pySigma's errors for broken conditions."""
    trees = []
    for condition in rule.detection.parsed_condition:
        parsed = condition.parsed
        trees.append(Constant(False) if parsed is None else _translate(parsed))
    return simplify(trees[0] if len(trees) == 1 else AnyOf(tuple(trees)))


def _translate(item: Any) -> Node:
    if isinstance(item, ConditionAND):
        return AllOf(tuple(_translate(arg) for arg in item.args if arg is not None))
    if isinstance(item, ConditionOR):
        return AnyOf(tuple(_translate(arg) for arg in item.args if arg is not None))
    if isinstance(item, ConditionNOT):
        return Not(_translate(item.args[0]))
    if isinstance(item, ConditionFieldEqualsValueExpression):
        return _leaf(item.field, item.value)
    if isinstance(item, ConditionValueExpression):
        return _leaf(None, item.value)
    if isinstance(item, ConditionItem):  # an identifier/selector pySigma did not resolve: never happens after parsing
        raise UnsupportedRule(f"unexpected condition element {type(item).__name__}")
    raise UnsupportedRule(f"unexpected condition element {item!r}")


def _leaf(field: str | None, value: Any) -> Node:
    path: str | None
    caseless = False
    if field is None:
        path = None
    else:
        path, caseless = strip_caseless(field)
    if isinstance(value, SigmaExpansion):
        return AnyOf(tuple(_leaf(field, item) for item in value.values))
    if isinstance(value, SigmaString):  # SigmaCasedString included
        cased = isinstance(value, SigmaCasedString) and not caseless
        if path is None:
            value = _as_contains(value)
        return string_test(path, value, cased=cased)
    if isinstance(value, SigmaTimestampPart):  # before SigmaNumber: it is one
        if path is None:
            raise UnsupportedRule("a timestamp modifier needs a field")
        return TimePartTest(path, value.timestamp_part, int(value.number))
    if isinstance(value, SigmaNumber):
        if path is None:
            return string_test(None, _as_contains(SigmaString(str(value.number))), cased=False)
        return NumberTest(path, value.number)
    if isinstance(value, SigmaBool):
        if path is None:
            raise UnsupportedRule("a boolean keyword has no meaning without a field")
        return BoolTest(path, value.boolean)
    if isinstance(value, SigmaNull):
        if path is None:
            raise UnsupportedRule("null needs a field")
        return NullTest(path)
    if isinstance(value, SigmaExists):
        if path is None:
            raise UnsupportedRule("|exists needs a field")
        return ExistsTest(path, value.exists)
    if isinstance(value, SigmaRegularExpression):
        return regex_test(path, value)
    if isinstance(value, SigmaCIDRExpression):
        if path is None:
            raise UnsupportedRule("|cidr needs a field")
        return CidrTest(path, value.network)
    if isinstance(value, SigmaCompareExpression):
        if path is None:
            raise UnsupportedRule("a numeric comparison needs a field")
        return CompareTest(path, value.op, value.number.number)
    if isinstance(value, SigmaFieldReference):
        if path is None:
            raise UnsupportedRule("|fieldref needs a field")
        other, _ = strip_caseless(value.field)
        return FieldRefTest(path, other, value.starts_with, value.ends_with, cased=False)
    if isinstance(value, SigmaQueryExpression):
        raise UnsupportedRule(f"field {field}: a backend query expression ({value.expr!r}) cannot run on events")
    raise UnsupportedRule(f"field {field}: unsupported value type {type(value).__name__}")


def _as_contains(value: SigmaString) -> SigmaString:
    """Keywords are searched anywhere in a text (``*value*``), as an unbound Lucene query is."""
    if not value.startswith(SpecialChars.WILDCARD_MULTI):
        value = SpecialChars.WILDCARD_MULTI + value
    if not value.endswith(SpecialChars.WILDCARD_MULTI):
        value = value + SpecialChars.WILDCARD_MULTI
    return value


def string_test(path: str | None, value: SigmaString, *, cased: bool) -> TextTest:
    """One Sigma string (wildcards ``*``/``?`` as parsed by pySigma) as a ``TextTest``."""
    parts = list(value.s)
    for part in parts:
        if isinstance(part, Placeholder):
            raise UnsupportedRule(f"field {path}: placeholder %{part.name}% has no configured values "
                                  "(|expand needs detection placeholders)")
    fold: Callable[[str], str] = (lambda text: text) if cased else str.lower
    many = SpecialChars.WILDCARD_MULTI
    literal = [part for part in parts if isinstance(part, str)]
    specials = [part for part in parts if not isinstance(part, str)]
    if not specials:
        return TextTest(path, cased, exact=frozenset({fold("".join(literal))}))
    if all(part is many for part in specials):
        inner = parts
        leading = bool(inner) and inner[0] is many
        trailing = bool(inner) and inner[-1] is many
        core = [part for part in inner if part is not many]
        if len(core) == 0:
            return TextTest(path, cased, any_text=True)
        if len(core) == 1 and len(specials) == int(leading) + int(trailing):
            text = fold(core[0])
            if leading and trailing:
                return TextTest(path, cased, needles=(text,))
            if leading:
                return TextTest(path, cased, suffixes=(text,))
            return TextTest(path, cased, prefixes=(text,))
    longest = max((fold(part) for part in parts if isinstance(part, str)), key=len, default="")
    return TextTest(path, cased, globs=(_glob_regex(parts, fold),), glob_literals=(longest,))


def _glob_regex(parts: Sequence[str | SpecialChars | Placeholder], fold: Callable[[str], str]) -> str:
    pieces = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            pieces.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
        else:
            pieces.append(re.escape(fold(str(part))))
    return "".join(pieces)


_REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def regex_test(path: str | None, value: SigmaRegularExpression) -> RegexTest:
    if value.regexp.contains_placeholder():
        raise UnsupportedRule(f"field {path}: regular expression with an unresolved |expand placeholder")
    flags = 0
    for flag in value.flags:
        flags |= _REGEX_FLAGS[flag]
    source = str(value.regexp)
    try:  # compiled here once, to report a bad expression as a load error rather than at match time
        re.compile(source, flags)
    except re.error as exc:
        raise UnsupportedRule(f"field {path}: regular expression {source!r} does not compile in Python: {exc}") from exc
    return RegexTest(path, source, flags)


def simplify(node: Node) -> Node:
    """Flatten nested AND/OR, fold constants, and merge OR-ed text tests of one field into one test (a
    value list becomes one set lookup / one ``startswith`` call / one automaton instead of N leaves)."""
    if isinstance(node, AllOf | AnyOf):
        kind = type(node)
        flat: list[Node] = []
        for child in node.children:
            child = simplify(child)
            if isinstance(child, kind):
                flat.extend(child.children)
            else:
                flat.append(child)
        neutral = isinstance(node, AllOf)  # AND: True is neutral, False absorbs; OR: the reverse
        kept = []
        for child in flat:
            if isinstance(child, Constant):
                if child.value is neutral:
                    continue
                return Constant(not neutral)
            kept.append(child)
        if isinstance(node, AnyOf):
            kept = _merge_text_tests(kept)
        if not kept:
            return Constant(neutral)
        if len(kept) == 1:
            return kept[0]
        return kind(tuple(kept))
    if isinstance(node, Not):
        child = simplify(node.child)
        if isinstance(child, Constant):
            return Constant(not child.value)
        if isinstance(child, Not):
            return child.child
        return Not(child)
    return node


def _merge_text_tests(children: list[Node]) -> list[Node]:
    merged: dict[tuple[str | None, bool], TextTest] = {}
    out: list[Node] = []
    for child in children:
        if isinstance(child, TextTest):
            key = (child.field, child.cased)
            previous = merged.get(key)
            if previous is None:
                merged[key] = child
                out.append(child)
            else:
                combined = TextTest(
                    child.field, child.cased,
                    exact=previous.exact | child.exact,
                    prefixes=_unique(previous.prefixes + child.prefixes),
                    suffixes=_unique(previous.suffixes + child.suffixes),
                    needles=_unique(previous.needles + child.needles),
                    globs=previous.globs + child.globs,
                    glob_literals=previous.glob_literals + child.glob_literals,
                    any_text=previous.any_text or child.any_text,
                )
                merged[key] = combined
                out[out.index(previous)] = combined
        else:
            out.append(child)
    return out


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def fields_of(node: Node) -> set[str]:
    """Every event field a tree reads (what a rule needs the collectors to produce)."""
    if isinstance(node, AllOf | AnyOf):
        return set().union(*(fields_of(child) for child in node.children))
    if isinstance(node, Not):
        return fields_of(node.child)
    if isinstance(node, Constant):
        return set()
    found = set() if node.field is None else {node.field}
    if isinstance(node, FieldRefTest):
        found.add(node.other)
    return found


# --- Node → closure ----------------------------------------------------------------------------------------

def compile_node(node: Node) -> Predicate:
    """The predicate for a tree. AND/OR children are ordered cheapest first (they are pure, so order
    changes speed only): equality before substring search before regular expressions."""
    if isinstance(node, AllOf):
        return _all(sorted((compile_node(child) for child in node.children), key=_cost_of))
    if isinstance(node, AnyOf):
        return _any(sorted((compile_node(child) for child in node.children), key=_cost_of))
    if isinstance(node, Not):
        inner = compile_node(node.child)
        return _tag(lambda view: not inner(view), _cost_of(inner))
    if isinstance(node, Constant):
        value = node.value
        return _tag(lambda view: value, 0)
    return _tag(_compile_leaf(node), _leaf_cost(node))


def _tag(predicate: Predicate, cost: int) -> Predicate:
    predicate.cost = cost  # type: ignore[attr-defined]
    return predicate


def _cost_of(predicate: Predicate) -> int:
    return getattr(predicate, "cost", 50)


def _leaf_cost(node: Leaf) -> int:
    if isinstance(node, TextTest):
        base = 1 if node.field is not None else 200
        return base + (1 if node.exact else 0) + len(node.prefixes) + len(node.suffixes) \
            + 3 * len(node.needles) + 20 * len(node.globs)
    if isinstance(node, RegexTest):
        return 100 if node.field is not None else 400
    if isinstance(node, FieldRefTest | CidrTest | TimePartTest):
        return 30
    return 2


def _all(predicates: list[Predicate]) -> Predicate:
    cost = sum(_cost_of(p) for p in predicates)
    if len(predicates) == 2:
        first, second = predicates
        return _tag(lambda view: first(view) and second(view), cost)
    if len(predicates) == 3:
        first, second, third = predicates
        return _tag(lambda view: first(view) and second(view) and third(view), cost)
    items = tuple(predicates)

    def all_of(view: EventView) -> bool:
        for predicate in items:  # noqa: SIM110 - a loop: all() over a generator adds a frame per call
            if not predicate(view):
                return False
        return True
    return _tag(all_of, cost)


def _any(predicates: list[Predicate]) -> Predicate:
    cost = sum(_cost_of(p) for p in predicates)
    if len(predicates) == 2:
        first, second = predicates
        return _tag(lambda view: first(view) or second(view), cost)
    items = tuple(predicates)

    def any_of(view: EventView) -> bool:
        for predicate in items:  # noqa: SIM110 - as in all_of
            if predicate(view):
                return True
        return False
    return _tag(any_of, cost)


def _compile_leaf(node: Leaf) -> Predicate:
    if isinstance(node, TextTest):
        return _compile_text(node)
    if isinstance(node, NumberTest):
        return _compile_number(node)
    if isinstance(node, BoolTest):
        path, text = node.field, "true" if node.value else "false"
        return lambda view: text in view.lowered(path)
    if isinstance(node, NullTest):
        path = node.field
        return lambda view: is_absent(view.raw(path))
    if isinstance(node, ExistsTest):
        path = node.field
        if node.exists:
            return lambda view: view.raw(path) is not MISSING
        return lambda view: view.raw(path) is MISSING
    if isinstance(node, RegexTest):
        search = re.compile(node.pattern, node.flags).search
        if node.field is None:
            return lambda view: any(search(text) for text in view.strings())
        path = node.field
        return lambda view: any(search(text) for text in view.texts(path))
    if isinstance(node, CidrTest):
        return _compile_cidr(node)
    if isinstance(node, CompareTest):
        return _compile_compare(node)
    if isinstance(node, FieldRefTest):
        return _compile_fieldref(node)
    return _compile_time_part(node)


def _compile_text(node: TextTest) -> Predicate:
    """One closure specialised to the kinds of literal present: the common one-kind cases avoid the
    general loop's overhead."""
    exact, prefixes, suffixes, needles = node.exact, node.prefixes, node.suffixes, node.needles
    globs = tuple(re.compile(source, re.DOTALL).fullmatch for source in node.globs)
    if node.field is None:
        if needles and not (exact or prefixes or suffixes or globs or node.any_text) \
                and not any(KEYWORD_SEPARATOR in needle for needle in needles):
            return _compile_keyword_needles(needles, node.cased)
        texts_of_view: Callable[[EventView], tuple[str, ...]] = (
            EventView.strings if node.cased else EventView.lowered_strings)
    else:
        path = node.field
        texts_of_view = (lambda view: view.texts(path)) if node.cased else (lambda view: view.lowered(path))
    if node.any_text:
        return lambda view: bool(texts_of_view(view))
    automaton = _automaton(needles) if len(needles) >= AUTOMATON_THRESHOLD else None
    kinds = sum(1 for group in (exact, prefixes, suffixes, needles, globs) if group)
    if kinds == 1:
        if exact:
            if len(exact) == 1:
                (only,) = exact
                return lambda view: only in texts_of_view(view)
            return lambda view: not exact.isdisjoint(texts_of_view(view))
        if prefixes:
            return lambda view: any(text.startswith(prefixes) for text in texts_of_view(view))
        if suffixes:
            return lambda view: any(text.endswith(suffixes) for text in texts_of_view(view))
        if needles and automaton is None:
            if len(needles) == 1:
                (needle,) = needles
                return lambda view: any(needle in text for text in texts_of_view(view))
            return lambda view: any(needle in text for text in texts_of_view(view) for needle in needles)
        if needles:
            return lambda view: any(_automaton_hits(automaton, text) for text in texts_of_view(view))
        if len(globs) == 1:
            (glob,) = globs
            return lambda view: any(glob(text) is not None for text in texts_of_view(view))

    def text_test(view: EventView) -> bool:
        for text in texts_of_view(view):
            if text in exact:
                return True
            if prefixes and text.startswith(prefixes):
                return True
            if suffixes and text.endswith(suffixes):
                return True
            if automaton is not None:
                if _automaton_hits(automaton, text):
                    return True
            else:
                for needle in needles:
                    if needle in text:
                        return True
            for glob in globs:
                if glob(text) is not None:
                    return True
        return False
    return text_test


def _compile_keyword_needles(needles: tuple[str, ...], cased: bool) -> Predicate:
    """Keywords (``*value*`` over every text of the event), in two steps.

    1. Pre-filter (Hyperscan, ~1 GB/s): the JSON-escaped values are searched in the event's JSON text.
       JSON escaping maps each character on its own, so a text containing a value makes the JSON text
       contain the escaped value: not finding any proves no match. Used for ASCII values on ASCII
       events, where Hyperscan's caseless mode is exactly ``str.lower``.
    2. Exact search in the event's texts joined by a separator no value contains (so no match spans
       two texts): one pass instead of one per text.
    """
    lowered = not cased
    exact: Predicate
    if len(needles) >= AUTOMATON_THRESHOLD:
        automaton = _automaton(needles)
        exact = lambda view: _automaton_hits(automaton, view.joined_strings(lowered))  # noqa: E731
    elif len(needles) == 1:
        (needle,) = needles
        exact = lambda view: needle in view.joined_strings(lowered)  # noqa: E731
    else:
        exact = lambda view: any(needle in view.joined_strings(lowered) for needle in needles)  # noqa: E731
    if not all(needle.isascii() and needle for needle in needles):
        return exact
    database = hyperscan.Database()
    escaped = [orjson.dumps(needle)[1:-1] for needle in needles]
    flags = hyperscan.HS_FLAG_SINGLEMATCH | (0 if cased else hyperscan.HS_FLAG_CASELESS)
    database.compile(expressions=escaped, ids=list(range(len(escaped))), elements=len(escaped), flags=flags,
                     literal=True)

    def keyword_test(view: EventView) -> bool:
        document = view.json()
        if document is not None and document.isascii():
            found: list[int] = []
            database.scan(document, match_event_handler=_collect_hit, context=found)
            if not found:
                return False
        return exact(view)
    return keyword_test


def _collect_hit(pattern: int, start: int, end: int, flags: int, found: list[int]) -> None:
    found.append(pattern)


def _automaton(needles: tuple[str, ...]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for needle in needles:
        automaton.add_word(needle, None)
    automaton.make_automaton()
    return automaton


def _automaton_hits(automaton: ahocorasick.Automaton, text: str) -> bool:
    for _ in automaton.iter(text):
        return True
    return False


def _compile_number(node: NumberTest) -> Predicate:
    path, number = node.field, node.number
    text = str(number)

    def number_test(view: EventView) -> bool:
        if text in view.texts(path):
            return True
        return number in numbers_of(view.raw(path), parse_text=False)
    return number_test


@lru_cache(maxsize=16384)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Cached: the same peers recur; ``ipaddress`` raises on non-addresses, which are input, not errors."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _compile_cidr(node: CidrTest) -> Predicate:
    path, network = node.field, node.network

    def cidr_test(view: EventView) -> bool:
        for text in view.texts(path):
            address = _address(text)
            if address is not None and address.version == network.version and address in network:
                return True
        return False
    return cidr_test


_COMPARATORS: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda value, limit: value < limit,
    CompareOperators.LTE: lambda value, limit: value <= limit,
    CompareOperators.GT: lambda value, limit: value > limit,
    CompareOperators.GTE: lambda value, limit: value >= limit,
    CompareOperators.NEQ: lambda value, limit: value != limit,
}


def _compile_compare(node: CompareTest) -> Predicate:
    path, limit, compare = node.field, node.number, _COMPARATORS[node.op]
    return lambda view: any(compare(value, limit) for value in numbers_of(view.raw(path), parse_text=True))


def _compile_fieldref(node: FieldRefTest) -> Predicate:
    path, other = node.field, node.other
    starts, ends = node.starts_with, node.ends_with

    def fieldref_test(view: EventView) -> bool:
        references = view.lowered(other)
        if not references:
            return False
        for text in view.lowered(path):
            for reference in references:
                if starts and ends:
                    if reference in text:
                        return True
                elif starts:
                    if text.startswith(reference):
                        return True
                elif ends:
                    if text.endswith(reference):
                        return True
                elif text == reference:
                    return True
        return False
    return fieldref_test


def _time_part(text: str, part: TimestampPart) -> int | None:
    moment = parse_datetime(text)
    if moment is None:
        return None
    if part is TimestampPart.MINUTE:
        return moment.minute
    if part is TimestampPart.HOUR:
        return moment.hour
    if part is TimestampPart.DAY:
        return moment.day
    if part is TimestampPart.WEEK:
        return moment.isocalendar().week
    if part is TimestampPart.MONTH:
        return moment.month
    return moment.year


def _compile_time_part(node: TimePartTest) -> Predicate:
    path, part, number = node.field, node.part, node.number
    return lambda view: any(_time_part(text, part) == number for text in view.texts(path))


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule's condition, ready to run: the tree (for the index) and its predicate."""

    tree: Node
    predicate: Predicate

    def __call__(self, view: EventView) -> bool:
        return self.predicate(view)


def compile_rule(rule: SigmaRule) -> CompiledRule:
    """Compile a rule processed by ``detection.pipelines``. Raises ``UnsupportedRule`` or pySigma errors."""
    tree = rule_tree(rule)
    return CompiledRule(tree, compile_node(tree))
