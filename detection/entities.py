"""The entities of an event — hosts, users, IP addresses, domains, hashes — that alerts carry and
incidents are grouped by. Pure: an ECS dict in, sorted unique values out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from civicsoc.event import get_field

HOST_FIELDS = ("host.name", "host.hostname", "winlog.computer_name")
USER_FIELDS = ("user.name", "user.target.name", "user.effective.name", "source.user.name", "related.user")
IP_FIELDS = ("source.ip", "destination.ip", "client.ip", "server.ip", "related.ip")
DOMAIN_FIELDS = ("dns.question.name", "url.domain", "destination.domain", "tls.client.server_name")
HASH_FIELDS = ("process.hash.md5", "process.hash.sha1", "process.hash.sha256", "file.hash.md5", "file.hash.sha1",
               "file.hash.sha256", "process.pe.imphash", "related.hash")

# Accounts every Windows machine has: they name no person, so they never tie two alerts together.
GENERIC_USERS = frozenset({
    "", "-", "system", "local service", "network service", "anonymous logon", "nt authority\\system",
    "localsystem", "dwm-1", "dwm-2", "dwm-3", "umfd-0", "umfd-1", "umfd-2", "n/a", "unknown", "root",
})
NOT_A_VALUE = frozenset({"", "-", "::", "0.0.0.0", "127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True, slots=True)
class Entities:
    hosts: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()


def _values(document: dict[str, Any], fields: tuple[str, ...], *, lower: bool) -> tuple[str, ...]:
    found: set[str] = set()
    for field in fields:
        value = get_field(document, field)
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str | int) and not isinstance(item, bool):
                text = str(item).strip()
                if text not in NOT_A_VALUE:
                    found.add(text.lower() if lower else text)
    return tuple(sorted(found))


def entities_of(document: dict[str, Any]) -> Entities:
    """Hosts are compared without case (Windows names are case-blind), so they are lowercased."""
    return Entities(
        hosts=_values(document, HOST_FIELDS, lower=True),
        users=_values(document, USER_FIELDS, lower=False),
        ips=_values(document, IP_FIELDS, lower=False),
        domains=_values(document, DOMAIN_FIELDS, lower=True),
        hashes=_values(document, HASH_FIELDS, lower=True),
    )


def linking_users(users: list[str] | tuple[str, ...]) -> list[str]:
    """The users that may tie alerts together: everyone but the built-in accounts."""
    return [user for user in users if user.lower() not in GENERIC_USERS]
