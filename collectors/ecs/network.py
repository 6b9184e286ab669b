"""Network packets, as tshark dissects them, to ECS: connection summaries, DNS, HTTP, TLS, NTLM, Kerberos.

The input is one shape for both capture engines: per frame, the tshark fields of ``FIELDS`` that the
frame carries, each mapped to the list of its occurrences in dissection order, as tshark prints them
(``tshark -T fields -E occurrence=a`` gives an aggregated column that splits into that list; pyshark's
PDML ``show`` attributes give the same strings). ``packet_from_values`` turns it into a ``Packet``; the
mappers turn a ``Packet`` (or a finished ``FlowSummary``) into ``Mapped`` ECS dicts. Nothing here does I/O
or keeps state across packets: the flow table and the engines live in ``collectors/pcap.py``.

Why tshark field names rather than pyshark objects: the fast path never builds objects, and one dict
shape from both engines is what makes "both engines yield the same events" a checkable property.

Orientation: connection summaries and DNS/HTTP/TLS messages put the packet's (or the flow's first
packet's) sender in ``source``. Authentication events put the *client* in ``source`` whichever way the
message travels (a KDC's reply goes server → client, but Sigma rules read ``source.ip`` as the host that
tried to log on, as in Windows 4768/4771).
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import communityid

from collectors.base import Mapped, ParseError

MODULE = "network_traffic"
"""``event.module``, as Elastic's Network Packet Capture integration names it."""

DATASET_FLOW = "network_traffic.flow"
DATASET_DNS = "network_traffic.dns"
DATASET_HTTP = "network_traffic.http"
DATASET_TLS = "network_traffic.tls"
DATASET_KERBEROS = "network_traffic.kerberos"
DATASET_NTLM = "network_traffic.ntlm"

FieldValues = Mapping[str, Sequence[str]]
"""tshark field name → its occurrences in the frame, in dissection order. Absent fields are absent keys."""

FRAME_FIELDS = (
    "frame.number", "frame.time_epoch", "frame.len", "frame.protocols",
    "ip.src", "ip.dst", "ip.proto", "ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.fraghdr.nxt",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "udp.srcport", "udp.dstport", "sctp.srcport", "sctp.dstport",
    "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
)
DNS_FIELDS = (
    "dns.id", "dns.flags.response", "dns.flags.opcode", "dns.flags.rcode", "dns.flags.authoritative",
    "dns.flags.truncated", "dns.flags.recdesired", "dns.flags.recavail", "dns.flags.authenticated",
    "dns.flags.checkdisable", "dns.count.queries", "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr",
    "dns.qry.name", "dns.qry.type", "dns.qry.class",
    "dns.resp.name", "dns.resp.type", "dns.resp.class", "dns.resp.ttl", "dns.resp.len", "dns.resp.z.do",
    "dns.a", "dns.aaaa", "dns.cname", "dns.ptr.domain_name", "dns.ns", "dns.mx.mail_exchange", "dns.soa.mname",
    "dns.srv.target", "dns.txt", "dns.txt.length",
)
HTTP_FIELDS = (
    "http.request.method", "http.request.uri", "http.request.version", "http.host", "http.user_agent",
    "http.referer", "http.response.code", "http.response.version", "http.response.phrase", "http.response_for.uri",
    "http.content_type",
)
TLS_FIELDS = (
    "tls.handshake.type", "tls.handshake.version", "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_server_name", "tls.handshake.ja3", "tls.handshake.ja3_full",
)
"""JA4 is not in tshark 4.0 (``tshark -G fields`` lists only ``tls.handshake.ja3*``; it came with 4.2)."""
KERBEROS_FIELDS = (
    "kerberos.msg_type", "kerberos.CNameString", "kerberos.cname_string", "kerberos.SNameString",
    "kerberos.sname_string", "kerberos.realm", "kerberos.crealm", "kerberos.error_code", "kerberos.etype",
)
NTLMSSP_FIELDS = ("ntlmssp.messagetype", "ntlmssp.auth.username", "ntlmssp.auth.domain", "ntlmssp.auth.hostname",
                  "ntlmssp.ntlmv2_response.rversion")
"""No byte-string fields anywhere: ``-T fields`` prints them as bare hex, PDML with colons."""

FIELDS: tuple[str, ...] = FRAME_FIELDS + DNS_FIELDS + HTTP_FIELDS + TLS_FIELDS + KERBEROS_FIELDS + NTLMSSP_FIELDS
"""Every field either engine asks tshark for; the order is the column order of the fast path."""

# IANA protocol numbers and keywords (ECS ``network.transport`` is the lowercased keyword). A table,
# not a lookup library: the registry's few dozen in-use entries never change and this runs per packet.
IANA_KEYWORDS = {0: "hopopt", 1: "icmp", 2: "igmp", 4: "ipv4", 6: "tcp", 17: "udp", 41: "ipv6", 43: "ipv6-route",
                 44: "ipv6-frag", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp", 59: "ipv6-nonxt",
                 60: "ipv6-opts", 88: "eigrp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp"}
LAYER_IANA = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58, "igmp": 2, "gre": 47, "esp": 50, "ah": 51,
              "ospf": 89, "pim": 103, "vrrp": 112, "eigrp": 88, "ip": 4, "ipv6": 41}
PORT_FIELDS = {"tcp": ("tcp.srcport", "tcp.dstport"), "udp": ("udp.srcport", "udp.dstport"),
               "sctp": ("sctp.srcport", "sctp.dstport")}
FRAMING_LAYERS = frozenset({"nbss", "tpkt", "cotp", "data", "gss-api"})
"""Layers between the transport and the protocol an analyst means (SMB over NetBIOS, RDP over TPKT/COTP)."""

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COMMUNITY_ID = communityid.CommunityID(seed=0)


@dataclass(frozen=True, slots=True)
class Packet:
    """One IP frame: its addressing, for the flow table, and its field values, for the message mappers."""

    number: int
    time_ns: int
    length: int
    """``frame.len``: bytes on the wire, what ``capinfos`` and ``tshark -z conv`` add up."""
    ip_version: int
    iana_number: int
    transport: str
    source_ip: str
    destination_ip: str
    source_port: int | None
    destination_port: int | None
    tcp_flags: int
    icmp_type: int | None
    icmp_code: int | None
    protocol: str | None
    """The application protocol as tshark names it (``dns``, ``smb2``, ``tls``), or None (handshakes,
    undissected payload, ICMP)."""
    values: FieldValues


@dataclass(frozen=True, slots=True)
class FlowSummary:
    """A finished bidirectional flow: what a connection-summary event says."""

    first_frame: int
    ip_version: int
    iana_number: int
    transport: str
    source_ip: str
    source_port: int | None
    destination_ip: str
    destination_port: int | None
    protocol: str | None
    start_ns: int
    end_ns: int
    source_bytes: int
    source_packets: int
    destination_bytes: int
    destination_packets: int
    community_id: str
    end_reason: str
    """``fin``, ``rst``, ``idle_timeout``, ``evicted`` (the flow table was full), ``end_of_capture``."""


def epoch_ns(text: str) -> int:
    """``frame.time_epoch`` ("1490971523.828324000") as integer nanoseconds, without float rounding."""
    seconds, _, fraction = text.partition(".")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


def time_of(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def iso(ns: int) -> str:
    return time_of(ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def packet_from_values(values: FieldValues) -> Packet | None:
    """The ``Packet`` of a frame, or None for a frame without IP (ARP, 802.11 management, LLDP...).

    The addressing comes from the outermost IP header and the transport right above it, so an ICMP
    error quoting a UDP datagram is ICMP, and a tunnel is the tunnel's flow.
    """
    number = int(values["frame.number"][0])
    layers = values["frame.protocols"][0].split(":")
    ip_index = -1
    for index, name in enumerate(layers):
        if name == "ip" or name == "ipv6":
            ip_index = index
            break
    if ip_index < 0:
        return None
    above = ip_index + 1
    while above < len(layers) and layers[above].startswith("ipv6."):
        above += 1
    transport_layer = layers[above] if above < len(layers) else ""
    if layers[ip_index] == "ip":
        ip_version, src, dst = 4, values.get("ip.src"), values.get("ip.dst")
        proto = values.get("ip.proto")
        iana = int(proto[0]) if proto else -1
    else:
        ip_version, src, dst = 6, values.get("ipv6.src"), values.get("ipv6.dst")
        iana = LAYER_IANA.get(transport_layer, -1)
        if iana < 0:
            next_header = values.get("ipv6.fraghdr.nxt") or values.get("ipv6.nxt")
            iana = int(next_header[0]) if next_header else -1
    if not src or not dst or iana < 0:
        raise ParseError(f"frame {number}: IPv{ip_version} layer without source, destination or protocol number "
                         f"(expected ip.src/ip.dst/ip.proto or ipv6.src/ipv6.dst/ipv6.nxt)")
    source_port = destination_port = icmp_type = icmp_code = None
    tcp_flags = 0
    protocol = None
    ports = PORT_FIELDS.get(transport_layer)
    if ports is not None:
        sport, dport = values.get(ports[0]), values.get(ports[1])
        if sport and dport:
            source_port, destination_port = int(sport[0]), int(dport[0])
        if transport_layer == "tcp":
            flags = values.get("tcp.flags")
            tcp_flags = int(flags[0], 16) if flags else 0
        for name in layers[above + 1:]:
            if name not in FRAMING_LAYERS and not name.startswith("_ws."):
                protocol = name
                break
    elif transport_layer == "icmp" or transport_layer == "icmpv6":
        kind, code = values.get(transport_layer + ".type"), values.get(transport_layer + ".code")
        if kind and code:
            icmp_type, icmp_code = int(kind[0]), int(code[0])
    return Packet(
        number=number, time_ns=epoch_ns(values["frame.time_epoch"][0]), length=int(values["frame.len"][0]),
        ip_version=ip_version, iana_number=iana, transport=IANA_KEYWORDS.get(iana, str(iana)),
        source_ip=src[0], destination_ip=dst[0], source_port=source_port, destination_port=destination_port,
        tcp_flags=tcp_flags, icmp_type=icmp_type, icmp_code=icmp_code, protocol=protocol, values=values,
    )


def community_id(iana_number: int, source_ip: str, destination_ip: str, source_port: int | None,
                 destination_port: int | None, icmp_type: int | None = None, icmp_code: int | None = None) -> str:
    """Community ID v1 (seed 0) of a flow.

    ICMP goes through the ``communityid`` package (the spec's reference code), which owns the tables
    that pair echo request with reply and so on. The port and port-less cases are the spec's hash
    written out (``_community_id_hash``): the package spends ~80 µs a flow re-validating and
    re-building its tuple (and formatting a log line) where the hash itself takes ~3 µs, and a SYN flood
    is one flow per packet. Tests compare every variant with Wireshark's own ``communityid`` dissector.
    """
    if icmp_type is not None and (iana_number == 1 or iana_number == 58):
        make = communityid.FlowTuple.make_icmp if iana_number == 1 else communityid.FlowTuple.make_icmp6
        return _COMMUNITY_ID.calc(make(source_ip, destination_ip, icmp_type, icmp_code))
    return _community_id_hash(iana_number, source_ip, destination_ip, source_port, destination_port)


def _community_id_hash(iana_number: int, source_ip: str, destination_ip: str, source_port: int | None,
                       destination_port: int | None) -> str:
    """sha1(seed, ordered addresses, protocol, padding, ports if any) in base64, as the spec defines it.

    A port-based protocol seen without its ports (a non-first IP fragment) hashes without them, as
    Wireshark does; the package would refuse that tuple.
    """
    family = socket.AF_INET6 if ":" in source_ip else socket.AF_INET
    source, destination = socket.inet_pton(family, source_ip), socket.inet_pton(family, destination_ip)
    if source_port is None or destination_port is None:
        if destination < source:
            source, destination = destination, source
        data = b"\x00\x00" + source + destination + bytes((iana_number, 0))
    else:
        if (destination, destination_port) < (source, source_port):
            source, destination = destination, source
            source_port, destination_port = destination_port, source_port
        data = (b"\x00\x00" + source + destination + bytes((iana_number, 0))
                + source_port.to_bytes(2, "big") + destination_port.to_bytes(2, "big"))
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def _network(packet: Packet, protocol: str | None) -> dict[str, Any]:
    network: dict[str, Any] = {"type": "ipv4" if packet.ip_version == 4 else "ipv6", "transport": packet.transport,
                               "iana_number": str(packet.iana_number)}
    if protocol is not None:
        network["protocol"] = protocol
    return network


def _endpoint(ip: str, port: int | None) -> dict[str, Any]:
    return {"ip": ip} if port is None else {"ip": ip, "port": port}


def _endpoints(packet: Packet, fields: dict[str, Any], *, client_is_destination: bool = False) -> None:
    source = _endpoint(packet.source_ip, packet.source_port)
    destination = _endpoint(packet.destination_ip, packet.destination_port)
    if client_is_destination:
        source, destination = destination, source
    fields["source"] = source
    fields["destination"] = destination
    fields["related"] = {"ip": [packet.source_ip, packet.destination_ip]}


# --- connection summaries ------------------------------------------------------------------------

def map_flow(flow: FlowSummary) -> Mapped:
    """One connection summary. ``@timestamp`` is the first packet's time; bytes are frame bytes."""
    source = _endpoint(flow.source_ip, flow.source_port)
    source["bytes"], source["packets"] = flow.source_bytes, flow.source_packets
    destination = _endpoint(flow.destination_ip, flow.destination_port)
    destination["bytes"], destination["packets"] = flow.destination_bytes, flow.destination_packets
    network: dict[str, Any] = {
        "type": "ipv4" if flow.ip_version == 4 else "ipv6", "transport": flow.transport,
        "iana_number": str(flow.iana_number), "community_id": flow.community_id,
        "bytes": flow.source_bytes + flow.destination_bytes,
        "packets": flow.source_packets + flow.destination_packets,
    }
    if flow.protocol is not None:
        network["protocol"] = flow.protocol
    fields = {
        "event": {"kind": "event", "category": ["network"], "type": ["connection"], "action": "network_flow",
                  "start": iso(flow.start_ns), "end": iso(flow.end_ns), "duration": flow.end_ns - flow.start_ns,
                  "reason": flow.end_reason},
        "source": source, "destination": destination, "network": network,
        "related": {"ip": [flow.source_ip, flow.destination_ip]},
    }
    return Mapped(timestamp=time_of(flow.start_ns), fields=fields, module=MODULE, dataset=DATASET_FLOW)


# --- DNS -------------------------------------------------------------------------------------------

# RR type and class mnemonics (IANA "DNS Parameters"); tshark -T fields prints the numbers.
DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 17: "RP",
             18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX", 37: "CERT",
             39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC",
             48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP",
             59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS",
             99: "SPF", 10: "NULL", 11: "WKS", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB",
             254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA"}
DNS_CLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
              7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI", 16: "BADVERS",
              17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC",
              23: "BADCOOKIE"}
DNS_OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE", 6: "DSO"}
DNS_HEADER_FLAGS = (("dns.flags.authoritative", "AA"), ("dns.flags.truncated", "TC"),
                    ("dns.flags.recdesired", "RD"), ("dns.flags.recavail", "RA"),
                    ("dns.flags.authenticated", "AD"), ("dns.flags.checkdisable", "CD"))
RR_DATA_FIELDS = {1: "dns.a", 28: "dns.aaaa", 5: "dns.cname", 12: "dns.ptr.domain_name", 2: "dns.ns",
                  15: "dns.mx.mail_exchange", 6: "dns.soa.mname", 33: "dns.srv.target"}
"""Where tshark puts the data of each RR type it has one field for; other types get no ``data``."""
DNS_OPT, DNS_TXT = 41, 16


def _type_name(number: int) -> str:
    return DNS_TYPES.get(number) or f"TYPE{number}"


def _class_name(text: str) -> str:
    number = int(text, 0) & 0x7FFF  # mDNS puts its cache-flush / unicast-response bit on top
    return DNS_CLASSES.get(number) or f"CLASS{number}"


def _at(values: Sequence[str] | None, index: int) -> str | None:
    return values[index] if values is not None and index < len(values) else None


class _RecordWalker:
    """Walks the resource records of a frame in order.

    tshark prints every RR's name, type and length, but class and TTL are missing for OPT, and each
    type's data sits in its own field (``dns.a``, ``dns.cname``...). Walking in order with one cursor per
    field lines them up again; a TXT record's strings are consumed until their lengths fill its RDLENGTH.
    """

    __slots__ = ("class_cursor", "cursors", "index", "values")

    def __init__(self, values: FieldValues) -> None:
        self.values = values
        self.index = 0
        self.class_cursor = 0
        self.cursors: dict[str, int] = {}

    def take(self, count: int) -> tuple[list[dict[str, Any]], bool]:
        """The next ``count`` records as ECS answers, and whether one of them was an OPT with DO set."""
        values = self.values
        names, types = values.get("dns.resp.name", ()), values.get("dns.resp.type", ())
        records: list[dict[str, Any]] = []
        dnssec_ok = False
        for _ in range(count):
            index = self.index
            if index >= len(names) or index >= len(types):
                break  # the message was cut short (snap length, truncated capture): keep what was dissected
            self.index += 1
            rr_type = int(types[index])
            if rr_type == DNS_OPT:
                do_cursor = self.cursors.get("dns.resp.z.do", 0)
                self.cursors["dns.resp.z.do"] = do_cursor + 1
                dnssec_ok = _at(values.get("dns.resp.z.do"), do_cursor) in ("1", "True")
                continue
            record: dict[str, Any] = {"name": names[index], "type": _type_name(rr_type)}
            rr_class = _at(values.get("dns.resp.class"), self.class_cursor)
            ttl = _at(values.get("dns.resp.ttl"), self.class_cursor)
            self.class_cursor += 1
            if rr_class:
                record["class"] = _class_name(rr_class)
            if ttl:
                record["ttl"] = int(ttl)
            data = self._data(rr_type, _at(values.get("dns.resp.len"), index))
            if data is not None:
                record["data"] = data
            records.append(record)
        return records, dnssec_ok

    def _data(self, rr_type: int, rdlength: str | None) -> str | None:
        field = RR_DATA_FIELDS.get(rr_type)
        if field is not None:
            cursor = self.cursors.get(field, 0)
            self.cursors[field] = cursor + 1
            return _at(self.values.get(field), cursor)
        if rr_type != DNS_TXT or not rdlength:
            return None
        strings, lengths = self.values.get("dns.txt", ()), self.values.get("dns.txt.length", ())
        cursor = self.cursors.get("dns.txt", 0)
        remaining, parts = int(rdlength), []
        while remaining > 0 and cursor < len(strings) and cursor < len(lengths):
            parts.append(strings[cursor])
            remaining -= int(lengths[cursor]) + 1
            cursor += 1
        self.cursors["dns.txt"] = cursor
        return "".join(parts)


def map_dns(packet: Packet) -> list[Mapped]:
    """One event per DNS message in the frame (LLMNR and mDNS included: tshark gives them the DNS fields).

    Only the answer section becomes ``dns.answers``; authority and additional records are walked past.
    """
    values = packet.values
    ids = values["dns.id"]
    walker = _RecordWalker(values)
    question_cursor = 0
    events = []
    for message in range(len(ids)):
        is_response = _at(values.get("dns.flags.response"), message) in ("1", "True")
        dns: dict[str, Any] = {"type": "answer" if is_response else "query", "id": str(int(ids[message], 0))}
        opcode = _at(values.get("dns.flags.opcode"), message)
        if opcode:
            dns["op_code"] = DNS_OPCODES.get(int(opcode)) or str(int(opcode))
        queries = int(_at(values.get("dns.count.queries"), message) or 0)
        names = values.get("dns.qry.name", ())
        if queries and question_cursor < len(names):
            question: dict[str, Any] = {"name": names[question_cursor]}
            qtype = _at(values.get("dns.qry.type"), question_cursor)
            qclass = _at(values.get("dns.qry.class"), question_cursor)
            if qtype:
                question["type"] = _type_name(int(qtype))
            if qclass:
                question["class"] = _class_name(qclass)
            dns["question"] = question
        question_cursor += queries
        answers = int(_at(values.get("dns.count.answers"), message) or 0)
        others = (int(_at(values.get("dns.count.auth_rr"), message) or 0)
                  + int(_at(values.get("dns.count.add_rr"), message) or 0))
        records, _ = walker.take(answers)
        _, dnssec_ok = walker.take(others)
        flags = [flag for field, flag in DNS_HEADER_FLAGS if _at(values.get(field), message) in ("1", "True")]
        if dnssec_ok:
            flags.append("DO")
        dns["header_flags"] = flags
        if is_response:
            rcode = _at(values.get("dns.flags.rcode"), message)
            if rcode:
                dns["response_code"] = DNS_RCODES.get(int(rcode)) or str(int(rcode))
            if records:
                dns["answers"] = records
                resolved = [record["data"] for record in records
                            if record["type"] in ("A", "AAAA") and "data" in record]
                if resolved:
                    dns["resolved_ip"] = resolved
        fields: dict[str, Any] = {
            "event": {"kind": "event", "category": ["network"], "type": ["protocol"],
                      "action": "dns_answer" if is_response else "dns_query"},
            "network": _network(packet, packet.protocol), "dns": dns,
        }
        _endpoints(packet, fields)
        if "question" in dns:
            fields["related"]["hosts"] = [dns["question"]["name"]]
        if "resolved_ip" in dns:
            fields["related"]["ip"].extend(dns["resolved_ip"])
        events.append(Mapped(timestamp=time_of(packet.time_ns), fields=fields, module=MODULE, dataset=DATASET_DNS))
    return events


# --- HTTP ------------------------------------------------------------------------------------------

def _http_version(text: str | None) -> str | None:
    return text.partition("/")[2] or None if text else None


def _url(target: str, host: str | None) -> dict[str, Any]:
    """ECS ``url.*`` from a request target (origin form ``/p?q`` or absolute form) and the Host header."""
    url: dict[str, Any] = {"original": target}
    parts = urlsplit(target)
    if parts.path:
        url["path"] = parts.path
    if parts.query:
        url["query"] = parts.query
    if parts.fragment:
        url["fragment"] = parts.fragment
    authority = parts.netloc or host
    if authority:
        domain, port = _host_and_port(authority)
        url["domain"] = domain
        if port is not None:
            url["port"] = port
        if not parts.netloc:
            url["full"] = f"http://{authority}{target}"
    if parts.scheme:
        url["scheme"] = parts.scheme
        url["full"] = target
    return url


def _host_and_port(authority: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (a Host header, or a URL's authority)."""
    if authority.startswith("["):
        domain, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        domain, _, port = authority.partition(":")
    else:
        domain, port = authority, ""
    return domain, int(port) if port.isdigit() else None


def map_http(packet: Packet) -> list[Mapped]:
    """One event per HTTP request and per response in the frame.

    A response carries ``url.*`` of its request from ``http.response_for.uri`` (tshark links them in one
    pass). With several requests in one frame (pipelining), a header that is not on every one of them
    cannot be told apart and is left out.
    """
    values = packet.values
    events = []
    methods = values.get("http.request.method", ())
    for index, method in enumerate(methods):
        http: dict[str, Any] = {"request": {"method": method}}
        fields: dict[str, Any] = {
            "event": {"kind": "event", "category": ["network", "web"], "type": ["protocol", "access"],
                      "action": "http_request"},
            "network": _network(packet, "http"), "http": http,
        }
        version = _http_version(_single(values.get("http.request.version"), index, len(methods)))
        if version:
            http["version"] = version
        referrer = _single(values.get("http.referer"), index, len(methods))
        if referrer:
            http["request"]["referrer"] = referrer
        host = _single(values.get("http.host"), index, len(methods))
        target = _single(values.get("http.request.uri"), index, len(methods))
        if target is not None:
            fields["url"] = _url(target, host)
        agent = _single(values.get("http.user_agent"), index, len(methods))
        if agent:
            fields["user_agent"] = {"original": agent}
        _endpoints(packet, fields)
        if host:
            fields["related"]["hosts"] = [fields["url"]["domain"]] if "url" in fields else [host]
        events.append(Mapped(timestamp=time_of(packet.time_ns), fields=fields, module=MODULE, dataset=DATASET_HTTP))
    codes = values.get("http.response.code", ())
    for index, code in enumerate(codes):
        response: dict[str, Any] = {"status_code": int(code)}
        http = {"response": response}
        version = _http_version(_single(values.get("http.response.version"), index, len(codes)))
        if version:
            http["version"] = version
        mime = _single(values.get("http.content_type"), index, len(codes))
        if mime:
            response["mime_type"] = mime
        fields = {
            "event": {"kind": "event", "category": ["network", "web"], "type": ["protocol"],
                      "action": "http_response", "outcome": "success" if int(code) < 400 else "failure"},
            "network": _network(packet, "http"), "http": http,
        }
        phrase = _single(values.get("http.response.phrase"), index, len(codes))
        if phrase:
            fields["message"] = f"{code} {phrase}"
        target = _single(values.get("http.response_for.uri"), index, len(codes))
        if target:
            fields["url"] = _url(target, None)
        _endpoints(packet, fields)
        events.append(Mapped(timestamp=time_of(packet.time_ns), fields=fields, module=MODULE, dataset=DATASET_HTTP))
    return events


def _single(values: Sequence[str] | None, index: int, messages: int) -> str | None:
    """The value belonging to message ``index`` of ``messages``, when occurrences line up one per message."""
    if values is None:
        return None
    if len(values) == messages:
        return values[index]
    return values[0] if messages == 1 else None


# --- TLS -------------------------------------------------------------------------------------------

TLS_VERSIONS = {0x0300: ("ssl", "3.0"), 0x0301: ("tls", "1.0"), 0x0302: ("tls", "1.1"), 0x0303: ("tls", "1.2"),
                0x0304: ("tls", "1.3")}
TLS_CLIENT_HELLO = "1"


def is_client_hello(packet: Packet) -> bool:
    types = packet.values.get("tls.handshake.type")
    return types is not None and TLS_CLIENT_HELLO in types


def map_tls_client_hello(packet: Packet) -> Mapped:
    """The client's offer: SNI, the highest version offered, JA3 (tshark's own ``tls.handshake.ja3``).

    ``tls.version`` is the highest version the client offers (``supported_versions`` when present,
    else the hello's version): the negotiated one is in the server's reply, which this event precedes.
    """
    values = packet.values
    offered = [int(text, 16) for text in values.get("tls.handshake.extensions.supported_version", ())]
    offered = [version for version in offered if version in TLS_VERSIONS]  # drops GREASE values
    if not offered:
        offered = [int(text, 16) for text in values.get("tls.handshake.version", ())[:1]]
    tls: dict[str, Any] = {"client": {}}
    if offered and max(offered) in TLS_VERSIONS:
        tls["version_protocol"], tls["version"] = TLS_VERSIONS[max(offered)]
    server_name = values.get("tls.handshake.extensions_server_name")
    if server_name:
        tls["client"]["server_name"] = server_name[0]
    ja3 = values.get("tls.handshake.ja3")
    if ja3:
        tls["client"]["ja3"] = ja3[0]
    fields: dict[str, Any] = {
        "event": {"kind": "event", "category": ["network"], "type": ["protocol"], "action": "tls_client_hello"},
        "network": _network(packet, packet.protocol), "tls": tls,
    }
    _endpoints(packet, fields)
    if server_name:
        fields["destination"]["domain"] = server_name[0]
        fields["related"]["hosts"] = [server_name[0]]
    return Mapped(timestamp=time_of(packet.time_ns), fields=fields, module=MODULE, dataset=DATASET_TLS)


# --- Kerberos --------------------------------------------------------------------------------------

KERBEROS_MESSAGES = {10: "AS-REQ", 11: "AS-REP", 12: "TGS-REQ", 13: "TGS-REP", 30: "KRB-ERROR"}
"""The KDC exchanges. AP-REQ/AP-REP (14/15) ride inside SMB, DCERPC or a TGS-REQ with the client name
encrypted, so they say nothing about who logs on and are not events of their own."""
KERBEROS_REQUESTS = frozenset({10, 12})
KERBEROS_ERRORS = {0: "KDC_ERR_NONE", 6: "KDC_ERR_C_PRINCIPAL_UNKNOWN", 7: "KDC_ERR_S_PRINCIPAL_UNKNOWN",
                   12: "KDC_ERR_POLICY", 14: "KDC_ERR_ETYPE_NOSUPP", 18: "KDC_ERR_CLIENT_REVOKED",
                   23: "KDC_ERR_KEY_EXPIRED", 24: "KDC_ERR_PREAUTH_FAILED", 25: "KDC_ERR_PREAUTH_REQUIRED",
                   31: "KRB_AP_ERR_BAD_INTEGRITY", 32: "KRB_AP_ERR_TKT_EXPIRED", 37: "KRB_AP_ERR_SKEW",
                   41: "KRB_AP_ERR_MODIFIED", 52: "KRB_ERR_RESPONSE_TOO_BIG", 60: "KRB_ERR_GENERIC",
                   68: "KDC_ERR_WRONG_REALM"}
KERBEROS_ETYPES = {1: "des-cbc-crc", 3: "des-cbc-md5", 17: "aes128-cts-hmac-sha1-96", 18: "aes256-cts-hmac-sha1-96",
                   23: "rc4-hmac", 24: "rc4-hmac-exp"}


def kerberos_message_type(packet: Packet) -> int | None:
    """The KDC message type of the frame (the outermost one), or None if it is not a KDC exchange."""
    types = packet.values.get("kerberos.msg_type")
    if not types:
        return None
    kind = int(types[0])
    return kind if kind in KERBEROS_MESSAGES else None


def _principals(names: Sequence[str] | None, counts: Sequence[str] | None) -> list[str]:
    """Principal names ("krbtgt/CORP.LOCAL") rebuilt from the flat components and the per-name counts."""
    if not names:
        return []
    if not counts:
        return ["/".join(names)]
    principals, cursor = [], 0
    for count in counts:
        size = int(count)
        principals.append("/".join(names[cursor:cursor + size]))
        cursor += size
    return principals


def kerberos_client(packet: Packet) -> tuple[str, str | None] | None:
    """(client name, realm) an AS-REQ asks for, for naming the client of a KRB-ERROR that lacks it."""
    if kerberos_message_type(packet) != 10:
        return None
    clients = _principals(packet.values.get("kerberos.CNameString"), packet.values.get("kerberos.cname_string"))
    realms = packet.values.get("kerberos.realm")
    return (clients[0], realms[-1] if realms else None) if clients else None


def map_kerberos(packet: Packet, *, requested_by: tuple[str, str | None] | None = None) -> Mapped:
    """A KDC request, reply or error as an authentication event.

    ``requested_by`` is the client of the AS-REQ earlier in the same flow: KRB-ERRORs (a wrong password,
    an unknown user) usually omit the client name, and a password spray is only visible with it.
    """
    values = packet.values
    kind = int(values["kerberos.msg_type"][0])
    message = KERBEROS_MESSAGES[kind]
    kerberos: dict[str, Any] = {"msg_type": message}
    clients = _principals(values.get("kerberos.CNameString"), values.get("kerberos.cname_string"))
    services = _principals(values.get("kerberos.SNameString"), values.get("kerberos.sname_string"))
    realms = values.get("kerberos.realm", ())
    crealm = values.get("kerberos.crealm")
    # A TGS-REQ carries the TGT (krbtgt/REALM) in its pre-authentication data before the body's service.
    service = services[1] if kind == 12 and len(services) > 1 else (services[0] if services else None)
    client = clients[0] if clients else None
    client_realm = crealm[0] if crealm else (realms[-1] if realms and kind == 10 else None)
    if client is None and requested_by is not None and kind == 30:
        client, client_realm = requested_by[0], client_realm or requested_by[1]
    if service:
        kerberos["service"] = service
    if realms:
        kerberos["realm"] = realms[-1]
    event: dict[str, Any] = {"kind": "event", "category": ["authentication"], "type": ["start"],
                             "action": "kerberos_" + message.lower().replace("-", "_")}
    if kind == 30:
        code = int(values.get("kerberos.error_code", ("-1",))[0])
        kerberos["error_code"] = code
        kerberos["error"] = KERBEROS_ERRORS.get(code) or str(code)
        event["outcome"] = "failure"
        event["reason"] = kerberos["error"]
    elif kind in (11, 13):
        event["outcome"] = "success"
        etypes = values.get("kerberos.etype")
        if etypes:
            kerberos["ticket_etype"] = KERBEROS_ETYPES.get(int(etypes[0])) or etypes[0]
    else:
        event["outcome"] = "unknown"
    fields: dict[str, Any] = {"event": event, "network": _network(packet, "kerberos"), "kerberos": kerberos}
    _endpoints(packet, fields, client_is_destination=kind not in KERBEROS_REQUESTS)
    if client:
        fields["user"] = {"name": client}
        kerberos["client"] = client
        fields["related"]["user"] = [client]
        if client_realm:
            fields["user"]["domain"] = client_realm
    return Mapped(timestamp=time_of(packet.time_ns), fields=fields, module=MODULE, dataset=DATASET_KERBEROS)


# --- NTLM ------------------------------------------------------------------------------------------

NTLMSSP_AUTH = 3
NTLM_EMPTY = "NULL"
"""What tshark prints for an empty NTLMSSP string (an anonymous logon has empty user and domain)."""


def is_ntlm_authenticate(packet: Packet) -> bool:
    types = packet.values.get("ntlmssp.messagetype")
    return types is not None and any(int(kind, 16) == NTLMSSP_AUTH for kind in types)


def map_ntlm_authenticate(packet: Packet) -> Mapped:
    """An NTLMSSP AUTHENTICATE message (inside SMB, DCERPC, HTTP...): who logs on, from which host.

    The outcome travels in the carrier's reply (an SMB2 status), so it is ``unknown`` here. NTLMv1 vs v2
    is told by the response's structure version, which only an NTLMv2 response has.
    """
    values = packet.values
    user = _present(values.get("ntlmssp.auth.username"))
    domain = _present(values.get("ntlmssp.auth.domain"))
    host = _present(values.get("ntlmssp.auth.hostname"))
    ntlmssp: dict[str, Any] = {"anonymous": user is None}
    if user is not None:  # an anonymous logon sends no challenge response at all
        ntlmssp["version"] = "v2" if "ntlmssp.ntlmv2_response.rversion" in values else "v1"
    fields: dict[str, Any] = {
        "event": {"kind": "event", "category": ["authentication"], "type": ["start"], "action": "ntlm_authenticate",
                  "outcome": "unknown"},
        "network": _network(packet, packet.protocol), "ntlmssp": ntlmssp,
    }
    _endpoints(packet, fields)
    if user is not None:
        fields["user"] = {"name": user}
        ntlmssp["user"] = user
        fields["related"]["user"] = [user]
    if domain is not None:
        fields.setdefault("user", {})["domain"] = domain
        ntlmssp["domain"] = domain
    if host is not None:
        ntlmssp["host"] = host
        fields["related"]["hosts"] = [host]
    return Mapped(timestamp=time_of(packet.time_ns), fields=fields, module=MODULE, dataset=DATASET_NTLM)


def _present(values: Sequence[str] | None) -> str | None:
    if not values or values[0] in ("", NTLM_EMPTY):
        return None
    return values[0]
