"""CACAO v2.0 export and import of playbooks: the shipped library exports to documents the official OASIS
schemas accept and imports back unchanged; another producer's playbook (with parallel and if-condition steps)
imports in the documented order; broken documents are refused with the JSON path; the CLI and the API route
work on real files, a real SQLite store and real tokens.

The OASIS schemas are vendored in ``tests/data/cacao-schemas`` (see its PROVENANCE.md).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from typer.testing import CliRunner

from api.app import create_app
from civicsoc import tokens
from civicsoc.commands.playbooks import playbooks_app
from civicsoc.records import Role
from civicsoc.store import Store
from playbooks.cacao import EXTENSION_ID, CacaoError, from_cacao, to_cacao
from playbooks.loader import BUILTIN_DIR, load_playbooks
from playbooks.model import AppliesTo, Owner, Phase, Playbook, Step

SCHEMAS = Path(__file__).resolve().parent / "data" / "cacao-schemas" / "schemas"
BASE = "https://raw.githubusercontent.com/oasis-open/cacao-json-schemas/main/schemas/"
LIBRARY = load_playbooks()
SHIPPED = [playbook.id for playbook in LIBRARY]


def _missing_schema(uri: str) -> Resource:
    raise NoSuchResource(ref=f"{uri} (not vendored: copy it into tests/data/cacao-schemas, see PROVENANCE.md)")


@cache
def registry() -> Registry:
    """Every vendored schema under its ``$id``, so the ``$ref``s resolve offline."""
    resources = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        assert contents["$id"] == BASE + path.relative_to(SCHEMAS).as_posix(), path
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry(retrieve=_missing_schema).with_resources(resources)  # type: ignore[call-arg]


def validator(name: str) -> Draft7Validator:
    """A validator of the schema file ``name`` in the draft the file declares (draft-07 for all of them)."""
    schema = registry().contents(BASE + name)
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry())


def schema_errors(document: Any, name: str = "playbook.json") -> list[str]:
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator(name).iter_errors(document)]


def declared_properties(name: str) -> set[str]:
    """The property names a schema file declares, through its ``allOf`` and ``$ref``s: what the files' own
    ``unevaluatedProperties: false`` admits, which draft-07 validation does not enforce."""

    def collect(contents: dict[str, Any], resolver: Any) -> set[str]:
        names = set(contents.get("properties", {}))
        for part in contents.get("allOf", ()):
            names |= collect(part, resolver)
        if "$ref" in contents:
            resolved = resolver.lookup(contents["$ref"])
            names |= collect(resolved.contents, resolved.resolver)
        return names

    resolved = registry().resolver().lookup(BASE + name)
    return collect(resolved.contents, resolved.resolver)


def undeclared(document: dict[str, Any]) -> list[str]:
    """Every property of an export that the CACAO schemas do not declare, as ``path: name``."""
    found = [f"$: {key}" for key in set(document) - declared_properties("playbook.json")]
    for ref, step in document["workflow"].items():
        found += [f"{ref}: {key}" for key in set(step) - declared_properties(f"workflows/{step['type']}.json")]
        for index, command in enumerate(step.get("commands", ())):
            allowed = declared_properties(f"commands/{command['type']}.json")
            found += [f"{ref}.commands[{index}]: {key}" for key in set(command) - allowed]
    for ref, agent in document["agent_definitions"].items():
        found += [f"{ref}: {key}" for key in set(agent) - declared_properties(f"agent-target/{agent['type']}.json")]
    for ref, definition in document["extension_definitions"].items():
        allowed = declared_properties("extension-definition/extension-definition.json")
        found += [f"{ref}: {key}" for key in set(definition) - allowed]
    for index, reference in enumerate(document.get("external_references", ())):
        allowed = declared_properties("data-types/external-reference.json")
        found += [f"external_references[{index}]: {key}" for key in set(reference) - allowed]
    return found


# export ---------------------------------------------------------------------------------------------------------


def test_the_vendored_schemas_catch_what_they_should() -> None:
    """The validator is live: a document breaking CACAO's own rules is refused (else passing proves nothing)."""
    document = to_cacao(LIBRARY.get("ransomware"))
    assert schema_errors(document) == []
    broken = copy.deepcopy(document)
    broken["spec_version"] = "cacao-1.1"
    broken["created"] = "2024-01-01"  # no time: the timestamp data type needs yyyy-mm-ddThh:mm:ssZ
    del broken["workflow_start"]
    step = next(ref for ref in broken["workflow"] if ref.startswith("action--"))
    del broken["workflow"][step]["agent"]  # action steps require an agent (schemas/workflows/action.json)
    errors = schema_errors(broken)
    assert any(error.startswith("spec_version:") for error in errors), errors
    assert any(error.startswith("created:") for error in errors), errors
    assert any("'workflow_start' is a required property" in error for error in errors), errors
    assert any(error.startswith(f"workflow/{step}:") and "'agent'" in error for error in errors), errors


@pytest.mark.parametrize("playbook_id", SHIPPED)
def test_every_shipped_playbook_exports_to_a_document_the_oasis_schemas_accept(playbook_id: str) -> None:
    document = json.loads(json.dumps(to_cacao(LIBRARY.get(playbook_id))))  # as a consumer reads it
    assert schema_errors(document) == []
    for ref, step in document["workflow"].items():
        for command in step.get("commands", ()):
            assert schema_errors(command, f"commands/{command['type']}.json") == [], ref
    assert undeclared(document) == []


@pytest.mark.parametrize("playbook_id", SHIPPED)
def test_exports_keep_the_spec_rules_the_schemas_cannot_check(playbook_id: str) -> None:
    playbook = LIBRARY.get(playbook_id)
    document = to_cacao(playbook)
    workflow = document["workflow"]
    # §10.10: every step id is object-type--UUIDv4; the id's type prefix is the step's type
    for ref, step in workflow.items():
        kind, _, value = ref.partition("--")
        assert kind == step["type"] and uuid.UUID(value).version == 4, ref
    # the chain: start → one action per step, in our order → end; each action names its step by title
    ref = workflow[document["workflow_start"]]["on_completion"]
    titles = []
    while workflow[ref]["type"] == "action":
        titles.append(workflow[ref]["name"])
        ref = workflow[ref]["on_completion"]
    assert workflow[ref]["type"] == "end"
    assert titles == [step.title for step in playbook.steps]
    assert len(workflow) == len(playbook.steps) + 2
    # every agent used is defined; every extension used is defined (§3.1)
    assert {step["agent"] for step in workflow.values() if "agent" in step} == set(document["agent_definitions"])
    assert set(document["playbook_extensions"]) <= set(document["extension_definitions"])
    # §3.1: with playbook_types set, at least one activity, each reflected by a workflow step's command
    used = {c.get("playbook_activity") for s in workflow.values() for c in s.get("commands", ())}
    assert document["playbook_activities"] and set(document["playbook_activities"]) <= used
    # extension property names: a-z, 0-9, '_' and at least 3 characters (extension-definition.json)
    names = [*document["playbook_extensions"][EXTENSION_ID]]
    names += [key for s in workflow.values() for key in s.get("step_extensions", {}).get(EXTENSION_ID, {})]
    assert names and all(re.fullmatch(r"[a-z0-9_]{3,250}", name) for name in names), names
    # created/modified: exactly three decimals in the seconds (§3.1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["created"])


def test_export_puts_owner_instructions_techniques_and_clocks_where_a_soar_tool_looks() -> None:
    """Expected values read from playbooks/library/ransomware.yml itself (not through civicsoc's model)."""
    raw = yaml.safe_load((BUILTIN_DIR / "ransomware.yml").read_text(encoding="utf-8"))
    document = to_cacao(LIBRARY.get("ransomware"))
    assert document["name"] == raw["title"] == "Ransomware - data encrypted, backups or recovery sabotaged"
    actions = [step for step in document["workflow"].values() if step["type"] == "action"]
    isolate = next(step for step in actions if step["name"] == "Isolate affected hosts and cut the spread paths")
    raw_isolate = next(step for step in raw["steps"] if step["id"] == "isolate-hosts")
    assert document["agent_definitions"][isolate["agent"]] | {"description": ""} == {
        "type": "group", "name": "it-operations", "description": ""}
    assert isolate["description"] == raw_isolate["instructions"]
    command = isolate["commands"][0]
    assert command["type"] == "manual" and "command" not in command  # multi-line text goes base64 (manual.json)
    assert base64.b64decode(command["command_b64"]).decode("utf-8") == raw_isolate["instructions"]
    assert command["playbook_activity"] == "restrict-access"
    assert isolate["step_extensions"][EXTENSION_ID] == {"step_id": "isolate-hosts", "phase": "containment",
                                                        "due": {"within": "1h", "relative_to": "detection"}}
    early = next(step for step in actions if step["name"] == "Send the NIS2 early warning to the CSIRT")
    assert early["step_extensions"][EXTENSION_ID] == {"step_id": "nis2-early-warning", "phase": "notification",
                                                      "clock": "nis2-early-warning"}
    assert "timeout" not in early and "delay" not in early  # those count from the step's start, ours do not
    assert {"name": "mitre-attack", "external_id": "T1491.001",
            "url": "https://attack.mitre.org/techniques/T1491/001/"} in document["external_references"]
    assert {"name": "www.nomoreransom.org", "url": "https://www.nomoreransom.org/"} in document["external_references"]
    assert document["playbook_types"] == ["investigation", "mitigation", "notification", "remediation"]
    assert document["playbook_extensions"][EXTENSION_ID]["applies_to"] == raw["applies_to"]


def test_re_export_is_identical_and_each_version_is_its_own_cacao_playbook() -> None:
    playbook = LIBRARY.get("web-shell")
    first, again = to_cacao(playbook), to_cacao(LIBRARY.get("web-shell"))
    assert json.dumps(first) == json.dumps(again)
    newer = Playbook.from_dict({**playbook.to_dict(), "version": "1.1"})
    assert to_cacao(newer)["id"] != first["id"]
    assert set(to_cacao(newer)["workflow"]).isdisjoint(first["workflow"])
    assert first["id"].startswith("playbook--") and uuid.UUID(first["id"].removeprefix("playbook--")).version == 5


def test_created_stamps_created_and_modified_to_the_millisecond() -> None:
    document = to_cacao(LIBRARY.get("web-shell"), created=datetime(2024, 5, 1, 14, 30, 5, 123987, tzinfo=UTC))
    assert document["created"] == document["modified"] == "2024-05-01T14:30:05.123Z"
    assert schema_errors(document) == []


@pytest.mark.parametrize("playbook_id", SHIPPED)
def test_every_shipped_playbook_round_trips_to_an_equal_playbook(playbook_id: str) -> None:
    playbook = LIBRARY.get(playbook_id)
    back = from_cacao(json.loads(json.dumps(to_cacao(playbook))), source=f"{playbook_id}.cacao.json")
    assert back == playbook
    assert back.to_dict() == playbook.to_dict()
    assert back.source == Path(f"{playbook_id}.cacao.json")


# import of another producer's playbook ---------------------------------------------------------------------------

START = "start--0b1e2d3c-4f5a-4b6c-8d7e-9f0a1b2c3d01"
INVESTIGATE = "action--1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e01"
ESCALATE = "action--7a8b9c0d-1e2f-4ad1-ae25-6d7e8f9a0b01"
PARALLEL = "parallel--2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f01"
BLOCK = "action--3e4f5a6b-7c8d-4e9f-a0b1-2c3d4e5f6a01"
TELL_DPO = "action--5a6b7c8d-9e0f-4a1b-82c3-4d5e6f7a8b01"
CHECK = "if-condition--7c8d9e0f-1a2b-4c3d-a4e5-6f7a8b9c0d01"
RESET = "action--8d9e0f1a-2b3c-4d4e-b5f6-7a8b9c0d1e01"
RECORD = "action--0f1a2b3c-4d5e-4f6a-97b8-9c0d1e2f3a01"
REVIEW = "action--2b3c4d5e-6f7a-4b8c-99d0-1e2f3a4b5c01"
END_BLOCK = "end--4f5a6b7c-8d9e-4f0a-b1c2-3d4e5f6a7b01"
END_DPO = "end--6b7c8d9e-0f1a-4b2c-93d4-5e6f7a8b9c01"
END_TRUE = "end--9e0f1a2b-3c4d-4e5f-86a7-8b9c0d1e2f01"
END_FALSE = "end--1a2b3c4d-5e6f-4a7b-88c9-0d1e2f3a4b01"
END = "end--3c4d5e6f-7a8b-4c9d-aae1-2f3a4b5c6d01"
SOC_TIER2 = "group--4d5e6f7a-8b9c-4dae-bbf2-3a4b5c6d7e01"
NETWORK = "group--5e6f7a8b-9c0d-4ebf-8c03-4b5c6d7e8f01"
DPO = "group--6f7a8b9c-0d1e-4fc0-9d14-5c6d7e8f9a01"
CONDITION = "[user-account:x_credentials_entered = 'true']"


def third_party_playbook() -> dict[str, Any]:
    """A playbook as a SOAR tool would write it, built from CACAO v2.0 CS01: the playbook properties of §3.1
    (type, spec_version, id, name, created_by, created, modified, playbook_types/activities, labels,
    external_references, workflow_start, workflow, agent_definitions), the start, action, parallel,
    if-condition and end steps of §4 (on_completion chaining §4.1; parallel branches each reaching their own end
    step and an if-condition's on_true/on_false branches, as the vendored workflows/parallel.json and
    workflows/if-condition.json describe them), manual commands with ``command`` and ``command_b64`` and a bash
    command (§5), and group agents (§7). No civicsoc extension. Step keys are listed out of workflow order on
    purpose: import must follow the pointers, not the dictionary."""
    def action(name: str, agent: str, commands: list[dict[str, Any]], following: str,
               description: str | None = None) -> dict[str, Any]:
        step: dict[str, Any] = {"type": "action", "name": name, "agent": agent, "commands": commands,
                                "on_completion": following}
        return step | ({"description": description} if description else {})

    blocking = "Add the domain to the DNS sinkhole.\nBlock it on the web proxy."
    return {
        "type": "playbook", "spec_version": "cacao-2.0", "id": "playbook--5a9a1d1e-3c3f-4b7e-9a51-2f1d8c0e6b01",
        "name": "Phishing with credential theft",
        "description": "Users received a phishing e-mail linking to a fake sign-in page.",
        "playbook_types": ["investigation", "mitigation"],
        "playbook_activities": ["analyze-collected-data", "restrict-access", "deliver-content", "eliminate-risk"],
        "created_by": "identity--7e0f2c44-1d6b-4c8e-8f3a-6b2d9e4a1c02",
        "created": "2024-03-01T09:00:00.000Z", "modified": "2024-03-02T10:30:00.000Z",
        "labels": ["phishing", "attack.initial-access"],
        "external_references": [
            {"name": "mitre-attack", "external_id": "T1566.002", "url": "https://attack.mitre.org/techniques/T1566/002/"},
            {"name": "CISA", "description": "Phishing guidance",
             "url": "https://www.cisa.gov/resources-tools/resources/phishing-guidance-stopping-attack-cycle-phase-one"},
        ],
        "workflow_start": START,
        "workflow": {
            END: {"type": "end"},
            REVIEW: action("Review the response", SOC_TIER2,
                           [{"type": "manual", "command": "Hold a short review with the service desk."}], END),
            CHECK: {"type": "if-condition", "name": "Were credentials entered?", "condition": CONDITION,
                    "on_true": RESET, "on_false": RECORD, "on_completion": REVIEW},
            RESET: action("Reset the passwords of users who entered them", SOC_TIER2,
                          [{"type": "bash", "command": "revoke-sessions --all-affected"},
                           {"type": "manual", "command": "Reset passwords and revoke sessions.",
                            "playbook_activity": "eliminate-risk"}], END_TRUE),
            RECORD: action("Record that nobody entered credentials", SOC_TIER2,
                           [{"type": "manual", "command": "Note it in the ticket."}], END_FALSE),
            END_TRUE: {"type": "end"}, END_FALSE: {"type": "end"},
            PARALLEL: {"type": "parallel", "name": "Contain and inform", "next_steps": [BLOCK, TELL_DPO],
                       "on_completion": CHECK},
            TELL_DPO: action("Inform the DPO", DPO,
                             [{"type": "manual", "command": "Send the DPO the list of recipients.",
                               "playbook_activity": "deliver-content"}], END_DPO),
            BLOCK: action("Block the phishing domain", NETWORK,
                          [{"type": "manual", "command_b64": base64.b64encode(blocking.encode()).decode(),
                            "playbook_activity": "restrict-access"}], END_BLOCK),
            END_BLOCK: {"type": "end"}, END_DPO: {"type": "end"},
            ESCALATE: action("Escalate to the CERT", SOC_TIER2, [{"type": "manual", "command": "Call the CERT."}],
                             END),
            INVESTIGATE: {**action("Investigate the reported e-mail", SOC_TIER2,
                                   [{"type": "manual", "command": "Search the mail gateway for the sender.",
                                     "playbook_activity": "analyze-collected-data"}], PARALLEL,
                                   description="Find every recipient of the message."),
                          "on_completion": PARALLEL},
            START: {"type": "start", "on_completion": INVESTIGATE},
        },
        "agent_definitions": {
            SOC_TIER2: {"type": "group", "name": "Tier 2 SOC"},
            NETWORK: {"type": "group", "name": "Network Admin"},
            DPO: {"type": "group", "name": "DPO"},
        },
    }


EXPECTED_THIRD_PARTY = Playbook(
    # worked out by hand from third_party_playbook() and the rules in playbooks/cacao.py's docstring
    id="phishing-with-credential-theft", title="Phishing with credential theft", version="1.0",
    description="Users received a phishing e-mail linking to a fake sign-in page.",
    references=("https://www.cisa.gov/resources-tools/resources/phishing-guidance-stopping-attack-cycle-phase-one",),
    applies_to=AppliesTo(techniques=("T1566.002",), tags=("attack.initial-access",)),
    steps=(
        Step("investigate-the-reported-e-mail", "Investigate the reported e-mail", Phase.triage, Owner.soc_analyst,
             "Find every recipient of the message.\n\nSearch the mail gateway for the sender."),
        Step("block-the-phishing-domain", "Block the phishing domain", Phase.containment, Owner.network_admin,
             "Add the domain to the DNS sinkhole.\nBlock it on the web proxy."),
        Step("inform-the-dpo", "Inform the DPO", Phase.notification, Owner.dpo,
             "Send the DPO the list of recipients."),
        Step("reset-the-passwords-of-users-who-entered-them", "Reset the passwords of users who entered them",
             Phase.eradication, Owner.soc_analyst,
             f"Only if {CONDITION}:\nRun this bash command: revoke-sessions --all-affected\n\n"
             "Reset passwords and revoke sessions."),
        Step("record-that-nobody-entered-credentials", "Record that nobody entered credentials", Phase.triage,
             Owner.soc_analyst, f"Only if NOT {CONDITION}:\nNote it in the ticket."),
        Step("review-the-response", "Review the response", Phase.triage, Owner.soc_analyst,
             "Hold a short review with the service desk."),
    ),
)


def test_the_third_party_test_playbook_is_valid_cacao() -> None:
    assert schema_errors(third_party_playbook()) == []


def test_another_producers_playbook_imports_in_workflow_order_with_defaults() -> None:
    playbook = from_cacao(third_party_playbook(), source="phishing.json")
    for got, wanted in zip(playbook.steps, EXPECTED_THIRD_PARTY.steps, strict=True):
        assert got == wanted
    assert playbook == EXPECTED_THIRD_PARTY
    assert "escalate-to-the-cert" not in playbook.step_ids  # reached only through on_failure: not imported


def test_a_playbook_without_techniques_or_tags_gets_a_tag_of_its_own() -> None:
    document = third_party_playbook()
    del document["external_references"][0], document["labels"]
    assert from_cacao(document, source="x.json").applies_to == AppliesTo(
        tags=("civicsoc.playbook-phishing-with-credential-theft",))


def test_steps_with_the_same_name_get_distinct_ids() -> None:
    document = third_party_playbook()
    document["workflow"][RECORD]["name"] = document["workflow"][REVIEW]["name"] = "Check"
    ids = from_cacao(document, source="x.json").step_ids
    assert ids[4:] == ("check", "check-2")


# invalid documents ------------------------------------------------------------------------------------------------


def problems_of(document: Any) -> list[str]:
    with pytest.raises(CacaoError) as caught:
        from_cacao(document, source="in.json")
    assert str(caught.value).startswith("invalid CACAO playbook: in.json: $")
    return caught.value.problems


def exported(playbook_id: str = "password-spraying") -> dict[str, Any]:
    return to_cacao(LIBRARY.get(playbook_id))


def action_refs(document: dict[str, Any]) -> list[str]:
    """The action steps in chain order (followed by hand from workflow_start)."""
    refs, ref = [], document["workflow"][document["workflow_start"]]["on_completion"]
    while document["workflow"][ref]["type"] == "action":
        refs.append(ref)
        ref = document["workflow"][ref]["on_completion"]
    return refs


EXT = f"['{EXTENSION_ID}']"


def test_not_a_cacao_2_playbook() -> None:
    assert problems_of(["a list"]) == ["in.json: $: expected a CACAO playbook (a JSON object), got list"]
    document = third_party_playbook() | {"spec_version": "cacao-1.1"}
    assert problems_of(document) == [
        "in.json: $.spec_version: 'cacao-1.1' is not valid: expected 'cacao-2.0' (CACAO 1.x playbooks have a "
        "different workflow structure)"]
    document = {key: value for key, value in third_party_playbook().items() if key != "workflow_start"}
    assert problems_of(document) == ["in.json: $.workflow_start: missing: expected the id of the start step"]


def test_a_pointer_to_a_missing_step_names_the_property_that_points() -> None:
    document = third_party_playbook()
    document["workflow"][BLOCK]["on_completion"] = "end--00000000-0000-4000-8000-000000000000"
    assert problems_of(document) == [
        f"in.json: $.workflow['{BLOCK}'].on_completion: 'end--00000000-0000-4000-8000-000000000000' is not a step "
        "of this playbook: expected the id of a step in $.workflow"]


def test_loops_and_unsupported_step_types_are_refused_naming_the_step() -> None:
    document = third_party_playbook()
    document["workflow"][REVIEW]["on_completion"] = INVESTIGATE
    assert problems_of(document) == [
        f"in.json: $.workflow['{REVIEW}'].on_completion: step '{INVESTIGATE}' is reached a second time: workflows "
        "that loop back or join branches cannot be flattened into an ordered list of steps"]
    document = third_party_playbook()
    loop = "while-condition--9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c01"
    document["workflow"][loop] = {"type": "while-condition", "condition": "[x:y = 1]", "on_true": RESET,
                                  "on_completion": END}
    document["workflow"][CHECK]["on_completion"] = loop
    assert problems_of(document) == [
        f"in.json: $.workflow['{loop}'].type: 'while-condition' steps cannot be imported: a loop cannot be "
        "flattened into an ordered list of steps"]


def test_a_broken_base64_command_names_the_command() -> None:
    document = third_party_playbook()
    document["workflow"][BLOCK]["commands"][0]["command_b64"] = "not base64!"
    assert problems_of(document) == [
        f"in.json: $.workflow['{BLOCK}'].commands[0].command_b64: is not valid: expected base64 of UTF-8 text "
        "(RFC 4648 §4)"]


def test_a_bad_phase_in_our_extension_names_its_json_path() -> None:
    document = exported()
    third = action_refs(document)[2]
    document["workflow"][third]["step_extensions"][EXTENSION_ID]["phase"] = "contain"
    [problem] = problems_of(document)
    assert problem.startswith(f"in.json: $.workflow['{third}'].step_extensions{EXT}.phase: 'contain' is not one of")


def test_a_duplicate_step_id_names_the_second_step() -> None:
    document = exported()
    first, second = action_refs(document)[:2]
    document["workflow"][second]["step_extensions"][EXTENSION_ID]["step_id"] = \
        document["workflow"][first]["step_extensions"][EXTENSION_ID]["step_id"]
    [problem] = problems_of(document)
    assert problem.startswith(f"in.json: $.workflow['{second}'].step_extensions{EXT}.step_id: duplicate step id")


def test_a_renamed_owner_role_in_our_export_names_the_agent() -> None:
    document = exported()
    first = action_refs(document)[0]
    agent = document["workflow"][first]["agent"]
    document["agent_definitions"][agent]["name"] = "janitor"
    problems = problems_of(document)
    sharing = [ref for ref in action_refs(document) if document["workflow"][ref]["agent"] == agent]
    assert len(sharing) == sum(step.owner == LIBRARY.get("password-spraying").steps[0].owner
                               for step in LIBRARY.get("password-spraying").steps)
    assert [problem.partition(": 'janitor' is not one of ['soc-analyst', ")[0] for problem in problems] == [
        f"in.json: $.workflow['{ref}'].agent" for ref in sharing]


def test_a_missing_version_and_a_bad_due_time_in_our_extension() -> None:
    document = exported("ransomware")
    del document["playbook_extensions"][EXTENSION_ID]["version"]
    assert problems_of(document) == [f"in.json: $.playbook_extensions{EXT}.version: missing: expected the playbook "
                                     "version"]
    document = exported("ransomware")
    first = action_refs(document)[0]
    document["workflow"][first]["step_extensions"][EXTENSION_ID]["due"]["within"] = "P1M"
    [problem] = problems_of(document)
    assert problem.startswith(f"in.json: $.workflow['{first}'].step_extensions{EXT}.due.within: 'P1M' is not valid")


# the commands -----------------------------------------------------------------------------------------------------


def test_cli_export_import_round_trip_through_files_and_check_accepts_the_yaml(tmp_path: Path) -> None:
    runner = CliRunner()
    exported_dir, imported_dir = tmp_path / "cacao", tmp_path / "yaml"
    result = runner.invoke(playbooks_app, ["export", "--format", "cacao", "--out", str(exported_dir)])
    assert result.exit_code == 0, result.output
    files = sorted(exported_dir.iterdir())
    assert [f.name for f in files] == sorted(f"{p.id}-{p.version}.cacao.json" for p in LIBRARY)
    assert all(schema_errors(json.loads(f.read_text(encoding="utf-8"))) == [] for f in files)

    result = runner.invoke(playbooks_app, ["import", *map(str, files), "--out", str(imported_dir)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(playbooks_app, ["check", "--no-builtin", str(imported_dir)])
    assert result.exit_code == 0, result.output
    assert f"{len(LIBRARY)} files: {len(LIBRARY)} ok, 0 with errors" in result.output
    for playbook in LIBRARY:
        assert Playbook.from_yaml(imported_dir / f"{playbook.id}-{playbook.version}.yml") == playbook

    again = runner.invoke(playbooks_app, ["export", "--out", str(exported_dir)])
    assert again.exit_code == 0
    assert [f.read_bytes() for f in sorted(exported_dir.iterdir())] == [f.read_bytes() for f in files]


def test_cli_import_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    source = tmp_path / "phishing.json"
    source.write_text(json.dumps(third_party_playbook()), encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(playbooks_app, ["import", str(source), "--out", str(tmp_path / "out")]).exit_code == 0
    target = tmp_path / "out" / "phishing-with-credential-theft-1.0.yml"
    target.write_text("# edited by hand\n", encoding="utf-8")
    result = runner.invoke(playbooks_app, ["import", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{target}: exists already (from {source}); pass --force to overwrite it"
    assert target.read_text(encoding="utf-8") == "# edited by hand\n"
    forced = runner.invoke(playbooks_app, ["import", str(source), "--out", str(tmp_path / "out"), "--force"])
    assert forced.exit_code == 0, forced.output
    assert Playbook.from_yaml(target) == EXPECTED_THIRD_PARTY
    checked = runner.invoke(playbooks_app, ["check", str(target)])  # with the built-in library: no clash
    assert checked.exit_code == 0, checked.output


def test_cli_import_reports_one_line_per_problem_and_writes_nothing(tmp_path: Path) -> None:
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"type": "playbook",\n  "name": }\n', encoding="utf-8")
    bad_phase = tmp_path / "bad.cacao.json"
    document = exported()
    third = action_refs(document)[2]
    document["workflow"][third]["step_extensions"][EXTENSION_ID]["phase"] = "contain"
    bad_phase.write_text(json.dumps(document), encoding="utf-8")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(third_party_playbook()), encoding="utf-8")
    result = CliRunner().invoke(playbooks_app, ["import", str(not_json), str(bad_phase), str(good),
                                                "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"{not_json}:2:11: not valid JSON (Expecting value)"
    assert lines[1].startswith(f"{bad_phase}: $.workflow['{third}'].step_extensions{EXT}.phase: 'contain'")
    assert len(lines) == 2
    assert not (tmp_path / "out").exists()


def test_cli_export_to_stdout_and_unknown_ids() -> None:
    runner = CliRunner()
    result = runner.invoke(playbooks_app, ["export", "ransomware", "web-shell", "--out", "-"])
    assert result.exit_code == 0, result.output
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert names == [LIBRARY.get("ransomware").title, LIBRARY.get("web-shell").title]
    result = runner.invoke(playbooks_app, ["export", "ransomwear", "--out", "-"])
    assert result.exit_code == 2
    assert result.stderr.startswith("unknown playbook 'ransomwear' (loaded: business-email-compromise, ")
    assert result.stdout == ""


# the API ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[tuple[TestClient, dict[Role, dict[str, str]]]]:
    tokens.create_tenant(sqlite_store, "town-a", "Town A", "test-setup")
    headers = {role: {"Authorization": "Bearer " + tokens.create_token(
        sqlite_store, tenant="town-a", role=role, name=role.value, actor="test-setup").secret} for role in Role}
    with TestClient(create_app(sqlite_store, playbooks=LIBRARY)) as client:
        yield client, headers


def test_api_returns_the_cacao_document_to_every_reading_role(api: tuple[TestClient, dict[Role, Any]]) -> None:
    client, headers = api
    for role in (Role.viewer, Role.analyst, Role.compliance, Role.admin):
        response = client.get("/api/v1/playbooks/ransomware/cacao", headers=headers[role])
        assert response.status_code == 200, (role, response.text)
        document = response.json()
        assert schema_errors(document) == []
        assert document["name"] == "Ransomware - data encrypted, backups or recovery sabotaged"
        assert from_cacao(document, source="api") == LIBRARY.get("ransomware")
    versioned = client.get("/api/v1/playbooks/ransomware/cacao", params={"version": "1.0"},
                           headers=headers[Role.viewer])
    assert versioned.json() == document


def test_api_answers_404_for_an_unknown_playbook_or_version_and_guards_the_route(
        api: tuple[TestClient, dict[Role, Any]]) -> None:
    client, headers = api
    unknown = client.get("/api/v1/playbooks/no-such-playbook/cacao", headers=headers[Role.viewer])
    assert unknown.status_code == 404
    assert "'no-such-playbook' is not loaded" in unknown.json()["detail"]
    assert client.get("/api/v1/playbooks/ransomware/cacao", params={"version": "9.9"},
                      headers=headers[Role.viewer]).status_code == 404
    assert client.get("/api/v1/playbooks/ransomware/cacao").status_code == 401
    denied = client.get("/api/v1/playbooks/ransomware/cacao", headers=headers[Role.collector])
    assert denied.status_code == 403
