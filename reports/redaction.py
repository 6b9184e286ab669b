"""Keyed pseudonymization of personal data in exports that leave the SOC.

Which values count as personal: user names (of the events and of staff: assignees, comment authors,
who did a playbook step), e-mail addresses, host names (a workstation is usually one person's), and
internal IP addresses (RFC 1918, unique-local ``fc00::/7``, loopback, link-local: they identify a
machine inside the agency). Public IP addresses, domains and file hashes are indicators that others need
to act on, so they stay.

A value becomes ``<kind>-<12 hex digits>``: the first 48 bits of HMAC-SHA256 over the kind and the
normalized value, under a key that never leaves the server (``CIVICSOC_REDACTION_KEY``, or
``<data dir>/redaction.key`` created on first use). The same value maps to the same token within an export
and across exports made with the same key, so a CSIRT can still tell "the same account on three hosts"
without learning who; without the key, a token cannot be reversed by hashing guessed names.

Normalization decides what "the same value" is: user names without the ``DOMAIN\\`` prefix and
case-insensitively (Windows compares them so), host names by their first label
(``ws-0042.town-a.local`` and ``ws-0042`` are one machine), IP addresses in canonical form.

Free text (titles, comments, step notes) is rewritten too: every user and host name the export's
records name, every e-mail address and every internal IP address found by pattern. A name that no record
names (a colleague mentioned in a comment) cannot be recognized: comments for sharing should not carry
such names in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from civicsoc.errors import ConfigError
from civicsoc.records import Incident
from detection.entities import GENERIC_USERS

KEY_ENV = "CIVICSOC_REDACTION_KEY"
KEY_FILE = "redaction.key"
MIN_KEY_CHARS = 32
TOKEN_HEX = 12
MIN_LITERAL = 3
"""Names shorter than this are tokenized in their own fields but not searched for in free text, where
they would replace ordinary words."""
SYSTEM_ACTORS = frozenset({"civicsoc", "cli", "system", "test-setup"})
"""Audit actors that are civicsoc itself, not a person."""

INTERNAL_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "127.0.0.0/8", "::1/128",  # loopback
    "169.254.0.0/16", "fe80::/10",  # link-local
    "fc00::/7",  # unique local addresses (RFC 4193)
))

_EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"
_IPV4 = r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)"
_IPV6 = r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w]+)?(?![\w:])"
_BEFORE, _AFTER = r"(?<![A-Za-z0-9_\-])", r"(?![A-Za-z0-9_\-])"


def load_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """The pseudonymization key: ``CIVICSOC_REDACTION_KEY`` if set, else the key file in ``data_dir``,
    created (random, 256 bits, mode 0600) the first time. Losing the key only means new tokens."""
    environ = os.environ if environ is None else environ
    if (configured := environ.get(KEY_ENV)) is not None:
        if len(configured.strip()) < MIN_KEY_CHARS:
            raise ConfigError([f"{KEY_ENV}: expected a secret of at least {MIN_KEY_CHARS} characters "
                               f"(e.g. `openssl rand -hex 32`), got {len(configured.strip())}"])
        return configured.strip().encode()
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            pass
        else:
            with os.fdopen(handle, "w") as file:
                file.write(secrets.token_hex(32) + "\n")
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < MIN_KEY_CHARS:
        raise ConfigError([f"{path}: expected a redaction key of at least {MIN_KEY_CHARS} characters; "
                           "delete the file to have a new one made"])
    return text.encode()


def is_internal_ip(value: str) -> bool:
    """RFC 1918, ULA, loopback or link-local (IPv4-mapped IPv6 addresses are judged by their IPv4 part)."""
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in INTERNAL_NETWORKS if network.version == address.version)


def _normalize(kind: str, value: str) -> str:
    text = value.strip()
    if kind == "user":
        return text.rsplit("\\", 1)[-1].lower()
    if kind == "host":
        return text.lower().split(".", 1)[0] if not _looks_like_ip(text) else text.lower()
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            return text.lower()
    return text.lower()


def _looks_like_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """``user-3f2a9c0d41be``: the token of ``value`` under ``key``."""
    digest = hmac.new(key, f"{kind}\x00{_normalize(kind, value)}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:TOKEN_HEX]}"


def is_personal_user(name: str) -> bool:
    """Built-in Windows accounts (SYSTEM, LOCAL SERVICE...) and civicsoc's own actors name no person."""
    bare = name.strip().rsplit("\\", 1)[-1].lower()
    return bool(bare) and bare not in GENERIC_USERS and name.strip().lower() not in GENERIC_USERS \
        and bare not in SYSTEM_ACTORS


class Redactor:
    """Pseudonymizes the values of one export. Build it with every user and host name the export's
    records carry (``for_incidents``), so free text anywhere in the export is rewritten consistently."""

    def __init__(self, key: bytes, *, users: Iterable[str] = (), hosts: Iterable[str] = ()) -> None:
        if not key:
            raise ValueError("redaction needs a non-empty key")
        self.key = key
        self.issued: dict[str, str] = {}
        """token → kind, for the export's audit record (how many values were pseudonymized)."""
        literals: dict[str, tuple[str, str]] = {}  # lower-cased text → (kind, value)
        for user in users:
            if not is_personal_user(user):
                continue
            kind = "email" if "@" in user else "user"
            literals[user.strip().lower()] = (kind, user)
            bare = user.strip().rsplit("\\", 1)[-1]
            literals.setdefault(bare.lower(), (kind, bare))
        for host in hosts:
            name = host.strip()
            if not name or _looks_like_ip(name):
                continue
            literals.setdefault(name.lower(), ("host", name))
            literals.setdefault(name.lower().split(".", 1)[0], ("host", name))
        self._literals = {text: found for text, found in literals.items() if len(text) >= MIN_LITERAL}
        names = sorted(self._literals, key=lambda text: (-len(text), text))
        alternatives = [f"(?P<email>{_EMAIL})", f"(?P<ipv4>{_IPV4})", f"(?P<ipv6>{_IPV6})"]
        if names:
            alternatives.append(f"(?P<name>{_BEFORE}(?:{'|'.join(re.escape(n) for n in names)}){_AFTER})")
        # Hand-written rather than a PII library (presidio and the like guess names with NLP models): here the
        # names are known from the records, and only e-mail and IP addresses need patterns.
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)

    @classmethod
    def for_incidents(cls, key: bytes, incidents: Iterable[Incident], *, staff: Iterable[str] = ()) -> Redactor:
        """A redactor that knows the users and hosts of ``incidents`` plus ``staff`` (assignees, authors)."""
        users: set[str] = {name for name in staff if name}
        hosts: set[str] = set()
        for incident in incidents:
            users.update(incident.users)
            hosts.update(incident.hosts)
            if incident.assignee:
                users.add(incident.assignee)
        return cls(key, users=sorted(users), hosts=sorted(hosts))

    def _token(self, kind: str, value: str) -> str:
        token = pseudonym(self.key, kind, value)
        self.issued[token] = kind
        return token

    def user(self, value: str) -> str:
        if not is_personal_user(value):
            return value
        return self._token("email" if "@" in value else "user", value)

    def host(self, value: str) -> str:
        if not value.strip():
            return value
        if _looks_like_ip(value.strip()):
            return self.ip(value)
        return self._token("host", value)

    def ip(self, value: str) -> str:
        """Internal addresses become tokens; public ones stay (they are indicators)."""
        return self._token("ip", value) if is_internal_ip(value) else value

    def domain(self, value: str) -> str:
        """Domains stay, unless one names a host of the export (an internal machine's DNS name)."""
        return self.text(value)

    def text(self, value: str) -> str:
        """Free text with every known name, e-mail address and internal IP address replaced."""
        return self._pattern.sub(self._replace, value) if value else value

    def _replace(self, match: re.Match[str]) -> str:
        found = match.group(0)
        if match.lastgroup == "email":
            return self._token("email", found)
        if match.lastgroup in ("ipv4", "ipv6"):
            return self._token("ip", found) if is_internal_ip(found) else found
        kind, value = self._literals.get(found.lower(), ("user", found))
        return self._token(kind, value)

    def users(self, values: Iterable[str]) -> list[str]:
        return [self.user(value) for value in values]

    def hosts(self, values: Iterable[str]) -> list[str]:
        return [self.host(value) for value in values]

    def ips(self, values: Iterable[str]) -> list[str]:
        return [self.ip(value) for value in values]

    def texts(self, values: Iterable[str]) -> list[str]:
        return [self.text(value) for value in values]
