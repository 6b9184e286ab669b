"""Playbooks as CACAO v2.0 JSON (OASIS "CACAO Security Playbooks Version 2.0", CS01, 27 November 2023), so an
agency can hand its playbooks to a SOAR tool and take playbooks from one.

Export (``to_cacao``) writes one ``action`` step per step, chained by ``on_completion`` from a ``start`` step to
an ``end`` step (spec §4). What CACAO has a field for goes there: title → ``name``, instructions → the step
``description`` and a ``manual`` command (§5), the owner role → the step's ``agent``, a ``group`` agent
(§7) named by the role, the phase → the command's ``playbook_activity`` and the playbook's ``playbook_types``
(§3.1.1, §3.1.2), ATT&CK techniques and references → ``external_references``. What CACAO has no field for
travels in a civicsoc extension (``extension_definitions`` + ``playbook_extensions`` / ``step_extensions``,
spec §3.1 and §4.1): our ids, the version, ``applies_to``, and per step the phase, due time and regulatory clock.

Due times deliberately do not go into ``timeout`` or ``delay``: those count milliseconds from the moment the
step *starts* (and a timeout fails the step), while ours count from the incident's detection or its
confirmation as significant. A SOAR tool acting on them would fail the step at the wrong time.

Import (``from_cacao``) reads our own exports back to an equal ``Playbook`` and takes other producers'
playbooks with defaults. Their workflow is flattened to an ordered list, deterministically:

- from ``workflow_start``, follow ``on_completion`` (else ``on_success``); ``on_failure`` paths are error
  handling, not steps to work through, and are not imported;
- a ``parallel`` step contributes each branch of ``next_steps`` in list order, each to its ``end`` step, then
  continues after the parallel step (the spec allows running parallel branches in sequence when the outcome is
  the same);
- an ``if-condition`` step contributes its ``on_true`` branch, then its ``on_false`` branch, every step in
  them prefixed with the condition the analyst must check ("Only if ...");
- ``while-condition``, ``switch-condition`` and ``playbook-action`` steps are refused with an error naming the
  step: a loop or a call into another playbook has no faithful place in an ordered checklist;
- a step reached twice (a loop back, or two branches joining) is refused too.

Missing data gets defaults: the step id from its name, the phase from the command's ``playbook_activity``
(else the playbook's single ``playbook_types`` entry, else triage), the owner from the agent's name when it is
one of our roles (else soc-analyst), techniques from ``mitre-attack`` external references, tags from labels
written like Sigma tags, version "1.0". A playbook with no technique or tag gets the tag
``civicsoc.playbook-<id>`` so it attaches to no incident until an analyst attaches it (or a rule carries it).

Every problem names the source, the JSON path inside the document and what was expected, e.g.
``ransomware.cacao.json: $.workflow['action--…'].step_extensions['extension-definition--…'].phase: 'contain'
is not one of [...]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from civicsoc.errors import CivicsocError
from civicsoc.yamlsource import YamlDocument
from playbooks.loader import validate_document
from playbooks.model import Owner, Phase, Playbook, Step

SPEC_VERSION = "cacao-2.0"
EXTENSION_ID = "extension-definition--04ebc1e7-101f-4f2b-893e-d1bc5c614ced"
"""Our extension. Fixed forever: a consumer recognises civicsoc data by it."""
CIVICSOC_IDENTITY = "identity--09f23433-61b2-4138-b7f1-82863e8e08e4"
"""``created_by`` of every export: the STIX identity standing for "civicsoc" as producer."""
PLAYBOOK_NAMESPACE = uuid.UUID("603b84a4-a6eb-44bb-b30c-adb1f424c235")
"""UUIDv5 namespace of exported playbook ids. Not CACAO's own namespace (aa7caf3a-…): the spec reserves that for
ids made from name and playbook_types, and ours are made from our id and version (spec §10.10)."""
UNDATED = "1970-01-01T00:00:00.000Z"
"""``created``/``modified`` when the caller gives no time: our playbooks carry no date, and a constant keeps
re-export byte-for-byte stable. CACAO requires both properties."""
EXTENSION_VERSION = "1.0.0"

EXTENSION_DEFINITION: dict[str, Any] = {
    "type": "extension-definition",
    "name": "civicsoc playbook",
    "description": "What a civicsoc response playbook says that CACAO has no property for, so that an export "
                   "imports back into civicsoc unchanged.",
    "created_by": CIVICSOC_IDENTITY,
    "schema": "playbook_extensions: playbook_id (slug a-z0-9-), version (\"1\", \"1.2\" or \"1.2.3\"), applies_to "
              "(techniques, tactics, rule_ids, tags, min_severity: which incidents the playbook attaches to). "
              "step_extensions: step_id (slug, unique in the playbook), phase (triage, containment, eradication, "
              "recovery, notification, lessons-learned), due ({within: 30m/4h/3d/1w or ISO 8601 duration, "
              "relative_to: detection or significant}: counted from the incident, not from the step's start), "
              "clock (nis2-early-warning, nis2-incident-notification, nis2-final-report, gdpr-breach-notification: "
              "the regulatory deadline the step meets). The step's owner role is the name of its group agent.",
    "version": EXTENSION_VERSION,
}

PHASE_ACTIVITY: dict[Phase, str] = {
    # Our phases (NIST SP 800-61) against the closest CACAO activity (spec §3.1.2); lessons-learned has none.
    Phase.triage: "analyze-collected-data",
    Phase.containment: "restrict-access",
    Phase.eradication: "eliminate-risk",
    Phase.recovery: "restore-capabilities",
    Phase.notification: "deliver-content",
}
PHASE_TYPE: dict[Phase, str] = {
    Phase.triage: "investigation",
    Phase.containment: "mitigation",
    Phase.eradication: "remediation",
    Phase.recovery: "remediation",
    Phase.notification: "notification",
}
PLAYBOOK_TYPE_ORDER = ("attack", "detection", "engagement", "investigation", "mitigation", "notification",
                       "prevention", "remediation")
"""The ``playbook-type-ov`` vocabulary in the spec's order, so ``playbook_types`` comes out the same every time."""
ACTIVITY_PHASE: dict[str, Phase] = {
    # Import: the activity vocabulary (spec §3.1.2) grouped as the playbook types it belongs to, onto our phases.
    "compose-content": Phase.notification, "deliver-content": Phase.notification,
    "identify-audience": Phase.notification, "identify-channel": Phase.notification,
    "scan-system": Phase.triage, "match-indicator": Phase.triage, "analyze-collected-data": Phase.triage,
    "identify-indicators": Phase.triage, "scan-vulnerabilities": Phase.triage, "map-network": Phase.triage,
    "configure-systems": Phase.eradication, "eliminate-risk": Phase.eradication,
    "restrict-access": Phase.containment, "disconnect-system": Phase.containment,
    "revert-system": Phase.recovery, "restore-data": Phase.recovery, "restore-capabilities": Phase.recovery,
}
TYPE_PHASE: dict[str, Phase] = {"detection": Phase.triage, "investigation": Phase.triage,
                                "mitigation": Phase.containment, "remediation": Phase.eradication,
                                "prevention": Phase.eradication, "notification": Phase.notification}
OWNER_DESCRIPTIONS: dict[Owner, str] = {
    Owner.soc_analyst: "SOC analyst on duty",
    Owner.incident_lead: "Incident lead (coordinates the response and the notifications)",
    Owner.it_operations: "IT operations (servers, clients, backups)",
    Owner.identity_admin: "Identity administrator (directory, accounts, MFA)",
    Owner.network_admin: "Network administrator (firewalls, VPN, DNS, proxies)",
    Owner.application_owner: "Owner of the affected application",
    Owner.dpo: "Data protection officer (GDPR)",
    Owner.ciso: "Chief information security officer",
    Owner.legal: "Legal counsel",
    Owner.communications: "Communications / press office",
    Owner.management: "Management (decisions and accountability)",
    Owner.hr: "Human resources",
}
DEFAULT_OWNER = Owner.soc_analyst
DEFAULT_VERSION = "1.0"
UNSUPPORTED_STEPS = {
    "while-condition": "a loop cannot be flattened into an ordered list of steps",
    "switch-condition": "rewrite it as if-condition steps, whose branches can be flattened",
    "playbook-action": "it calls another playbook: import that playbook on its own and attach it to the incident",
}

_TECHNIQUE = re.compile(r"T[0-9]{4}(?:\.[0-9]{3})?")
_SIGMA_TAG = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9._-]+")
_HTTP_URL = re.compile(r"https?://\S+")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CacaoError(CivicsocError):
    """A CACAO document cannot become a playbook; ``problems`` has one line per problem, each naming the source,
    the JSON path inside the document and what was expected."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5]) + (f"; and {len(self.problems) - 5} more" if len(self.problems) > 5
                                                else "")
        super().__init__(f"invalid CACAO playbook: {shown}")


# ---------------------------------------------------------------------------------------------------- export


def _uuid4_from(seed: str) -> uuid.UUID:
    """A version-4 UUID whose 122 "random" bits are a hash of ``seed``.

    Written by hand because the spec says step objects MUST use UUIDv4 (§10.10) and ``uuid.uuid4`` is random:
    hashing a stable seed gives ids that are valid v4 and the same on every export, so re-exporting an unchanged
    playbook gives an identical document that SOAR tools see as the same steps.
    """
    return uuid.UUID(bytes=hashlib.sha256(seed.encode("utf-8")).digest()[:16], version=4)


def playbook_ref(playbook: Playbook) -> str:
    """``playbook--<uuid5>`` from our id and version: stable across exports, distinct per version."""
    return f"playbook--{uuid.uuid5(PLAYBOOK_NAMESPACE, f'{playbook.id}/{playbook.version}')}"


def cacao_file_name(playbook: Playbook) -> str:
    return f"{playbook.id}-{playbook.version}.cacao.json"


def technique_url(technique: str) -> str:
    """``T1003.001`` → ``https://attack.mitre.org/techniques/T1003/001/`` (the form ATT&CK's own site uses)."""
    return f"https://attack.mitre.org/techniques/{technique.replace('.', '/')}/"


def _timestamp(moment: datetime) -> str:
    """CACAO's timestamp: UTC, ``Z``, exactly three decimals (spec §3.1, ``created``/``modified``)."""
    if moment.tzinfo is None:
        raise ValueError("created needs a time zone (a naive datetime is ambiguous)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _manual_command(text: str, activity: str | None) -> dict[str, Any]:
    """A ``manual`` command carrying ``text``: plain when it is one line without quotes, else ``command_b64``,
    as the spec asks for text whose line breaks or quotes matter (§5, manual command)."""
    command: dict[str, Any] = {"type": "manual"}
    if "\n" in text or "\r" in text or '"' in text or "'" in text:
        command["command_b64"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
    else:
        command["command"] = text
    if activity is not None:
        command["playbook_activity"] = activity
    return command


def _step_extension(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"step_id": step.id, "phase": step.phase.value}
    if step.due is not None:
        data["due"] = step.due.to_dict()
    if step.clock is not None:
        data["clock"] = step.clock.value
    return data


def _external_references(playbook: Playbook) -> list[dict[str, Any]]:
    references: list[dict[str, Any]] = [
        {"name": "mitre-attack", "external_id": technique, "url": technique_url(technique)}
        for technique in playbook.applies_to.techniques]
    references += [{"name": urlsplit(url).hostname or url, "url": url} for url in playbook.references]
    return references


def to_cacao(playbook: Playbook, *, created: datetime | None = None) -> dict[str, Any]:
    """The playbook as a CACAO v2.0 playbook object (a JSON-ready dict); the same input gives the same output.

    ``created`` stamps ``created`` and ``modified`` (default ``UNDATED``: our playbooks have no date).
    """
    seed = f"civicsoc/{playbook.id}/{playbook.version}"
    start_ref = f"start--{_uuid4_from(seed + '/start')}"
    end_ref = f"end--{_uuid4_from(seed + '/end')}"
    action_refs = [f"action--{_uuid4_from(f'{seed}/step/{step.id}')}" for step in playbook.steps]
    workflow: dict[str, Any] = {start_ref: {"type": "start", "name": "Start", "on_completion": action_refs[0]}}
    agents: dict[str, Any] = {}
    for step, ref, following in zip(playbook.steps, action_refs, [*action_refs[1:], end_ref], strict=True):
        agent_ref = f"group--{_uuid4_from(f'{seed}/owner/{step.owner.value}')}"
        agents.setdefault(agent_ref, {"type": "group", "name": step.owner.value,
                                      "description": OWNER_DESCRIPTIONS[step.owner]})
        workflow[ref] = {
            "type": "action", "name": step.title, "description": step.instructions, "on_completion": following,
            "commands": [_manual_command(step.instructions, PHASE_ACTIVITY.get(step.phase))], "agent": agent_ref,
            "step_extensions": {EXTENSION_ID: _step_extension(step)},
        }
    workflow[end_ref] = {"type": "end", "name": "End"}

    phases = {step.phase for step in playbook.steps}
    types = {PHASE_TYPE[phase] for phase in phases if phase in PHASE_TYPE}
    activities = dict.fromkeys(PHASE_ACTIVITY[s.phase] for s in playbook.steps if s.phase in PHASE_ACTIVITY)
    stamp = _timestamp(created) if created is not None else UNDATED
    document: dict[str, Any] = {"type": "playbook", "spec_version": SPEC_VERSION, "id": playbook_ref(playbook),
                                "name": playbook.title}
    if playbook.description:
        document["description"] = playbook.description
    if types:  # a playbook of lessons-learned steps only has no CACAO type; the lists need at least one item
        document["playbook_types"] = [name for name in PLAYBOOK_TYPE_ORDER if name in types]
        document["playbook_activities"] = list(activities)
    document |= {"created_by": CIVICSOC_IDENTITY, "created": stamp, "modified": stamp}
    labels = [*playbook.applies_to.tags, *(f"attack.{tactic}" for tactic in playbook.applies_to.tactics)]
    if labels:
        document["labels"] = labels
    references = _external_references(playbook)
    if references:
        document["external_references"] = references
    document |= {
        "workflow_start": start_ref,
        "workflow": workflow,
        "agent_definitions": agents,
        "extension_definitions": {EXTENSION_ID: EXTENSION_DEFINITION},
        "playbook_extensions": {EXTENSION_ID: {"playbook_id": playbook.id, "version": playbook.version,
                                               "applies_to": playbook.applies_to.to_dict()}},
    }
    return document


# ---------------------------------------------------------------------------------------------------- import

Location = tuple[str | int, ...]


def json_path(location: Sequence[str | int]) -> str:
    """``("workflow", "action--1", "name")`` → ``$.workflow['action--1'].name``."""
    parts = ["$"]
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            parts.append(f".{part}")
        else:
            parts.append("[" + repr(part) + "]")
    return "".join(parts)


def slug(text: str, fallback: str) -> str:
    """A playbook or step id from a name: lowercase letters, digits and '-', at most 63 characters."""
    value = _SLUG_JUNK.sub("-", text.lower()).strip("-")[:63].rstrip("-")
    return value or fallback


@dataclass(frozen=True)
class _ActionStep:
    """An action step reached from ``workflow_start``, with the conditions of the branches around it."""

    ref: str
    data: dict[str, Any]
    conditions: tuple[str, ...]


@dataclass
class _Problems:
    source: str
    lines: list[str] = field(default_factory=list)

    def add(self, location: Sequence[str | int], message: str) -> None:
        self.lines.append(f"{self.source}: {json_path(location)}: {message}")


@dataclass(frozen=True)
class _Located(YamlDocument):
    """Our playbook dict built from a CACAO document, whose problems are reported at the CACAO JSON path the
    value came from, so the loader's checks (schema, duplicate ids, due times) speak about the file the user has."""

    locate: Callable[[Sequence[str | int]], Location] = field(default=lambda location: tuple(location))

    def describe(self, location: Sequence[str | int]) -> str:
        return f"{self.path}: {json_path(self.locate(location))}"


def _typed(problems: _Problems, container: dict[str, Any], key: str, kind: type | tuple[type, ...], expected: str,
           where: Location, *, required: bool = False) -> Any:
    """``container[key]`` when it has the type; a located problem (and ``None``) when it is missing or wrong."""
    if key not in container:
        if required:
            problems.add((*where, key), f"missing: expected {expected}")
        return None
    value = container[key]
    if not isinstance(value, kind):
        problems.add((*where, key), f"{value!r} is not valid: expected {expected}")
        return None
    return value


class _Workflow:
    """Walks the workflow from ``workflow_start`` and lists its action steps in the documented order."""

    def __init__(self, workflow: dict[str, Any], problems: _Problems) -> None:
        self.workflow = workflow
        self.problems = problems
        self.seen: set[str] = set()
        self.actions: list[_ActionStep] = []

    def follow(self, ref: Any, pointer: Location, conditions: tuple[str, ...] = ()) -> None:
        while ref is not None:
            if not isinstance(ref, str) or ref not in self.workflow:
                self.problems.add(pointer, f"{ref!r} is not a step of this playbook: expected the id of a step in "
                                           "$.workflow")
                return
            where: Location = ("workflow", ref)
            step = self.workflow[ref]
            if not isinstance(step, dict):
                self.problems.add(where, "expected a workflow step (a JSON object with a type)")
                return
            kind = step.get("type")
            if not isinstance(kind, str):
                self.problems.add((*where, "type"), f"{kind!r} is not valid: expected a workflow step type (a string)")
                return
            if kind == "end":
                return  # ends a branch; several branches may (wrongly, but harmlessly) share one end step
            if ref in self.seen:
                self.problems.add(pointer, f"step {ref!r} is reached a second time: workflows that loop back or "
                                           "join branches cannot be flattened into an ordered list of steps")
                return
            self.seen.add(ref)
            if kind in UNSUPPORTED_STEPS:
                self.problems.add((*where, "type"), f"{kind!r} steps cannot be imported: {UNSUPPORTED_STEPS[kind]}")
                return
            if kind == "action":
                self.actions.append(_ActionStep(ref, step, conditions))
            elif kind == "parallel":
                self._parallel(step, where, conditions)
            elif kind == "if-condition":
                self._if_condition(step, where, conditions)
            elif kind != "start":
                self.problems.add((*where, "type"), f"{kind!r} is not valid: expected start, end, action, parallel "
                                                    "or if-condition (CACAO 2.0 workflow step types)")
                return
            key = "on_completion" if "on_completion" in step else "on_success"
            ref, pointer = step.get(key), (*where, key)

    def _parallel(self, step: dict[str, Any], where: Location, conditions: tuple[str, ...]) -> None:
        branches = _typed(self.problems, step, "next_steps", list, "a list of step ids", where, required=True)
        for index, branch in enumerate(branches or ()):
            self.follow(branch, (*where, "next_steps", index), conditions)

    def _if_condition(self, step: dict[str, Any], where: Location, conditions: tuple[str, ...]) -> None:
        condition = _typed(self.problems, step, "condition", str, "a condition (a string)", where, required=True)
        if condition is None:
            return
        if "on_true" not in step:
            self.problems.add((*where, "on_true"), "missing: expected the id of the step to take when the condition "
                                                   "is true")
        else:
            self.follow(step["on_true"], (*where, "on_true"), (*conditions, f"Only if {condition}"))
        if "on_false" in step:
            self.follow(step["on_false"], (*where, "on_false"), (*conditions, f"Only if NOT {condition}"))


def _command_texts(step: _ActionStep, problems: _Problems) -> list[str]:
    where: Location = ("workflow", step.ref)
    commands = _typed(problems, step.data, "commands", list, "a list of commands", where) or []
    texts: list[str] = []
    for index, command in enumerate(commands):
        at: Location = (*where, "commands", index)
        if not isinstance(command, dict):
            problems.add(at, "expected a command (a JSON object with a type)")
            continue
        kind = _typed(problems, command, "type", str, "a command type such as manual", at, required=True)
        text = _typed(problems, command, "command", str, "the command (a string)", at)
        encoded = _typed(problems, command, "command_b64", str, "the command, base64-encoded", at)
        if text is None and encoded is not None:
            try:
                text = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                problems.add((*at, "command_b64"), "is not valid: expected base64 of UTF-8 text (RFC 4648 §4)")
                continue
        if text is None:
            text = command.get("description") if isinstance(command.get("description"), str) else None
        if text:
            texts.append(text if kind in (None, "manual") else f"Run this {kind} command: {text}")
    return texts


def _instructions(step: _ActionStep, title: str, problems: _Problems) -> str:
    description = _typed(problems, step.data, "description", str, "the step's description (a string)",
                         ("workflow", step.ref))
    texts = [text for text in [description, *_command_texts(step, problems)] if text]
    body = "\n\n".join(dict.fromkeys(texts)) or title  # our exports repeat the description as the command
    return "\n".join([*(f"{condition}:" for condition in step.conditions), body]) if step.conditions else body


def _owner(step: _ActionStep, agents: dict[str, Any], ours: bool, problems: _Problems) -> str:
    """The agent's name when it is one of our roles; a default for other producers' agents. Our own steps keep
    whatever the agent says, so the schema check reports a renamed role at ``.agent`` instead of guessing."""
    where: Location = ("workflow", step.ref)
    ref = _typed(problems, step.data, "agent", str, "the id of an agent in $.agent_definitions", where)
    if ref is None:
        return DEFAULT_OWNER.value
    agent = agents.get(ref)
    if not isinstance(agent, dict):
        problems.add((*where, "agent"), f"{ref!r} is not in $.agent_definitions: expected the id of an agent defined "
                                        "there")
        return DEFAULT_OWNER.value
    name = agent.get("name")
    role = _SLUG_JUNK.sub("-", name.lower()).strip("-") if isinstance(name, str) else ""
    if role in {owner.value for owner in Owner} or ours:
        return role or repr(name)
    return DEFAULT_OWNER.value


def _default_phase(step: _ActionStep, playbook_types: list[Any]) -> str:
    for command in step.data.get("commands") or ():
        activity = command.get("playbook_activity") if isinstance(command, dict) else None
        if isinstance(activity, str) and activity in ACTIVITY_PHASE:
            return ACTIVITY_PHASE[activity].value
    known = {TYPE_PHASE[name] for name in playbook_types if isinstance(name, str) and name in TYPE_PHASE}
    return known.pop().value if len(known) == 1 else Phase.triage.value


def _references(document: dict[str, Any], problems: _Problems) -> tuple[list[str], list[int], list[str]]:
    """(reference URLs, the index in ``external_references`` each came from, ATT&CK techniques).

    A technique is an entry named ``mitre-attack`` with a technique id as ``external_id`` (the STIX convention
    our export follows); every other entry with an http(s) ``url`` is a reference.
    """
    entries = _typed(problems, document, "external_references", list, "a list of external references", ()) or []
    urls: list[str] = []
    origins: list[int] = []
    techniques: dict[str, None] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(("external_references", index), "expected an external reference (a JSON object)")
            continue
        external_id, url = entry.get("external_id"), entry.get("url")
        if str(entry.get("name", "")).lower() == "mitre-attack" and isinstance(external_id, str) \
                and _TECHNIQUE.fullmatch(external_id):
            techniques[external_id] = None
        elif isinstance(url, str) and _HTTP_URL.fullmatch(url):
            urls.append(url)
            origins.append(index)
    return urls, origins, list(techniques)


def _applies_to(document: dict[str, Any], techniques: list[str], playbook_id: str) -> dict[str, Any]:
    """Defaults for another producer's playbook: ATT&CK references and Sigma-style labels, else a tag of its own."""
    labels = document.get("labels") if isinstance(document.get("labels"), list) else []
    tags = list(dict.fromkeys(label.lower() for label in labels
                              if isinstance(label, str) and _SIGMA_TAG.fullmatch(label)))
    applies: dict[str, Any] = {}
    if techniques:
        applies["techniques"] = techniques
    applies["tags"] = tags or ([] if techniques else [f"civicsoc.playbook-{playbook_id}"])
    return {key: value for key, value in applies.items() if value}


def _header(document: Any, problems: _Problems) -> dict[str, Any] | None:
    """The checks without which nothing else can be read: a CACAO 2.0 playbook object with a workflow."""
    if not isinstance(document, dict):
        problems.add((), f"expected a CACAO playbook (a JSON object), got {type(document).__name__}")
        return None
    if document.get("type") != "playbook":
        problems.add(("type",), f"{document.get('type')!r} is not valid: expected 'playbook'")
    if document.get("spec_version") != SPEC_VERSION:
        problems.add(("spec_version",), f"{document.get('spec_version')!r} is not valid: expected {SPEC_VERSION!r} "
                                        "(CACAO 1.x playbooks have a different workflow structure)")
    workflow = _typed(problems, document, "workflow", dict, "the workflow steps (a JSON object of step id → step)",
                      (), required=True)
    start = _typed(problems, document, "workflow_start", str, "the id of the start step", (), required=True)
    if workflow is not None and start is not None:
        step = workflow.get(start)
        if step is None:
            problems.add(("workflow_start",), f"{start!r} is not in $.workflow: expected the id of the start step")
        elif not isinstance(step, dict) or step.get("type") != "start":
            problems.add(("workflow", start, "type"), "is not valid: expected 'start' (workflow_start must name the "
                                                     "start step)")
    _typed(problems, document, "name", str, "the playbook's name (a string)", (), required=True)
    return document if not problems.lines else None


def _extension(container: dict[str, Any], key: str, where: Location, problems: _Problems) -> dict[str, Any] | None:
    extensions = container.get(key)
    if not isinstance(extensions, dict) or EXTENSION_ID not in extensions:
        return None
    data = extensions[EXTENSION_ID]
    if not isinstance(data, dict):
        problems.add((*where, key, EXTENSION_ID), "expected the civicsoc extension's properties (a JSON object)")
        return None
    return data


PLAYBOOK_EXTENSION_KEYS = {"playbook_id": "the civicsoc playbook id", "version": "the playbook version",
                           "applies_to": "which incidents the playbook attaches to"}
STEP_EXTENSION_KEYS = {"step_id": "the civicsoc step id", "phase": "the step's phase"}


def _require(data: dict[str, Any], keys: dict[str, str], where: Location, problems: _Problems) -> None:
    for key, meaning in keys.items():
        if key not in data:
            problems.add((*where, key), f"missing: expected {meaning}")


def _unique_ids(steps: list[dict[str, Any]]) -> None:
    """Ids for steps that brought none: a slug of the title, with -2, -3... where two titles give the same one."""
    taken = {step["id"] for step in steps if step["id"] is not None}
    for step in steps:
        if step["id"] is not None:
            continue
        base = candidate = slug(step["title"], "step")
        counter = 2
        while candidate in taken:
            suffix = f"-{counter}"
            candidate, counter = base[:63 - len(suffix)] + suffix, counter + 1
        step["id"] = candidate
        taken.add(candidate)


def from_cacao(document: Any, *, source: Path | str) -> Playbook:
    """A ``Playbook`` from a parsed CACAO v2.0 document; ``CacaoError`` lists every problem with its JSON path.

    ``source`` names the document in the problems and becomes ``Playbook.source``.
    """
    problems = _Problems(str(source))
    header = _header(document, problems)
    if header is None:
        raise CacaoError(problems.lines)
    walker = _Workflow(header["workflow"], problems)
    walker.follow(header["workflow_start"], ("workflow_start",))
    if not walker.actions and not problems.lines:
        problems.add(("workflow",), "no action step is reached from workflow_start: expected at least one (a CACAO "
                                    "playbook has start, action and end steps)")
    if problems.lines:
        raise CacaoError(problems.lines)

    playbook_ext = _extension(header, "playbook_extensions", (), problems)
    if playbook_ext is not None:
        _require(playbook_ext, PLAYBOOK_EXTENSION_KEYS, ("playbook_extensions", EXTENSION_ID), problems)
    name = header["name"]
    description = _typed(problems, header, "description", str, "a description (a string)", ()) or ""
    urls, url_origins, techniques = _references(header, problems)
    agents = header.get("agent_definitions") if isinstance(header.get("agent_definitions"), dict) else {}
    playbook_types = header.get("playbook_types") if isinstance(header.get("playbook_types"), list) else []

    steps: list[dict[str, Any]] = []
    step_exts: list[dict[str, Any] | None] = []
    for action in walker.actions:
        where: Location = ("workflow", action.ref)
        ext = _extension(action.data, "step_extensions", where, problems)
        title = _typed(problems, action.data, "name", str, "the step's name (a string)", where)
        title = title if title is not None else f"Step {len(steps) + 1}"
        step: dict[str, Any] = {"id": None, "title": title}
        if ext is not None:
            _require(ext, STEP_EXTENSION_KEYS, (*where, "step_extensions", EXTENSION_ID), problems)
            step["id"], step["phase"] = ext.get("step_id"), ext.get("phase")
        else:
            step["phase"] = _default_phase(action, playbook_types)
        step["owner"] = _owner(action, agents, ext is not None, problems)
        step["instructions"] = _instructions(action, title, problems)
        step |= {key: ext[key] for key in ("due", "clock") if ext is not None and key in ext}
        steps.append(step)
        step_exts.append(ext)
    if problems.lines:
        raise CacaoError(problems.lines)
    _unique_ids(steps)

    if playbook_ext is not None:
        playbook_id, version = playbook_ext["playbook_id"], playbook_ext["version"]
        applies_to = playbook_ext["applies_to"]
    else:
        playbook_id, version = slug(name, "imported-playbook"), DEFAULT_VERSION
        applies_to = _applies_to(header, techniques, playbook_id)
    data: dict[str, Any] = {"id": playbook_id, "title": name, "version": version}
    if description:
        data["description"] = description
    if urls:
        data["references"] = urls
    data |= {"applies_to": applies_to, "steps": steps}

    def locate(location: Sequence[str | int]) -> Location:
        """Where in the CACAO document a value of our playbook dict came from."""
        if not location:
            return ()
        head, rest = str(location[0]), tuple(location[1:])
        if head in ("id", "version", "applies_to"):
            if playbook_ext is not None:
                return ("playbook_extensions", EXTENSION_ID, "playbook_id" if head == "id" else head, *rest)
            return ("name",) if head == "id" else ()  # made up by us from the name, or defaults
        if head in ("title", "description"):
            return ("name",) if head == "title" else ("description",)
        if head == "references":
            return ("external_references", url_origins[int(rest[0])], "url") if rest else ("external_references",)
        if head != "steps" or not rest:
            return ("workflow",) if head == "steps" else tuple(location)
        index, field_name, deeper = int(rest[0]), str(rest[1]) if len(rest) > 1 else "", rest[2:]
        where = ("workflow", walker.actions[index].ref)
        plain = {"title": "name", "instructions": "description", "owner": "agent"}
        if field_name in plain:
            return (*where, plain[field_name])
        if step_exts[index] is not None and field_name:
            return (*where, "step_extensions", EXTENSION_ID, "step_id" if field_name == "id" else field_name, *deeper)
        return (*where, "name") if field_name == "id" else where

    source_path = Path(source)
    found = validate_document(_Located(source_path, data, None, locate))
    if found:
        raise CacaoError(found)
    return Playbook.from_dict(data, source=source_path)
