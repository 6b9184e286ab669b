"""Per-tenant rule disable and exceptions, on real events (a SigmaHQ regression sample: NetExec dropping its
helper scripts, 7 Sysmon file-creation events that the rule "HackTool - NetExec File Indicators" must match,
per the sample's info.yml) streamed through the real detector into both real stores.

Values used in exceptions below were read off those events by hand (``host.name`` ``swachchhanda``,
``winlog.record_id`` 129825..129831, each event's ``file.path``), never from the code under test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from civicsoc import audit
from civicsoc.event import Event
from civicsoc.records import AuditRecord, RuleException, RuleSetting
from civicsoc.store import EventQuery, RecordQuery, Scope, Store, TimeRange
from collectors.base import CollectorContext, DeadLetter
from collectors.evtx import read_evtx
from detection.hunt import hunt_store
from detection.rules import RuleSet, load_rules
from detection.stream import StreamDetector
from detection.suppression import (
    ANY_RULE,
    SuppressionCache,
    SuppressionError,
    Suppressions,
    add_exception,
    disable_rule,
    enable_rule,
    list_exceptions,
    load_suppressions,
    revoke_exception,
)
from tests.test_ingest import SHARED

SAMPLE = (SHARED / "sigmahq-regression-data" / "regression_data" / "rules" / "windows" / "file" / "file_event"
          / "file_event_win_hktl_netexec_file_indicators" / "efc21479-9e83-41da-8cf1-122e06ba8db3.evtx")
RULE_FILE = SHARED / "sigmahq-sigma" / "rules" / "windows" / "file" / "file_event" / \
    "file_event_win_hktl_netexec_file_indicators.yml"
RULE_ID = "efc21479-9e83-41da-8cf1-122e06ba8db3"
SAMPLE_EVENTS = 7  # info.yml: match_count 7
NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=30)


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    loaded = load_rules([RULE_FILE])
    assert [rule.id for rule in loaded.loaded] == [RULE_ID]
    return loaded


def sample_events(tenant: str, path: Path = SAMPLE) -> list[Event]:
    items = [item.value for item in read_evtx(path, CollectorContext(tenant=tenant))]
    events = [value for value in items if not isinstance(value, DeadLetter)]
    assert len(events) == SAMPLE_EVENTS
    return events


def alerts_of(store: Store, tenant: str, rule_id: str = RULE_ID) -> list:
    store.refresh()
    page = store.alerts.list(Scope.of(tenant), RecordQuery.where({"rule_id": rule_id}, limit=100))
    return [item.record for item in page.items]


def stream(store: Store, ruleset: RuleSet, *tenants: str, refresh_seconds: float = 0.0) -> StreamDetector:
    detector = StreamDetector(ruleset, store, refresh_seconds=refresh_seconds)
    for tenant in tenants:
        detector(sample_events(tenant))
    return detector


# --- the pure core --------------------------------------------------------------------------------------------

def exception(rule_id: str, conditions: dict[str, list[str]], *, tenant: str = "a", expires: datetime = LATER,
              revoked: datetime | None = None, id: str = "ex-1") -> RuleException:
    return RuleException(id=id, tenant=tenant, rule_id=rule_id, conditions=conditions, reason="known backup job",
                         expires_at=expires, created_by="test", created_at=NOW, revoked_at=revoked)


DOCUMENT = {
    "host": {"name": "SRV-BACKUP-01"},
    "event": {"code": "4688"},
    "winlog": {"record_id": 129828},
    "related": {"user": ["alice", "Backup-Svc"]},
    "dns": {"answers": [{"data": "10.0.0.1"}, {"data": "10.0.0.2"}]},
    "file.path": "C:\\literal dotted key",
}


@pytest.mark.parametrize(("conditions", "holds"), [
    ({"host.name": ["srv-backup-01"]}, True),  # case-insensitive
    ({"host.name": ["srv-backup-02", "SRV-BACKUP-01"]}, True),  # one of the values
    ({"host.name": ["srv-backup"]}, False),  # whole values, not substrings
    ({"related.user": ["backup-svc"]}, True),  # a list field: any element
    ({"dns.answers.data": ["10.0.0.2"]}, True),  # a list of objects is walked into
    ({"winlog.record_id": ["129828"]}, True),  # numbers compare as their text
    ({"file.path": ["c:\\literal dotted key"]}, True),  # a literal dotted key also counts
    ({"host.name": ["srv-backup-01"], "event.code": ["4624"]}, False),  # every field must hold
    ({"host.name": ["srv-backup-01"], "event.code": ["4688"]}, True),
    ({"user.name": ["alice"]}, False),  # a missing field holds no value
])
def test_a_condition_holds_when_the_field_has_one_of_its_values(conditions: dict[str, list[str]],
                                                                  holds: bool) -> None:
    view = Suppressions.build([], [exception("r1", conditions)], NOW)
    assert view.allows("r1", "a", DOCUMENT) is not holds
    if holds:
        assert view.why_not("r1", "a", DOCUMENT).exception_id == "ex-1"


def test_exceptions_apply_only_to_their_tenant_and_rule_and_only_while_active() -> None:
    conditions = {"host.name": ["srv-backup-01"]}
    view = Suppressions.build([], [
        exception("r1", conditions, id="ex-rule"),
        exception(ANY_RULE, {"related.user": ["alice"]}, tenant="b", id="ex-any"),
        exception("r2", conditions, expires=NOW - timedelta(seconds=1), id="ex-expired"),
        exception("r3", conditions, revoked=NOW - timedelta(hours=1), id="ex-revoked"),
    ], NOW)
    assert not view.allows("r1", "a", DOCUMENT)
    assert view.allows("r1", "b", {"host": {"name": "srv-backup-01"}})  # tenant b has no rule exception
    assert view.allows("r9", "a", DOCUMENT)  # another rule
    assert view.why_not("r9", "b", DOCUMENT).exception_id == "ex-any"  # * covers every rule of b
    assert view.allows("r2", "a", DOCUMENT)  # expired
    assert view.allows("r3", "a", DOCUMENT)  # revoked
    assert view.valid_until == LATER


def test_a_disabled_rule_is_suppressed_for_its_tenant_whatever_the_event() -> None:
    setting = RuleSetting(id=RuleSetting.id_for("a", "r1"), tenant="a", rule_id="r1", enabled=False,
                          reason="noisy here", updated_by="test")
    back_on = RuleSetting(id=RuleSetting.id_for("a", "r2"), tenant="a", rule_id="r2", enabled=True,
                          updated_by="test")
    view = Suppressions.build([setting, back_on], [], NOW)
    verdict = view.why_not("r1", "a", {})
    assert verdict is not None and verdict.disabled and verdict.reason == "noisy here"
    assert view.allows("r1", "b", {}) and view.allows("r2", "a", {})


def test_a_correlation_is_excepted_only_when_every_event_is() -> None:
    view = Suppressions.build([], [exception("corr", {"host.name": ["srv-backup-01"]})], NOW)
    other = {"host": {"name": "ws-17"}}
    assert view.check("corr", "a", [DOCUMENT, DOCUMENT]) is not None
    assert view.check("corr", "a", [DOCUMENT, other]) is None


# --- on the stream and in hunts, on both stores ------------------------------------------------------------

def test_a_disabled_rule_stops_alerting_for_that_tenant_only(store: Store, ruleset: RuleSet) -> None:
    disable_rule(store, "ministry", RULE_ID, "alice", "NetExec is our red team's tool here",
                 known_rule_ids={RULE_ID})
    detector = stream(store, ruleset, "ministry", "school")
    assert alerts_of(store, "ministry") == []
    assert len(alerts_of(store, "school")) == SAMPLE_EVENTS
    assert detector.counters.suppressed == SAMPLE_EVENTS
    assert detector.counters.alerts == SAMPLE_EVENTS

    enable_rule(store, "ministry", RULE_ID, "alice", "red team exercise over")
    detector.suppressions.refresh()
    detector(sample_events("ministry"))
    assert len(alerts_of(store, "ministry")) == SAMPLE_EVENTS


def test_an_exception_stops_only_the_events_it_matches(store: Store, ruleset: RuleSet) -> None:
    # Two of the seven events, named by their file path in another case than Sysmon wrote it.
    excepted = {r"c:\users\xodih\appdata\local\temp\_mei121842\nxc\data\procdump\procdump.exe",
                r"C:\USERS\XODIH\APPDATA\LOCAL\TEMP\_MEI121842\NXC\DATA\MSOL_DUMP\ENTRA-SYNC-CREDS.PS1"}
    created = add_exception(store, "ministry", RULE_ID, {"file.path": sorted(excepted)}, "vendor's test run",
                            LATER, "alice", known_rule_ids={RULE_ID})
    detector = stream(store, ruleset, "ministry", "school")
    raised = alerts_of(store, "ministry")
    assert len(raised) == SAMPLE_EVENTS - 2
    assert {alert.fields["file.path"].lower() for alert in raised}.isdisjoint({path.lower() for path in excepted})
    assert len(alerts_of(store, "school")) == SAMPLE_EVENTS  # the exception is ministry's only
    assert detector.counters.suppressed == 2
    assert created.conditions == {"file.path": sorted(excepted)}


def test_an_every_rule_exception_on_a_number_field(store: Store, ruleset: RuleSet) -> None:
    add_exception(store, "ministry", ANY_RULE, {"winlog.record_id": ["129825", "129831"]}, "first and last",
                  LATER, "alice")
    stream(store, ruleset, "ministry")
    record_ids = {alert.fields.get("file.path") for alert in alerts_of(store, "ministry")}
    assert len(record_ids) == SAMPLE_EVENTS - 2
    assert not any(path.endswith(("RestartKeePass.ps1", "Exec_Command_Silent.vbs")) for path in record_ids)


def test_an_expired_exception_does_not_apply(store: Store, ruleset: RuleSet) -> None:
    then = NOW - timedelta(hours=2)
    add_exception(store, "ministry", RULE_ID, {"host.name": ["swachchhanda"]}, "was fine for an hour",
                  then + timedelta(hours=1), "alice", now=then)
    assert list_exceptions(store, Scope.of("ministry")) == []
    assert len(list_exceptions(store, Scope.of("ministry"), include_inactive=True)) == 1
    detector = stream(store, ruleset, "ministry")
    assert len(alerts_of(store, "ministry")) == SAMPLE_EVENTS
    assert detector.counters.suppressed == 0


def test_a_revoked_exception_stops_applying_and_the_audit_chain_holds_every_change(store: Store,
                                                                                    ruleset: RuleSet) -> None:
    disable_rule(store, "ministry", RULE_ID, "alice", "too noisy")
    enable_rule(store, "ministry", RULE_ID, "bob", "tuned instead")
    enable_rule(store, "ministry", RULE_ID, "bob")  # already enabled: no change, no audit record
    created = add_exception(store, "ministry", RULE_ID, {"host.name": ["SWACHCHHANDA"]}, "lab machine", LATER,
                            "alice")
    detector = stream(store, ruleset, "ministry")
    assert alerts_of(store, "ministry") == [] and detector.counters.suppressed == SAMPLE_EVENTS
    revoked = revoke_exception(store, "ministry", created.id, "carol")
    assert revoked.revoked_at is not None
    with pytest.raises(SuppressionError, match="already revoked"):
        revoke_exception(store, "ministry", created.id, "carol")
    detector.suppressions.refresh()
    detector(sample_events("ministry"))
    assert len(alerts_of(store, "ministry")) == SAMPLE_EVENTS

    store.refresh()
    chain = list(audit.iter_chain(store))
    assert audit.verify(chain).ok
    trail = [(r.action, r.actor, r.target) for r in chain]
    setting_target = f"rule_settings/ministry.{RULE_ID}"
    assert trail == [("rule.disable", "alice", setting_target), ("rule.enable", "bob", setting_target),
                     ("rule_exception.create", "alice", f"exceptions/{created.id}"),
                     ("rule_exception.revoke", "carol", f"exceptions/{created.id}")]
    assert (chain[0].before, chain[0].after) == ({"enabled": True, "reason": ""},
                                                 {"enabled": False, "reason": "too noisy"})
    assert chain[1].before == {"enabled": False, "reason": "too noisy"}
    assert chain[2].after["conditions"] == {"host.name": ["SWACHCHHANDA"]} and chain[2].after["reason"] == "lab machine"
    assert chain[3].before == {"revoked_at": None} and chain[3].after["revoked_at"].startswith(str(NOW.year))
    assert all(record.tenant == "ministry" for record in chain)


def test_the_stream_reads_suppressions_once_per_refresh_not_per_event(store: Store, ruleset: RuleSet) -> None:
    cache = SuppressionCache(store, refresh_seconds=3600)
    detector = StreamDetector(ruleset, store, suppressions=cache)
    detector(sample_events("ministry") + sample_events("school"))
    assert detector.counters.alerts == 2 * SAMPLE_EVENTS and cache.loads == 1
    # A change is seen at the next refresh, not before.
    disable_rule(store, "ministry", RULE_ID, "alice", "off")
    detector(sample_events("ministry"))
    assert detector.counters.known_alerts == SAMPLE_EVENTS and detector.counters.suppressed == 0
    cache.refresh()
    detector(sample_events("ministry"))
    assert detector.counters.suppressed == SAMPLE_EVENTS and cache.loads == 2


def test_a_store_hunt_raises_no_alert_for_suppressed_findings(store: Store, ruleset: RuleSet) -> None:
    result = store.append_events(sample_events("ministry") + sample_events("school"))
    assert result.acknowledged == 2 * SAMPLE_EVENTS
    store.refresh()
    disable_rule(store, "school", RULE_ID, "alice", "off")
    add_exception(store, "ministry", RULE_ID, {"winlog.record_id": ["129826"]}, "one known file", LATER, "alice")
    window = EventQuery(TimeRange(datetime(2026, 4, 8, tzinfo=UTC), datetime(2026, 4, 9, tzinfo=UTC)))
    summary = hunt_store(store, Scope.all(), window, ruleset)
    assert summary.matches == 2 * SAMPLE_EVENTS
    assert summary.suppressed == SAMPLE_EVENTS + 1
    assert summary.alerts_created == SAMPLE_EVENTS - 1
    assert alerts_of(store, "school") == []
    assert len(alerts_of(store, "ministry")) == SAMPLE_EVENTS - 1


# --- bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    (lambda s: add_exception(s, "a", RULE_ID, {"host.nmae": ["x"]}, "r", LATER, "t"),
     r"'host.nmae': no civicsoc collector writes this field.*did you mean host.name"),
    (lambda s: add_exception(s, "a", RULE_ID, {"host.name": []}, "r", LATER, "t"), "one or more values"),
    (lambda s: add_exception(s, "a", RULE_ID, {"host.name": ["  "]}, "r", LATER, "t"), "non-empty text"),
    (lambda s: add_exception(s, "a", RULE_ID, {}, "r", LATER, "t"), "at least one FIELD=VALUE"),
    (lambda s: add_exception(s, "a", RULE_ID, {"host.name": ["x"]}, " ", LATER, "t"), "reason: an exception needs"),
    (lambda s: add_exception(s, "a", RULE_ID, {"host.name": ["x"]}, "r", NOW - timedelta(minutes=1), "t"),
     "expected a time in the future"),
    (lambda s: add_exception(s, "a", RULE_ID, {"host.name": ["x"]}, "r", NOW + timedelta(days=400), "t"),
     "at most 366 days ahead"),
    (lambda s: add_exception(s, "a", "nope", {"host.name": ["x"]}, "r", LATER, "t", known_rule_ids={RULE_ID}),
     "rule id 'nope': no loaded rule has it"),
    (lambda s: disable_rule(s, "a", ANY_RULE, "t", "r"), "one at a time"),
    (lambda s: disable_rule(s, "a", RULE_ID, "t", ""), "reason: disabling a rule needs"),
    (lambda s: add_exception(s, "Town Hall", RULE_ID, {"host.name": ["x"]}, "r", LATER, "t"), "tenant 'Town Hall'"),
])
def test_bad_changes_are_refused_with_a_clear_error_and_leave_no_trace(sqlite_store: Store, change: object,
                                                                       message: str) -> None:
    with pytest.raises(SuppressionError, match=message):
        change(sqlite_store)  # type: ignore[operator]
    assert sqlite_store.audit.count(Scope.all(), RecordQuery(sort="seq")) == 0
    assert sqlite_store.records(RuleException).count(Scope.all(), RecordQuery()) == 0


def test_unknown_fields_are_accepted_when_asked_for(sqlite_store: Store) -> None:
    created = add_exception(sqlite_store, "a", RULE_ID, {"zeek.custom_field": ["x"]}, "ndjson import", LATER, "t",
                            allow_unknown_fields=True)
    view = load_suppressions(sqlite_store, Scope.of("a"))
    assert not view.allows(RULE_ID, "a", {"zeek": {"custom_field": "X"}})
    assert created.id in {e.id for e in list_exceptions(sqlite_store, Scope.of("a"))}


# --- the CLI --------------------------------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path: Path) -> tuple[CliRunner, typer.Typer, dict[str, str]]:
    from civicsoc.commands.rules import register

    app = typer.Typer()
    rules_app = typer.Typer()
    register(rules_app)
    app.add_typer(rules_app, name="rules")
    return CliRunner(), app, {"CIVICSOC_DATA_DIR": str(tmp_path)}


def test_cli_disable_enable_and_exceptions(cli: tuple[CliRunner, typer.Typer, dict[str, str]], tmp_path: Path) -> None:
    runner, app, env = cli

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["rules", *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("disable", RULE_ID, "--tenant", "ministry", "--reason", "red team", "--rules", str(RULE_FILE))
    assert code == 0, err
    assert f"rule {RULE_ID} disabled for tenant ministry: red team" in out
    code, _, err = run("disable", "not-a-rule", "--tenant", "ministry", "--reason", "x", "--rules", str(RULE_FILE))
    assert code == 2 and "rule id 'not-a-rule': no loaded rule has it" in err
    code, out, err = run("enable", RULE_ID, "--tenant", "ministry")
    assert code == 0 and "enabled for tenant ministry" in out

    code, out, err = run("exception-add", RULE_ID, "--tenant", "ministry", "--field", "host.name=swachchhanda",
                         "--field", "host.name=other", "--field", "event.code=11", "--reason", "lab", "--expires",
                         "7d", "--rules", str(RULE_FILE))
    assert code == 0, err
    exception_id = out.strip()
    assert exception_id.startswith("ex-")
    assert "host.name=swachchhanda|other" in err
    code, _, err = run("exception-add", RULE_ID, "--tenant", "ministry", "--field", "host.name", "--reason", "x",
                       "--expires", "7d", "--no-check")
    assert code == 2 and "expected FIELD=VALUE" in err
    code, _, err = run("exception-add", RULE_ID, "--tenant", "ministry", "--field", "host.name=x", "--reason", "x",
                       "--expires", "soon", "--no-check")
    assert code == 2 and "--expires 'soon'" in err

    code, out, _ = run("exception-list", "--tenant", "ministry", "--json")
    assert code == 0
    import json

    listed = json.loads(out)
    assert [(e["id"], e["state"], e["conditions"]) for e in listed] == [
        (exception_id, "active", {"host.name": ["swachchhanda", "other"], "event.code": ["11"]})]
    expires = datetime.fromisoformat(listed[0]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    code, out, _ = run("exception-list", "--tenant", "school", "--json")
    assert json.loads(out) == []

    code, out, err = run("exception-revoke", exception_id, "--tenant", "school")
    assert code == 2 and "not found" in err  # another tenant's exception looks absent
    code, out, err = run("exception-revoke", exception_id, "--tenant", "ministry")
    assert code == 0 and f"exception {exception_id} revoked" in out
    code, out, _ = run("exception-list", "--tenant", "ministry", "--all")
    assert exception_id in out and "revoked" in out

    from civicsoc.store.sqlite import SqliteStore

    with SqliteStore(f"sqlite:///{tmp_path / 'civicsoc.db'}") as store:
        chain = list(audit.iter_chain(store))
        assert audit.verify(chain).ok
        assert [r.action for r in chain] == ["rule.disable", "rule.enable", "rule_exception.create",
                                             "rule_exception.revoke"]
        assert {r.actor for r in chain} == {"cli"}
        assert store.records(AuditRecord).count(Scope.all(), RecordQuery(sort="seq")) == 4
