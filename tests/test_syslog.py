"""The syslog receiver on real sockets (127.0.0.1), and the header parsers on the RFCs' own examples.

Senders: raw sockets written by hand to the RFCs, util-linux ``logger`` as a third-party client,
and a TLS client against a throwaway self-signed certificate made with the ``openssl`` CLI.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from civicsoc.event import Event
from collectors.base import CollectorContext, DeadLetter, Item, ParseError
from collectors.ecs.syslog import parse_rfc3164, parse_rfc5424, parse_syslog_message
from collectors.syslog import Framer, ListenError, SyslogServer, TlsConfig

CONTEXT = CollectorContext(tenant="agency-a", agent_name="collector-1")
NOW = datetime(2003, 10, 12, tzinfo=UTC)
WAIT = 15.0


# --- the header parsers on RFC 5424 section 6.5 and RFC 3164 section 5.4 examples ------------------

def test_rfc5424_examples() -> None:
    first = parse_rfc5424("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root' failed "
                          "for lonvick on /dev/pts/8")
    assert first.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert first.fields["log"]["syslog"] == {
        "version": "1", "priority": 34, "facility": {"code": 4, "name": "auth"},
        "severity": {"code": 2, "name": "critical"}, "hostname": "mymachine.example.com", "msgid": "ID47",
        "appname": "su"}
    assert first.fields["message"] == "'su root' failed for lonvick on /dev/pts/8"  # the BOM is not text
    assert (first.module, first.dataset) == ("system", "system.auth")
    second = parse_rfc5424("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make "
                           "the do-nuts.")
    assert second.timestamp == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert second.fields["process"] == {"name": "myproc", "pid": 8710}
    assert second.fields["log"]["syslog"]["severity"] == {"code": 5, "name": "notice"}
    assert second.fields["log"]["level"] == "notice"
    fourth = parse_rfc5424('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 '
                           'iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]')
    assert fourth.fields["log"]["syslog"]["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"}}
    assert fourth.fields["message"] == ""
    escaped = parse_rfc5424('<14>1 - - app - - [x@1 a="q\\"b\\\\s\\]e"] m', now=NOW)
    assert escaped.fields["log"]["syslog"]["structured_data"] == {"x@1": {"a": 'q"b\\s]e'}}
    assert escaped.timestamp == NOW and "host" not in escaped.fields
    with pytest.raises(ParseError, match="RFC 5424: expected"):
        parse_rfc5424("<14>1 - - app - - [x@1 a=unquoted] m", now=NOW)
    with pytest.raises(ParseError, match="RFC 5424: expected"):
        parse_rfc5424("<14>1 - - app - - - nil timestamp and no now")


def test_rfc3164_examples() -> None:
    su = parse_rfc3164("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", now=NOW)
    assert su.timestamp == datetime(2003, 10, 11, 22, 14, 15, tzinfo=UTC)
    assert su.fields["host"] == {"hostname": "mymachine"} and su.fields["process"] == {"name": "su"}
    assert su.fields["log"]["syslog"]["facility"] == {"code": 4, "name": "auth"}
    bfg = parse_rfc3164("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", now=NOW)
    assert bfg.fields["host"] == {"hostname": "10.0.0.99"} and bfg.fields["message"] == "Use the BFG!"
    assert bfg.timestamp == datetime(2003, 2, 5, 17, 32, 18, tzinfo=UTC)
    with pytest.raises(ParseError, match="RFC 3164: expected 'Mmm dd HH:MM:SS host tag: message'"):
        parse_rfc3164("<13>Use the BFG!", now=NOW)


def test_network_message_edge_cases() -> None:
    invalid = parse_syslog_message(b"<13>Oct 11 22:14:15 h app: caf\xe9 \xff", now=NOW, peer="192.0.2.1:514")
    assert invalid.fields["message"] == "caf\\xe9 \\xff" and invalid.fields["tags"] == ["syslog_invalid_utf8"]
    assert invalid.fields["log"]["source"] == {"address": "192.0.2.1:514"}
    headerless = parse_syslog_message(b"<86>something without a header\r\n", now=NOW)
    assert headerless.timestamp == NOW and headerless.fields["message"] == "something without a header"
    assert headerless.fields["tags"] == ["syslog_header_unparsed"]
    assert headerless.dataset == "system.auth"  # facility 10 (authpriv)
    for garbage, expected in ((b"", "empty syslog message"), (b"\n", "empty syslog message"),
                              (b"GET / HTTP/1.1", "not a syslog message"), (b"<192>x", "not a syslog message"),
                              (b"<abc>Oct 11 22:14:15 h app: m", "not a syslog message")):
        with pytest.raises(ParseError, match=expected):
            parse_syslog_message(garbage, now=NOW)


# --- the receiver ----------------------------------------------------------------------------------

class Collected:
    """A sink that keeps what it gets and lets a test wait for it."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.items: list[Item] = []
        self.gate = gate
        self.entered = 0
        """Calls that reached the sink, including one held at the gate."""
        self._condition = threading.Condition()

    def __call__(self, item: Item) -> None:
        self.entered += 1
        if self.gate is not None:
            self.gate.wait()
        with self._condition:
            self.items.append(item)
            self._condition.notify_all()

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Item]:
        with self._condition:
            arrived = self._condition.wait_for(lambda: len(self.items) >= count, timeout)
            assert arrived, f"expected {count} items, got {len(self.items)}: {self.items[-3:]}"
            return list(self.items)

    def events(self) -> list[Event]:
        return [item.value for item in self.items if isinstance(item.value, Event)]


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[SyslogServer, Collected]]]:
    servers: list[SyslogServer] = []

    def start(sink: Collected | None = None, **options: Any) -> tuple[SyslogServer, Collected]:
        collected = sink or Collected()
        options.setdefault("udp_port", 0)
        options.setdefault("tcp_port", 0)
        server = SyslogServer(CONTEXT, collected, **options)
        server.start()
        servers.append(server)
        return server, collected

    yield start
    for server in servers:
        server.stop(timeout=10)


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_udp_rfc3164_and_rfc5424(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve(tcp_port=None)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    address = ("127.0.0.1", server.bound_ports["udp"])
    bsd = b"<38>Oct 11 22:14:15 bastion sshd[4242]: Invalid user oracle from 203.0.113.50 port 41000"
    ietf = (b"<86>1 2003-10-11T22:14:15.003Z bastion sudo 77 - [meta sequenceId=\"1\"] alice : TTY=pts/0 ; "
            b"PWD=/root ; USER=root ; COMMAND=/usr/bin/id")
    for datagram in (bsd, ietf, bsd):
        client.sendto(datagram, address)
    peer = f"127.0.0.1:{client.getsockname()[1]}"
    items = sink.wait_for(3)
    client.close()
    events = [item.value for item in items]
    assert all(isinstance(e, Event) for e in events) and all(item.checkpoint is None for item in items)
    first, second, third = events
    assert first.get("log.source.address") == peer
    assert first.get("event.action") == "invalid_user" and first.get("source.ip") == "203.0.113.50"
    assert first.get("user.name") == "oracle" and first.get("process.pid") == 4242
    assert first.get("event.dataset") == "system.auth" and first.get("organization.id") == "agency-a"
    assert first.get("event.original") == bsd.decode()
    assert first.get("agent.name") == "collector-1"
    assert second.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert second.get("process.command_line") == "/usr/bin/id"
    assert second.get("log.syslog.structured_data") == {"meta": {"sequenceId": "1"}}
    assert second.get("log.syslog.facility.name") == "authpriv"
    assert first.id != third.id  # the same bytes twice are two messages
    counters = server.counters()["udp"]
    assert (counters.received, counters.parsed, counters.dead_lettered) == (3, 3, 0)


def _tcp_send(port: int, *chunks: bytes, pause: float = 0.0) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        for chunk in chunks:
            conn.sendall(chunk)
            if pause:
                time.sleep(pause)


def test_tcp_newline_framing_lf_crlf_nul(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve(udp_port=None)
    stream = (b"<13>Oct 11 22:14:15 h app: one\n<13>Oct 11 22:14:15 h app: two\r\n"
              b"<13>Oct 11 22:14:15 h app: three\x00<13>Oct 11 22:14:15 h app: four\x00\n"
              b"<13>Oct 11 22:14:15 h app: five")  # the last has no terminator: ends with the connection
    _tcp_send(server.bound_ports["tcp"], *[stream[i:i + 7] for i in range(0, len(stream), 7)])
    sink.wait_for(5)
    assert [e.get("message") for e in sink.events()] == ["one", "two", "three", "four", "five"]
    assert server.counters()["tcp"].connections == 1


def test_tcp_octet_counting_keeps_multiline_messages(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve(udp_port=None)
    messages = [b"<13>1 2003-10-11T22:14:15Z h app - - - line one\nline two", b"<13>Oct 11 22:14:15 h app: second",
                "<13>1 2003-10-11T22:14:15Z h app - - - d\u00e9j\u00e0 vu".encode()]
    stream = b"".join(str(len(m)).encode() + b" " + m for m in messages)
    _tcp_send(server.bound_ports["tcp"], *[stream[i:i + 1] for i in range(len(stream))])  # byte by byte
    sink.wait_for(3)
    assert [e.get("message") for e in sink.events()] == ["line one\nline two", "second", "d\u00e9j\u00e0 vu"]


def test_logger_as_a_third_party_client(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    if shutil.which("logger") is None:
        pytest.skip("util-linux logger not installed")
    local_zone = datetime.now().astimezone().tzinfo
    server, sink = serve(tz=local_zone)  # logger writes RFC 3164 times in local time
    ports = server.bound_ports
    runs = [
        (["-T", "--rfc5424", "--msgid", "M1", "--sd-id", "civicsoc@32473", "--sd-param", 'case="tcp"'], ports["tcp"]),
        (["-T", "--rfc5424", "--octet-count"], ports["tcp"]),
        (["-d", "--rfc5424"], ports["udp"]),
        (["-T", "--rfc3164"], ports["tcp"]),
        (["-d", "--rfc3164"], ports["udp"]),
    ]
    pids = []
    for options, port in runs:
        sent = datetime.now(UTC)
        process = subprocess.Popen(["logger", "-n", "127.0.0.1", "-P", str(port), "-t", "sshd", "-i", *options,
                                    "Accepted password for alice from 192.0.2.10 port 50000 ssh2"])
        assert process.wait(timeout=10) == 0
        pids.append((process.pid, sent))
        sink.wait_for(len(pids))  # one at a time: UDP and TCP arrive in any order otherwise
    hostname = socket.gethostname().split(".")[0]
    for event, (pid, sent) in zip(sink.events(), pids, strict=True):
        assert event.get("process.pid") == pid  # -i: logger's own PID
        assert event.get("host.hostname").split(".")[0] == hostname
        assert event.get("event.action") == "ssh_login" and event.get("event.outcome") == "success"
        assert event.get("user.name") == "alice" and event.get("source.port") == 50000
        assert event.get("log.syslog.facility.name") == "user" and event.get("log.syslog.severity.code") == 5
        assert abs(event.timestamp - sent) < timedelta(seconds=2)
    first = sink.events()[0]
    assert first.get("log.syslog.msgid") == "M1"
    assert first.get("log.syslog.structured_data")["civicsoc@32473"] == {"case": "tcp"}
    counters = server.counters()
    assert counters["tcp"].parsed == 3 and counters["udp"].parsed == 2


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_tls_octet_counting_and_newline(serve: Callable[..., tuple[SyslogServer, Collected]],
                                        certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server, sink = serve(udp_port=None, tcp_port=None, tls=TlsConfig(certfile=cert, keyfile=key, port=0))
    port = server.bound_ports["tls"]
    client_context = ssl.create_default_context(cafile=str(cert))
    message = b"<38>1 2024-03-01T10:00:00.5+01:00 bastion sshd 99 - - Failed password for root from 198.51.100.4 " \
              b"port 2200 ssh2"
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            client_context.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(str(len(message)).encode() + b" " + message)
        conn.sendall(b"17 <13>1 - - -")  # split frame: header in one record, rest in the next
        conn.sendall(b" - - -")
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            client_context.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(b"<13>Mar  1 10:00:00 h app: over tls\n")
    # a plain-text client on the TLS port fails the handshake; the server carries on
    with socket.create_connection(("127.0.0.1", port)) as plain:
        plain.sendall(b"<13>Mar  1 10:00:00 h app: not encrypted\n")
        plain.settimeout(WAIT)
        with contextlib.suppress(ConnectionResetError):  # read the server's alert, if any, up to its close
            while plain.recv(4096):
                pass
    items = sink.wait_for(3)
    events = [item.value for item in items if isinstance(item.value, Event)]
    ietf = next(e for e in events if e.get("event.action") == "ssh_login")
    assert ietf.timestamp == datetime(2024, 3, 1, 9, 0, 0, 500000, tzinfo=UTC)
    assert ietf.get("source.ip") == "198.51.100.4" and ietf.get("event.outcome") == "failure"
    assert any(e.get("message") == "over tls" for e in events)
    nil = next(e for e in events if e.get("log.syslog.version") == "1" and e.get("message") == "")  # all NILVALUE
    assert "host" not in nil.fields and abs(nil.timestamp - datetime.now(UTC)) < timedelta(seconds=WAIT)
    _wait_until(lambda: server.counters()["tls"].errors == 1, "the failed handshake to be counted")
    assert server.counters()["tls"].connections == 3


def test_garbage_is_dead_lettered_or_truncated_and_serving_goes_on(
        serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve(udp_port=None)
    port = server.bound_ports["tcp"]
    huge = b"<13>Oct 11 22:14:15 h app: " + b"\xc3\xa9" * 500_000  # 1 MB of "é" (2 bytes each)
    _tcp_send(port, huge[:300_000], huge[300_000:] + b"\n",
              b"<13>Oct 11 22:14:15 h app: bad \xff byte\n", b"\n", b"this is not syslog\n",
              b"<13>Oct 11 22:14:15 h app: still serving\n")
    items = sink.wait_for(5)
    truncated, invalid, empty, junk, good = (item.value for item in items)
    assert isinstance(truncated, Event)
    assert truncated.get("tags") == ["syslog_message_truncated"]
    assert "65536" in truncated.get("error.message")
    text = truncated.get("message")
    assert set(text) == {"\u00e9"} and len(text.encode()) <= 65536 - len(b"<13>Oct 11 22:14:15 h app: ")
    assert isinstance(invalid, Event) and invalid.get("message") == "bad \\xff byte"
    assert isinstance(empty, DeadLetter) and "empty syslog message" in empty.reason
    assert isinstance(junk, DeadLetter) and "expected '<PRI>'" in junk.reason and junk.raw == "this is not syslog"
    assert f"syslog-tcp://127.0.0.1:{port} from 127.0.0.1:" in junk.location
    assert isinstance(good, Event) and good.get("message") == "still serving"
    counters = server.counters()["tcp"]
    assert (counters.received, counters.parsed, counters.dead_lettered, counters.oversized) == (5, 3, 2, 1)


def test_oversized_and_broken_octet_frames(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve(udp_port=None, max_message_size=1024)
    port = server.bound_ports["tcp"]
    big = b"<13>Oct 11 22:14:15 h app: " + b"x" * 200_000
    after = b"<13>Oct 11 22:14:15 h app: after"
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(str(len(big)).encode() + b" " + big + str(len(after)).encode() + b" " + after)
        conn.sendall(b"nonsense that is no frame header")
        conn.settimeout(WAIT)
        assert conn.recv(10) == b""  # the server closed this connection: the framing cannot be trusted
    _tcp_send(port, b"5 <13>x")  # a new connection is served
    items = sink.wait_for(4)
    cut, next_frame, broken, fresh = (item.value for item in items)
    assert isinstance(cut, Event) and cut.get("error.message") == (
        f"message of {len(big)} bytes truncated to max_message_size 1024")
    assert len(cut.get("event.original")) == 1024
    assert isinstance(next_frame, Event) and next_frame.get("message") == "after"
    assert isinstance(broken, DeadLetter) and "octet-counting framing broken" in broken.reason
    assert isinstance(fresh, Event) and fresh.get("message") == "x"


def test_udp_oversized_datagram_is_truncated(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve(tcp_port=None, max_message_size=2048)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"<13>Oct 11 22:14:15 h app: " + b"y" * 60_000, ("127.0.0.1", server.bound_ports["udp"]))
        client.sendto(b"<13>Oct 11 22:14:15 h app: small", ("127.0.0.1", server.bound_ports["udp"]))
    cut, small = (item.value for item in sink.wait_for(2))
    assert cut.get("error.message") == "message of 60027 bytes truncated to max_message_size 2048"
    assert small.get("message") == "small"
    assert server.counters()["udp"].oversized == 1


def test_a_blocked_sink_stops_reading_from_tcp(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    """Backpressure: while the sink blocks, the server stops reading; the sender's socket fills up
    instead of the server's memory. Released, every message arrives, in order."""
    gate = threading.Event()
    server, sink = serve(Collected(gate), udp_port=None, queue_size=2, max_message_size=8192)
    messages = [b"<13>Oct 11 22:14:15 h app: %06d " % number + b"z" * 4000 + b"\n" for number in range(6000)]
    payload = b"".join(messages)  # 24 MB: more than loopback's socket buffers hold
    conn = socket.create_connection(("127.0.0.1", server.bound_ports["tcp"]))
    conn.setblocking(False)
    sent = stalls = 0
    while sent < len(payload) and stalls < 5:
        try:
            sent += conn.send(payload[sent:sent + 65536])
            stalls = 0
        except BlockingIOError:
            stalls += 1
            time.sleep(0.1)
    assert sent < len(payload), "the server took everything while its sink was blocked"
    taken = server.counters()["tcp"]
    assert taken.received <= 4  # one in the sink, two queued, one waiting to be queued
    gate.set()
    conn.setblocking(True)
    conn.sendall(payload[sent:])
    conn.close()
    items = sink.wait_for(len(messages), timeout=60)
    assert [item.value.get("message")[:6] for item in items] == [f"{n:06d}" for n in range(6000)]


def test_stop_drains_what_arrived(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve()
    ports = server.bound_ports
    conn = socket.create_connection(("127.0.0.1", ports["tcp"]))
    _wait_until(lambda: server.counters()["tcp"].connections == 1, "the connection to be accepted")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for number in range(50):
            client.sendto(b"<13>Oct 11 22:14:15 h app: udp %d" % number, ("127.0.0.1", ports["udp"]))
            conn.sendall(b"<13>Oct 11 22:14:15 h app: tcp %d\n" % number)
    server.stop(drain=True)
    conn.close()
    messages = {item.value.get("message") for item in sink.items}
    assert messages == {f"{kind} {n}" for kind in ("udp", "tcp") for n in range(50)}


def test_stop_without_drain_discards_and_counts(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    gate = threading.Event()
    server, sink = serve(Collected(gate), tcp_port=None, queue_size=10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for number in range(5):
            client.sendto(b"<13>Oct 11 22:14:15 h app: %d" % number, ("127.0.0.1", server.bound_ports["udp"]))
    _wait_until(lambda: server.counters()["udp"].received == 5, "5 datagrams")
    _wait_until(lambda: sink.entered == 1, "the sink to hold the first item")
    stopper = threading.Thread(target=server.stop, kwargs={"drain": False, "timeout": WAIT})
    stopper.start()
    time.sleep(0.3)
    gate.set()  # the sink returns from the one item it held; the rest is dropped
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert len(sink.items) == 1 and server.counters()["udp"].discarded == 4


def test_connection_limit_and_port_in_use(serve: Callable[..., tuple[SyslogServer, Collected]]) -> None:
    server, sink = serve(udp_port=None, max_connections=1)
    port = server.bound_ports["tcp"]
    first = socket.create_connection(("127.0.0.1", port))
    _wait_until(lambda: server.counters()["tcp"].connections == 1, "the first connection")
    with socket.create_connection(("127.0.0.1", port)) as second:
        second.settimeout(WAIT)
        assert second.recv(10) == b""  # closed at once
    first.sendall(b"<13>Oct 11 22:14:15 h app: first still works\n")
    assert sink.wait_for(1)[0].value.get("message") == "first still works"
    assert server.counters()["tcp"].refused == 1
    first.close()
    with pytest.raises(ListenError, match=f"syslog tcp: cannot listen on 127.0.0.1:{port}"):
        SyslogServer(CONTEXT, sink, udp_port=None, tcp_port=port).start()


def test_framer_memory_stays_bounded() -> None:
    """A line that never ends: the framer holds at most max_size plus one chunk, whatever arrives."""
    framer = Framer(4096)
    assert framer.feed(b"<13>Oct 11 22:14:15 h app: ") == []
    frames = []
    for _ in range(1000):  # 64 MB without a line break
        frames += framer.feed(b"a" * 65536)
        assert len(framer._buffer) <= 4096 + 65536
    assert len(frames) == 1 and frames[0].oversized == -1 and len(frames[0].data) == 4096
    assert framer.feed(b"tail\n<13>Oct 11 22:14:15 h app: next\n") == [
        type(frames[0])(b"<13>Oct 11 22:14:15 h app: next")]
