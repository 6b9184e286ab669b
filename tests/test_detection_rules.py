"""Loading rules: every rule pySigma parses is loaded; everything else is skipped with a precise reason.

The reference for "pySigma parses it" is pySigma on its own (``SigmaCollection`` plus condition parsing,
no pipeline); the loader must load exactly those rules and name a reason for each of the others.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError

from civicsoc.config import RulesSettings
from civicsoc.errors import ConfigError
from detection.rules import RuleSet, builtin_rules_path, iter_rule_files, load_configured_rules, load_rules

SIGMAHQ = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sigmahq-sigma"
ALL_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance",
            "deprecated", "unsupported")
PLACEHOLDER = re.compile(r"%(\w[\w-]*)%")


def pysigma_parses(paths: list[Path]) -> tuple[Counter[tuple[Path, str]], set[Path]]:
    """(file, title) of every rule pySigma parses without error, conditions included (counted: a
    multi-document file may repeat a title); and the files containing an |expand placeholder."""
    parsed: Counter[tuple[Path, str]] = Counter()
    with_placeholders: set[Path] = set()
    for path in iter_rule_files(paths):
        text = path.read_text(encoding="utf-8")
        if "|expand" in text:
            with_placeholders.add(path)
        collection = SigmaCollection.from_yaml(text, collect_errors=True, collect_filters=True,
                                               resolve_references=False)
        for rule in collection.rules:
            if rule.errors:
                continue
            try:
                for condition in rule.detection.parsed_condition:
                    _ = condition.parsed
            except SigmaError:
                continue
            parsed[(path, rule.title)] += 1
    return parsed, with_placeholders


@pytest.fixture(scope="module")
def corpus() -> RuleSet:
    return load_rules([SIGMAHQ / name for name in ALL_DIRS])


def test_every_rule_pysigma_parses_is_loaded(corpus: RuleSet) -> None:
    parsed, with_placeholders = pysigma_parses([SIGMAHQ / name for name in ALL_DIRS])
    loaded = Counter((rule.path, rule.title) for rule in corpus.loaded)
    not_loaded = parsed - loaded
    # The only rules pySigma parses that the engine does not load use |expand placeholders without values
    for path, title in sorted(not_loaded):
        assert path in with_placeholders, (path, title)
        reasons = [skip.reason for skip in corpus.skipped if skip.file == path]
        assert reasons and all("placeholder %" in reason and "no configured values" in reason for reason in reasons)
    assert not loaded - parsed  # nothing loads that pySigma itself rejects
    print(f"\nSigmaHQ corpus: {corpus.files} files, {parsed.total()} rules pySigma parses, {len(corpus.loaded)} "
          f"loaded, {not_loaded.total()} skipped for unconfigured placeholders, {len(corpus.skipped)} skipped in all")


def test_every_skip_names_its_file_and_a_reason(corpus: RuleSet) -> None:
    for skip in corpus.skipped:
        assert skip.file.is_file()
        assert skip.reason.strip()
    pipes = [skip for skip in corpus.skipped if "pipe syntax" in skip.reason]
    assert pipes and all(skip.file.parts[-3] in ("deprecated", "unsupported") or "unsupported" in skip.file.parts
                         or "deprecated" in skip.file.parts for skip in pipes)


def test_the_core_corpus_loads_entirely_once_placeholders_have_values() -> None:
    dirs = [SIGMAHQ / name for name in ("rules", "rules-emerging-threats", "rules-threat-hunting",
                                        "rules-placeholder", "rules-compliance")]
    names: set[str] = set()
    for path in iter_rule_files(dirs):
        text = path.read_text(encoding="utf-8")
        if "|expand" in text:
            names.update(PLACEHOLDER.findall(text))
    loaded = load_rules(dirs, placeholders={name: [f"placeholder-value-{name}"] for name in names})
    assert loaded.skipped == ()
    assert len(loaded.loaded) > 3700


def test_rule_metadata_and_attack_tags(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text("""
title: Encoded PowerShell
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
status: test
description: why it matters
author: someone
references: [https://example.org/a]
tags:
    - attack.execution
    - attack.t1059.001
    - attack.defense_evasion
    - attack.g0016
    - cve.2021-44228
logsource: {product: windows, category: process_creation}
detection:
    selection:
        CommandLine|contains: ' -enc '
    condition: selection
falsepositives: [Admin scripts]
level: high
""", encoding="utf-8")
    (rule,) = load_rules([tmp_path]).loaded
    assert rule.id == "6f3e2987-db24-4c78-a860-b4f4095a7095"
    assert (rule.title, rule.level, rule.status, rule.author) == ("Encoded PowerShell", "high", "test", "someone")
    assert rule.techniques == ("T1059.001",)
    assert rule.tactics == ("execution", "defense-evasion")
    assert rule.tags == ("attack.execution", "attack.t1059.001", "attack.defense_evasion", "attack.g0016",
                         "cve.2021-44228")
    assert rule.logsource.category == "process_creation" and rule.logsource.product == "windows"
    assert rule.falsepositives == ("Admin scripts",)
    assert rule.references == ("https://example.org/a",)
    assert rule.path == tmp_path / "r.yml"
    assert rule.generates_alerts and rule.matcher is not None and rule.correlation is None
    assert "process.command_line" in rule.fields


def test_broken_files_and_rules_are_skipped_with_pysigmas_reason(tmp_path: Path) -> None:
    (tmp_path / "a_bad_yaml.yml").write_text("title: x\ndetection: [unclosed\n", encoding="utf-8")
    (tmp_path / "b_bad_modifier.yml").write_text("""
title: bad modifier
id: 11111111-1111-4111-8111-111111111111
logsource: {product: windows}
detection:
    selection:
        Image|nosuchmodifier: x
    condition: selection
""", encoding="utf-8")
    (tmp_path / "c_bad_condition.yml").write_text("""
title: bad condition
id: 22222222-2222-4222-8222-222222222222
logsource: {product: windows}
detection:
    selection:
        Image: x
    condition: selection and missing_detection
""", encoding="utf-8")
    (tmp_path / "d_bad_regex.yml").write_text("""
title: bad regex
id: 33333333-3333-4333-8333-333333333333
logsource: {product: windows}
detection:
    selection:
        Image|re: 'a(b'
    condition: selection
""", encoding="utf-8")
    (tmp_path / "e_good.yml").write_text("""
title: good
id: 44444444-4444-4444-8444-444444444444
logsource: {product: windows}
detection:
    selection:
        Image: x
    condition: selection
""", encoding="utf-8")
    (tmp_path / "f_duplicate.yml").write_text((tmp_path / "e_good.yml").read_text(encoding="utf-8"), encoding="utf-8")
    loaded = load_rules([tmp_path])
    assert [rule.title for rule in loaded.loaded] == ["good"]
    reasons = {skip.file.name: skip for skip in loaded.skipped}
    assert set(reasons) == {"a_bad_yaml.yml", "b_bad_modifier.yml", "c_bad_condition.yml", "d_bad_regex.yml",
                            "f_duplicate.yml"}
    assert "not valid YAML" in reasons["a_bad_yaml.yml"].reason and "line 2" in reasons["a_bad_yaml.yml"].reason
    assert reasons["b_bad_modifier.yml"].rule_id == "11111111-1111-4111-8111-111111111111"
    assert "nosuchmodifier" in reasons["b_bad_modifier.yml"].reason
    assert "missing_detection" in reasons["c_bad_condition.yml"].reason
    assert "a(b" in reasons["d_bad_regex.yml"].reason
    duplicate = reasons["f_duplicate.yml"].reason
    assert "duplicate rule id" in duplicate and "e_good.yml" in duplicate
    assert loaded.files == 6


def test_multi_document_rules_get_distinct_ids(tmp_path: Path) -> None:
    (tmp_path / "multi.yml").write_text("""
action: global
title: multi
id: 55555555-5555-4555-8555-555555555555
detection:
    condition: selection
---
logsource: {product: windows, service: sysmon}
detection:
    selection: {EventID: 1}
---
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4688}
""", encoding="utf-8")
    loaded = load_rules([tmp_path])
    assert loaded.skipped == ()
    assert [rule.id for rule in loaded.loaded] == ["55555555-5555-4555-8555-555555555555",
                                                   "55555555-5555-4555-8555-555555555555:1"]


def test_filters_narrow_the_rules_they_name(tmp_path: Path) -> None:
    """The specification's filter example (``filter_1.yml``): the filter ANDs its condition into the rule."""
    spec = SIGMAHQ.parent / "sigma-correlation" / "sigma-specification" / "tests" / "schema" / "filter" / "filter_1.yml"
    (tmp_path / "filter.yml").write_text(spec.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "rule.yml").write_text("""
title: Data Compressed - rar.exe
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\\\\rar.exe'
    condition: selection
""", encoding="utf-8")
    (rule,) = load_rules([tmp_path]).loaded
    assert "winlog.event_data.User" in rule.fields  # the filter's `User|startswith: 'adm_'` became part of it


def test_current_attack_tactics_of_sigmahq_rules_are_kept(corpus: RuleSet) -> None:
    """ATT&CK v19 split Defense Evasion into Stealth and Defense Impairment; SigmaHQ's current tags use
    the new names. Expected tactics are read from each file's YAML tags, independently of the loader."""
    checked = 0
    by_path: dict[Path, list] = {}
    for rule in corpus.loaded:
        if rule.path is not None and rule.path.suffix == ".yml":
            by_path.setdefault(rule.path, []).append(rule)
    for path in sorted(by_path)[:4000]:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
        if len(documents) != 1 or len(by_path[path]) != 1:
            continue  # multi-document files: which rule has which tags is the loader's business
        tags = [str(t).lower() for t in documents[0].get("tags") or []]
        expected = [t.removeprefix("attack.").replace("_", "-") for t in tags
                    if t.startswith("attack.") and not re.fullmatch(r"attack\.(t\d{4}(\.\d{3})?|[gs]\d{4})", t)]
        if not {"stealth", "defense-impairment"} & set(expected):
            continue
        assert list(by_path[path][0].tactics) == expected, path
        checked += 1
    assert checked > 1000  # 944 files tagged attack.stealth and 378 attack.defense-impairment in this copy


def test_configured_rules_are_the_builtin_then_the_configured_then_the_extra_each_folder_once(tmp_path: Path) -> None:
    builtin = builtin_rules_path()
    folder = SIGMAHQ / "rules" / "windows" / "builtin" / "security" / "account_management"
    own_files, their_files = len(list(iter_rule_files([builtin]))), len(list(iter_rule_files([folder])))
    assert own_files and their_files

    both = load_configured_rules(RulesSettings(paths=[folder]), [folder, Path(str(folder) + "/")])
    assert both.files == own_files + their_files  # the folder named three times is read once
    assert {rule.id for rule in load_rules([builtin]).loaded} <= {rule.id for rule in both.loaded}
    only_theirs = load_configured_rules(RulesSettings(builtin=False), [folder])
    assert only_theirs.files == their_files

    missing = tmp_path / "no-such-rules"
    with pytest.raises(ConfigError, match=f"rules path {re.escape(str(missing))}: does not exist"):
        load_configured_rules(RulesSettings(paths=[missing]))
