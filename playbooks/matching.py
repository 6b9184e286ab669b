"""Which playbooks apply to an incident, best first. Pure: no store, no clock.

A playbook applies when the incident reaches its ``min_severity`` and shares at least one criterion
with it: an ATT&CK technique, a tactic, a rule id or a tag. Techniques match across the
sub-technique boundary both ways, because detection rules tag at either level:

- the playbook lists ``T1003`` and the incident has ``T1003.001``: the parent covers its sub-techniques;
- the playbook lists ``T1003.001`` and the incident has only ``T1003``: the incident may well be that
  sub-technique, so the playbook is offered, but ranked below an exact match.

Order: playbooks that name one of the incident's rules first, then by exact technique matches,
parent matches, sub-technique matches, tags, tactics; ties by playbook id. So a DNS tunnelling
incident (T1071.004) lists the DNS tunnelling playbook (which names T1071.004) before the generic
C2 playbook (which names T1071).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from civicsoc.records import Incident
from playbooks.model import Playbook


@dataclass(frozen=True, slots=True)
class PlaybookMatch:
    playbook: Playbook
    reasons: tuple[str, ...]
    """Why it applies, for the analyst: ``technique T1490``, ``technique T1003 covers T1003.001``..."""
    score: tuple[int, int, int, int, int, int]
    """(rule ids, exact techniques, parent techniques, sub-techniques, tags, tactics) matched."""


def parent_technique(technique: str) -> str:
    """``T1003.001`` → ``T1003``; a technique is its own parent."""
    return technique.split(".", 1)[0]


def incident_tags(incident: Incident, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Sigma tags an incident stands for: ``attack.<technique>`` and ``attack.<tactic>`` from its ATT&CK
    fields (the form rules use, lowercase), plus ``extra`` tags such as those of its alerts' rules."""
    tags = {f"attack.{technique.lower()}" for technique in incident.techniques}
    tags.update(f"attack.{tactic.lower()}" for tactic in incident.tactics)
    tags.update(tag.lower() for tag in extra)
    return frozenset(tags)


def match_playbook(playbook: Playbook, incident: Incident, tags: frozenset[str] = frozenset()) -> PlaybookMatch | None:
    """The match of one playbook, or ``None`` when it does not apply. ``tags`` as from ``incident_tags``."""
    wanted = playbook.applies_to
    if wanted.min_severity is not None and incident.severity.rank < wanted.min_severity.rank:
        return None
    reasons: list[str] = []
    rules = [rule for rule in wanted.rule_ids if rule in incident.rule_ids]
    reasons += [f"rule {rule}" for rule in rules]
    exact, parents, subs = 0, 0, 0
    have = set(incident.techniques)
    for technique in wanted.techniques:
        if technique in have:
            exact += 1
            reasons.append(f"technique {technique}")
            continue
        if "." not in technique:
            covered = sorted(t for t in have if parent_technique(t) == technique)
            if covered:
                parents += 1
                reasons.append(f"technique {technique} covers {', '.join(covered)}")
        elif parent_technique(technique) in have:
            subs += 1
            reasons.append(f"technique {parent_technique(technique)} may be {technique}")
    tag_hits = [tag for tag in wanted.tags if tag in tags]
    reasons += [f"tag {tag}" for tag in tag_hits]
    tactic_hits = [tactic for tactic in wanted.tactics if tactic in incident.tactics]
    reasons += [f"tactic {tactic}" for tactic in tactic_hits]
    if not reasons:
        return None
    return PlaybookMatch(playbook, tuple(reasons), (len(rules), exact, parents, subs, len(tag_hits), len(tactic_hits)))


def match_playbooks(playbooks: Iterable[Playbook], incident: Incident, *,
                    tags: Iterable[str] = ()) -> list[PlaybookMatch]:
    """Every playbook that applies to ``incident``, best first (see the module docstring for the order).

    Pass ``library.latest()`` so only the current version of each playbook is considered.
    """
    known = incident_tags(incident, tags)
    matches = [match for playbook in playbooks if (match := match_playbook(playbook, incident, known)) is not None]
    return sorted(matches, key=lambda m: (tuple(-n for n in m.score), m.playbook.id, m.playbook.version_key))
