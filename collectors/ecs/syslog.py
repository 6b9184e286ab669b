"""Syslog headers → ECS: RFC 3164 (BSD, as in /var/log/auth.log), RFC 5424, and the ISO-timestamp
file format newer rsyslog writes; then the program's message goes to ``collectors.ecs.linux``.

Hand-written on precompiled regular expressions: the maintained Python syslog parsers handle one
RFC each, none reads the file variants (no PRI, ISO timestamps, ``prog(pam_unix)[pid]``), and one
``re`` match per header is as fast as Python parsing gets.

Fields: ``log.syslog.*`` (priority, facility, severity, hostname, appname, procid, msgid, version,
structured_data), ``host.hostname``, ``process.name``/``process.pid`` (the program that logged),
``message``. Network messages also get ``log.source.address`` (``ip:port`` of the sender): that is
where Filebeat's and Elastic Agent's syslog inputs put the peer, and ``source.*`` stays free for
what the message is about (the SSH client of an sshd line, say).

Invalid UTF-8 in a network message does not stop it: bytes are decoded with backslash escapes
(``\\xff``, so the evidence survives) and the event is tagged ``syslog_invalid_utf8``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from collectors.base import Mapped, ParseError
from collectors.ecs.linux import SYSTEM_AUTH, SYSTEM_SYSLOG, ProgramMapping, map_program_message

FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)
"""RFC 5424 table 1 by the keywords syslog.conf and rsyslog use (``%syslogfacility-text%``)."""

SEVERITY_NAMES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug")
"""RFC 5424 table 2."""

AUTH_FACILITIES = frozenset((4, 10))
"""auth and authpriv: what rsyslog writes to auth.log, hence ``system.auth`` like the file would be."""

INVALID_UTF8_TAG = "syslog_invalid_utf8"
UNPARSED_HEADER_TAG = "syslog_header_unparsed"

_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

_PRI = re.compile(r"<(\d{1,3})>")

# After the timestamp: an optional host, then an optional ``tag[pid]:``. The host is tried first;
# a first word followed by ``:`` or ``[`` is a tag (``Oct 11 22:14:15 su: ...`` has no host). Tags
# may hold spaces (``syslogd 1.4.1:``, `` -- root[2421]:``), as Elastic's ``%{DATA:process.name}``.
_HOST_TAG = (
    r" +(?:(?P<host>[0-9A-Fa-f]*:[0-9A-Fa-f:.]*[0-9A-Fa-f.]|[^\s:\[\]]+) +)?"
    r"(?:(?P<tag>[^\[\]:]{1,48}?)(?:\[(?P<pid>[^\]]{0,32})\])?:(?: |$))?"
    r"(?P<msg>.*)"
)
_BSD = re.compile(
    r"(?P<stamp>(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}\d{1,2}(?: \d{4})? \d\d:\d\d:\d\d"
    r"(?:\.\d{1,6})?)\d*" + _HOST_TAG,
    re.DOTALL,
)
_BSD_STAMP = re.compile(
    r"(?P<mon>\w{3}) {1,2}(?P<day>\d{1,2})(?: (?P<year>\d{4}))? (?P<hh>\d\d):(?P<mi>\d\d):(?P<ss>\d\d)"
    r"(?:\.(?P<frac>\d{1,6}))?"
)
_ISO = re.compile(
    r"(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,6})?)\d*(?P<zone>Z|[+-]\d\d:?\d\d)?" + _HOST_TAG,
    re.DOTALL,
)
_RFC5424 = re.compile(
    r"(?P<version>[1-9]\d?) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+)"
    r"(?: (?P<rest>.*))?",
    re.DOTALL,
)
_ISO_5424 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?)\d*(Z|[+-]\d\d:\d\d)")
_SD_ELEMENT = re.compile(r'\[(?P<id>[^\s\]="]+)(?P<params>(?: +[^\s\]="]+="(?:[^"\\]|\\.)*")*) *\]', re.DOTALL)
_SD_PARAM = re.compile(r'([^\s\]="]+)="((?:[^"\\]|\\.)*)"', re.DOTALL)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')
_REPEATED = re.compile(r"message repeated (\d{1,9}) times: \[ ?(.*)\]\Z", re.DOTALL)


def parse_syslog_line(line: str, *, now: datetime, tz: tzinfo = UTC) -> Mapped:
    """One line of a syslog file (auth.log, secure, syslog, messages), in any of the formats
    rsyslog and syslog-ng write: BSD (``Mmm dd HH:MM:SS host tag[pid]: msg``), ISO timestamp, or
    RFC 5424 (with or without ``<PRI>``). ``now`` and ``tz`` complete BSD timestamps, which carry
    neither year nor zone. Raises ``ParseError`` only for a line that is not syslog at all."""
    mapped = _parse(line.rstrip("\r\n"), now, tz)
    if mapped is None:
        raise ParseError(
            "not a syslog line: expected 'Mmm dd HH:MM:SS host tag: message', an ISO 8601 timestamp and host, "
            f"or an RFC 5424 header; got {line[:80]!r}"
        )
    return mapped


def parse_rfc3164(text: str, *, now: datetime, tz: tzinfo = UTC) -> Mapped:
    """An RFC 3164 message (``<PRI>`` optional): ``Mmm dd HH:MM:SS host tag[pid]: msg``. Also takes
    the ISO 8601 timestamp in place of the BSD one, as rsyslog's file format has it."""
    priority, body = _split_priority(text)
    if body is None:
        raise ParseError(f"RFC 3164: expected '<PRI>' with PRI 0..191, got {text[:16]!r}")
    mapped = _rfc3164(body, priority, now, tz)
    if mapped is None:
        raise ParseError(f"RFC 3164: expected 'Mmm dd HH:MM:SS host tag: message', got {body[:80]!r}")
    return mapped


def parse_rfc5424(text: str, *, now: datetime | None = None) -> Mapped:
    """An RFC 5424 message: ``<PRI>VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG`` (``<PRI>``
    optional, as some file templates drop it). ``now`` stands in for a NILVALUE (``-``) timestamp."""
    priority, body = _split_priority(text)
    if body is None:
        raise ParseError(f"RFC 5424: expected '<PRI>' with PRI 0..191, got {text[:16]!r}")
    mapped = _rfc5424(body, priority, now)
    if mapped is None:
        raise ParseError(
            "RFC 5424: expected 'VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]' with an "
            f"RFC 3339 timestamp and well-formed structured data, got {body[:80]!r}"
        )
    return mapped


def parse_syslog_message(
    data: bytes | str, *, now: datetime, tz: tzinfo = UTC, peer: str | None = None
) -> Mapped:
    """A message as received over the network (one UDP datagram or one TCP frame).

    ``now`` is the receive time: it completes BSD timestamps and stands in when a message with a
    valid ``<PRI>`` has no parsable header (RFC 3164 4.3.3: keep it, as a message). ``peer`` is the
    sender's ``ip:port``. Raises ``ParseError`` for data that is not syslog at all (no ``<PRI>``
    and no recognisable header) or is empty.
    """
    invalid_utf8 = False
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "backslashreplace")
            invalid_utf8 = True
    else:
        text = data
    text = text.rstrip("\r\n\x00")
    if not text.strip():
        raise ParseError("empty syslog message: expected '<PRI>' and a header")
    priority, body = _split_priority(text)
    mapped = None
    if body is not None:
        mapped = _rfc5424(body, priority, now) if body[:2] == "1 " else _rfc3164(body, priority, now, tz)
    if mapped is None:
        if priority is None:
            raise ParseError(
                "not a syslog message: expected '<PRI>' (0..191) or a header 'Mmm dd HH:MM:SS host tag: message'"
                f" / RFC 5424; got {text[:80]!r}"
            )
        mapped = _headerless(body or "", priority, now)
    fields = mapped.fields
    if peer is not None:
        fields["log"]["source"] = {"address": peer}
    if invalid_utf8:
        fields.setdefault("tags", []).append(INVALID_UTF8_TAG)
    return mapped


def _split_priority(text: str) -> tuple[int | None, str | None]:
    """``(PRI, rest)``; ``(None, text)`` without a PRI; ``(None, None)`` for a malformed one."""
    if text[:1] != "<":
        return None, text
    match = _PRI.match(text)
    if match is None:
        return None, None
    priority = int(match.group(1))
    if priority > 191:
        return None, None
    return priority, text[match.end():]


def _parse(text: str, now: datetime, tz: tzinfo) -> Mapped | None:
    priority, body = _split_priority(text)
    if body is None:
        return None
    first = body[:1]
    if first.isdecimal() and body[1:2] == " ":
        return _rfc5424(body, priority, now)
    return _rfc3164(body, priority, now, tz)


def _rfc3164(body: str, priority: int | None, now: datetime, tz: tzinfo) -> Mapped | None:
    first = body[:1]
    if first.isdecimal():
        match = _ISO.match(body)
        if match is None:
            return None
        timestamp = _iso_timestamp(match.group("iso"), match.group("zone"), tz)
        if timestamp is None:
            return None
    else:
        match = _BSD.match(body)
        if match is None:
            return None
        timestamp = _bsd_timestamp(match.group("stamp"), now, tz)
        if timestamp is None:
            return None
    log_syslog: dict[str, Any] = {}
    fields: dict[str, Any] = {"log": {"syslog": log_syslog}}
    if priority is not None:
        _add_priority(fields, log_syslog, priority)
    host, tag, pid, message = match.group("host", "tag", "pid", "msg")
    if host:
        log_syslog["hostname"] = host
        fields["host"] = {"hostname": host}
    return _finish(fields, log_syslog, timestamp, tag, pid, message, priority)


def _rfc5424(body: str, priority: int | None, now: datetime | None) -> Mapped | None:
    match = _RFC5424.match(body)
    if match is None:
        return None
    stamp = match.group("ts")
    if stamp == "-":
        if now is None:
            return None
        timestamp = now.astimezone(UTC)
    else:
        stamp_match = _ISO_5424.fullmatch(stamp)
        if stamp_match is None:
            return None
        timestamp = _iso_timestamp(stamp_match.group(1), stamp_match.group(2), UTC)
        if timestamp is None:
            return None
    rest = match.group("rest") or ""
    structured: dict[str, dict[str, str]] | None = None
    if rest[:1] == "-":
        if rest[1:2] not in ("", " "):
            return None
        message = rest[2:]
    elif rest[:1] == "[":
        structured, end = _structured_data(rest)
        if structured is None:
            return None
        if rest[end:end + 1] not in ("", " "):
            return None
        message = rest[end + 1:]
    elif rest == "":
        message = ""
    else:
        return None
    if message[:1] == "\ufeff":  # RFC 5424 6.4: a UTF-8 MSG starts with a BOM
        message = message[1:]
    log_syslog: dict[str, Any] = {"version": match.group("version")}
    fields: dict[str, Any] = {"log": {"syslog": log_syslog}}
    if priority is not None:
        _add_priority(fields, log_syslog, priority)
    host = match.group("host")
    if host != "-":
        log_syslog["hostname"] = host
        fields["host"] = {"hostname": host}
    msgid = match.group("msgid")
    if msgid != "-":
        log_syslog["msgid"] = msgid
    if structured:
        log_syslog["structured_data"] = structured
    app = match.group("app")
    procid = match.group("procid")
    return _finish(fields, log_syslog, timestamp, None if app == "-" else app,
                   None if procid == "-" else procid, message, priority)


def _headerless(body: str, priority: int, now: datetime) -> Mapped:
    """A ``<PRI>`` and then no header we know: RFC 3164 4.3.3 says keep it as the message, timed
    at receipt. Tagged so it can be found and the sender's format fixed."""
    log_syslog: dict[str, Any] = {}
    fields: dict[str, Any] = {"log": {"syslog": log_syslog}, "message": body, "tags": [UNPARSED_HEADER_TAG]}
    _add_priority(fields, log_syslog, priority)
    dataset = SYSTEM_AUTH if (priority >> 3) in AUTH_FACILITIES else SYSTEM_SYSLOG
    return Mapped(timestamp=now.astimezone(UTC), fields=fields, module=dataset.module, dataset=dataset.dataset)


def _finish(
    fields: dict[str, Any], log_syslog: dict[str, Any], timestamp: datetime, tag: str | None, pid: str | None,
    message: str, priority: int | None,
) -> Mapped:
    fields["message"] = message
    if tag:
        log_syslog["appname"] = tag
        process: dict[str, Any] = {"name": tag}
        fields["process"] = process
        if pid:
            log_syslog["procid"] = pid
            if pid.isdecimal() and len(pid) < 11:  # a number that fits ECS's long
                process["pid"] = int(pid)
    elif pid:
        log_syslog["procid"] = pid
    inner = message
    if message[:8] == "message ":
        repeated = _REPEATED.match(message)
        if repeated is not None:  # rsyslog's "reduce repeated messages": map what was repeated
            fields["system"] = {"message_repeated": int(repeated.group(1))}
            inner = repeated.group(2)
    mapping: ProgramMapping = map_program_message(tag or "", inner, fields)
    if mapping is SYSTEM_SYSLOG and priority is not None and (priority >> 3) in AUTH_FACILITIES:
        mapping = SYSTEM_AUTH
    return Mapped(timestamp=mapping.timestamp or timestamp, fields=fields, module=mapping.module,
                  dataset=mapping.dataset)


def _add_priority(fields: dict[str, Any], log_syslog: dict[str, Any], priority: int) -> None:
    facility, severity = priority >> 3, priority & 7
    severity_name = SEVERITY_NAMES[severity]
    log_syslog["priority"] = priority
    log_syslog["facility"] = {"code": facility, "name": FACILITY_NAMES[facility]}
    log_syslog["severity"] = {"code": severity, "name": severity_name}
    fields["log"]["level"] = severity_name


@lru_cache(maxsize=4096)
def _bsd_timestamp(stamp: str, now: datetime, tz: tzinfo) -> datetime | None:
    """BSD timestamps have no year and no zone: take ``now``'s year in ``tz``, and the year before
    when that would put the record more than a day in the future (a December line read in January).
    Cached: a log has many lines per second, and a file is read with one ``now``."""
    match = _BSD_STAMP.match(stamp)
    if match is None:  # pragma: no cover - _BSD matched the same shape
        return None
    mon, day_text, explicit_year, hh, mi, ss, frac = match.groups()
    month = _MONTHS[mon]
    day = int(day_text)
    micro = int(frac.ljust(6, "0")) if frac else 0
    hour, minute, second = int(hh), int(mi), int(ss)
    if hour > 23 or minute > 59 or second > 60 or day == 0 or day > 31:
        return None
    second = min(second, 59)  # a leap second: datetime has no 60
    if explicit_year:
        return _local(int(explicit_year), month, day, hour, minute, second, micro, tz)
    year = now.astimezone(tz).year
    moment = _local(year, month, day, hour, minute, second, micro, tz)
    if moment is None or moment > now + timedelta(days=1):
        moment = _local(year - 1, month, day, hour, minute, second, micro, tz)
    return moment


def _local(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int,
           tz: tzinfo) -> datetime | None:
    if day > 28 and not _day_exists(year, month, day):  # Feb 29 in a common year, Apr 31 ...
        return None
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError):  # year 1 or 9999 pushed out of range by the zone
        return None


def _day_exists(year: int, month: int, day: int) -> bool:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    return day <= (30 if month in (4, 6, 9, 11) else 31)


def _iso_timestamp(stamp: str, zone: str | None, tz: tzinfo) -> datetime | None:
    if stamp[17:19] == "60":  # leap second
        stamp = stamp[:17] + "59" + stamp[19:]
    try:  # the regex fixed the shape; this only rejects impossible dates (month 13, year 0001 at +05:00)
        moment = datetime.fromisoformat(stamp + (zone or ""))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]] | None, int]:
    """RFC 5424 STRUCTURED-DATA → ``{sd-id: {param: value}}`` and where it ended; ``None`` when
    the brackets are malformed. Values are unescaped (``\\"``, ``\\\\``, ``\\]``)."""
    elements: dict[str, dict[str, str]] = {}
    position = 0
    while text[position:position + 1] == "[":
        match = _SD_ELEMENT.match(text, position)
        if match is None:
            return None, position
        params: dict[str, str] = {}
        for name, value in _SD_PARAM.findall(match.group("params")):
            params[name] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
        elements.setdefault(match.group("id"), {}).update(params)
        position = match.end()
    return elements, position
