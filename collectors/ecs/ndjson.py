"""NDJSON lines that already are (or nearly are) ECS documents: one JSON object per line.

The time comes from ``@timestamp`` (ECS), else ``timestamp`` (Suricata EVE), ``ts`` (Zeek, epoch
seconds) or ``time``; dotted keys (``"source.ip": ...``) are expanded into ECS's nested form so the
store and the rules see one shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from collectors.base import Mapped, ParseError

TIME_KEYS = ("@timestamp", "timestamp", "ts", "time")


def expand_dotted(document: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a": {"c": 2}}`` → ``{"a": {"b": 1, "c": 2}}``."""
    result: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            value = expand_dotted(value)
        node = result
        *parents, leaf = key.split(".") if "." in key and key != "@timestamp" else (key,)
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if isinstance(node.get(leaf), dict) and isinstance(value, dict):
            node[leaf].update(value)
        else:
            node[leaf] = value
    return result


def _timestamp(value: Any, key: str) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ParseError(f"field {key!r}: expected an ISO 8601 time, got {value[:60]!r}") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise ParseError(f"field {key!r}: expected an ISO 8601 string or epoch seconds, got {type(value).__name__}")


def parse_ndjson_line(line: str) -> Mapped:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"expected one JSON object per line: {exc}") from None
    if not isinstance(document, dict):
        raise ParseError(f"expected a JSON object, got {type(document).__name__}")
    for key in TIME_KEYS:
        if key in document:
            timestamp = _timestamp(document.pop(key), key)
            break
    else:
        raise ParseError(f"expected a time field (one of {', '.join(TIME_KEYS)})")
    fields = expand_dotted(document)
    event = fields.get("event") if isinstance(fields.get("event"), dict) else {}
    return Mapped(
        timestamp=timestamp,
        fields=fields,
        module=str(event.get("module") or "ndjson"),
        dataset=str(event.get("dataset") or "ndjson.log"),
    )
