"""The Windows mapper on real records.

Expected values are read from the same record as ``python-evtx`` (a separate, pure-Python EVTX
decoder) renders it in XML, or computed with the standard library (``ipaddress``, ``ntpath``,
``json``) from the raw record — never taken from the mapper's own tables. The two decoders render
a few types differently (GUIDs, booleans, hex widths, FILETIMEs); tests compare those by value.
"""

from __future__ import annotations

import ipaddress
import json
import ntpath
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from evtx import PyEvtxParser
from Evtx.Evtx import Evtx

from civicsoc.event import get_field
from collectors.base import CollectorContext, DeadLetter, ParseError
from collectors.ecs.windows import map_windows_record
from collectors.evtx import read_evtx

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
CORPORA = ("evtx-attack-samples", "evtx-to-mitre-attack", "deepbluecli-evtx", "hayabusa-sample-evtx",
           "sigmahq-regression-data")
AUDIT_FAILURE = 0x10000000000000  # StandardEventKeywords.AuditFailure
AUDIT_SUCCESS = 0x20000000000000  # StandardEventKeywords.AuditSuccess
CLOCK_SLACK = timedelta(microseconds=3)
"""FILETIMEs count 100 ns; the crate converts them with integers and truncates to the microsecond,
python-evtx goes through a float (``qword * 1e-7``) and is off by a microsecond or two."""


class Raw:
    """One record as both decoders see it: the crate's JSON (the mapper's input) and python-evtx's XML."""

    def __init__(self, record: dict[str, Any], xml: ET.Element) -> None:
        self.record = record
        self.xml = xml

    def system(self, name: str) -> ET.Element:
        element = self.xml.find(f"{NS}System/{NS}{name}")
        assert element is not None, name
        return element

    @property
    def data(self) -> dict[str, str]:
        """EventData as {Name: text}, from python-evtx's XML."""
        return {item.get("Name"): item.text or "" for item in self.xml.iter(f"{NS}Data") if item.get("Name")}

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.system("TimeCreated").get("SystemTime")).astimezone(UTC)

    @property
    def keywords(self) -> int:
        return int(self.system("Keywords").text, 16)

    def mapped(self) -> dict[str, Any]:
        return map_windows_record(self.record).fields


def raw_record(path: Path, number: int) -> Raw:
    """Record ``number`` (its record header's number) of ``path``, decoded by both libraries."""
    record = next(orjson.loads(raw["data"]) for raw in PyEvtxParser(str(path)).records_json()
                  if raw["event_record_id"] == number)
    with Evtx(str(path)) as log:
        xml = next(entry.xml() for entry in log.records() if entry.record_num() == number)
    return Raw(record, ET.fromstring(xml))


def first_record(path: Path, channel: str, event_id: int, where: Callable[[dict[str, Any]], bool] | None = None,
                 **data: Any) -> Raw:
    """The first record of ``channel``/``event_id`` whose EventData has the given values and passes
    ``where`` (both judged on the crate's JSON: this only chooses the record)."""
    for raw in PyEvtxParser(str(path)).records_json():
        event = orjson.loads(raw["data"])["Event"]
        system = event["System"]
        code = system["EventID"]["#text"] if isinstance(system["EventID"], dict) else system["EventID"]
        values = event.get("EventData") or {}
        if system.get("Channel") == channel and int(code) == event_id and all(
                values.get(name) == value for name, value in data.items()) and (where is None or where(values)):
            return raw_record(path, raw["event_record_id"])
    raise LookupError(f"no {channel} {event_id} {data} in {path}")


def plain_ip(text: str) -> str:
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


SYSMON = "Microsoft-Windows-Sysmon/Operational"


# --- Sysmon ---------------------------------------------------------------------------------------

def test_sysmon_process_creation(shared_data: Path) -> None:
    folder = (shared_data / "sigmahq-regression-data" / "regression_data" / "rules-emerging-threats" / "2025"
              / "Malware" / "Shai-Hulud" / "proc_creation_win_mal_shai_hulud_indicator")
    raw = first_record(next(folder.glob("*.evtx")), SYSMON, 1)
    fields, data = raw.mapped(), raw.data
    assert get_field(fields, "process.executable") == data["Image"]
    assert get_field(fields, "process.name") == ntpath.basename(data["Image"])
    assert get_field(fields, "process.command_line") == data["CommandLine"]
    assert get_field(fields, "process.working_directory") == data["CurrentDirectory"]
    assert get_field(fields, "process.pid") == int(data["ProcessId"])
    assert get_field(fields, "process.entity_id") == data["ProcessGuid"]  # python-evtx renders it as Windows does
    assert get_field(fields, "process.parent.executable") == data["ParentImage"]
    assert get_field(fields, "process.parent.command_line") == data["ParentCommandLine"]
    assert get_field(fields, "process.parent.pid") == int(data["ParentProcessId"])
    domain, name = data["User"].split("\\")
    assert get_field(fields, "user.name") == name
    assert get_field(fields, "user.domain") == domain
    assert get_field(fields, "user.id") == raw.system("Security").get("UserID")
    assert get_field(fields, "host.name") == raw.system("Computer").text
    hashes = dict(part.split("=") for part in data["Hashes"].split(","))
    assert get_field(fields, "process.hash.sha256") == hashes["SHA256"].lower()
    assert get_field(fields, "process.hash.md5") == hashes["MD5"].lower()
    assert get_field(fields, "process.pe.imphash") == hashes["IMPHASH"].lower()
    assert get_field(fields, "process.pe.original_file_name") == data["OriginalFileName"]
    assert get_field(fields, "event.code") == raw.system("EventID").text == "1"
    assert get_field(fields, "event.category") == ["process"]
    assert get_field(fields, "event.type") == ["start"]


def test_sysmon_network_connection(shared_data: Path) -> None:
    raw = first_record(shared_data / "deepbluecli-evtx" / "evtx" / "metasploit-sysmon.evtx", SYSMON, 3,
                       Initiated=True)
    fields, data = raw.mapped(), raw.data
    assert get_field(fields, "source.ip") == plain_ip(data["SourceIp"])
    assert get_field(fields, "source.port") == int(data["SourcePort"])
    assert get_field(fields, "destination.ip") == plain_ip(data["DestinationIp"])
    assert get_field(fields, "destination.port") == int(data["DestinationPort"])
    assert get_field(fields, "network.transport") == data["Protocol"].lower()
    assert data["Initiated"].lower() == "true"
    assert get_field(fields, "network.direction") == "egress"  # Winlogbeat's word for an outbound connection
    assert get_field(fields, "network.type") == ("ipv6" if data["SourceIsIpv6"].lower() == "true" else "ipv4")
    assert get_field(fields, "process.executable") == data["Image"]
    assert get_field(fields, "event.category") == ["network"]
    assert get_field(fields, "winlog.event_data.Initiated") == "true"  # Windows renders booleans lower-case


def test_sysmon_dns_query(shared_data: Path) -> None:
    raw = first_record(shared_data / "deepbluecli-evtx" / "evtx" / "metasploit-sysmon.evtx", SYSMON, 22)
    fields, data = raw.mapped(), raw.data
    assert get_field(fields, "dns.question.name") == data["QueryName"]
    addresses = [plain_ip(part) for part in data["QueryResults"].split(";") if part and not part.startswith("type:")]
    assert addresses
    assert get_field(fields, "dns.resolved_ip") == addresses
    assert [answer["data"] for answer in get_field(fields, "dns.answers")] == addresses
    assert get_field(fields, "network.protocol") == "dns"
    assert get_field(fields, "process.executable") == data["Image"]


def test_sysmon_registry_value_set_with_a_dword(shared_data: Path) -> None:
    raw = raw_record(shared_data / "deepbluecli-evtx" / "evtx" / "metasploit-sysmon.evtx", 33)
    fields, data = raw.mapped(), raw.data
    assert raw.system("EventID").text == "13"
    path = data["TargetObject"]
    assert get_field(fields, "registry.path") == path
    hive, _, rest = path.partition("\\")
    assert get_field(fields, "registry.hive") == hive  # Sysmon writes the short hive names
    assert get_field(fields, "registry.value") == ntpath.basename(path)
    assert get_field(fields, "registry.key") == ntpath.dirname(rest)
    assert data["Details"].startswith("DWORD (0x")
    assert get_field(fields, "registry.data.strings") == [str(int(data["Details"][7:-1], 16))]
    assert get_field(fields, "registry.data.type") == "REG_DWORD"


def test_sysmon_registry_key_created(shared_data: Path) -> None:
    raw = first_record(shared_data / "evtx-attack-samples" / "AutomatedTestingTools" / "Malware"
                       / "rundll32_hollowing_wermgr_masquerading.evtx", SYSMON, 12, EventType="CreateKey")
    fields, data = raw.mapped(), raw.data
    key = data["TargetObject"].partition("\\")[2]
    assert get_field(fields, "registry.path") == data["TargetObject"]
    assert get_field(fields, "registry.key") == key  # a key event: the whole path is the key
    assert get_field(fields, "registry.value") is None
    assert get_field(fields, "event.category") == ["configuration", "registry"]


# --- Security -------------------------------------------------------------------------------------

def test_security_failed_logon(shared_data: Path) -> None:
    raw = first_record(shared_data / "deepbluecli-evtx" / "evtx" / "smb-password-guessing-security.evtx",
                       "Security", 4625)
    fields, data = raw.mapped(), raw.data
    assert raw.keywords & AUDIT_FAILURE
    assert get_field(fields, "event.category") == ["authentication"]
    assert get_field(fields, "event.outcome") == "failure"
    assert get_field(fields, "source.ip") == plain_ip(data["IpAddress"])
    assert get_field(fields, "user.name") == data["TargetUserName"]
    assert get_field(fields, "user.domain") == data["TargetDomainName"]
    assert data["LogonType"] == "3"
    assert get_field(fields, "winlog.logon.type") == "Network"  # Microsoft's name for logon type 3
    assert get_field(fields, "event.provider") == raw.system("Provider").get("Name")
    assert get_field(fields, "@timestamp") is None  # the mapper returns the time; the context stamps it
    assert abs(map_windows_record(raw.record).timestamp - raw.time) <= CLOCK_SLACK


def test_security_network_logon(shared_data: Path) -> None:
    raw = first_record(shared_data / "evtx-attack-samples" / "Command and Control" / "DE_RDP_Tunneling_4624.evtx",
                       "Security", 4624, where=lambda data: data.get("IpAddress") not in (None, "-"), LogonType=3)
    fields, data = raw.mapped(), raw.data
    assert raw.keywords & AUDIT_SUCCESS
    assert get_field(fields, "event.outcome") == "success"
    assert get_field(fields, "event.action") == "logged-in"
    assert get_field(fields, "winlog.logon.type") == "Network"
    # python-evtx zero-pads hex values (0x000113f5); Windows and the crate write 0x113f5.
    assert int(get_field(fields, "winlog.logon.id"), 16) == int(data["TargetLogonId"], 16)
    assert get_field(fields, "user.name") == data["TargetUserName"]
    assert get_field(fields, "user.id") == data["TargetUserSid"]
    assert get_field(fields, "source.ip") == plain_ip(data["IpAddress"])
    assert get_field(fields, "source.port") == int(data["IpPort"])
    assert get_field(fields, "winlog.event_data.LogonType") == "3"


def test_security_logon_without_a_peer_has_no_source_ip(shared_data: Path) -> None:
    raw = first_record(shared_data / "evtx-attack-samples" / "Command and Control" / "DE_RDP_Tunnel_5156.evtx",
                       "Security", 4624, IpAddress="-")
    fields = raw.mapped()
    assert raw.data["IpAddress"] == "-"
    assert get_field(fields, "source.ip") is None
    assert get_field(fields, "winlog.event_data.IpAddress") == "-"  # kept verbatim in the raw data


def test_security_process_creation_with_hex_pids(shared_data: Path) -> None:
    raw = first_record(shared_data / "deepbluecli-evtx" / "evtx" / "metasploit-psexec-native-target-security.evtx",
                       "Security", 4688)
    fields, data = raw.mapped(), raw.data
    assert get_field(fields, "process.pid") == int(data["NewProcessId"], 16)
    assert get_field(fields, "process.parent.pid") == int(data["ProcessId"], 16)
    assert get_field(fields, "process.executable") == data["NewProcessName"]
    assert get_field(fields, "process.name") == ntpath.basename(data["NewProcessName"])
    assert get_field(fields, "process.command_line") == data["CommandLine"]
    assert get_field(fields, "user.name") == data["SubjectUserName"]
    assert get_field(fields, "event.category") == ["process"]


def test_security_log_cleared_reads_the_user_data(shared_data: Path) -> None:
    raw = first_record(shared_data / "evtx-attack-samples" / "Defense Evasion" / "DE_1102_security_log_cleared.evtx",
                       "Security", 1102)
    fields = raw.mapped()
    cleared = raw.xml.find(f"{NS}UserData")
    assert cleared is not None
    values = {child.tag.rpartition("}")[2]: child.text for child in cleared[0]}
    assert get_field(fields, "user.name") == values["SubjectUserName"]
    assert get_field(fields, "user.domain") == values["SubjectDomainName"]
    assert get_field(fields, "winlog.event_data.SubjectUserSid") == values["SubjectUserSid"]
    assert get_field(fields, "event.action") == "audit-log-cleared"


def test_group_membership_change(shared_data: Path) -> None:
    path = shared_data / "evtx-to-mitre-attack" / "TA0003-Persistence" / "T1098.xxx-Account manipulation"
    raw = next(first_record(file, "Security", 4728) for file in sorted(path.glob("*.evtx"))
               if _has(file, "Security", 4728))
    fields, data = raw.mapped(), raw.data
    assert get_field(fields, "group.name") == data["TargetUserName"]
    assert get_field(fields, "group.id") == data["TargetSid"]
    assert get_field(fields, "user.name") == data["SubjectUserName"]
    member_cn = data["MemberName"].split(",")[0].removeprefix("CN=")
    assert get_field(fields, "user.target.name") == member_cn


def _has(path: Path, channel: str, event_id: int) -> bool:
    try:
        first_record(path, channel, event_id)
    except LookupError:
        return False
    return True


# --- PowerShell and System ------------------------------------------------------------------------

def test_powershell_script_block(shared_data: Path) -> None:
    raw = first_record(shared_data / "deepbluecli-evtx" / "evtx" / "Powershell-Invoke-Obfuscation-encoding-menu.evtx",
                       "Microsoft-Windows-PowerShell/Operational", 4104)
    fields, data = raw.mapped(), raw.data
    # XML parsing normalises line ends; the mapper keeps the record's \r\n.
    assert get_field(fields, "powershell.file.script_block_text").replace("\r\n", "\n") == data["ScriptBlockText"]
    assert get_field(fields, "powershell.file.script_block_id") == data["ScriptBlockId"]
    assert get_field(fields, "powershell.sequence") == int(data["MessageNumber"])
    assert get_field(fields, "powershell.total") == int(data["MessageTotal"])
    assert get_field(fields, "event.module") is None  # stamped by the context, from Mapped.module
    mapped = map_windows_record(raw.record)
    assert (mapped.module, mapped.dataset) == ("windows", "windows.powershell_operational")


def test_classic_powershell_pipeline_details(shared_data: Path) -> None:
    raw = first_record(shared_data / "evtx-attack-samples" / "Other" / "emotet" / "exec_emotet_ps_800_invoke-item.evtx",
                       "Windows PowerShell", 800)
    fields = raw.mapped()
    unnamed = raw.record["Event"]["EventData"]["Data"]["#text"]
    details = unnamed[1]
    host_application = next(line.split("=", 1)[1] for line in details.split("\r\n")
                            if line.strip().startswith("HostApplication="))
    assert get_field(fields, "process.command_line") == host_application
    assert get_field(fields, "winlog.event_data.Data") == unnamed
    assert [get_field(fields, f"winlog.event_data.param{n}") for n in (1, 2, 3)] == unnamed
    user_line = next(line.strip() for line in details.split("\r\n") if line.strip().startswith("UserId="))
    assert get_field(fields, "user.name") == user_line.split("\\")[-1]
    mapped = map_windows_record(raw.record)
    assert (mapped.module, mapped.dataset) == ("windows", "windows.powershell")


def test_service_installed(shared_data: Path) -> None:
    raw = first_record(shared_data / "deepbluecli-evtx" / "evtx" / "metasploit-psexec-powershell-target-system.evtx",
                       "System", 7045)
    fields, data = raw.mapped(), raw.data
    assert get_field(fields, "service.name") == data["ServiceName"]
    assert get_field(fields, "winlog.event_data.ImagePath") == data["ImagePath"]
    assert get_field(fields, "event.code") == "7045"
    assert get_field(fields, "winlog.channel") == "System"
    mapped = map_windows_record(raw.record)
    assert (mapped.module, mapped.dataset) == ("system", "system.system")


# --- properties over every record of the corpora --------------------------------------------------

def _walk(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _walk(value, f"{prefix}{key}.")]
    return [(prefix[:-1], node)]


IP_FIELDS = {"source.ip", "destination.ip", "dns.resolved_ip"}
INT_FIELDS = {"process.pid", "process.parent.pid", "process.thread.id", "source.port", "destination.port",
              "winlog.process.pid", "winlog.process.thread.id", "winlog.version", "process.exit_code",
              "event.sequence", "powershell.sequence", "powershell.total"}


def test_every_corpus_event_has_clean_ecs_values(shared_data: Path) -> None:
    context = CollectorContext(tenant="agency-a", keep_original=False)
    problems: list[str] = []
    count = 0
    for corpus in CORPORA:
        for path in sorted(p for p in (shared_data / corpus).rglob("*") if p.suffix.lower() == ".evtx"):
            for item in read_evtx(path, context):
                assert not isinstance(item.value, DeadLetter)
                fields = item.value.fields
                count += 1
                where = f"{path.name} record {fields['winlog'].get('record_id')}"
                if fields["event"]["code"] != fields["winlog"]["event_id"] or not fields["event"]["code"].isdigit():
                    problems.append(f"{where}: event.code {fields['event']['code']!r}")
                for name, value in _walk(fields):
                    if name.startswith("winlog.event_data."):
                        if not (isinstance(value, str) or (isinstance(value, list)
                                                           and all(isinstance(v, str) for v in value))):
                            problems.append(f"{where}: {name} is {type(value).__name__}, not text")
                        continue
                    if value in ("", "-") or (isinstance(value, list) and any(v in ("", "-") for v in value)):
                        problems.append(f"{where}: {name} is a placeholder {value!r}")
                    if name in IP_FIELDS:
                        for address in value if isinstance(value, list) else [value]:
                            if plain_ip(address) != address:
                                problems.append(f"{where}: {name} {address!r} is not a plain address")
                    if name in INT_FIELDS and type(value) is not int:
                        problems.append(f"{where}: {name} {value!r} is not an integer")
    assert count > 18000
    assert not problems, "\n".join(problems[:30])


def test_event_data_is_the_records_data_under_its_own_names(shared_data: Path) -> None:
    """Names exactly as in the record; values as text — JSON's own rendering for the numbers and
    booleans the crate typed (Windows' XML writes them the same way). Defender's spaced names
    (``Threat Name``) also appear without spaces, the way Sigma's windefend rules spell them."""
    checked = 0
    for path in sorted((shared_data / "evtx-attack-samples").rglob("*.evtx"))[:60]:
        for raw in PyEvtxParser(str(path)).records_json():
            record = orjson.loads(raw["data"])
            source = record["Event"].get("EventData")
            if not isinstance(source, dict) or "Data" in source:
                continue
            mapped = map_windows_record(record).fields["winlog"]["event_data"]
            expected = {name: value if isinstance(value, str) else "" if value is None else json.dumps(value)
                        for name, value in source.items() if name != "#attributes"}
            if record["Event"]["System"]["Channel"] == "Microsoft-Windows-Windows Defender/Operational":
                expected |= {name.replace(" ", ""): value for name, value in expected.items() if " " in name}
            assert mapped == expected, path
            checked += 1
    assert checked > 1000


def test_times_agree_with_python_evtx(shared_data: Path) -> None:
    path = shared_data / "deepbluecli-evtx" / "evtx" / "metasploit-sysmon.evtx"
    with Evtx(str(path)) as log:
        expected = {entry.record_num(): Raw({}, ET.fromstring(entry.xml())).time for entry in log.records()}
    for raw in PyEvtxParser(str(path)).records_json():
        mapped = map_windows_record(orjson.loads(raw["data"]))
        assert abs(mapped.timestamp - expected[raw["event_record_id"]]) <= CLOCK_SLACK
        assert mapped.timestamp.tzinfo is not None and mapped.timestamp.utcoffset().total_seconds() == 0


def test_channels_map_to_elastic_datasets(shared_data: Path) -> None:
    """Elastic's integrations: System (Security/System/Application), Windows (Sysmon, PowerShell)."""
    expected = {
        "Security": ("system", "system.security"),
        "System": ("system", "system.system"),
        "Application": ("system", "system.application"),
        SYSMON: ("windows", "windows.sysmon_operational"),
        "Microsoft-Windows-PowerShell/Operational": ("windows", "windows.powershell_operational"),
        "Windows PowerShell": ("windows", "windows.powershell"),
        "Microsoft-Windows-Bits-Client/Operational": ("winlog", "winlog.winlog"),
    }
    seen: dict[str, tuple[str, str]] = {}
    for path in sorted((shared_data / "deepbluecli-evtx").rglob("*.evtx")) + sorted(
            (shared_data / "evtx-attack-samples").rglob("*.evtx")):
        for raw in PyEvtxParser(str(path)).records_json():
            mapped = map_windows_record(orjson.loads(raw["data"]))
            channel = mapped.fields["winlog"].get("channel")
            if channel in expected:
                seen[channel] = (mapped.module, mapped.dataset)
    assert seen == expected


# --- errors ---------------------------------------------------------------------------------------

def test_a_record_without_system_properties_is_refused(shared_data: Path) -> None:
    raw = first_record(shared_data / "deepbluecli-evtx" / "evtx" / "metasploit-sysmon.evtx", SYSMON, 1)
    del raw.record["Event"]["System"]
    with pytest.raises(ParseError, match=r"Event\.System"):
        map_windows_record(raw.record)
    with pytest.raises(ParseError, match="'Event'"):
        map_windows_record({"System": {}})


# --- pySigma --------------------------------------------------------------------------------------

def test_sigma_rule_fields_resolve_on_their_regression_events(shared_data: Path) -> None:
    """For each SigmaHQ rule with regression data: after pySigma's ``ecs_windows`` pipeline, every
    field its positive detections need exists in one of the events the rule must match."""
    pytest.importorskip("sigma.pipelines.elasticsearch.windows", reason="pysigma-backend-elasticsearch not installed")
    import fnmatch

    import yaml
    from sigma.conditions import ConditionOR
    from sigma.pipelines.elasticsearch.windows import ecs_windows
    from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

    rules: dict[str, Path] = {}
    for rule_path in (shared_data / "sigmahq-sigma").rglob("*.yml"):
        for line in rule_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("id: "):
                rules[line[4:].strip()] = rule_path
                break

    def positive(rule: SigmaRule) -> set[str]:
        names = list(rule.detection.detections)
        found: set[str] = set()
        for condition in rule.detection.condition:
            tokens = condition.replace("(", " ( ").replace(")", " ) ").split()
            negated, pending, index = [False], False, 0
            while index < len(tokens):
                token = tokens[index]
                if token == "not":
                    pending, index = not pending, index + 1
                elif token == "(":
                    negated.append(negated[-1] ^ pending)
                    pending, index = False, index + 1
                elif token == ")":
                    negated.pop()
                    index += 1
                elif token in ("and", "or"):
                    index += 1
                else:
                    if token in ("1", "all", "any") and index + 2 < len(tokens) and tokens[index + 1] == "of":
                        pattern = tokens[index + 2]
                        matched = names if pattern == "them" else fnmatch.filter(names, pattern)
                        index += 3
                    else:
                        matched, index = [token], index + 1
                    if not (negated[-1] ^ pending):
                        found.update(matched)
                    pending = False
        return found

    def resolves(detection: SigmaDetection | SigmaDetectionItem, event: dict[str, Any]) -> bool:
        if isinstance(detection, SigmaDetectionItem):
            return detection.field is None or get_field(event, detection.field.removesuffix(".caseless")) is not None
        results = [resolves(item, event) for item in detection.detection_items]
        return any(results) if detection.item_linking is ConditionOR else all(results)

    context = CollectorContext(tenant="agency-a", keep_original=False)
    failures, checked = [], 0
    for info in sorted((shared_data / "sigmahq-regression-data").rglob("info.yml")):
        meta = yaml.safe_load(info.read_text())
        rule_path = rules.get(meta["rule_metadata"][0]["id"])
        logs = sorted(info.parent.glob("*.evtx"))
        if rule_path is None or not logs:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rule = SigmaRule.from_yaml(rule_path.read_text(encoding="utf-8"))
        if rule.logsource.product != "windows":
            continue
        ecs_windows().apply(rule)
        events = [item.value.fields for log in logs for item in read_evtx(log, context)
                  if not isinstance(item.value, DeadLetter)]
        needed = positive(rule)
        checked += 1
        if not any(all(resolves(rule.detection.detections[name], event) for name in needed) for event in events):
            failures.append(f"{rule_path.name}: fields of {sorted(needed)} not all found")
    assert checked > 100
    assert not failures, "\n".join(failures)


SYSMON_FIELDS = {
    5: {"Image": "process.executable"},
    7: {"Image": "process.executable", "ImageLoaded": "file.path", "Signature": "file.code_signature.subject_name"},
    8: {"SourceImage": "process.executable", "SourceProcessId": "process.pid"},
    10: {"SourceImage": "process.executable", "SourceProcessId": "process.pid", "SourceThreadId": "process.thread.id"},
    11: {"Image": "process.executable", "TargetFilename": "file.path"},
    17: {"Image": "process.executable", "PipeName": "file.name"},
    18: {"Image": "process.executable", "PipeName": "file.name"},
    6: {"ImageLoaded": "file.path", "Signature": "file.code_signature.subject_name"},
}
"""Sysmon fields and where pySigma's ``ecs_windows`` pipeline (and Elastic's Sysmon pipeline) look for them."""


@pytest.mark.parametrize("event_id", sorted(SYSMON_FIELDS))
def test_sysmon_fields_land_where_sigma_looks(shared_data: Path, event_id: int) -> None:
    raw = None
    for corpus in ("evtx-attack-samples", "deepbluecli-evtx", "evtx-to-mitre-attack"):
        for path in sorted((shared_data / corpus).rglob("*.evtx")):
            if _has(path, SYSMON, event_id):
                raw = first_record(path, SYSMON, event_id)
                break
        if raw is not None:
            break
    assert raw is not None, f"no Sysmon {event_id} in the corpora"
    fields, data = raw.mapped(), raw.data
    for name, target in SYSMON_FIELDS[event_id].items():
        expected: Any = int(data[name]) if target.endswith(("pid", "thread.id")) else data[name]
        assert get_field(fields, target) == expected, (name, target)
        assert get_field(fields, f"winlog.event_data.{name}") is not None  # and the raw name stays
    if "file.path" in SYSMON_FIELDS[event_id].values():
        assert get_field(fields, "file.name") == ntpath.basename(get_field(fields, "file.path"))
