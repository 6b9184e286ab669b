"""civicsoc's own rules (rules/): they load cleanly, fire on real attacks of their kind, and stay
silent on thousands of real events of other kinds."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from civicsoc.event import Event
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.findings import Finding
from detection.hunt import hunt_files
from detection.rules import RuleSet, builtin_rules_path, load_rules

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BRUTE_FORCE = SHARED / "evtx-to-mitre-attack" / "TA0006-Credential Access" / "T1110.xxx-Brut force"
KERBRUTE = BRUTE_FORCE / "ID4768-4771-Kerberos user enumeration (Kerbrute).evtx"
VALID_USER_BRUTE = BRUTE_FORCE / "ID4771-Kerberos brutforce with valid user.evtx"
SMB_GUESSING = SHARED / "deepbluecli-evtx" / "evtx" / "smb-password-guessing-security.evtx"
SPRAY = "Password Spraying Against Windows Accounts From One Source"
GUESSING = "Password Guessing Against One Windows Account"
WINDOW = timedelta(minutes=10)


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    loaded = load_rules([builtin_rules_path()])
    assert loaded.skipped == (), loaded.skipped
    return loaded


def hunt(ruleset: RuleSet, *paths: Path) -> list[Finding]:
    found: list[Finding] = []
    hunt_files(list(paths), ruleset, found.append)
    return found


def failed_logons(path: Path) -> list[Event]:
    """Failed logons read straight from the event data, the way an analyst would filter them."""
    events = [item.value for item in read_evtx(path, CollectorContext(tenant="t")) if isinstance(item.value, Event)]
    failed = []
    for event in events:
        data = event.fields["winlog"]["event_data"]
        code = event.fields["event"]["code"]
        if data.get("TargetUserName", "").endswith("$"):
            continue
        if code == "4625" or (code == "4771" and data.get("Status", "").lower() == "0x18"):
            failed.append(event)
    return sorted(failed, key=lambda e: e.timestamp)


def most_in_window(events: list[Event], group: str, distinct: str | None) -> int:
    """The largest count (of events, or of distinct ``distinct`` values) of one group within 10 minutes."""
    by_group: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_group[event.fields["winlog"]["event_data"].get(group, "")].append(event)
    best = 0
    for members in by_group.values():
        for start, first in enumerate(members):
            window = [e for e in members[start:] if e.timestamp - first.timestamp <= WINDOW]
            size = len({e.fields["winlog"]["event_data"].get(distinct) for e in window}) if distinct else len(window)
            best = max(best, size)
    return best


def test_every_own_rule_loads(ruleset: RuleSet) -> None:
    assert {rule.title for rule in ruleset.correlations} >= {SPRAY, GUESSING}
    assert all(rule.techniques for rule in ruleset.loaded)


def test_spraying_fires_where_one_address_fails_on_ten_accounts(ruleset: RuleSet) -> None:
    assert most_in_window(failed_logons(KERBRUTE), "IpAddress", "TargetUserName") >= 10
    titles = {finding.rule.title for finding in hunt(ruleset, KERBRUTE)}
    assert SPRAY in titles
    spray = next(f for f in hunt(ruleset, KERBRUTE) if f.rule.title == SPRAY)
    users = {e.fields["winlog"]["event_data"]["TargetUserName"] for e in spray.events}
    addresses = {e.fields["winlog"]["event_data"]["IpAddress"] for e in spray.events}
    assert len(users) >= 10 and len(addresses) == 1


@pytest.mark.parametrize("path", [VALID_USER_BRUTE, SMB_GUESSING], ids=["kerberos", "smb"])
def test_guessing_fires_on_twenty_failures_for_one_account(ruleset: RuleSet, path: Path) -> None:
    assert most_in_window(failed_logons(path), "TargetUserName", None) >= 20
    findings = [f for f in hunt(ruleset, path) if f.rule.title == GUESSING]
    assert findings
    for finding in findings:
        assert len({e.fields["winlog"]["event_data"]["TargetUserName"] for e in finding.events}) == 1
        assert finding.events[-1].timestamp - finding.events[0].timestamp <= WINDOW


def test_silent_on_other_real_attacks(ruleset: RuleSet) -> None:
    """The spraying rules stay silent on other attacks (the other own rules have tests of their own,
    and the ransomware ones rightly fire on the Atomic Red Team ransomware run in these samples)."""
    quiet = [SHARED / "evtx-attack-samples", SHARED / "hayabusa-sample-evtx", SHARED / "sigmahq-regression-data"]
    findings = hunt(ruleset, *quiet)
    assert [(f.rule.title, f.source) for f in findings if f.rule.title in {SPRAY, GUESSING}] == []
