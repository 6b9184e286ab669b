"""Reading playbook files: the built-in library plus an agency's own folders, checked before use.

Each file is validated against ``schema.json`` (JSON Schema draft 2020-12, with the ``jsonschema``
library) and then for what a schema cannot say: step ids unique within a playbook, at least one
matching criterion, no (id, version) defined twice across files. Every problem names the file, the
line (from ``civicsoc.yamlsource``) and the path inside the document, e.g.
``playbooks/library/ransomware.yml:14: steps[2].phase: 'contain' is not one of [...]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from civicsoc.errors import CivicsocError
from civicsoc.yamlsource import YamlDocument
from playbooks.model import Playbook, UnknownPlaybook, parse_duration

PACKAGE_DIR = Path(__file__).resolve().parent
BUILTIN_DIR = PACKAGE_DIR / "library"
SCHEMA_PATH = PACKAGE_DIR / "schema.json"
SUFFIXES = (".yml", ".yaml")


class PlaybookLoadError(CivicsocError):
    """One or more playbook files are invalid; ``problems`` has one located line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5]) + (f"; and {len(self.problems) - 5} more" if len(self.problems) > 5
                                                else "")
        super().__init__(f"invalid playbooks: {shown}")


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


@dataclass(frozen=True, slots=True)
class FileResult:
    """What became of one file: its playbook, or the problems that kept it out."""

    path: Path
    playbook: Playbook | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PlaybookLibrary:
    """Every loaded playbook; an id may come in several versions, and the highest one is what attaches."""

    playbooks: tuple[Playbook, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.playbooks, key=lambda p: (p.id, p.version_key)))
        object.__setattr__(self, "playbooks", ordered)

    def __iter__(self) -> Iterator[Playbook]:
        return iter(self.playbooks)

    def __len__(self) -> int:
        return len(self.playbooks)

    @property
    def ids(self) -> list[str]:
        return sorted({playbook.id for playbook in self.playbooks})

    def latest(self) -> tuple[Playbook, ...]:
        """The highest version of each playbook id, by id."""
        newest: dict[str, Playbook] = {}
        for playbook in self.playbooks:  # sorted by (id, version): the last one of an id wins
            newest[playbook.id] = playbook
        return tuple(newest.values())

    def get(self, playbook_id: str, version: str | None = None) -> Playbook:
        """The playbook of that id in ``version`` (the highest version when ``None``); ``UnknownPlaybook`` if absent."""
        found = [p for p in self.playbooks if p.id == playbook_id and (version is None or p.version == version)]
        if not found:
            raise UnknownPlaybook(playbook_id, version, self.ids)
        return found[-1]


def builtin_playbooks_path() -> Path:
    """The playbooks shipped with civicsoc (``playbooks/library``, package data of the distribution)."""
    return BUILTIN_DIR


def playbook_files(paths: Iterable[Path | str]) -> list[Path]:
    """Files under ``paths`` (files as given, folders recursively in sorted order): the same order on every load."""
    files: dict[Path, Path] = {}  # resolved → as given: a file reached twice (built-in folder named again) counts once
    for entry in paths:
        path = Path(entry)
        found = sorted(item for item in path.rglob("*") if item.suffix in SUFFIXES and item.is_file()) \
            if path.is_dir() else [path]
        for item in found:
            files.setdefault(item.resolve(), item)
    return list(files.values())


def _location(error: ValidationError) -> list[str | int]:
    return list(error.absolute_path)


def _message(error: ValidationError) -> str:
    """jsonschema's message, plus what was expected where the schema says it (patterns and types)."""
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator in ("pattern", "type") and expected:
        return f"{error.instance!r} is not valid: expected {expected}"
    return error.message


def validate_document(document: YamlDocument) -> list[str]:
    """Every problem of one parsed file, each as ``file:line: path: message``; empty when valid."""
    data = document.data
    if data is None:
        return [f"{document.path}: empty document: expected a playbook (a mapping with id, title, version, "
                "applies_to and steps)"]
    errors = sorted(_validator().iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        return [f"{document.describe(_location(error))}: {_message(error)}" for error in errors]
    problems: list[str] = []
    criteria = ("techniques", "tactics", "rule_ids", "tags")
    if not any(data["applies_to"].get(name) for name in criteria):
        problems.append(f"{document.describe(['applies_to'])}: name at least one of {', '.join(criteria)} "
                        "(min_severity alone would attach the playbook to every incident)")
    first_seen: dict[str, int] = {}
    for index, step in enumerate(data["steps"]):
        if step["id"] in first_seen:
            problems.append(f"{document.describe(['steps', index, 'id'])}: duplicate step id {step['id']!r} "
                            f"(first used by steps[{first_seen[step['id']]}])")
        else:
            first_seen[step["id"]] = index
        if "due" in step and "clock" in step:
            problems.append(f"{document.describe(['steps', index, 'clock'])}: give either due or clock, not both "
                            "(a clock step is due when the regulatory deadline is)")
        if "due" in step:
            try:
                duration = parse_duration(step["due"]["within"])
            except ValueError as exc:
                problems.append(f"{document.describe(['steps', index, 'due', 'within'])}: {exc}")
            else:
                if not duration:
                    problems.append(f"{document.describe(['steps', index, 'due', 'within'])}: the duration must "
                                    "be longer than zero")
    return problems


def read_file(path: Path) -> FileResult:
    """Parse and validate one file; never raises for a bad file, the problems are in the result."""
    try:
        document = YamlDocument.load(path)
    except ValueError as exc:  # YAML syntax: the message already has file:line:column
        return FileResult(path, None, (str(exc),))
    except (OSError, UnicodeDecodeError) as exc:
        return FileResult(path, None, (f"{path}: cannot read ({exc})",))
    problems = validate_document(document)
    if problems:
        return FileResult(path, None, tuple(problems))
    return FileResult(path, Playbook.from_dict(document.data, source=path))


def check_files(paths: Iterable[Path | str] | None = None, *, builtin: bool = True) -> list[FileResult]:
    """Read the built-in library (unless ``builtin=False``) and ``paths``; a second file defining an
    (id, version) that an earlier one defined gets a problem naming the first."""
    sources = [*([BUILTIN_DIR] if builtin else []), *(paths or [])]
    results: list[FileResult] = []
    defined: dict[tuple[str, str], Path] = {}
    for path in playbook_files(sources):
        result = read_file(path)
        playbook = result.playbook
        if playbook is not None:
            key = (playbook.id, playbook.version)
            if key in defined:
                where = YamlDocument.load(path).describe(["version"])
                result = FileResult(path, None, (f"{where}: playbook {playbook.id!r} version {playbook.version!r} is "
                                                 f"defined already in {defined[key]}; raise the version to override "
                                                 "it",))
            else:
                defined[key] = path
        results.append(result)
    return results


def load_playbooks(paths: Iterable[Path | str] | None = None, *, builtin: bool = True) -> PlaybookLibrary:
    """The built-in playbooks plus those under ``paths``; ``PlaybookLoadError`` if any file is invalid.

    All or nothing on purpose: a response playbook that silently failed to load is a step nobody takes.
    """
    results = check_files(paths, builtin=builtin)
    problems = [problem for result in results for problem in result.problems]
    if problems:
        raise PlaybookLoadError(problems)
    return PlaybookLibrary(tuple(result.playbook for result in results if result.playbook is not None))


def read_playbook(path: Path) -> Playbook:
    result = read_file(path)
    if result.playbook is None:
        raise PlaybookLoadError(result.problems)
    return result.playbook
