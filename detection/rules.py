"""Sigma rule files → a ``RuleSet``: every rule pySigma parses, mapped and compiled, or skipped with a reason.

Files are read one at a time and parsed by pySigma (``SigmaCollection``: detection rules, correlation
rules, filters, multi-document files with ``action: global``). A broken file or rule never stops the
load: it becomes a ``SkippedRule`` naming the file, the rule id when known, and pySigma's own message
with the location it gives.

Each detection rule then goes through ``detection.pipelines.civicsoc_pipeline`` once and is compiled by
``detection.matcher``; the processed pySigma object stays on the ``Rule`` (``Rule.sigma``) so the
Elasticsearch conversion reads exactly what the matcher compiled.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

from civicsoc.errors import ConfigError
from detection import encodings
from detection.correlation import Correlation, UnsupportedCorrelation, correlation_of
from detection.matcher import CompiledRule, UnsupportedRule, compile_rule, fields_of
from detection.pipelines import civicsoc_pipeline

if TYPE_CHECKING:
    from civicsoc.config import RulesSettings

RULE_SUFFIXES = (".yml", ".yaml")

YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The safe loader pySigma uses, in its libyaml (C) build when available: same documents, ~10x faster."""

ATTACK_TACTICS = (
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "stealth", "defense-impairment", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
)
"""MITRE ATT&CK Enterprise tactics by their short names, the form Sigma tags use (``attack.stealth``).
Written out because pySigma's ATT&CK table downloads itself at first use, and hunts must work offline.
ATT&CK v19 split Defense Evasion into Stealth and Defense Impairment, and current SigmaHQ rules carry
only the new two (944 and 378 rules in the shared copy); older rules and playbooks keep
``defense-evasion``, so all three are known."""

_TECHNIQUE = re.compile(r"t\d{4}(?:\.\d{3})?")

encodings.install()  # spec-exact UTF-16 modifiers for the parser (see detection.encodings)


@dataclass(frozen=True, slots=True)
class LogSource:
    category: str | None = None
    product: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """A loaded rule: what alerts and reports show, plus what the engines run.

    Equality is identity: two loads of the same file are different rules, and the pySigma object inside
    is neither cheap to compare nor immutable."""

    id: str
    """The rule's ``id``; a rule without one gets a UUID derived from its file name, position and title."""
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    techniques: tuple[str, ...]
    """ATT&CK technique ids from the tags (``attack.t1059.001`` → ``T1059.001``)."""
    tactics: tuple[str, ...]
    """ATT&CK tactic short names from the tags (``attack.defense-evasion`` → ``defense-evasion``)."""
    logsource: LogSource
    description: str | None
    falsepositives: tuple[str, ...]
    references: tuple[str, ...]
    author: str | None
    name: str | None
    """The rule's ``name`` (what correlation rules may reference it by)."""
    path: Path | None
    generates_alerts: bool
    """False for a base rule that a correlation uses with ``generate: false``: it still runs (the
    correlation needs its matches) but its own matches are not alerts."""
    sigma: SigmaRule | SigmaCorrelationRule = field(repr=False)
    """The pySigma rule with ``civicsoc_pipeline`` applied — for ``pipelines.conversion_backend()``."""
    matcher: CompiledRule | None = field(default=None, repr=False)
    """The compiled condition; ``None`` for a correlation rule."""
    correlation: Correlation | None = field(default=None, repr=False)
    """What a correlation rule counts; ``None`` for a detection rule."""
    fields: frozenset[str] = frozenset()
    """The event fields the rule reads (after the ECS mapping)."""

    @property
    def is_correlation(self) -> bool:
        return self.correlation is not None


@dataclass(frozen=True, slots=True)
class SkippedRule:
    """A file or rule that did not load, and why (pySigma's message, with the location it knows)."""

    file: Path
    rule_id: str | None
    title: str | None
    reason: str


@dataclass(frozen=True)
class RuleSet:
    loaded: tuple[Rule, ...]
    skipped: tuple[SkippedRule, ...]
    files: int = 0
    """How many rule files were read."""

    @property
    def detections(self) -> tuple[Rule, ...]:
        """Rules with a compiled condition, in load order (what the engines run)."""
        return tuple(rule for rule in self.loaded if rule.matcher is not None)

    @property
    def correlations(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.loaded if rule.correlation is not None)

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.loaded}


def builtin_rules_path() -> Path:
    """civicsoc's own rules, shipped with the install: ``rules/`` sits beside ``detection/`` both in
    the source tree and in site-packages (it is a data package of the same distribution)."""
    return Path(__file__).resolve().parent.parent / "rules"


def load_configured_rules(settings: RulesSettings, extra: Iterable[Path] = ()) -> RuleSet:
    """The rules a command or the API runs: civicsoc's own (unless ``rules.builtin`` is off), then
    ``rules.paths``, then ``extra`` (``--rules``); a folder named twice is loaded once. A path that does
    not exist is a configuration error, not an empty rule set."""
    given = [*([builtin_rules_path()] if settings.builtin else []), *settings.paths, *extra]
    paths = list(dict.fromkeys(path.resolve() for path in given))
    for path in paths:
        if not path.exists():
            raise ConfigError([f"rules path {path}: does not exist"])
    return load_rules(paths, placeholders=settings.placeholders or None)


def iter_rule_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Rule files under ``paths`` (files as given, directories recursively), each directory in sorted order
    so every load sees the rules in the same order."""
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            yield from sorted(item for item in path.rglob("*") if item.suffix in RULE_SUFFIXES and item.is_file())
        else:
            yield path


def load_rules(
    paths: Iterable[Path | str],
    *,
    placeholders: Mapping[str, Sequence[str | int]] | None = None,
) -> RuleSet:
    """Load every rule under ``paths``; nothing in one file stops the others.

    ``placeholders`` gives the values of ``%name%`` placeholders in ``|expand`` values; a rule whose
    placeholder has none is skipped (matching it as a wildcard would raise alerts on anything)."""
    skipped: list[SkippedRule] = []
    parsed: list[tuple[Path, int, SigmaRule | SigmaCorrelationRule]] = []
    filters: list[tuple[Path, SigmaFilter]] = []
    files = 0
    seen_ids: dict[str, Path] = {}
    for path in iter_rule_files(paths):
        files += 1
        for position, item in enumerate(_parse_file(path, skipped)):
            if isinstance(item, SigmaFilter):
                filters.append((path, item))
                continue
            rule_id = _rule_id(item, path, position)
            if rule_id in seen_ids:
                if seen_ids[rule_id] != path:
                    skipped.append(SkippedRule(path, rule_id, item.title,
                                               f"duplicate rule id {rule_id}: already loaded from {seen_ids[rule_id]}"))
                    continue
                # Legacy multi-document files (action: global/repeat) give every document the file's id:
                # they are different rules, so the later documents get the position as a suffix.
                item.custom_attributes["civicsoc_id"] = rule_id = f"{rule_id}:{position}"
            seen_ids[rule_id] = path
            parsed.append((path, position, item))

    collection = SigmaCollection([item for _, _, item in parsed], resolve_references=False, collect_filters=True)
    broken: dict[int, str] = {}
    for path, sigma_filter in filters:
        _apply_filter(path, sigma_filter, parsed, skipped)
    for _path, _position, item in parsed:
        if isinstance(item, SigmaCorrelationRule):
            try:
                item.resolve_rule_references(collection)
            except SigmaError as exc:
                broken[id(item)] = f"correlation references cannot be resolved: {exc}"

    pipeline = civicsoc_pipeline(placeholders)
    compiled: dict[int, CompiledRule] = {}
    for _path, _position, item in parsed:
        if isinstance(item, SigmaRule):
            try:
                pipeline.apply(item)
                compiled[id(item)] = compile_rule(item)
            except (SigmaError, UnsupportedRule) as exc:
                broken[id(item)] = str(exc)
    for _path, _position, item in parsed:
        if isinstance(item, SigmaCorrelationRule) and id(item) not in broken:
            problem = _referenced_problem(item, broken)
            if problem is None:
                try:
                    pipeline.apply(item)
                except SigmaError as exc:
                    problem = f"field mapping failed: {exc}"
            if problem is not None:
                broken[id(item)] = problem

    loaded: list[Rule] = []
    rules_by_object: dict[int, Rule] = {}
    for path, position, item in parsed:  # detection rules first: correlations refer to them
        if isinstance(item, SigmaRule):
            if id(item) in broken:
                skipped.append(SkippedRule(path, _known_id(item), item.title, broken[id(item)]))
                continue
            rule = _rule(item, path, position, matcher=compiled[id(item)])
            rules_by_object[id(item)] = rule
            loaded.append(rule)
    for path, position, item in parsed:
        if isinstance(item, SigmaCorrelationRule):
            if id(item) in broken:
                skipped.append(SkippedRule(path, _known_id(item), item.title, broken[id(item)]))
                continue
            try:
                correlation = correlation_of(item, rules_by_object)
            except (UnsupportedCorrelation, KeyError) as exc:  # KeyError: a referenced rule was skipped
                skipped.append(SkippedRule(path, _known_id(item), item.title, f"unsupported correlation: {exc}"))
                continue
            rule = _rule(item, path, position, correlation=correlation)
            rules_by_object[id(item)] = rule
            loaded.append(rule)
    return RuleSet(loaded=tuple(loaded), skipped=tuple(skipped), files=files)


def _parse_file(path: Path, skipped: list[SkippedRule]) -> list[SigmaRule | SigmaCorrelationRule | SigmaFilter]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        skipped.append(SkippedRule(path, None, None, f"cannot read the file: {exc}"))
        return []
    try:  # libyaml's parser when PyYAML has it: the pure-Python one is most of a cold load's time
        documents = list(yaml.load_all(text, Loader=YAML_LOADER))
    except yaml.YAMLError as exc:
        skipped.append(SkippedRule(path, None, None, f"not valid YAML: {exc}"))
        return []
    try:  # what SigmaCollection.from_yaml does after its yaml.safe_load_all
        collection = SigmaCollection.from_dicts(documents, collect_errors=True, source=SigmaRuleLocation(path),
                                                collect_filters=True, resolve_references=False)
    except SigmaError as exc:
        skipped.append(SkippedRule(path, None, None, str(exc)))
        return []
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        # pySigma assumes each YAML document is a mapping; a list or scalar document fails inside it.
        skipped.append(SkippedRule(path, None, None, f"not a Sigma rule document ({type(exc).__name__}: {exc})"))
        return []
    items: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
    for item in [*collection.rules, *collection.filters]:
        if item.errors:
            reasons = "; ".join(str(error) for error in item.errors)
            skipped.append(SkippedRule(path, _known_id(item), item.title or None, reasons))
        else:
            items.append(item)
    rule_errors = {id(error) for item in [*collection.rules, *collection.filters] for error in item.errors}
    for error in collection.errors:
        if id(error) not in rule_errors:
            skipped.append(SkippedRule(path, None, None, str(error)))
    return items


def _apply_filter(path: Path, sigma_filter: SigmaFilter,
                  parsed: list[tuple[Path, int, SigmaRule | SigmaCorrelationRule]], skipped: list[SkippedRule]) -> None:
    """pySigma filters (``filter:`` documents) narrow the rules they name, as ``SigmaCollection`` does."""
    for index, (rule_path, position, item) in enumerate(parsed):
        if not isinstance(item, SigmaRule):
            continue
        try:
            parsed[index] = (rule_path, position, sigma_filter.apply_on_rule(item))
        except SigmaError as exc:
            skipped.append(SkippedRule(path, _known_id(sigma_filter), sigma_filter.title,
                                       f"filter could not be applied to {rule_path}: {exc}"))
            return


def _referenced_problem(rule: SigmaCorrelationRule, broken: Mapping[int, str]) -> str | None:
    for reference in rule.referenced_rules:
        target = reference.rule
        if id(target) in broken:
            return f"references rule {reference.reference!r}, which was skipped: {broken[id(target)]}"
        if isinstance(target, SigmaCorrelationRule):
            problem = _referenced_problem(target, broken)
            if problem is not None:
                return problem
    return None


def _known_id(rule: SigmaRule | SigmaCorrelationRule | SigmaFilter) -> str | None:
    return str(rule.id) if rule.id is not None else None


def _rule_id(rule: SigmaRule | SigmaCorrelationRule, path: Path, position: int) -> str:
    if "civicsoc_id" in rule.custom_attributes:
        return str(rule.custom_attributes["civicsoc_id"])
    if rule.id is not None:
        return str(rule.id)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"civicsoc-rule:{path.name}:{position}:{rule.title}"))


def _rule(sigma: SigmaRule | SigmaCorrelationRule, path: Path, position: int, *, matcher: CompiledRule | None = None,
          correlation: Correlation | None = None) -> Rule:
    tags = tuple(str(tag) for tag in sigma.tags)
    techniques: list[str] = []
    tactics: list[str] = []
    for tag in sigma.tags:
        if tag.namespace != "attack":
            continue
        name = tag.name.lower()
        if _TECHNIQUE.fullmatch(name):
            techniques.append(name.upper())
        else:
            tactic = name.replace("_", "-")
            if tactic in ATTACK_TACTICS:
                tactics.append(tactic)
    logsource = getattr(sigma, "logsource", None)
    return Rule(
        id=_rule_id(sigma, path, position),
        title=sigma.title,
        level=sigma.level.name.lower() if sigma.level is not None else None,
        status=sigma.status.name.lower() if sigma.status is not None else None,
        tags=tags,
        techniques=tuple(dict.fromkeys(techniques)),
        tactics=tuple(dict.fromkeys(tactics)),
        logsource=LogSource(logsource.category, logsource.product, logsource.service) if logsource else LogSource(),
        description=sigma.description,
        falsepositives=tuple(_texts(sigma.falsepositives)),
        references=tuple(_texts(sigma.references)),
        author=sigma.author,
        name=sigma.name,
        path=path,
        generates_alerts=bool(sigma._output),  # pySigma clears it for base rules of a generate: false correlation
        sigma=sigma,
        matcher=matcher,
        correlation=correlation,
        fields=frozenset(fields_of(matcher.tree)) if matcher is not None else frozenset(),
    )


def _texts(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return [str(value) for value in values if value is not None]
