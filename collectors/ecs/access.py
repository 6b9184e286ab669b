"""Web server logs → ECS: the access log in NCSA common and combined format (Apache's and nginx's
default), and the Apache error log (2.2 and 2.4 layouts).

Hand-written on precompiled regular expressions, since the format is fixed and one match per line is
the fastest Python gets; field names follow Elastic's apache/nginx integrations.

Values are kept as the server logged them: Apache escapes ``"`` and ``\\`` and writes bytes outside
printable ASCII as ``\\xhh``; undoing that could not be done without guessing (a logged ``\\x41`` may
have been sent as such), so ``url.original`` and ``user_agent.original`` hold the logged text —
what a person grepping the file sees. A request line that is not ``METHOD target HTTP/x`` (scanners
send raw binary, TLS handshakes to port 80 ...) keeps the whole request in ``url.original``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal
from urllib.parse import urlsplit

from collectors.base import Mapped, ParseError
from collectors.ecs.linux import is_ip

Server = Literal["apache", "nginx"]
DATASETS: dict[str, str] = {"apache": "apache.access", "nginx": "nginx.access"}

_QUOTED = r'(?:[^"\\]*(?:\\.[^"\\]*)*)'  # "unrolled" so a 10 kB URL does not cost one alternation per byte
_ACCESS = re.compile(
    r'(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>' + _QUOTED + r')"'
    r" (?P<status>\d{3}|-) (?P<bytes>\d{1,18}|-)"
    r'(?: "(?P<referrer>' + _QUOTED + r')" "(?P<agent>' + _QUOTED + r')")?(?P<rest>.*)',
    re.DOTALL,
)
_CLF_TIME = re.compile(
    r"(?P<day>\d{1,2})/(?P<mon>[A-Z][a-z]{2})/(?P<year>\d{4}):(?P<hh>\d\d):(?P<mi>\d\d):(?P<ss>\d\d)"
    r"(?:\.(?P<frac>\d{1,6})\d*)? (?P<zone>[+-]\d{4})"
)
_REQUEST = re.compile(
    r"(?P<method>[A-Za-z][A-Za-z0-9_\-]*) (?P<target>.*?)(?: HTTP/(?P<version>\d+(?:\.\d+)?))?\Z", re.DOTALL
)
_ERROR = re.compile(
    r"\[(?:[A-Z][a-z]{2}) (?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]?\d) (?P<hh>\d\d):(?P<mi>\d\d):(?P<ss>\d\d)"
    r"(?:\.(?P<frac>\d{1,6}))? (?P<year>\d{4})\] \[(?:(?P<module>[^:\]]+):)?(?P<level>[a-z]+\d?)\]"
    r"(?: \[pid (?P<pid>\d{1,10})(?::tid (?P<tid>\d{1,18}))?\])?(?: \[client (?P<client>[^\]]+)\])?"
    r"(?: (?P<code>AH\d{5}):)? ?(?P<message>.*)",
    re.DOTALL,
)
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_ZONES: dict[str, tzinfo] = {}
ERROR_LEVELS = frozenset(("emerg", "alert", "crit", "error"))


def parse_access_line(line: str, *, server: Server = "apache") -> Mapped:
    """One access-log line in common or combined format (anything after the user agent, such as
    nginx's ``"$http_x_forwarded_for"``, is left in ``event.original`` only). ``server`` picks
    ``event.module``/``event.dataset``. A line exported as one quoted CSV field (``"...."``) is
    unwrapped first."""
    dataset = DATASETS.get(server)
    if dataset is None:
        raise ValueError(f"server must be one of {sorted(DATASETS)}, got {server!r}")
    text = line.rstrip("\r\n")
    if text[:1] == '"' and text[-1:] == '"' and len(text) > 1:
        text = text[1:-1]
    match = _ACCESS.match(text)
    if match is None:
        raise ParseError(
            "not an access log line: expected common/combined format "
            f"'client ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] \"request\" status bytes', got {line[:80]!r}"
        )
    timestamp = _clf_time(match.group("time"))
    if timestamp is None:
        raise ParseError(f"field time: expected 'dd/Mon/yyyy:HH:MM:SS +zzzz', got {match.group('time')[:40]!r}")

    client = match.group("client")
    fields: dict[str, Any] = {}
    related: dict[str, list[str]] = {}
    source: dict[str, Any] = {"address": client}
    if is_ip(client):
        source["ip"] = client
        related["ip"] = [client]
    else:
        source["domain"] = client
    fields["source"] = source
    user = match.group("user")
    if user != "-":
        fields["user"] = {"name": user}
        related["user"] = [user]
    if related:
        fields["related"] = related

    http: dict[str, Any] = {}
    request: dict[str, Any] = {}
    response: dict[str, Any] = {}
    _map_request(match.group("request"), fields, http, request)
    referrer = match.group("referrer")
    if referrer is not None and referrer != "-":
        request["referrer"] = referrer
    status = match.group("status")
    size = match.group("bytes")
    response["body"] = {"bytes": 0 if size == "-" else int(size)}  # CLF writes "-" for no body
    outcome = None
    if status != "-":
        code = int(status)
        response["status_code"] = code
        outcome = "failure" if code >= 400 else "success"
    http["response"] = response
    if request:
        http["request"] = request
    fields["http"] = http
    agent = match.group("agent")
    if agent is not None and agent != "-":
        fields["user_agent"] = {"original": agent}
    event: dict[str, Any] = {"category": ["web"], "type": ["access"]}
    if outcome is not None:
        event["outcome"] = outcome
    fields["event"] = event
    return Mapped(timestamp=timestamp, fields=fields, module=server, dataset=dataset)


def parse_apache_error_line(line: str, *, tz: tzinfo = UTC) -> Mapped:
    """One Apache error-log line: ``[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] message``
    (2.2) or ``[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 1:tid 2] [client 1.2.3.4:5]
    AH00128: message`` (2.4). The time has no zone: ``tz`` is the server's."""
    match = _ERROR.match(line.rstrip("\r\n"))
    if match is None:
        raise ParseError(
            "not an Apache error log line: expected '[Www Mmm dd HH:MM:SS yyyy] [level] message' "
            f"or '[... ] [module:level] [pid N] message', got {line[:80]!r}"
        )
    month = _MONTHS.get(match.group("mon"))
    day = int(match.group("day"))
    frac = match.group("frac")
    try:  # the regex fixed the shape; this only rejects impossible dates such as Feb 30
        timestamp = datetime(int(match.group("year")), month or 0, day, int(match.group("hh")),
                             int(match.group("mi")), int(match.group("ss")), int(frac.ljust(6, "0")) if frac else 0,
                             tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ParseError(f"field time: expected a valid date and time, got {line[:32]!r}: {exc}") from None
    level = match.group("level")
    fields: dict[str, Any] = {
        "message": match.group("message"),
        "log": {"level": level},
        "event": {"category": ["web"], "type": ["error"] if level in ERROR_LEVELS else ["info"]},
    }
    module = match.group("module")
    if module:
        fields["apache"] = {"error": {"module": module}}
    pid = match.group("pid")
    if pid:
        process: dict[str, Any] = {"pid": int(pid)}
        if match.group("tid"):
            process["thread"] = {"id": int(match.group("tid"))}
        fields["process"] = process
    if match.group("code"):
        fields["error"] = {"code": match.group("code")}
    client = match.group("client")
    if client:
        fields["source"] = _client_address(client)
        if "ip" in fields["source"]:
            fields["related"] = {"ip": [fields["source"]["ip"]]}
    return Mapped(timestamp=timestamp, fields=fields, module="apache", dataset="apache.error")


def _map_request(request_line: str, fields: dict[str, Any], http: dict[str, Any], request: dict[str, Any]) -> None:
    if request_line == "-" or request_line == "":
        return
    match = _REQUEST.match(request_line)
    if match is None:  # not "METHOD target HTTP/x": keep it all, it is the evidence
        fields["url"] = {"original": request_line}
        return
    request["method"] = match.group("method")
    version = match.group("version")
    if version:
        http["version"] = version
    target = match.group("target")
    if not target:
        return
    url: dict[str, Any] = {"original": target}
    if target[:1] == "/":
        path, question, query = target.partition("?")
        url["path"] = path
        if question:
            url["query"] = query
    elif "://" in target:  # absolute form, as sent to proxies
        try:
            parts = urlsplit(target)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is not None:
            url["scheme"] = parts.scheme
            if parts.hostname:
                url["domain"] = parts.hostname
            if port is not None:
                url["port"] = port
            if parts.path:
                url["path"] = parts.path
            if parts.query:
                url["query"] = parts.query
    fields["url"] = url


def _clf_time(text: str) -> datetime | None:
    match = _CLF_TIME.fullmatch(text)
    if match is None:
        return None
    month = _MONTHS.get(match.group("mon"))
    if month is None:
        return None
    zone = match.group("zone")
    tz = _ZONES.get(zone)
    if tz is None:
        hours, minutes = int(zone[1:3]), int(zone[3:5])
        if hours > 23 or minutes > 59:
            return None
        sign = -1 if zone[0] == "-" else 1
        tz = _ZONES[zone] = timezone(sign * timedelta(hours=hours, minutes=minutes))
    frac = match.group("frac")
    try:  # the regex fixed the shape; this only rejects impossible dates such as 31/Feb
        moment = datetime(int(match.group("year")), month, int(match.group("day")), int(match.group("hh")),
                          int(match.group("mi")), int(match.group("ss")), int(frac.ljust(6, "0")) if frac else 0,
                          tzinfo=tz)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _client_address(client: str) -> dict[str, Any]:
    """``1.2.3.4``, ``1.2.3.4:5000`` or ``::1:5000`` (2.4 appends the port)."""
    if is_ip(client):
        return {"address": client, "ip": client}
    host, colon, port = client.rpartition(":")
    if colon and port.isdecimal() and is_ip(host):
        return {"address": host, "ip": host, "port": int(port)}
    return {"address": client, "domain": client}
