"""UTF-16 value modifiers (``utf16le``/``wide``, ``utf16be``, ``utf16``) that produce the bytes the Sigma
specification defines, registered in place of pySigma's.

pySigma 1.5 represents an encoded value as a ``str`` and turns it into bytes with UTF-8 for the Base64
modifiers that usually follow. That only works for ASCII: ``utf16`` yields the UTF-8 BOM ``EF BB BF``
instead of the specified ``FF FE`` (so ``|utf16|base64offset|contains`` never matches real PowerShell
``-EncodedCommand`` payloads), and ``wide``/``utf16be`` reject any non-ASCII value. Here the encoded value
is a ``SigmaByteString``: one character per byte (Latin-1), whose ``bytes()`` are exactly those bytes. For
ASCII values the strings are the same as pySigma's, so ``wide`` rules convert to the same queries.

``install()`` registers the classes in pySigma's modifier table (the one dict its rule parser reads); the
rule loader calls it before parsing. Until pySigma fixes this upstream, that registration is the only hook
the parser offers.
"""

from __future__ import annotations

from collections.abc import Callable

from sigma import modifiers as sigma_modifiers
from sigma.modifiers import SigmaUTF16BEModifier, SigmaUTF16Modifier, SigmaWideModifier
from sigma.types import SigmaString, SigmaStringPartType

BOM_LE = b"\xff\xfe"


class SigmaByteString(SigmaString):
    """A Sigma string standing for bytes, one character per byte (Latin-1)."""

    def __bytes__(self) -> bytes:
        return str(self).encode("latin-1")


def encode_string(value: SigmaString, encode: Callable[[str], bytes], prefix: bytes = b"") -> SigmaByteString:
    """Encode the plain parts of ``value`` (wildcards stay wildcards) and prepend ``prefix``."""
    parts: list[SigmaStringPartType] = [prefix.decode("latin-1")] if prefix else []
    for part in value.s:
        parts.append(encode(part).decode("latin-1") if isinstance(part, str) else part)
    encoded = SigmaByteString()
    encoded.s = parts
    encoded.original = str(encoded)
    return encoded


class Utf16LeModifier(SigmaWideModifier):
    """``utf16le``/``wide``: UTF-16 little endian, e.g. ``cmd`` → ``63 00 6d 00 64 00``."""

    def modify(self, val: SigmaString) -> SigmaString:
        return encode_string(val, lambda text: text.encode("utf-16-le"))


class Utf16BeModifier(SigmaUTF16BEModifier):
    """``utf16be``: UTF-16 big endian, e.g. ``cmd`` → ``00 63 00 6d 00 64``."""

    def modify(self, val: SigmaString) -> SigmaString:
        return encode_string(val, lambda text: text.encode("utf-16-be"))


class Utf16BomModifier(SigmaUTF16Modifier):
    """``utf16``: byte order mark then UTF-16 little endian, e.g. ``cmd`` → ``FF FE 63 00 6d 00 64 00``."""

    def modify(self, val: SigmaString) -> SigmaString:
        return encode_string(val, lambda text: text.encode("utf-16-le"), BOM_LE)


REPLACEMENTS: dict[str, type[sigma_modifiers.SigmaModifier]] = {  # type: ignore[type-arg]
    "wide": Utf16LeModifier,
    "utf16le": Utf16LeModifier,
    "utf16be": Utf16BeModifier,
    "utf16": Utf16BomModifier,
}


def install() -> None:
    """Register the modifiers with pySigma's parser (idempotent)."""
    for name, modifier in REPLACEMENTS.items():
        sigma_modifiers.modifier_mapping[name] = modifier
        sigma_modifiers.reverse_modifier_mapping.setdefault(modifier.__name__, name)
