"""The pure network mappers, on field dicts copied from real frames (``tshark -T fields -E occurrence=a``
output of the shared captures, named at each test) and hand-checked expectations."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import communityid
import pytest

from collectors.base import ParseError
from collectors.ecs.network import (
    FlowSummary,
    community_id,
    epoch_ns,
    is_client_hello,
    is_ntlm_authenticate,
    kerberos_client,
    map_dns,
    map_flow,
    map_http,
    map_kerberos,
    map_ntlm_authenticate,
    map_tls_client_hello,
    packet_from_values,
)


def frame(protocols: str, **fields: list[str] | str) -> dict[str, list[str]]:
    """A field dict as the engines build it; keyword names use ``__`` for the dots of tshark names."""
    values: dict[str, list[str]] = {"frame.number": ["7"], "frame.time_epoch": ["1490971523.828324000"],
                                    "frame.len": ["100"], "frame.protocols": [protocols]}
    for name, value in fields.items():
        values[name.replace("__", ".")] = [value] if isinstance(value, str) else value
    return values


def udp_frame(protocols: str = "eth:ethertype:ip:udp:dns", **fields: list[str] | str) -> dict[str, list[str]]:
    return frame(protocols, ip__src="10.0.0.1", ip__dst="10.0.0.53", ip__proto="17", udp__srcport="5353",
                 udp__dstport="53", **fields)


# --- packets ---------------------------------------------------------------------------------------

def test_icmp_error_is_addressed_by_its_outer_header() -> None:
    # icmp_traceroute.pcapng frame 26: a time-exceeded quoting the traced echo request
    values = {"frame.number": ["26"], "frame.time_epoch": ["1246563754.679342000"], "frame.len": ["182"],
              "frame.protocols": ["eth:ethertype:ip:icmp:ip:icmp:data"],
              "ip.src": ["12.122.133.110", "192.168.100.138"], "ip.dst": ["192.168.100.138", "4.2.2.1"],
              "ip.proto": ["1", "1"], "icmp.type": ["11", "8"], "icmp.code": ["0", "0"]}
    packet = packet_from_values(values)
    assert packet is not None
    assert (packet.source_ip, packet.destination_ip) == ("12.122.133.110", "192.168.100.138")
    assert (packet.transport, packet.iana_number, packet.icmp_type, packet.icmp_code) == ("icmp", 1, 11, 0)
    assert packet.source_port is None and packet.protocol is None
    assert packet.time_ns == 1_246_563_754_679_342_000 and packet.length == 182


def test_first_fragment_has_transport_but_no_ports() -> None:
    # amp.dns.RRSIG.fragmented.pcap frame 1: the UDP header is only dissected once reassembled
    values = {"frame.number": ["1"], "frame.time_epoch": ["1632239124.430031000"], "frame.len": ["1490"],
              "frame.protocols": ["eth:ethertype:ip:data"], "ip.src": ["45.179.193.111"],
              "ip.dst": ["10.10.10.10"], "ip.proto": ["17"]}
    packet = packet_from_values(values)
    assert packet is not None
    assert (packet.transport, packet.source_port, packet.destination_port, packet.protocol) == ("udp", None, None,
                                                                                                None)


def test_ipv6_fragment_takes_the_protocol_from_the_fragment_header() -> None:
    # ipv6_fragments.pcapng frame 1
    values = {"frame.number": ["1"], "frame.time_epoch": ["1409713333.192548000"], "frame.len": ["1510"],
              "frame.protocols": ["eth:ethertype:ipv6:ipv6.fraghdr:data"], "ipv6.src": ["2001:db8:1:2::1003"],
              "ipv6.dst": ["2001:db8:1:2::1000"], "ipv6.nxt": ["44"], "ipv6.fraghdr.nxt": ["58"]}
    packet = packet_from_values(values)
    assert packet is not None
    assert (packet.ip_version, packet.iana_number, packet.transport) == (6, 58, "ipv6-icmp")


def test_frame_without_ip_is_no_packet() -> None:
    assert packet_from_values(frame("eth:ethertype:arp")) is None


def test_ip_frame_without_addresses_is_a_parse_error_naming_the_frame() -> None:
    with pytest.raises(ParseError, match=r"frame 7: IPv4 layer without source"):
        packet_from_values(frame("eth:ethertype:ip:_ws.malformed", ip__proto="6"))


@pytest.mark.parametrize(("protocols", "expected"), [
    ("eth:ethertype:ip:tcp:nbss:smb2:gss-api:spnego:ntlmssp:ntlmssp", "smb2"),
    ("eth:ethertype:ip:tcp:tpkt:cotp:rdp", "rdp"),
    ("eth:ethertype:ip:tcp:tls:x509sat:x509sat", "tls"),
    ("sll:ethertype:ip:tcp:nbss:smb:gss-api:spnego", "smb"),
    ("eth:ethertype:ip:tcp:data", None),
    ("eth:ethertype:ip:tcp", None),
    ("eth:ethertype:ip:tcp:_ws.malformed", None),
])
def test_application_protocol_skips_framing_layers(protocols: str, expected: str | None) -> None:
    values = frame(protocols, ip__src="10.0.0.1", ip__dst="10.0.0.2", ip__proto="6", tcp__srcport="49152",
                   tcp__dstport="445", tcp__flags="0x0018")
    packet = packet_from_values(values)
    assert packet is not None
    assert packet.protocol == expected
    assert packet.tcp_flags == 0x18


def test_epoch_is_exact_to_the_nanosecond() -> None:
    assert epoch_ns("1490971523.828324000") == 1_490_971_523_828_324_000
    assert epoch_ns("0.000000001") == 1
    assert epoch_ns("12") == 12_000_000_000


# --- DNS -------------------------------------------------------------------------------------------

def test_dns_query() -> None:
    # dns_lab.pcapng frame 1
    packet = packet_from_values(udp_frame(dns__id="0x1a16", dns__flags__response="0", dns__flags__opcode="0",
                                          dns__flags__recdesired="1", dns__count__queries="1",
                                          dns__count__answers="0", dns__count__auth_rr="0",
                                          dns__count__add_rr="0", dns__qry__name="microsoft.com",
                                          dns__qry__type="1", dns__qry__class="0x0001"))
    [mapped] = map_dns(packet)
    dns = mapped.fields["dns"]
    assert dns == {"type": "query", "id": "6678", "op_code": "QUERY", "header_flags": ["RD"],
                   "question": {"name": "microsoft.com", "type": "A", "class": "IN"}}
    assert mapped.fields["event"]["type"] == ["protocol"] and mapped.fields["event"]["category"] == ["network"]
    assert mapped.fields["source"] == {"ip": "10.0.0.1", "port": 5353}
    assert mapped.dataset == "network_traffic.dns" and mapped.module == "network_traffic"
    assert mapped.timestamp == datetime(2017, 3, 31, 14, 45, 23, 828324, tzinfo=UTC)


def test_dns_answers_line_up_across_types_and_skip_opt() -> None:
    # A CNAME chain, then an A; an NS in authority, an OPT (no class/TTL fields) and a glue A in additional.
    packet = packet_from_values(udp_frame(
        dns__id="0x0100", dns__flags__response="1", dns__flags__opcode="0", dns__flags__rcode="0",
        dns__flags__recdesired="1", dns__flags__recavail="1", dns__flags__authoritative="0",
        dns__count__queries="1", dns__count__answers="2", dns__count__auth_rr="1", dns__count__add_rr="2",
        dns__qry__name="www.example.org", dns__qry__type="1", dns__qry__class="0x0001",
        dns__resp__name=["www.example.org", "web.example.net", "example.net", "<Root>", "ns1.example.net"],
        dns__resp__type=["5", "1", "2", "41", "1"],
        dns__resp__class=["0x0001", "0x0001", "0x0001", "0x0001"],
        dns__resp__ttl=["300", "60", "3600", "3600"],
        dns__resp__len=["18", "4", "6", "0", "4"],
        dns__resp__z__do="1",
        dns__cname="web.example.net", dns__a=["192.0.2.10", "192.0.2.53"], dns__ns="ns1.example.net",
    ))
    [mapped] = map_dns(packet)
    dns = mapped.fields["dns"]
    assert dns["answers"] == [
        {"name": "www.example.org", "type": "CNAME", "class": "IN", "ttl": 300, "data": "web.example.net"},
        {"name": "web.example.net", "type": "A", "class": "IN", "ttl": 60, "data": "192.0.2.10"},
    ]
    assert dns["resolved_ip"] == ["192.0.2.10"]
    assert dns["response_code"] == "NOERROR"
    assert dns["header_flags"] == ["RD", "RA", "DO"]
    assert "192.0.2.10" in mapped.fields["related"]["ip"]


def test_dns_txt_strings_fill_their_record() -> None:
    # learn.netrack.github.com.pcap frame 2 (dns2tcp): one TXT record of two strings, the second empty
    packet = packet_from_values(udp_frame(
        dns__id="0x518f", dns__flags__response="1", dns__flags__rcode="3", dns__count__queries="1",
        dns__count__answers="2", dns__qry__name="q.hidemyself.org", dns__qry__type="16",
        dns__resp__name=["q.hidemyself.org", "q.hidemyself.org"], dns__resp__type=["16", "16"],
        dns__resp__class=["0x0001", "0x8001"], dns__resp__ttl=["3", "3"], dns__resp__len=["13", "6"],
        dns__txt=["Aq+YAAHwIEA", "", "abcde"], dns__txt__length=["11", "0", "5"],
    ))
    [mapped] = map_dns(packet)
    answers = mapped.fields["dns"]["answers"]
    assert [answer["data"] for answer in answers] == ["Aq+YAAHwIEA", "abcde"]
    assert answers[1]["class"] == "IN"  # the mDNS cache-flush bit is not part of the class
    assert mapped.fields["dns"]["response_code"] == "NXDOMAIN"
    assert "resolved_ip" not in mapped.fields["dns"]


# --- HTTP ------------------------------------------------------------------------------------------

def tcp_frame(protocols: str, **fields: list[str] | str) -> dict[str, list[str]]:
    return frame(protocols, ip__src="10.2.2.1", ip__dst="10.2.2.104", ip__proto="6", tcp__srcport="50000",
                 tcp__dstport="80", tcp__flags="0x0018", **fields)


def test_http_request_url_parts() -> None:
    # http_dvwa_sqlinjection.pcapng frame 4
    packet = packet_from_values(tcp_frame(
        "eth:ethertype:ip:tcp:http", http__request__method="GET",
        http__request__uri="/dvwa/vulnerabilities/sqli/?id=%25%27+or+%270%27%3D%270&Submit=Submit",
        http__request__version="HTTP/1.1", http__host="10.2.2.104:8080", http__user_agent="Mozilla/5.0"))
    [mapped] = map_http(packet)
    assert mapped.fields["http"] == {"request": {"method": "GET"}, "version": "1.1"}
    assert mapped.fields["url"] == {
        "original": "/dvwa/vulnerabilities/sqli/?id=%25%27+or+%270%27%3D%270&Submit=Submit",
        "path": "/dvwa/vulnerabilities/sqli/", "query": "id=%25%27+or+%270%27%3D%270&Submit=Submit",
        "domain": "10.2.2.104", "port": 8080,
        "full": "http://10.2.2.104:8080/dvwa/vulnerabilities/sqli/?id=%25%27+or+%270%27%3D%270&Submit=Submit",
    }
    assert mapped.fields["user_agent"] == {"original": "Mozilla/5.0"}


def test_http_absolute_form_and_ipv6_host() -> None:
    packet = packet_from_values(tcp_frame("eth:ethertype:ip:tcp:http", http__request__method="CONNECT",
                                          http__request__uri="http://[2001:db8::1]:3128/x",
                                          http__host="[2001:db8::1]:3128"))
    [mapped] = map_http(packet)
    assert mapped.fields["url"]["domain"] == "2001:db8::1"
    assert mapped.fields["url"]["port"] == 3128
    assert mapped.fields["url"]["full"] == "http://[2001:db8::1]:3128/x"


def test_http_response_carries_its_request_url() -> None:
    # http_dvwa_sqlinjection.pcapng frame 7
    packet = packet_from_values(tcp_frame(
        "eth:ethertype:ip:tcp:http:data-text-lines", http__response__code="404", http__response__version="HTTP/1.1",
        http__response__phrase="Not Found", http__response_for__uri="http://10.2.2.104/missing?a=1",
        http__content_type="text/html"))
    [mapped] = map_http(packet)
    assert mapped.fields["http"] == {"response": {"status_code": 404, "mime_type": "text/html"}, "version": "1.1"}
    assert mapped.fields["url"]["path"] == "/missing" and mapped.fields["url"]["query"] == "a=1"
    assert mapped.fields["event"]["outcome"] == "failure"


# --- TLS -------------------------------------------------------------------------------------------

def test_tls_client_hello_reports_the_highest_offered_version_without_grease() -> None:
    packet = packet_from_values(tcp_frame(
        "eth:ethertype:ip:tcp:tls", tls__handshake__type="1", tls__handshake__version="0x0303",
        tls__handshake__extensions__supported_version=["0x7a7a", "0x0304", "0x0303"],
        tls__handshake__extensions_server_name="example.org",
        tls__handshake__ja3="d41d8cd98f00b204e9800998ecf8427e"))
    assert is_client_hello(packet)
    mapped = map_tls_client_hello(packet)
    assert mapped.fields["tls"] == {"version_protocol": "tls", "version": "1.3",
                                    "client": {"server_name": "example.org",
                                               "ja3": "d41d8cd98f00b204e9800998ecf8427e"}}
    assert mapped.fields["destination"]["domain"] == "example.org"


def test_sslv2_format_hello_has_its_version_and_no_ja3() -> None:
    # tls-glupteba input.pcap frame 4: an SSLv2-format ClientHello offering TLS 1.0
    packet = packet_from_values(tcp_frame("eth:ethertype:ip:tcp:tls", tls__handshake__type="1",
                                          tls__handshake__version="0x0301"))
    mapped = map_tls_client_hello(packet)
    assert mapped.fields["tls"] == {"version_protocol": "tls", "version": "1.0", "client": {}}


def test_server_hello_is_not_a_client_hello() -> None:
    packet = packet_from_values(tcp_frame("eth:ethertype:ip:tcp:tls", tls__handshake__type=["2", "11", "14"]))
    assert not is_client_hello(packet)


# --- Kerberos --------------------------------------------------------------------------------------

def kerberos_frame(**fields: list[str] | str) -> dict[str, list[str]]:
    return frame("eth:ethertype:ip:tcp:kerberos", ip__src="192.168.56.10", ip__dst="192.168.56.2",
                 ip__proto="6", tcp__srcport="49700", tcp__dstport="88", tcp__flags="0x0018", **fields)


def test_tgs_request_names_the_requested_service_not_the_tgt() -> None:
    # kerberoast.pcap frame 4: the TGT (krbtgt/OFFENSE.LOCAL) rides in the AP-REQ before the body
    packet = packet_from_values(kerberos_frame(
        kerberos__msg_type=["12", "14"], kerberos__etype=["18", "18"], kerberos__sname_string=["2", "2"],
        kerberos__SNameString=["krbtgt", "OFFENSE.LOCAL", "HTTP", "dc-mantvydas.offense.local"],
        kerberos__realm=["OFFENSE.LOCAL", "OFFENSE.LOCAL"]))
    mapped = map_kerberos(packet)
    assert mapped.fields["kerberos"] == {"msg_type": "TGS-REQ", "service": "HTTP/dc-mantvydas.offense.local",
                                         "realm": "OFFENSE.LOCAL"}
    assert "user" not in mapped.fields
    assert mapped.fields["source"]["port"] == 49700  # a request travels from the client
    assert kerberos_client(packet) is None


def test_tgs_reply_names_user_ticket_cipher_and_puts_the_client_in_source() -> None:
    # kerberoast.pcap frame 7: the RC4 service ticket a kerberoasting tool asks for
    values = kerberos_frame(
        kerberos__msg_type="13", kerberos__etype=["23", "18"], kerberos__sname_string="2",
        kerberos__cname_string="1", kerberos__SNameString=["HTTP", "dc-mantvydas.offense.local"],
        kerberos__CNameString="spotless", kerberos__realm="OFFENSE.LOCAL", kerberos__crealm="OFFENSE.LOCAL")
    values["tcp.srcport"], values["tcp.dstport"] = ["88"], ["49700"]
    values["ip.src"], values["ip.dst"] = ["192.168.56.2"], ["192.168.56.10"]
    mapped = map_kerberos(packet_from_values(values))
    assert mapped.fields["user"] == {"name": "spotless", "domain": "OFFENSE.LOCAL"}
    assert mapped.fields["kerberos"]["ticket_etype"] == "rc4-hmac"
    assert mapped.fields["source"] == {"ip": "192.168.56.10", "port": 49700}
    assert mapped.fields["event"]["outcome"] == "success"
    assert mapped.fields["event"]["category"] == ["authentication"]


def test_krb_error_takes_the_user_of_the_request_it_answers() -> None:
    # CA_kerbrute_passwordspray_kerberos_AS-REQ.pcapng frames 5 (AS-REQ for "admin") and 10 (its error)
    request = packet_from_values(kerberos_frame(
        kerberos__msg_type="10", kerberos__cname_string="1", kerberos__CNameString="admin",
        kerberos__sname_string="2", kerberos__SNameString=["krbtgt", "THREEBEESCO.COM"],
        kerberos__realm="THREEBEESCO.COM"))
    assert kerberos_client(request) == ("admin", "THREEBEESCO.COM")
    error = packet_from_values(kerberos_frame(
        kerberos__msg_type="30", kerberos__sname_string="2", kerberos__SNameString=["krbtgt", "THREEBEESCO.COM"],
        kerberos__realm="THREEBEESCO.COM", kerberos__error_code="24"))
    mapped = map_kerberos(error, requested_by=kerberos_client(request))
    assert mapped.fields["user"] == {"name": "admin", "domain": "THREEBEESCO.COM"}
    assert mapped.fields["kerberos"]["error"] == "KDC_ERR_PREAUTH_FAILED"
    assert mapped.fields["event"]["outcome"] == "failure"
    assert "user" not in map_kerberos(error).fields


# --- NTLM ------------------------------------------------------------------------------------------

def smb_frame(**fields: list[str] | str) -> dict[str, list[str]]:
    return frame("eth:ethertype:ip:tcp:nbss:smb2:gss-api:spnego:ntlmssp:ntlmssp", ip__src="172.16.66.37",
                 ip__dst="172.16.66.36", ip__proto="6", tcp__srcport="50199", tcp__dstport="445",
                 tcp__flags="0x0018", **fields)


def test_ntlm_authenticate_names_user_domain_and_workstation() -> None:
    # CA_LM_SpoolSample_SMB_BiAuth.pcapng frame 11
    packet = packet_from_values(smb_frame(ntlmssp__messagetype=["0x00000003"], ntlmssp__auth__username="lgreen",
                                          ntlmssp__auth__domain="3B", ntlmssp__auth__hostname="02694W-WIN10",
                                          ntlmssp__ntlmv2_response__rversion="1"))
    assert is_ntlm_authenticate(packet)
    mapped = map_ntlm_authenticate(packet)
    assert mapped.fields["user"] == {"name": "lgreen", "domain": "3B"}
    assert mapped.fields["ntlmssp"] == {"anonymous": False, "version": "v2", "user": "lgreen", "domain": "3B",
                                        "host": "02694W-WIN10"}
    assert mapped.fields["network"]["protocol"] == "smb2"
    assert mapped.fields["source"]["ip"] == "172.16.66.37"


def test_anonymous_ntlm_logon_has_no_user() -> None:
    # CA_LM_SpoolSample_SMB_BiAuth.pcapng frame 48: tshark prints the empty strings as NULL
    packet = packet_from_values(smb_frame(ntlmssp__messagetype="0x00000003", ntlmssp__auth__username="NULL",
                                          ntlmssp__auth__domain="NULL", ntlmssp__auth__hostname="01566S-WIN16-IR"))
    mapped = map_ntlm_authenticate(packet)
    assert "user" not in mapped.fields
    assert mapped.fields["ntlmssp"] == {"anonymous": True, "host": "01566S-WIN16-IR"}


def test_ntlm_challenge_is_not_an_authentication() -> None:
    assert not is_ntlm_authenticate(packet_from_values(smb_frame(ntlmssp__messagetype="0x00000002")))


# --- flows and Community ID ------------------------------------------------------------------------

def test_flow_summary_fields() -> None:
    flow = FlowSummary(first_frame=3, ip_version=4, iana_number=6, transport="tcp", source_ip="10.0.0.1",
                       source_port=50000, destination_ip="10.0.0.2", destination_port=22, protocol="ssh",
                       start_ns=1_000_000_000_123, end_ns=3_000_000_000_456, source_bytes=500, source_packets=5,
                       destination_bytes=700, destination_packets=4, community_id="1:x", end_reason="fin")
    mapped = map_flow(flow)
    fields = mapped.fields
    assert fields["source"] == {"ip": "10.0.0.1", "port": 50000, "bytes": 500, "packets": 5}
    assert fields["destination"] == {"ip": "10.0.0.2", "port": 22, "bytes": 700, "packets": 4}
    assert fields["network"]["bytes"] == 1200 and fields["network"]["packets"] == 9
    assert fields["network"]["protocol"] == "ssh" and fields["network"]["transport"] == "tcp"
    assert fields["event"]["duration"] == 2_000_000_000_333
    assert fields["event"]["start"] == "1970-01-01T00:16:40.000000Z"
    assert fields["event"]["type"] == ["connection"] and fields["event"]["category"] == ["network"]
    assert mapped.timestamp == datetime(1970, 1, 1, 0, 16, 40, tzinfo=UTC)


def test_community_id_agrees_with_the_reference_package() -> None:
    reference = communityid.CommunityID()
    generator = random.Random(20240607)
    for _ in range(500):
        if generator.random() < 0.5:
            source, destination = (".".join(str(generator.randint(0, 255)) for _ in range(4)) for _ in range(2))
        else:
            source, destination = (f"2001:db8::{generator.randint(0, 3):x}" for _ in range(2))
        proto = generator.choice([6, 17, 132])
        sport, dport = generator.randint(0, 65535), generator.choice([53, 80, generator.randint(0, 65535)])
        assert community_id(proto, source, destination, sport, dport) == reference.calc(
            communityid.FlowTuple(proto, source, destination, sport, dport))
        assert community_id(47, source, destination, None, None) == reference.calc(
            communityid.FlowTuple.make_ip(source, destination, 47))


def test_community_id_pairs_icmp_echo_and_hashes_fragments_without_ports() -> None:
    request = community_id(1, "192.168.100.138", "4.2.2.1", None, None, 8, 0)
    reply = community_id(1, "4.2.2.1", "192.168.100.138", None, None, 0, 0)
    assert request == reply
    # Wireshark's own value for amp.dns.RRSIG.fragmented.pcap frame 1 (a first UDP fragment):
    # tshark -r ... --enable-protocol communityid -T fields -e communityid
    assert community_id(17, "45.179.193.111", "10.10.10.10", None, None) == "1:0yEAQp5PRG+dOS8Qp/9qTIClI8I="
