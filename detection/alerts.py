"""Matches become alerts: the record an analyst triages, with what it needs at a glance.

An alert's id hashes the rule and the event(s), so the same rule matching the same event — on
ingest, in a retro-hunt, after a replay — is one alert (the store refuses the second create).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from civicsoc.event import Event, get_field
from civicsoc.records import Alert, Severity
from detection.entities import entities_of
from detection.rules import Rule

KEY_FIELDS = (
    "event.code", "event.action", "event.outcome", "event.dataset", "winlog.channel", "host.name", "user.name",
    "user.domain", "user.target.name", "source.ip", "source.port", "destination.ip", "destination.port",
    "process.executable", "process.command_line", "process.parent.executable", "process.parent.command_line",
    "file.path", "registry.path", "dns.question.name", "url.original", "powershell.file.script_block_text",
    "service.name", "message",
)
FIELD_TEXT_LIMIT = 2000


def alert_id(rule_id: str, event_ids: Iterable[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(rule_id.encode())
    for event_id in sorted(event_ids):
        digest.update(b"\x00" + event_id.encode())
    return "al-" + digest.hexdigest()


def severity_of(rule: Rule) -> Severity:
    try:
        return Severity(rule.level or "medium")
    except ValueError:
        return Severity.medium


def key_fields(document: dict[str, Any]) -> dict[str, Any]:
    """The fields triage shows first, flattened, long texts cut (the event itself stays in the store)."""
    found: dict[str, Any] = {}
    for name in KEY_FIELDS:
        value = get_field(document, name)
        if value is None or value == "":
            continue
        if isinstance(value, str) and len(value) > FIELD_TEXT_LIMIT:
            value = value[:FIELD_TEXT_LIMIT] + "…"
        found[name] = value
    return found


def alert_from_events(rule: Rule, events: list[Event], *, origin: str = "stream",
                      now: datetime | None = None) -> Alert:
    """One alert for a rule over one event (a detection) or several (a correlation)."""
    moment = now or datetime.now(UTC)
    first = min(events, key=lambda e: (e.timestamp, e.id))
    hosts: set[str] = set()
    users: set[str] = set()
    ips: set[str] = set()
    domains: set[str] = set()
    hashes: set[str] = set()
    for event in events:
        found = entities_of(event.fields)
        hosts.update(found.hosts)
        users.update(found.users)
        ips.update(found.ips)
        domains.update(found.domains)
        hashes.update(found.hashes)
    return Alert(
        id=alert_id(rule.id, (e.id for e in events)),
        tenant=first.tenant,
        rule_id=rule.id,
        rule_title=rule.title,
        severity=severity_of(rule),
        tags=list(rule.tags),
        techniques=list(rule.techniques),
        tactics=list(rule.tactics),
        event_ids=sorted(e.id for e in events),
        hosts=sorted(hosts),
        users=sorted(users),
        ips=sorted(ips),
        domains=sorted(domains),
        hashes=sorted(hashes),
        correlation=rule.is_correlation,
        origin=origin,
        fields=key_fields(first.fields),
        timestamp=first.timestamp,
        created_at=moment,
        updated_at=moment,
    )
