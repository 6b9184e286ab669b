"""The capture collector on the shared real captures, checked against tshark's own statistics and fields.

Expectations come from separate tshark runs in the test (``-z io,stat``, ``-z conv``, ``-T fields``,
Wireshark's ``communityid`` dissector), never from the collector. Where our definitions differ from
tshark's, the filters below say how and why:

- We key flows on the *outermost* IP header. tshark also counts the headers quoted inside ICMP errors and
  carried in GRE tunnels as TCP/UDP/DNS, so its side of every comparison excludes ``icmp``, ``icmpv6``
  and ``gre`` frames (only these encapsulations occur in the corpus).
- ``tshark -z conv,tcp`` has one conversation per address/port pair for the whole file; we start a new
  flow when the pair is reused after a FIN/RST, after the idle timeout, or on eviction. So the *set* of
  pairs is equal, the number of flows is at least the number of conversations, and bytes/packets are
  equal in total.
- Non-first IP fragments of UDP have no ports: they make port-less flows of their own, which tshark's
  ``udp`` filter does not match; they are in the ``ip or ipv6`` total.
- DNS and HTTP counts are frames in tshark and messages for us; no frame in the corpus carries two.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from civicsoc.event import Event
from collectors.base import CollectorContext, DeadLetter, Item, ParseError
from collectors.pcap import TrafficAssembler, is_pcap, read_pcap, tshark_field_values

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PCAP_FOLDERS = ("pcap-attack", "chrissanders-packets", "suricata-verify-pcaps", "trace-share-ssh-bruteforce",
                "stopddos-packet-captures", "dns-tunnel-pcaps")
CAPTURES = sorted(path for folder in PCAP_FOLDERS for path in (SHARED_DATA / folder).rglob("*")
                  if path.suffix in (".pcap", ".pcapng"))
DAMAGED_CAPTURES: frozenset[str] = frozenset()
"""Shared captures that tshark cannot read to the end (none: every one of them reads cleanly)."""

CONTEXT = CollectorContext(tenant="agency-a", agent_name="test-sensor")
OUTERMOST = "!icmp && !icmpv6 && !gre"
IO_COLUMNS = {
    "ip": "ip or ipv6",
    "tcp": f"tcp && {OUTERMOST}",
    "udp": f"udp && {OUTERMOST}",
    "dns_query": f"dns.flags.response == 0 && {OUTERMOST}",
    "dns_answer": f"dns.flags.response == 1 && {OUTERMOST}",
    "http_request": f"http.request && {OUTERMOST}",
    "http_response": f"http.response && {OUTERMOST}",
    "tls_client_hello": f"tls.handshake.type == 1 && {OUTERMOST}",
    "kerberos": "(kerberos.msg_type == 10 || kerberos.msg_type == 11 || kerberos.msg_type == 12 || "
                f"kerberos.msg_type == 13 || kerberos.msg_type == 30) && {OUTERMOST}",
    "ntlm": f"ntlmssp.messagetype == 0x00000003 && {OUTERMOST}",
}
CONVERSATION = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s")
NUMBER = re.compile(r"\d+")


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.fail(f"shared capture {path} is missing")
    return path


def tshark(*arguments: str) -> str:
    return subprocess.run(["tshark", "-n", *arguments], capture_output=True, text=True, check=True).stdout


def tshark_rows(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    """``tshark -T fields`` rows (first occurrence of each field) of the frames matching the filter."""
    arguments = ["-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "occurrence=f"]
    for field in fields:
        arguments += ["-e", field]
    return [line.split("\t") for line in tshark(*arguments).splitlines()]


def read_all(path: Path, **options: Any) -> list[Item]:
    return list(read_pcap(path, CONTEXT, **options))


def events(items: list[Item], dataset: str | None = None) -> list[dict[str, Any]]:
    return [item.value.fields for item in items if isinstance(item.value, Event)
            and (dataset is None or item.value.fields["event"]["dataset"] == dataset)]


def endpoint_pair(fields: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted([(fields["source"]["ip"], fields["source"]["port"]),
                         (fields["destination"]["ip"], fields["destination"]["port"])]))


@dataclass
class TsharkStatistics:
    io: dict[str, tuple[int, int]]
    """Column name → (frames, bytes) of ``-z io,stat,0``."""
    conversations: dict[str, set[tuple[tuple[str, int], ...]]]


def start_statistics(path: Path) -> subprocess.Popen[str]:
    """One tshark pass for every expectation, started before our read so the two run side by side."""
    arguments = ["tshark", "-n", "-r", str(path), "-q", "-z", f"conv,tcp,{OUTERMOST}", "-z", f"conv,udp,{OUTERMOST}",
                 "-z", "io,stat,0," + ",".join(IO_COLUMNS.values())]
    return subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def finish_statistics(process: subprocess.Popen[str], path: Path) -> TsharkStatistics:
    output, _ = process.communicate()
    conversations: dict[str, set[tuple[tuple[str, int], ...]]] = {"tcp": set(), "udp": set()}
    section = None
    for line in output.splitlines():
        if line.startswith(("TCP Conversations", "UDP Conversations")):
            section = line[:3].lower()
        elif line.startswith("| IO Statistics"):
            section = None
        elif section and (match := CONVERSATION.match(line)):
            conversations[section].add(tuple(sorted([(match[1], int(match[2])), (match[3], int(match[4]))])))
    rows = [line for line in output.splitlines() if line.startswith("|") and " <> " in line]
    if rows:
        numbers = [int(number) for number in NUMBER.findall(rows[-1].split("|", 2)[2])]
        io = {name: (numbers[2 * index], numbers[2 * index + 1]) for index, name in enumerate(IO_COLUMNS)}
    else:  # io,stat prints no interval for a capture of zero duration (one frame): count frame by frame
        io = {}
        for name, display_filter in IO_COLUMNS.items():
            lengths = [int(row[0]) for row in tshark_rows(path, display_filter, "frame.len") if row[0]]
            io[name] = (len(lengths), sum(lengths))
    return TsharkStatistics(io=io, conversations=conversations)


# --- the whole corpus ------------------------------------------------------------------------------

def test_the_corpus_is_there() -> None:
    assert len(CAPTURES) >= 100, f"expected the ~104 shared captures under {SHARED_DATA}, found {len(CAPTURES)}"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: str(path.relative_to(SHARED_DATA)))
def test_capture_reads_and_agrees_with_tshark(path: Path) -> None:
    statistics_run = start_statistics(path)
    items = read_all(path)
    expected = finish_statistics(statistics_run, path)

    dead = [item.value for item in items if isinstance(item.value, DeadLetter)]
    if str(path.relative_to(SHARED_DATA)) not in DAMAGED_CAPTURES:
        assert dead == []
    documents = events(items)
    assert len({document["event"]["id"] for document in documents}) == len(documents), "event ids must be unique"

    flows = events(items, "network_traffic.flow")
    assert (sum(flow["network"]["packets"] for flow in flows),
            sum(flow["network"]["bytes"] for flow in flows)) == expected.io["ip"]
    for transport in ("tcp", "udp"):
        with_ports = [flow for flow in flows if flow["network"]["transport"] == transport and "port" in flow["source"]]
        assert (sum(flow["network"]["packets"] for flow in with_ports),
                sum(flow["network"]["bytes"] for flow in with_ports)) == expected.io[transport]
        assert {endpoint_pair(flow) for flow in with_ports} == expected.conversations[transport]
        assert len(with_ports) >= len(expected.conversations[transport])
    for flow in flows:
        assert flow["source"]["packets"] + flow["destination"]["packets"] == flow["network"]["packets"]
        assert flow["network"]["community_id"].startswith("1:")

    actions = Counter(document["event"].get("action") for document in documents)
    assert actions["dns_query"] == expected.io["dns_query"][0]
    assert actions["dns_answer"] == expected.io["dns_answer"][0]
    assert actions["http_request"] == expected.io["http_request"][0]
    assert actions["http_response"] == expected.io["http_response"][0]
    assert actions["tls_client_hello"] == expected.io["tls_client_hello"][0]
    assert len(events(items, "network_traffic.kerberos")) == expected.io["kerberos"][0]
    assert actions["ntlm_authenticate"] == expected.io["ntlm"][0]


# --- fields of chosen frames against tshark's -T fields --------------------------------------------

def by_frame(items: list[Item], action: str) -> dict[int, dict[str, Any]]:
    return {document["event"]["sequence"]: document for document in events(items)
            if document["event"].get("action") == action}


@pytest.mark.parametrize("relative", ["chrissanders-packets/http_dvwa_sqlinjection.pcapng",
                                      "suricata-verify-pcaps/tests/http-all-headers/input.pcap",
                                      "chrissanders-packets/ek_to_cryptowall4.pcapng"])
def test_http_requests_match_tshark_fields(relative: str) -> None:
    path = shared(relative)
    requests = by_frame(read_all(path), "http_request")
    rows = tshark_rows(path, "http.request", "frame.number", "http.request.method", "http.host",
                       "http.request.uri", "http.user_agent")
    assert rows and len(requests) == len(rows)
    for number, method, host, uri, agent in rows:
        document = requests[int(number)]
        assert document["http"]["request"]["method"] == method
        assert document["url"]["original"] == uri
        assert document["url"]["domain"] == host.partition(":")[0]
        assert document["url"]["path"] + ("?" + document["url"]["query"] if "query" in document["url"] else "") \
            == uri.partition("#")[0]
        assert document.get("user_agent", {}).get("original", "") == agent


@pytest.mark.parametrize("relative", ["suricata-verify-pcaps/tests/tls/tls-cert-issuer/tls.pcap",
                                      "suricata-verify-pcaps/tests/tls/tls-bypass-missing-event/tor_bl.pcap",
                                      "suricata-verify-pcaps/tests/tls/tls-glupteba/input.pcap",
                                      "suricata-verify-pcaps/tests/quic-ietf/input.pcap",
                                      "pcap-attack/Discovery/"
                                      "Discovery_PsLoggedOn_remotelocalusers_enum_winreg_lsarpc_dcerpc_smb.pcapng"])
def test_tls_client_hellos_match_tshark_fields(relative: str) -> None:
    path = shared(relative)
    hellos = by_frame(read_all(path), "tls_client_hello")
    rows = tshark_rows(path, "tls.handshake.type == 1", "frame.number", "tls.handshake.extensions_server_name",
                       "tls.handshake.ja3")
    assert rows and len(hellos) == len(rows)
    for number, server_name, ja3 in rows:
        client = hellos[int(number)]["tls"]["client"]
        assert client.get("server_name", "") == server_name
        assert client.get("ja3", "") == ja3


@pytest.mark.parametrize("relative", [
    "pcap-attack/CredAccess/CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng",
    "suricata-verify-pcaps/tests/krb5-kerberoasting/kerberoast.pcap",
    "suricata-verify-pcaps/tests/krb5-krb5_msg_type/input.pcap",
])
def test_kerberos_users_match_tshark_fields(relative: str) -> None:
    """The user of a request or reply is its CNameString; a KRB-ERROR without one is named after the last
    AS-REQ of the same conversation as tshark numbers them (``udp.stream``/``tcp.stream``)."""
    path = shared(relative)
    documents = {document["event"]["sequence"]: document for document in events(read_all(path),
                                                                                  "network_traffic.kerberos")}
    rows = tshark_rows(path, "kerberos.msg_type == 10 || kerberos.msg_type == 11 || kerberos.msg_type == 12 || "
                       "kerberos.msg_type == 13 || kerberos.msg_type == 30", "frame.number", "kerberos.msg_type",
                       "kerberos.CNameString", "udp.stream", "tcp.stream", "kerberos.error_code")
    assert rows and len(documents) == len(rows)
    last_request: dict[tuple[str, str], str] = {}
    for number, kind, client, udp_stream, tcp_stream, error_code in rows:
        conversation = (udp_stream, tcp_stream)
        if kind == "10":
            last_request[conversation] = client
        elif kind == "12":
            last_request.pop(conversation, None)
        expected = client or (last_request.get(conversation, "") if kind == "30" else "")
        document = documents[int(number)]
        assert document.get("user", {}).get("name", "") == expected
        if kind == "30":
            assert document["kerberos"]["error_code"] == int(error_code)
            assert document["event"]["outcome"] == "failure"
    assert any(row[1] == "30" for row in rows) or "kerbrute" not in relative


NTLM_CAPTURES = ["pcap-attack/CredAccess/CA_LM_SpoolSample_SMB_BiAuth.pcapng",
                 "pcap-attack/Lateral Movement/LM_smbexec_smb_dcerpc_svcctl_epm.pcapng",
                 "pcap-attack/Lateral Movement/zerologon_mimikatz_ntlm_privacy_scan_and_exploit_encrypted.pcapng",
                 "pcap-attack/Evasion/DE_byt3bl33d3r_remote_eventservice_crash.pcapng",
                 "suricata-verify-pcaps/tests/smb3-01/input.pcap"]


@pytest.mark.parametrize("relative", NTLM_CAPTURES)
def test_ntlm_users_match_tshark_fields(relative: str) -> None:
    path = shared(relative)
    documents = by_frame(read_all(path), "ntlm_authenticate")
    rows = tshark_rows(path, "ntlmssp.messagetype == 0x00000003", "frame.number", "ntlmssp.auth.username",
                       "ntlmssp.auth.domain", "ntlmssp.auth.hostname", "ip.src")
    assert rows and len(documents) == len(rows)
    for number, user, domain, host, source_ip in rows:
        document = documents[int(number)]
        assert document.get("user", {}).get("name", "NULL") == user
        assert document.get("user", {}).get("domain", "NULL") == domain
        assert document["ntlmssp"].get("host", "NULL") == host
        assert document["source"]["ip"] == source_ip
        assert document["event"]["category"] == ["authentication"]


@pytest.mark.parametrize("relative", ["chrissanders-packets/dns_lab.pcapng",
                                      "suricata-verify-pcaps/tests/dns/dns-tcp-www-google-com/dns.pcap",
                                      "chrissanders-packets/dns_query_nonexistent.pcapng"])
def test_dns_messages_match_tshark_fields(relative: str) -> None:
    path = shared(relative)
    documents = {document["event"]["sequence"]: document for document in events(read_all(path),
                                                                                  "network_traffic.dns")}
    output = tshark("-r", str(path), "-Y", "dns", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                    "-e", "frame.number", "-e", "dns.id", "-e", "dns.qry.name", "-e", "dns.a", "-e", "dns.flags.rcode",
                    "-e", "dns.count.answers", "-e", "dns.count.add_rr", "-e", "dns.count.auth_rr")
    rows = [line.split("\t") for line in output.splitlines()]
    assert rows and len(documents) == len(rows)
    for number, message_id, name, addresses, rcode, answers, additional, authority in rows:
        dns = documents[int(number)]["dns"]
        assert dns["id"] == str(int(message_id, 16))
        assert dns["question"]["name"] == name
        if dns["type"] == "answer":
            assert {"0": "NOERROR", "3": "NXDOMAIN"}[rcode] == dns["response_code"]
            assert len(dns.get("answers", [])) == int(answers)
            if additional == authority == "0":
                assert dns.get("resolved_ip", []) == [address for address in addresses.split("|") if address]


@pytest.mark.parametrize("relative", ["chrissanders-packets/icmp_traceroute.pcapng",
                                      "chrissanders-packets/http_ip4and6.pcapng",
                                      "chrissanders-packets/ipv6_fragments.pcapng",
                                      "stopddos-packet-captures/amp.dns.RRSIG.fragmented.pcap",
                                      "pcap-attack/Lateral Movement/LM_rdp_sharprdp.pcapng",
                                      "pcap-attack/CredAccess/CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng"])
def test_flow_community_ids_match_wireshark(relative: str) -> None:
    """Against Wireshark's ``communityid`` dissector on each flow's first frame.

    Frames with a second IP header (ICMP errors, GRE) are left out: Wireshark 4.0 then takes each field's
    last occurrence, mixing the outer addresses with the quoted ICMP type, or hashing the tunnelled tuple;
    we hash the outermost headers, the flow we account the frame to. So are IPv6 fragments, for which
    Wireshark 4.0 computes no ID at all (it does hash IPv4 fragments without ports, as we do for both).
    """
    path = shared(relative)
    output = tshark("-r", str(path), "--enable-protocol", "communityid", "-T", "fields", "-e", "frame.number",
                    "-e", "communityid", "-e", "frame.protocols")
    wireshark = {}
    for line in output.splitlines():
        number, value, protocols = line.split("\t")
        layers = protocols.split(":")
        if layers.count("ip") + layers.count("ipv6") == 1 and "ipv6.fraghdr" not in layers:
            wireshark[int(number)] = value
    flows = events(read_all(path), "network_traffic.flow")
    compared = [flow for flow in flows if flow["event"]["sequence"] in wireshark]
    assert compared
    for flow in compared:
        assert flow["network"]["community_id"] == wireshark[flow["event"]["sequence"]]


# --- both engines ----------------------------------------------------------------------------------

ENGINE_CAPTURES = ["chrissanders-packets/dns_lab.pcapng", "chrissanders-packets/http_dvwa_sqlinjection.pcapng",
                   "suricata-verify-pcaps/tests/tls/tls-glupteba/input.pcap",
                   "pcap-attack/CredAccess/CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng",
                   "pcap-attack/CredAccess/CA_LM_SpoolSample_SMB_BiAuth.pcapng",
                   "suricata-verify-pcaps/tests/krb5-kerberoasting/kerberoast.pcap",
                   "chrissanders-packets/icmp_traceroute.pcapng", "chrissanders-packets/http_ip4and6.pcapng",
                   "chrissanders-packets/ipv6_fragments.pcapng"]


def comparable(items: list[Item]) -> list[Any]:
    """Items without ``event.ingested`` (the wall clock at stamping)."""
    result = []
    for item in items:
        if isinstance(item.value, Event):
            fields = {**item.value.fields, "event": {key: value for key, value in item.value.fields["event"].items()
                                                     if key != "ingested"}}
            result.append((item.value.id, fields, item.checkpoint))
        else:
            result.append((item.value, item.checkpoint))
    return result


@pytest.mark.parametrize("relative", ENGINE_CAPTURES)
def test_both_engines_yield_the_same_events(relative: str) -> None:
    path = shared(relative)
    fast = comparable(read_all(path, engine="tshark"))
    assert fast
    assert comparable(read_all(path, engine="pyshark")) == fast


# --- ids, checkpoints, the flow table ----------------------------------------------------------------

def test_ids_follow_the_content_not_the_path(tmp_path: Path) -> None:
    original = shared("chrissanders-packets/dns_lab.pcapng")
    copy = tmp_path / "renamed-copy.pcapng"
    shutil.copyfile(original, copy)
    ids = [document["event"]["id"] for document in events(read_all(original))]
    assert ids and ids == [document["event"]["id"] for document in events(read_all(copy))]
    other = [document["event"]["id"] for document in events(read_all(shared("chrissanders-packets/dns.pcap")))]
    assert not set(ids) & set(other)
    other_tenant = list(read_pcap(original, CollectorContext(tenant="agency-b")))
    assert not set(ids) & {document["event"]["id"] for document in events(other_tenant)}


def capinfos_count(path: Path) -> int:
    output = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)], capture_output=True, text=True,
                            check=True).stdout
    return int(output.split("\t")[-1])


@pytest.mark.parametrize("relative", ["trace-share-ssh-bruteforce/SSH-Hydra/hydra-1_tasks.pcap",
                                      "pcap-attack/CredAccess/CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng"])
def test_checkpoints_settle_and_resume_without_loss(relative: str) -> None:
    path = shared(relative)
    items = read_all(path)
    offsets = [item.checkpoint.offset for item in items]
    assert offsets == sorted(offsets), "checkpoints never move back"
    assert offsets[-1] == capinfos_count(path) + 1, "the last checkpoint is past the last frame"
    assert len({item.checkpoint.source for item in items}) == 1
    sequences = [item.value.fields["event"]["sequence"] for item in items]
    for index, offset in enumerate(offsets):  # committing item k's checkpoint loses nothing that comes later
        assert min(sequences[index + 1:], default=offset) >= offset, f"item {index} settles too far"
    moved = [index for index in range(1, len(items)) if offsets[index] != offsets[index - 1]]
    assert moved
    for cut in sorted({moved[len(moved) // 4], moved[len(moved) // 2] - 1, moved[-2 if len(moved) > 1 else 0]}):
        offset = offsets[cut]
        stored = {document["event"]["id"] for document in events(items[:cut + 1])}
        resumed = read_all(path, start_frame=offset)
        assert all(document["event"]["sequence"] >= offset for document in events(resumed))
        assert stored | {document["event"]["id"] for document in events(resumed)} == {
            document["event"]["id"] for document in events(items)}


def test_flow_table_stays_bounded_and_evicts_the_least_recent() -> None:
    path = shared("stopddos-packet-captures/pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng")  # one flow per spoofed SYN
    assembler = TrafficAssembler(max_flows=64)
    produced = []
    for values in tshark_field_values(path):
        produced += assembler.feed(values)
        assert len(assembler.flows) <= 64
    produced += assembler.flush()
    reasons = Counter(entry.mapped.fields["event"]["reason"] for entry in produced)
    assert reasons["evicted"] > 0
    ip_frames = len(tshark_rows(path, "ip or ipv6", "frame.number"))
    assert sum(entry.mapped.fields["network"]["packets"] for entry in produced) == ip_frames


def micros(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def test_idle_timeout_splits_flows_at_gaps_tshark_sees() -> None:
    """Each flow holds exactly tshark's frames of its tuple between its start and end, none more than the
    idle timeout apart; the SSH brute force pauses often enough for idle splits to happen."""
    path = shared("trace-share-ssh-bruteforce/SSH-Hydra/hydra-1_tasks.pcap")
    timeout = 0.5
    flows = events(read_all(path, flow_idle_timeout=timeout), "network_traffic.flow")
    assert Counter(flow["event"]["reason"] for flow in flows)["idle_timeout"] > 0
    frames: dict[tuple[tuple[str, int], ...], list[int]] = defaultdict(list)
    for source, source_port, destination, destination_port, epoch in tshark_rows(
            path, "tcp", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "frame.time_epoch"):
        seconds, _, fraction = epoch.partition(".")
        frames[tuple(sorted([(source, int(source_port)), (destination, int(destination_port))]))].append(
            int(seconds) * 1_000_000 + int(fraction[:6]))
    for flow in flows:
        start, end = micros(flow["event"]["start"]), micros(flow["event"]["end"])
        inside = [moment for moment in frames[endpoint_pair(flow)] if start <= moment <= end]
        assert len(inside) == flow["network"]["packets"]
        assert all(later - earlier <= timeout * 1_000_000 for earlier, later in itertools.pairwise(inside))


# --- bad input -------------------------------------------------------------------------------------

def test_random_bytes_are_a_parse_error_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "not-really.pcap"
    garbage.write_bytes(os.urandom(4096).replace(b"\n", b"x"))
    if is_pcap(garbage):  # four random bytes could, in theory, be a magic
        pytest.skip("the random bytes started with a capture magic")
    with pytest.raises(ParseError, match=r"not-really\.pcap: not a capture file: expected a pcap magic"):
        read_all(garbage)
    empty = tmp_path / "empty.pcapng"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match=r"empty\.pcapng.*found an empty file"):
        read_all(empty)


def test_valid_header_over_garbage_is_a_parse_error_with_tsharks_reason(tmp_path: Path) -> None:
    damaged = tmp_path / "header-only.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    damaged.write_bytes(header + b"\xff" * 64)
    with pytest.raises(ParseError, match=r"header-only\.pcap: tshark could not read a frame.*damaged or corrupt"):
        read_all(damaged)


@pytest.mark.parametrize("relative", ["trace-share-ssh-bruteforce/SSH-Hydra/hydra-1_tasks.pcap",
                                      "chrissanders-packets/http_espn.pcapng"])
@pytest.mark.parametrize("engine", ["tshark", "pyshark"])
def test_truncated_capture_yields_what_was_readable_then_a_dead_letter(relative: str, engine: str,
                                                                        tmp_path: Path) -> None:
    source = shared(relative)
    truncated = tmp_path / ("cut" + source.suffix)
    with source.open("rb") as stream:
        truncated.write_bytes(stream.read(40_000))
    readable = subprocess.run(["tshark", "-r", str(truncated), "-Y", "ip or ipv6", "-T", "fields", "-e", "frame.len"],
                              capture_output=True, text=True)
    assert readable.returncode != 0, "tshark should call the file damaged"
    lengths = [int(line) for line in readable.stdout.split()]
    items = read_all(truncated, engine=engine)
    assert isinstance(items[-1].value, DeadLetter)
    assert not any(isinstance(item.value, DeadLetter) for item in items[:-1])
    letter = items[-1].value
    assert letter.location.startswith(f"{truncated} after frame ")
    assert "cut short" in letter.reason
    flows = events(items, "network_traffic.flow")
    assert sum(flow["network"]["packets"] for flow in flows) == len(lengths)
    assert sum(flow["network"]["bytes"] for flow in flows) == sum(lengths)


def test_is_pcap_knows_every_magic(tmp_path: Path) -> None:
    magics = ["d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d", "0a0d0d0a", "34cdb2a1", "a1b2cd34"]
    for index, magic in enumerate(magics):
        path = tmp_path / f"m{index}"
        path.write_bytes(bytes.fromhex(magic) + b"\x00" * 20)
        assert is_pcap(path), magic
    for content in (b"", b"\x0a\x0d\x0d", b"GIF89a", b"<?xml"):
        path = tmp_path / "other"
        path.write_bytes(content)
        assert not is_pcap(path)
    assert all(is_pcap(path) for path in CAPTURES)
    assert not is_pcap(SHARED_DATA / "pcap-attack" / "PROVENANCE.md")


# --- live ------------------------------------------------------------------------------------------

def dns_query(identifier: int, name: str) -> bytes:
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack("!HHHHHH", identifier, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def test_live_capture_on_loopback_delivers_messages_and_flows() -> None:
    from collectors.pcap import capture_live

    received: list[Item] = []
    lock = threading.Lock()

    def sink(item: Item) -> None:
        with lock:
            received.append(item)

    def seen(action: str) -> int:
        with lock:
            return sum(1 for item in received if isinstance(item.value, Event)
                       and item.value.fields["event"].get("action") == action)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        client.bind(("127.0.0.1", 0))
        client_port = client.getsockname()[1]
        stop = threading.Event()
        capture = threading.Thread(target=capture_live, args=("lo", CONTEXT, sink),
                                   kwargs={"bpf_filter": f"udp port {port}", "stop": stop}, daemon=True)
        capture.start()
        sent = 0
        deadline = time.monotonic() + 30
        try:  # dumpcap takes a moment to start: send until the capture has seen three queries
            while seen("dns_query") < 3 and time.monotonic() < deadline and capture.is_alive():
                client.sendto(dns_query(0x4242, "civicsoc.example"), ("127.0.0.1", port))
                sent += 1
                time.sleep(0.2)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outsider:  # outside the BPF filter
                outsider.sendto(b"not for us", ("127.0.0.1", port + 1 if port < 65535 else port - 1))
        finally:
            stop.set()
            capture.join(timeout=20)
    assert not capture.is_alive(), "capture_live must return once stop is set"
    queries = [item.value.fields for item in received if isinstance(item.value, Event)
               and item.value.fields["event"].get("action") == "dns_query"]
    assert len(queries) >= 3, f"no DNS events from {sent} datagrams sent on lo"
    for query in queries:
        assert query["dns"]["question"] == {"name": "civicsoc.example", "type": "A", "class": "IN"}
        assert query["dns"]["id"] == str(0x4242)
        assert query["source"] == {"ip": "127.0.0.1", "port": client_port}
        assert query["destination"] == {"ip": "127.0.0.1", "port": port}
        assert query["observer"]["ingress"]["interface"]["name"] == "lo"
    flows = [item.value.fields for item in received if isinstance(item.value, Event)
             and item.value.fields["event"]["dataset"] == "network_traffic.flow"]
    assert len(flows) == 1, "only the filtered port is captured, and its datagrams form one flow"
    assert flows[0]["source"]["port"] == client_port and flows[0]["destination"]["port"] == port
    assert flows[0]["source"]["packets"] == len(queries) <= sent
    assert all(item.checkpoint is None for item in received)
