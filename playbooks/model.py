"""Playbooks as values: what a YAML playbook says, once the schema has accepted it.

The JSON Schema (``schema.json``) is the contract for the file format and gives the located error
messages; these frozen dataclasses are what the rest of civicsoc works with, so nobody re-reads raw
dicts. ``Playbook.from_dict`` expects a document the schema accepted (``playbooks.loader`` checks it);
``to_dict`` writes one back that the schema accepts again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from civicsoc.errors import CivicsocError, NotFound
from civicsoc.records import Severity


class Phase(StrEnum):
    """The incident-handling phases, in the order NIST SP 800-61 and ENISA's good-practice guides use."""

    triage = "triage"
    containment = "containment"
    eradication = "eradication"
    recovery = "recovery"
    notification = "notification"
    lessons_learned = "lessons-learned"


class Owner(StrEnum):
    """Who in the agency does a step. Organisational roles, not API roles: one person may hold several."""

    soc_analyst = "soc-analyst"
    incident_lead = "incident-lead"
    it_operations = "it-operations"
    identity_admin = "identity-admin"
    network_admin = "network-admin"
    application_owner = "application-owner"
    dpo = "dpo"
    ciso = "ciso"
    legal = "legal"
    communications = "communications"
    management = "management"
    hr = "hr"


class Basis(StrEnum):
    """The moment a step's due time counts from."""

    detection = "detection"
    """``Incident.created_at``: when civicsoc opened the incident."""
    significant = "significant"
    """``Incident.significant_at``: when the incident was confirmed significant (the regulatory clock start)."""


class Clock(StrEnum):
    """Regulatory deadlines a notification step can be tied to (computed in ``playbooks.clocks``)."""

    nis2_early_warning = "nis2-early-warning"
    nis2_incident_notification = "nis2-incident-notification"
    nis2_final_report = "nis2-final-report"
    gdpr_breach_notification = "gdpr-breach-notification"
    cisa_incident_notification = "cisa-incident-notification"


class PlaybookError(CivicsocError):
    """A playbook operation the playbook or run does not allow."""


class UnknownPlaybook(NotFound):
    def __init__(self, playbook_id: str, version: str | None = None, known: list[str] | None = None) -> None:
        CivicsocError.__init__(
            self, f"playbook {playbook_id!r}" + (f" version {version!r}" if version else "") + " is not loaded"
            + (f" (loaded: {', '.join(known)})" if known else ""))
        self.collection, self.record_id = "playbooks", playbook_id


class UnknownStep(NotFound):
    """``where`` is what lacks the step, in words: ``playbook run 'inc-1.ransomware'``."""

    def __init__(self, where: str, step_id: str, known: list[str]) -> None:
        CivicsocError.__init__(self, f"{where} has no step {step_id!r}; its steps are: {', '.join(known)}")
        self.collection, self.record_id, self.step_id = "playbook_runs", where, step_id


_SHORT_DURATION = re.compile(r"([1-9][0-9]*)([mhdw])")
_ISO_DURATION = re.compile(r"P(?=[0-9]|T[0-9])(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?"
                           r"(?:([0-9]+)S)?)?")
_SHORT_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``"24h"``, ``"3d"``, ``"PT4H"``, ``"P1DT12H"`` → a ``timedelta``.

    Written here (not pydantic's parser) because pydantic reads ``P1M`` as 30 days: a due time must
    be a fixed length, and a month is not one, so years and months are refused outright.
    """
    short = _SHORT_DURATION.fullmatch(text)
    if short:
        return timedelta(**{_SHORT_UNITS[short.group(2)]: int(short.group(1))})
    iso = _ISO_DURATION.fullmatch(text)
    if iso is None:
        raise ValueError(f"{text!r} is not a duration: expected 30m, 4h, 3d, 1w or ISO 8601 such as PT4H or P1DT12H "
                         "(no years or months)")
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in iso.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True, slots=True)
class Due:
    """A step is due ``within`` after the incident's detection or its confirmation as significant."""

    within: timedelta
    relative_to: Basis
    text: str
    """The duration as written, kept so ``to_dict`` gives back the author's form."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Due:
        return cls(parse_duration(data["within"]), Basis(data["relative_to"]), data["within"])

    def to_dict(self) -> dict[str, Any]:
        return {"within": self.text, "relative_to": self.relative_to.value}


@dataclass(frozen=True, slots=True)
class AppliesTo:
    """Which incidents a playbook is for: any listed technique, tactic, rule id or tag, at ``min_severity`` or above."""

    techniques: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    min_severity: Severity | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppliesTo:
        severity = data.get("min_severity")
        return cls(tuple(data.get("techniques", ())), tuple(data.get("tactics", ())), tuple(data.get("rule_ids", ())),
                   tuple(tag.lower() for tag in data.get("tags", ())), Severity(severity) if severity else None)

    def to_dict(self) -> dict[str, Any]:
        names = ("techniques", "tactics", "rule_ids", "tags")
        data: dict[str, Any] = {name: list(getattr(self, name)) for name in names if getattr(self, name)}
        if self.min_severity is not None:
            data["min_severity"] = self.min_severity.value
        return data


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    title: str
    phase: Phase
    owner: Owner
    instructions: str
    due: Due | None = None
    clock: Clock | None = None
    """The regulatory deadline this step meets: its due time, and its completion counts as the submission."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(id=data["id"], title=data["title"], phase=Phase(data["phase"]), owner=Owner(data["owner"]),
                   instructions=data["instructions"], due=Due.from_dict(data["due"]) if "due" in data else None,
                   clock=Clock(data["clock"]) if "clock" in data else None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "title": self.title, "phase": self.phase.value,
                                "owner": self.owner.value, "instructions": self.instructions}
        if self.due is not None:
            data["due"] = self.due.to_dict()
        if self.clock is not None:
            data["clock"] = self.clock.value
        return data


@dataclass(frozen=True, slots=True)
class Playbook:
    id: str
    title: str
    version: str
    applies_to: AppliesTo
    steps: tuple[Step, ...]
    description: str = ""
    references: tuple[str, ...] = ()
    source: Path | None = field(default=None, compare=False)
    """The file it was read from (``None`` when built in code)."""

    @property
    def version_key(self) -> tuple[int, ...]:
        """Numeric order of versions ("1.10" after "1.9"), padded so "1" and "1.0.0" compare equal."""
        parts = tuple(int(part) for part in self.version.split("."))
        return parts + (0,) * (3 - len(parts))

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise UnknownStep(f"playbook {self.id!r} version {self.version!r}", step_id, [s.id for s in self.steps])

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(step.id for step in self.steps)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | None = None) -> Playbook:
        """Build from a document the schema accepted (``playbooks.loader.validate_document``)."""
        return cls(id=data["id"], title=data["title"], version=data["version"],
                   applies_to=AppliesTo.from_dict(data["applies_to"]),
                   steps=tuple(Step.from_dict(step) for step in data["steps"]),
                   description=data.get("description", ""), references=tuple(data.get("references", ())),
                   source=source)

    @classmethod
    def from_yaml(cls, path: Path | str) -> Playbook:
        """Read and validate one playbook file; ``PlaybookLoadError`` lists every problem with file:line and path."""
        from playbooks.loader import read_playbook  # the loader imports this module: import at call time

        return read_playbook(Path(path))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "title": self.title, "version": self.version}
        if self.description:
            data["description"] = self.description
        if self.references:
            data["references"] = list(self.references)
        data["applies_to"] = self.applies_to.to_dict()
        data["steps"] = [step.to_dict() for step in self.steps]
        return data
