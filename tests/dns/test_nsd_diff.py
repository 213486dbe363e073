"""Differential test against NSD (Debian's nsd): the same zone, the same queries, the
same answers.

Two zones are served by both servers:

- the directory's lab.net (BJ/SH topology, an array behind an NLB cluster, CNAMEs and
  a large TXT set added by cmdlet), exported with Export-DnsServerZone's code for
  NSD, and served by a running `casarray dns run`;
- a zone written here with what the directory doesn't make (wildcards, a delegation
  with glue, a dangling CNAME, a CNAME out of the zone), given to NSD as a file and
  to casarray's Responder as a dnspython zone.

For every query, over UDP and TCP, with and without EDNS, the rcode, the flags (QR,
AA, TC, RD, RA), the question (its case included), and the answer, authority and
additional sections (as sets: the order within a section is free) must be equal.
NSD runs with its defaults (RRL off): its positive answers carry the zone's NS in
authority and the name servers' addresses in additional, and so do ours."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.zone
import pytest

from casarray.directory import Directory
from casarray.dns.dns_process import read_status
from casarray.dns.export import export_zone
from casarray.dns.handler import Responder
from casarray.dns.zones import ZoneSet
from tests.conftest import build_bj
from tests.dns.nsd import NSD_ADDRESS, Nsd, nsd_missing, start_nsd, stop_nsd

CASARRAY_ADDRESS = "127.77.54.1"
LONG_TEXT = "nsd and casarray " * 12

HANDMADE = """\
$ORIGIN hand.test.
$TTL 300
@ IN SOA ns1.hand.test. hostmaster.hand.test. 7 900 600 86400 120
@ NS ns1.hand.test.
@ MX 10 mx.hand.test.
@ MX 20 mx.elsewhere.example.
ns1 A 127.77.0.53
ns1 AAAA fd00::53
mx A 192.0.2.25
www A 192.0.2.80
alias CNAME www.hand.test.
MixedCase A 192.0.2.81
tomixed CNAME mixedcase.hand.test.
away CNAME www.elsewhere.example.
dangling CNAME gone.hand.test.
*.wild A 192.0.2.7
*.wild TXT "any name below wild"
a.b.c.deep TXT "deep"
_ldap._tcp SRV 0 100 389 www.hand.test.
_ldap._tcp SRV 0 100 389 mx.hand.test.
sub NS ns.sub.hand.test.
bigalias CNAME big.hand.test.
mid TXT "{m200}" "{n210}"
mid2 TXT "{m200}" "{n250}"
sub NS ns1.hand.test.
ns.sub A 192.0.2.53
"""


@pytest.fixture(scope="module", autouse=True)
def _nsd_needed() -> None:
    if (missing := nsd_missing()) is not None:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)


@dataclass
class Pair:
    """One zone served by both: how to ask each."""

    nsd: Nsd
    casarray_port: int | None  # a running `casarray dns run`, or
    responder: Responder | None  # the Responder, asked directly

    def ask_nsd(self, query: dns.message.Message, tcp: bool) -> bytes:
        return exchange(query.to_wire(), NSD_ADDRESS, self.nsd.port, tcp)

    def ask_casarray(self, query: dns.message.Message, tcp: bool) -> bytes:
        if self.responder is not None:
            answer = self.responder.answer(query.to_wire(), "127.0.0.1", tcp=tcp)
            assert answer is not None
            return answer
        assert self.casarray_port is not None
        return exchange(query.to_wire(), CASARRAY_ADDRESS, self.casarray_port, tcp)


def exchange(wire: bytes, address: str, port: int, tcp: bool) -> bytes:
    import socket
    import struct

    if tcp:
        with socket.create_connection((address, port), timeout=5) as sock:
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
                chunk = sock.recv(65535)
                assert chunk
                data += chunk
            return data[2:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(wire, (address, port))
        return sock.recv(65535)


@pytest.fixture(scope="module")
def directory_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    home = tmp_path_factory.mktemp("diff-home")
    url = f"sqlite:///{home / 'directory.db'}"
    with Directory.open(url) as d:
        build_bj(d)
        d.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
        d.nlb.new_cluster("bj-cas.lab.net", "127.77.1.10", array="BJ CAS Array")
        d.dns.add_record("lab.net", "owa", "CNAME", "bj-cas.lab.net.")
        d.dns.add_record("lab.net", "webmail", "CNAME", "owa.lab.net.")
        d.dns.add_record("lab.net", "x.deep", "A", "192.0.2.1")
        d.dns.add_record("lab.net", "cas01", "AAAA", "fd00::11")
        for i in range(12):
            d.dns.add_record("lab.net", "big", "TXT", f"{i} {LONG_TEXT}")
        export_zone(d, "lab.net", str(home / "lab.net.zone"))
    nsd = start_nsd(home, {"lab.net": home / "lab.net.zone"})
    env = {**os.environ, "CASARRAY_HOME": str(home)}
    command = ["dns", "run", "--directory", url, "--address", CASARRAY_ADDRESS, "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "casarray", *command],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while status is None and time.monotonic() < deadline and proc.poll() is None:
            status = read_status(home)
            time.sleep(0.05)
        assert status is not None, "casarray dns run didn't start"
        yield Pair(nsd, int(status["port"]), None)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        stop_nsd(nsd)


@pytest.fixture(scope="module")
def handmade_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("diff-hand")
    text = HANDMADE.format(m200="m" * 200, n210="n" * 210, n250="n" * 250) + "".join(
        f'big TXT "{i} {LONG_TEXT}"\n' for i in range(12)
    )
    (folder / "hand.test.zone").write_text(text)
    zone = dns.zone.from_text(text, origin="hand.test.")
    responder = Responder(ZoneSet((zone,), (zone,), (ipaddress.ip_network("127.0.0.0/8"),), 7))
    nsd = start_nsd(folder, {"hand.test": folder / "hand.test.zone"})
    try:
        yield Pair(nsd, None, responder)
    finally:
        stop_nsd(nsd)


def comparable(wire: bytes) -> dict[str, object]:
    message = dns.message.from_wire(wire)
    flags = dns.flags.Flag
    return {
        "rcode": dns.rcode.to_text(message.rcode()),
        "flags": sorted(
            f.name or ""
            for f in (flags.QR, flags.AA, flags.TC, flags.RD, flags.RA)
            if message.flags & f
        ),
        "question": [rrset.to_text() for rrset in message.question],  # case and all
        "answer": sorted(line for r in message.answer for line in r.to_text().splitlines()),
        "answer owners": [r.name.to_text() for r in message.answer],  # case and all
        "authority": sorted(line for r in message.authority for line in r.to_text().splitlines()),
        "additional": sorted(line for r in message.additional for line in r.to_text().splitlines()),
        "edns": (message.edns, message.payload if message.edns >= 0 else None),
        "do": bool(message.ednsflags & dns.flags.DO),
    }


# (name, type, how): how = "udp" | "tcp" | "noedns" | "norec" | "do" | "bufsize=N"
DIRECTORY_QUERIES = [
    ("cas01.lab.net", "A", "udp"),
    ("cas01.lab.net", "A", "tcp"),
    ("cas01.lab.net", "A", "noedns"),
    ("cas01.lab.net", "A", "norec"),
    ("cas01.lab.net", "A", "do"),
    ("nothere.lab.net", "A", "do"),
    ("CaS01.LaB.NeT", "A", "udp"),  # case preserved
    ("CAS02.LAB.NET", "A", "tcp"),
    ("cas01.lab.net", "AAAA", "udp"),
    ("cas02.lab.net", "AAAA", "udp"),  # NODATA
    ("cas02.lab.net", "MX", "noedns"),  # NODATA
    ("nothere.lab.net", "A", "udp"),  # NXDOMAIN
    ("a.b.nothere.lab.net", "TXT", "tcp"),  # NXDOMAIN
    ("deep.lab.net", "A", "udp"),  # empty non-terminal
    ("_tcp.lab.net", "SRV", "udp"),  # empty non-terminal
    ("x.deep.lab.net", "A", "udp"),
    ("owa.lab.net", "A", "udp"),  # CNAME chased
    ("webmail.lab.net", "A", "udp"),  # two CNAMEs
    ("webmail.lab.net", "AAAA", "udp"),  # CNAMEs then NODATA
    ("webmail.lab.net", "CNAME", "udp"),
    ("lab.net", "MX", "udp"),  # additional: mail's address
    ("lab.net", "NS", "udp"),
    ("lab.net", "SOA", "udp"),
    ("lab.net", "ANY", "udp"),
    ("_autodiscover._tcp.lab.net", "SRV", "udp"),  # additional: autodiscover's address
    ("_imaps._tcp.lab.net", "SRV", "tcp"),
    ("mail.lab.net", "A", "udp"),
    ("ns1.lab.net", "A", "udp"),
    ("big.lab.net", "TXT", "noedns"),  # TC
    ("big.lab.net", "TXT", "udp"),  # TC at 1232
    ("big.lab.net", "TXT", "bufsize=4096"),  # TC: at most 1232 for both
    ("lab.net", "MX", "bufsize=4096"),
    ("big.lab.net", "TXT", "tcp"),
    ("www.example.com", "A", "udp"),  # REFUSED
    ("net", "NS", "udp"),  # REFUSED
    ("example.com", "SOA", "noedns"),  # REFUSED
]

HANDMADE_QUERIES = [
    ("x.wild.hand.test", "A", "udp"),  # wildcard
    ("X.Y.wild.hand.test", "TXT", "udp"),
    ("x.wild.hand.test", "MX", "udp"),  # wildcard NODATA
    ("wild.hand.test", "A", "udp"),  # empty non-terminal over a wildcard
    ("*.wild.hand.test", "A", "udp"),
    ("c.deep.hand.test", "TXT", "udp"),
    ("b.c.deep.hand.test", "TXT", "tcp"),
    ("z.deep.hand.test", "TXT", "udp"),  # NXDOMAIN
    ("sub.hand.test", "A", "udp"),  # referral
    ("www.sub.hand.test", "A", "udp"),  # referral
    ("sub.hand.test", "NS", "tcp"),  # referral
    ("sub.hand.test", "DS", "udp"),  # the parent's side of the cut
    ("alias.hand.test", "A", "udp"),
    ("tomixed.hand.test", "A", "udp"),  # the target's owner as the zone writes it
    ("mixedcase.hand.test", "A", "udp"),
    ("away.hand.test", "A", "udp"),  # out of the zone
    ("dangling.hand.test", "A", "udp"),  # NXDOMAIN after the CNAME
    ("hand.test", "MX", "udp"),
    ("_ldap._tcp.hand.test", "SRV", "udp"),
    ("ns1.hand.test", "AAAA", "udp"),
    ("big.hand.test", "TXT", "noedns"),
    ("big.hand.test", "TXT", "bufsize=1500"),
    ("big.hand.test", "TXT", "tcp"),
    ("bigalias.hand.test", "TXT", "noedns"),  # the CNAME fits, the TXT doesn't
    ("bigalias.hand.test", "TXT", "tcp"),
    ("mid.hand.test", "TXT", "noedns"),  # an additional address left out, no TC
    ("mid2.hand.test", "TXT", "noedns"),  # the NS in authority left out, no TC
    ("elsewhere.example", "A", "udp"),
]


def make_query(name: str, rdtype: str, how: str) -> tuple[dns.message.Message, bool]:
    if how == "noedns":
        query = dns.message.make_query(name, rdtype, use_edns=False)
    elif how == "do":
        query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=1232)
    elif how.startswith("bufsize="):
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=int(how[8:]))
    else:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    if how == "norec":
        query.flags &= ~dns.flags.RD
    return query, how == "tcp"


def compare(pair: Pair, name: str, rdtype: str, how: str) -> None:
    query, tcp = make_query(name, rdtype, how)
    ours = comparable(pair.ask_casarray(query, tcp))
    theirs = comparable(pair.ask_nsd(query, tcp))
    assert ours == theirs


@pytest.mark.parametrize(("name", "rdtype", "how"), DIRECTORY_QUERIES)
def test_directory_zone(directory_pair: Pair, name: str, rdtype: str, how: str) -> None:
    compare(directory_pair, name, rdtype, how)


@pytest.mark.parametrize(("name", "rdtype", "how"), HANDMADE_QUERIES)
def test_handmade_zone(handmade_pair: Pair, name: str, rdtype: str, how: str) -> None:
    compare(handmade_pair, name, rdtype, how)
