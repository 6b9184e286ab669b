"""One field mapping, as pySigma processing pipelines: Sigma's names → the ECS fields our collectors write.

The pipeline built here is applied to every rule exactly once, when it is loaded (``detection.rules``).
The processed rule then drives both the stream matcher (``detection.matcher``) and the Elasticsearch
queries (``detection.lucene``), so the two read the same fields and the same logsource conditions and
cannot drift apart.

Layers, in order:

1. ``windows_logsources`` (ours): the fields whose ECS copy is not the value Sigma means stay on the raw
   ``winlog.event_data.<Name>`` (``WINDOWS_RAW_FIELDS`` says which and why), and
   Sigma's generic Windows categories become conditions on the channel and
   event ids that carry them — the table SigmaHQ itself tests with (``tests/thor.yml`` in the SigmaHQ
   repository): ``process_creation`` is Sysmon 1 or Security 4688, ``image_load`` Sysmon 7, and so on.
   ``ecs_windows`` adds channel conditions for ``service:`` logsources only, so without this an
   ``image_load`` rule on ``ImageLoaded`` (→ ``file.path``) would also fire on Sysmon's file-creation
   events, which fill the same field. Services SigmaHQ uses that ``ecs_windows`` has no channel for get
   theirs here too.
2. ``ecs_windows`` from pysigma-backend-elasticsearch, unchanged: Winlogbeat's ECS names, the
   ``winlog.event_data.`` prefix for everything else, ``.caseless`` targets, values as strings.
3. ``linux``, ``network``, ``web`` (ours): auth/syslog/auditd as ``collectors.ecs.linux``/``auditd`` write
   them, Zeek-style and proxy/DNS/firewall names as ``collectors.ecs.network`` writes packets, and the
   W3C names of ``category: webserver`` as ``collectors.ecs.access`` writes access logs. Each also pins
   its logsource to the ``event.dataset``/``event.module`` of the events that carry it.
4. ``foreign_logsources`` (ours): a rule for a product we do not collect (AWS, Okta ...) is pinned to
   ``event.module: <product>``. Without it a rule made only of negations (``not filter``) would fire on
   every event, because none of its fields exist in ours.
5. Placeholders (``|expand``): replaced by the values configured for them (pySigma's
   ``ValueListPlaceholderTransformation``); a rule left with an unresolved placeholder is skipped by the
   loader, with the placeholder's name as the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.backends.elasticsearch import LuceneBackend
from sigma.conditions import SigmaCondition
from sigma.correlations import SigmaCorrelationRule
from sigma.pipelines.common import windows_logsource_mapping
from sigma.pipelines.elasticsearch import ecs_windows
from sigma.processing.conditions import IncludeFieldCondition, LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    AddFieldnamePrefixTransformation,
    FieldMappingTransformation,
    ValueListPlaceholderTransformation,
)
from sigma.processing.transformations.base import ConditionTransformation
from sigma.rule import SigmaDetection, SigmaLogSource, SigmaRule

CASELESS_SUFFIX = ".caseless"
"""``ecs_windows`` targets such as ``process.executable.caseless`` name an Elasticsearch sub-field with a
lowercase normalizer. The stream matcher reads the base field and compares case-insensitively."""

LOGSOURCE_DETECTION_PREFIX = "_civicsoc_"
"""Prefix of the detections logsource conditions are added as (one per processing item, so two items never
overwrite each other). The leading underscore keeps them out of a rule's own ``1 of selection_*`` /
``all of them`` (pySigma skips ``_`` names in selectors)."""

SYSMON = "Microsoft-Windows-Sysmon/Operational"
POWERSHELL = ["Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational"]
POWERSHELL_CLASSIC = "Windows PowerShell"
DEFENDER = "Microsoft-Windows-Windows Defender/Operational"


def _sysmon(*event_ids: int, **extra: Any) -> list[dict[str, Any]]:
    codes: int | list[int] = event_ids[0] if len(event_ids) == 1 else list(event_ids)
    return [{"Channel": SYSMON, "EventID": codes, **extra}]


WINDOWS_CATEGORY_SOURCES: dict[str, list[dict[str, Any]]] = {
    "process_creation": [*_sysmon(1), {"Channel": "Security", "EventID": 4688}],
    "file_change": _sysmon(2),
    "network_connection": _sysmon(3),
    "sysmon_status": _sysmon(4, 16),
    "process_termination": _sysmon(5),
    "driver_load": _sysmon(6),
    "image_load": _sysmon(7),
    "create_remote_thread": _sysmon(8),
    "raw_access_thread": _sysmon(9),
    "process_access": _sysmon(10),
    "file_event": _sysmon(11),
    "registry_event": _sysmon(12, 13, 14),
    "registry_add": _sysmon(12, EventType="CreateKey"),
    "registry_delete": _sysmon(12, EventType=["DeleteKey", "DeleteValue"]),
    "registry_set": _sysmon(13),
    "registry_rename": _sysmon(14),
    "create_stream_hash": _sysmon(15),
    "pipe_created": _sysmon(17, 18),
    "wmi_event": _sysmon(19, 20, 21),
    "dns_query": _sysmon(22),
    "file_delete": _sysmon(23),
    "clipboard_change": _sysmon(24),
    "process_tampering": _sysmon(25),
    "file_delete_detected": _sysmon(26),
    "file_block_executable": _sysmon(27),
    "file_block_shredding": _sysmon(28),
    "file_executable_detected": _sysmon(29),
    "sysmon_error": _sysmon(255),
    "ps_module": [{"Channel": POWERSHELL, "EventID": 4103}],
    "ps_script": [{"Channel": POWERSHELL, "EventID": 4104}],
    "ps_classic_start": [{"Channel": POWERSHELL_CLASSIC, "EventID": 400}],
    "ps_classic_provider_start": [{"Channel": POWERSHELL_CLASSIC, "EventID": 600}],
    "ps_classic_script": [{"Channel": POWERSHELL_CLASSIC, "EventID": 800}],
}
"""Windows logsource category → the (channel, event id) alternatives that carry it (SigmaHQ ``tests/thor.yml``).
Categories not listed (``file_access``, ``file_rename`` ... written by ETW-based sensors, not by any
event log) keep ``ecs_windows``' behaviour: no logsource condition."""

WINDOWS_EXTRA_SERVICES: dict[str, str | list[str]] = {
    "ldap": "Microsoft-Windows-LDAP-Client/Debug",
    "smbclient-connectivity": "Microsoft-Windows-SmbClient/Connectivity",
    "smbserver-connectivity": "Microsoft-Windows-SMBServer/Connectivity",
    "iis-configuration": "Microsoft-IIS-Configuration/Operational",
    "kernel-shimengine": ["Microsoft-Windows-Kernel-ShimEngine/Operational",
                          "Microsoft-Windows-Kernel-ShimEngine/Diagnostic"],
    "application-experience": ["Microsoft-Windows-Application-Experience/Program-Telemetry",
                               "Microsoft-Windows-Application-Experience/Program-Compatibility-Assistant"],
    "ntfs": "Microsoft-Windows-Ntfs/Operational",
    "hyper-v-worker": "Microsoft-Windows-Hyper-V-Worker",
    "kernel-event-tracing": "Microsoft-Windows-Kernel-EventTracing",
    "sense": "Microsoft-Windows-SENSE/Operational",
    "servicebus-client": ["Microsoft-ServiceBus-Client/Admin", "Microsoft-ServiceBus-Client/Operational"],
}
"""Services SigmaHQ rules use (channel names from SigmaHQ ``tests/thor.yml``) that ``ecs_windows`` has no
channel condition for."""

WINDOWS_RAW_FIELDS: tuple[str, ...] = (
    "User", "SubjectUserName", "SubjectDomainName", "SubjectUserSid", "SubjectLogonId",
    "TargetDomainName", "TargetLogonId",
    "ProcessId", "NewProcessId", "SourceProcessId", "ParentProcessId", "ParentProcessName", "ProcessName",
    "IpAddress", "IpPort", "WorkstationName", "AccountName", "AccountDomain",
    "QueryStatus", "DestinationPortName", "QueryName", "Destination",
)
"""Sigma fields matched on the raw ``winlog.event_data.<Name>`` instead of ``ecs_windows``' ECS target.

For each, the ECS field holds a different value than the one Sigma's field names, measured over every
record of the shared EVTX corpus (``tests/test_detection_pipelines.py`` keeps measuring it):

* ``User`` is ``DOMAIN\\name``; ``user.name`` holds only the name (``User|contains: 'AUTHORI'`` — SigmaHQ's way
  of matching NT AUTHORITY in any language — could never match).
* ``Subject*``/``Target*`` are two different accounts and logon ids; ECS has one ``user``/``winlog.logon.id``,
  and on logon events it holds the *target* account (``SubjectUserName|endswith: '$'`` would test the
  wrong account).
* ``ProcessId``/``NewProcessId`` are hexadecimal text in Security events (``0x1a4``); ``process.pid`` is the
  number. ``ParentProcessId`` of Security 4701 has no ECS copy at all.
* ``ParentProcessName`` is a full path; ``ecs_windows`` points it at ``process.parent.name`` (a file name),
  so ``ParentProcessName|endswith: '\\cmd.exe'`` could never match.
* ``IpAddress``, ``IpPort``, ``WorkstationName``, ``ProcessName`` keep Windows' ``-`` placeholder, which ECS drops
  (``IpAddress: '-'`` filters could never apply); ``AccountName``/``AccountDomain`` (a service's account in
  7045) are not the acting user; ``QueryStatus`` is a number, ``sysmon.dns.status`` its name;
  ``DestinationPortName`` is Sysmon's own guess, ``network.protocol`` the capture's.
* ``QueryName`` is also logged by the DNS client channel, where ``dns.question.name`` is not filled;
  ``Destination`` (a WMI consumer's command) is not ``process.executable``.
"""

ANTIVIRUS_EVENT_IDS = [1006, 1007, 1008, 1009, 1010, 1011, 1012, 1017, 1018, 1019, 1115, 1116]
"""Defender events that name a threat and a path: what ``category: antivirus`` means on Windows (thor.yml)."""


@dataclass
class AddAlternativesConditionTransformation(ConditionTransformation):
    """AND the rule's condition with an OR of field maps (pySigma's ``AddConditionTransformation`` takes
    one map only, and ``process_creation`` needs "Sysmon 1 *or* Security 4688")."""

    alternatives: list[dict[str, Any]] = field(default_factory=list)
    name: str = "_civicsoc_logsource"

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        if isinstance(rule, SigmaRule):
            definition = self.alternatives[0] if len(self.alternatives) == 1 else self.alternatives
            rule.detection.detections[self.name] = SigmaDetection.from_definition(definition)
            self.processing_item_applied(rule.detection.detections[self.name])
            super().apply(rule)

    def apply_condition(self, cond: SigmaCondition) -> None:
        cond.condition = f"{self.name} and ({cond.condition})" if cond.condition else self.name


@dataclass
class AddLogsourceConditionTransformation(ConditionTransformation):
    """AND the rule's condition with a field map computed from its logsource (``None``: leave the rule).

    For pinning decisions pySigma's rule conditions cannot express ("a Zeek service we have no dataset
    for", "a Linux rule no other item pinned"), and for values taken from the logsource itself."""

    conditions: Callable[[SigmaLogSource], dict[str, Any] | None] = field(default=lambda logsource: None)
    name: str = "_civicsoc_logsource"

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        if isinstance(rule, SigmaRule):
            conditions = self.conditions(rule.logsource)
            if conditions is None:
                return
            rule.detection.detections[self.name] = SigmaDetection.from_definition(conditions)
            self.processing_item_applied(rule.detection.detections[self.name])
            super().apply(rule)

    def apply_condition(self, cond: SigmaCondition) -> None:
        cond.condition = f"{self.name} and ({cond.condition})" if cond.condition else self.name


def _logsource_item(identifier: str, alternatives: list[dict[str, Any]], **logsource: str) -> ProcessingItem:
    return ProcessingItem(
        identifier=identifier,
        transformation=AddAlternativesConditionTransformation(alternatives=alternatives, name=f"_{identifier}"),
        rule_conditions=[LogsourceCondition(**logsource)],
    )


def windows_logsources() -> ProcessingPipeline:
    """Channel/event-id conditions for Windows categories and for services ``ecs_windows`` lacks.

    Written with Sigma's names (``Channel``, ``EventID``) so that ``ecs_windows``, applied next, maps them
    like any other field (and turns the event ids into the strings ``event.code`` holds)."""
    known_services = set(windows_logsource_mapping)
    items = [
        _logsource_item(f"civicsoc_windows_category_{category}", alternatives, product="windows", category=category)
        for category, alternatives in WINDOWS_CATEGORY_SOURCES.items()
    ]
    items += [
        _logsource_item(f"civicsoc_windows_service_{service}", [{"Channel": channel}], product="windows",
                        service=service)
        for service, channel in WINDOWS_EXTRA_SERVICES.items()
        if service not in known_services
    ]
    items.append(ProcessingItem(
        identifier="civicsoc_windows_raw_fields",
        transformation=FieldMappingTransformation({name: f"winlog.event_data.{name}" for name in WINDOWS_RAW_FIELDS}),
        rule_conditions=[LogsourceCondition(product="windows")],
    ))
    items.append(_logsource_item("civicsoc_windows_antivirus", [{"Channel": DEFENDER, "EventID": ANTIVIRUS_EVENT_IDS}],
                                 category="antivirus"))
    items.append(ProcessingItem(
        identifier="civicsoc_windows_antivirus_fields",
        transformation=FieldMappingTransformation({"Signature": "winlog.event_data.Threat Name",
                                                   "Filename": "winlog.event_data.Path",
                                                   "Channel": "winlog.channel", "EventID": "event.code"}),
        rule_conditions=[LogsourceCondition(category="antivirus")],
    ))
    return ProcessingPipeline(name="civicsoc: Windows logsource categories → channels and event ids", priority=10,
                              items=items)


LINUX_SERVICE_CONDITIONS: dict[str, dict[str, Any]] = {
    "auth": {"event.dataset": "system.auth"},
    "syslog": {"event.dataset": "system.syslog"},
    "sshd": {"process.name": ["sshd", "sshd-session", "sshd-auth"]},
    "sudo": {"process.name": "sudo"},
    "cron": {"process.name": ["cron", "crond", "CRON"]},
    "vsftpd": {"process.name": "vsftpd"},
    "clamav": {"process.name": ["clamd", "freshclam", "clamscan"]},
    "guacamole": {"process.name": "guacd"},
    "auditd": {"event.module": "auditd"},
}
"""Linux ``service:`` → the events that carry it, as ``collectors.ecs.syslog``/``linux``/``auditd`` write them
(the program that logged is ``process.name``; auth.log's programs are ``event.dataset: system.auth``)."""

LINUX_DATASETS = ["system.auth", "system.syslog", "auditd.log"]
"""Every Linux dataset our collectors write: what ``product: linux`` without a service or category means."""

LINUX_CATEGORY_CONDITIONS: dict[str, dict[str, Any]] = {
    "process_creation": {"event.dataset": "auditd.log", "event.category": "process", "event.type": "start"},
    "file_event": {"event.dataset": "auditd.log", "event.category": "file"},
    "network_connection": {"event.dataset": "auditd.log", "event.category": "network"},
}
"""Linux process, file and network telemetry comes from auditd (the only such Linux source we collect)."""

LINUX_FIELDS: dict[str, str] = {
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "CurrentDirectory": "process.working_directory",
    "ProcessId": "process.pid",
    "ParentProcessId": "process.parent.pid",
    "User": "user.name",
    "LogonId": "user.audit.id",
    "TargetFilename": "file.path",
    "DestinationHostname": "destination.domain",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "Initiated": "network.direction",
    "USER": "system.auth.sudo.user",
}
"""Sigma's Linux taxonomy (Sysmon for Linux names) → ECS, as Elastic's auditd and system modules fill them."""


def _linux_any(logsource: SigmaLogSource) -> dict[str, Any] | None:
    """A Linux rule whose service/category no item above pins: any Linux dataset we collect."""
    if logsource.service in LINUX_SERVICE_CONDITIONS or logsource.category in LINUX_CATEGORY_CONDITIONS:
        return None
    return {"event.dataset": LINUX_DATASETS}


def linux() -> ProcessingPipeline:
    """Linux auth/syslog/auditd and the generic Linux categories."""
    items = [
        ProcessingItem(
            identifier=f"civicsoc_linux_service_{service}",
            transformation=AddConditionTransformation(conditions, name=f"_civicsoc_linux_service_{service}"),
            rule_conditions=[LogsourceCondition(product="linux", service=service)],
        )
        for service, conditions in LINUX_SERVICE_CONDITIONS.items()
    ]
    items += [
        ProcessingItem(
            identifier=f"civicsoc_linux_category_{category}",
            transformation=AddConditionTransformation(conditions, name=f"_civicsoc_linux_category_{category}"),
            rule_conditions=[LogsourceCondition(product="linux", category=category)],
        )
        for category, conditions in LINUX_CATEGORY_CONDITIONS.items()
    ]
    items.append(ProcessingItem(
        identifier="civicsoc_linux_any",
        transformation=AddLogsourceConditionTransformation(_linux_any, name="_civicsoc_linux_any"),
        rule_conditions=[LogsourceCondition(product="linux")],
    ))
    items += [
        ProcessingItem(  # auditd: the record type is auditd.log.record_type, every key is kept under auditd.log
            identifier="civicsoc_linux_auditd_type",
            transformation=FieldMappingTransformation({"type": "auditd.log.record_type"}),
            rule_conditions=[LogsourceCondition(product="linux", service="auditd")],
        ),
        ProcessingItem(
            identifier="civicsoc_linux_auditd_prefix",
            transformation=AddFieldnamePrefixTransformation("auditd.log."),
            field_name_conditions=[IncludeFieldCondition(fields=["auditd.log.record_type", "event.module"])],
            field_name_condition_negation=True,
            rule_conditions=[LogsourceCondition(product="linux", service="auditd")],
        ),
        ProcessingItem(
            identifier="civicsoc_linux_fields",
            transformation=FieldMappingTransformation(LINUX_FIELDS),
            rule_conditions=[LogsourceCondition(product="linux")],
        ),
    ]
    return ProcessingPipeline(name="civicsoc: Linux syslog, auth and auditd", priority=30, items=items)


NETWORK_DATASETS: dict[str, str | list[str]] = {
    "dns": "network_traffic.dns",
    "proxy": "network_traffic.http",
    "firewall": "network_traffic.flow",
}
"""Sigma network categories → the pcap collector's datasets (``collectors.ecs.network``)."""

ZEEK_DATASETS: dict[str, str] = {
    "dns": "network_traffic.dns",
    "http": "network_traffic.http",
    "kerberos": "network_traffic.kerberos",
    "conn": "network_traffic.flow",
    "ssl": "network_traffic.tls",
}
"""Zeek logs with a counterpart in our captures. Other Zeek services keep ``event.dataset: zeek.<service>``
(``ecs_zeek_beats``' convention), which no civicsoc collector writes: the rule loads, and the rule-health
view can say its logsource never arrives."""

NETWORK_FIELDS: dict[str, str] = {
    # Zeek conn/dns/http names
    "id.orig_h": "source.ip", "id.orig_p": "source.port",
    "id.resp_h": "destination.ip", "id.resp_p": "destination.port",
    "query": "dns.question.name", "qtype_name": "dns.question.type", "answers": "dns.answers.data",
    "rcode_name": "dns.response_code",
    "uri": "url.original", "user_agent": "user_agent.original", "method": "http.request.method",
    "host": "url.domain", "status_code": "http.response.status_code", "request_body_len": "http.request.body.bytes",
    "resp_mime_types": "http.response.mime_type", "referrer": "http.request.referrer",
    "server_name": "tls.client.server_name",
    # proxy (W3C extended) names
    "c-uri": "url.original", "c-useragent": "user_agent.original", "cs-method": "http.request.method",
    "cs-host": "url.domain", "cs-uri": "url.original", "sc-status": "http.response.status_code",
    "c-uri-extension": "url.extension", "c-uri-query": "url.query", "c-uri-stem": "url.path",
    "cs-uri-stem": "url.path", "cs-uri-query": "url.query", "cs-referrer": "http.request.referrer",
    "r-dns": "url.domain", "c-ip": "source.ip",
    # dns / firewall generic names
    "record_type": "dns.question.type", "answer": "dns.answers.data",
    "src_ip": "source.ip", "dst_ip": "destination.ip", "src_port": "source.port", "dst_port": "destination.port",
    "action": "event.action",
}
"""Zeek, proxy and firewall field names → what the pcap collector writes (Packetbeat's ECS fields)."""


def _zeek_other(logsource: SigmaLogSource) -> dict[str, Any] | None:
    if logsource.service in ZEEK_DATASETS:
        return None
    return {"event.dataset": f"zeek.{logsource.service}" if logsource.service else "zeek"}


def network() -> ProcessingPipeline:
    items = [
        ProcessingItem(
            identifier=f"civicsoc_network_category_{category}",
            transformation=AddConditionTransformation({"event.dataset": dataset},
                                                      name=f"_civicsoc_network_category_{category}"),
            rule_conditions=[LogsourceCondition(category=category)],
        )
        for category, dataset in NETWORK_DATASETS.items()
    ]
    items += [
        ProcessingItem(
            identifier=f"civicsoc_network_zeek_{service}",
            transformation=AddConditionTransformation({"event.dataset": dataset}, name=f"_civicsoc_zeek_{service}"),
            rule_conditions=[LogsourceCondition(product="zeek", service=service)],
        )
        for service, dataset in ZEEK_DATASETS.items()
    ]
    items.append(ProcessingItem(
        identifier="civicsoc_network_zeek_other",
        transformation=AddLogsourceConditionTransformation(_zeek_other, name="_civicsoc_zeek_other"),
        rule_conditions=[LogsourceCondition(product="zeek")],
    ))
    fields = FieldMappingTransformation(NETWORK_FIELDS)
    items.append(ProcessingItem(
        identifier="civicsoc_network_fields",
        transformation=fields,
        rule_conditions=[LogsourceCondition(category=category) for category in NETWORK_DATASETS]
        + [LogsourceCondition(product="zeek")],
        rule_condition_linking=any,
    ))
    return ProcessingPipeline(name="civicsoc: network captures (Zeek, proxy, DNS, firewall names)", priority=30,
                              items=items)


WEB_DATASETS = ["apache.access", "nginx.access"]
WEB_SERVICE_DATASETS: dict[str, list[str]] = {
    "apache": ["apache.access", "apache.error"],
    "nginx": ["nginx.access", "nginx.error"],
}

WEB_FIELDS: dict[str, str] = {
    "cs-uri-query": "url.query",
    "cs-uri-stem": "url.path",
    "cs-uri": "url.original",
    "c-uri": "url.original",
    "c-ip": "source.ip",
    "s-ip": "destination.ip",
    "sc-status": "http.response.status_code",
    "cs-method": "http.request.method",
    "cs-user-agent": "user_agent.original",
    "cs-referer": "http.request.referrer",
    "cs-username": "user.name",
    "cs-host": "url.domain",
    "cs-content-type": "http.request.mime_type",
    "cs-version": "http.version",
    "sc-bytes": "http.response.body.bytes",
}
"""W3C extended log names (``category: webserver``) → what ``collectors.ecs.access`` writes (Elastic's
apache/nginx integrations' fields)."""


def web() -> ProcessingPipeline:
    items = [
        ProcessingItem(
            identifier="civicsoc_web_category",
            transformation=AddConditionTransformation({"event.dataset": WEB_DATASETS}, name="_civicsoc_web_category"),
            rule_conditions=[LogsourceCondition(category="webserver")],
        ),
        ProcessingItem(
            identifier="civicsoc_web_fields",
            transformation=FieldMappingTransformation(WEB_FIELDS),
            rule_conditions=[LogsourceCondition(category="webserver")],
        ),
    ]
    items += [
        ProcessingItem(
            identifier=f"civicsoc_web_service_{service}",
            transformation=AddConditionTransformation({"event.dataset": datasets},
                                                      name=f"_civicsoc_web_service_{service}"),
            rule_conditions=[LogsourceCondition(service=service)],
        )
        for service, datasets in WEB_SERVICE_DATASETS.items()
    ]
    return ProcessingPipeline(name="civicsoc: web server access and error logs", priority=30, items=items)


HANDLED_LOGSOURCES: tuple[dict[str, str], ...] = (
    {"product": "windows"},
    {"product": "linux"},
    {"product": "zeek"},
    {"category": "webserver"},
    {"category": "antivirus"},
    *({"category": category} for category in NETWORK_DATASETS),
    *({"service": service} for service in WEB_SERVICE_DATASETS),
)
"""Logsources a layer above maps; every other one is pinned to ``event.module`` by ``foreign_logsources``."""


def _foreign_module(logsource: SigmaLogSource) -> dict[str, Any] | None:
    module = logsource.product or logsource.service or logsource.category
    return None if module is None else {"event.module": module}


def foreign_logsources() -> ProcessingPipeline:
    return ProcessingPipeline(name="civicsoc: pin logsources we do not collect to their event.module", priority=40,
                              items=[ProcessingItem(
                                  identifier="civicsoc_foreign_logsource",
                                  transformation=AddLogsourceConditionTransformation(
                                      _foreign_module, name="_civicsoc_foreign_logsource"),
                                  rule_conditions=[LogsourceCondition(**logsource) for logsource in HANDLED_LOGSOURCES],
                                  rule_condition_linking=any,
                                  rule_condition_negation=True,
                              )])


def placeholders(values: Mapping[str, Sequence[str | int]]) -> ProcessingPipeline:
    """``%name%`` placeholders of ``|expand`` values → the configured values (OR-ed), via pySigma."""
    if not values:
        return ProcessingPipeline(name="civicsoc: placeholders (none configured)", priority=50)
    return ProcessingPipeline(
        name="civicsoc: placeholders",
        priority=50,
        vars={name: list(items) for name, items in values.items()},
        items=[ProcessingItem(identifier="civicsoc_placeholders",
                              transformation=ValueListPlaceholderTransformation(include=sorted(values)))],
    )


def civicsoc_pipeline(placeholder_values: Mapping[str, Sequence[str | int]] | None = None) -> ProcessingPipeline:
    """The whole mapping, in application order. Build it once per rule set: pySigma pipelines keep
    per-rule tracking state, so one instance must not be applied from two threads at once."""
    return (windows_logsources() + ecs_windows() + linux() + network() + web() + foreign_logsources()
            + placeholders(placeholder_values or {}))


def conversion_backend(**options: Any) -> LuceneBackend:
    """pySigma's own Lucene backend for rules this module's pipeline has *already* processed (``Rule.sigma``):
    what the rules convert to for Elastic's index templates. Hunts on the civicsoc template use
    ``detection.lucene.civicsoc_backend()``, whose queries select what the stream matcher matches.

    Its own pipeline is empty on purpose: converting ``Rule.sigma`` with ``civicsoc_pipeline()`` again
    would add the logsource conditions twice. ``backend.convert_rule(rule.sigma)`` gives the queries;
    ``backend.convert_rule(rule.sigma, "dsl_lucene")`` the query DSL.
    """
    return LuceneBackend(processing_pipeline=ProcessingPipeline(), **options)


def strip_caseless(field_name: str) -> tuple[str, bool]:
    """``process.executable.caseless`` → (``process.executable``, True): the event field and whether the
    mapping asked for a case-insensitive comparison."""
    if field_name.endswith(CASELESS_SUFFIX):
        return field_name[: -len(CASELESS_SUFFIX)], True
    return field_name, False
