"""An incident's indicators of compromise: IP addresses, domains and file hashes, each with its kind.

An incident keeps its hashes as bare hex strings (``Incident.hashes``, lower-cased), so a 32-digit value may be
an MD5 or a PE import hash (Sysmon reports both). The events behind the incident say which: a value found
under ``…hash.md5`` is an MD5, under ``…pe.imphash`` an imphash. Only a value no event explains is
classified by its length (32 → MD5, 40 → SHA-1, 64 → SHA-256, 128 → SHA-512).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel

from civicsoc.event import Event
from civicsoc.records import Incident

IocKind = Literal["ipv4", "ipv6", "domain", "md5", "sha1", "sha256", "sha512", "imphash", "hash"]
HASH_KINDS: frozenset[str] = frozenset({"md5", "sha1", "sha256", "sha512", "imphash", "hash"})
BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_HASH_FIELD = re.compile(r"(?:^|\.)(?:hash\.(md5|sha1|sha256|sha512)|pe\.(imphash))$")


class Ioc(BaseModel):
    kind: IocKind
    value: str


def _walk(document: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _walk(value, path + ".")
        else:
            yield path, value


def hash_kinds(events: Iterable[Event]) -> dict[str, str]:
    """Lower-cased hash value → ``md5``/``sha1``/``sha256``/``sha512``/``imphash``, from the fields that
    hold them in ``events`` (``related.hash`` mixes every kind, so it says nothing)."""
    kinds: dict[str, str] = {}
    for event in events:
        for path, value in _walk(event.fields):
            match = _HASH_FIELD.search(path)
            if match is None:
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item:
                    kinds.setdefault(item.lower(), match.group(1) or match.group(2))
    return kinds


def _ip_kind(value: str) -> IocKind | None:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    return "ipv4" if address.version == 4 else "ipv6"


def incident_iocs(incident: Incident, events: Iterable[Event] = ()) -> list[Ioc]:
    """IPs, domains and hashes of ``incident`` in that order, each classified."""
    known = hash_kinds(events)
    found: list[Ioc] = []
    for value in incident.ips:
        kind = _ip_kind(value)
        if kind is not None:
            found.append(Ioc(kind=kind, value=value))
    found += [Ioc(kind="domain", value=value) for value in incident.domains]
    for value in incident.hashes:
        kind = known.get(value.lower()) or BY_LENGTH.get(len(value), "hash")
        found.append(Ioc(kind=kind, value=value.lower()))  # type: ignore[arg-type]
    return found
