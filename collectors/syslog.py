"""The syslog receiver: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425) listeners that turn each
message into an ``Item`` for a ``Sink``.

Threads, not asyncio: the ``Sink`` may block (that is how the shipper applies backpressure), and a
blocking call is exactly what a thread per TCP connection absorbs — the connection's thread stops
calling ``recv``, the kernel's receive window fills and TCP slows the sender, while other
connections keep going. asyncio would need every sink call pushed to an executor and its own flow
control on top. Connections are bounded (``max_connections``), so are threads.

One dispatcher thread calls the sink, so the sink need not be thread-safe; between the listeners
and it sits a bounded queue (``queue_size`` items): memory stays bounded by ``queue_size`` events
plus one ``max_message_size`` buffer per connection, never by what senders push.

- TCP framing is detected per connection from its first bytes: ``123 <PRI>...`` is octet counting
  (RFC 6587 3.4.1), anything else is newline-delimited (LF; CRLF and NUL also end a frame).
- A message longer than ``max_message_size`` is cut there; the rest is read and dropped (so the
  connection keeps going), the event carries ``error.message`` and the tag
  ``syslog_message_truncated``, and ``oversized`` is counted.
- Input that is not syslog at all (no ``<PRI>``, no header; an empty frame) becomes a
  ``DeadLetter`` with the listener, peer and message number; a broken octet-counting header cannot
  be resynchronised, so it is dead-lettered and that connection closed.
- The sender's address is ``log.source.address`` (``ip:port``), where Elastic's syslog inputs put
  it; ``source.*`` is left to the message (the SSH client of an sshd line).
- Syslog cannot be replayed, so items carry no checkpoint (the shipper spools them instead), and
  the event id hashes listener, peer, receive time, message number and the message bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import queue
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import NamedTuple

from civicsoc.errors import CivicsocError
from collectors.base import CollectorContext, DeadLetter, Item, ParseError, Sink
from collectors.ecs.syslog import parse_syslog_message

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5514
DEFAULT_TLS_PORT = 6514
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
TRUNCATED_TAG = "syslog_message_truncated"
RECV_SIZE = 64 * 1024
UDP_MAX_DATAGRAM = 65536
STOP_DRAIN_LIMIT = 1024 * 1024
"""On ``stop(drain=True)``, at most this many already-arrived bytes are still read per connection."""

_LINE_END = re.compile(rb"\r?\n|\x00(?:\r?\n)?")
_OCTET_HEADER = re.compile(rb"([1-9][0-9]{0,9}) ")
_OCTET_PARTIAL = re.compile(rb"[1-9][0-9]{0,9}")
_OCTET_PADDING = re.compile(rb"[\r\n\x00]+")


class ListenError(CivicsocError):
    """A listener could not be opened (address in use, no permission, bad certificate ...)."""


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """RFC 5425 syslog over TLS, on its own port. With ``client_ca_file``, senders must present
    a certificate signed by it (mutual TLS, as RFC 5425 recommends)."""

    certfile: str | Path
    keyfile: str | Path
    port: int = DEFAULT_TLS_PORT
    client_ca_file: str | Path | None = None
    handshake_timeout: float = 10.0

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # No TLS 1.3 session tickets: syslog senders write and never read, so a ticket would sit
        # unread in the sender's socket and its close would become a reset that can discard the
        # last messages still in our receive buffer.
        context.num_tickets = 0
        try:
            context.load_cert_chain(str(self.certfile), str(self.keyfile))
            if self.client_ca_file is not None:
                context.load_verify_locations(str(self.client_ca_file))
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise ListenError(
                f"syslog tls: cannot load certificate {self.certfile} / key {self.keyfile}: {exc}"
            ) from exc
        return context


@dataclass(frozen=True, slots=True)
class TransportCounters:
    """What one transport (udp, tcp, tls) did since start."""

    received: int = 0
    """Messages (datagrams, frames) taken off the wire, including bad ones."""
    parsed: int = 0
    """Messages that became events (truncated ones included)."""
    dead_lettered: int = 0
    oversized: int = 0
    """Messages longer than ``max_message_size`` (truncated)."""
    bytes: int = 0
    connections: int = 0
    refused: int = 0
    """Connections closed at once because ``max_connections`` were open."""
    errors: int = 0
    """Connections that ended in a socket or TLS error (handshake failures included)."""
    discarded: int = 0
    """Items dropped by ``stop(drain=False)``."""
    sink_errors: int = 0
    """Items the sink raised on (logged with the exception)."""


@dataclass
class _Counters:
    values: dict[str, int] = field(default_factory=lambda: {f.name: 0 for f in fields(TransportCounters)})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            self.values[name] += amount

    def snapshot(self) -> TransportCounters:
        with self.lock:
            return TransportCounters(**self.values)


class Frame(NamedTuple):
    data: bytes
    oversized: int | None = None
    """The message's full length when it was cut (-1: not known, a line that never ended)."""
    error: str | None = None
    """Why the bytes are not a message (broken framing): they go to the dead letters as they are."""


class Framer:
    """Splits a TCP byte stream into syslog frames; pure (no I/O), one per connection.

    Memory is bounded: at most ``max_size`` plus one received chunk is buffered, whatever the peer
    sends."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.mode: str | None = None  # "octet" | "line", decided by the first bytes
        self.broken = False
        self._buffer = bytearray()
        self._discarding = False  # line mode: dropping the rest of an overlong line
        self._expected: int | None = None  # octet mode: length of the frame being read
        self._skip = 0  # octet mode: bytes of an oversized frame still to drop

    def feed(self, chunk: bytes) -> list[Frame]:
        if self.broken:
            return []
        if self.mode is None:
            self._buffer += chunk
            start = _OCTET_PADDING.match(self._buffer)
            head = self._buffer[start.end():] if start else self._buffer
            if _OCTET_HEADER.match(head):
                self.mode = "octet"
            elif _OCTET_PARTIAL.fullmatch(head) is not None or not head:
                return []  # "12" so far: could still become "12 <13>..."
            else:
                self.mode = "line"
            chunk = bytes(self._buffer)
            self._buffer.clear()
        return self._feed_octets(chunk) if self.mode == "octet" else self._feed_lines(chunk)

    def finish(self) -> list[Frame]:
        """At the end of the stream: a last line without its line break is still a message."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        if self.broken or not rest or self._discarding:
            return []
        if self.mode == "octet":
            if _OCTET_PADDING.fullmatch(rest):
                return []
            expected = f"a frame of {self._expected} bytes" if self._expected is not None else "an octet-count header"
            return [Frame(rest, error=f"connection ended inside {expected} ({len(rest)} bytes received)")]
        return [Frame(rest)]

    def _feed_lines(self, chunk: bytes) -> list[Frame]:
        if self._discarding:
            end = _LINE_END.search(chunk)
            if end is None:
                return []
            chunk = chunk[end.end():]
            self._discarding = False
        buffer = self._buffer
        buffer += chunk
        frames: list[Frame] = []
        position = 0
        limit = self.max_size
        while (end := _LINE_END.search(buffer, position)) is not None:
            length = end.start() - position
            if length > limit:
                frames.append(Frame(bytes(buffer[position:position + limit]), oversized=length))
            else:
                frames.append(Frame(bytes(buffer[position:end.start()])))
            position = end.end()
        if position:
            del buffer[:position]
        if len(buffer) > limit:  # no line end within the limit: cut here, drop the rest of that line
            frames.append(Frame(bytes(buffer[:limit]), oversized=-1))
            buffer.clear()
            self._discarding = True
        return frames

    def _feed_octets(self, chunk: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += chunk
        frames: list[Frame] = []
        limit = self.max_size
        while True:
            if self._skip:
                dropped = min(self._skip, len(buffer))
                del buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    break
            if self._expected is None:
                padding = _OCTET_PADDING.match(buffer)  # some senders end octet frames with LF too
                if padding is not None:
                    del buffer[:padding.end()]
                header = _OCTET_HEADER.match(buffer)
                if header is None:
                    if not buffer or _OCTET_PARTIAL.fullmatch(buffer) is not None:
                        break
                    self.broken = True
                    frames.append(Frame(bytes(buffer[:limit]), error=(
                        "octet-counting framing broken: expected 'MSG-LEN SP' (RFC 6587 3.4.1), got "
                        f"{bytes(buffer[:20])!r}; connection closed")))
                    buffer.clear()
                    break
                self._expected = int(header.group(1))
                del buffer[:header.end()]
            expected = self._expected
            if expected > limit:
                if len(buffer) < limit:
                    break
                frames.append(Frame(bytes(buffer[:limit]), oversized=expected))
                del buffer[:limit]
                self._skip = expected - limit
                self._expected = None
                continue
            if len(buffer) < expected:
                break
            frames.append(Frame(bytes(buffer[:expected])))
            del buffer[:expected]
            self._expected = None
        return frames


_STOP = object()


class SyslogServer:
    """Listens for syslog on UDP, TCP and (optionally) TLS and hands every message to ``sink``.

    ``start()`` binds (errors raise ``ListenError`` at once) and runs the listeners in background
    threads; ``stop(drain=True)`` stops accepting, reads what already arrived, delivers everything
    queued to the sink and joins the threads. A port of 0 picks a free one: see ``bound_ports``.
    ``tz`` is the senders' zone for RFC 3164 timestamps, which carry none.
    """

    def __init__(
        self,
        context: CollectorContext,
        sink: Sink,
        *,
        host: str = DEFAULT_HOST,
        udp_port: int | None = DEFAULT_PORT,
        tcp_port: int | None = DEFAULT_PORT,
        tls: TlsConfig | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        tz: tzinfo = UTC,
        queue_size: int = 1024,
        max_connections: int = 256,
        poll_interval: float = 0.2,
    ) -> None:
        if max_message_size < 480:  # RFC 5426/5425: receivers must accept at least 480 (2048 SHOULD)
            raise ValueError(f"max_message_size must be at least 480 bytes, got {max_message_size}")
        self._context = context
        self._sink = sink
        self._host = host
        self._ports = {"udp": udp_port, "tcp": tcp_port, "tls": tls.port if tls else None}
        self._tls = tls
        self._max = max_message_size
        self._tz = tz
        self._max_connections = max_connections
        self._poll = poll_interval
        self._queue: queue.Queue[tuple[object, _Counters | None]] = queue.Queue(maxsize=queue_size)
        self._counters = {name: _Counters() for name in ("udp", "tcp", "tls")}
        self._sequence = itertools.count(1)
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._drain = True
        self._sockets: dict[str, socket.socket] = {}
        self._bound: dict[str, int] = {}
        self._listener_threads: list[threading.Thread] = []
        self._connection_threads: set[threading.Thread] = set()
        self._connections_lock = threading.Lock()
        self._dispatcher: threading.Thread | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            raise RuntimeError("SyslogServer.start() called twice")
        self._started = True
        if self._tls is not None:
            self._ssl_context = self._tls.context()
        try:
            for transport, port in self._ports.items():
                if port is not None:
                    self._sockets[transport] = self._bind(transport, port)
                    self._bound[transport] = self._sockets[transport].getsockname()[1]
        except BaseException:
            for sock in self._sockets.values():
                sock.close()
            raise
        self._dispatcher = threading.Thread(target=self._dispatch, name="syslog-dispatch", daemon=True)
        self._dispatcher.start()
        for transport, sock in self._sockets.items():
            target = self._serve_udp if transport == "udp" else self._accept
            thread = threading.Thread(target=target, args=(transport, sock), name=f"syslog-{transport}", daemon=True)
            self._listener_threads.append(thread)
            thread.start()

    def stop(self, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Stop listening. With ``drain``, messages that already arrived are read and delivered
        to the sink before this returns; without, queued items are dropped (and counted).
        Raises ``TimeoutError`` when threads are still busy after ``timeout`` (a sink that never
        returns)."""
        if not self._started or self._stopping.is_set():
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._drain = drain
        if not drain:
            self._abandon.set()
        self._stopping.set()
        for thread in self._listener_threads:
            thread.join(_remaining(deadline))
        with self._connections_lock:
            connection_threads = list(self._connection_threads)
        for thread in connection_threads:
            thread.join(_remaining(deadline))
        for sock in self._sockets.values():
            sock.close()
        if self._dispatcher is not None:
            with contextlib.suppress(queue.Full):  # if full, reported below: the dispatcher is stuck in the sink
                self._queue.put((_STOP, None), timeout=_remaining(deadline))
            self._dispatcher.join(_remaining(deadline))
        busy = [t.name for t in (*self._listener_threads, *connection_threads, self._dispatcher) if t and t.is_alive()]
        if busy:
            raise TimeoutError(f"syslog server: threads still busy after {timeout}s (is the sink blocked?): {busy}")

    def __enter__(self) -> SyslogServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def bound_ports(self) -> dict[str, int]:
        """The ports actually listened on, by transport (``udp``, ``tcp``, ``tls``)."""
        return dict(self._bound)

    def counters(self) -> dict[str, TransportCounters]:
        return {name: counters.snapshot() for name, counters in self._counters.items()}

    # --- listeners ---------------------------------------------------------------------------

    def _bind(self, transport: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        try:
            if transport == "udp":
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    with contextlib.suppress(OSError):  # the kernel caps it at net.core.rmem_max; the default works
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                    sock.bind((self._host, port))
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_server((self._host, port), family=family, backlog=128)
        except OSError as exc:
            raise ListenError(f"syslog {transport}: cannot listen on {self._host}:{port}: {exc}") from exc
        sock.settimeout(self._poll)
        return sock

    def _listener_id(self, transport: str) -> str:
        return f"syslog-{transport}://{self._host}:{self._bound[transport]}"

    def _serve_udp(self, transport: str, sock: socket.socket) -> None:
        counters = self._counters[transport]
        listener = self._listener_id(transport)
        while not self._stopping.is_set():
            try:
                data, address = sock.recvfrom(UDP_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                counters.add("errors")
                break
            self._datagram(transport, listener, counters, data, address)
        if self._drain:
            sock.setblocking(False)  # datagrams the kernel already holds were sent before stop
            while True:
                try:
                    data, address = sock.recvfrom(UDP_MAX_DATAGRAM)
                except (BlockingIOError, OSError):
                    break
                self._datagram(transport, listener, counters, data, address)

    def _datagram(self, transport: str, listener: str, counters: _Counters, data: bytes,
                  address: tuple[object, ...]) -> None:
        counters.add("bytes", len(data))
        oversized = None
        if len(data) > self._max:
            oversized = len(data)
            data = data[:self._max]
        self._deliver(transport, listener, counters, _peer(address), Frame(data, oversized))

    def _accept(self, transport: str, sock: socket.socket) -> None:
        counters = self._counters[transport]
        while not self._stopping.is_set():
            try:
                conn, address = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                counters.add("errors")
                break
            with self._connections_lock:
                full = len(self._connection_threads) >= self._max_connections
            if full:
                counters.add("refused")
                conn.close()
                continue
            counters.add("connections")
            thread = threading.Thread(target=self._serve_connection, args=(transport, conn, _peer(address)),
                                      name=f"syslog-{transport}-{_peer(address)}", daemon=True)
            with self._connections_lock:
                self._connection_threads.add(thread)
            thread.start()

    def _serve_connection(self, transport: str, conn: socket.socket, peer: str) -> None:
        counters = self._counters[transport]
        listener = self._listener_id(transport)
        framer = Framer(self._max)
        try:
            if transport == "tls":
                assert self._ssl_context is not None and self._tls is not None
                conn.settimeout(self._tls.handshake_timeout)
                try:
                    conn = self._ssl_context.wrap_socket(conn, server_side=True)
                except OSError as exc:  # ssl.SSLError included
                    counters.add("errors")
                    log.warning("syslog tls: handshake with %s failed: %s", peer, exc)
                    return
            conn.settimeout(self._poll)
            ended = False  # the peer closed, or the connection failed
            while not ended and not self._stopping.is_set() and not framer.broken:
                try:
                    chunk = conn.recv(RECV_SIZE)
                except TimeoutError:
                    continue
                except OSError as exc:
                    counters.add("errors")
                    log.info("syslog %s: connection from %s ended: %s", transport, peer, exc)
                    ended = True
                    break
                if not chunk:
                    ended = True
                    break
                counters.add("bytes", len(chunk))
                for frame in framer.feed(chunk):
                    self._deliver(transport, listener, counters, peer, frame)
            if not ended and self._stopping.is_set() and self._drain and not framer.broken:
                self._read_remaining(conn, framer, transport, listener, counters, peer)
            for frame in framer.finish():
                self._deliver(transport, listener, counters, peer, frame)
        finally:
            conn.close()
            with self._connections_lock:
                self._connection_threads.discard(threading.current_thread())

    def _read_remaining(self, conn: socket.socket, framer: Framer, transport: str, listener: str,
                        counters: _Counters, peer: str) -> None:
        """On stop: what the peer sent before it was already in our receive buffer; take it."""
        conn.settimeout(0.05)
        taken = 0
        while taken < STOP_DRAIN_LIMIT and not framer.broken:
            try:
                chunk = conn.recv(RECV_SIZE)
            except (TimeoutError, BlockingIOError, OSError, ssl.SSLError):
                break
            if not chunk:
                break
            taken += len(chunk)
            counters.add("bytes", len(chunk))
            for frame in framer.feed(chunk):
                self._deliver(transport, listener, counters, peer, frame)

    # --- messages → items ----------------------------------------------------------------------

    def _deliver(self, transport: str, listener: str, counters: _Counters, peer: str, frame: Frame) -> None:
        received_ns = time.time_ns()
        number = next(self._sequence)
        counters.add("received")
        item = self._to_item(transport, listener, peer, frame, received_ns, number)
        if isinstance(item.value, DeadLetter):
            counters.add("dead_lettered")
        else:
            counters.add("parsed")
        if frame.oversized is not None:
            counters.add("oversized")
        self._put(item, counters)

    def _to_item(self, transport: str, listener: str, peer: str, frame: Frame, received_ns: int,
                 number: int) -> Item:
        data = frame.data
        location = f"{listener} from {peer} message {number}"
        if frame.error is not None:
            return Item(DeadLetter.of(location, frame.error, data))
        truncated = None
        if frame.oversized is not None:
            data = _cut_at_character(data)
            size = f"more than {self._max}" if frame.oversized < 0 else str(frame.oversized)
            truncated = f"message of {size} bytes truncated to max_message_size {self._max}"
        received = datetime.fromtimestamp(received_ns / 1e9, UTC)
        try:
            mapped = parse_syslog_message(data, now=received, tz=self._tz, peer=peer)
        except ParseError as exc:
            reason = f"{exc}" if truncated is None else f"{exc} ({truncated})"
            return Item(DeadLetter.of(location, reason, data))
        fields_ = mapped.fields
        if truncated is not None:
            fields_["error"] = {"message": truncated}
            fields_.setdefault("tags", []).append(TRUNCATED_TAG)
        digest = hashlib.blake2b(data, digest_size=8).hexdigest()
        event = self._context.event(
            fields_,
            timestamp=mapped.timestamp,
            source=listener,
            position=f"{peer}/{received_ns}/{number}/{digest}",
            module=mapped.module,
            dataset=mapped.dataset,
            original=data.decode("utf-8", "backslashreplace").rstrip("\r\n\x00"),
            ingested=received,
        )
        return Item(event)

    def _put(self, item: Item, counters: _Counters) -> None:
        """Blocks while the queue is full (backpressure reaches the socket); gives up only when
        ``stop(drain=False)`` abandons what is in flight."""
        while True:
            try:
                self._queue.put((item, counters), timeout=self._poll)
                return
            except queue.Full:
                if self._abandon.is_set():
                    counters.add("discarded")
                    return

    def _dispatch(self) -> None:
        while True:
            item, counters = self._queue.get()  # type: ignore[misc]
            if item is _STOP:
                return
            if self._abandon.is_set():
                counters.add("discarded")
                continue
            try:
                self._sink(item)
            except Exception:  # a failing sink must not kill the listener; it is logged, not hidden
                counters.add("sink_errors")
                log.exception("syslog: the sink failed on an item; it is lost")


def _peer(address: tuple[object, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _cut_at_character(data: bytes) -> bytes:
    """Drop a UTF-8 sequence the cut split in two, so a truncated message is not also 'invalid UTF-8'."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the start of the last character
            needed = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return data if needed <= back else data[:end - back]
    return data


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
