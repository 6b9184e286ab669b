"""Rule health: for each rule, whether it can fire at all — the view that keeps detection from failing silently.

A Sigma rule can load and still never match: a field the pipeline does not map (it stays a Sigma name no
event has), a field mapped to an ECS name no collector of that logsource writes, a logsource whose events
never arrive, or a tenant who disabled it. ``rule_health`` says which, per rule:

- loaded, or skipped with the loader's reason;
- unmapped fields (``UnmappedField``), judged against ``PRODUCED_FIELDS`` below;
- events of its logsource in the recent window, counted in the store with the logsource's own conditions
  (``logsource_filters``: the very conditions ``detection.pipelines`` adds to the rule, read back from a
  probe rule of that logsource, so the count and the matcher agree on what "its events" are);
- its last match (the newest alert of the rule) and how many alerts it raised;
- whether it is enabled in each tenant of the scope, and its active exceptions.

Cost, for ~4,000 SigmaHQ rules: the probe and the count run once per distinct logsource (~130 in SigmaHQ),
alerts are counted per rule in one aggregation and only the rules that fired get a newest-alert look-up.

**Which fields our collectors produce** is a declared table (``PRODUCED_FIELDS``), not a scan of stored
events: the store can count by value but cannot list field names, and a scan would make the view as slow
as the event store is large. The table was read off the real output of every collector over the shared
corpora (EVTX samples, pcaps, auth/syslog, auditd and access logs), and ``tests/test_rule_health.py`` runs
the collectors over real files again and fails when they write a field the table lacks. Where a collector
passes raw fields through under their own names (Windows EventData/UserData under ``winlog.event_data.``,
auditd keys under ``auditd.log.``), any field below that prefix counts as produced. NDJSON imports carry
whatever their files hold, so they are not part of the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.processing.transformations.base import FieldMappingTransformationBase
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaFieldReference, SigmaNumber, SigmaString

from civicsoc.records import Alert, utcnow
from civicsoc.store import EventQuery, RecordQuery, Scope, Store, Terms, TimeRange
from civicsoc.store.base import MAX_PAGE
from detection.pipelines import NETWORK_DATASETS, WEB_SERVICE_DATASETS, civicsoc_pipeline, strip_caseless
from detection.rules import YAML_LOADER, LogSource, Rule, RuleSet, SkippedRule

# --- what the collectors write ------------------------------------------------------------------------------

def _names(text: str) -> frozenset[str]:
    """Field names written out as words: a table of ~250 names reads better as text than as quoted items."""
    return frozenset(text.split())


COMMON_FIELDS = _names("""
    @timestamp agent.id agent.name agent.type agent.version ecs.version event.dataset event.id event.ingested
    event.kind event.module organization.id
""")
"""Stamped on every event by ``collectors.base.CollectorContext.event``."""

PRODUCED_FIELDS: Mapping[str, frozenset[str]] = {
    # collectors.evtx + collectors.ecs.windows* (Security, System, Sysmon, PowerShell, Defender, other channels)
    "windows": COMMON_FIELDS | _names("""
        destination.domain destination.ip destination.port dns.answers.data dns.answers.type dns.question.name
        dns.resolved_ip event.action event.category event.code event.original event.outcome event.provider
        event.reference event.sequence event.type file.code_signature.signed file.code_signature.status
        file.code_signature.subject_name file.code_signature.valid file.directory file.extension file.hash.md5
        file.hash.sha1 file.hash.sha256 file.name file.path file.pe.company file.pe.description
        file.pe.file_version file.pe.imphash file.pe.original_file_name file.pe.product group.domain group.id
        group.name host.name log.level network.direction network.iana_number network.protocol network.transport
        network.type powershell.command.name powershell.command.type powershell.command.value
        powershell.engine.new_state powershell.engine.previous_state powershell.engine.version
        powershell.file.script_block_id powershell.file.script_block_text powershell.id powershell.pipeline_id
        powershell.process.executable_version powershell.provider.name powershell.provider.new_state
        powershell.runspace_id powershell.sequence powershell.total process.command_line process.entity_id
        process.executable process.hash.md5 process.hash.sha1 process.hash.sha256 process.name
        process.parent.command_line process.parent.entity_id process.parent.executable process.parent.name
        process.parent.pid process.pe.company process.pe.description process.pe.file_version process.pe.imphash
        process.pe.original_file_name process.pe.product process.pid process.thread.id process.title
        process.working_directory registry.data.strings registry.data.type registry.hive registry.key
        registry.path registry.value related.ip related.user rule.name service.name service.state service.type
        source.domain source.ip source.port sysmon.dns.status sysmon.file.archived sysmon.file.is_executable
        user.changes.name user.domain user.effective.domain user.effective.id user.effective.name user.id
        user.name user.target.domain user.target.group.domain user.target.group.id user.target.group.name
        user.target.id user.target.name winlog.activity_id winlog.channel winlog.computer_name winlog.event_id
        winlog.keywords winlog.level winlog.logon.failure.reason winlog.logon.failure.status
        winlog.logon.failure.sub_status winlog.logon.id winlog.logon.type winlog.opcode winlog.process.pid
        winlog.process.thread.id winlog.provider_guid winlog.provider_name winlog.record_id winlog.task
        winlog.user.identifier winlog.version
    """),
    # collectors.ecs.syslog + collectors.ecs.linux (syslog, auth.log) and collectors.ecs.auditd
    "linux": COMMON_FIELDS | _names("""
        event.action event.category event.original event.outcome event.type file.path host.architecture
        host.hostname log.file.path log.offset log.syslog.appname log.syslog.hostname log.syslog.procid message
        process.args process.args_count process.command_line process.executable process.name process.parent.pid
        process.pid process.title process.working_directory related.ip related.user source.address
        source.domain source.ip source.port system.auth.ssh.disconnect_code system.auth.ssh.disconnect_reason
        system.auth.ssh.dropped_ip system.auth.ssh.event system.auth.ssh.invalid_user system.auth.ssh.method
        system.message_repeated user.audit.id user.effective.group.id user.effective.id user.effective.name
        user.group.id user.id user.name
    """),
    # collectors.pcap + collectors.ecs.network (flows, DNS, HTTP, TLS, Kerberos, NTLM)
    "network": COMMON_FIELDS | _names("""
        destination.bytes destination.domain destination.ip destination.packets destination.port
        dns.answers.class dns.answers.data dns.answers.name dns.answers.ttl dns.answers.type dns.header_flags
        dns.id dns.op_code dns.question.class dns.question.name dns.question.type dns.resolved_ip
        dns.response_code dns.type event.action event.category event.duration event.end event.outcome
        event.reason event.sequence event.start event.type http.request.method http.request.referrer
        http.response.mime_type http.response.status_code http.version kerberos.client kerberos.error
        kerberos.error_code kerberos.msg_type kerberos.realm kerberos.service kerberos.ticket_etype log.file.path
        message network.bytes network.community_id network.iana_number network.packets network.protocol
        network.transport network.type ntlmssp.anonymous ntlmssp.domain ntlmssp.host ntlmssp.user
        ntlmssp.version related.hosts related.ip related.user source.bytes source.ip source.packets source.port
        tls.client.ja3 tls.client.server_name tls.version tls.version_protocol url.domain url.full url.original
        url.path url.port url.query url.scheme user.domain user.name user_agent.original
    """),
    # collectors.ecs.access (Apache/nginx access and error logs)
    "web": COMMON_FIELDS | _names("""
        event.category event.original event.outcome event.type http.request.method http.request.referrer
        http.response.body.bytes http.response.status_code http.version log.file.path log.offset related.ip
        related.user source.address source.ip tags url.domain url.original url.path url.query url.scheme
        user.name user_agent.original
    """),
}
"""ECS fields each collector family writes (see the module docstring for where the table comes from)."""

PASS_THROUGH_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "windows": ("winlog.event_data.",),
    "linux": ("auditd.log.",),
}
"""Objects a collector fills with the source's own field names, whatever they are."""


def collector_families(logsource: LogSource) -> tuple[str, ...]:
    """Which collector families write the events of a logsource, the way ``detection.pipelines`` routes it
    (``()``: a logsource civicsoc does not collect, such as a cloud service)."""
    if logsource.product == "windows" or logsource.category == "antivirus":
        return ("windows",)
    if logsource.product == "linux":
        return ("linux",)
    if logsource.product == "zeek" or logsource.category in NETWORK_DATASETS:
        return ("network",)
    if logsource.category == "webserver" or logsource.service in WEB_SERVICE_DATASETS:
        return ("web",)
    return ()


def produced_by(name: str, families: Iterable[str]) -> bool:
    """Whether events of these collector families can carry field ``name`` (the stamps are always there)."""
    if name in COMMON_FIELDS:
        return True
    for family in families:
        if name in PRODUCED_FIELDS[family] or name.startswith(PASS_THROUGH_PREFIXES.get(family, ())):
            return True
    return False


def produced_anywhere(name: str) -> bool:
    return produced_by(name, PRODUCED_FIELDS)


@lru_cache(maxsize=1)
def known_event_fields() -> list[str]:
    """Every field of the table, sorted (for "did you mean" hints)."""
    return sorted(set().union(*PRODUCED_FIELDS.values()))


# --- fields a rule reads ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UnmappedField:
    """A field a rule reads that no event of its logsource will have, so every test on it fails."""

    event_field: str
    """The name the matcher reads (the Sigma name itself when the pipeline left it alone)."""
    sigma_field: str | None
    """The Sigma name in the rule, when it was mapped (``None``: not recovered, or same as ``event_field``)."""
    reason: str

    def __str__(self) -> str:
        name = f"{self.sigma_field} → {self.event_field}" if self.sigma_field else self.event_field
        return f"{name} ({self.reason})"


@lru_cache(maxsize=1)
def field_mapping_items() -> frozenset[str]:
    """Identifiers of the pipeline's items that rename fields: a detection item they processed was mapped."""
    return frozenset(item.identifier for item in civicsoc_pipeline().items
                     if isinstance(item.transformation, FieldMappingTransformationBase) and item.identifier)


def _detection_items(detection: SigmaDetection) -> Iterable[SigmaDetectionItem]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _detection_items(item)
        else:
            yield item


def mapped_fields(sigma: SigmaRule) -> dict[str, bool]:
    """Event field → whether a field-mapping item of the pipeline produced it (``False``: the Sigma name
    went through unchanged), read from pySigma's processing tracking on the processed rule."""
    renaming = field_mapping_items()
    found: dict[str, bool] = {}
    for detection in sigma.detection.detections.values():
        for item in _detection_items(detection):
            mapped = bool(item.applied_processing_items & renaming)
            if item.field is not None:
                name = strip_caseless(item.field)[0]
                found[name] = found.get(name, False) or mapped
            for value in item.value:
                if isinstance(value, SigmaFieldReference):
                    name = strip_caseless(value.field)[0]
                    found[name] = found.get(name, False) or mapped
    return found


def unmapped_fields(rule: Rule, families: Sequence[str] | None = None, *,
                    pipeline: ProcessingPipeline | None = None) -> tuple[UnmappedField, ...]:
    """The fields of ``rule`` no event of its logsource will carry, each with the reason (``pipeline``: a
    ``civicsoc_pipeline()`` to reuse, building one costs more than applying it)."""
    names = set(rule.fields)
    if rule.correlation is not None:  # the fields it groups and counts by, on its referenced rules' events
        names = {strip_caseless(name)[0] for name in (*rule.correlation.group_by, rule.correlation.value_field)
                 if name is not None}
        families = tuple(PRODUCED_FIELDS) if families is None else families
    families = collector_families(rule.logsource) if families is None else tuple(families)
    missing = sorted(name for name in names if not produced_by(name, families))
    if not missing:
        return ()
    mapped = mapped_fields(rule.sigma) if isinstance(rule.sigma, SigmaRule) else {}
    sigma_names = _sigma_names(rule, pipeline) if any(mapped.get(name) for name in missing) else {}
    where = _describe_families(families)
    found = []
    for name in missing:
        if mapped.get(name) is False:
            reason = (f"not mapped: the pipeline has no ECS name for it, so no {where} event has it" if families
                      else f"not mapped: civicsoc collects no {_describe_logsource(rule.logsource)} events")
            found.append(UnmappedField(name, None, reason))
        elif produced_anywhere(name):
            found.append(UnmappedField(name, sigma_names.get(name),
                                       f"mapped, but {where or 'no collected'} events do not carry it"))
        else:
            found.append(UnmappedField(name, sigma_names.get(name), "mapped, but no civicsoc collector writes it"))
    return tuple(found)


def _describe_families(families: Sequence[str]) -> str:
    return " or ".join(families)


def _sigma_names(rule: Rule, pipeline: ProcessingPipeline | None) -> dict[str, str]:
    """Event field → the Sigma field it was mapped from, by processing a fresh parse of the rule's file.

    ``Rule.sigma`` is already processed and pySigma keeps the name mapping only on the pipeline that ran, so
    it is redone here — only for the few rules with a mapped field nobody writes."""
    if rule.path is None:
        return {}
    try:  # parsed as detection.rules parses (libyaml when available: the pure-Python parser is 10x slower)
        documents = list(yaml.load_all(Path(rule.path).read_text(encoding="utf-8"), Loader=YAML_LOADER))
        collection = SigmaCollection.from_dicts(documents, collect_errors=True)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, SigmaError, AttributeError, TypeError, KeyError, ValueError):
        return {}
    base_id = rule.id.split(":")[0]
    for candidate in collection.rules:
        if not isinstance(candidate, SigmaRule) or candidate.title != rule.title:
            continue
        if candidate.id is not None and str(candidate.id) != base_id:
            continue
        pipeline = pipeline or civicsoc_pipeline()
        try:
            pipeline.apply(candidate)
        except SigmaError:
            return {}
        tracking = pipeline.field_mappings
        return {strip_caseless(target)[0]: source for source, targets in tracking.items()
                if source is not None and source not in tracking.target_fields for target in targets}
    return {}


# --- the events of a logsource ------------------------------------------------------------------------------

PROBE_VALUE = "civicsoc-logsource-probe"
"""The value of the one condition of a probe rule; everything else in the processed probe is logsource."""

FilterValue = str | int | float
Alternative = dict[str, frozenset[FilterValue]]
Filters = tuple[dict[str, tuple[FilterValue, ...]], ...]
"""Alternatives (OR-ed), each field → values (AND of fields, OR of values): what a store query can say."""


def _describe_logsource(logsource: LogSource) -> str:
    parts = [value for value in (logsource.product, logsource.category, logsource.service) if value]
    return "/".join(parts) if parts else "any"


def logsource_filters(logsource: LogSource, pipeline: ProcessingPipeline | None = None) -> Filters | None:
    """The store filters for "events of this logsource": alternatives (OR-ed), each a map of field → values
    (AND of fields, OR of values) — the conditions ``detection.pipelines`` adds to a rule of this logsource.

    ``({},)`` means the pipeline adds none (the rule looks at every event); ``None`` that they are not plain
    equalities (never the case for civicsoc's pipeline today). The alternatives are disjoint (they differ in
    channel or event id), so their counts add up."""
    probe = SigmaRule.from_dict({
        "title": "civicsoc logsource probe",
        "logsource": {key: value for key, value in (("category", logsource.category), ("product", logsource.product),
                                                    ("service", logsource.service)) if value},
        "detection": {"probe": {"civicsoc_probe": PROBE_VALUE}, "condition": "probe"},
    })
    (pipeline or civicsoc_pipeline()).apply(probe)
    alternatives = _alternatives(probe.detection.parsed_condition[0].parsed)
    if alternatives is None:
        return None
    return tuple({name: tuple(sorted(values, key=str)) for name, values in sorted(alternative.items())}
                 for alternative in _merged(alternatives))


def _alternatives(node: Any) -> list[Alternative] | None:
    """The condition as an OR of ANDs of field equalities (disjunctive normal form), or ``None``."""
    if isinstance(node, ConditionAND):
        result: list[Alternative] = [{}]
        for argument in node.args:
            branch = _alternatives(argument)
            if branch is None:
                return None
            result = [merged for left in result for right in branch if (merged := _both(left, right)) is not None]
        return result
    if isinstance(node, ConditionOR):
        union: list[Alternative] = []
        for argument in node.args:
            branch = _alternatives(argument)
            if branch is None:
                return None
            union.extend(branch)
        return union
    if isinstance(node, ConditionFieldEqualsValueExpression):
        value = node.value
        name = strip_caseless(node.field)[0]
        if isinstance(value, SigmaString) and not value.contains_special():
            text = str(value)
            return [{}] if text == PROBE_VALUE else [{name: frozenset({text})}]
        if isinstance(value, SigmaNumber):  # an event id: ECS keeps it as keyword text (``event.code``)
            return [{name: frozenset({str(value.number)})}]
    return None


def _both(left: Alternative, right: Alternative) -> Alternative | None:
    merged = dict(left)
    for name, values in right.items():
        if name in merged:
            values = merged[name] & values
            if not values:
                return None
        merged[name] = values
    return merged


def _merged(alternatives: list[Alternative]) -> list[Alternative]:
    """Join alternatives that differ in one field's values only (``{ch: a, id: 1} | {ch: b, id: 1}`` →
    ``{ch: [a, b], id: 1}``): fewer count queries, same events."""
    result: list[Alternative] = []
    for alternative in alternatives:
        if alternative in result:
            continue
        for index, other in enumerate(result):
            if other.keys() != alternative.keys():
                continue
            differing = [name for name in other if other[name] != alternative[name]]
            if len(differing) == 1:
                result[index] = {**other, differing[0]: other[differing[0]] | alternative[differing[0]]}
                break
        else:
            result.append(alternative)
    return result


def describe_filters(filters: Filters | None) -> str:
    if filters is None:
        return "not countable"
    if filters == ({},):
        return "any event"
    return " OR ".join(" AND ".join(f"{name} in ({', '.join(map(str, values))})" if len(values) > 1
                                    else f"{name}={values[0]}" for name, values in alternative.items())
                       for alternative in filters)


DISPATCH_ORDER = ("winlog.channel", "event.dataset", "event.module", "event.code")
"""Fields a logsource condition names, most selective first: the first one present is counted by value."""
TERMS_SIZE = 1000
"""Values per by-value count; a field with more (never a channel, dataset, module or event id) is counted
directly instead."""


class EventCounter:
    """Counts the events of logsource filters in a window with as few store queries as the data allows.

    One count per logsource is one table scan on the embedded store (~0.1 s per 15,000 events), and
    SigmaHQ has ~140 logsources. So the first field of an alternative (the channel, dataset or module) is
    counted by value once for all logsources; an alternative whose values have no events there is 0 without
    another query — most of them on a typical deployment — and a second field (the event id) is counted by
    value within each present first value, again shared by every logsource of that channel. Only an
    alternative of three or more fields with events is counted on its own."""

    def __init__(self, store: Store, scope: Scope, window: TimeRange) -> None:
        self.store = store
        self.scope = scope
        self.window = window
        self.queries = 0
        self._by_value: dict[tuple[str, tuple[tuple[str, FilterValue], ...]], dict[str, int] | None] = {}
        self._counts: dict[tuple[tuple[str, tuple[FilterValue, ...]], ...], int] = {}

    def count(self, filters: Filters | None) -> int | None:
        """Events matching any alternative of ``filters`` (see ``logsource_filters``); ``None`` if ``None``."""
        if filters is None:
            return None
        return sum(self._alternative(alternative) for alternative in filters)

    def _alternative(self, alternative: Mapping[str, tuple[FilterValue, ...]]) -> int:
        if not alternative:
            return self._direct({})
        order = sorted(alternative, key=lambda name: (DISPATCH_ORDER.index(name) if name in DISPATCH_ORDER
                                                      else len(DISPATCH_ORDER), name))
        first, rest = order[0], order[1:]
        by_first = self._values(first, ())
        if by_first is None:
            return self._direct(alternative)
        present = [value for value in alternative[first] if by_first.get(str(value))]
        if not rest:
            return sum(by_first[str(value)] for value in present)
        total = 0
        for value in present:
            by_second = self._values(rest[0], ((first, value),))
            if by_second is None:
                total += self._direct({first: (value,), **{name: alternative[name] for name in rest}})
                continue
            matching = sum(by_second.get(str(other), 0) for other in alternative[rest[0]])
            if len(rest) == 1 or matching == 0:
                total += matching
            else:
                total += self._direct({first: (value,), **{name: alternative[name] for name in rest}})
        return total

    def _values(self, name: str, where: tuple[tuple[str, FilterValue], ...]) -> dict[str, int] | None:
        """Events per value of ``name`` (as text) among those matching ``where``; ``None`` if cut off."""
        key = (name, where)
        if key not in self._by_value:
            self.queries += 1
            buckets = self.store.aggregate_events(self.scope, EventQuery.where(self.window, dict(where)),
                                                  Terms(name, size=TERMS_SIZE))
            counts: dict[str, int] = {}
            for bucket in buckets:
                counts[str(bucket.key)] = counts.get(str(bucket.key), 0) + bucket.count
            self._by_value[key] = None if len(buckets) >= TERMS_SIZE else counts
        return self._by_value[key]

    def _direct(self, alternative: Mapping[str, tuple[FilterValue, ...]]) -> int:
        key = tuple(sorted(alternative.items()))
        if key not in self._counts:
            self.queries += 1
            self._counts[key] = self.store.count_events(self.scope, EventQuery.where(self.window, dict(alternative)))
        return self._counts[key]


# --- matches ------------------------------------------------------------------------------------------------

MAX_RULE_BUCKETS = 10_000
"""Distinct rules counted per health run; more than SigmaHQ has."""
SCAN_ALERTS_PER_RULE = 250
"""Reading this many alerts in pages costs about what one newest-alert query per rule costs (measured on the
embedded store: a query ~14 ms, a 5,000-alert page ~0.3 s); below it, one scan finds every rule's newest."""


@dataclass(frozen=True, slots=True)
class LastMatch:
    alerts: int
    last_matched: datetime
    """The event time of the rule's newest alert."""
    last_alerted: datetime
    """When that alert was raised."""


def last_matches(store: Store, scope: Scope) -> dict[str, LastMatch]:
    """Rule id → its alert count and newest alert in ``scope``.

    One aggregation counts alerts per rule; the newest alert of each rule that fired then comes from one
    scan of the alerts newest first, or — once there are many alerts per rule — from one query per rule.
    Rules that never fired cost nothing either way."""
    counts = {str(bucket.key): bucket.count
              for bucket in store.alerts.count_by(scope, RecordQuery(), "rule_id", size=MAX_RULE_BUCKETS)}
    newest: dict[str, Alert] = {}
    if sum(counts.values()) <= SCAN_ALERTS_PER_RULE * len(counts):
        cursor: str | None = None
        while len(newest) < len(counts):
            page = store.alerts.list(scope, RecordQuery(sort="timestamp", limit=MAX_PAGE, cursor=cursor))
            for item in page.items:
                newest.setdefault(item.record.rule_id, item.record)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    else:
        for rule_id in counts:
            page = store.alerts.list(scope, RecordQuery.where({"rule_id": rule_id}, sort="timestamp", limit=1))
            if page.items:
                newest[rule_id] = page.items[0].record
    return {rule_id: LastMatch(counts[rule_id], alert.timestamp, alert.created_at)
            for rule_id, alert in newest.items() if rule_id in counts}


# --- the view -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RuleHealth:
    id: str
    title: str | None
    level: str | None
    loaded: bool
    skip_reason: str | None
    file: str | None
    kind: str
    """``detection``, ``correlation``, or ``unknown`` for a rule that did not load."""
    logsource: str | None
    """``product/category/service`` as far as given (``None`` for correlations and skipped rules)."""
    unmapped: tuple[UnmappedField, ...] = ()
    event_filter: str | None = None
    """What "events of its logsource" means in the store (see ``describe_filters``)."""
    events_recent: int | None = None
    """Events of its logsource in the window; ``None`` where that has no meaning (correlations, skipped rules)."""
    last_matched: datetime | None = None
    last_alerted: datetime | None = None
    alerts: int = 0
    enabled: bool = True
    """Enabled in every tenant of the scope."""
    disabled_for: tuple[str, ...] = ()
    exceptions: int = 0
    """Active exceptions naming this rule (tenant-wide ``*`` exceptions are not counted here)."""
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "level": self.level, "loaded": self.loaded,
            "skip_reason": self.skip_reason, "file": self.file, "kind": self.kind, "logsource": self.logsource,
            "unmapped": [{"event_field": item.event_field, "sigma_field": item.sigma_field, "reason": item.reason}
                         for item in self.unmapped],
            "event_filter": self.event_filter, "events_recent": self.events_recent,
            "last_matched": self.last_matched.isoformat() if self.last_matched else None,
            "last_alerted": self.last_alerted.isoformat() if self.last_alerted else None,
            "alerts": self.alerts, "enabled": self.enabled, "disabled_for": list(self.disabled_for),
            "exceptions": self.exceptions, "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class HealthTotals:
    rules: int
    loaded: int
    skipped: int
    unmapped: int
    silent: int
    """Loaded detection rules without recent events of their logsource."""
    disabled: int
    fired: int
    problems: int

    @classmethod
    def of(cls, items: Sequence[RuleHealth]) -> HealthTotals:
        return cls(
            rules=len(items),
            loaded=sum(item.loaded for item in items),
            skipped=sum(not item.loaded for item in items),
            unmapped=sum(bool(item.unmapped) for item in items),
            silent=sum(item.events_recent == 0 for item in items),
            disabled=sum(not item.enabled for item in items),
            fired=sum(item.alerts > 0 for item in items),
            problems=sum(not item.ok for item in items),
        )

    def line(self) -> str:
        return (f"{self.rules} rules: {self.loaded} loaded, {self.skipped} skipped, {self.unmapped} with unmapped "
                f"fields, {self.silent} without recent events, {self.disabled} disabled, {self.fired} fired; "
                f"{self.problems} with problems")


def _window_text(recent: timedelta) -> str:
    if recent % timedelta(days=1) == timedelta(0):
        days = recent // timedelta(days=1)
        return f"{days} day{'s' if days != 1 else ''}"
    return str(recent)


def rule_health(ruleset: RuleSet, store: Store, scope: Scope, now: datetime | None = None,
                recent: timedelta = timedelta(days=1)) -> list[RuleHealth]:
    """The health of every rule of ``ruleset`` (loaded, then skipped) in ``scope`` at ``now``."""
    from detection.suppression import list_exceptions, list_settings

    moment = now or utcnow()
    window = TimeRange(moment - recent, moment)
    window_text = _window_text(recent)
    disabled_for: dict[str, set[str]] = {}
    for setting in list_settings(store, scope):
        if not setting.enabled:
            disabled_for.setdefault(setting.rule_id, set()).add(setting.tenant)
    exception_counts: dict[str, int] = {}
    for exception in list_exceptions(store, scope, now=moment):
        exception_counts[exception.rule_id] = exception_counts.get(exception.rule_id, 0) + 1
    matches = last_matches(store, scope)

    pipeline = civicsoc_pipeline()
    counter = EventCounter(store, scope, window)
    by_logsource: dict[LogSource, tuple[str, int | None]] = {}
    results: list[RuleHealth] = []
    for rule in ruleset.loaded:
        problems: list[str] = []
        unmapped = unmapped_fields(rule, pipeline=pipeline)
        if unmapped:
            problems.append("unmapped fields: " + ", ".join(item.event_field for item in unmapped))
        event_filter: str | None = None
        events: int | None = None
        logsource: str | None = None
        if rule.correlation is None:
            logsource = _describe_logsource(rule.logsource)
            if rule.logsource not in by_logsource:
                filters = logsource_filters(rule.logsource, pipeline)
                by_logsource[rule.logsource] = (describe_filters(filters), counter.count(filters))
            event_filter, events = by_logsource[rule.logsource]
            if events == 0:
                problems.append(f"no {logsource} events in the last {window_text}")
        match = matches.get(rule.id)
        tenants_off = tuple(sorted(disabled_for.get(rule.id, ())))
        results.append(RuleHealth(
            id=rule.id, title=rule.title, level=rule.level, loaded=True, skip_reason=None,
            file=str(rule.path) if rule.path else None, kind="correlation" if rule.correlation else "detection",
            logsource=logsource, unmapped=unmapped, event_filter=event_filter, events_recent=events,
            last_matched=match.last_matched if match else None, last_alerted=match.last_alerted if match else None,
            alerts=match.alerts if match else 0, enabled=not tenants_off, disabled_for=tenants_off,
            exceptions=exception_counts.get(rule.id, 0), problems=tuple(problems),
        ))
    for skipped in ruleset.skipped:
        results.append(_skipped_health(skipped, matches, disabled_for))
    return results


def _skipped_health(skipped: SkippedRule, matches: Mapping[str, LastMatch],
                    disabled_for: Mapping[str, set[str]]) -> RuleHealth:
    rule_id = skipped.rule_id or f"file:{skipped.file}"
    match = matches.get(rule_id)
    tenants_off = tuple(sorted(disabled_for.get(rule_id, ())))
    return RuleHealth(
        id=rule_id, title=skipped.title, level=None, loaded=False, skip_reason=skipped.reason,
        file=str(skipped.file), kind="unknown", logsource=None,
        last_matched=match.last_matched if match else None, last_alerted=match.last_alerted if match else None,
        alerts=match.alerts if match else 0, enabled=not tenants_off, disabled_for=tenants_off,
        problems=(f"not loaded: {skipped.reason}",),
    )
