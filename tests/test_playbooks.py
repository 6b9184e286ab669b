"""Playbook files and matching: the shipped library validates, broken files are reported with file, line and
path, and incidents built from real SigmaHQ rules get the playbook an analyst would pick."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from civicsoc.commands.playbooks import playbooks_app
from civicsoc.records import Incident, Severity
from detection.rules import ATTACK_TACTICS, Rule, load_rules
from playbooks.loader import (
    BUILTIN_DIR,
    SCHEMA_PATH,
    PlaybookLoadError,
    check_files,
    load_playbooks,
)
from playbooks.matching import match_playbooks
from playbooks.model import Playbook, UnknownPlaybook

REQUIRED = {
    # the incidents the issue lists, and techniques each playbook must cover (ATT&CK ids checked by hand)
    "ransomware": {"T1486", "T1490", "T1489"},
    "credential-dumping": {"T1003"},
    "password-spraying": {"T1110"},
    "phishing-attachment": {"T1566.001", "T1204.002"},
    "business-email-compromise": {"T1114", "T1564.008"},
    "web-shell": {"T1190", "T1505.003"},
    "data-exfiltration": {"T1041", "T1567"},
    "c2-beaconing": {"T1071", "T1573"},
    "lateral-movement": {"T1021", "T1047", "T1569.002"},
    "privilege-escalation": {"T1098", "T1136"},
    "dns-tunnelling": {"T1071.004"},
    "insider-citizen-records": {"T1213"},
}
SIGMA_PROCESS_CREATION = "sigmahq-sigma/rules/windows/process_creation"
SHADOW_COPY_RULES = [  # recovery sabotage as ransomware does it; each tagged attack.t1490 (read from the files)
    "proc_creation_win_susp_shadow_copies_deletion.yml",
    "proc_creation_win_powershell_shadowcopy_deletion.yml",
    "proc_creation_win_wbadmin_delete_all_backups.yml",
    "proc_creation_win_bcdedit_boot_conf_tamper.yml",
]
NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def library():
    return load_playbooks()


def incident(**fields) -> Incident:
    base = {"id": "inc-1", "tenant": "town-a", "title": "test", "severity": Severity.high, "first_seen": NOW,
            "last_seen": NOW, "created_at": NOW}
    return Incident(**{**base, **fields})


def incident_from_rules(rules: list[Rule]) -> tuple[Incident, set[str]]:
    """An incident as grouping makes it: the union of its alerts' ATT&CK fields, the worst level."""
    worst = max((Severity(rule.level) for rule in rules), key=lambda s: s.rank)
    made = incident(severity=worst, rule_ids=sorted(r.id for r in rules),
                    techniques=sorted({t for r in rules for t in r.techniques}),
                    tactics=sorted({t for r in rules for t in r.tactics}))
    return made, {tag for rule in rules for tag in rule.tags}


# the shipped library --------------------------------------------------------------------------------------------


def test_every_shipped_playbook_validates() -> None:
    results = check_files(builtin=True)
    assert len(results) >= 12
    assert [str(problem) for result in results for problem in result.problems] == []
    assert {result.path.parent for result in results} == {BUILTIN_DIR}


def test_the_library_covers_the_incidents_agencies_face(library) -> None:
    assert set(REQUIRED) <= set(library.ids)
    for playbook_id, techniques in REQUIRED.items():
        playbook = library.get(playbook_id)
        assert techniques <= set(playbook.applies_to.techniques), playbook_id
        phases = {step.phase.value for step in playbook.steps}
        assert {"triage", "containment", "notification", "lessons-learned"} <= phases, playbook_id
        assert all(len(step.instructions) > 60 for step in playbook.steps), playbook_id


def test_every_playbook_ties_notification_to_the_regulatory_clocks(library) -> None:
    for playbook in library:
        clocks = {step.clock.value for step in playbook.steps if step.clock is not None}
        assert {"nis2-early-warning", "nis2-incident-notification", "gdpr-breach-notification"} <= clocks, playbook.id
        names = " ".join(" ".join(step.instructions.split()) for step in playbook.steps if step.clock is not None)
        assert "CSIRT" in names and "supervisory authority" in names, playbook.id


def test_to_dict_round_trips_and_validates_against_the_schema(library) -> None:
    validator = Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    for playbook in library:
        document = playbook.to_dict()
        assert list(validator.iter_errors(document)) == []
        assert Playbook.from_dict(document) == playbook


def test_schema_tactics_are_the_ones_detection_extracts() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$defs"]["applies_to"]["properties"]["tactics"]["items"]["enum"] == list(ATTACK_TACTICS)


# broken files ----------------------------------------------------------------------------------------------------

VALID = """\
id: test-playbook
title: A test playbook
version: "1.0"
applies_to:
  techniques: [T1486]
steps:
  - id: first
    title: First step
    phase: triage
    owner: soc-analyst
    instructions: Look at it.
  - id: second
    title: Second step
    phase: containment
    owner: it-operations
    instructions: Isolate it.
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    [result] = check_files([path], builtin=False)
    return list(result.problems)


def test_a_valid_fixture_has_no_problems(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "ok.yml", VALID)) == []


def test_a_wrong_phase_names_file_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "phase.yml", VALID.replace("phase: containment", "phase: contain"))
    [problem] = problems_of(path)
    # "phase: contain" is line 14 of the fixture (counted by hand)
    assert problem.startswith(f"{path}:14: steps[1].phase: 'contain' is not one of ['triage', 'containment'")


def test_a_missing_field_and_an_unknown_field_are_both_reported(tmp_path: Path) -> None:
    text = VALID.replace("    owner: soc-analyst\n", "").replace("    instructions: Isolate it.\n",
                                                                     "    instructions: Isolate it.\n    owenr: x\n")
    problems = problems_of(write(tmp_path, "fields.yml", text))
    assert len(problems) == 2
    assert re.search(r"fields\.yml:7: steps\[0\]: 'owner' is a required property$", problems[0])
    assert re.search(r"fields\.yml:11: steps\[1\]: Additional properties are not allowed \('owenr' was unexpected\)",
                     problems[1])


def test_an_unquoted_version_says_to_quote_it(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "version.yml", VALID.replace('version: "1.0"', "version: 1.0")))
    assert re.search(r"version\.yml:3: version: 1\.0 is not valid: expected a quoted version", problem)


def test_a_due_time_in_months_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("    instructions: Look at it.\n",
                         "    instructions: Look at it.\n    due: {within: P1M, relative_to: detection}\n")
    [problem] = problems_of(write(tmp_path, "due.yml", text))
    assert re.search(r"due\.yml:12: steps\[0\]\.due\.within: 'P1M' is not valid: expected a duration", problem)
    assert "no years or months" in problem


def test_duplicate_step_ids_are_refused(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "dup.yml", VALID.replace("id: second", "id: first")))
    assert re.search(r"dup\.yml:12: steps\[1\]\.id: duplicate step id 'first' \(first used by steps\[0\]\)", problem)


def test_a_playbook_that_matches_by_severity_alone_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("  techniques: [T1486]", "  min_severity: high")
    [problem] = problems_of(write(tmp_path, "broad.yml", text))
    assert re.search(r"broad\.yml:5: applies_to: name at least one of techniques", problem)


def test_a_bad_technique_id_is_refused(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "tech.yml", VALID.replace("[T1486]", "[T1486, t1490.1]")))
    assert re.search(r"tech\.yml:5: applies_to\.techniques\[1\]: 't1490\.1' is not valid: expected an ATT&CK", problem)


def test_a_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "syntax.yml", VALID.replace("  - id: second", "  - id: [second")))
    assert re.match(rf"{re.escape(str(tmp_path / 'syntax.yml'))}:1[2-4]:\d+: not valid YAML", problem)


def test_from_yaml_reads_one_file_or_raises_with_its_problems(tmp_path: Path, library) -> None:
    assert Playbook.from_yaml(BUILTIN_DIR / "ransomware.yml") == library.get("ransomware")
    broken = write(tmp_path, "phase.yml", VALID.replace("phase: containment", "phase: contain"))
    with pytest.raises(PlaybookLoadError, match=r"phase\.yml:14: steps\[1\]\.phase"):
        Playbook.from_yaml(broken)


def test_an_empty_file_is_reported(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "empty.yml", ""))
    assert "empty.yml: empty document" in problem


def test_an_id_and_version_defined_twice_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", VALID)
    second = write(tmp_path, "b.yml", VALID)
    results = check_files([tmp_path], builtin=False)
    assert [r.ok for r in results] == [True, False]
    assert results[1].problems[0].startswith(f"{second}:3: version: playbook 'test-playbook' version '1.0' is "
                                             f"defined already in {first}")
    with pytest.raises(PlaybookLoadError) as raised:
        load_playbooks([tmp_path], builtin=False)
    assert len(raised.value.problems) == 1


def test_a_built_in_id_can_be_overridden_by_a_higher_version(tmp_path: Path, library) -> None:
    shipped = library.get("ransomware")
    newer = shipped.to_dict() | {"version": "1.1", "title": "Agency ransomware procedure"}
    (tmp_path / "ransomware.yml").write_text(json.dumps(newer))  # JSON is YAML
    loaded = load_playbooks([tmp_path])
    assert loaded.get("ransomware").title == "Agency ransomware procedure"
    assert loaded.get("ransomware", "1.0").title == shipped.title
    assert [p.version for p in loaded.latest() if p.id == "ransomware"] == ["1.1"]
    with pytest.raises(UnknownPlaybook, match="'nope' is not loaded"):
        loaded.get("nope")


def test_load_reports_every_broken_file(tmp_path: Path) -> None:
    write(tmp_path, "phase.yml", VALID.replace("phase: containment", "phase: contain"))
    write(tmp_path, "version.yml", VALID.replace('version: "1.0"', "version: 1.0").replace("test-playbook", "other"))
    with pytest.raises(PlaybookLoadError) as raised:
        load_playbooks([tmp_path])
    assert [problem.split(":")[0] for problem in raised.value.problems] == [str(tmp_path / "phase.yml"),
                                                                            str(tmp_path / "version.yml")]


# the command ---------------------------------------------------------------------------------------------------


def test_check_command_reports_per_file_and_fails_on_errors(tmp_path: Path) -> None:
    write(tmp_path, "good.yml", VALID)
    bad = write(tmp_path, "phase.yml", VALID.replace("phase: containment", "phase: contain").replace("test-", "x-"))
    result = CliRunner().invoke(playbooks_app, ["check", "--no-builtin", str(tmp_path)])
    assert result.exit_code == 1
    assert f"ok {tmp_path / 'good.yml'}: test-playbook 1.0 (2 steps)" in result.output
    assert f"error {bad}: 1 problem(s)" in result.output
    assert f"{bad}:14: steps[1].phase" in result.output
    assert "2 files: 1 ok, 1 with errors" in result.output


def test_check_command_passes_the_shipped_library() -> None:
    result = CliRunner().invoke(playbooks_app, ["check"])
    assert result.exit_code == 0, result.output
    shipped = len(list(BUILTIN_DIR.glob("*.yml")))
    assert f"{shipped} files: {shipped} ok, 0 with errors" in result.output


def test_list_command_prints_every_playbook_as_json() -> None:
    result = CliRunner().invoke(playbooks_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert {row["id"] for row in rows} >= set(REQUIRED)
    assert next(row for row in rows if row["id"] == "ransomware")["applies_to"]["min_severity"] == "medium"


# matching -------------------------------------------------------------------------------------------------------


def test_a_ransomware_like_incident_from_sigmahq_rules_gets_the_ransomware_playbook_first(library,
                                                                                         shared_data: Path) -> None:
    ruleset = load_rules([shared_data / SIGMA_PROCESS_CREATION / name for name in SHADOW_COPY_RULES])
    assert len(ruleset.loaded) == 4 and not ruleset.skipped
    made, tags = incident_from_rules(list(ruleset.loaded))
    assert "T1490" in made.techniques and made.severity == Severity.high  # all four are level: high
    matches = match_playbooks(library.latest(), made, tags=tags)
    assert matches[0].playbook.id == "ransomware"
    assert "technique T1490" in matches[0].reasons


def test_dns_tunnelling_ranks_above_the_generic_c2_and_exfiltration_playbooks(library, shared_data: Path) -> None:
    # net_dns_susp_b64_queries.yml: tags attack.t1048.003, attack.t1071.004, exfiltration, command-and-control
    ruleset = load_rules([shared_data / "sigmahq-sigma/rules/network/dns/net_dns_susp_b64_queries.yml"])
    made, tags = incident_from_rules(list(ruleset.loaded))
    matches = match_playbooks(library.latest(), made, tags=tags)
    # dns-tunnelling names both techniques exactly; the other two cover them by their parents (T1071, T1048)
    # and match one tactic each, so they tie and come by id.
    assert [m.playbook.id for m in matches] == ["dns-tunnelling", "c2-beaconing", "data-exfiltration"]
    assert "technique T1071 covers T1071.004" in matches[1].reasons


def test_a_parent_technique_covers_its_sub_techniques(library) -> None:
    [match] = match_playbooks(library.latest(), incident(techniques=["T1003.001"]))
    assert match.playbook.id == "credential-dumping"
    assert match.reasons == ("technique T1003 covers T1003.001",)


def test_a_sub_technique_playbook_is_offered_for_its_parent_below_exact_matches(library) -> None:
    matches = match_playbooks(library.latest(), incident(techniques=["T1566", "T1190"]))
    assert [m.playbook.id for m in matches] == ["web-shell", "phishing-attachment"]
    assert matches[1].reasons == ("technique T1566 may be T1566.001", "technique T1566 may be T1566.002")


def test_sibling_sub_techniques_do_not_match(library) -> None:
    assert match_playbooks(library.latest(), incident(techniques=["T1550.001"])) == []


def test_min_severity_keeps_a_playbook_off_minor_incidents(library) -> None:
    assert match_playbooks(library.latest(), incident(techniques=["T1486"], severity=Severity.low)) == []
    [match] = match_playbooks(library.latest(), incident(techniques=["T1486"], severity=Severity.medium))
    assert match.playbook.id == "ransomware"


def test_rule_ids_and_tags_attach_playbooks(library) -> None:
    by_rule = incident(rule_ids=["6a2d4f0e-93b1-4d8e-8f7c-4c2e1b5a9d30"])  # civicsoc's own password spraying rule
    assert [m.playbook.id for m in match_playbooks(library.latest(), by_rule)] == ["password-spraying"]
    by_tag = incident(severity=Severity.low)
    matches = match_playbooks(library.latest(), by_tag, tags=["CivicSOC.Citizen-Records"])
    assert [(m.playbook.id, m.reasons) for m in matches] == [("insider-citizen-records",
                                                              ("tag civicsoc.citizen-records",))]


def test_a_rule_id_match_ranks_above_technique_matches(library) -> None:
    made = incident(techniques=["T1003"], rule_ids=["9e41c7b3-2a5f-4f68-b1d0-7d3e6c8a2f54"])
    assert [m.playbook.id for m in match_playbooks(library.latest(), made)] == ["password-spraying",
                                                                                 "credential-dumping"]


def test_matching_order_does_not_depend_on_library_order(library) -> None:
    made = incident(techniques=["T1486", "T1021.002", "T1003.001", "T1071.004", "T1048"],
                    tactics=["lateral-movement", "exfiltration", "impact"])
    expected = [m.playbook.id for m in match_playbooks(library.latest(), made)]
    shuffled = list(library.latest())
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert [m.playbook.id for m in match_playbooks(shuffled, made)] == expected
    assert len(expected) == 6
