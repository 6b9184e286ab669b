"""Keyed pseudonymization: stable tokens under one key, different under another, which values count as
personal, and the key's origin (environment or a file created once)."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from civicsoc.errors import ConfigError
from civicsoc.records import Incident, Severity
from reports.redaction import KEY_ENV, KEY_FILE, Redactor, is_internal_ip, load_key, pseudonym

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def test_a_token_is_the_truncated_hmac_sha256_of_kind_and_normalized_value() -> None:
    # computed here with hmac directly: user names lose their domain and case before hashing
    expected = hmac.new(KEY, b"user\x00jdoe", hashlib.sha256).hexdigest()[:12]
    assert pseudonym(KEY, "user", "CORP\\JDoe") == f"user-{expected}"


def test_same_value_same_token_and_another_key_another_token() -> None:
    redactor, other = Redactor(KEY), Redactor(OTHER_KEY)
    assert redactor.user("CORP\\jdoe") == redactor.user("jdoe") == redactor.user("JDOE") == Redactor(KEY).user("jdoe")
    assert redactor.host("WS-0042.town-a.local") == redactor.host("ws-0042")
    assert redactor.ip("fd12:3456:0:0:0:0:0:7") == redactor.ip("FD12:3456::7")  # one address, two spellings
    assert redactor.user("jdoe") != other.user("jdoe")
    assert redactor.host("ws-0042") != other.host("ws-0042")
    assert redactor.user("jdoe") != redactor.user("asmith")
    assert redactor.user("jdoe").startswith("user-") and redactor.host("ws-1").startswith("host-")
    assert redactor.user("jane.doe@town-a.example").startswith("email-")


@pytest.mark.parametrize(("address", "internal"), [
    ("10.1.2.3", True), ("172.16.0.1", True), ("172.31.255.255", True), ("172.32.0.1", False),
    ("192.168.10.20", True), ("127.0.0.1", True), ("169.254.1.1", True), ("fd12:3456::7", True),
    ("fe80::1", True), ("::1", True), ("::ffff:10.0.0.1", True), ("203.0.113.9", False), ("8.8.8.8", False),
    ("2001:db8::1", False), ("not an ip", False),
])
def test_internal_addresses_are_rfc1918_ula_loopback_and_link_local(address: str, internal: bool) -> None:
    assert is_internal_ip(address) is internal
    redactor = Redactor(KEY)
    assert (redactor.ip(address) != address) is (internal and address != "not an ip")


def test_free_text_loses_names_emails_and_internal_addresses_but_keeps_indicators() -> None:
    incident = Incident(id="i1", tenant="town-a", title="t", severity=Severity.high,
                        first_seen="2026-03-01T00:00:00Z", last_seen="2026-03-01T00:00:00Z",
                        users=["CORP\\jdoe", "SYSTEM", "IE10WIN7$"], hosts=["ws-0042.town-a.local", "ie10win7"],
                        assignee="alice.analyst")
    redactor = Redactor.for_incidents(KEY, [incident])
    text = ("jdoe logged on to WS-0042 (ws-0042.town-a.local) from 10.20.30.40 and fd12:3456::7, then sent "
            "files to 203.0.113.9 and evil.example.net; IE10WIN7$ on ie10win7 ran as SYSTEM at 18:28:20; "
            "hash 53748b0cd4c78af5ef1d4e77f3c873af; mail jane.doe@town-a.example; assigned alice.analyst")
    out = redactor.text(text)
    for personal in ("jdoe", "ws-0042", "10.20.30.40", "fd12:3456::7", "ie10win7", "jane.doe", "alice.analyst"):
        assert personal not in out.lower(), (personal, out)
    for kept in ("203.0.113.9", "evil.example.net", "53748b0cd4c78af5ef1d4e77f3c873af", "SYSTEM", "18:28:20"):
        assert kept in out, (kept, out)
    assert redactor.user("CORP\\jdoe") in out and redactor.host("ws-0042") in out
    assert out.count(redactor.host("ws-0042")) == 2  # the short and the full name are one machine
    assert redactor.user("SYSTEM") == "SYSTEM"  # a built-in account names no person


def test_the_key_comes_from_the_environment_or_a_file_made_once(tmp_path: Path) -> None:
    assert load_key(tmp_path, {KEY_ENV: "s" * 40}) == b"s" * 40
    with pytest.raises(ConfigError, match=KEY_ENV):
        load_key(tmp_path, {KEY_ENV: "short"})
    first = load_key(tmp_path, {})
    path = tmp_path / KEY_FILE
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 64 and load_key(tmp_path, {}) == first
    assert load_key(tmp_path / "elsewhere", {}) != first
    path.write_text("tiny\n")
    with pytest.raises(ConfigError, match=KEY_FILE):
        load_key(tmp_path, {})
