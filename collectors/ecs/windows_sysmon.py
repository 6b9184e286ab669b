"""The Sysmon channel: ECS fields after Elastic's ``windows.sysmon_operational`` ingest pipeline.

Field choices and categorization follow
``packages/windows/data_stream/sysmon_operational/elasticsearch/ingest_pipeline/default.yml`` of
elastic/integrations (which is also what pySigma's ``ecs_windows`` pipeline was written against):
the acting process is ``process.*`` (``SourceImage`` for events 8 and 10), ``User`` is split into
``user.domain``/``user.name``, hashes go to ``process.hash`` or ``file.hash`` depending on the event.
"""

from __future__ import annotations

from typing import Any

from collectors.ecs.windows_spec import EventSpec, put
from collectors.ecs.windows_values import (
    file_fields,
    guid,
    ip,
    split_account,
    text,
    to_int,
)

CHANNEL = "Microsoft-Windows-Sysmon/Operational"

REGISTRY_HIVES = {
    "HKEY_CLASSES_ROOT": "HKCR", "HKCR": "HKCR", "HKEY_CURRENT_CONFIG": "HKCC", "HKCC": "HKCC",
    "HKEY_CURRENT_USER": "HKCU", "HKCU": "HKCU", "HKEY_DYN_DATA": "HKDD", "HKDD": "HKDD",
    "HKEY_LOCAL_MACHINE": "HKLM", "HKLM": "HKLM", "HKEY_PERFORMANCE_DATA": "HKPD", "HKPD": "HKPD",
    "HKEY_USERS": "HKU", "HKU": "HKU",
}

DNS_TYPES = {
    "1": "A", "2": "NS", "3": "MD", "4": "MF", "5": "CNAME", "6": "SOA", "7": "MB", "8": "MG", "9": "MR",
    "10": "NULL", "11": "WKS", "12": "PTR", "13": "HINFO", "14": "MINFO", "15": "MX", "16": "TXT", "17": "RP",
    "18": "AFSDB", "19": "X25", "20": "ISDN", "21": "RT", "22": "NSAP", "23": "NSAPPTR", "24": "SIG",
    "25": "KEY", "26": "PX", "27": "GPOS", "28": "AAAA", "29": "LOC", "30": "NXT", "31": "EID", "32": "NIMLOC",
    "33": "SRV", "34": "ATMA", "35": "NAPTR", "36": "KX", "37": "CERT", "38": "A6", "39": "DNAME", "40": "SINK",
    "41": "OPT", "43": "DS", "46": "RRSIG", "47": "NSEC", "48": "DNSKEY", "49": "DHCID", "100": "UINFO",
    "101": "UID", "102": "GID", "103": "UNSPEC", "248": "ADDRS", "249": "TKEY", "250": "TSIG", "251": "IXFR",
    "252": "AXFR", "253": "MAILB", "254": "MAILA", "255": "ANY", "65281": "WINS", "65282": "WINSR",
}

# The common QueryStatus codes (Win32/DNS error codes); others stay numeric, as in the Elastic pipeline.
DNS_STATUS = {
    "0": "SUCCESS", "5": "ERROR_ACCESS_DENIED", "8": "ERROR_NOT_ENOUGH_MEMORY", "13": "ERROR_INVALID_DATA",
    "14": "ERROR_OUTOFMEMORY", "123": "ERROR_INVALID_NAME", "1214": "ERROR_INVALID_NETNAME",
    "1223": "ERROR_CANCELLED", "1460": "ERROR_TIMEOUT", "4312": "ERROR_OBJECT_NOT_FOUND",
    "9001": "DNS_ERROR_RCODE_FORMAT_ERROR", "9002": "DNS_ERROR_RCODE_SERVER_FAILURE",
    "9003": "DNS_ERROR_RCODE_NAME_ERROR", "9004": "DNS_ERROR_RCODE_NOT_IMPLEMENTED",
    "9005": "DNS_ERROR_RCODE_REFUSED", "9501": "DNS_INFO_NO_RECORDS", "9502": "DNS_ERROR_BAD_PACKET",
    "9503": "DNS_ERROR_NO_PACKET", "9504": "DNS_ERROR_RCODE", "9505": "DNS_ERROR_UNSECURE_PACKET",
    "9560": "DNS_ERROR_INVALID_NAME_CHAR", "9701": "DNS_ERROR_RECORD_DOES_NOT_EXIST",
    "9851": "DNS_ERROR_NO_TCPIP", "9852": "DNS_ERROR_NO_DNS_SERVERS", "10054": "WSAECONNRESET",
    "10055": "WSAENOBUFS", "10060": "WSAETIMEDOUT",
}

HASH_NAMES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512",
              "IMPHASH": "imphash"}


# --- steps ---------------------------------------------------------------------------------------

# Every Sysmon event runs ``acting_process`` and event 1 (the commonest) runs the rest below:
# ``value and value != "-"`` stands for ``text(value) is not None`` inline (event data values are
# text), and decimal numbers are converted inline, to keep helper calls off this path.

def acting_process(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """ProcessGuid/ProcessId/Image (or the Source* variants of events 8 and 10), and the user."""
    get = data.get
    process: dict[str, Any] = {}
    entity = guid(get("ProcessGuid") or get("SourceProcessGuid") or get("SourceProcessGUID"))
    if entity is not None:
        process["entity_id"] = entity
    pid = get("ProcessId")
    if pid is None:
        pid = get("SourceProcessId")
    if pid is not None and (pid := int(pid) if pid.isdigit() else to_int(pid)) is not None:
        process["pid"] = pid
    if (image := get("Image") or get("SourceImage")) and image != "-":
        process["executable"] = image  # process_fields, inline
        process["name"] = image.rpartition("\\")[2]
    if (thread := get("SourceThreadId")) is not None and (thread := to_int(thread)) is not None:
        process["thread"] = {"id": thread}
    if process:
        put(doc, "process", process)
    if "User" in data or "SourceUser" in data:
        domain, name = split_account(get("User") or get("SourceUser"))
        user = {}
        if name is not None:
            user["name"] = name
        if domain is not None:
            user["domain"] = domain
        put(doc, "user", user)
    if (rule := get("RuleName")) and rule != "-":
        doc["rule"] = {"name": rule}


def hashes(data: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """``SHA1=…,MD5=…,IMPHASH=…`` → ({sha1: …, md5: …}, imphash), lower-cased; all-zero hashes dropped."""
    raw = text(data.get("Hashes") or data.get("Hash"))
    found: dict[str, str] = {}
    imphash = None
    if raw is None:
        return found, imphash
    for part in raw.split(","):
        name, _, value = part.partition("=")
        key = HASH_NAMES.get(name.strip().upper())
        value = value.strip().lower()
        if key is None or not value or not value.strip("0"):
            continue
        if key == "imphash":
            imphash = value
        else:
            found[key] = value
    return found, imphash


def process_hashes(data: dict[str, Any], doc: dict[str, Any]) -> None:
    found, imphash = hashes(data)
    process = doc.setdefault("process", {})
    if found:
        process["hash"] = found
    if imphash is not None:
        process.setdefault("pe", {})["imphash"] = imphash


def pe_metadata(data: dict[str, Any], target: dict[str, Any]) -> None:
    """OriginalFileName/Company/Description/FileVersion/Product → ``<target>.pe``."""
    pe = target.get("pe") or {}
    for source_name, ecs_name in _PE_FIELDS:
        if (value := data.get(source_name)) and value != "-":
            pe[ecs_name] = value
    if pe:
        target["pe"] = pe


_PE_FIELDS = (("OriginalFileName", "original_file_name"), ("Company", "company"), ("Description", "description"),
              ("FileVersion", "file_version"), ("Product", "product"))


def process_create(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Event 1: the new process and its parent."""
    acting_process(data, doc)
    get = data.get
    process = doc.setdefault("process", {})
    if (command_line := get("CommandLine")) and command_line != "-":
        process["command_line"] = command_line
    if (directory := get("CurrentDirectory")) and directory != "-":
        process["working_directory"] = directory
    pe_metadata(data, process)
    process_hashes(data, doc)
    parent: dict[str, Any] = {}
    if (parent_entity := guid(get("ParentProcessGuid"))) is not None:
        parent["entity_id"] = parent_entity
    if (pid := get("ParentProcessId")) is not None and (pid := int(pid) if pid.isdigit() else to_int(pid)) is not None:
        parent["pid"] = pid
    if (image := get("ParentImage")) and image != "-":
        parent["executable"] = image  # process_fields, inline
        parent["name"] = image.rpartition("\\")[2]
    if (parent_command_line := get("ParentCommandLine")) and parent_command_line != "-":
        parent["command_line"] = parent_command_line
    if parent:
        process["parent"] = parent


def file_event(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Events 2, 9, 11, 15, 23, 26-29: TargetFilename (Device for raw reads, event 9) is the file."""
    acting_process(data, doc)
    if (path := text(data.get("TargetFilename") or data.get("Device"))) is not None:
        doc["file"] = file_fields(path)


def file_stream(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Event 15 (FileCreateStreamHash): the stream's hash is the file's."""
    file_event(data, doc)
    found, _ = hashes(data)
    if found:
        doc.setdefault("file", {})["hash"] = found


def file_delete(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Events 23 and 26: the deleted file, its hashes (on the process, as Elastic does for 23)."""
    file_event(data, doc)
    process_hashes(data, doc)
    sysmon_file = {}
    if (archived := data.get("Archived")) in ("true", "false"):
        sysmon_file["archived"] = archived == "true"
    if (executable := data.get("IsExecutable")) in ("true", "false"):
        sysmon_file["is_executable"] = executable == "true"
    if sysmon_file:
        doc["sysmon"] = {"file": sysmon_file}


def loaded_image(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Events 6 (driver) and 7 (image): ImageLoaded is the file, with hashes, PE data and signature."""
    acting_process(data, doc)
    path = text(data.get("ImageLoaded"))
    file: dict[str, Any] = file_fields(path) if path is not None else {}
    found, imphash = hashes(data)
    if found:
        file["hash"] = found
    pe_metadata(data, file)
    if imphash is not None:
        file.setdefault("pe", {})["imphash"] = imphash
    signature: dict[str, Any] = {}
    if (subject := text(data.get("Signature"))) is not None:
        signature["subject_name"] = subject
    if (status := text(data.get("SignatureStatus"))) is not None:
        signature["status"] = status
        signature["valid"] = status == "Valid"
    if (signed := data.get("Signed")) in ("true", "false"):
        signature["signed"] = signed == "true"
    if signature:
        file["code_signature"] = signature
    if file:
        doc["file"] = file


def network_connection(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Event 3: both ends, transport, direction (Initiated) and address family."""
    acting_process(data, doc)
    for side, prefix in (("source", "Source"), ("destination", "Destination")):
        fields: dict[str, Any] = {}
        if (address := ip(data.get(prefix + "Ip"))) is not None:
            fields["ip"] = address
        if (port := to_int(data.get(prefix + "Port"))) is not None:
            fields["port"] = port
        if (hostname := text(data.get(prefix + "Hostname"))) is not None:
            fields["domain"] = hostname
        put(doc, side, fields)
    network: dict[str, Any] = {}
    if (transport := text(data.get("Protocol"))) is not None:
        network["transport"] = transport.lower()
    if (protocol := text(data.get("DestinationPortName") or data.get("SourcePortName"))) is not None:
        network["protocol"] = protocol
    initiated = data.get("Initiated")
    if initiated == "true":
        network["direction"] = "egress"
    elif initiated == "false":
        network["direction"] = "ingress"
    ipv6 = data.get("SourceIsIpv6")
    if ipv6 == "true":
        network["type"] = "ipv6"
    elif ipv6 == "false":
        network["type"] = "ipv4"
    put(doc, "network", network)


def registry_event(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Events 12-14: TargetObject split into hive/key/value as ECS defines them; Details decoded.

    ECS: ``registry.key`` is the key without the hive, ``registry.value`` the value name; for key
    events (CreateKey/DeleteKey/RenameKey) the whole path is a key and there is no value.
    """
    acting_process(data, doc)
    path = text(data.get("TargetObject"))
    if path is None:
        return
    registry: dict[str, Any] = {"path": path}
    hive_name, separator, rest = path.partition("\\")
    hive = REGISTRY_HIVES.get(hive_name.upper())
    if hive is not None:
        registry["hive"] = hive
    key_path = rest if (hive is not None and separator) else path
    if "Value" in data.get("EventType", "Value"):
        key, _, value = key_path.rpartition("\\")
        if value:  # a path ending in "\\" names the key's default value, which has no name
            registry["value"] = value
        if key:
            registry["key"] = key
    else:
        registry["key"] = key_path
    details = text(data.get("Details"))
    if details is not None:
        registry["data"] = registry_data(details)
    doc["registry"] = registry


def registry_data(details: str) -> dict[str, Any]:
    """Sysmon's Details text → ECS ``registry.data`` (``DWORD (0x00000001)`` → strings ["1"])."""
    if details.startswith("DWORD (0x") and details.endswith(")"):
        number = to_int(details[7:-1])
        if number is not None:
            return {"strings": [str(number)], "type": "REG_DWORD"}
    if details.startswith("QWORD (0x") and details.endswith(")"):
        high, _, low = details[7:-1].partition("-")
        high_number, low_number = to_int(high), to_int(low)
        if high_number is not None and low_number is not None:
            return {"strings": [str((high_number << 32) + low_number)], "type": "REG_QWORD"}
    if details == "Binary Data":
        return {"strings": [details], "type": "REG_BINARY"}
    return {"strings": [details], "type": "REG_SZ"}


def pipe_event(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Events 17 and 18: the pipe's name is ``file.name`` (pySigma maps PipeName there)."""
    acting_process(data, doc)
    if (name := text(data.get("PipeName"))) is not None:
        doc["file"] = {"name": name}


def dns_query(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Event 22: the question, the answers and resolved addresses from QueryResults, the status."""
    acting_process(data, doc)
    dns: dict[str, Any] = {}
    if (name := text(data.get("QueryName"))) is not None:
        dns["question"] = {"name": name}
    results = text(data.get("QueryResults"))
    if results is not None:
        answers: list[dict[str, str]] = []
        resolved: list[str] = []
        # "type:  5 cname.example;::ffff:1.2.3.4;" — records split by ';', CNAME-like ones typed.
        for answer in results.split(";"):
            answer = answer.strip()
            if not answer:
                continue
            if answer.startswith("type:"):
                parts = answer.split()
                if len(parts) == 3:
                    answers.append({"type": DNS_TYPES.get(parts[1], parts[1]), "data": parts[2]})
                continue
            if (address := ip(answer)) is not None:
                resolved.append(address)
                answers.append({"type": "AAAA" if ":" in address else "A", "data": address})
        if answers:
            dns["answers"] = answers
        if resolved:
            dns["resolved_ip"] = resolved
    put(doc, "dns", dns)
    doc["network"] = {"protocol": "dns"}
    status = data.get("QueryStatus")
    if status is not None and status != "":
        doc["sysmon"] = {"dns": {"status": DNS_STATUS.get(status, status)}}


def process_only(data: dict[str, Any], doc: dict[str, Any]) -> None:
    acting_process(data, doc)


def process_with_hashes(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Event 24 (ClipboardChange): the process and the hashes Sysmon logs."""
    acting_process(data, doc)
    process_hashes(data, doc)


def process_tampering(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Event 25: the process; the kind of tampering (``Type``) is the message, as Elastic has it."""
    acting_process(data, doc)
    if (kind := text(data.get("Type"))) is not None:
        doc["message"] = kind


def sysmon_error(data: dict[str, Any], doc: dict[str, Any]) -> None:
    if (code := text(data.get("ID"))) is not None:
        doc["error"] = {"code": code}


SPECS: dict[str, EventSpec] = {
    "1": EventSpec(("process",), ("start",), "Process creation", process_create),
    "2": EventSpec(("file",), ("change",), "A process changed a file creation time", file_event),
    "3": EventSpec(("network",), ("start", "connection", "protocol"), "Network connection", network_connection),
    "4": EventSpec(("process",), ("change",), "Sysmon service state changed"),
    "5": EventSpec(("process",), ("end",), "Process terminated", process_only),
    "6": EventSpec(("driver",), ("start",), "Driver loaded", loaded_image),
    "7": EventSpec(("process",), ("change",), "Image loaded", loaded_image),
    "8": EventSpec(("process",), ("change",), "CreateRemoteThread", process_only),
    "9": EventSpec(("process",), ("access",), "RawAccessRead", file_event),
    "10": EventSpec(("process",), ("access",), "ProcessAccess", process_only),
    "11": EventSpec(("file",), ("creation",), "FileCreate", file_event),
    "12": EventSpec(("configuration", "registry"), ("change",), "RegistryEvent (Object create and delete)",
                    registry_event),
    "13": EventSpec(("configuration", "registry"), ("change",), "RegistryEvent (Value Set)", registry_event),
    "14": EventSpec(("configuration", "registry"), ("change",), "RegistryEvent (Key and Value Rename)",
                    registry_event),
    "15": EventSpec(("file",), ("access",), "FileCreateStreamHash", file_stream),
    "16": EventSpec(("configuration",), ("change",), "ServiceConfigurationChange"),
    "17": EventSpec(("file",), ("creation",), "PipeEvent (Pipe Created)", pipe_event),
    "18": EventSpec(("file",), ("access",), "PipeEvent (Pipe Connected)", pipe_event),
    "19": EventSpec(("process",), ("info",), "WmiEvent (WmiEventFilter activity detected)", process_only),
    "20": EventSpec(("process",), ("change",), "WmiEvent (WmiEventConsumer activity detected)", process_only),
    "21": EventSpec(("process",), ("access",), "WmiEvent (WmiEventConsumerToFilter activity detected)",
                    process_only),
    "22": EventSpec(("network",), ("connection", "protocol", "info"), "DNSEvent (DNS query)", dns_query),
    "23": EventSpec(("file",), ("deletion",), "FileDelete (File Delete archived)", file_delete),
    "24": EventSpec((), ("change",), "ClipboardChange (New content in the clipboard)", process_with_hashes),
    "25": EventSpec(("process",), ("change",), "ProcessTampering (Process image change)", process_tampering),
    "26": EventSpec(("file",), ("deletion",), "FileDeleteDetected (File Delete logged)", file_delete),
    "27": EventSpec(("file",), ("creation",), "FileBlockExecutable", file_delete, outcome="failure"),
    "28": EventSpec(("file",), ("deletion",), "FileBlockShredding", file_delete),
    "29": EventSpec(("file",), ("creation",), "FileExecutableDetected", file_stream),
    "255": EventSpec(("process",), (), "Error", sysmon_error, outcome="failure"),
}
