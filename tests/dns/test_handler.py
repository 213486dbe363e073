"""The DNS core, sans-IO: query bytes in, answer bytes out (transcripts).

Every case the server must get right is here without a socket: AA and RA, the
question's case, NODATA against NXDOMAIN (empty non-terminals too) with the SOA's
negative TTL, CNAME chains, additional addresses, referrals, wildcards, REFUSED,
FORMERR, NOTIMP, EDNS (payload, DO, BADVERS), truncation, the two views and ANY."""

from __future__ import annotations

import ipaddress
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import dns.zone
import pytest

from casarray.dns.handler import Responder
from casarray.dns.zones import ZoneSet

ZONE = """\
$ORIGIN lab.net.
$TTL 3600
@ IN SOA ns1.lab.net. hostmaster.lab.net. 42 900 600 86400 60
@ NS ns1.lab.net.
@ MX 10 mail.lab.net.
@ MX 20 mx.example.com.
ns1 A 127.77.0.53
CAS01 A 127.77.1.11
cas02 A 127.77.1.12
bj-cas A 127.77.1.10
mail A 127.77.1.10
mail AAAA fd00::10
autodiscover CNAME bj-cas.lab.net.
chain CNAME autodiscover.lab.net.
outlook CNAME www.example.com.
dangling CNAME nothere.lab.net.
loop1 CNAME loop2.lab.net.
loop2 CNAME loop1.lab.net.
_autodiscover._tcp SRV 0 1 443 autodiscover.lab.net.
_imaps._tcp SRV 0 1 993 mail.lab.net.
x.y.deep A 192.0.2.1
*.wild A 192.0.2.7
*.wild TXT "wildcard"
sub NS ns.sub.lab.net.
ns.sub A 127.77.0.99
"""
BIG = "".join(f'big TXT "{i:02d} {"x" * 60}"\n' for i in range(40))
SHORT_SOA_TTL = """\
$ORIGIN short.test.
@ 30 IN SOA ns1.short.test. hostmaster.short.test. 1 900 600 86400 3600
@ 30 NS ns1.short.test.
ns1 30 A 127.77.0.53
"""
INSIDE = "127.77.1.50"
OUTSIDE = "198.51.100.7"


def zone(text: str, origin: str) -> dns.zone.Zone:
    return dns.zone.from_text(text, origin=origin)


@pytest.fixture(scope="module")
def responder() -> Responder:
    inside = (zone(ZONE + BIG, "lab.net."), zone(SHORT_SOA_TTL, "short.test."))
    outside_text = "\n".join(line for line in ZONE.splitlines() if not line.startswith("CAS01"))
    outside = (zone(outside_text, "lab.net."), inside[1])
    return Responder(
        ZoneSet(
            inside=inside,
            outside=outside,
            inside_networks=(ipaddress.ip_network("127.77.1.0/24"),),
            serial=42,
        )
    )


def ask(
    responder: Responder,
    name: str,
    rdtype: str = "A",
    *,
    client: str = INSIDE,
    tcp: bool = False,
    **make: object,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **make)  # type: ignore[arg-type]
    wire = responder.answer(query.to_wire(), client, tcp=tcp)
    assert wire is not None
    answer = dns.message.from_wire(wire)
    assert answer.id == query.id
    return answer


def rrsets(section: list[dns.rrset.RRset]) -> set[str]:
    """The RRsets of a section as comparable text (owner case folded)."""
    return {line.lower() for rrset in section for line in rrset.to_text().splitlines()}


def flags(message: dns.message.Message) -> set[str]:
    return set(dns.flags.to_text(message.flags).split())


# -- positive answers ------------------------------------------------------------------


def test_positive_answer_is_authoritative_with_ns_and_glue(responder: Responder) -> None:
    answer = ask(responder, "cas01.lab.net")
    assert answer.rcode() == dns.rcode.NOERROR
    assert flags(answer) == {"QR", "AA", "RD"}  # RA never: no recursion here
    assert rrsets(answer.answer) == {"cas01.lab.net. 3600 in a 127.77.1.11"}
    assert rrsets(answer.authority) == {"lab.net. 3600 in ns ns1.lab.net."}
    assert rrsets(answer.additional) == {"ns1.lab.net. 3600 in a 127.77.0.53"}


def test_question_case_is_preserved_also_on_a_cached_answer(responder: Responder) -> None:
    for name in ("cas02.lab.net", "CaS02.LaB.NeT", "CAS02.LAB.NET"):
        answer = ask(responder, name)
        assert answer.question[0].name.to_text() == name + "."
        assert answer.answer[0].name.to_text() == name + "."  # compressed to the question


def test_rd_and_cd_are_copied_and_ra_stays_clear(responder: Responder) -> None:
    query = dns.message.make_query("cas01.lab.net", "A")
    query.flags = dns.flags.CD  # RD clear, CD set
    wire = responder.answer(query.to_wire(), INSIDE, tcp=False)
    assert wire is not None
    assert flags(dns.message.from_wire(wire)) == {"QR", "AA", "CD"}


def test_mx_and_srv_answers_carry_the_targets_addresses(responder: Responder) -> None:
    mx = ask(responder, "lab.net", "MX")
    assert rrsets(mx.answer) == {
        "lab.net. 3600 in mx 10 mail.lab.net.",
        "lab.net. 3600 in mx 20 mx.example.com.",
    }
    assert rrsets(mx.additional) == {  # mx.example.com is no zone of ours: nothing
        "mail.lab.net. 3600 in a 127.77.1.10",
        "mail.lab.net. 3600 in aaaa fd00::10",
        "ns1.lab.net. 3600 in a 127.77.0.53",
    }
    srv = ask(responder, "_imaps._tcp.lab.net", "SRV")
    assert rrsets(srv.answer) == {"_imaps._tcp.lab.net. 3600 in srv 0 1 993 mail.lab.net."}
    assert "mail.lab.net. 3600 in a 127.77.1.10" in rrsets(srv.additional)
    assert "mail.lab.net. 3600 in aaaa fd00::10" in rrsets(srv.additional)


def test_ns_at_the_apex_has_no_authority_and_its_glue(responder: Responder) -> None:
    answer = ask(responder, "lab.net", "NS")
    assert rrsets(answer.answer) == {"lab.net. 3600 in ns ns1.lab.net."}
    assert answer.authority == []
    assert rrsets(answer.additional) == {"ns1.lab.net. 3600 in a 127.77.0.53"}


def test_an_address_already_in_the_answer_is_not_repeated(responder: Responder) -> None:
    answer = ask(responder, "ns1.lab.net")
    assert rrsets(answer.answer) == {"ns1.lab.net. 3600 in a 127.77.0.53"}
    assert answer.additional == []


# -- negative answers ------------------------------------------------------------------


def test_nodata_has_the_soa_with_the_negative_ttl(responder: Responder) -> None:
    answer = ask(responder, "cas01.lab.net", "AAAA")
    assert answer.rcode() == dns.rcode.NOERROR
    assert "AA" in flags(answer)
    assert answer.answer == []
    # min(SOA TTL 3600, MINIMUM 60)
    assert rrsets(answer.authority) == {
        "lab.net. 60 in soa ns1.lab.net. hostmaster.lab.net. 42 900 600 86400 60"
    }
    # and where the SOA's own TTL is the smaller: min(30, 3600)
    short = ask(responder, "short.test", "TXT")
    assert short.authority[0].ttl == 30


def test_nxdomain_has_the_soa(responder: Responder) -> None:
    answer = ask(responder, "nothere.lab.net")
    assert answer.rcode() == dns.rcode.NXDOMAIN
    assert "AA" in flags(answer)
    assert answer.answer == []
    assert [r.rdtype for r in answer.authority] == [dns.rdatatype.SOA]
    assert answer.authority[0].ttl == 60


@pytest.mark.parametrize("name", ["deep.lab.net", "y.deep.lab.net", "_tcp.lab.net"])
def test_an_empty_non_terminal_is_nodata_not_nxdomain(responder: Responder, name: str) -> None:
    answer = ask(responder, name)
    assert answer.rcode() == dns.rcode.NOERROR
    assert answer.answer == []
    assert [r.rdtype for r in answer.authority] == [dns.rdatatype.SOA]
    below = ask(responder, "z." + name)
    assert below.rcode() == dns.rcode.NXDOMAIN


# -- CNAME -----------------------------------------------------------------------------


def test_cname_chains_are_followed_in_the_zone(responder: Responder) -> None:
    answer = ask(responder, "chain.lab.net")
    assert [(r.name.to_text(), r.rdtype) for r in answer.answer] == [
        ("chain.lab.net.", dns.rdatatype.CNAME),
        ("autodiscover.lab.net.", dns.rdatatype.CNAME),
        ("bj-cas.lab.net.", dns.rdatatype.A),
    ]
    assert "AA" in flags(answer)
    assert rrsets(answer.authority) == {"lab.net. 3600 in ns ns1.lab.net."}


def test_cname_out_of_the_zone_stops_there(responder: Responder) -> None:
    answer = ask(responder, "outlook.lab.net")
    assert answer.rcode() == dns.rcode.NOERROR
    assert rrsets(answer.answer) == {"outlook.lab.net. 3600 in cname www.example.com."}
    assert answer.authority == []


def test_dangling_cname_is_nxdomain_with_the_cname(responder: Responder) -> None:
    answer = ask(responder, "dangling.lab.net")
    assert answer.rcode() == dns.rcode.NXDOMAIN
    assert rrsets(answer.answer) == {"dangling.lab.net. 3600 in cname nothere.lab.net."}
    assert [r.rdtype for r in answer.authority] == [dns.rdatatype.SOA]


def test_cname_loop_ends(responder: Responder) -> None:
    answer = ask(responder, "loop1.lab.net")
    assert answer.rcode() == dns.rcode.NOERROR
    assert [r.name.to_text() for r in answer.answer] == ["loop1.lab.net.", "loop2.lab.net."]


def test_asking_for_the_cname_itself_does_not_chase(responder: Responder) -> None:
    answer = ask(responder, "autodiscover.lab.net", "CNAME")
    assert rrsets(answer.answer) == {"autodiscover.lab.net. 3600 in cname bj-cas.lab.net."}


# -- wildcards, delegations, ANY ---------------------------------------------------------


def test_wildcard_answers_with_the_query_name(responder: Responder) -> None:
    answer = ask(responder, "Anything.wild.lab.net")
    assert rrsets(answer.answer) == {"anything.wild.lab.net. 3600 in a 192.0.2.7"}
    assert answer.answer[0].name.to_text() == "Anything.wild.lab.net."
    nodata = ask(responder, "a.b.wild.lab.net", "MX")
    assert nodata.rcode() == dns.rcode.NOERROR
    assert nodata.answer == [] and nodata.authority[0].rdtype == dns.rdatatype.SOA
    assert ask(responder, "wild.lab.net").rcode() == dns.rcode.NOERROR  # an ENT: NODATA


def test_below_a_delegation_is_a_referral(responder: Responder) -> None:
    for name in ("sub.lab.net", "www.sub.lab.net"):
        answer = ask(responder, name)
        assert answer.rcode() == dns.rcode.NOERROR
        assert "AA" not in flags(answer)
        assert answer.answer == []
        assert rrsets(answer.authority) == {"sub.lab.net. 3600 in ns ns.sub.lab.net."}
        assert rrsets(answer.additional) == {"ns.sub.lab.net. 3600 in a 127.77.0.99"}
    ds = ask(responder, "sub.lab.net", "DS")  # the parent's side of the cut
    assert "AA" in flags(ds) and ds.authority[0].rdtype == dns.rdatatype.SOA


def test_any_gets_one_rrset(responder: Responder) -> None:
    apex = ask(responder, "lab.net", "ANY")
    assert [r.rdtype for r in apex.answer] == [dns.rdatatype.SOA]
    assert apex.authority == [] and apex.additional == []
    mail = ask(responder, "mail.lab.net", "ANY")
    assert [r.rdtype for r in mail.answer] == [dns.rdatatype.A]
    cname = ask(responder, "autodiscover.lab.net", "ANY")
    assert [r.rdtype for r in cname.answer] == [dns.rdatatype.CNAME]
    assert ask(responder, "nothere.lab.net", "ANY").rcode() == dns.rcode.NXDOMAIN


# -- REFUSED, views -----------------------------------------------------------------------


def test_names_outside_our_zones_are_refused(responder: Responder) -> None:
    answer = ask(responder, "www.example.com", use_edns=0)
    assert answer.rcode() == dns.rcode.REFUSED
    assert flags(answer) == {"QR", "RD"}
    assert answer.answer == answer.authority == []
    assert [(o.otype, o.code) for o in answer.options] == [(dns.edns.EDE, 20)]  # type: ignore[attr-defined]
    assert ask(responder, "net").rcode() == dns.rcode.REFUSED  # above our zone


def test_other_classes_and_zone_transfers_are_refused(responder: Responder) -> None:
    assert ask(responder, "version.bind", "TXT", rdclass="CH").rcode() == dns.rcode.REFUSED
    assert ask(responder, "cas01.lab.net", "A", rdclass="CH").rcode() == dns.rcode.REFUSED
    assert ask(responder, "lab.net", "AXFR", tcp=True).rcode() == dns.rcode.REFUSED
    assert ask(responder, "lab.net", "IXFR", tcp=True).rcode() == dns.rcode.REFUSED


def test_views_pick_the_zones_by_client_address(responder: Responder) -> None:
    assert ask(responder, "cas01.lab.net", client=INSIDE).answer
    outside = ask(responder, "cas01.lab.net", client=OUTSIDE)
    assert outside.rcode() == dns.rcode.NXDOMAIN
    public = ask(responder, "autodiscover.lab.net", client=OUTSIDE)
    assert public.rcode() == dns.rcode.NOERROR and public.answer
    mapped = ask(responder, "cas01.lab.net", client="::ffff:" + INSIDE)
    assert mapped.rcode() == dns.rcode.NOERROR and mapped.answer
    assert ask(responder, "cas01.lab.net", client="junk").rcode() == dns.rcode.NXDOMAIN


# -- malformed packets and other opcodes -------------------------------------------------


def query_wire(name: str = "cas01.lab.net", rdtype: str = "A", **make: object) -> bytes:
    return dns.message.make_query(name, rdtype, **make).to_wire()  # type: ignore[arg-type]


def header(wire: bytes) -> tuple[int, int, int, int, int, int]:
    return struct.unpack_from("!6H", wire)


def with_counts(wire: bytes, qd: int, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return wire[:4] + struct.pack("!4H", qd, an, ns, ar) + wire[12:]


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(b"\x12\x34", id="only-an-id"),
        pytest.param(b"\x12\x34\x01\x00\x00\x01\x00", id="short-header"),
        pytest.param(b"\x12\x34\x01\x00" + bytes(8), id="qdcount-0"),
        pytest.param(with_counts(query_wire() + query_wire()[12:], 2), id="qdcount-2"),
        pytest.param(with_counts(query_wire(), 1, an=1), id="ancount-1"),
        pytest.param(with_counts(query_wire(), 1, ns=1), id="nscount-1"),
        pytest.param(query_wire()[:20], id="name-cut-short"),
        pytest.param(query_wire()[:-2], id="class-missing"),
        pytest.param(
            b"\x12\x34\x01\x00\x00\x01" + bytes(6) + b"\xc0\x0c\x00\x01\x00\x01",
            id="compressed-question",
        ),
        pytest.param(
            b"\x12\x34\x01\x00\x00\x01" + bytes(6) + b"\x41abc\x00\x00\x01\x00\x01",
            id="extended-label-type",
        ),
        pytest.param(
            b"\x12\x34\x01\x00\x00\x01" + bytes(6) + b"\x3f" + b"a" * 63 * 5, id="name-too-long"
        ),
        pytest.param(
            with_counts(query_wire(use_edns=0) + query_wire(use_edns=0)[-11:], 1, ar=2),
            id="two-opt",
        ),
        pytest.param(with_counts(query_wire(), 1, ar=1), id="missing-additional"),
    ],
)
def test_malformed_queries_get_formerr(responder: Responder, packet: bytes) -> None:
    wire = responder.answer(packet, INSIDE, tcp=False)
    assert wire is not None
    _, flag_bits, qd, an, ns, ar = header(wire + bytes(12))
    assert wire[:2] == packet[:2]
    assert flag_bits & 0x8000  # QR
    assert flag_bits & 0xF == dns.rcode.FORMERR
    assert (qd, an, ns, ar) == (0, 0, 0, 0)


def test_nothing_is_sent_for_a_response_or_a_packet_without_an_id(responder: Responder) -> None:
    assert responder.answer(b"", INSIDE, tcp=False) is None
    assert responder.answer(b"\x12", INSIDE, tcp=False) is None
    response = bytearray(query_wire())
    response[2] |= 0x80
    assert responder.answer(bytes(response), INSIDE, tcp=False) is None


@pytest.mark.parametrize(
    "opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE]
)
def test_other_opcodes_get_notimp(responder: Responder, opcode: int) -> None:
    query = dns.message.make_query("lab.net", "SOA")
    query.set_opcode(opcode)
    wire = responder.answer(query.to_wire(), INSIDE, tcp=False)
    assert wire is not None
    answer = dns.message.from_wire(wire)
    assert answer.id == query.id
    assert answer.rcode() == dns.rcode.NOTIMP
    assert answer.opcode() == opcode


def test_tsig_gets_notauth(responder: Responder) -> None:
    query = dns.message.make_query("cas01.lab.net", "A")
    query.use_tsig(dns.tsigkeyring.from_text({"key.": "c2VjcmV0c2VjcmV0"}))
    wire = responder.answer(query.to_wire(), INSIDE, tcp=False)
    assert wire is not None
    _, flag_bits, qd, an, _, _ = header(wire)
    assert flag_bits & 0xF == dns.rcode.NOTAUTH
    assert (qd, an) == (1, 0)


def test_bytes_after_the_last_record_are_ignored(responder: Responder) -> None:
    wire = responder.answer(query_wire() + b"junk", INSIDE, tcp=False)
    assert wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NOERROR


# -- EDNS and truncation -----------------------------------------------------------------


def test_edns_is_answered_with_our_payload_and_the_do_bit(responder: Responder) -> None:
    plain = ask(responder, "cas01.lab.net")
    assert plain.edns == -1  # no OPT asked, none given
    edns = ask(responder, "cas01.lab.net", use_edns=0, payload=4096)
    assert (edns.edns, edns.payload) == (0, 1232)
    assert not edns.ednsflags & dns.flags.DO
    do = ask(responder, "cas01.lab.net", use_edns=0, want_dnssec=True)
    assert do.ednsflags & dns.flags.DO
    assert do.answer == edns.answer  # no DNSSEC records either way


def test_edns_version_above_0_gets_badvers(responder: Responder) -> None:
    answer = ask(responder, "cas01.lab.net", use_edns=1)
    assert answer.rcode() == dns.rcode.BADVERS
    assert answer.edns == 0
    assert answer.answer == []


def test_udp_answer_too_big_is_truncated_and_tcp_is_not(responder: Responder) -> None:
    plain = ask(responder, "big.lab.net", "TXT")  # 512 bytes without EDNS
    assert "TC" in flags(plain)
    assert plain.answer == []  # the one RRset doesn't fit: left out whole
    small = ask(responder, "big.lab.net", "TXT", use_edns=0, payload=1232)
    assert "TC" in flags(small) and small.edns == 0 and small.answer == []
    # never more than the 1232 bytes we advertise (no fragments), whatever the client's
    large = ask(responder, "big.lab.net", "TXT", use_edns=0, payload=8192)
    assert "TC" in flags(large) and large.answer == []
    mx = ask(responder, "lab.net", "MX", use_edns=0, payload=8192)
    assert "TC" not in flags(mx) and mx.answer
    tcp = ask(responder, "big.lab.net", "TXT", tcp=True)
    assert "TC" not in flags(tcp) and len(tcp.answer[0]) == 40


def test_payload_below_512_counts_as_512(responder: Responder) -> None:
    answer = ask(responder, "lab.net", "MX", use_edns=0, payload=100)
    assert "TC" not in flags(answer)
    assert len(answer.to_wire()) > 100


def test_optional_sections_are_dropped_without_tc() -> None:
    # One A record fits in 512 bytes, the long NS names in authority don't.
    names = "".join(f"@ NS {'n' * 60}{i}.lab.net.\n" for i in range(8))
    text = "$TTL 300\n@ SOA ns1 hostmaster 1 2 3 4 5\n" + names + "www A 192.0.2.1\n"
    zones = ZoneSet((zone(text, "lab.net."),), (zone(text, "lab.net."),), (), 1)
    answer = ask(Responder(zones), "www.lab.net", client=OUTSIDE)
    assert "TC" not in flags(answer)
    assert rrsets(answer.answer) == {"www.lab.net. 300 in a 192.0.2.1"}
    assert answer.authority == []


# -- an exact transcript ------------------------------------------------------------------


def test_transcript_of_one_answer(responder: Responder) -> None:
    # beef 0100 0001 0000 0000 0000 | 5 CAS01 3 lab 3 net 0 | A IN
    query = (
        bytes.fromhex("beef01000001000000000000") + b"\x05CAS01\x03lab\x03net\x00\x00\x01\x00\x01"
    )
    expected = (
        bytes.fromhex("beef85000001000100010001")  # QR AA RD, 1/1/1/1
        + b"\x05CAS01\x03lab\x03net\x00\x00\x01\x00\x01"  # the question, its case kept
        + bytes.fromhex("c00c 0001 0001 00000e10 0004 7f4d010b".replace(" ", ""))
        + bytes.fromhex("c012 0002 0001 00000e10 0006".replace(" ", ""))
        + b"\x03ns1\xc0\x12"
        + bytes.fromhex("c03b 0001 0001 00000e10 0004 7f4d0035".replace(" ", ""))
    )
    assert responder.answer(query, INSIDE, tcp=False) == expected


def test_an_rrset_beyond_64k_is_left_out_with_tc_even_over_tcp() -> None:
    huge = "".join(f'huge TXT "{i:04d} {"z" * 240}"\n' for i in range(300))
    text = "$TTL 300\n@ SOA ns1 hostmaster 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n" + huge
    zones = ZoneSet((zone(text, "t.test."),), (zone(text, "t.test."),), (), 1)
    answer = ask(Responder(zones), "huge.t.test", "TXT", client=OUTSIDE, tcp=True, use_edns=0)
    assert "TC" in flags(answer)
    assert answer.answer == [] and answer.edns == 0
