"""Web server logs → ECS, on the Acunetix/Netsparker/w3af scan logs and loghub's Apache error log."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from civicsoc.event import get_field
from collectors.base import DeadLetter, ParseError
from collectors.ecs.access import parse_access_line, parse_apache_error_line

SCANS = ("acunetix.txt", "netsparker.txt", "w3af.txt")


@pytest.mark.parametrize("name", SCANS)
def test_every_scan_line_parses_and_matches_a_plain_split(shared_data: Path, name: str) -> None:
    """Each line, also split on its double quotes by hand (where no quote is escaped inside a
    field), must give the same request, status, size, referrer and user agent."""
    path = shared_data / "apache-http-logs-scans" / name
    lines = dead = compared = 0
    statuses: Counter[int] = Counter()
    with path.open(encoding="utf-8", errors="strict", newline="") as handle:
        for number, line in enumerate(handle, 1):
            lines += 1
            try:
                mapped = parse_access_line(line)
            except ParseError as exc:  # a dead letter, with a reason; counted below
                DeadLetter.of(f"{path}:{number}", str(exc), line)
                dead += 1
                continue
            fields = mapped.fields
            assert (mapped.module, mapped.dataset) == ("apache", "apache.access")
            assert fields["event"]["category"] == ["web"]
            status = fields["http"]["response"]["status_code"]
            statuses[status] += 1
            assert fields["event"]["outcome"] == ("failure" if status >= 400 else "success")
            inner = line.rstrip("\r\n")
            inner = inner[1:-1] if inner.startswith('"') else inner
            if "\\" in inner:
                continue
            parts = inner.split('"')
            assert len(parts) == 7, f"{name}:{number}"
            prefix, request, middle, referrer, _, agent, _ = parts
            client, ident, user, *_ = prefix.split(" ")
            code, size = middle.split()
            method, target, protocol = request.split(" ")
            assert fields["source"]["ip"] == client
            assert ident == "-" and get_field(fields, "user.name") == (None if user == "-" else user)
            assert status == int(code) and fields["http"]["response"]["body"]["bytes"] == int(size)
            assert fields["http"]["request"]["method"] == method
            assert get_field(fields, "url.original") == (target or None)
            assert "HTTP/" + fields["http"]["version"] == protocol
            assert get_field(fields, "http.request.referrer") == (None if referrer == "-" else referrer)
            assert get_field(fields, "user_agent.original") == (None if agent == "-" else agent)
            if "?" in target:
                assert fields["url"]["path"] + "?" + fields["url"]["query"] == target
            compared += 1
    assert dead == 0, f"{dead} of {lines} lines of {name} did not parse"
    assert compared > 0.95 * lines  # the rest hold escaped quotes (checked by hand below)
    assert statuses[404] > 0 and statuses[200] > 0


def test_scanner_payloads_are_kept_as_logged(shared_data: Path) -> None:
    path = shared_data / "apache-http-logs-scans" / "acunetix.txt"
    found = Counter()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if '"GET  HTTP/1.1"' in line:  # no URL at all: method, version, no url
                fields = parse_access_line(line).fields
                assert fields["http"]["request"]["method"] == "GET" and "url" not in fields
                assert fields["http"]["response"]["status_code"] == 400
                found["empty"] += 1
            elif "\\xf0\\x9f\\x92\\xa9" in line and "searchphrase=12345" in line:
                fields = parse_access_line(line).fields
                # Apache wrote the bytes as \xhh and the quotes as \"; url.original is that text
                assert "'\\\"\\\\'\\\\\\\");|]*%00{%0d%0a<%00>%bf%27'\\xf0\\x9f\\x92\\xa9" in fields["url"]["original"]
                assert fields["url"]["path"] == "/index.php/component/search/"
                found["escaped"] += 1
            elif '"() { Referer; }' in line:  # Shellshock probe in the Referer
                fields = parse_access_line(line).fields
                assert fields["http"]["request"]["referrer"].startswith("() { Referer; }; echo -e \\\"Content-Type")
                found["shellshock"] += 1
    assert found["empty"] >= 1 and found["escaped"] >= 1 and found["shellshock"] >= 1
    netsparker = shared_data / "apache-http-logs-scans" / "netsparker.txt"
    with netsparker.open(encoding="utf-8") as handle:
        methods = Counter(parse_access_line(line).fields["http"]["request"]["method"] for line in handle)
    assert methods["NETSPARKER"] == 1 and methods["PROPFIND"] > 0


def test_binary_request_keeps_url_original_and_nginx_and_common_format() -> None:
    # what Apache/nginx log when a TLS ClientHello reaches the plain-HTTP port
    junk = parse_access_line('198.51.100.7 - - [10/Oct/2023:13:55:36 -0700] "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01'
                             '\\xfc\\x03\\x03" 400 226 "-" "-"', server="nginx")
    assert (junk.module, junk.dataset) == ("nginx", "nginx.access")
    assert junk.fields["url"] == {"original": "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03"}
    assert "request" not in junk.fields["http"] and "user_agent" not in junk.fields
    assert junk.timestamp == datetime(2023, 10, 10, 20, 55, 36, tzinfo=UTC)
    common = parse_access_line('127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 '
                               '2326')  # the Apache documentation's example
    assert common.fields["user"] == {"name": "frank"} and common.fields["related"]["user"] == ["frank"]
    assert common.fields["url"] == {"original": "/apache_pb.gif", "path": "/apache_pb.gif"}
    assert common.fields["http"] == {"version": "1.0", "request": {"method": "GET"},
                                     "response": {"status_code": 200, "body": {"bytes": 2326}}}
    assert common.timestamp == datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC)
    forwarded = parse_access_line('10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET http://example.org:8080/a?b=1 '
                                  'HTTP/1.1" 304 - "-" "curl/8.0" "203.0.113.5"', server="nginx")
    assert forwarded.fields["url"] == {"original": "http://example.org:8080/a?b=1", "scheme": "http",
                                       "domain": "example.org", "port": 8080, "path": "/a", "query": "b=1"}
    assert forwarded.fields["http"]["response"]["body"]["bytes"] == 0
    with pytest.raises(ValueError, match="server must be one of"):
        parse_access_line(common.fields["url"]["original"], server="iis")  # type: ignore[arg-type]


@pytest.mark.parametrize("line", ["", "GET / HTTP/1.1", "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] GET / 200 1",
                                  '127.0.0.1 - - [99/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1'])
def test_bad_access_lines_say_what_was_expected(line: str) -> None:
    with pytest.raises(ParseError, match="expected"):
        parse_access_line(line)


def test_every_loghub_apache_error_line_matches_its_structured_row(shared_data: Path) -> None:
    log = shared_data / "loghub" / "Apache" / "Apache_2k.log"
    client = re.compile(r"\[client ([^\]]+)\] ")
    levels = Counter()
    with log.open(encoding="utf-8") as lines, log.with_name("Apache_2k.log_structured.csv").open(
            newline="", encoding="utf-8") as rows:
        for number, (line, row) in enumerate(zip(lines, csv.DictReader(rows), strict=True), 1):
            mapped = parse_apache_error_line(line)
            where = f"line {number}"
            assert (mapped.module, mapped.dataset) == ("apache", "apache.error"), where
            assert mapped.timestamp == datetime.strptime(row["Time"], "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
            assert mapped.fields["log"]["level"] == row["Level"], where
            content = row["Content"]
            peer = client.match(content)
            if peer:
                assert mapped.fields["source"]["ip"] == peer.group(1), where
                content = content[peer.end():]
            assert mapped.fields["message"].strip() == content.strip(), where
            levels[row["Level"]] += 1
    assert levels == {"notice": 1405, "error": 595}


def test_apache_24_error_line() -> None:
    mapped = parse_apache_error_line(
        "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:5000] "
        "AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico")
    assert mapped.timestamp == datetime(2000, 10, 11, 14, 32, 52, 123456, tzinfo=UTC)
    assert mapped.fields["source"] == {"address": "72.15.99.187", "ip": "72.15.99.187", "port": 5000}
    assert mapped.fields["process"] == {"pid": 35708, "thread": {"id": 4328636416}}
    assert mapped.fields["apache"] == {"error": {"module": "core"}}
    assert mapped.fields["error"] == {"code": "AH00128"}
    assert mapped.fields["message"] == "File does not exist: /usr/local/apache2/htdocs/favicon.ico"
    with pytest.raises(ParseError, match="expected '\\[Www Mmm dd HH:MM:SS yyyy\\] \\[level\\] message'"):
        parse_apache_error_line("192.168.4.25 - - [22/Dec/2016:16:30:52 +0300] \"GET / HTTP/1.1\" 200 1")
