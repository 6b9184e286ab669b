"""Correlation rules on real event sequences and on hand-built ones.

Real sequences come from the shared EVTX samples, read through the real reader and matched by the real
engine; the expected correlation matches are computed independently, from the raw records as the
``evtx`` crate renders them (no civicsoc mapper, no matcher), with the window semantics documented in
``detection.correlation`` written out as plain loops.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from evtx import PyEvtxParser

from civicsoc.event import Event
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.correlation import CorrelationEngine, CorrelationMatch
from detection.engine import IndexedEngine, Match
from detection.rules import RuleSet, load_rules

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPEC = SHARED / "sigma-correlation" / "sigma-specification" / "tests" / "schema" / "correlation"
HAYABUSA = SHARED / "sigma-correlation" / "hayabusa-rules" / "hayabusa" / "builtin" / "Security" / "LogonLogoff" \
    / "Logon"
CONTEXT = CollectorContext(tenant="test")


def hunt(rules: RuleSet, paths: Iterable[Path]) -> tuple[list[CorrelationMatch], dict[str, str]]:
    """Match the files' events with the rules and feed the matches, in event-time order, to the correlations.
    Returns the correlation matches and event id → EVTX record id (to compare with raw records)."""
    engine = IndexedEngine(rules.loaded)
    correlations = CorrelationEngine(rules.correlations)
    matches: list[Match] = []
    record_of: dict[str, str] = {}
    for path in paths:
        for item in read_evtx(path, CONTEXT):
            if isinstance(item.value, Event):
                record_of[item.value.id] = item.value.fields["winlog"]["record_id"]
                matches.extend(engine.match(item.value))
    matches.sort(key=lambda match: (match.event.timestamp, int(record_of[match.event.id])))
    out: list[CorrelationMatch] = []
    for match in matches:
        out.extend(correlations.feed(match))
    out.extend(correlations.flush())
    return out, record_of


def raw_records(path: Path) -> list[dict[str, Any]]:
    """The file's records as the evtx crate renders them: what the expectations are computed from."""
    records = []
    for record in PyEvtxParser(str(path)).records_json():
        event = orjson.loads(record["data"])["Event"]
        system = event["System"]
        time = datetime.fromisoformat(system["TimeCreated"]["#attributes"]["SystemTime"]).astimezone(UTC)
        data = {name: str(value) for name, value in (event.get("EventData") or {}).items() if name != "#attributes"}
        number = system.get("EventRecordID", record["event_record_id"])  # exports renumber only the headers
        records.append({"record": str(number), "time": time, "code": str(system["EventID"]),
                        "channel": system.get("Channel"), "data": data})
    records.sort(key=lambda record: (record["time"], int(record["record"])))
    return records


def sliding_count(items: list[tuple[datetime, str]], threshold: int, span: timedelta) -> list[tuple[str, ...]]:
    """The documented event_count semantics for one group: fire when ``threshold`` matches lie within
    ``span``; the fired matches leave the window."""
    fired, window = [], []
    for time, record in items:
        window = [(t, r) for t, r in window if t >= time - span] + [(time, record)]
        if len(window) >= threshold:
            fired.append(tuple(r for _, r in window))
            window = []
    return fired


def hayabusa_rule(tmp_path: Path, name: str) -> Path:
    """Hayabusa writes ``references:`` as a string, which pySigma rejects ("references must be a list");
    the copy fixes only that."""
    text = (HAYABUSA / name).read_text(encoding="utf-8")
    fixed = re.sub(r"^references: (https?://\S+)$", r"references: [\1]", text, flags=re.MULTILINE)
    target = tmp_path / name
    target.write_text(fixed, encoding="utf-8")
    return target


# --- real sequences ---------------------------------------------------------------------------------------

def test_hayabusa_password_guessing_on_smb_password_guessing(tmp_path: Path) -> None:
    rules = load_rules([hayabusa_rule(tmp_path, "Sec_4625_Med_LogonFail_WrongPW_PW-Guessing_Correlation.yml")])
    assert rules.skipped == ()
    (correlation,) = rules.correlations
    assert correlation.correlation is not None
    assert correlation.correlation.group_by == (
        "winlog.event_data.TargetUserName", "winlog.event_data.TargetDomainName", "winlog.event_data.IpAddress",
        "winlog.event_data.LogonType", "winlog.event_data.ProcessName", "winlog.event_data.LogonProcessName")
    path = SHARED / "deepbluecli-evtx" / "evtx" / "smb-password-guessing-security.evtx"
    found, record_of = hunt(rules, [path])

    groups: dict[tuple[str, ...], list[tuple[datetime, str]]] = defaultdict(list)
    for raw in raw_records(path):  # the base rule: 4625, SubStatus 0xc000006a, not (IpAddress '-' or user ending in $)
        data = raw["data"]
        if raw["code"] != "4625" or raw["channel"] != "Security" or data.get("SubStatus", "").lower() != "0xc000006a":
            continue
        if data.get("IpAddress") == "-" or data.get("TargetUserName", "").endswith("$"):
            continue
        key = tuple(data.get(field) for field in ("TargetUserName", "TargetDomainName", "IpAddress", "LogonType",
                                                  "ProcessName", "LogonProcessName"))
        groups[key].append((raw["time"], raw["record"]))
    expected = sorted(records for items in groups.values() for records in sliding_count(items, 5, timedelta(minutes=5)))
    assert len(expected) > 500  # 3560 guesses at one account: hundreds of bursts of five
    got = sorted(tuple(record_of[event_id] for event_id in match.event_ids) for match in found)
    assert got == expected
    assert all(match.rule is correlation and match.value == 5 for match in found)


def test_hayabusa_password_spray_counts_distinct_users(tmp_path: Path) -> None:
    rules = load_rules([hayabusa_rule(tmp_path, "Sec_4648_Med_ExplicitLogon_PW-Spray_Correlation.yml")])
    assert rules.skipped == ()
    path = SHARED / "deepbluecli-evtx" / "evtx" / "password-spray.evtx"
    found, record_of = hunt(rules, [path])

    window: list[tuple[datetime, str, str]] = []
    expected = []
    # group-by IpAddress and "Computer" (Hayabusa's name; not an EventData field, so the same for all)
    by_ip: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for raw in raw_records(path):
        data = raw["data"]
        if raw["code"] == "4648" and raw["channel"] == "Security" and data.get("IpAddress") != "-":
            by_ip[data.get("IpAddress", "")].append((raw["time"], raw["record"], data.get("TargetUserName", "")))
    for items in by_ip.values():
        window = []
        for time, record, user in items:
            window = [entry for entry in window if entry[0] >= time - timedelta(minutes=5)] + [(time, record, user)]
            if len({entry[2] for entry in window}) >= 5:
                expected.append(tuple(entry[1] for entry in window))
                window = []
    assert expected  # the sample is a spray: many accounts from one address
    assert sorted(tuple(record_of[event_id] for event_id in match.event_ids) for match in found) == sorted(expected)


def test_brute_force_then_success_on_real_logons(tmp_path: Path) -> None:
    """Three failed logons of an account within 5 minutes, then its successful logon (a chained correlation:
    temporal_ordered over an event_count correlation and a rule)."""
    (tmp_path / "rules.yml").write_text("""
title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
level: low
---
title: Successful logon
name: successful_logon
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4624}
    condition: selection
level: informational
---
title: Repeated failed logons
name: repeated_failures
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 5m
    condition: {gte: 3}
level: medium
---
title: Brute force then success
correlation:
    type: temporal_ordered
    rules: [repeated_failures, successful_logon]
    group-by: [TargetUserName]
    timespan: 5m
level: high
""", encoding="utf-8")
    rules = load_rules([tmp_path])
    assert rules.skipped == ()
    path = SHARED / "evtx-parser-samples" / "samples" / "Security_with_size_t.evtx"
    found, record_of = hunt(rules, [path])
    chained = [match for match in found if match.rule.title == "Brute force then success"]

    span = timedelta(minutes=5)
    failures: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    bursts: dict[str, list[tuple[datetime, tuple[str, ...]]]] = defaultdict(list)
    expected = []
    pending: dict[str, tuple[datetime, tuple[str, ...]] | None] = {}
    for raw in raw_records(path):
        if raw["channel"] != "Security":
            continue
        user = raw["data"].get("TargetUserName")
        if raw["code"] == "4625":
            window = [(t, r) for t, r in failures[user] if t >= raw["time"] - span] + [(raw["time"], raw["record"])]
            failures[user] = window
            if len(window) >= 3:
                burst = tuple(r for _, r in window)
                bursts[user].append((raw["time"], burst))
                pending[user] = (raw["time"], burst)  # a correlation match happens when its last event does
                failures[user] = []
        elif raw["code"] == "4624":
            started = pending.get(user)
            if started is not None and raw["time"] - started[0] <= span:
                expected.append((user, (*started[1], raw["record"])))
                pending[user] = None
    assert expected, "the sample holds failed logons followed by a success"
    got = [(dict(match.group)["winlog.event_data.TargetUserName"],
            tuple(record_of[event_id] for event_id in match.event_ids)) for match in chained]
    assert got == expected
    assert any(user == "Administrator" for user, _ in got)


# --- the specification's correlation test files -----------------------------------------------------------

SPEC_BASE_RULES = """
title: Failed logins
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
---
title: Recon a
name: recon_cmd_a
logsource: {product: windows, category: process_creation}
detection:
    selection: {Image|endswith: '\\\\whoami.exe'}
    condition: selection
---
title: Recon b
name: recon_cmd_b
logsource: {product: windows, category: process_creation}
detection:
    selection: {Image|endswith: '\\\\net.exe'}
    condition: selection
---
title: Recon c
name: recon_cmd_c
logsource: {product: windows, category: process_creation}
detection:
    selection: {Image|endswith: '\\\\ipconfig.exe'}
    condition: selection
---
title: Rule a
name: rule_a_id
logsource: {category: proxy}
detection:
    selection: {cs-method: POST}
    condition: selection
---
title: Website access
name: website_access
logsource: {category: proxy}
detection:
    selection: {cs-method: GET}
    condition: selection
---
title: Process creation
name: process_creation
logsource: {product: windows, category: process_creation}
detection:
    selection: {Image|exists: true}
    condition: selection
"""


def test_the_specifications_correlation_files_load(tmp_path: Path) -> None:
    (tmp_path / "base.yml").write_text(SPEC_BASE_RULES, encoding="utf-8")
    for spec_file in sorted(SPEC.glob("*.yml")):
        if spec_file.name != "event_count_ecs.yml":  # it reuses event_count.yml's id: loaded on its own below
            (tmp_path / spec_file.name).write_text(spec_file.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = load_rules([tmp_path])
    by_title = {(rule.title, rule.correlation.type): rule.correlation for rule in loaded.correlations
                if rule.correlation is not None}
    count = by_title[("Many failed logins", "event_count")]
    assert (count.group_by, count.operator, count.threshold, count.timespan) == (
        ("winlog.computer_name",), "gte", 100, timedelta(hours=1))
    ecs_only = tmp_path / "ecs"
    ecs_only.mkdir()
    (ecs_only / "base.yml").write_text(SPEC_BASE_RULES, encoding="utf-8")
    (ecs_only / "event_count_ecs.yml").write_text((SPEC / "event_count_ecs.yml").read_text(encoding="utf-8"),
                                                  encoding="utf-8")
    (ecs_rule,) = load_rules([ecs_only]).correlations
    assert ecs_rule.correlation is not None and ecs_rule.correlation.group_by == ("dns.question.name",)
    distinct = by_title[("Failed login", "value_count")]
    assert distinct.value_field == "winlog.event_data.User" and distinct.timespan == timedelta(days=1)
    temporal = by_title[("Recon", "temporal")]
    ordered = by_title[("Recon ordered", "temporal_ordered")]
    assert temporal.rule_ids == ordered.rule_ids and len(ordered.rule_ids) == 3
    assert ordered.group_by == ("winlog.computer_name", "winlog.event_data.User")
    assert by_title[("Possible Exfiltration to Website", "value_sum")].value_field == "bytes_sent"
    assert by_title[("Suspicious average network traffic", "value_avg")].threshold == 500
    # value_percentile without a percentile cannot be evaluated: skipped, and the reason says so
    (percentile,) = [skip for skip in loaded.skipped if "value_percentile" in skip.reason]
    assert "percentile" in percentile.reason and percentile.file.name == "value_percentile.yml"
    assert [skip.file.name for skip in loaded.skipped] == ["value_percentile.yml"]


# --- semantics on hand-built sequences --------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(number: int, seconds: float, **fields: Any) -> Event:
    document: dict[str, Any] = {"event": {"module": "civicsoc_test"}, **fields}
    return Event.from_ecs(document, tenant="t", timestamp=T0 + timedelta(seconds=seconds), id=f"e{number}")


@pytest.fixture
def semantics(tmp_path: Path) -> RuleSet:
    (tmp_path / "rules.yml").write_text("""
title: a
name: a
logsource: {product: civicsoc_test}
detection: {selection: {kind: a}, condition: selection}
---
title: b
name: b
logsource: {product: civicsoc_test}
detection: {selection: {kind: b}, condition: selection}
---
title: distinct targets
correlation:
    type: value_count
    rules: [a]
    group-by: [host]
    timespan: 10m
    condition: {field: target, gte: 3}
---
title: quiet host
correlation:
    type: event_count
    rules: [b]
    group-by: [host]
    timespan: 1m
    condition: {lt: 2}
---
title: a and b
correlation:
    type: temporal
    rules: [a, b]
    group-by: [user]
    aliases:
        user:
            a: account
            b: login
    timespan: 30s
""", encoding="utf-8")
    loaded = load_rules([tmp_path])
    assert loaded.skipped == ()
    return loaded


def run(rules: RuleSet, events: list[Event], *, flush: bool = True, **options: Any) -> list[CorrelationMatch]:
    engine = IndexedEngine(rules.loaded)
    correlations = CorrelationEngine(rules.correlations, **options)
    out = []
    for item in events:
        for match in engine.match(item):
            out.extend(correlations.feed(match))
    if flush:
        out.extend(correlations.flush())
    return out


def test_value_count_counts_distinct_values_per_group(semantics: RuleSet) -> None:
    events = [event(1, 0, kind="a", host="h1", target="x"), event(2, 10, kind="a", host="h1", target="x"),
              event(3, 20, kind="a", host="h2", target="y"), event(4, 30, kind="a", host="h1", target="y"),
              event(5, 700, kind="a", host="h1", target="z"),  # 11m40s after the first: x (e1, e2) left
              event(6, 710, kind="a", host="h1", target="w")]
    found = [match for match in run(semantics, events) if match.rule.title == "distinct targets"]
    assert found == []  # h1 never has 3 distinct targets within 10 minutes: {x, y}, then {z, w}
    events.append(event(7, 720, kind="a", host="h1", target="v"))  # {z, w, v} within 20 s
    found = [match for match in run(semantics, events) if match.rule.title == "distinct targets"]
    assert [(match.group, match.event_ids, match.value) for match in found] == [
        ((("host", "h1"),), ("e5", "e6", "e7"), 3.0)]


def test_lt_is_judged_when_the_window_closes(semantics: RuleSet) -> None:
    events = [event(1, 0, kind="b", host="quiet"), event(2, 5, kind="b", host="busy"),
              event(3, 10, kind="b", host="busy"), event(4, 200, kind="a", host="other", target="x")]
    found = [match for match in run(semantics, events, flush=False) if match.rule.title == "quiet host"]
    assert found == []  # event 4 is no input of this correlation: nothing tells it time moved on
    engine = CorrelationEngine(semantics.correlations)
    indexed = IndexedEngine(semantics.loaded)
    out = []
    for item in events[:3]:
        for match in indexed.match(item):
            out.extend(engine.feed(match))
    assert out == []
    closed = engine.advance(T0 + timedelta(seconds=200))
    assert [(match.group, match.event_ids, match.value) for match in closed] == [((("host", "quiet"),), ("e1",), 1.0)]
    assert engine.flush() == []  # busy had 2 (not < 2); quiet was already judged


def test_temporal_uses_aliases_and_the_timespan(semantics: RuleSet) -> None:
    events = [event(1, 0, kind="a", account="bob", host="h", target="t"), event(2, 40, kind="b", login="bob"),
              event(4, 55, kind="b", login="alice"), event(5, 60, kind="a", account="BOB", host="h", target="t")]
    found = [match for match in run(semantics, events) if match.rule.title == "a and b"]
    # e1/e2 are 40 s apart (> 30 s); e5 says BOB: group values are compared exactly, so it is another group
    assert found == []
    events.append(event(6, 65, kind="a", account="bob", host="h", target="t"))
    found = [match for match in run(semantics, events) if match.rule.title == "a and b"]
    assert [(match.group, match.event_ids, match.value) for match in found] == [((("user", "bob"),), ("e2", "e6"), 2.0)]


def test_same_input_same_output_and_bounded_state(semantics: RuleSet) -> None:
    events = [event(number, number, kind="a", host=f"h{number % 50}", target=f"t{number % 7}")
              for number in range(1, 2000)]
    first = run(semantics, events)
    second = run(semantics, events)
    assert [(m.rule.title, m.group, m.event_ids) for m in first] == [(m.rule.title, m.group, m.event_ids)
                                                                      for m in second]
    assert {match.id for match in first} == {match.id for match in second}
    bounded = CorrelationEngine(semantics.correlations, max_groups=10)
    indexed = IndexedEngine(semantics.loaded)
    for item in events:
        for match in indexed.match(item):
            bounded.feed(match)
    assert bounded.stats.groups_evicted > 0
    assert all(len(windows) <= 10 for windows in bounded._windows.values())
