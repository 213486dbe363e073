"""The DNS core under random input (hypothesis): it never raises, answers nothing only
to packets without an ID or with QR set, answers garbage with FORMERR, and what it
sends back always parses, carries the query's ID, and fits the UDP size."""

from __future__ import annotations

import ipaddress
import struct

import dns.message
import dns.rcode
import dns.zone
from hypothesis import given, settings
from hypothesis import strategies as st

from casarray.dns.handler import Responder
from casarray.dns.zones import ZoneSet

ZONE = """\
$TTL 300
@ SOA ns1 hostmaster 1 900 600 86400 60
@ NS ns1
@ MX 10 mail
ns1 A 127.77.0.53
mail A 127.77.1.10
www CNAME mail
_imaps._tcp SRV 0 1 993 mail
*.wild TXT "w"
"""
BIG = "".join(f'big TXT "{i:03d} {"y" * 100}"\n' for i in range(30))
ZONES = (dns.zone.from_text(ZONE + BIG, origin="lab.net."),)
RESPONDER = Responder(ZoneSet(ZONES, ZONES, (ipaddress.ip_network("127.0.0.0/8"),), 1))
NAMES = [
    "lab.net.",
    "www.lab.net.",
    "mail.lab.net.",
    "x.wild.lab.net.",
    "big.lab.net.",
    "nope.lab.net.",
    "example.com.",
    "_imaps._tcp.lab.net.",
    "LAB.NET.",
]
TYPES = ["A", "AAAA", "MX", "SRV", "TXT", "NS", "SOA", "ANY", "CNAME", "AXFR"]


def check(packet: bytes, *, tcp: bool = False) -> bytes | None:
    reply = RESPONDER.answer(packet, "127.0.0.1", tcp=tcp)
    if reply is None:
        assert len(packet) < 2 or (len(packet) > 2 and packet[2] & 0x80)
        return None
    assert reply[:2] == packet[:2]
    assert reply[2] & 0x80  # QR
    dns.message.from_wire(reply, ignore_trailing=False)  # it parses
    return reply


@settings(max_examples=2000)
@given(st.binary(max_size=600))
def test_random_bytes(packet: bytes) -> None:
    check(packet)
    check(packet, tcp=True)


@settings(max_examples=2000)
@given(st.binary(min_size=12, max_size=300))
def test_garbage_after_a_query_header_is_formerr(body: bytes) -> None:
    # ID, RD, one question: what follows is random, mostly not a valid question.
    packet = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + body
    reply = check(packet)
    assert reply is not None
    rcode = reply[3] & 0xF
    try:
        dns.message.from_wire(packet, ignore_trailing=True)
    except Exception:
        well_formed = False
    else:
        well_formed = True
    if not well_formed:
        assert rcode == dns.rcode.FORMERR
    else:
        assert rcode != dns.rcode.SERVFAIL


@st.composite
def mutated_queries(draw: st.DrawFn) -> bytes:
    query = dns.message.make_query(
        draw(st.sampled_from(NAMES)),
        draw(st.sampled_from(TYPES)),
        use_edns=draw(st.sampled_from([False, 0, 1])),
        payload=draw(st.integers(0, 65535)),
        want_dnssec=draw(st.booleans()),
    )
    packet = bytearray(query.to_wire())
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(packet) - 1))
        packet[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(packet)))
    return bytes(packet[:cut]) if draw(st.booleans()) else bytes(packet)


@settings(max_examples=3000)
@given(mutated_queries(), st.booleans())
def test_mutated_queries(packet: bytes, tcp: bool) -> None:
    reply = check(packet, tcp=tcp)
    if reply is None or tcp:
        return
    # Over UDP the answer fits what the client said it takes.
    limit = 512
    try:
        query = dns.message.from_wire(packet)
    except Exception:
        return
    if query.edns >= 0:
        limit = max(512, query.payload)
    assert len(reply) <= limit, (len(reply), limit)


@settings(max_examples=500)
@given(st.sampled_from(NAMES), st.sampled_from(TYPES), st.integers(0, 0xFFFF))
def test_well_formed_queries_get_their_question_back(name: str, rdtype: str, ident: int) -> None:
    query = dns.message.make_query(name, rdtype)
    query.id = ident
    reply = check(query.to_wire())
    assert reply is not None
    answer = dns.message.from_wire(reply)
    assert answer.question[0].name.to_text() == name  # same case
    assert struct.unpack_from("!H", reply)[0] == ident
    assert answer.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED)
