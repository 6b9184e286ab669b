"""Reading ECS fields out of an event for matching: dotted paths, lists, text forms, each computed once.

A rule set reads the same few fields (``process.command_line``, ``winlog.channel`` ...) hundreds of times
per event. ``EventView`` resolves a path once per event and keeps its text forms (as written, and lower
case for Sigma's case-insensitive comparisons), so every rule after the first pays one dict lookup.

Values and their text forms follow how Elasticsearch indexes them, since the same rules also run there
as queries: a list is matched element by element (any element may match), a list of objects is walked
into (``dns.answers.data`` reads ``data`` of every answer), numbers and booleans compare by their text
(``4625``, ``true``), objects have no text, and a missing field, ``None`` and ``[]`` all mean "absent".
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import orjson

MISSING: Final = object()
"""A field the event does not have (distinct from a field whose value is ``None``)."""

EMPTY: tuple[str, ...] = ()

KEYWORD_SEPARATOR = "\x00"
"""Joins an event's texts for keyword search (see ``EventView.joined_strings``)."""


@lru_cache(maxsize=65536)
def split_path(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``a.b.c`` → the parts and, for each position, the rest joined again (``a.b.c``, ``b.c``, ``c``):
    the rest is tried as a literal key where the nested walk finds nothing (dotted keys do occur)."""
    parts = tuple(path.split("."))
    rests = tuple(".".join(parts[index:]) for index in range(len(parts)))
    return parts, rests


def resolve(node: Any, parts: tuple[str, ...], rests: tuple[str, ...], start: int = 0) -> Any:
    """The value at ``parts`` below ``node``; lists on the way are walked element-wise (their results
    flattened into one list); ``MISSING`` if nothing is there."""
    for index in range(start, len(parts)):
        cls = node.__class__
        if cls is dict:
            child = node.get(parts[index], MISSING)
            if child is MISSING:
                return node.get(rests[index], MISSING) if index + 1 < len(parts) else MISSING
            node = child
        elif cls is list:
            found: list[Any] = []
            for element in node:
                value = resolve(element, parts, rests, index)
                if value is MISSING:
                    continue
                if value.__class__ is list:
                    found.extend(value)
                else:
                    found.append(value)
            return found if found else MISSING
        else:
            return MISSING
    return node


def nested(document: dict[str, Any], parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` through nested dicts only (no lists, no dotted keys), or ``None``.

    Where this finds a dict, ``resolve`` of any child path finds exactly that dict's child: the indexed
    engine relies on it to read many sibling fields with one walk."""
    node: Any = document
    for part in parts:
        if node.__class__ is not dict:
            return None
        node = node.get(part)
    return node


def texts_of(value: Any) -> tuple[str, ...]:
    """The text forms a value matches as: strings as they are, numbers as ``str()``, booleans as
    ``true``/``false``, lists element-wise; objects, ``None`` and missing values have none."""
    cls = value.__class__
    if cls is str:
        return (value,)
    if value is MISSING or value is None or cls is dict:
        return EMPTY
    if cls is bool:
        return ("true",) if value else ("false",)
    if cls is list or cls is tuple:
        out: list[str] = []
        for element in value:
            out.extend(texts_of(element))
        return tuple(out)
    return (str(value),)


def numbers_of(value: Any, *, parse_text: bool) -> tuple[int | float, ...]:
    """Numeric forms of a value: ints and floats (not booleans), and with ``parse_text`` also decimal
    text (``"42"``, ``"1.5"``) — the comparison modifiers (``gt`` ...) read numbers written as text."""
    cls = value.__class__
    if cls is int or cls is float:
        return (value,)
    if cls is str:
        return _parse_number(value) if parse_text else ()
    if cls is list or cls is tuple:
        out: list[int | float] = []
        for element in value:
            out.extend(numbers_of(element, parse_text=parse_text))
        return tuple(out)
    return ()


@lru_cache(maxsize=16384)
def _parse_number(text: str) -> tuple[int | float, ...]:
    stripped = text.strip()
    if stripped.lstrip("+-").isdigit():
        return (int(stripped),)
    try:  # float() is the parser; text that is not a number is input, not an error. Cached: values repeat.
        return (float(stripped),)
    except ValueError:
        return ()


@lru_cache(maxsize=16384)
def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive times are taken as UTC), or ``None``."""
    try:  # fromisoformat is the parser; a value that is not a time simply does not match
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def is_absent(value: Any) -> bool:
    """Sigma's ``null``: missing, ``None`` or an empty list (Elasticsearch indexes nothing for any of them)."""
    return value is MISSING or value is None or (value.__class__ is list and not value)


class EventView:
    """One event as the matchers see it; caches every field it resolves. Create one per event."""

    __slots__ = ("_joined", "_json", "_lowered", "_lowered_strings", "_raw", "_strings", "_texts", "document")

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._raw: dict[str, Any] = {}
        self._texts: dict[str, tuple[str, ...]] = {}
        self._lowered: dict[str, tuple[str, ...]] = {}
        self._strings: tuple[str, ...] | None = None
        self._lowered_strings: tuple[str, ...] | None = None
        self._joined: dict[bool, str] = {}
        self._json: bytes | bool | None = False

    def raw(self, path: str) -> Any:
        """The value at a dotted path, ``MISSING`` if there is none."""
        value = self._raw.get(path, self)
        if value is self:
            parts, rests = split_path(path)
            value = self._raw[path] = resolve(self.document, parts, rests)
        return value

    def texts(self, path: str) -> tuple[str, ...]:
        """Text forms of the field, as written."""
        found = self._texts.get(path)
        if found is None:
            value = self.raw(path)
            found = self._texts[path] = (value,) if value.__class__ is str else texts_of(value)
        return found

    def lowered(self, path: str) -> tuple[str, ...]:
        """Text forms of the field in lower case (Sigma compares case-insensitively by default)."""
        found = self._lowered.get(path)
        if found is None:
            value = self._raw.get(path, self)
            if value is self:
                parts, rests = split_path(path)
                value = self._raw[path] = resolve(self.document, parts, rests)
            if value.__class__ is str:
                found = self._lowered[path] = (value.lower(),)
            else:
                found = self._lowered[path] = tuple(text.lower() for text in texts_of(value))
        return found

    def strings(self) -> tuple[str, ...]:
        """Every text in the event (all leaves, any depth): what Sigma keywords are searched in."""
        if self._strings is None:
            collected: list[str] = []
            _collect_strings(self.document, collected)
            self._strings = tuple(collected)
        return self._strings

    def lowered_strings(self) -> tuple[str, ...]:
        if self._lowered_strings is None:
            self._lowered_strings = tuple(text.lower() for text in self.strings())
        return self._lowered_strings

    def json(self) -> bytes | None:
        """The event as orjson writes it (``None`` if it holds something JSON cannot): every text of the
        event appears in it, JSON-escaped — what the keyword pre-filter scans."""
        if self._json is False:
            try:  # orjson is the serializer; a document it rejects just goes without the pre-filter
                self._json = orjson.dumps(self.document)
            except (orjson.JSONEncodeError, TypeError):
                self._json = None
        return self._json  # type: ignore[return-value]

    def joined_strings(self, lowered: bool) -> str:
        """All texts joined by ``KEYWORD_SEPARATOR``: one substring search covers the whole event for a
        value that does not contain the separator (a match cannot then span two texts)."""
        joined = self._joined.get(lowered)
        if joined is None:
            joined = KEYWORD_SEPARATOR.join(self.strings())
            if lowered:
                joined = joined.lower()
            self._joined[lowered] = joined
        return joined


def _collect_strings(node: dict[str, Any] | list[Any], out: list[str]) -> None:
    """Leaves of a dict or list, in document order. One call per container, not per leaf: this runs
    for every event a keyword rule looks at."""
    for value in node.values() if node.__class__ is dict else node:  # type: ignore[union-attr]
        cls = value.__class__
        if cls is str:
            out.append(value)
        elif cls is dict or cls is list or cls is tuple:
            _collect_strings(value, out)
        elif cls is bool:
            out.append("true" if value else "false")
        elif cls is float:  # as JSON writes it, so the keyword pre-filter over the JSON text stays exact
            out.append(orjson.dumps(value).decode())
        elif value is not None:
            out.append(str(value))
