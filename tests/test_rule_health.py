"""Rule health on real rules, real collector output and both real stores.

Hand-checked facts the expectations rest on (read in the sources named, not taken from detection.health):
- SigmaHQ ``proc_creation_lnx_susp_java_children`` (d292e0af) reads ``ParentImage``; detection/pipelines.py
  LINUX_FIELDS maps it to ``process.parent.executable``; collectors/ecs/auditd.py writes only
  ``process.parent.pid`` (and syslog/auth carry no process parents).
- SigmaHQ ``proxy_download_susp_dyndns`` (195c1119) reads ``c-uri-extension``; NETWORK_FIELDS maps it to
  ``url.extension``, which no collector module mentions (grep collectors/).
- WEB_FIELDS has no ``c-uri-extension``, so a ``category: webserver`` rule keeps the Sigma name.
- SigmaHQ's own logsource table (tests/thor.yml): process_creation is Sysmon 1 or Security 4688, ps_script is
  event 4104 of the two PowerShell operational channels.
- The NetExec sample (tests/test_suppression.py) holds 7 Sysmon event-11 records of 2026-04-08.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from civicsoc.store import Scope, Store
from collectors.base import CollectorContext, DeadLetter
from collectors.sources import FileReport, detect_kind, read_files
from detection.health import (
    PASS_THROUGH_PREFIXES,
    PRODUCED_FIELDS,
    HealthTotals,
    logsource_filters,
    rule_health,
    unmapped_fields,
)
from detection.rules import LogSource, load_rules
from detection.stream import StreamDetector
from detection.suppression import add_exception, disable_rule
from tests.test_ingest import SHARED
from tests.test_suppression import RULE_FILE, RULE_ID, SAMPLE_EVENTS, sample_events

SIGMA = SHARED / "sigmahq-sigma" / "rules"
LINUX_JAVA_CHILDREN = SIGMA / "linux" / "process_creation" / "proc_creation_lnx_susp_java_children.yml"
PROXY_DYNDNS = SIGMA / "web" / "proxy_generic" / "proxy_download_susp_dyndns.yml"
SYSMON = "Microsoft-Windows-Sysmon/Operational"
WEB_RULE = """\
title: Web scan for PHP files
id: 7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a01
logsource:
    category: webserver
detection:
    selection:
        c-uri-extension: php
        cs-method: GET
    condition: selection
level: low
"""
PS_RULE = """\
title: Script block mentions mimikatz
id: 7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a02
logsource:
    product: windows
    category: ps_script
detection:
    selection:
        ScriptBlockText|contains: mimikatz
    condition: selection
level: high
"""
BROKEN_RULE = "title: Broken\nid: 7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a03\nlogsource:\n  product: windows\n" \
              "detection:\n  sel:\n    a: 1\n  condition: sel and\n"


@pytest.fixture
def rule_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "web.yml").write_text(WEB_RULE)
    (folder / "ps.yml").write_text(PS_RULE)
    (folder / "broken.yml").write_text(BROKEN_RULE)
    return folder


# --- the produced-fields table against real collector output -------------------------------------------------

FAMILY_OF_KIND = {"evtx": "windows", "auth": "linux", "syslog": "linux", "audit": "linux", "pcap": "network",
                  "access": "web"}
SAMPLES = [
    SHARED / "evtx-attack-samples",
    SHARED / "sigmahq-regression-data" / "regression_data" / "rules" / "windows" / "file",
    SHARED / "loghub" / "OpenSSH" / "OpenSSH_2k.log",
    SHARED / "loghub" / "Linux" / "Linux_2k.log",
    SHARED / "otrf-security-datasets" / "datasets" / "atomic" / "linux",
    SHARED / "pcap-attack",
    SHARED / "dns-tunnel-pcaps",
    SHARED / "apache-http-logs-scans",
]


def field_paths(node: object, prefix: str, family: str, out: set[str]) -> None:
    """Leaf paths of an ECS document, cut at the family's pass-through objects (their keys are the source's)."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        path = f"{prefix}{key}"
        if (path + ".").startswith(PASS_THROUGH_PREFIXES.get(family, ())):
            continue
        if isinstance(value, dict):
            field_paths(value, path + ".", family, out)
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for item in value:
                field_paths(item, path + ".", family, out)
        else:
            out.add(path)


def test_the_produced_fields_table_covers_what_the_collectors_write() -> None:
    seen: dict[str, set[str]] = {family: set() for family in PRODUCED_FIELDS}
    events = 0
    kinds: dict[Path, str] = {}
    for path, item in read_files(SAMPLES, CollectorContext(tenant="t"), FileReport()):
        if isinstance(item.value, DeadLetter):
            continue
        kind = kinds.get(path) or kinds.setdefault(path, detect_kind(path))
        family = FAMILY_OF_KIND[kind]
        field_paths(item.value.fields, "", family, seen[family])
        events += 1
    assert events > 10_000
    for family, fields in seen.items():
        assert fields, f"no {family} events in the samples"
        missing = sorted(fields - PRODUCED_FIELDS[family])
        assert not missing, f"{family} collectors write fields detection.health does not know: {missing}"


# --- unmapped fields -------------------------------------------------------------------------------------------

def test_unmapped_fields_name_the_sigma_field_and_why(rule_dir: Path) -> None:
    ruleset = load_rules([LINUX_JAVA_CHILDREN, PROXY_DYNDNS, RULE_FILE, rule_dir / "web.yml"])
    by_id = ruleset.by_id()

    linux = unmapped_fields(by_id["d292e0af-9a18-420c-9525-ec0ac3936892"])
    assert [(f.sigma_field, f.event_field) for f in linux] == [("ParentImage", "process.parent.executable")]
    assert "linux events do not carry it" in linux[0].reason

    proxy = unmapped_fields(by_id["195c1119-ef07-4909-bb12-e66f5e07bf3c"])
    assert [(f.sigma_field, f.event_field) for f in proxy] == [("c-uri-extension", "url.extension")]
    assert "no civicsoc collector writes it" in proxy[0].reason

    web = unmapped_fields(by_id["7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a01"])
    assert [(f.sigma_field, f.event_field) for f in web] == [(None, "c-uri-extension")]
    assert web[0].reason.startswith("not mapped")

    assert unmapped_fields(by_id[RULE_ID]) == ()  # Sysmon file events carry every field it reads


def test_rules_of_uncollected_logsources_have_every_field_unmapped() -> None:
    aws = SIGMA / "cloud" / "aws" / "cloudtrail"
    ruleset = load_rules([next(aws.glob("*.yml"))])
    (rule,) = ruleset.loaded
    found = unmapped_fields(rule)
    assert found and all(f.reason.startswith("not mapped") and "aws/cloudtrail" in f.reason for f in found)
    assert {f.event_field for f in found} == set(rule.fields) - {"event.module"}


# --- what "events of a logsource" means -------------------------------------------------------------------------

@pytest.mark.parametrize(("logsource", "expected"), [
    (LogSource("process_creation", "windows"), (
        {"event.code": ("1",), "winlog.channel": (SYSMON,)},
        {"event.code": ("4688",), "winlog.channel": ("Security",)},
    )),
    (LogSource("ps_script", "windows"), (
        {"event.code": ("4104",), "winlog.channel": ("Microsoft-Windows-PowerShell/Operational",
                                                     "PowerShellCore/Operational")},
    )),
    (LogSource("file_event", "windows"), ({"event.code": ("11",), "winlog.channel": (SYSMON,)},)),
    (LogSource(None, "windows", "security"), ({"winlog.channel": ("Security",)},)),
    (LogSource(None, "linux", "auth"), ({"event.dataset": ("system.auth",)},)),
    (LogSource("webserver"), ({"event.dataset": ("apache.access", "nginx.access")},)),
    (LogSource(None, "aws", "cloudtrail"), ({"event.module": ("aws",)},)),
    (LogSource("file_access", "windows"), ({},)),  # no event log carries it: the pipeline adds no condition
])
def test_logsource_filters_are_the_pipeline_conditions(logsource: LogSource, expected: tuple) -> None:
    assert logsource_filters(logsource) == expected


# --- the whole view on a store ----------------------------------------------------------------------------------

def test_health_reports_events_matches_settings_and_problems(store: Store, rule_dir: Path) -> None:
    ruleset = load_rules([RULE_FILE, PROXY_DYNDNS, rule_dir])
    ministry, school = sample_events("ministry"), sample_events("school")
    assert store.append_events(ministry + school).acknowledged == 2 * SAMPLE_EVENTS
    StreamDetector(ruleset, store)(ministry)
    disable_rule(store, "school", RULE_ID, "alice", "not for schools")
    add_exception(store, "ministry", RULE_ID, {"host.name": ["other-host"]}, "vendor", datetime.now(UTC)
                  + timedelta(days=1), "alice")
    store.refresh()
    # The sample's events are of 2026-04-08: look at the day after them.
    newest = max(event.timestamp for event in ministry)
    now = newest + timedelta(hours=1)
    sysmon_file_events = sum(1 for e in ministry if e.get("winlog.channel") == SYSMON and str(e.get("event.code"))
                             == "11")

    health = {item.id: item for item in rule_health(ruleset, store, Scope.of("ministry"), now)}
    netexec = health[RULE_ID]
    assert netexec.loaded and netexec.ok and netexec.kind == "detection"
    assert netexec.logsource == "windows/file_event"
    assert netexec.events_recent == sysmon_file_events == SAMPLE_EVENTS  # ministry's only, not school's
    assert netexec.alerts == SAMPLE_EVENTS and netexec.last_matched == newest
    assert netexec.enabled and netexec.disabled_for == () and netexec.exceptions == 1

    proxy = health["195c1119-ef07-4909-bb12-e66f5e07bf3c"]
    assert proxy.events_recent == 0 and proxy.alerts == 0 and proxy.last_matched is None
    assert proxy.problems == ("unmapped fields: url.extension", "no proxy events in the last 1 day")
    powershell = health["7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a02"]
    assert powershell.problems == ("no windows/ps_script events in the last 1 day",)
    broken = health["7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a03"]
    assert not broken.loaded and broken.skip_reason and broken.problems[0].startswith("not loaded: ")

    everywhere = {item.id: item for item in rule_health(ruleset, store, Scope.all(), now)}
    assert everywhere[RULE_ID].events_recent == 2 * SAMPLE_EVENTS
    assert not everywhere[RULE_ID].enabled and everywhere[RULE_ID].disabled_for == ("school",)
    schools = {item.id: item for item in rule_health(ruleset, store, Scope.of("school"), now)}
    assert schools[RULE_ID].alerts == 0 and schools[RULE_ID].last_matched is None
    assert not schools[RULE_ID].enabled

    # A window that ends before the sample: no recent events, so the rule is flagged.
    before = {item.id: item for item in rule_health(ruleset, store, Scope.of("ministry"), newest - timedelta(days=2))}
    assert before[RULE_ID].events_recent == 0 and not before[RULE_ID].ok

    totals = HealthTotals.of(list(health.values()))
    assert (totals.rules, totals.loaded, totals.skipped, totals.unmapped, totals.fired) == (5, 4, 1, 2, 1)


# --- the CLI -----------------------------------------------------------------------------------------------------

def test_cli_health_lists_rules_as_json_and_as_a_table(tmp_path: Path, rule_dir: Path) -> None:
    from civicsoc.commands.rules import register
    from civicsoc.store.sqlite import SqliteStore

    ruleset = load_rules([RULE_FILE])
    with SqliteStore(f"sqlite:///{tmp_path / 'civicsoc.db'}") as store:
        store.setup()
        events = sample_events("ministry")
        store.append_events(events)
        StreamDetector(ruleset, store)(events)

    app, rules_app = typer.Typer(), typer.Typer()
    register(rules_app)
    app.add_typer(rules_app, name="rules")
    runner = CliRunner()
    env = {"CIVICSOC_DATA_DIR": str(tmp_path)}
    # The sample is of 2026-04-08: a ten-year window holds it whenever this runs.
    args = ["rules", "health", "--tenant", "ministry", "--rules", str(RULE_FILE), "--rules", str(rule_dir),
            "--recent", "3650d"]
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    rules = {rule["id"]: rule for rule in document["rules"]}
    netexec = rules[RULE_ID]
    assert (netexec["events_recent"], netexec["alerts"], netexec["problems"]) == (SAMPLE_EVENTS, SAMPLE_EVENTS, [])
    assert netexec["last_matched"] == max(e.timestamp for e in events).isoformat()
    assert rules["7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a01"]["unmapped"][0]["event_field"] == "c-uri-extension"
    assert document["totals"]["skipped"] == 1 and document["totals"]["rules"] == len(rules)

    result = runner.invoke(app, [*args, "--json", "--only-problems"], env=env)
    problems = {rule["id"] for rule in json.loads(result.stdout)["rules"]}
    assert RULE_ID not in problems and "7c1a5c0e-0d4e-4d53-9d2e-2f1d3c9d0a03" in problems
    assert all(rule["problems"] for rule in json.loads(result.stdout)["rules"])

    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0 and RULE_ID in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith(f"{len(rules)} rules: ")

    result = runner.invoke(app, [*args[:-1], "soon"], env=env)
    assert result.exit_code == 2 and "duration 'soon'" in result.stderr
