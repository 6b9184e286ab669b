"""Value conversions the Windows mappers share: Windows placeholders, numbers, addresses, paths.

Windows writes ``-`` (and sometimes nothing) where a field has no value, pids and logon ids as
decimal or ``0x`` hex, IPv4 peers as IPv4-mapped IPv6 (``::ffff:10.0.0.5``). ECS wants none of
that: no placeholders, integers for numbers, plain addresses for ``ip`` fields. These helpers do
the conversions with ``str`` methods and small caches, never regular expressions, because each
runs several times per event.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

import orjson

PLACEHOLDERS = frozenset({"", "-"})
"""What Windows writes for "no value". Kept verbatim in ``winlog.event_data``, never copied to ECS."""

NULL_GUID = "{00000000-0000-0000-0000-000000000000}"

_HEX_PREFIXES = frozenset({"0x", "0X"})


def text(value: str | None) -> str | None:
    """The value, or ``None`` for a Windows placeholder."""
    if value is None or value in PLACEHOLDERS:
        return None
    return value


def to_int(value: str | None) -> int | None:
    """An integer from Windows' decimal or ``0x`` hex rendering; ``None`` for placeholders or junk.

    Security events write pids as hex (``NewProcessId`` ``0x1a4``), Sysmon as decimal: both occur
    under the same ECS field, which is a ``long``.
    """
    if value is None:
        return None
    # No placeholder test: "" and "-" are neither decimal nor hex and fall through to None below.
    if value.isdigit():
        return int(value)
    if value[:2] in _HEX_PREFIXES:
        digits = value[2:]
        if digits and digits.isalnum():
            try:  # isalnum lets through letters beyond f; int() is the real check, on rare bad input only
                return int(digits, 16)
            except ValueError:
                return None
    return None


@lru_cache(maxsize=16384)
def ip(value: str | None) -> str | None:
    """A plain IP address for an ECS ``ip`` field, or ``None`` for placeholders and non-addresses.

    ``::ffff:1.2.3.4`` becomes ``1.2.3.4``; a zone (``fe80::1%12``) is dropped, as Elasticsearch's
    ``ip`` type rejects it. Cached: a log holds few distinct peers, and ``ipaddress`` is not cheap.
    """
    if value is None or value in PLACEHOLDERS:
        return None
    candidate = value.partition("%")[0]
    if candidate[:7] in ("::ffff:", "::FFFF:") and "." in candidate:
        candidate = candidate[7:]
    try:  # ipaddress is the parser of record; a malformed address is input, not control flow
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    return str(address)


def guid(value: str | None) -> str | None:
    """A GUID as Windows renders it (``{5770385f-c22a-...}``); ``None`` for placeholders and the null GUID.

    The ``evtx`` crate writes GUID-typed values upper-case without braces; Windows' XML (and so
    Winlogbeat's ``process.entity_id``) has them lower-case in braces. Text that already has
    braces is kept as written.
    """
    if value is None or value in PLACEHOLDERS:
        return None
    if value[:1] != "{":
        value = "{" + value.lower() + "}"
    if value == NULL_GUID:
        return None
    return value


def basename(path: str) -> str:
    """The last component of a Windows path (``C:\\a\\b.exe`` → ``b.exe``)."""
    return path.rpartition("\\")[2]


def file_fields(path: str) -> dict[str, str]:
    """ECS ``file.path/name/directory/extension`` for a Windows path (a path ending in ``\\`` is a
    directory: no name, no extension)."""
    directory, separator, name = path.rpartition("\\")
    fields = {"path": path}
    if separator and directory:
        fields["directory"] = directory
    if name:
        fields["name"] = name
        stem, dot, extension = name.rpartition(".")
        if dot and stem and extension:
            fields["extension"] = extension
    return fields


def process_fields(executable: str) -> dict[str, str]:
    """ECS ``process.executable`` and ``process.name`` for an image path."""
    return {"executable": executable, "name": basename(executable)}


def split_account(value: str | None) -> tuple[str | None, str | None]:
    """``DOMAIN\\name`` → (domain, name); a bare name → (None, name); placeholders → (None, None)."""
    account = text(value)
    if account is None:
        return None, None
    domain, separator, name = account.partition("\\")
    if not separator:
        return None, account
    return (domain or None), (name or None)


def user_fields(sid: str | None, name: str | None, domain: str | None) -> dict[str, str]:
    """ECS ``user``-shaped fields (``id``, ``name``, ``domain``) without placeholders.

    A ``name@domain`` name (Kerberos, some logons) is cut at the ``@`` like Winlogbeat does.
    """
    # ``value and value != "-"`` is ``text(value) is not None`` inline: this runs for most Security events.
    fields: dict[str, str] = {}
    if sid and sid != "-":
        fields["id"] = sid
    if name and name != "-":
        fields["name"] = name.partition("@")[0] or name
    if domain and domain != "-":
        fields["domain"] = domain
    return fields


def as_text(value: Any) -> str | list[str]:
    """The text Windows would render for a value the ``evtx`` crate typed while decoding.

    The crate turns BinXML integers into JSON numbers and booleans into JSON booleans; Windows
    (and so Winlogbeat) shows both as text. Keeping every ``winlog.event_data`` value a string keeps
    the Elasticsearch mapping of a name stable across events (``ProcessId`` is a number in Sysmon
    and ``0x…`` text in Security) and matches Sigma's string values (``Initiated: 'true'``).
    """
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(item.__class__ is str for item in value):
        return value
    # Nested elements (UserData of CAPI2 and friends): one JSON text, so a name never maps to an
    # object in one event and a string in another, which Elasticsearch would reject.
    return orjson.dumps(value).decode()
