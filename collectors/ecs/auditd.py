"""Linux audit records (``/var/log/audit/audit.log``, or relayed by audispd/auoms) → ECS.

``type=SYSCALL msg=audit(1604995061.123:456): key=value ...``: every key is kept under
``auditd.log.*`` (values unquoted; hex-encoded ones decoded where auditd hex-encodes: ``proctitle``,
``exe``/``comm``/``name``/``cwd`` with spaces, EXECVE arguments ...), plus the ECS fields, following
Elastic's auditd module: ``event.action`` (the record type, lower case), ``process.*``,
``user.id`` (uid), ``user.audit.id`` (auid), ``host.*``, ``event.outcome`` from ``success=``/``res=``.

Records of one event share a serial (``auditd.log.sequence``) but stay separate events: merging
needs the whole group, and a line parser sees one line. Values ``?``, ``(null)`` and empty are
dropped, as Elastic's pipeline does: they mean "not set".

Hand-written on one tokenizing regex: the audit project's own parser (``auparse``) has Python
bindings only as a distribution package tied to the local audit version, not from PyPI, and its
record model would still need this mapping to ECS.

Also reads the variants seen in the wild: ``node=host type=...`` (audispd), ``audit: type=1400
audit(...)`` (the kernel logging by itself, numeric types), ``type=AUOMS_EXECVE audit(...)``
(Microsoft's auoms: no ``msg=``, unquoted values with spaces, ``["a","b"]`` lists) and the
``log_format=ENRICHED`` suffix after ``\\x1d`` (``UID="root"``), whose keys are kept as written.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from collectors.base import Mapped, ParseError

MODULE = "auditd"
DATASET = "auditd.log"

_HEADER = re.compile(
    r"\s*(?:audit: )?(?:node=(?P<node>\S+) )?type=(?P<type>\S+) (?:msg=)?audit\("
    r"(?P<seconds>\d{1,11})(?:\.(?P<fraction>\d+))?:(?P<serial>\d{1,18})\):\s*"
)
# One token: key=value (value double/single quoted, a [list], or up to the next blank) or a bare word.
# A quote not followed by a blank does not end the value: auoms writes cmdline="bash -c "x"" unescaped.
_TOKEN = re.compile(
    r"""(?P<key>[A-Za-z_][\w\-]*(?:\[\d+\])?)="""
    r"""(?P<value>"[^"]*(?:"(?!\s|$)[^"]*)*"?|'[^']*(?:'(?!\s|$)[^']*)*'?|\[[^\]]*\]?|\S*)|(?P<word>\S+)"""
)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_AVC = re.compile(r"avc:\s+(?P<result>denied|granted)\s+\{ (?P<perms>[^}]*) \} for\s*")

HEX_ENCODED_KEYS = frozenset((
    "exe", "cmd", "data", "path", "comm", "file", "name", "watch", "cwd", "acct", "dir", "vm", "old-chardev",
    "new-chardev", "old-disk", "new-disk", "old-fs", "new-fs", "old-net", "new-net", "device", "cgroup", "apparmor",
    "operation", "denied_mask", "info", "profile", "requested_mask", "old-rng", "new-rng", "ocomm", "grp",
    "new_group", "invalid_context", "sw", "root_dir", "proctitle",
))
"""Keys auditd hex-encodes when the value has blanks, quotes or control characters (the list of
Elastic's auditd pipeline, from auditd's own ``audit_value_needs_encoding`` users)."""

UNSET_VALUES = frozenset(("?", "(null)", ""))

RECORD_TYPES_BY_NUMBER = {
    "1100": "USER_AUTH", "1101": "USER_ACCT", "1103": "CRED_ACQ", "1104": "CRED_DISP", "1105": "USER_START",
    "1106": "USER_END", "1107": "USER_AVC", "1108": "USER_CHAUTHTOK", "1110": "CRED_REFR", "1112": "USER_LOGIN",
    "1123": "USER_CMD", "1130": "SERVICE_START", "1131": "SERVICE_STOP", "1300": "SYSCALL", "1302": "PATH",
    "1305": "CONFIG_CHANGE", "1307": "CWD", "1309": "EXECVE", "1326": "SECCOMP", "1327": "PROCTITLE",
    "1400": "AVC", "1401": "SELINUX_ERR",
}
"""The kernel logs numeric types (``linux/audit.h``) when no auditd names them."""

ARCHITECTURES = {"c000003e": "x86_64", "40000003": "i386", "c00000b7": "aarch64", "40000028": "arm"}
EXECVE_SYSCALLS = {"x86_64": ("59", "322"), "i386": ("11", "358"), "aarch64": ("221", "281"), "arm": ("11", "387")}

# record type → (event.category, event.type); lists are built fresh per event.
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "EXECVE": (("process",), ("start",)),
    "AUOMS_EXECVE": (("process",), ("start",)),
    "PROCTITLE": (("process",), ("info",)),
    "CWD": (("process",), ("info",)),
    "PATH": (("file",), ("info",)),
    "USER_AUTH": (("authentication",), ("info",)),
    "USER_ACCT": (("authentication",), ("info",)),
    "CRED_ACQ": (("authentication",), ("info",)),
    "CRED_DISP": (("authentication",), ("info",)),
    "CRED_REFR": (("authentication",), ("info",)),
    "USER_LOGIN": (("authentication",), ("start",)),
    "USER_LOGOUT": (("authentication",), ("end",)),
    "USER_ERR": (("authentication",), ("info",)),
    "LOGIN": (("authentication",), ("info",)),
    "USER_START": (("session",), ("start",)),
    "USER_END": (("session",), ("end",)),
    "USER_CMD": (("process",), ("start",)),
    "ADD_USER": (("iam",), ("user", "creation")),
    "DEL_USER": (("iam",), ("user", "deletion")),
    "ADD_GROUP": (("iam",), ("group", "creation")),
    "DEL_GROUP": (("iam",), ("group", "deletion")),
    "USER_MGMT": (("iam",), ("user", "change")),
    "GRP_MGMT": (("iam",), ("group", "change")),
    "USER_CHAUTHTOK": (("iam",), ("user", "change")),
    "ROLE_ASSIGN": (("iam",), ("user", "change")),
    "SERVICE_START": (("process",), ("start",)),
    "SERVICE_STOP": (("process",), ("end",)),
    "SYSTEM_BOOT": (("host",), ("start",)),
    "SYSTEM_SHUTDOWN": (("host",), ("end",)),
    "SYSTEM_RUNLEVEL": (("host",), ("change",)),
    "KERN_MODULE": (("driver",), ("info",)),
    "SOFTWARE_UPDATE": (("package",), ("info",)),
    "CONFIG_CHANGE": (("configuration",), ("change",)),
    "DAEMON_CONFIG": (("configuration",), ("change",)),
    "AVC": (("intrusion_detection",), ("info",)),
    "USER_AVC": (("intrusion_detection",), ("info",)),
    "ANOM_ABEND": (("process",), ("end",)),
}
SUCCESS_VALUES = frozenset(("yes", "success", "1"))
FAILURE_VALUES = frozenset(("no", "failed", "fail", "0"))


def parse_audit_line(line: str) -> Mapped:
    """One audit record line; ``ParseError`` when it lacks the ``type=... msg=audit(time:serial):`` header."""
    mapped = match_audit_record(line.rstrip("\r\n"))
    if mapped is None:
        raise ParseError(f"not an audit record: expected 'type=TYPE msg=audit(SECONDS.MILLIS:SERIAL): key=value ...',"
                         f" got {line[:80]!r}")
    return mapped


def match_audit_record(text: str) -> Mapped | None:
    """``parse_audit_line`` without the exception, for callers that try it on any syslog message."""
    header = _HEADER.match(text)
    if header is None:
        return None
    record_type = header.group("type")
    if record_type.isdecimal():
        record_type = RECORD_TYPES_BY_NUMBER.get(record_type, f"UNKNOWN[{record_type}]")
    values: dict[str, Any] = {}
    free_text = _read_values(text, header.end(), record_type, values)
    try:  # 11 digits fit the regex but not every datetime
        timestamp = datetime.fromtimestamp(int(header.group("seconds")), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    fraction = header.group("fraction")
    if fraction:
        timestamp = timestamp.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    log: dict[str, Any] = {"record_type": record_type, "sequence": int(header.group("serial"))}
    log.update(values)
    node = header.group("node")
    if node is not None:
        log["node"] = node
    fields: dict[str, Any] = {"auditd": {"log": log}}
    if free_text:
        fields["message"] = free_text
    _map_ecs(fields, record_type, values, node)
    return Mapped(timestamp=timestamp, fields=fields, module=MODULE, dataset=DATASET)


def _read_values(text: str, start: int, record_type: str, values: dict[str, Any]) -> str:
    """Fill ``values`` from the ``key=value`` part; returns leading free text (if any).

    A bare word after a value continues that value (auoms writes ``proctitle=/bin/java -Dx=y``
    unquoted); bare words before any key are free text (``avc:  denied  { read } for``)."""
    if record_type in ("AVC", "USER_AVC"):
        avc = _AVC.search(text, start)
        if avc is not None:
            values["seresult"] = avc.group("result")
            values["seperms"] = avc.group("perms").strip()
            start = avc.end()
    is_execve = record_type == "EXECVE"
    free: list[str] = []
    last_key: str | None = None
    for key, raw, word in _TOKEN.findall(text, start):  # tuples: one C call for the whole line
        if not key:
            if last_key is None:
                free.append(word)
            elif isinstance(values.get(last_key), str):
                values[last_key] += " " + word
            continue
        last_key = key
        first = raw[:1]
        if first == '"' or first == "'":
            if key == "msg" and first == "'":  # USER_* records nest their fields in msg='...'
                inner = raw[1:-1] if raw.endswith("'") and len(raw) > 1 else raw[1:]
                free_inner = _read_values(inner, 0, record_type, values)
                if free_inner:
                    values["msg"] = free_inner
                last_key = None
                continue
            value: Any = raw[1:-1] if len(raw) > 1 and raw[-1] == first else raw[1:]
        elif first == "[" or key in HEX_ENCODED_KEYS or is_execve:
            value = _decode(key, raw, is_execve)
        else:
            value = raw
        if value.__class__ is str and value in UNSET_VALUES:
            values.pop(key, None)
            continue
        values[key] = value
    return " ".join(free)


def _decode(key: str, raw: str, is_execve: bool) -> Any:
    """An unquoted value that may be a list (auoms) or hex (where auditd hex-encodes)."""
    if raw[:1] == "[":
        try:  # auoms lists: ["a","b"]; keep the text if it is not JSON
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    if (key in HEX_ENCODED_KEYS or (is_execve and key[0] == "a" and key[1:2].isdecimal())) \
            and _HEX.fullmatch(raw) is not None:
        decoded = bytes.fromhex(raw).decode("utf-8", "backslashreplace")
        if key == "proctitle" or is_execve:  # arguments are NUL-separated, as ausearch -i shows them
            decoded = decoded.rstrip("\x00").replace("\x00", " ")
        return decoded
    return raw


def _map_ecs(fields: dict[str, Any], record_type: str, values: dict[str, Any], node: str | None) -> None:
    event: dict[str, Any] = {"action": record_type.lower()}
    fields["event"] = event
    arch = values.get("arch")
    architecture = ARCHITECTURES.get(arch, arch) if isinstance(arch, str) else None
    category = CATEGORIES.get(record_type)
    if record_type == "SYSCALL" or record_type == "AUOMS_SYSCALL":
        syscall = values.get("syscall")
        if syscall == "execve" or syscall == "execveat" or syscall in EXECVE_SYSCALLS.get(architecture or "", ()):
            category = (("process",), ("start",))
    if category is not None:
        event["category"] = list(category[0])
        event["type"] = list(category[1])
    outcome = values.get("success", values.get("res"))
    if isinstance(outcome, str):
        if outcome in SUCCESS_VALUES:
            event["outcome"] = "success"
        elif outcome in FAILURE_VALUES:
            event["outcome"] = "failure"

    process: dict[str, Any] = {}
    pid = values.get("pid")
    if isinstance(pid, str) and pid.isdecimal() and len(pid) < 11:
        process["pid"] = int(pid)
    ppid = values.get("ppid")
    if isinstance(ppid, str) and ppid.isdecimal() and len(ppid) < 11:
        process["parent"] = {"pid": int(ppid)}
    for key, target in (("exe", "executable"), ("comm", "name"), ("proctitle", "title"),
                        ("cwd", "working_directory"), ("cmdline", "command_line")):
        value = values.get(key)
        if isinstance(value, str):
            process[target] = value
    if record_type == "EXECVE":
        args = _execve_args(values)
        if args:
            process["args"] = args
            process["args_count"] = len(args)
            process["command_line"] = " ".join(args)
    elif record_type == "USER_CMD" and isinstance(values.get("cmd"), str):
        process["command_line"] = values["cmd"]
    if process:
        fields["process"] = process

    user: dict[str, Any] = {}
    get = values.get
    if (uid := get("uid")) is not None:
        user["id"] = uid
    name = get("acct") or get("user") or get("UID")  # acct= (USER_*), user= (auoms), UID= (enriched)
    if name is not None:
        user["name"] = name
        fields["related"] = {"user": [name]}
    if (auid := get("auid")) is not None:
        user["audit"] = {"id": auid}
        if (audit_name := get("AUID")) is not None:
            user["audit"]["name"] = audit_name
    if (gid := get("gid")) is not None:
        user["group"] = {"id": gid}
    if (euid := get("euid")) is not None:
        user["effective"] = {"id": euid}
        if (egid := get("egid")) is not None:
            user["effective"]["group"] = {"id": egid}
    if user:
        fields["user"] = user

    host: dict[str, Any] = {}
    if node:
        host["hostname"] = node
    elif isinstance(values.get("node"), str):  # auoms puts node= among the values
        host["hostname"] = values["node"]
    if architecture:
        host["architecture"] = architecture
    if host:
        fields["host"] = host

    address = values.get("addr")
    if isinstance(address, str):
        source: dict[str, Any] = {"address": address}
        if _looks_like_ip(address):
            source["ip"] = address
            fields.setdefault("related", {})["ip"] = [address]
        fields["source"] = source
    if record_type == "PATH" and isinstance(values.get("name"), str):
        fields["file"] = {"path": values["name"]}


def _execve_args(values: dict[str, Any]) -> list[str]:
    argc = values.get("argc")
    count = int(argc) if isinstance(argc, str) and argc.isdecimal() else 0
    args: list[str] = []
    for index in range(count):
        value = values.get(f"a{index}")
        if not isinstance(value, str):
            break
        args.append(value)
    return args


@lru_cache(maxsize=4096)
def _looks_like_ip(text: str) -> bool:
    """Cached: addresses repeat, and the stdlib's check raises on a miss."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
