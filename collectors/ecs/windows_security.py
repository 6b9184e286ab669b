"""The Security channel: ECS fields for audit events, after Elastic's ``system.security`` pipeline.

Categorization (``event.category/type/action``) and the user/target/effective-user split follow
``packages/system/data_stream/security/elasticsearch/ingest_pipeline/standard.yml`` of
elastic/integrations. Where Winlogbeat leaves a field in ``winlog.event_data`` only but pySigma's
``ecs_windows`` pipeline looks for it in ECS (``SubjectUserName`` → ``user.name`` on every Security
event, ``ProcessName`` → ``process.executable``), the ECS copy is made for every Security event, so
Sigma rules find what the pipeline points them at.

Each event id gets one filler, composed at import from small steps, so a record costs one dict
lookup plus the steps it needs.
"""

from __future__ import annotations

from typing import Any

from collectors.ecs.windows_spec import EventSpec, Fill, put
from collectors.ecs.windows_values import (
    basename,
    file_fields,
    ip,
    process_fields,
    text,
    to_int,
    user_fields,
)

CHANNEL = "Security"

LOGON_TYPES = {
    "0": "System", "2": "Interactive", "3": "Network", "4": "Batch", "5": "Service", "7": "Unlock",
    "8": "NetworkCleartext", "9": "NewCredentials", "10": "RemoteInteractive", "11": "CachedInteractive",
    "12": "CachedRemoteInteractive", "13": "CachedUnlock",
}

# NTSTATUS codes of failed logons (4625, 4776), as the Elastic pipeline describes them.
LOGON_FAILURE_STATUS = {
    "0xc000005e": "There are currently no logon servers available to service the logon request.",
    "0xc0000064": "User logon with misspelled or bad user account",
    "0xc000006a": "User logon with misspelled or bad password",
    "0xc000006d": "This is either due to a bad username or authentication information",
    "0xc000006e": "Unknown user name or bad password.",
    "0xc000006f": "User logon outside authorized hours",
    "0xc0000070": "User logon from unauthorized workstation",
    "0xc0000071": "User logon with expired password",
    "0xc0000072": "User logon to account disabled by administrator",
    "0xc00000dc": "Indicates the Sam Server was in the wrong state to perform the desired operation.",
    "0xc0000133": "Clocks between DC and other computer too far out of sync",
    "0xc000015b": "The user has not been granted the requested logon type (aka logon right) at this machine",
    "0xc000018c": "The logon request failed because the trust relationship between the primary domain and "
                  "the trusted domain failed.",
    "0xc0000192": "An attempt was made to logon, but the Netlogon service was not started.",
    "0xc0000193": "User logon with expired account",
    "0xc0000224": "User is required to change password at next logon",
    "0xc0000225": "Evidently a bug in Windows and not a risk",
    "0xc0000234": "User logon with account locked",
    "0xc00002ee": "Failure Reason: An Error occurred during Logon",
    "0xc0000413": "Logon Failure: The machine you are logging onto is protected by an authentication firewall. "
                  "The specified account is not allowed to authenticate to the machine.",
    "0xc0000371": "The local account store does not contain secret material for the specified account",
    "0x0": "Status OK.",
}

# The %%23xx message ids of 4625's FailureReason.
LOGON_FAILURE_REASONS = {
    "%%2304": "An Error occured during Logon.",
    "%%2305": "The specified user account has expired.",
    "%%2306": "The NetLogon component is not active.",
    "%%2307": "Account locked out.",
    "%%2308": "The user has not been granted the requested logon type at this machine.",
    "%%2309": "The specified account's password has expired.",
    "%%2310": "Account currently disabled.",
    "%%2311": "Account logon time restriction violation.",
    "%%2312": "User not allowed to logon at this computer.",
    "%%2313": "Unknown user name or bad password.",
    "%%2314": "Domain sid inconsistent.",
    "%%2315": "Smartcard logon is required and was not used.",
}

SERVICE_TYPES = {
    "0x1": "Kernel Driver", "0x2": "File System Driver", "0x8": "Recognizer Driver", "0x10": "Win32 Own Process",
    "0x20": "Win32 Share Process", "0x110": "Interactive Own Process", "0x120": "Interactive Share Process",
}

# Windows Filtering Platform (5152-5159) renders direction and layer as message ids.
WFP_DIRECTIONS = {"%%14592": "ingress", "%%14593": "egress"}
IANA_TRANSPORTS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp"}


# --- steps ---------------------------------------------------------------------------------------

# Each step runs for thousands of events per second, and most Security events carry only some of
# the names a step looks at. So values are tested inline (``value and value != "-"`` is
# ``windows_values.text(value) is not None`` for the text values event data holds) and the helpers
# (``to_int``, ``ip``, ``user_fields``) are only called for values that are there.

def subject_user(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """The acting account (Subject*) is ``user``: pySigma maps SubjectUserName/Sid/DomainName there."""
    user = user_fields(data.get("SubjectUserSid"), data.get("SubjectUserName"), data.get("SubjectDomainName"))
    if user:
        put(doc, "user", user)


def target_user(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Logon-type events: the account logging on is ``user``; if a subject already is, ``user.target``."""
    target = user_fields(data.get("TargetUserSid") or data.get("TargetSid"), data.get("TargetUserName"),
                         data.get("TargetDomainName"))
    if not target:
        return
    user = doc.get("user")
    if user is None:
        doc["user"] = target
        return
    for key, value in target.items():
        if key in user:
            user.setdefault("target", {})[key] = value
        else:
            user[key] = value


def target_as_target(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Account management: the account acted upon is ``user.target``."""
    target = user_fields(data.get("TargetSid") or data.get("TargetUserSid"), data.get("TargetUserName"),
                         data.get("TargetDomainName"))
    if target:
        doc.setdefault("user", {})["target"] = target


def target_as_effective(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Explicit credentials (4648) and the new process' token (4688): ``user.effective``."""
    effective = user_fields(data.get("TargetUserSid"), data.get("TargetUserName"), data.get("TargetDomainName"))
    if effective:
        doc.setdefault("user", {})["effective"] = effective


def process_and_source(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """ProcessId/ProcessName → ``process``; IpAddress/IpPort/WorkstationName → ``source``.

    Half the Security events run this: decimal numbers are converted inline and ``put`` is inlined
    (``process``/``source`` are merged into what is there, as ``put`` does).
    """
    get = data.get
    process: dict[str, Any] = {}
    if (pid := get("ProcessId")) is not None and (pid := int(pid) if pid.isdigit() else to_int(pid)) is not None:
        process["pid"] = pid
    if (executable := get("ProcessName")) and executable != "-":
        process["executable"] = executable  # process_fields, inline
        process["name"] = executable.rpartition("\\")[2]
    if process:
        if "process" in doc:
            doc["process"].update(process)
        else:
            doc["process"] = process
    source: dict[str, Any] = {}
    if (address := get("IpAddress")) is not None and (address := ip(address)) is not None:
        source["ip"] = address
    if (port := get("IpPort")) is not None and (port := int(port) if port.isdigit() else to_int(port)):
        source["port"] = port
    if (workstation := get("WorkstationName") or get("Workstation")) and workstation != "-":
        source["domain"] = workstation
    if source:
        if "source" in doc:
            doc["source"].update(source)
        else:
            doc["source"] = source


def subject_logon_id(data: dict[str, Any], doc: dict[str, Any]) -> None:
    if (logon_id := data.get("SubjectLogonId")) and logon_id != "-":
        doc["winlog"].setdefault("logon", {})["id"] = logon_id


def target_logon_id(data: dict[str, Any], doc: dict[str, Any]) -> None:
    if (logon_id := data.get("TargetLogonId")) and logon_id != "-":
        doc["winlog"].setdefault("logon", {})["id"] = logon_id


def logon_type(data: dict[str, Any], doc: dict[str, Any]) -> None:
    name = LOGON_TYPES.get(data.get("LogonType", ""))
    if name is not None:
        doc["winlog"].setdefault("logon", {})["type"] = name


def logon_failure(data: dict[str, Any], doc: dict[str, Any]) -> None:
    get = data.get
    failure = {}
    if (reason := LOGON_FAILURE_REASONS.get(get("FailureReason", ""))) is not None:
        failure["reason"] = reason
    if (status := LOGON_FAILURE_STATUS.get(get("Status", "").lower())) is not None:
        failure["status"] = status
    if (sub_status := LOGON_FAILURE_STATUS.get(get("SubStatus", "").lower())) is not None:
        failure["sub_status"] = sub_status
    if failure:
        doc["winlog"].setdefault("logon", {})["failure"] = failure


def service(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """ServiceName → ``service.name`` (pySigma's mapping for the Security service), type decoded."""
    fields = {}
    if (name := data.get("ServiceName")) and name != "-":
        fields["name"] = name
    if "ServiceType" in data and (kind := SERVICE_TYPES.get(data["ServiceType"])) is not None:
        fields["type"] = kind
    if fields:
        put(doc, "service", fields)


def common(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """``COMMON`` as one call: the acting account, process and peer, logon id, service.

    The steps ``subject_user``, ``process_and_source``, ``subject_logon_id`` and ``service`` in this
    order; fused because every Security event without its own filler runs them (a call saved per step).
    """
    user = user_fields(data.get("SubjectUserSid"), data.get("SubjectUserName"), data.get("SubjectDomainName"))
    if user:
        put(doc, "user", user)
    process_and_source(data, doc)
    if (logon_id := data.get("SubjectLogonId")) and logon_id != "-":
        doc["winlog"].setdefault("logon", {})["id"] = logon_id
    if "ServiceName" in data or "ServiceType" in data:
        service(data, doc)


def failed_logon(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """4625, the commonest Security event in practice: ``logon`` then ``logon_failure``, one call."""
    logon(data, doc)
    logon_failure(data, doc)


def logon(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """``LOGON`` as one call: ``target_user``, ``process_and_source``, ``target_logon_id``, ``logon_type``."""
    target_user(data, doc)
    process_and_source(data, doc)
    winlog_logon = None
    if (logon_id := data.get("TargetLogonId")) and logon_id != "-":
        winlog_logon = doc["winlog"].setdefault("logon", {})
        winlog_logon["id"] = logon_id
    if (name := LOGON_TYPES.get(data.get("LogonType", ""))) is not None:
        if winlog_logon is None:
            winlog_logon = doc["winlog"].setdefault("logon", {})
        winlog_logon["type"] = name


def process_created(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """4688: the new process, its parent (pid from ProcessId, hex) and its command line."""
    process: dict[str, Any] = {}
    if (pid := to_int(data.get("NewProcessId"))) is not None:
        process["pid"] = pid
    if (executable := text(data.get("NewProcessName"))) is not None:
        process.update(process_fields(executable))
    if (command_line := text(data.get("CommandLine"))) is not None:
        process["command_line"] = command_line
    parent: dict[str, Any] = {}
    if (parent_pid := to_int(data.get("ProcessId"))) is not None:
        parent["pid"] = parent_pid
    if (parent_executable := text(data.get("ParentProcessName"))) is not None:
        parent.update(process_fields(parent_executable))
    if parent:
        process["parent"] = parent
    doc["process"] = process


def process_exited(data: dict[str, Any], doc: dict[str, Any]) -> None:
    if (code := to_int(data.get("Status"))) is not None:
        doc.setdefault("process", {})["exit_code"] = code


def group_membership(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """Group changes: the group is TargetUserName/TargetSid; the member (MemberName, a DN) is
    ``user.target``, as in the Elastic pipeline."""
    group = {}
    if (sid := text(data.get("TargetSid") or data.get("TargetUserSid"))) is not None:
        group["id"] = sid
    if (name := text(data.get("TargetUserName"))) is not None:
        group["name"] = name
    if (domain := text(data.get("TargetDomainName"))) is not None:
        group["domain"] = domain
    put(doc, "group", group)
    target: dict[str, Any] = {}
    if (member := text(data.get("MemberName"))) is not None:
        # A distinguished name: CN=name,OU=...,DC=example,DC=com. The first RDN is the name.
        parts = member.split(",")
        first = parts[0]
        target["name"] = first[3:] if first[:3].upper() == "CN=" else first
        domain_parts = [part[3:] for part in parts if part[:3].upper() == "DC="]
        if domain_parts:
            target["domain"] = ".".join(domain_parts)
    if (member_sid := text(data.get("MemberSid"))) is not None:
        target["id"] = member_sid
    if group:
        target["group"] = dict(group)
    if target:
        doc.setdefault("user", {})["target"] = target


def renamed_account(data: dict[str, Any], doc: dict[str, Any]) -> None:
    if (old := text(data.get("OldTargetUserName"))) is not None:
        doc.setdefault("user", {}).setdefault("target", {})["name"] = old
    if (new := text(data.get("NewTargetUserName"))) is not None:
        doc.setdefault("user", {})["changes"] = {"name": new}


def session(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """4778/4779 (RDP session reconnect/disconnect): AccountName/ClientAddress/ClientName."""
    put(doc, "user", user_fields(None, data.get("AccountName"), data.get("AccountDomain")))
    source = {}
    if (address := ip(data.get("ClientAddress"))) is not None:
        source["ip"] = address
    if (name := text(data.get("ClientName"))) is not None:
        source["domain"] = name
    put(doc, "source", source)
    if (logon_id := text(data.get("LogonID"))) is not None:
        doc["winlog"].setdefault("logon", {})["id"] = logon_id


def filtering_platform(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """5152-5159 (Windows Filtering Platform): the connection and the application making it."""
    process: dict[str, Any] = {}
    if (pid := to_int(data.get("ProcessID") or data.get("ProcessId"))) is not None:
        process["pid"] = pid
    if (application := text(data.get("Application"))) is not None:
        # WFP writes device paths (\device\harddiskvolume2\...); kept as written.
        process.update(process_fields(application))
    put(doc, "process", process)
    for side, address_name, port_name in (("source", "SourceAddress", "SourcePort"),
                                          ("destination", "DestAddress", "DestPort")):
        fields = {}
        if (address := ip(data.get(address_name))) is not None:
            fields["ip"] = address
        if (port := to_int(data.get(port_name))) is not None:
            fields["port"] = port
        put(doc, side, fields)
    network = {}
    if (protocol := data.get("Protocol")) is not None and protocol.isdigit():
        network["iana_number"] = protocol
        if (transport := IANA_TRANSPORTS.get(protocol)) is not None:
            network["transport"] = transport
    if (direction := WFP_DIRECTIONS.get(data.get("Direction", ""))) is not None:
        network["direction"] = direction
    put(doc, "network", network)


def share_access(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """5140/5145: the share's local path plus the relative name is the file touched."""
    local = text(data.get("ShareLocalPath"))
    relative = text(data.get("RelativeTargetName"))
    if local is not None:
        local = local.removeprefix("\\??\\")
        path = local.rstrip("\\") + "\\" + relative if relative is not None else local
        doc["file"] = file_fields(path)


def scheduled_task(data: dict[str, Any], doc: dict[str, Any]) -> None:
    if (name := text(data.get("TaskName"))) is not None:
        doc["file"] = {"path": name, "name": basename(name)}


def chain(*steps: Fill) -> Fill:
    """One filler that runs ``steps`` in order (composed once, at import)."""
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:  # the commonest length: two direct calls, without the loop
        first, second = steps

        def fill_two(data: dict[str, Any], doc: dict[str, Any]) -> None:
            first(data, doc)
            second(data, doc)

        return fill_two

    def fill(data: dict[str, Any], doc: dict[str, Any]) -> None:
        for step in steps:
            step(data, doc)

    return fill


# --- the table -----------------------------------------------------------------------------------

COMMON = (common,)
"""What every Security event gets: the acting account, process and peer, logon id, service."""

LOGON = (logon,)
"""Logon-type events: the account logging on is the user (Winlogbeat's "Copy Target User")."""

ACCOUNT_MANAGEMENT = (*COMMON, target_as_target)
GROUP_MANAGEMENT = (*COMMON, group_membership)

_CATEGORIZATION: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "1100": (("process",), ("end",), "logging-service-shutdown"),
    "1102": (("iam",), ("admin", "change"), "audit-log-cleared"),
    "1104": (("iam",), ("admin",), "logging-full"),
    "1105": (("iam",), ("admin",), "auditlog-archieved"),
    "1108": (("iam",), ("admin",), "logging-processing-error"),
    "4610": (("configuration",), ("access",), "authentication-package-loaded"),
    "4611": (("configuration",), ("change",), "trusted-logon-process-registered"),
    "4614": (("configuration",), ("access",), "notification-package-loaded"),
    "4616": (("configuration",), ("change",), "system-time-changed"),
    "4622": (("configuration",), ("access",), "security-package-loaded"),
    "4624": (("authentication",), ("start",), "logged-in"),
    "4625": (("authentication",), ("start",), "logon-failed"),
    "4634": (("authentication",), ("end",), "logged-out"),
    "4647": (("authentication",), ("end",), "logged-out"),
    "4648": (("authentication",), ("start",), "logged-in-explicit"),
    "4657": (("registry", "configuration"), ("change",), "registry-value-modified"),
    "4670": (("iam", "configuration"), ("admin", "change"), "permissions-changed"),
    "4672": (("iam",), ("admin",), "logged-in-special"),
    "4673": (("iam",), ("admin",), "privileged-service-called"),
    "4674": (("iam",), ("admin",), "privileged-operation"),
    "4688": (("process",), ("start",), "created-process"),
    "4689": (("process",), ("end",), "exited-process"),
    "4697": (("iam", "configuration"), ("admin", "change"), "service-installed"),
    "4698": (("iam", "configuration"), ("creation", "admin"), "scheduled-task-created"),
    "4699": (("iam", "configuration"), ("deletion", "admin"), "scheduled-task-deleted"),
    "4700": (("iam", "configuration"), ("change", "admin"), "scheduled-task-enabled"),
    "4701": (("iam", "configuration"), ("change", "admin"), "scheduled-task-disabled"),
    "4702": (("iam", "configuration"), ("change", "admin"), "scheduled-task-updated"),
    "4706": (("configuration",), ("creation",), "domain-trust-added"),
    "4707": (("configuration",), ("deletion",), "domain-trust-removed"),
    "4713": (("configuration",), ("change",), "kerberos-policy-changed"),
    "4714": (("configuration",), ("change",), "encrypted-data-recovery-policy-changed"),
    "4715": (("configuration",), ("change",), "object-audit-policy-changed"),
    "4716": (("configuration",), ("change",), "trusted-domain-information-changed"),
    "4717": (("iam", "configuration"), ("admin", "change"), "system-security-access-granted"),
    "4718": (("iam", "configuration"), ("admin", "deletion"), "system-security-access-removed"),
    "4719": (("iam", "configuration"), ("admin", "change"), "changed-audit-config"),
    "4720": (("iam",), ("user", "creation"), "added-user-account"),
    "4722": (("iam",), ("user", "change"), "enabled-user-account"),
    "4723": (("iam",), ("user", "change"), "changed-password"),
    "4724": (("iam",), ("user", "change"), "reset-password"),
    "4725": (("iam",), ("user", "deletion"), "disabled-user-account"),
    "4726": (("iam",), ("user", "deletion"), "deleted-user-account"),
    "4727": (("iam",), ("group", "creation"), "added-group-account"),
    "4728": (("iam",), ("group", "change"), "added-member-to-group"),
    "4729": (("iam",), ("group", "change"), "removed-member-from-group"),
    "4730": (("iam",), ("group", "deletion"), "deleted-group-account"),
    "4731": (("iam",), ("group", "creation"), "added-group-account"),
    "4732": (("iam",), ("group", "change"), "added-member-to-group"),
    "4733": (("iam",), ("group", "change"), "removed-member-from-group"),
    "4734": (("iam",), ("group", "deletion"), "deleted-group-account"),
    "4735": (("iam",), ("group", "change"), "modified-group-account"),
    "4737": (("iam",), ("group", "change"), "modified-group-account"),
    "4738": (("iam",), ("user", "change"), "modified-user-account"),
    "4739": (("configuration",), ("change",), "domain-policy-changed"),
    "4740": (("iam",), ("user", "change"), "locked-out-user-account"),
    "4741": (("iam",), ("creation", "admin"), "added-computer-account"),
    "4742": (("iam",), ("change", "admin"), "changed-computer-account"),
    "4743": (("iam",), ("deletion", "admin"), "deleted-computer-account"),
    "4744": (("iam",), ("group", "creation"), "added-distribution-group-account"),
    "4745": (("iam",), ("group", "change"), "changed-distribution-group-account"),
    "4746": (("iam",), ("group", "change"), "added-member-to-distribution-group"),
    "4747": (("iam",), ("group", "change"), "removed-member-from-distribution-group"),
    "4748": (("iam",), ("group", "deletion"), "deleted-distribution-group-account"),
    "4749": (("iam",), ("group", "creation"), "added-distribution-group-account"),
    "4750": (("iam",), ("group", "change"), "changed-distribution-group-account"),
    "4751": (("iam",), ("group", "change"), "added-member-to-distribution-group"),
    "4752": (("iam",), ("group", "change"), "removed-member-from-distribution-group"),
    "4753": (("iam",), ("group", "deletion"), "deleted-distribution-group-account"),
    "4754": (("iam",), ("group", "creation"), "added-group-account"),
    "4755": (("iam",), ("group", "change"), "modified-group-account"),
    "4756": (("iam",), ("group", "change"), "added-member-to-group"),
    "4757": (("iam",), ("group", "change"), "removed-member-from-group"),
    "4758": (("iam",), ("group", "deletion"), "deleted-group-account"),
    "4759": (("iam",), ("group", "creation"), "added-distribution-group-account"),
    "4760": (("iam",), ("group", "change"), "changed-distribution-group-account"),
    "4761": (("iam",), ("group", "change"), "added-member-to-distribution-group"),
    "4762": (("iam",), ("group", "change"), "removed-member-from-distribution-group"),
    "4763": (("iam",), ("group", "deletion"), "deleted-distribution-group-account"),
    "4764": (("iam",), ("group", "change"), "type-changed-group-account"),
    "4767": (("iam",), ("user", "change"), "unlocked-user-account"),
    "4768": (("authentication",), ("start",), "kerberos-authentication-ticket-requested"),
    "4769": (("authentication",), ("start",), "kerberos-service-ticket-requested"),
    "4770": (("authentication",), ("start",), "kerberos-service-ticket-renewed"),
    "4771": (("authentication",), ("start",), "kerberos-preauth-failed"),
    "4776": (("authentication",), ("start",), "credential-validated"),
    "4778": (("authentication", "session"), ("start",), "session-reconnected"),
    "4779": (("authentication", "session"), ("end",), "session-disconnected"),
    "4781": (("iam",), ("user", "change"), "renamed-user-account"),
    "4798": (("iam",), ("user", "info"), "group-membership-enumerated"),
    "4799": (("iam",), ("group", "info"), "user-member-enumerated"),
    "4817": (("iam", "configuration"), ("admin", "change"), "object-audit-changed"),
    "4902": (("iam", "configuration"), ("admin", "creation"), "user-audit-policy-created"),
    "4904": (("iam", "configuration"), ("admin", "change"), "security-event-source-added"),
    "4905": (("iam", "configuration"), ("admin", "deletion"), "security-event-source-removed"),
    "4906": (("iam", "configuration"), ("admin", "change"), "crash-on-audit-changed"),
    "4907": (("iam", "configuration"), ("admin", "change"), "audit-setting-changed"),
    "4908": (("iam", "configuration"), ("admin", "change"), "special-group-table-changed"),
    "4912": (("iam", "configuration"), ("admin", "change"), "per-user-audit-policy-changed"),
    "4950": (("configuration",), ("change",), "windows-firewall-setting-changed"),
    "4954": (("configuration",), ("change",), "windows-firewall-group-policy-changed"),
    "4964": (("iam",), ("admin", "group"), "logged-in-special"),
    "5024": (("process",), ("start",), "windows-firewall-service-started"),
    "5025": (("process",), ("end",), "windows-firewall-service-stopped"),
    "5033": (("driver",), ("start",), "windows-firewall-driver-started"),
    "5034": (("driver",), ("end",), "windows-firewall-driver-stopped"),
    "5037": (("driver",), ("end",), "windows-firewall-driver-error"),
    "5140": (("network", "file"), ("info", "access"), "network-share-object-accessed"),
    "5145": (("network", "file"), ("info", "access"), "network-share-object-access-checked"),
    # Not in the Elastic table; categorized the same way its neighbours are.
    "5152": (("network",), ("denied", "connection"), "windows-filtering-platform-blocked-packet"),
    "5156": (("network",), ("allowed", "connection"), "windows-filtering-platform-allowed-connection"),
    "5157": (("network",), ("denied", "connection"), "windows-filtering-platform-blocked-connection"),
    "5158": (("network",), ("allowed", "start"), "windows-filtering-platform-permitted-bind"),
}

_FILLS: dict[str, tuple[Fill, ...]] = {
    "1102": (subject_user, subject_logon_id),  # the UserData (LogFileCleared) is flattened like EventData
    "4624": LOGON,
    "4625": (failed_logon,),
    "4634": (target_user, target_logon_id, logon_type),
    "4647": (target_user, target_logon_id),
    "4648": (*COMMON, target_user, target_as_effective),
    "4688": (subject_user, subject_logon_id, process_created, target_as_effective),
    "4689": (*COMMON, process_exited),
    "4698": (*COMMON, scheduled_task),
    "4699": (*COMMON, scheduled_task),
    "4700": (*COMMON, scheduled_task),
    "4701": (*COMMON, scheduled_task),
    "4702": (*COMMON, scheduled_task),
    "4768": (target_user, process_and_source, service),
    "4769": (target_user, process_and_source, service),
    "4770": (target_user, process_and_source, service),
    "4771": (target_user, process_and_source, service),
    "4776": (target_user, process_and_source, logon_failure),
    "4778": (session,),
    "4779": (session,),
    "4781": (*COMMON, renamed_account),
    "4964": (target_user, target_logon_id),
    "5140": (*COMMON, share_access),
    "5145": (*COMMON, share_access),
    "5152": (filtering_platform,),
    "5156": (filtering_platform,),
    "5157": (filtering_platform,),
    "5158": (filtering_platform,),
}
for _code in ("4670", "4720", "4722", "4723", "4724", "4725", "4726", "4738", "4740", "4767", "4798", "4817",
              "4907"):
    _FILLS[_code] = ACCOUNT_MANAGEMENT
for _code in ("4727", "4728", "4729", "4730", "4731", "4732", "4733", "4734", "4735", "4737", "4744", "4745",
              "4746", "4747", "4748", "4749", "4750", "4751", "4752", "4753", "4754", "4755", "4756", "4757",
              "4758", "4759", "4760", "4761", "4762", "4763", "4764", "4799"):
    _FILLS[_code] = GROUP_MANAGEMENT

DEFAULT_FILL: Fill = chain(*COMMON)
"""For Security events without an entry: the acting account, process, peer, logon id, service."""

SPECS: dict[str, EventSpec] = {
    code: EventSpec(category, kind, action, chain(*_FILLS.get(code, COMMON)))
    for code, (category, kind, action) in _CATEGORIZATION.items()
}
