"""What Linux programs say in syslog, as ECS: sshd, PAM, sudo, su, systemd-logind, the shadow
tools (useradd, groupadd, usermod, passwd ...), cron, and auditd records relayed through syslog.

``map_program_message(program, message, fields)`` adds to ``fields`` (the dict the syslog header
parser built) in place — no copies on the hot path — and returns the module and dataset: ``system`` /
``system.auth`` for authentication programs and messages, ``system`` / ``system.syslog`` for the
rest (as Elastic's system integration splits auth.log and syslog), ``auditd`` / ``auditd.log`` for
an audit record. A message nobody recognises is not an error: the header fields and ``message``
are the event.

Vocabulary follows Elastic's system integration where it has one (``event.action: ssh_login``,
``system.auth.ssh.event/method/signature``, ``system.auth.sudo.*``, ``user.effective.name`` for
the sudo/su target); the rest is named after what happened (``invalid_user``, ``session_opened``,
``user_created`` ...). ``event.category``/``event.type`` use ECS's allowed values.

Hand-written regular expressions, as Elastic's integration uses grok: the message formats are the
programs' own (``Accepted %s for %s from %s port %d %s``), and no library knows them. Patterns are
anchored at the end where a user name comes before the address, so a user name containing
`` from 1.2.3.4`` cannot pass for the client's address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from collectors.ecs.auditd import match_audit_record


@dataclass(frozen=True, slots=True)
class ProgramMapping:
    """Where a syslog message belongs; ``timestamp`` overrides the header's (an audit record
    carries its own, more precise, event time)."""

    module: str
    dataset: str
    timestamp: datetime | None = None


SYSTEM_AUTH = ProgramMapping("system", "system.auth")
SYSTEM_SYSLOG = ProgramMapping("system", "system.syslog")

ProgramMapper = Callable[[str, dict[str, Any]], ProgramMapping]
"""``(message, fields) -> mapping``; adds ECS fields to ``fields`` in place."""

AUTH_PROGRAMS = frozenset((
    "sshd", "sshd-session", "sshd-auth", "sudo", "su", "login", "systemd-logind", "useradd", "userdel", "usermod",
    "groupadd", "groupdel", "groupmod", "passwd", "chpasswd", "chage", "gpasswd", "newusers", "pkexec", "polkitd",
    "unix_chkpwd", "gdm-password", "gdm", "lightdm", "klogind", "vsftpd", "ftpd", "doas", "runuser",
))
"""Programs whose every message belongs to ``system.auth`` (what rsyslog routes to auth.log)."""

AUDIT_PROGRAMS = frozenset(("audispd", "audisp-syslog", "audisp-remote", "auditd", "audit", "auoms", "auoms-collect"))


# --- small helpers ---------------------------------------------------------------------------------

@lru_cache(maxsize=8192)
def is_ip(text: str) -> bool:
    """Whether ``text`` is an IPv4/IPv6 address (an ``ip`` field the store will accept). Cached:
    attackers' addresses repeat, and the stdlib's validation raises on a miss."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def program_base(program: str) -> str:
    """``/usr/sbin/CRON`` → ``cron``; ``sshd(pam_unix)`` → ``sshd``: the key the mappers are found by."""
    base = program.rsplit("/", 1)[-1]
    paren = base.find("(")
    if paren > 0:
        base = base[:paren]
    return base.strip().lower()


def _categorize(fields: dict[str, Any], category: str, kind: str, action: str, outcome: str | None = None) -> None:
    event: dict[str, Any] = {"category": [category], "type": [kind], "action": action}
    if outcome is not None:
        event["outcome"] = outcome
    fields["event"] = event


def _add_user(fields: dict[str, Any], name: str | None, *, effective: str | None = None) -> None:
    if not name and not effective:
        return
    user: dict[str, Any] = fields.setdefault("user", {})
    related: list[str] = fields.setdefault("related", {}).setdefault("user", [])
    if name:
        user["name"] = name
        if name not in related:
            related.append(name)
    if effective:
        user["effective"] = {"name": effective}
        if effective not in related:
            related.append(effective)


def _add_source(fields: dict[str, Any], address: str | None, port: str | None = None) -> None:
    """``source.address`` as logged, plus ``source.ip`` (and ``related.ip``) or ``source.domain``."""
    if not address:
        return
    source: dict[str, Any] = {"address": address}
    if is_ip(address):
        source["ip"] = address
        related = fields.setdefault("related", {}).setdefault("ip", [])
        if address not in related:
            related.append(address)
    else:
        source["domain"] = address
    if port and len(port) <= 5 and int(port) <= 65535:
        source["port"] = int(port)
    fields["source"] = source


def _auth_detail(fields: dict[str, Any], section: str) -> dict[str, Any]:
    """``system.auth.<section>``: the program's own fields, as Elastic's system integration keeps them."""
    system = fields.setdefault("system", {})
    auth = system.setdefault("auth", {})
    return auth.setdefault(section, {})


# --- PAM (any program) -----------------------------------------------------------------------------

_PAM_PREFIX = re.compile(r"pam_unix\((?P<service>[^:)]+):(?P<facility>[^)]+)\): (?P<body>.*)", re.DOTALL)
# pam_unix writes "logname=%s uid=%d euid=%d tty=%s ruser=%s rhost=%s user=%s": user comes last and
# is the attacker's choice, so it takes the rest of the line and cannot fake an rhost= before it.
_PAM_FAILURE_VALUES = re.compile(
    r"(?:.*?\s)?ruser=(?P<ruser>\S*) rhost=(?P<rhost>\S*)(?:\s+user=(?P<user>.*?))?\s*\Z", re.DOTALL
)
_PAM_SESSION = re.compile(
    r"session (?P<state>opened|closed) for user (?P<for>[^\s(]+)(?:\(uid=\d+\))?"
    r"(?: by (?P<by>[^\s(]*)(?:\(uid=(?P<byuid>\d+)\))?)?\s*\Z"
)
_PAM_PASSWORD = re.compile(r"password changed for (?P<user>\S+)")
_PAM_MORE = re.compile(r"PAM (?P<count>\d+) more authentication failures?; (?P<kv>.*)", re.DOTALL)


def _pam(service: str, body: str, fields: dict[str, Any]) -> ProgramMapping:
    """PAM's pam_unix messages, the same for sshd, su, sudo, login, cron ...: authentication
    failures (with ``rhost`` and ``user``), sessions opened and closed, passwords changed."""
    if body.startswith("authentication failure;"):
        _categorize(fields, "authentication", "info", "authentication_failure", "failure")
        values = _PAM_FAILURE_VALUES.match(body)
        if values is not None:
            _add_user(fields, values.group("user") or values.group("ruser") or None)
            _add_source(fields, values.group("rhost") or None)
        return SYSTEM_AUTH
    if body.startswith("check pass; user unknown"):
        _categorize(fields, "authentication", "info", "user_unknown", "failure")
        return SYSTEM_AUTH
    if body.startswith("session "):
        match = _PAM_SESSION.match(body)
        if match is not None:
            opened = match.group("state") == "opened"
            _categorize(fields, "session", "start" if opened else "end",
                        "session_opened" if opened else "session_closed", "success")
            by = match.group("by")
            if by:  # "for user root by alice(uid=1000)": alice acts as root (Elastic's reading)
                _add_user(fields, by, effective=match.group("for"))
                if match.group("byuid"):
                    fields["user"]["id"] = match.group("byuid")
            else:  # "for user news by (uid=0)": the uid is the opener's, not news's
                _add_user(fields, match.group("for"))
        return SYSTEM_AUTH
    if body.startswith("password changed for "):
        match = _PAM_PASSWORD.match(body)
        if match is not None:
            fields["event"] = {"category": ["iam"], "type": ["user", "change"], "action": "password_changed",
                               "outcome": "success"}
            _add_user(fields, match.group("user"))
        return SYSTEM_AUTH
    return SYSTEM_AUTH


def _pam_prefixed(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _PAM_PREFIX.match(message)
    if match is None:
        return SYSTEM_AUTH
    return _pam(match.group("service"), match.group("body"), fields)


# --- sshd ------------------------------------------------------------------------------------------

_SSH_LOGIN = re.compile(
    r"(?P<event>Accepted|Failed) (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) from (?P<ip>\S+)"
    r" port (?P<port>\d+)(?: ssh\d?)?(?:: (?P<signature>.*))?\Z",
    re.DOTALL,
)
_SSH_INVALID = re.compile(r"Invalid user (?P<user>.*?) from (?P<ip>\S+)(?: port (?P<port>\d+))?\s*\Z")
_SSH_USERAUTH_INVALID = re.compile(r"input_userauth_request: invalid user (?P<user>.*?)(?: \[preauth\])?\Z")
_SSH_CLOSED = re.compile(
    r"Connection (?P<kind>closed|reset) by (?:(?:authenticating|invalid) user (?P<user>.*?) )?(?P<ip>[0-9A-Fa-f:.]+)"
    r"(?: port (?P<port>\d+))?(?: \[preauth\])?\Z"
)
_SSH_DISCONNECTED = re.compile(
    r"Disconnected from (?:(?:authenticating |invalid )?user (?P<user>.*?) )?(?P<ip>[0-9A-Fa-f:.]+) port (?P<port>\d+)"
    r"(?: \[preauth\])?\Z"
)
_SSH_RECEIVED_DISCONNECT = re.compile(
    r"Received disconnect from (?P<ip>\S+?)(?: port (?P<port>\d+))?: ?(?P<code>\d{1,9}): (?P<reason>.*?)"
    r"(?: \[preauth\])?\Z",
    re.DOTALL,
)
_SSH_MAX_ATTEMPTS = re.compile(
    r"maximum authentication attempts exceeded for (?:invalid user )?(?P<user>.*?) from (?P<ip>\S+)"
    r" port (?P<port>\d+)(?: ssh\d?)?(?: \[preauth\])?\Z"
)
_SSH_TOO_MANY = re.compile(
    r"Disconnecting(?: (?:authenticating|invalid) user (?P<user2>\S+) (?P<ip>\S+) port (?P<port>\d+))?"
    r": Too many authentication failures(?: for (?:invalid user )?(?P<user>.*?))?(?: \[preauth\])?\Z"
)
_SSH_REVERSE = re.compile(
    r"reverse mapping checking getaddrinfo for (?P<host>\S+) \[(?P<ip>[^\]]+)\] failed"
)
_SSH_ADDRESS_MAPS = re.compile(r"Address (?P<ip>\S+) maps to (?P<host>\S+), but this does not map back")
_SSH_NO_IDENT = re.compile(r"Did not receive identification string from (?P<ip>\S+)(?: port (?P<port>\d+))?")


def _ssh_login(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_LOGIN.match(message)
    if match is None:
        return SYSTEM_AUTH
    accepted = match.group("event") == "Accepted"
    fields["event"] = {
        "category": ["authentication", "session"] if accepted else ["authentication"],
        "type": ["info"],
        "action": "ssh_login",
        "outcome": "success" if accepted else "failure",
    }
    ssh = _auth_detail(fields, "ssh")
    ssh["event"] = match.group("event")
    ssh["method"] = match.group("method")
    if match.group("signature"):
        ssh["signature"] = match.group("signature")
    if match.group("invalid"):
        ssh["invalid_user"] = True
    _add_user(fields, match.group("user"))
    _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_invalid_user(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_INVALID.match(message)
    if match is None:
        return SYSTEM_AUTH
    _categorize(fields, "authentication", "info", "invalid_user", "failure")
    _auth_detail(fields, "ssh")["event"] = "Invalid"
    _add_user(fields, match.group("user"))
    _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_userauth_request(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """The second line sshd writes for the same invalid-user attempt: same user, no address."""
    match = _SSH_USERAUTH_INVALID.match(message)
    if match is not None:
        _categorize(fields, "authentication", "info", "invalid_user_request", "failure")
        _add_user(fields, match.group("user"))
    return SYSTEM_AUTH


def _ssh_connection(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_CLOSED.match(message)
    if match is not None:
        fields["event"] = {"category": ["network"], "type": ["connection", "end"],
                           "action": "ssh_connection_" + match.group("kind")}
        _add_user(fields, match.group("user"))
        _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_disconnected(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_DISCONNECTED.match(message)
    if match is not None:
        fields["event"] = {"category": ["network"], "type": ["connection", "end"], "action": "ssh_disconnected"}
        _add_user(fields, match.group("user"))
        _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_received(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_RECEIVED_DISCONNECT.match(message)
    if match is not None:
        fields["event"] = {"category": ["network"], "type": ["connection", "end"],
                           "action": "ssh_disconnect_received"}
        ssh = _auth_detail(fields, "ssh")
        ssh["disconnect_code"] = int(match.group("code"))
        ssh["disconnect_reason"] = match.group("reason")
        _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_max_attempts(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_MAX_ATTEMPTS.match(message)
    if match is not None:
        _categorize(fields, "authentication", "info", "max_auth_attempts_exceeded", "failure")
        _add_user(fields, match.group("user"))
        _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_too_many(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_TOO_MANY.match(message)
    if match is not None:
        _categorize(fields, "authentication", "info", "max_auth_attempts_exceeded", "failure")
        _add_user(fields, match.group("user") or match.group("user2"))
        _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_break_in(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """``POSSIBLE BREAK-IN ATTEMPT``: the client's reverse DNS does not match its address."""
    match = _SSH_REVERSE.match(message) or _SSH_ADDRESS_MAPS.match(message)
    if match is not None:
        _categorize(fields, "network", "info", "possible_break_in_attempt")
        _add_source(fields, match.group("ip"))
        fields["source"]["domain"] = match.group("host")
    return SYSTEM_AUTH


def _ssh_no_ident(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _SSH_NO_IDENT.match(message)
    if match is not None:
        fields["event"] = {"category": ["network"], "type": ["connection", "denied"],
                           "action": "ssh_no_identification"}
        _auth_detail(fields, "ssh")["dropped_ip"] = match.group("ip")
        _add_source(fields, match.group("ip"), match.group("port"))
    return SYSTEM_AUTH


def _ssh_pam_more(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _PAM_MORE.match(message)
    if match is not None:
        _categorize(fields, "authentication", "info", "authentication_failure", "failure")
        values = _PAM_FAILURE_VALUES.match(match.group("kv"))
        if values is not None:
            _add_user(fields, values.group("user") or None)
            _add_source(fields, values.group("rhost") or None)
    return SYSTEM_AUTH


def _ssh_error(message: str, fields: dict[str, Any]) -> ProgramMapping:
    return _sshd(message[7:], fields)  # "error: " + a message the other mappers know


_SSHD_BY_FIRST_WORD: dict[str, ProgramMapper] = {
    "Accepted": _ssh_login,
    "Failed": _ssh_login,
    "Invalid": _ssh_invalid_user,
    "input_userauth_request:": _ssh_userauth_request,
    "Connection": _ssh_connection,
    "Disconnected": _ssh_disconnected,
    "Received": _ssh_received,
    "maximum": _ssh_max_attempts,
    "Disconnecting": _ssh_too_many,
    "Disconnecting:": _ssh_too_many,
    "reverse": _ssh_break_in,
    "Address": _ssh_break_in,
    "Did": _ssh_no_ident,
    "PAM": _ssh_pam_more,
    "error:": _ssh_error,
}


def _sshd(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """One dictionary look-up on the first word picks the only pattern worth trying."""
    space = message.find(" ")
    mapper = _SSHD_BY_FIRST_WORD.get(message[:space] if space > 0 else message)
    if mapper is None:
        return SYSTEM_AUTH
    return mapper(message, fields)


# --- sudo, su, login -------------------------------------------------------------------------------

_SUDO = re.compile(
    r"\s*(?P<user>\S+) : (?:(?P<error>[^;]*?) ; )?TTY=(?P<tty>.*?) ; PWD=(?P<pwd>.*?) ; USER=(?P<runas>.*?) ;"
    r"(?P<more>.*?)COMMAND=(?P<command>.*)\Z",
    re.DOTALL,
)


def _sudo(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """``alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`` (an error such as
    ``3 incorrect password attempts`` or ``user NOT in sudoers`` comes before TTY)."""
    match = _SUDO.match(message)
    if match is None:
        return SYSTEM_AUTH
    error = match.group("error")
    command = match.group("command")
    fields["event"] = {
        "category": ["process"],
        "type": ["start"] if error is None else ["info"],
        "action": "sudo_command",
        "outcome": "success" if error is None else "failure",
    }
    sudo = _auth_detail(fields, "sudo")
    sudo["tty"] = match.group("tty")
    sudo["pwd"] = match.group("pwd")
    sudo["user"] = match.group("runas")
    sudo["command"] = command
    if error is not None:
        sudo["error"] = error
    process = fields.setdefault("process", {})
    process["command_line"] = command
    process["working_directory"] = match.group("pwd")
    _add_user(fields, match.group("user"), effective=match.group("runas"))
    return SYSTEM_AUTH


_SU_TO = re.compile(r"(?P<failed>FAILED SU )?\(to (?P<target>[^)]+)\) (?P<user>\S+) on (?P<tty>\S+)")
_SU_FOR = re.compile(r"(?P<result>Successful|FAILED) su for (?P<target>\S+) by (?P<user>\S+)")
_SU_SIGN = re.compile(r"(?P<sign>[+-]) (?P<tty>\S+) (?P<user>[^:\s]+):(?P<target>\S+)\Z")


def _su(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """util-linux ``(to root) alice on pts/0`` / ``FAILED SU (to root) ...``, shadow's ``Successful
    su for root by alice`` and ``+ pts/0 alice:root``."""
    match = _SU_TO.match(message)
    if match is not None:
        failed = match.group("failed") is not None
    else:
        match = _SU_FOR.match(message)
        if match is not None:
            failed = match.group("result") == "FAILED"
        else:
            match = _SU_SIGN.match(message)
            if match is None:
                return SYSTEM_AUTH
            failed = match.group("sign") == "-"
    _categorize(fields, "authentication", "info", "su", "failure" if failed else "success")
    _add_user(fields, match.group("user"), effective=match.group("target"))
    return SYSTEM_AUTH


_LOGIN_ROOT = re.compile(r"ROOT LOGIN (?:ON|on) (?P<tty>\S+)(?: FROM (?P<host>\S+))?")
_FTP_CONNECTION = re.compile(r"connection from (?P<ip>\S+) \((?P<host>[^)]*)\)")
_FTP_ANONYMOUS = re.compile(r"ANONYMOUS FTP LOGIN FROM (?P<ip>[^\s,]+), *\((?P<user>[^)]*)\)")
_KLOGIND_FAILED = re.compile(r"Authentication failed from (?P<ip>\S+) \((?P<host>[^)]*)\): (?P<reason>.*)", re.DOTALL)


def _login(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _LOGIN_ROOT.match(message)
    if match is not None:
        _categorize(fields, "authentication", "start", "root_login", "success")
        _add_user(fields, "root")
        _add_source(fields, match.group("host"))
    return SYSTEM_AUTH


def _ftpd(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _FTP_CONNECTION.match(message)
    if match is not None:
        fields["event"] = {"category": ["network"], "type": ["connection", "start"], "action": "ftp_connection"}
        _add_source(fields, match.group("ip"))
        if match.group("host"):
            fields["source"]["domain"] = match.group("host")
    elif (match := _FTP_ANONYMOUS.match(message)) is not None:
        _categorize(fields, "authentication", "start", "ftp_anonymous_login", "success")
        _add_user(fields, match.group("user") or "anonymous")
        _add_source(fields, match.group("ip"))
    return SYSTEM_AUTH


def _klogind(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _KLOGIND_FAILED.match(message)
    if match is not None:
        _categorize(fields, "authentication", "info", "kerberos_login", "failure")
        _add_source(fields, match.group("ip"))
    elif message.startswith("Kerberos authentication failed"):
        _categorize(fields, "authentication", "info", "kerberos_login", "failure")
    return SYSTEM_AUTH


# --- systemd-logind --------------------------------------------------------------------------------

_LOGIND_NEW = re.compile(r"New session (?P<id>\S+) of user (?P<user>.+?)\.\Z")
_LOGIND_REMOVED = re.compile(r"Removed session (?P<id>\S+?)\.\Z")
_LOGIND_LOGGED_OUT = re.compile(r"Session (?P<id>\S+) logged out\.")


def _logind(message: str, fields: dict[str, Any]) -> ProgramMapping:
    match = _LOGIND_NEW.match(message)
    if match is not None:
        _categorize(fields, "session", "start", "new_session", "success")
        _add_user(fields, match.group("user"))
    else:
        match = _LOGIND_REMOVED.match(message)
        if match is not None:
            _categorize(fields, "session", "end", "removed_session", "success")
        else:
            match = _LOGIND_LOGGED_OUT.match(message)
            if match is None:
                return SYSTEM_AUTH
            _categorize(fields, "session", "end", "session_logged_out", "success")
    _auth_detail(fields, "session")["id"] = match.group("id")
    return SYSTEM_AUTH


# --- shadow-utils: useradd, groupadd, usermod, userdel, groupdel, groupmod, passwd ----------------

_NEW_USER = re.compile(
    r"new user: name=(?P<user>[^,]*), UID=(?P<uid>\d+), GID=(?P<gid>\d+), home=(?P<home>[^,]*),"
    r" shell=(?P<shell>[^,]*)"
)
_NEW_GROUP = re.compile(r"(?:new group|group added to \S+?): name=(?P<group>[^,\s]*)(?:, GID=(?P<gid>\d+))?")
_ADD_TO_GROUP = re.compile(r"add '(?P<user>[^']*)' to (?:shadow )?group '(?P<group>[^']*)'")
_DELETE_FROM_GROUP = re.compile(r"delete '(?P<user>[^']*)' from (?:shadow )?group '(?P<group>[^']*)'")
_DELETE_USER = re.compile(r"delete user '(?P<user>[^']*)'")
_REMOVED_GROUP = re.compile(r"(?:removed (?:shadow )?group '(?P<group>[^']*)'|group '(?P<group2>[^']*)' removed)")
_CHANGE_USER = re.compile(r"(?:change|lock|unlock) user '(?P<user>[^']*)'")
_PASSWORD_FOR = re.compile(r"password for '(?P<user>[^']*)' changed")
_GROUP_CHANGED = re.compile(r"group changed in \S+ \(group (?P<group>[^/)]+)")
_QUOTED_NAME = re.compile(r"'(?P<name>[^']*)'")

# program → (event.type, default action): Elastic's system integration types these by program.
_IAM_PROGRAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "useradd": (("user", "creation"), "user_created"),
    "userdel": (("user", "deletion"), "user_deleted"),
    "usermod": (("user", "change"), "user_modified"),
    "groupadd": (("group", "creation"), "group_created"),
    "groupdel": (("group", "deletion"), "group_deleted"),
    "groupmod": (("group", "change"), "group_modified"),
    "passwd": (("user", "change"), "password_changed"),
    "chpasswd": (("user", "change"), "password_changed"),
    "chage": (("user", "change"), "user_modified"),
    "gpasswd": (("group", "change"), "group_modified"),
    "newusers": (("user", "creation"), "user_created"),
}


def _iam(program: str) -> ProgramMapper:
    types, default_action = _IAM_PROGRAMS[program]

    def map_iam(message: str, fields: dict[str, Any]) -> ProgramMapping:
        action = default_action
        kind = list(types)
        user = group = uid = gid = None
        if (match := _NEW_USER.match(message)) is not None:
            action, kind = "user_created", ["user", "creation"]
            user, uid, gid = match.group("user"), match.group("uid"), match.group("gid")
            useradd = _auth_detail(fields, "useradd")
            useradd["home"] = match.group("home")
            useradd["shell"] = match.group("shell")
        elif (match := _NEW_GROUP.match(message)) is not None:
            action, kind = "group_created", ["group", "creation"]
            group, gid = match.group("group"), match.group("gid")
        elif (match := _ADD_TO_GROUP.match(message)) is not None:
            action, kind = "user_added_to_group", ["group", "change"]
            user, group = match.group("user"), match.group("group")
        elif (match := _DELETE_FROM_GROUP.match(message)) is not None:
            action, kind = "user_removed_from_group", ["group", "change"]
            user, group = match.group("user"), match.group("group")
        elif (match := _DELETE_USER.match(message)) is not None:
            action, kind = "user_deleted", ["user", "deletion"]
            user = match.group("user")
        elif (match := _REMOVED_GROUP.match(message)) is not None:
            action, kind = "group_deleted", ["group", "deletion"]
            group = match.group("group") or match.group("group2")
        elif (match := _CHANGE_USER.match(message)) is not None:
            user = match.group("user")
            action = "password_changed" if message.endswith("password") and message.startswith("change") \
                else "user_modified"
        elif (match := _PASSWORD_FOR.match(message)) is not None:
            action = "password_changed"
            user = match.group("user")
        elif (match := _GROUP_CHANGED.match(message)) is not None:
            group = match.group("group")
        elif message.startswith("pam_"):
            return _pam_prefixed(message, fields)
        elif (match := _QUOTED_NAME.search(message)) is not None:
            if kind[0] == "group":
                group = match.group("name")
            else:
                user = match.group("name")
        fields["event"] = {"category": ["iam"], "type": kind, "action": action,
                           "outcome": "failure" if "fail" in message else "success"}
        _add_user(fields, user)
        if uid is not None:
            fields.setdefault("user", {})["id"] = uid
        if group or gid:
            fields["group"] = {key: value for key, value in (("name", group), ("id", gid)) if value}
        return SYSTEM_AUTH

    return map_iam


# --- cron ------------------------------------------------------------------------------------------

_CRON_LINE = re.compile(r"\((?P<user>[^)]*)\) (?P<verb>[A-Z]+(?: [A-Z]+)?) \((?P<detail>.*)\)\s*\Z", re.DOTALL)


def _cron(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """``(root) CMD (command)``: a job ran; ``(alice) REPLACE (alice)``: a crontab changed."""
    match = _CRON_LINE.match(message)
    if match is None or match.group("user") == "CRON":
        return SYSTEM_SYSLOG
    verb = match.group("verb")
    if verb == "CMD":
        _categorize(fields, "process", "start", "cron_command")
        fields.setdefault("process", {})["command_line"] = match.group("detail")
    elif verb in ("REPLACE", "DELETE", "BEGIN EDIT", "END EDIT", "RELOAD"):
        _categorize(fields, "configuration", "change", "crontab_" + verb.lower().replace(" ", "_"))
    else:
        return SYSTEM_SYSLOG
    _add_user(fields, match.group("user"))
    return SYSTEM_SYSLOG


# --- auditd records relayed through syslog ---------------------------------------------------------

def _audit(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """audispd / audisp-syslog / auoms write the audit record as the message: map it as auditd
    does, keeping the syslog header (host, ``log.syslog``). The record's process and time win."""
    if message[:5] == "node=":
        record = message
    else:
        start = message.find("type=")
        if start < 0:
            return SYSTEM_SYSLOG
        record = message[start:]
    mapped = match_audit_record(record)
    if mapped is None:
        return SYSTEM_SYSLOG
    for key, value in mapped.fields.items():
        current = fields.get(key)
        if key != "process" and isinstance(current, dict) and isinstance(value, dict):
            current.update(value)
        else:
            fields[key] = value
    return ProgramMapping(mapped.module, mapped.dataset, mapped.timestamp)


def _kernel(message: str, fields: dict[str, Any]) -> ProgramMapping:
    """The kernel logs audit records itself when auditd is not running (``audit: type=1400 ...``)."""
    if "audit(" in message and "type=" in message:
        return _audit(message, fields)
    return SYSTEM_SYSLOG


# --- dispatch --------------------------------------------------------------------------------------

_PROGRAM_MAPPERS: dict[str, ProgramMapper] = {
    "sshd": _sshd,
    "sshd-session": _sshd,
    "sshd-auth": _sshd,
    "sudo": _sudo,
    "su": _su,
    "login": _login,
    "ftpd": _ftpd,
    "klogind": _klogind,
    "systemd-logind": _logind,
    "cron": _cron,
    "crond": _cron,
    "kernel": _kernel,
    **{program: _audit for program in AUDIT_PROGRAMS},
    **{program: _iam(program) for program in _IAM_PROGRAMS},
}


def map_program_message(program: str, message: str, fields: dict[str, Any]) -> ProgramMapping:
    """Add what ``program``'s ``message`` means to ``fields`` (in place) and say where it belongs.

    ``program`` is the syslog tag as logged (``sshd``, ``sshd(pam_unix)``, ``/usr/sbin/CRON``);
    an empty or unknown program still returns a mapping, never raises."""
    base = program_base(program) if program else ""
    if message[:4] == "pam_":
        return _pam_prefixed(message, fields)
    if program.endswith("(pam_unix)"):  # old PAM: "sshd(pam_unix)[123]: authentication failure; ..."
        return _pam(base, message, fields)
    if message[:10] == "ROOT LOGIN":  # login(1) logs under odd tags ("-- root[2421]:")
        return _login(message, fields)
    mapper = _PROGRAM_MAPPERS.get(base)
    if mapper is None:
        return SYSTEM_AUTH if base in AUTH_PROGRAMS else SYSTEM_SYSLOG
    return mapper(message, fields)
