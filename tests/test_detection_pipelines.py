"""The one field mapping: Sigma names → the ECS fields our collectors write, checked on real records.

* Every Windows (logsource, field) pair the SigmaHQ corpus uses is mapped once through the pipeline; on
  every record of the shared EVTX corpus where the raw field is present, the mapped ECS field must hold
  the same value. A difference is a mapper (or mapping) bug unless it is one of the few documented,
  harmless normalizations. The failure message names logsource, field, ECS target, both values, file.
* The processed rule (pipeline applied once, ``Rule.sigma``) converts to exactly the Lucene queries the
  original rule gives with the pipeline applied by pySigma's backend: the stream matcher and the
  Elasticsearch queries read the same fields.
* Linux (auditd) and web (access log) logsources fire on real logs through the real parsers.
"""

from __future__ import annotations

import ipaddress
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sigma.backends.elasticsearch import LuceneBackend
from sigma.collection import SigmaCollection
from sigma.rule import SigmaDetection, SigmaDetectionItem

from civicsoc.event import Event
from collectors.base import CollectorContext
from collectors.ecs.access import parse_access_line
from collectors.ecs.auditd import parse_audit_line
from collectors.evtx import read_evtx
from detection.engine import IndexedEngine, NaiveEngine
from detection.fields import EventView
from detection.index import required_values
from detection.matcher import fields_of
from detection.pipelines import WINDOWS_RAW_FIELDS, civicsoc_pipeline, conversion_backend
from detection.rules import iter_rule_files, load_rules

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIGMAHQ = SHARED / "sigmahq-sigma"
CORPUS_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
EVTX_DIRS = ("evtx-attack-samples", "hayabusa-sample-evtx", "deepbluecli-evtx", "evtx-to-mitre-attack",
             "evtx-parser-samples", "sigmahq-regression-data")
CONTEXT = CollectorContext(tenant="test")

ACCESS_LINE = re.compile(r'\S+ \S+ \S+ \[[^\]]+\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}|-) ')
"""Combined log format up to the status, for computing expectations without the collector's parser."""

WINDOWS_PLACEHOLDERS = frozenset({"-", "", "?"})
"""What Windows and Sysmon write for "no value"; the mappers keep them in winlog.event_data only."""


def evtx_events() -> Iterator[tuple[Path, Event]]:
    for directory in EVTX_DIRS:
        for path in sorted((SHARED / directory).rglob("*.evtx")):
            for item in read_evtx(path, CONTEXT):
                if isinstance(item.value, Event):
                    yield path, item.value


def _detection_items(detection: SigmaDetection) -> Iterator[SigmaDetectionItem]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _detection_items(item)
        else:
            yield item


def _windows_field_usage() -> set[tuple[str | None, str | None, str]]:
    """(category, service, Sigma field) of every field the corpus's Windows rules name, read by pySigma
    alone (no pipeline)."""
    pairs: set[tuple[str | None, str | None, str]] = set()
    for path in iter_rule_files([SIGMAHQ / name for name in CORPUS_DIRS]):
        collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True)
        for rule in collection.rules:
            if getattr(rule, "logsource", None) is None or rule.logsource.product != "windows" or rule.errors:
                continue
            for detection in rule.detection.detections.values():
                for item in _detection_items(detection):
                    if item.field and "." not in item.field:
                        pairs.add((rule.logsource.category, rule.logsource.service, item.field))
    return pairs


def _explained(field: str, raw: tuple[str, ...], mapped: tuple[str, ...]) -> bool:
    """The documented, harmless differences between a raw Windows value and its ECS copy."""
    if not mapped and all(value in WINDOWS_PLACEHOLDERS for value in raw):
        return True  # ECS leaves out Windows' placeholders (rules test them as `null`/'' pairs)
    if field == "Initiated":
        return True  # the pipeline itself turns true/false into egress/ingress in rule and event alike
    if len(raw) == len(mapped) == 1:
        try:  # Sysmon writes IPv6 uncompressed (fe80:0:0:0:...), ECS compressed: the same address
            return ipaddress.ip_address(raw[0]) == ipaddress.ip_address(mapped[0])
        except ValueError:
            return False
    return False


def test_windows_ecs_targets_hold_the_value_sigma_names() -> None:
    pairs = sorted(_windows_field_usage(), key=str)
    assert len(pairs) > 200  # the corpus names hundreds of (logsource, field) pairs
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        for number, (category, service, field) in enumerate(pairs):
            logsource = "".join(f"    {key}: {value}\n" for key, value in
                                (("product", "windows"), ("category", category), ("service", service)) if value)
            for kind, name in (("mapped", field), ("raw", f"winlog.event_data.{field}")):
                (directory / f"{number}-{kind}.yml").write_text(
                    f"title: '{kind}|{category}|{service}|{field}'\nlogsource:\n{logsource}"
                    f"detection:\n    probe:\n        {name}|exists: true\n    condition: probe\n", encoding="utf-8")
        loaded = load_rules([directory])
    assert not loaded.skipped
    mapped_field: dict[tuple[str, str, str], str] = {}
    raw_rules = []
    for rule in loaded.loaded:
        kind, category, service, field = rule.title.split("|")
        assert rule.matcher is not None
        read = fields_of(rule.matcher.tree) - {"winlog.channel", "event.code", "winlog.event_data.EventType"}
        if kind == "mapped":
            if len(read) == 1:  # EventID, Channel ... map onto the logsource condition fields themselves
                (mapped_field[(category, service, field)],) = read
        else:
            raw_rules.append(rule)
    engine = IndexedEngine(raw_rules)  # finds, per record, the logsources whose raw field it carries
    compared: Counter[str] = Counter()
    unexplained: dict[tuple[str, str, str, str], tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
    for path, event in evtx_events():
        view = EventView(event.fields)
        for rule in engine.matching_rules(event.fields):
            _, category, service, field = rule.title.split("|")
            target = mapped_field.get((category, service, field))
            if target is None or target == f"winlog.event_data.{field}":
                continue
            raw, mapped = view.texts(f"winlog.event_data.{field}"), view.texts(target)
            compared[field] += 1
            if tuple(text.lower() for text in raw) != tuple(text.lower() for text in mapped) \
                    and not _explained(field, raw, mapped):
                unexplained.setdefault((category, service, field, target), (path.name, raw, mapped))
    assert compared["Image"] > 1000 and compared["CommandLine"] > 1000  # the check really ran on the corpus
    assert not unexplained, "\n".join(
        f"logsource category={c} service={s}: Sigma {f} -> {t}: raw {raw!r} but ECS {ecs!r} ({file})"
        for (c, s, f, t), (file, raw, ecs) in sorted(unexplained.items()))


def test_fields_ecs_copies_lose_are_read_raw(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text("""
title: raw fields
logsource: {product: windows, category: process_creation}
detection:
    selection:
        User|contains: 'AUTHORI'
        ParentImage|endswith: '\\\\services.exe'
    condition: selection
""", encoding="utf-8")
    (rule,) = load_rules([tmp_path]).loaded
    assert "User" in WINDOWS_RAW_FIELDS
    assert rule.fields >= {"winlog.event_data.User", "process.parent.executable"}
    sysmon = {"winlog": {"channel": "Microsoft-Windows-Sysmon/Operational",
                         "event_data": {"User": "NT AUTHORITY\\SYSTEM", "ParentImage": "C:\\Windows\\services.exe"}},
              "event": {"code": "1"}, "user": {"name": "SYSTEM", "domain": "NT AUTHORITY"},
              "process": {"parent": {"executable": "C:\\Windows\\services.exe"}}}
    assert rule.matcher is not None and rule.matcher(EventView(sysmon))


def test_categories_become_channel_and_event_id_conditions(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text("""
title: category
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\\\\whoami.exe'
    condition: selection
""", encoding="utf-8")
    (rule,) = load_rules([tmp_path]).loaded
    assert rule.matcher is not None
    tree = rule.matcher.tree
    assert required_values(tree, "winlog.channel") == {"microsoft-windows-sysmon/operational", "security"}
    assert required_values(tree, "event.code") == {"1", "4688"}  # Sysmon 1 / Security 4688, as text
    assert "process.executable" in rule.fields  # .caseless stripped: read the base field
    base = {"process": {"executable": "C:\\Windows\\System32\\WHOAMI.EXE"}}
    assert rule.matcher(EventView({**base, "winlog": {"channel": "Security"}, "event": {"code": "4688"}}))
    assert not rule.matcher(EventView({**base, "winlog": {"channel": "Security"}, "event": {"code": "4689"}}))
    assert not rule.matcher(EventView({**base, "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational"},
                                       "event": {"code": "5"}}))  # process termination carries Image too


def test_rules_for_products_we_do_not_collect_are_pinned_to_their_module() -> None:
    loaded = load_rules([SIGMAHQ / "rules" / "cloud" / "aws"])
    assert loaded.loaded
    engine = NaiveEngine(loaded.loaded)
    # A rule made of negations would match anything lacking its fields; pinned, none fires on a foreign event
    assert engine.matching_rules({"event": {"module": "system", "dataset": "system.auth"}, "message": "x"}) == []
    for rule in loaded.loaded:
        assert rule.matcher is not None
        assert required_values(rule.matcher.tree, "event.module") == {"aws"}


def test_processed_rules_convert_to_the_queries_of_the_original_rules() -> None:
    """``Rule.sigma`` + ``conversion_backend()`` == the rule file + ``LuceneBackend(civicsoc_pipeline())``."""
    loaded = load_rules([SIGMAHQ / "rules" / "windows" / "builtin", SIGMAHQ / "rules" / "windows" / "process_creation",
                         SIGMAHQ / "rules" / "web", SIGMAHQ / "rules" / "linux" / "auditd"])
    processed_backend = conversion_backend()
    converted = 0
    for rule in loaded.detections[::5]:  # every 5th rule: all logsource families, ~320 rules
        assert rule.path is not None
        fresh = SigmaCollection.from_yaml(rule.path.read_text(encoding="utf-8"))
        (original,) = [item for item in fresh.rules if str(item.id) == rule.id]
        expected = LuceneBackend(civicsoc_pipeline()).convert_rule(original)
        assert processed_backend.convert_rule(rule.sigma) == expected, rule.path
        converted += 1
    assert converted > 300


@pytest.fixture(scope="module")
def corpus_engine() -> IndexedEngine:
    return IndexedEngine(load_rules([SIGMAHQ / name for name in CORPUS_DIRS]).detections)


def test_auditd_rules_fire_on_a_real_audit_log(corpus_engine: IndexedEngine) -> None:
    """OTRF's atomic dd test (``dd if=/dev/zero bs=1 count=1``): SigmaHQ's binary padding rule (EXECVE with
    ``dd`` and ``if=`` but no ``of=``) must fire on the EXECVE record, and only there."""
    path = SHARED / "otrf-security-datasets/datasets/atomic/linux/defense_evasion/host/" \
                    "sh_binary_padding_dd_2020-11-10081941.log"
    fired: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        mapped = parse_audit_line(line)
        event = CONTEXT.event(mapped.fields, timestamp=mapped.timestamp, source=str(path), position=number,
                              module=mapped.module, dataset=mapped.dataset, original=line)
        for rule in corpus_engine.matching_rules(event.fields):
            fired.setdefault(rule.title, []).append(line.split(" ", 1)[0])
    assert fired.get("Binary Padding - Linux") == ["type=EXECVE"]


def test_webserver_rules_fire_on_real_scanner_traffic(corpus_engine: IndexedEngine) -> None:
    """Netsparker's scan of DVWA against SigmaHQ's "SQL Injection Strings In URI" (``cs-method: GET``, any
    of its keywords anywhere in the event, ``sc-status`` not 404). The expectation is computed from the
    raw log line and the rule's YAML alone: every line meeting those terms fires, and no other."""
    (rule_file,) = [path for path in (SIGMAHQ / "rules" / "web").rglob("*.yml")
                    if "title: SQL Injection Strings In URI" in path.read_text(encoding="utf-8")]
    # Sigma wildcards hold in keywords too ('select * ' is "select", anything, " "): as regular expressions
    keywords = [re.compile(".*".join(".".join(map(re.escape, part.split("?"))) for part in word.split("*")),
                           re.IGNORECASE | re.DOTALL)
                for word in yaml.safe_load(rule_file.read_text(encoding="utf-8"))["detection"]["keywords"]]
    path = SHARED / "apache-http-logs-scans" / "netsparker.txt"
    fired = expected = 0
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        mapped = parse_access_line(line)
        event = CONTEXT.event(mapped.fields, timestamp=mapped.timestamp, source=str(path), position=number,
                              module=mapped.module, dataset=mapped.dataset, original=line)
        hit = any(rule.title == "SQL Injection Strings In URI" for rule in corpus_engine.matching_rules(event.fields))
        inner = line[1:-1] if line.startswith('"') and line.endswith('"') else line  # the CSV export's quotes
        parsed = ACCESS_LINE.match(inner)
        assert parsed is not None, line
        request, status = parsed.group("request"), parsed.group("status")
        should = request.startswith("GET ") and status != "404" and any(word.search(line) for word in keywords)
        assert hit == should, line
        fired += hit
        expected += should
    assert fired == expected > 100
