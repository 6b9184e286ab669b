"""Network captures (pcap, pcapng, a live interface) → ECS network events, dissected by tshark.

Events (``event.module: network_traffic``, as Elastic's Network Packet Capture integration):

=========================  ==========================================================================
``event.dataset``          one event per
=========================  ==========================================================================
network_traffic.flow       bidirectional flow (connection summary), emitted when it ends
network_traffic.dns        DNS message (query or answer; LLMNR and mDNS too)
network_traffic.http       HTTP request, HTTP response
network_traffic.tls        TLS ClientHello
network_traffic.kerberos   KDC exchange: AS-REQ, AS-REP, TGS-REQ, TGS-REP, KRB-ERROR
network_traffic.ntlm       NTLMSSP AUTHENTICATE (carried by SMB, DCERPC, HTTP...)
=========================  ==========================================================================

Flows. The key is the 5-tuple, either direction (ICMP and port-less traffic such as IP fragments: the
address pair and protocol). ``source`` is the sender of the first packet seen. Bytes are frame bytes
(``frame.len``), the unit of ``capinfos`` and ``tshark -z conv``. A flow ends on a RST or on FINs from
both sides (after a short linger that absorbs the last ACKs; a new SYN on the same tuple starts a new flow
at once), after ``flow_idle_timeout`` seconds of capture time without packets, when the table holds
``max_flows`` flows (the least recently active one is emitted to make room), or at the end of the capture.
Frames without IP (ARP, 802.11 management) belong to no flow.

Ids and checkpoints. ``source`` is ``pcap:<file identity>``, the identity a hash of the file's first
64 KiB and its size, so the same capture copied elsewhere gets the same ids. ``position`` is
``<frame>:<kind>``: the first frame of a flow (``17:flow``) or the frame of a message (``17:dns``,
``17:dns#1`` for a second message in the frame); ``event.sequence`` holds that frame. The checkpoint
offset is the *settled frame*: every event anchored before it has been emitted, because every flow that
started before it has ended. It is the first frame of the oldest open flow (or the next frame when none
is open), never the last frame read: a flow open at frame N is emitted later, and resuming at N would
cut it in two. A capture file is always dissected from its first frame — tshark cannot seek, and TCP
reassembly needs the earlier segments — so resuming means ``read_pcap(..., start_frame=offset)``: the
same events are rebuilt, those anchored before ``offset`` are skipped, and the few after it that were
already stored come again with the same ids (a no-op in the store).

Engines. ``tshark`` (the default for files) streams ``tshark -T fields`` output line by line;
``pyshark`` parses tshark's PDML through pyshark and is the one used for live capture
(``pyshark.LiveCapture``). Both hand the same field dicts to the same code, and ``bench/pcap.py``
measures them (the fields path is the faster by more than an order of magnitude, hence the default).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from collectors.base import Checkpoint, CollectorContext, DeadLetter, Item, Mapped, ParseError, Sink
from collectors.ecs.network import (
    FIELDS,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    FieldValues,
    FlowSummary,
    Packet,
    community_id,
    is_client_hello,
    is_ntlm_authenticate,
    kerberos_client,
    kerberos_message_type,
    map_dns,
    map_flow,
    map_http,
    map_kerberos,
    map_ntlm_authenticate,
    map_tls_client_hello,
    packet_from_values,
)

Engine = Literal["tshark", "pyshark"]

DEFAULT_FLOW_IDLE_TIMEOUT = 60.0
"""Seconds of capture time without a packet after which a flow is over (Packetbeat uses 30 s)."""
DEFAULT_MAX_FLOWS = 65_536
"""Open flows kept at most; a few hundred bytes each, so the table stays in the tens of MB."""
TCP_CLOSE_LINGER = 5.0
"""Seconds a closed TCP flow waits for its final ACKs and retransmitted FINs before it is emitted."""
IDENTITY_PREFIX_BYTES = 64 * 1024

PCAP_MAGICS = {
    bytes.fromhex("d4c3b2a1"): "pcap (microseconds, little-endian)",
    bytes.fromhex("a1b2c3d4"): "pcap (microseconds, big-endian)",
    bytes.fromhex("4d3cb2a1"): "pcap (nanoseconds, little-endian)",
    bytes.fromhex("a1b23c4d"): "pcap (nanoseconds, big-endian)",
    bytes.fromhex("34cdb2a1"): "pcap (Kuznetzov, little-endian)",
    bytes.fromhex("a1b2cd34"): "pcap (Kuznetzov, big-endian)",
    bytes.fromhex("0a0d0d0a"): "pcapng",
}
EXPECTED_MAGIC = "a pcap magic (a1b2c3d4, a1b23c4d, a1b2cd34 in either byte order) or pcapng's 0a0d0d0a"

AGGREGATOR = "\x1f"
"""Joins the occurrences of a field in one tshark column. tshark prints control characters inside
strings as escapes, so a raw unit separator can only be ours."""
TSHARK_COMMAND = ("tshark", "-n", "-T", "fields", "-E", "header=n", "-E", "separator=/t", "-E", "quote=n",
                  "-E", "occurrence=a", "-E", f"aggregator={AGGREGATOR}",
                  *[argument for field in FIELDS for argument in ("-e", field)])
PDML_COMMAND = ("tshark", "-l", "-n", "-T", "pdml")
"""Exactly what ``pyshark.FileCapture`` runs, so the packets are the ones a pyshark user gets."""
FIELD_SET = frozenset(FIELDS)
_TSHARK_NOISE = ('Running as user "root"',)


class CaptureError(Exception):
    """tshark stopped before the end of the capture (a truncated or damaged file): ``message`` is its own
    explanation. Raised by the engines after the last packet they could read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- files -----------------------------------------------------------------------------------------

def is_pcap(path: Path) -> bool:
    """True when the file starts with a pcap (either byte order, µs or ns) or pcapng magic."""
    with path.open("rb") as stream:
        return stream.read(4) in PCAP_MAGICS


def file_identity(path: Path) -> str:
    """A name for the capture's content: blake2b of its size and first 64 KiB (stable across copies)."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        prefix = stream.read(IDENTITY_PREFIX_BYTES)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(size.to_bytes(8, "big"))
    digest.update(prefix)
    return digest.hexdigest()


def _check_capture(path: Path) -> None:
    with path.open("rb") as stream:
        magic = stream.read(4)
    if magic not in PCAP_MAGICS:
        raise ParseError(f"{path}: not a capture file: expected {EXPECTED_MAGIC} in the first 4 bytes, "
                         f"found {magic.hex() or 'an empty file'}")


# --- engines: a capture → per-frame field dicts ----------------------------------------------------

def tshark_field_values(path: Path) -> Iterator[dict[str, list[str]]]:
    """Stream ``tshark -T fields`` for the capture, one field dict per frame, without holding the output.

    Raises ``CaptureError`` after the last readable frame if tshark reports the file damaged.
    """
    names = FIELDS
    for line in _tshark_lines([*TSHARK_COMMAND, "-r", str(path)], text=True):
        columns = line.rstrip("\n").split("\t")
        yield {name: column.split(AGGREGATOR) for name, column in zip(names, columns, strict=False) if column}


def _tshark_lines(command: list[str], *, text: bool) -> Iterator[Any]:
    """The output lines of a tshark run, streamed; ``CaptureError`` with tshark's words if it fails.

    Text lines end at ``\n`` only: a stray ``\r`` inside a value must not split a frame's row.
    """
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty stderr must not block tshark
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
                                   bufsize=1 << 16)
        assert process.stdout is not None
        stream = (io.TextIOWrapper(process.stdout, encoding="utf-8", errors="backslashreplace", newline="\n")
                  if text else process.stdout)
        try:
            yield from stream
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            stream.close()
        if returncode != 0:
            errors.seek(0)
            raise CaptureError(_tshark_message(errors.read().decode("utf-8", "backslashreplace"), returncode))


def _tshark_message(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and not line.startswith(_TSHARK_NOISE)]
    return " ".join(lines) or f"tshark exited with status {returncode}"


def pyshark_packet_values(packet: Any) -> dict[str, list[str]]:
    """The field dict of one pyshark packet: the ``show`` strings of ``FIELDS``, in dissection order.

    Reads the layers' ``_all_fields`` directly: pyshark's public ``get_field`` falls back to a scan of
    every field on each miss, and most wanted fields miss on most layers.
    """
    values: dict[str, list[str]] = {}
    for layer in (packet.frame_info, *packet.layers):
        for name, container in layer._all_fields.items():
            if name in FIELD_SET:
                shown = [field.show for field in container.all_fields if field.show is not None]
                if not shown:
                    continue
                existing = values.get(name)
                if existing is None:
                    values[name] = shown
                else:
                    existing.extend(shown)
    return values


def pyshark_field_values(path: Path) -> Iterator[dict[str, list[str]]]:
    """The same field dicts as ``tshark_field_values``, from pyshark's packets (tshark's PDML).

    The tshark process is ours and pyshark parses each ``<packet>`` element
    (``packet_from_xml_packet``, what ``FileCapture`` calls): ``FileCapture``'s own clean-up kills
    tshark after EOF through ``Popen.send_signal``, which can reap the child before asyncio's watcher
    does, and then reports a finished read as a crash with status 255 (pyshark 0.6, Python 3.11).
    """
    from pyshark.tshark.output_parser.tshark_xml import packet_from_xml_packet

    chunk: list[bytes] = []
    inside = False
    for line in _tshark_lines([*PDML_COMMAND, "-r", str(path)], text=False):
        stripped = line.strip()
        if stripped == b"<packet>":
            inside, chunk = True, [line]
        elif inside:
            chunk.append(line)
            if stripped == b"</packet>":
                inside = False
                yield pyshark_packet_values(packet_from_xml_packet(b"".join(chunk)))


ENGINES = {"tshark": tshark_field_values, "pyshark": pyshark_field_values}


# --- packets → events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Produced:
    """A mapped event and the frame/kind that anchor its id (``position = f"{frame}:{kind}"``)."""

    mapped: Mapped
    frame: int
    kind: str

    @property
    def position(self) -> str:
        return f"{self.frame}:{self.kind}"


class _Flow:
    __slots__ = ("close_reason", "closing", "community", "destination_bytes", "destination_packets", "done",
                 "end_ns", "fins", "first", "first_frame", "kerberos_client", "key", "last_ns", "protocol",
                 "source_bytes", "source_packets", "start_ns")

    def __init__(self, packet: Packet, key: tuple[Any, ...]) -> None:
        self.key = key
        self.first = packet
        self.first_frame = packet.number
        self.start_ns = self.end_ns = self.last_ns = packet.time_ns
        self.source_bytes = self.source_packets = self.destination_bytes = self.destination_packets = 0
        self.protocol = packet.protocol
        self.fins = 0
        self.closing = False
        self.close_reason = ""
        self.done = False
        self.community: str | None = None
        self.kerberos_client: tuple[str, str | None] | None = None

    @property
    def community_id(self) -> str:
        if self.community is None:
            first = self.first
            self.community = community_id(first.iana_number, first.source_ip, first.destination_ip,
                                          first.source_port, first.destination_port, first.icmp_type,
                                          first.icmp_code)
        return self.community

    def summary(self, reason: str) -> FlowSummary:
        first = self.first
        return FlowSummary(
            first_frame=self.first_frame, ip_version=first.ip_version, iana_number=first.iana_number,
            transport=first.transport, source_ip=first.source_ip, source_port=first.source_port,
            destination_ip=first.destination_ip, destination_port=first.destination_port, protocol=self.protocol,
            start_ns=self.start_ns, end_ns=self.end_ns, source_bytes=self.source_bytes,
            source_packets=self.source_packets, destination_bytes=self.destination_bytes,
            destination_packets=self.destination_packets, community_id=self.community_id, end_reason=reason,
        )


class TrafficAssembler:
    """Packets in, events out: messages at once, flows when they end. State: the bounded flow table.

    Time is capture time (the packets' own timestamps), so reading a file twice gives the same flows;
    a live capture also calls ``expire`` with the wall clock when no packet comes.
    """

    def __init__(self, *, flow_idle_timeout: float = DEFAULT_FLOW_IDLE_TIMEOUT,
                 max_flows: int = DEFAULT_MAX_FLOWS) -> None:
        if max_flows < 1:
            raise ValueError(f"max_flows must be at least 1, got {max_flows}")
        self.idle_ns = int(flow_idle_timeout * 1e9)
        self.linger_ns = int(min(TCP_CLOSE_LINGER, flow_idle_timeout) * 1e9)
        self.max_flows = max_flows
        self.flows: OrderedDict[tuple[Any, ...], _Flow] = OrderedDict()  # least recently active first
        self.open_by_start: OrderedDict[int, _Flow] = OrderedDict()  # by first frame, for the settled frame
        self.closing: deque[_Flow] = deque()
        self.last_frame = 0

    @property
    def settled_frame(self) -> int:
        """Every event anchored before this frame has been produced (see the module docstring)."""
        for first_frame in self.open_by_start:
            return first_frame
        return self.last_frame + 1

    def feed(self, values: FieldValues) -> list[Produced]:
        """The events this frame completes. Raises ``ParseError`` for an IP frame without addresses."""
        out: list[Produced] = []
        number = int(values["frame.number"][0])
        self.last_frame = number
        packet = packet_from_values(values)
        if packet is None:
            return out
        self.expire(packet.time_ns, out)
        flow = self._track(packet, out)
        if packet.protocol is not None:
            self._messages(packet, flow, out)
        return out

    def expire(self, now_ns: int, out: list[Produced]) -> None:
        """Emit flows idle since before ``now_ns - idle timeout`` and closed flows past their linger."""
        flows = self.flows
        idle_before = now_ns - self.idle_ns
        while flows:
            flow = flows[next(iter(flows))]
            if flow.last_ns >= idle_before:
                break
            self._finish(flow, "idle_timeout", out)
        closing = self.closing
        linger_before = now_ns - self.linger_ns
        while closing:
            flow = closing[0]
            if not flow.done:
                if flow.last_ns >= linger_before:
                    break
                self._finish(flow, flow.close_reason, out)
            closing.popleft()

    def flush(self) -> list[Produced]:
        """End every open flow (end of capture, or a live capture stopping)."""
        out: list[Produced] = []
        for flow in list(self.flows.values()):
            self._finish(flow, flow.close_reason or "end_of_capture", out)
        self.closing.clear()
        return out

    def _track(self, packet: Packet, out: list[Produced]) -> _Flow:
        source = (packet.source_ip, -1 if packet.source_port is None else packet.source_port)
        destination = (packet.destination_ip, -1 if packet.destination_port is None else packet.destination_port)
        key = (packet.iana_number, *source, *destination) if source <= destination else (
            packet.iana_number, *destination, *source)
        flows = self.flows
        flow = flows.get(key)
        flags = packet.tcp_flags
        if flow is not None and flow.closing and flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            self._finish(flow, flow.close_reason, out)  # the tuple is reused by a new connection
            flow = None
        if flow is None:
            flow = _Flow(packet, key)
            flows[key] = flow
            self.open_by_start[flow.first_frame] = flow
            if len(flows) > self.max_flows:
                self._finish(flows[next(iter(flows))], "evicted", out)
        else:
            flows.move_to_end(key)
            if flow.protocol is None:
                flow.protocol = packet.protocol
        first = flow.first
        forward = packet.source_ip == first.source_ip and packet.source_port == first.source_port
        if forward:
            flow.source_bytes += packet.length
            flow.source_packets += 1
        else:
            flow.destination_bytes += packet.length
            flow.destination_packets += 1
        if packet.time_ns > flow.end_ns:
            flow.end_ns = packet.time_ns
        flow.last_ns = packet.time_ns
        if flags & (TCP_FIN | TCP_RST) and not flow.closing:
            if flags & TCP_RST:
                flow.close_reason = "rst"
            else:
                flow.fins |= 1 if forward else 2
                if flow.fins == 3:
                    flow.close_reason = "fin"
            if flow.close_reason:
                flow.closing = True
                self.closing.append(flow)
        return flow

    def _finish(self, flow: _Flow, reason: str, out: list[Produced]) -> None:
        if flow.done:
            return
        flow.done = True
        if self.flows.get(flow.key) is flow:
            del self.flows[flow.key]
        self.open_by_start.pop(flow.first_frame, None)
        out.append(Produced(map_flow(flow.summary(reason)), flow.first_frame, "flow"))

    def _messages(self, packet: Packet, flow: _Flow, out: list[Produced]) -> None:
        values = packet.values
        number = packet.number
        produced: list[Produced] = []
        if "dns.id" in values:
            for index, mapped in enumerate(map_dns(packet)):
                produced.append(Produced(mapped, number, f"dns#{index}" if index else "dns"))
        if "http.request.method" in values or "http.response.code" in values:
            for index, mapped in enumerate(map_http(packet)):
                produced.append(Produced(mapped, number, f"http#{index}" if index else "http"))
        if "tls.handshake.type" in values and is_client_hello(packet):
            produced.append(Produced(map_tls_client_hello(packet), number, "tls"))
        if "kerberos.msg_type" in values:
            kind = kerberos_message_type(packet)
            if kind is not None:
                if kind in (10, 12):
                    flow.kerberos_client = kerberos_client(packet)
                produced.append(Produced(map_kerberos(packet, requested_by=flow.kerberos_client), number,
                                         "kerberos"))
        if "ntlmssp.messagetype" in values and is_ntlm_authenticate(packet):
            produced.append(Produced(map_ntlm_authenticate(packet), number, "ntlm"))
        for item in produced:
            item.mapped.fields["network"]["community_id"] = flow.community_id
        out.extend(produced)


# --- public API ------------------------------------------------------------------------------------

def read_pcap(
    path: Path,
    context: CollectorContext,
    *,
    engine: Engine = "tshark",
    flow_idle_timeout: float = DEFAULT_FLOW_IDLE_TIMEOUT,
    max_flows: int = DEFAULT_MAX_FLOWS,
    start_frame: int = 1,
) -> Iterator[Item]:
    """Events of a capture file, each with the checkpoint that is safe once it is stored.

    Raises ``ParseError`` (before any item) when the file is not a capture or tshark can read no frame
    of it. A capture damaged further on yields the events of everything before the damage, then one
    ``DeadLetter`` that says where and what tshark reported. ``start_frame`` resumes from a checkpoint.
    """
    path = Path(path)
    _check_capture(path)
    source = f"pcap:{file_identity(path)}"
    assembler = TrafficAssembler(flow_idle_timeout=flow_idle_timeout, max_flows=max_flows)
    extra = {"log": {"file": {"path": str(path)}}}

    settled = Checkpoint(source, 1)

    def items(produced: list[Produced]) -> Iterator[Item]:
        """A frame's events; only the last carries the checkpoint the frame moved to, the others the one
        before it (committing the new one early would skip the rest of the frame's events on resume)."""
        nonlocal settled
        before, settled = settled, Checkpoint(source, assembler.settled_frame)
        last = len(produced) - 1
        for index, entry in enumerate(produced):
            if entry.frame >= start_frame:
                yield Item(_stamp(context, entry, source, extra), settled if index == last else before)

    frames = 0
    try:
        for values in ENGINES[engine](path):
            frames += 1
            try:
                produced = assembler.feed(values)
            except (ParseError, ValueError, KeyError, IndexError) as error:
                number = values.get("frame.number", ["?"])[0]
                yield Item(DeadLetter.of(f"{path} frame {number}", f"{type(error).__name__}: {error}",
                                         repr(values)), Checkpoint(source, assembler.settled_frame))
                continue
            if produced:
                yield from items(produced)
    except CaptureError as error:
        if frames == 0:
            raise ParseError(f"{path}: tshark could not read a frame of this capture: {error.message}") from error
        yield from items(assembler.flush())
        yield Item(DeadLetter.of(f"{path} after frame {assembler.last_frame}",
                                 f"capture damaged after frame {assembler.last_frame}: {error.message}",
                                 error.message), Checkpoint(source, assembler.last_frame + 1))
        return
    yield from items(assembler.flush())


def _stamp(context: CollectorContext, entry: Produced, source: str, extra: dict[str, Any]) -> Any:
    mapped = entry.mapped
    fields = mapped.fields
    for key, value in extra.items():
        fields[key] = value
    fields["event"]["sequence"] = entry.frame  # the frame to open in Wireshark (``frame.number == N``)
    return context.event(fields, timestamp=mapped.timestamp, source=source, position=entry.position,
                         module=mapped.module, dataset=mapped.dataset)


def capture_live(
    interface: str,
    context: CollectorContext,
    sink: Sink,
    *,
    bpf_filter: str | None = None,
    stop: threading.Event,
    flow_idle_timeout: float = DEFAULT_FLOW_IDLE_TIMEOUT,
    max_flows: int = DEFAULT_MAX_FLOWS,
    poll_interval: float = 0.25,
) -> None:
    """Capture on ``interface`` (dumpcap via ``pyshark.LiveCapture``) until ``stop`` is set.

    Messages reach ``sink`` as their packets arrive; flows when they end, when idle by the wall clock,
    and all that are open when ``stop`` is set. Items carry no checkpoint: a live capture cannot be
    resumed. Ids use ``pcap:live:<interface>:<start ns>`` as source, so two runs never share an id.
    """
    import pyshark

    source = f"pcap:live:{interface}:{time.time_ns()}"
    extra = {"observer": {"type": "sensor", "hostname": context.agent_name,
                          "ingress": {"interface": {"name": interface}}}}
    assembler = TrafficAssembler(flow_idle_timeout=flow_idle_timeout, max_flows=max_flows)
    loop = asyncio.new_event_loop()
    capture = pyshark.LiveCapture(interface=interface, bpf_filter=bpf_filter, eventloop=loop)

    def deliver(produced: list[Produced]) -> None:
        for entry in produced:
            sink(Item(_stamp(context, entry, source, extra)))

    def on_packet(packet: Any) -> None:
        values = pyshark_packet_values(packet)
        try:
            produced = assembler.feed(values)
        except (ParseError, ValueError, KeyError, IndexError) as error:
            number = values.get("frame.number", ["?"])[0]
            sink(Item(DeadLetter.of(f"{interface} frame {number}", f"{type(error).__name__}: {error}",
                                    repr(values))))
            return
        deliver(produced)

    async def run() -> None:
        task = asyncio.ensure_future(capture.packets_from_tshark(on_packet))
        try:
            while not stop.is_set() and not task.done():
                await asyncio.wait([task], timeout=poll_interval)
                idle: list[Produced] = []
                assembler.expire(time.time_ns(), idle)
                deliver(idle)
            if task.done():
                task.result()  # a crashed dumpcap/tshark surfaces here
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await capture.close_async()

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    deliver(assembler.flush())
