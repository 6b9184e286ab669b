"""Python regular expressions (Sigma's ``|re``) → Lucene ``RegExp`` syntax with the same matches.

The stream matcher runs ``|re`` values with Python's ``re.search``: unanchored, Unicode classes (``\\d``
is any decimal digit, ``\\w`` any letter), ``.`` not matching a newline, ``$`` also matching before a
final newline. Lucene's ``RegExp`` matches a whole term, its ``.`` is any character, its ``\\d``/``\\w``
are ASCII, and ``@ # & < > ~`` are operators. Passing the expression through (what pySigma's Lucene
backend does) therefore selects other events, or none: ``^C:\\\\Windows`` looks for a literal ``^``.

The translation works on the parse tree of Python's own ``re`` parser, so it sees exactly what the
stream matcher compiles: every character set (classes, categories, ``.``, case-insensitive letters) is
computed as a set of code points and written out as a Lucene class; anchors at the ends of the
expression (or of each top-level alternative) decide whether ``.*`` is put around it. What Lucene has
no equivalent for — look-arounds, back-references, word boundaries, anchors inside the expression,
possessive or atomic groups, flags scoped to a group — raises ``SigmaFeatureNotSupportedByBackendError``
(the hunt then runs the rule with the stream matcher).
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache
from re import _constants as sre  # the parser's opcodes
from re import _parser  # Python's own regex parser: the only way to see exactly what re compiles
from typing import Any

from sigma.exceptions import SigmaFeatureNotSupportedByBackendError

MAX_CODE_POINT = sys.maxunicode
SURROGATES = range(0xD800, 0xE000)
"""Lone surrogates cannot be in an indexed term (terms are UTF-8) nor in a JSON request: never written."""

LUCENE_ANY = ".*"
NEWLINE = ord("\n")

MAX_WEIGHT = 2000
"""Most character ranges (``_weight``) an expression may put in Lucene's automaton. Python's ``\\d`` is 62
ranges of code points, ``\\s`` 10, ``\\w`` 734. Measured on a 1 GB node: ``\\w+`(\\w+|-|.)`[\\w+|\\s]``
(weight 3,676) needs 690 MB to compile and trips the request circuit breaker — an outcome that depends
on what else the node is doing — while ``\\*mdr\\*\\W\\s*\\)\\.Name`` (754) compiles in 50 ms. Heavier
expressions are refused here, the same way every time."""

Ranges = tuple[tuple[int, int], ...]
ALL: Ranges = ((0, MAX_CODE_POINT),)


class UnsupportedRegex(SigmaFeatureNotSupportedByBackendError):
    """A construct Lucene's ``RegExp`` cannot express with the same matches."""


def lucene_regex(pattern: str, flags: int = 0) -> str:
    """The Lucene ``RegExp`` whose whole-term matches are the texts ``re.search(pattern, text, flags)``
    finds something in. ``flags``: ``re.IGNORECASE``, ``re.MULTILINE``, ``re.DOTALL`` (inline flags
    such as ``(?i)`` at the start are read from the pattern)."""
    try:
        parsed = _parser.parse(pattern, flags)
    except re.error as exc:
        raise UnsupportedRegex(f"regular expression {pattern!r} does not compile: {exc}") from exc
    flags = parsed.state.flags
    if flags & re.ASCII:
        raise UnsupportedRegex(f"regular expression {pattern!r}: the ASCII flag is not supported")
    weight = _weight(parsed.data, flags)
    if weight > MAX_WEIGHT:
        raise UnsupportedRegex(f"regular expression {pattern!r}: {weight} character ranges (Python's Unicode "
                               f"classes, repeated) make a Lucene automaton too large for the node")
    alternatives = [_anchored(items, flags, pattern) for items in _top_alternatives(list(parsed.data))]
    return alternatives[0] if len(alternatives) == 1 else "|".join(f"({item})" for item in alternatives)


def _top_alternatives(items: list[tuple[Any, Any]]) -> list[list[tuple[Any, Any]]]:
    """``a|b`` (also inside a group spanning the whole expression) as separate expressions: a search for
    ``^a$|b`` is a search for ``^a$`` or one for ``b``, and each can be anchored on its own."""
    if len(items) == 1:
        op, av = items[0]
        if op is sre.BRANCH:
            return [alternative for branch in av[1] for alternative in _top_alternatives(list(branch.data))]
        if op is sre.SUBPATTERN and not av[1] and not av[2]:
            return _top_alternatives(list(av[3].data))
    return [items]


def _anchored(items: list[tuple[Any, Any]], flags: int, pattern: str) -> str:
    start, end = LUCENE_ANY, LUCENE_ANY
    multiline = bool(flags & re.MULTILINE)
    leading = items[0] if items else None
    if leading == (sre.AT, sre.AT_BEGINNING_STRING) or (leading == (sre.AT, sre.AT_BEGINNING) and not multiline):
        start = ""
        items = items[1:]
    if items and items[-1] == (sre.AT, sre.AT_END_STRING):
        end = ""
        items = items[:-1]
    elif items and items[-1] == (sre.AT, sre.AT_END) and not multiline:
        end = f"({_char(NEWLINE)})?"  # Python's $ also matches before a final newline
        items = items[:-1]
    if start and end and len(items) == 1:
        run = _run_of_one_set(items[0], flags)
        if run is not None:
            return run
    return start + _sequence(items, flags, pattern) + end


def _run_of_one_set(item: tuple[Any, Any], flags: int) -> str | None:
    """An unanchored ``X{m,n}`` (one character set repeated, as in ``.{1000,}``) written so Lucene can run it.

    ``.*X{m}.*`` is what it means, but Elasticsearch 9 silently matches nothing for it once ``m`` is a few
    hundred (measured: ``.*.{600}.*`` finds no 2000-character value; Lucene gives up determinizing
    and the fallback finds nothing). Searching ``X{m,n}`` is searching ``X{m}``; and a text holds ``m`` X's
    in a row exactly when a run of them starts at its beginning or after a character that is not X —
    which ``(.*Y)?X{m}.*`` (Y: not X) says with an automaton of ``m`` states."""
    op, av = item
    if op not in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        return None
    low, _, sub = av
    if low < 1 or len(sub.data) != 1:
        return None
    chars = _set_of(*sub.data[0], flags)
    if chars is None:
        return None
    others = _without_surrogates(_complement(chars))
    before = f"(.*{_charset(others)})?" if others else ""
    return f"{before}({_charset(chars)}){{{low}}}{LUCENE_ANY}"


def _sequence(items: Iterable[tuple[Any, Any]], flags: int, pattern: str) -> str:
    return "".join(_item(op, av, flags, pattern) for op, av in items)


def _group(items: Sequence[tuple[Any, Any]], flags: int, pattern: str) -> str:
    inner = _sequence(items, flags, pattern)
    return f"({inner})" if inner else '("")'  # Lucene's empty string is the empty quoted literal


def _set_of(op: Any, av: Any, flags: int) -> Ranges | None:
    """The characters one element matches, if it is a single-character element."""
    if op is sre.LITERAL:
        return _with_case(_single(av), flags)
    if op is sre.NOT_LITERAL:
        return _complement(_with_case(_single(av), flags))
    if op is sre.ANY:
        return _any(bool(flags & re.DOTALL))
    if op is sre.IN:
        return _class(av, flags)
    return None


def _item(op: Any, av: Any, flags: int, pattern: str) -> str:
    chars = _set_of(op, av, flags)
    if chars is not None:
        return _charset(chars)
    if op is sre.BRANCH:
        return "(" + "|".join(_group(list(branch.data), flags, pattern) for branch in av[1]) + ")"
    if op is sre.SUBPATTERN:
        _, add_flags, del_flags, sub = av
        if add_flags or del_flags:
            raise UnsupportedRegex(f"regular expression {pattern!r}: flags scoped to a group")
        return _group(list(sub.data), flags, pattern)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):  # lazy or greedy: the same texts match
        low, high, sub = av
        body = _group(list(sub.data), flags, pattern)
        if high is sre.MAXREPEAT:
            return f"{body}{{{low},}}"
        return f"{body}{{{low}}}" if low == high else f"{body}{{{low},{high}}}"
    if op is sre.AT:
        raise UnsupportedRegex(f"regular expression {pattern!r}: {_anchor_name(av)} inside the expression")
    raise UnsupportedRegex(f"regular expression {pattern!r}: {str(op).lower()} has no Lucene equivalent")


def _anchor_name(at: Any) -> str:
    if at in (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
        return "a word boundary (\\b, \\B)"
    return "an anchor (^, $, \\A, \\Z)"


# --- character sets, as sorted disjoint (first, last) code point ranges ---------------------------------

def _class(items: list[tuple[Any, Any]], flags: int) -> Ranges:
    negate = False
    members: list[tuple[int, int]] = []
    for op, av in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            members.append((av, av))
        elif op is sre.RANGE:
            members.append((av[0], av[1]))
        elif op is sre.CATEGORY:
            members.extend(_category(av))
        else:  # pragma: no cover - the parser emits nothing else inside [...]
            raise UnsupportedRegex(f"character class element {op}")
    found = _with_case(_union(members), flags)
    return _complement(found) if negate else found


@lru_cache(maxsize=8)
def _category(category: Any) -> Ranges:
    """``\\d \\s \\w`` and their negations as Python's ``re`` defines them for ``str`` (Unicode)."""
    tests = {
        sre.CATEGORY_DIGIT: str.isdecimal,
        sre.CATEGORY_SPACE: str.isspace,
        sre.CATEGORY_WORD: lambda char: char.isalnum() or char == "_",
    }
    for positive, negative in ((sre.CATEGORY_DIGIT, sre.CATEGORY_NOT_DIGIT), (sre.CATEGORY_SPACE,
                               sre.CATEGORY_NOT_SPACE), (sre.CATEGORY_WORD, sre.CATEGORY_NOT_WORD)):
        if category in (positive, negative):
            test = tests[positive]
            found = _points(point for point in range(MAX_CODE_POINT + 1) if test(chr(point)))
            return found if category is positive else _complement(found)
    raise UnsupportedRegex(f"character category {category}")


def _single(point: int) -> Ranges:
    return ((point, point),)


def _any(dotall: bool) -> Ranges:
    return ALL if dotall else _complement(_single(NEWLINE))


def _union(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return tuple(merged)


def _points(points: Iterable[int]) -> Ranges:
    return _union((point, point) for point in points)


def _complement(ranges: Ranges) -> Ranges:
    outside: list[tuple[int, int]] = []
    next_free = 0
    for low, high in ranges:
        if low > next_free:
            outside.append((next_free, low - 1))
        next_free = high + 1
    if next_free <= MAX_CODE_POINT:
        outside.append((next_free, MAX_CODE_POINT))
    return tuple(outside)


def _without_surrogates(ranges: Ranges) -> Ranges:
    return _union(piece for low, high in ranges
                  for piece in ((low, min(high, SURROGATES.start - 1)), (max(low, SURROGATES.stop), high))
                  if piece[0] <= piece[1])


def _size(ranges: Ranges) -> int:
    return sum(high - low + 1 for low, high in ranges)


def _with_case(ranges: Ranges, flags: int) -> Ranges:
    """With ``re.IGNORECASE``, every code point ``re`` treats as the same letter as a member: those with
    the same lower case in ``re``'s own mapping, and ``re``'s extra equivalences (the long s ~ ``s``,
    the Kelvin sign ~ ``k``)."""
    if not flags & re.IGNORECASE:
        return ranges
    lowered, by_lower, extra_cases = _case_tables()
    keys = {lowered(point) for low, high in ranges for point in range(low, high + 1)}
    keys.update(extra for key in list(keys) for extra in extra_cases.get(key, ()))
    return _union([*ranges, *((point, point) for key in keys for point in by_lower.get(key, ()))])


@lru_cache(maxsize=1)
def _case_tables() -> tuple[Any, dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]]:
    import _sre  # the case mapping re itself applies under IGNORECASE
    from re._casefix import _EXTRA_CASES  # re's own table of extra case equivalences

    groups: dict[int, list[int]] = {}
    for point in range(MAX_CODE_POINT + 1):
        groups.setdefault(_sre.unicode_tolower(point), []).append(point)
    return _sre.unicode_tolower, {key: tuple(points) for key, points in groups.items()}, _EXTRA_CASES


def _charset(ranges: Ranges) -> str:
    """A set of code points in Lucene syntax: one escaped character, ``.``, or the shorter of the class
    and its negation. Surrogates are left out of both: no indexed term holds one."""
    ranges = _without_surrogates(ranges)
    if not ranges:
        return "#"  # Lucene's empty language: nothing matches (Python's [^\\s\\S] can be written)
    if _size(ranges) == 1:
        return _char(ranges[0][0])
    outside = _without_surrogates(_complement(ranges))
    if not outside:
        return "."
    if len(outside) < len(ranges):
        return "[^" + _class_body(outside) + "]"
    return "[" + _class_body(ranges) + "]"


def _written_ranges(ranges: Ranges) -> int:
    """How many ranges ``_charset`` writes for a set (the shorter of it and its complement)."""
    ranges = _without_surrogates(ranges)
    return min(len(ranges), len(_without_surrogates(_complement(ranges))))


def _weight(items: Iterable[tuple[Any, Any]], flags: int, copies: int = 1) -> int:
    """Character ranges Lucene's automaton will hold: each set's ranges times the copies the repetitions
    around it make (``X{2,64}`` is 64 copies of X, ``X+`` two)."""
    total = 0
    for op, av in items:
        chars = _set_of(op, av, flags)
        if chars is not None:
            total += copies * _written_ranges(chars)
        elif op is sre.BRANCH:
            total += sum(_weight(branch.data, flags, copies) for branch in av[1])
        elif op is sre.SUBPATTERN:
            total += _weight(av[3].data, flags, copies)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, sub = av
            total += _weight(sub.data, flags, copies * max(low + 1 if high is sre.MAXREPEAT else high, 1))
    return total


CLASS_SPECIAL = frozenset(map(ord, "\\]-[^/\""))
"""Characters a Lucene class must have escaped (``/`` for the query string around it)."""


def _class_body(ranges: Ranges) -> str:
    """Ranges as Lucene writes them inside ``[...]``. Lucene does not read an escaped character as the start
    of a range (``[\\!-\\$]`` is ``!``, ``-``, ``$``), so ranges have plain characters at both ends and
    the characters that need escaping are written on their own, after them."""
    plain: list[str] = []
    escaped: list[str] = []
    for low, high in ranges:
        inner = [point for point in sorted(CLASS_SPECIAL) if low <= point <= high]
        escaped.extend("\\" + chr(point) for point in inner)
        bounds = [low - 1, *inner, high + 1]  # the pieces between the special characters stay ranges
        for before, after in itertools.pairwise(bounds):
            first, last = before + 1, after - 1
            if first == last:
                plain.append(chr(first))
            elif first < last:
                plain.append(chr(first) + ("" if last == first + 1 else "-") + chr(last))
    return "".join(plain) + "".join(escaped)


def _char(point: int) -> str:
    """One literal character: letters and digits as they are (unescaped, so ``d``, ``w`` ... stay letters:
    ``\\d``, ``\\w`` are classes in Lucene), everything else escaped (``\\`` + character is that character
    in Lucene's ``RegExp``; it also keeps ``/`` from ending the query string's ``/.../``)."""
    char = chr(point)
    if char.isalnum():
        return char
    return "\\" + char
