"""Elasticsearch mappings: ECS for events, derived from the models for records.

Only core mapping types are used (keyword, text, date, date_nanos, ip, long, double, boolean,
object) and the built-in ``lowercase`` normalizer, so the templates load on any cluster, including a
bare server without modules.

Every string is a ``keyword`` with a ``.caseless`` sub-field (``lowercase`` normalizer): pySigma's
``ecs_windows`` pipeline queries ``<field>.caseless`` for some fields, and Sigma matching is
case-insensitive by default, so any field may need it. ECS's own types are given explicitly for the
fields our collectors write; anything else falls through to the dynamic templates.

What the converted Sigma queries (``detection.lucene``) rely on, so that they select exactly the events
the stream matcher matches:

* Every event field, whatever its type (numbers, addresses, booleans, dates and ``message`` included),
  has the ``.caseless`` sub-field holding its text: the stream matcher compares a value's text, so
  ``destination.ip: '127.*'`` or ``DestinationPort|endswith: '45'`` are text comparisons.
* Every value is also copied to ``KEYWORDS_FIELD`` (lower-cased): Sigma keywords (values without a
  field) are searched in every text of an event, and one field searched once is what keeps such a query
  affordable (a query over all ~1000 fields of a Windows index compiles each wildcard once per field,
  and trips the request circuit breaker).
* Windows' textual address fields (``ADDRESS_TEXT_FIELDS``) carry an ``.ip`` sub-field, so ``|cidr``
  runs on them although they keep ``-`` placeholders an ``ip`` field would reject.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any

from civicsoc.records import Record

KEYWORD_LIMIT = 8191  # Lucene refuses terms over 32766 bytes; 8191 characters fit in any UTF-8.

CASELESS_SUBFIELD: dict[str, Any] = {"type": "keyword", "normalizer": "lowercase", "ignore_above": KEYWORD_LIMIT}

CASELESS_KEYWORD: dict[str, Any] = {
    "type": "keyword",
    "ignore_above": KEYWORD_LIMIT,
    "fields": {"caseless": CASELESS_SUBFIELD},
}

CASELESS = "caseless"
"""The sub-field every event field has: its value as text, lower-cased."""

KEYWORDS_FIELD = "civicsoc.keywords"
"""Every value of an event as lower-cased text, one term per value (``copy_to`` from every field, so it is
not in ``_source``). Values longer than ``KEYWORD_LIMIT`` are not indexed here either."""

ADDRESS_SUBFIELD = "ip"

ADDRESS_TEXT_FIELDS: tuple[str, ...] = (
    "winlog.event_data.IpAddress", "winlog.event_data.ClientAddress",
    "winlog.event_data.SourceAddress", "winlog.event_data.DestAddress", "winlog.event_data.ServerAddress",
)
"""Raw Windows fields that hold an IP address as text (with ``-`` or ``::1`` as Windows writes them):
keywords like any string, plus an ``ip`` sub-field (malformed values left out) for ``|cidr``."""

# ECS fields whose type is not "string → keyword" or that need pinning before a first document
# guesses wrong (a port first seen as "443" would make a keyword). Dotted names, expanded below.
ECS_TYPES: dict[str, str] = {
    "@timestamp": "date_nanos",
    "event.created": "date",
    "event.ingested": "date",
    "event.start": "date",
    "event.end": "date",
    "event.duration": "long",
    "event.severity": "long",
    "event.sequence": "long",
    "event.risk_score": "double",
    "source.ip": "ip",
    "source.port": "long",
    "source.bytes": "long",
    "source.packets": "long",
    "source.nat.ip": "ip",
    "destination.ip": "ip",
    "destination.port": "long",
    "destination.bytes": "long",
    "destination.packets": "long",
    "client.ip": "ip",
    "client.port": "long",
    "client.bytes": "long",
    "server.ip": "ip",
    "server.port": "long",
    "server.bytes": "long",
    "host.ip": "ip",
    "observer.ip": "ip",
    "related.ip": "ip",
    "network.bytes": "long",
    "network.packets": "long",
    "process.pid": "long",
    "process.parent.pid": "long",
    "process.thread.id": "long",
    "process.exit_code": "long",
    "file.size": "long",
    "file.created": "date",
    "file.mtime": "date",
    "dns.resolved_ip": "ip",
    "dns.answers.ttl": "long",
    "http.request.bytes": "long",
    "http.response.bytes": "long",
    "http.response.status_code": "long",
    "http.response.body.bytes": "long",
    "log.offset": "long",
    "log.syslog.priority": "long",
    "log.syslog.facility.code": "long",
    "log.syslog.severity.code": "long",
    "log.syslog.version": "keyword",
    "winlog.record_id": "keyword",
    "winlog.event_id": "keyword",
    "winlog.process.pid": "long",
    "winlog.process.thread.id": "long",
    "event.code": "keyword",
    "message": "text",
    "error.message": "text",
}

UNINDEXED = {"type": "keyword", "index": False, "doc_values": False}

MAX_REGEX_LENGTH = 100_000


def _expand(dotted: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"a.b": m}`` → ``{"a": {"properties": {"b": m}}}``: the object form index mappings take."""
    root: dict[str, Any] = {}
    for name, mapping in dotted.items():
        node = root
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = mapping
    return root


def _field(es_type: str) -> dict[str, Any]:
    """An event field: its type, a ``.caseless`` text sub-field, and a copy in ``KEYWORDS_FIELD``."""
    if es_type == "keyword":
        mapping = dict(CASELESS_KEYWORD)
    else:
        mapping = {"type": es_type, "fields": {CASELESS: CASELESS_SUBFIELD}}
        if es_type in ("ip", "long", "double", "date", "date_nanos"):
            mapping["ignore_malformed"] = True
    mapping["copy_to"] = KEYWORDS_FIELD
    return mapping


def _address_text_field() -> dict[str, Any]:
    mapping = _field("keyword")
    mapping["fields"] = {**mapping["fields"], ADDRESS_SUBFIELD: {"type": "ip", "ignore_malformed": True}}
    return mapping


def event_mappings() -> dict[str, Any]:
    properties = {name: _field(es_type) for name, es_type in ECS_TYPES.items()}
    properties.update({name: _address_text_field() for name in ADDRESS_TEXT_FIELDS})
    properties["event.original"] = {**UNINDEXED, "copy_to": KEYWORDS_FIELD}  # the stream searches it too
    properties[KEYWORDS_FIELD] = dict(CASELESS_SUBFIELD)
    return {
        "dynamic": True,
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [
            {f"{json_type}_values": {"match_mapping_type": json_type, "mapping": _field(es_type)}}
            for json_type, es_type in (("string", "keyword"), ("long", "long"), ("double", "double"),
                                       ("boolean", "boolean"))
        ],
        "properties": _expand(properties),
    }


def event_index_template(prefix: str) -> dict[str, Any]:
    """A composable template for the daily per-tenant event indices, which also puts each new index
    behind the ``<prefix>-events`` alias."""
    return {
        "index_patterns": [f"{prefix}-events-*"],
        "priority": 200,
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": 1,
                    # 0 replicas on a one-node cluster (green, not yellow), 1 as soon as there is a second node.
                    "auto_expand_replicas": "0-1",
                    "refresh_interval": "1s",
                    "mapping": {"total_fields": {"limit": 10_000}, "ignore_malformed": True},
                    # Converted |re values spell Python's Unicode classes out (\w is ~700 ranges): see
                    # detection.lucene_regex. The default (1000 characters) refuses them.
                    "max_regex_length": MAX_REGEX_LENGTH,
                },
            },
            "mappings": event_mappings(),
            "aliases": {f"{prefix}-events": {}},
        },
        "_meta": {"managed_by": "civicsoc", "description": "ECS events, one index per tenant and UTC day"},
    }


def _type_mapping(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_mapping(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _type_mapping(inner[0])
    if origin in (list, tuple, set, frozenset):
        return _type_mapping(typing.get_args(annotation)[0])
    if origin is dict or annotation is dict:
        return {"type": "object", "enabled": False}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "long"}
    if annotation is float:
        return {"type": "double"}
    if annotation is datetime:
        return {"type": "date"}
    if isinstance(annotation, type) and issubclass(annotation, str | Enum):
        return dict(CASELESS_KEYWORD)
    raise TypeError(f"no Elasticsearch mapping for {annotation!r}")


def record_mappings(record_type: type[Record]) -> dict[str, Any]:
    """Mappings straight from the pydantic model, so the index and the model cannot disagree."""
    properties = {}
    for name, info in record_type.model_fields.items():
        if name in record_type.unindexed:
            properties[name] = {"type": "object", "enabled": False}
        else:
            properties[name] = _type_mapping(info.annotation)
    return {"dynamic": "strict", "properties": properties}
