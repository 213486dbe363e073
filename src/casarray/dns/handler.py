"""The DNS server's core, sans-IO: query bytes in, answer bytes out.

`Responder(zones).answer(query, client, tcp=...)` answers one query from the zones of
the client's view (`ZoneViews`: the inside view for an address in the organization's
site subnets, the outside view for any other). It never touches a socket; the asyncio
servers (`dns.server`) only move bytes.

Answers are built once per (lower-cased question, view, EDNS: none, on, on with DO) as
wire bytes with ID 0 and then reused: each query gets a copy with its own ID, RD and
CD bits, and its question bytes (so the case it asked in comes back, also in owner
names compressed to the question). The answers last sent are also kept whole, by the
query's bytes after its ID (which decide everything but the ID), per view and
transport: a query asked again costs a dictionary lookup. Negative answers and
REFUSED are put together from bytes; the others with dnspython's renderer. Names are
looked up by their lower-case wire form, not as dnspython names, so that a flood of
made-up names costs little. Both caches are bounded (cleared when full); a new
Responder is made for new zones. A UDP answer that does not fit (512 bytes without
EDNS; with EDNS the client's payload size, at least 512 and at most the 1232 we
advertise, as NSD does: no fragmented answers) is cut after the last RRset that
fits, with TC set when a required RRset (answer, negative or referral authority) was
left out; optional ones (the zone's NS in the authority of a positive answer, the
additional section) are dropped silently (RFC 2181 9).

What it answers, as NSD does with its default settings:

- names in a zone: AA, the RRset, the zone's NS in authority and the addresses of NS,
  MX and SRV targets (in any zone of the view) in additional; CNAMEs are followed in
  the zone (at most 8); wildcards (RFC 4592) are expanded;
- NODATA (also at an empty non-terminal) and NXDOMAIN: AA and the SOA in authority
  with TTL min(SOA TTL, MINIMUM) (RFC 2308);
- below a delegation (NS below the apex): a referral (no AA, NS and glue);
- ANY: one RRset of the name (RFC 8482: the SOA at the apex, else a CNAME, A or AAAA,
  else the lowest type), nothing in authority or additional;
- names in no zone of the view, and classes other than IN: REFUSED, with an Extended
  DNS Error (Not Authoritative, Not Supported) when the query has EDNS. REFUSED rather
  than NOTIMP for another class: the query is understood (NOTIMP is for what isn't,
  an opcode), there is just no zone of that class here; NSD answers so too;
- AXFR and IXFR: REFUSED (no zone transfers; the zones come from the directory);
- other opcodes: NOTIMP; QDCOUNT != 1, records in answer or authority, a malformed
  name or record, two OPT records: FORMERR; EDNS version above 0: BADVERS; a TSIG:
  NOTAUTH (no keys here). A packet shorter than an ID, or a response (QR=1), gets no
  answer at all. Bytes after the last record the header counts are ignored (NSD too).

The DO bit is copied into the answer's OPT (RFC 3225) and otherwise ignored: there is
no DNSSEC here. Our OPT advertises 1232 bytes (the DNS flag day 2020 size).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import dns.edns
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.renderer
import dns.zone

from casarray.errors import CasarrayError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Header flag bits, split by byte (byte 2 and byte 3 of the header).
QR = 0x80
AA = 0x04
TC = 0x02
RD = 0x01  # byte 2
CD = 0x10  # byte 3

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, NOTAUTH = 0, 1, 2, 3, 4, 5, 9
CACHED_RCODES = frozenset({NOERROR, NXDOMAIN, REFUSED})  # answers from the zones
BADVERS = 16  # extended: 1 in the OPT's upper 8 bits, 0 in the header

OUR_PAYLOAD = 1232  # what our OPT advertises (NSD's default too)
PLAIN_UDP_LIMIT = 512  # without EDNS (RFC 1035)
OPT_ROOM = 64  # bytes kept free for our OPT record (11, or 17 with an EDE)
MAX_CNAME_CHAIN = 8
CACHE_LIMIT = 50_000  # prepared answers per view and EDNS state; cleared when full
RECENT_LIMIT = 20_000  # whole answers per view and transport; cleared when full
VIEW_CACHE_LIMIT = 65_536  # client address -> view

IN = dns.rdataclass.IN
TYPE_OPT = 41
TYPE_TSIG = 250
ZONE_TRANSFERS = frozenset({251, 252})  # IXFR, AXFR
TYPE_ANY = 255
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA = 1, 2, 5, 6
TYPE_MX, TYPE_AAAA, TYPE_SRV, TYPE_DS = 15, 28, 33, 43
ADDRESS_TYPES = (TYPE_A, TYPE_AAAA)
ANY_PREFERENCE = (TYPE_SOA, TYPE_CNAME, TYPE_A, TYPE_AAAA)

EDE_NOT_AUTHORITATIVE = 20
EDE_NOT_SUPPORTED = 21

INSIDE, OUTSIDE = 0, 1
EDNS_NONE, EDNS_ON, EDNS_DO = 0, 1, 2

ANSWER, AUTHORITY, ADDITIONAL = dns.renderer.ANSWER, dns.renderer.AUTHORITY, dns.renderer.ADDITIONAL


class ZoneViews(Protocol):
    """The zones to serve, per view (`casarray.dns.zones.ZoneSet` is one)."""

    @property
    def inside(self) -> tuple[dns.zone.Zone, ...]: ...
    @property
    def outside(self) -> tuple[dns.zone.Zone, ...]: ...
    @property
    def inside_networks(self) -> tuple[IPNetwork, ...]: ...
    @property
    def serial(self) -> int: ...


class MalformedQuery(CasarrayError):
    """The packet is not a well-formed DNS query (answered FORMERR)."""


# -- reading a query -------------------------------------------------------------------


def _skip_name(packet: bytes, pos: int) -> int:
    """The offset after the (possibly compressed) name at `pos`."""
    total = 0
    while True:
        if pos >= len(packet):
            raise MalformedQuery("name runs past the end")
        length = packet[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 2 > len(packet):
                raise MalformedQuery("pointer runs past the end")
            return pos + 2
        if length & 0xC0:
            raise MalformedQuery("unknown label type")
        total += length + 1
        if total > 254:
            raise MalformedQuery("name longer than 255 bytes")
        pos += length + 1


def _question_end(packet: bytes) -> int:
    """The offset after the question's name (at 12), which must be uncompressed: in
    a query nothing comes before it to point to."""
    pos = 12
    size = len(packet)
    while True:
        if pos >= size:
            raise MalformedQuery("question name runs past the end")
        length = packet[pos]
        if length == 0:
            pos += 1
            if pos - 12 > 255:
                raise MalformedQuery("name longer than 255 bytes")
            return pos
        if length > 63:
            raise MalformedQuery("compressed or unknown label in the question")
        pos += length + 1


@dataclass(frozen=True, slots=True)
class Edns:
    """The query's OPT record, read."""

    payload: int  # the UDP size we answer within: the client's, 512..OUR_PAYLOAD
    version: int
    do: bool


def _read_additional(packet: bytes, pos: int, count: int) -> tuple[Edns | None, bool]:
    """(the OPT record, whether there is a TSIG) from the additional section."""
    edns: Edns | None = None
    tsig = False
    size = len(packet)
    for _ in range(count):
        name_at = pos
        pos = _skip_name(packet, pos)
        if pos + 10 > size:
            raise MalformedQuery("record runs past the end")
        rdtype, rdclass, ttl, rdlen = struct.unpack_from("!HHIH", packet, pos)
        pos += 10 + rdlen
        if pos > size:
            raise MalformedQuery("record data runs past the end")
        if rdtype == TYPE_OPT:
            if edns is not None:
                raise MalformedQuery("two OPT records")
            if packet[name_at] != 0:
                raise MalformedQuery("OPT record not owned by the root")
            _check_options(packet, pos - rdlen, pos)
            payload = min(max(rdclass, PLAIN_UDP_LIMIT), OUR_PAYLOAD)
            edns = Edns(payload, (ttl >> 16) & 0xFF, bool(ttl & 0x8000))
        elif rdtype == TYPE_TSIG:
            tsig = True
    return edns, tsig


def _check_options(packet: bytes, pos: int, end: int) -> None:
    while pos < end:
        if pos + 4 > end:
            raise MalformedQuery("EDNS option header cut short")
        (length,) = struct.unpack_from("!H", packet, pos + 2)
        pos += 4 + length
    if pos != end:
        raise MalformedQuery("EDNS option runs past its record")


def _header_only(query: bytes, rcode: int) -> bytes:
    """An answer of just a header: the query's ID, opcode and RD, and `rcode`."""
    byte2 = QR | (query[2] & 0x79) if len(query) > 2 else QR
    return query[:2] + bytes((byte2, rcode)) + bytes(8)


def servfail(query: bytes) -> bytes | None:
    """SERVFAIL for `query` (the server's last resort when answering failed)."""
    if len(query) < 2 or (len(query) > 2 and query[2] & QR):
        return None
    return _header_only(query, SERVFAIL)


# -- the zones, indexed ----------------------------------------------------------------
#
# Names are looked up by their wire form in lower case (bytes): a name's ancestors are
# the suffixes of its wire form that start at a label, so walking up a name is slicing
# bytes, with no dnspython Name made (a flood of made-up names costs little).


def _suffixes(wire: bytes) -> list[bytes]:
    """The wire forms of a name and of each of its ancestors, the name first, the root
    last."""
    found = []
    pos = 0
    while True:
        found.append(wire[pos:])
        length = wire[pos]
        if length == 0:
            return found
        pos += length + 1


def _wire(name: dns.name.Name) -> bytes:
    """The lower-case wire form of an absolute name."""
    # (dnspython types to_wire() as bytes | None: None only when it writes into a file)
    return name.to_wire().lower()  # type: ignore[union-attr]


def _name(wire: bytes) -> dns.name.Name:
    return dns.name.from_wire(wire, 0)[0]


class _Zone:
    """One zone, indexed for lookups: owner (lower-case wire) -> type -> rdataset."""

    def __init__(self, zone: dns.zone.Zone) -> None:
        origin = zone.origin
        assert origin is not None
        self.origin: dns.name.Name = origin
        self.origin_wire = _wire(origin)
        self.nodes: dict[bytes, dict[int, dns.rdataset.Rdataset]] = {}
        self.names: dict[bytes, dns.name.Name] = {}  # the owners as the zone writes them
        for name, node in zone.nodes.items():
            owner = name.derelativize(origin)
            rdatasets = {
                int(rds.rdtype): _absolute(rds, origin) if zone.relativize else rds
                for rds in node.rdatasets
                if rds.rdclass == IN and rds.covers == dns.rdatatype.NONE and len(rds)
            }
            if rdatasets:
                self.nodes[_wire(owner)] = rdatasets
                self.names[_wire(owner)] = owner
        apex = self.nodes.get(self.origin_wire, {})
        soa = apex.get(TYPE_SOA)
        if soa is None:
            raise ValueError(f"zone {origin} has no SOA record")
        first = soa[0]
        assert isinstance(first, dns.rdtypes.ANY.SOA.SOA)
        self.negative_ttl = min(soa.ttl, first.minimum)
        self.negative_soa = soa.copy()
        self.negative_soa.ttl = self.negative_ttl
        self.soa_rdata: bytes = first.to_wire() or b""  # uncompressed, for negative answers
        self.origin_size = len(self.origin_wire)
        self.apex_ns = apex.get(TYPE_NS)
        self.cuts = frozenset(
            owner
            for owner, types in self.nodes.items()
            if TYPE_NS in types and owner != self.origin_wire
        )
        # Empty non-terminals: ancestors (below the apex) of owners, with no data.
        ents: set[bytes] = set()
        for owner_wire in self.nodes:
            for ancestor in _suffixes(owner_wire)[1:]:
                if len(ancestor) <= self.origin_size:
                    break
                if ancestor not in self.nodes:
                    ents.add(ancestor)
        self.ents = frozenset(ents)
        self.has_wildcards = any(owner.startswith(b"\x01*") for owner in self.nodes)

    def exists(self, wire: bytes) -> bool:
        return wire in self.nodes or wire in self.ents

    def delegation(self, below: list[bytes], *, ds: bool) -> bytes | None:
        """The delegation point at or above a name (`below`: it and its ancestors
        below the apex, the name first), if any. A DS query at the cut itself is
        answered by this zone (the parent)."""
        if not self.cuts:
            return None
        for index in range(len(below) - 1, -1, -1):
            if below[index] in self.cuts and not (ds and index == 0):
                return below[index]
        return None

    def wildcard(self, below: list[bytes]) -> bytes | None:
        """The wildcard that covers a name that does not exist, if any (RFC 4592: `*.`
        its closest encloser)."""
        if not self.has_wildcards:
            return None
        for encloser in [*below[1:], self.origin_wire]:
            if encloser == self.origin_wire or self.exists(encloser):
                source = b"\x01*" + encloser
                return source if source in self.nodes else None
        return None


def _absolute(rdataset: dns.rdataset.Rdataset, origin: dns.name.Name) -> dns.rdataset.Rdataset:
    """The rdataset with the names in its data made absolute (a zone read from a file
    with relativize=True holds them relative to the origin), their case kept."""
    rdatas = []
    for rdata in rdataset:
        wire = rdata.to_wire(origin=origin)
        rdatas.append(dns.rdata.from_wire(rdata.rdclass, rdata.rdtype, wire, 0, len(wire)))
    return dns.rdataset.from_rdata_list(rdataset.ttl, rdatas)


def _zone_for(zones: Sequence[_Zone], suffixes: list[bytes]) -> _Zone | None:
    """The zone of the view with the longest origin among a name's `suffixes`."""
    best: _Zone | None = None
    for zone in zones:
        if zone.origin_wire in suffixes and (best is None or zone.origin_size > best.origin_size):
            best = zone
    return best


# -- an answer, before rendering -------------------------------------------------------

Entry = tuple[dns.name.Name, dns.rdataset.Rdataset]


@dataclass
class _Answer:
    rcode: int = NOERROR
    aa: bool = True
    answer: list[Entry] | None = None
    authority: list[Entry] | None = None
    optional_authority: list[Entry] | None = None  # dropped first when it doesn't fit
    additional: list[Entry] | None = None
    ede: int | None = None
    negative: _Zone | None = None  # set for NXDOMAIN or NODATA with nothing but the SOA


def _sort_any(types: dict[int, dns.rdataset.Rdataset]) -> int:
    for preferred in ANY_PREFERENCE:
        if preferred in types:
            return preferred
    return min(types)


def _resolve(zones: Sequence[_Zone], qname: bytes, qtype: int) -> _Answer:
    """The answer for (qname, qtype, IN) from the zones of one view; `qname` in
    lower-case wire form."""
    suffixes = _suffixes(qname)
    zone = _zone_for(zones, suffixes)
    if zone is None:
        return _Answer(rcode=REFUSED, aa=False, ede=EDE_NOT_AUTHORITATIVE)
    result = _Answer(answer=[])
    assert result.answer is not None
    name = qname
    written: dns.name.Name | None = None  # a CNAME's target as its record writes it
    seen: set[bytes] = set()
    for _ in range(MAX_CNAME_CHAIN + 1):
        seen.add(name)
        below = suffixes[: suffixes.index(zone.origin_wire)]
        cut = zone.delegation(below, ds=qtype == TYPE_DS)
        if cut is not None:
            if result.answer:  # a CNAME led below a cut: the chain stops there
                return result
            referral = [(zone.names[cut], zone.nodes[cut][TYPE_NS])]
            result.aa = False
            result.authority = referral
            result.additional = _addresses(zones, referral)
            return result
        types = zone.nodes.get(name)
        if types is None and not zone.exists(name):
            source = zone.wildcard(below)
            if source is not None:
                types = zone.nodes[source]
        if types is None:  # no such name, or an empty non-terminal
            if not zone.exists(name):
                result.rcode = NXDOMAIN
            result.authority = [(zone.origin, zone.negative_soa)]
            result.negative = zone if not result.answer else None
            return result
        # The owner as the zone writes it (the question's is compressed to the question)
        owner = zone.names.get(name) or written or _name(name)
        if qtype == TYPE_ANY:
            result.answer.append((owner, types[_sort_any(types)]))
            return result
        found = types.get(qtype)
        if found is not None:
            result.answer.append((owner, found))
            break
        cname = types.get(TYPE_CNAME)
        if cname is None:  # NODATA
            result.authority = [(zone.origin, zone.negative_soa)]
            result.negative = zone if not result.answer else None
            return result
        result.answer.append((owner, cname))
        written = cname[0].target
        name = _wire(written)
        suffixes = _suffixes(name)
        if name in seen or zone.origin_wire not in suffixes:
            return result  # a loop, or out of the zone: the resolver goes on from here
    else:
        return result  # the chain is too long
    # A positive answer: the zone's NS in authority, addresses in additional.
    if zone.apex_ns is not None and not (name == zone.origin_wire and qtype == TYPE_NS):
        result.optional_authority = [(zone.origin, zone.apex_ns)]
    result.additional = _addresses(zones, result.answer, result.optional_authority or [])
    return result


def _addresses(zones: Sequence[_Zone], *sections: Iterable[Entry]) -> list[Entry]:
    """The A and AAAA RRsets of the NS, MX and SRV targets in `sections` that are in a
    zone of the view and not already in the answer."""
    present = {(_wire(owner), int(rds.rdtype)) for section in sections for owner, rds in section}
    targets: list[dns.name.Name] = []
    for section in sections:
        for _owner, rds in section:
            if rds.rdtype == TYPE_NS:
                targets += [rdata.target for rdata in rds]
            elif rds.rdtype == TYPE_MX:
                targets += [rdata.exchange for rdata in rds]
            elif rds.rdtype == TYPE_SRV:
                targets += [rdata.target for rdata in rds]
    extra: list[Entry] = []
    for rdtype in ADDRESS_TYPES:
        for target in targets:
            wire = _wire(target)
            if (wire, rdtype) in present or wire == b"\x00":
                continue
            zone = _zone_for(zones, _suffixes(wire))
            if zone is None:
                continue
            found = zone.nodes.get(wire, {}).get(rdtype)
            if found is not None:
                extra.append((target, found))
                present.add((wire, rdtype))
    return extra


# -- a prepared answer ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """An answer as wire bytes (ID 0, the question at 12), ready to be copied.

    `cuts` are the places where it may be cut when it does not fit: (offset, answer,
    authority and additional counts there, whether a required RRset is left out).
    `opt` is the OPT record at its end (empty without EDNS)."""

    byte2: int
    byte3: int
    counts: bytes
    tail: bytes  # everything after the question
    question_end: int
    size: int
    wire: bytes
    opt: bytes
    cuts: tuple[tuple[int, int, int, int, bool], ...]

    def copy_for(self, query: bytes, limit: int) -> bytes:
        """The answer to `query`: its ID, RD and CD bits and question, within `limit`
        bytes."""
        head = query[:2] + bytes((self.byte2 | (query[2] & RD), self.byte3 | (query[3] & CD)))
        question = query[12 : self.question_end]
        if self.size <= limit:
            return head + self.counts + question + self.tail
        return head[:2] + self._truncated(head[2], head[3], limit, question)

    def _truncated(self, byte2: int, byte3: int, limit: int, question: bytes) -> bytes:
        room = limit - len(self.opt)
        chosen = self.cuts[0]
        for cut in self.cuts:
            if cut[0] > room:
                break
            chosen = cut
        end, ancount, nscount, arcount, left_out = chosen
        if left_out:
            byte2 |= TC
        if self.opt:
            arcount += 1
        return (
            bytes((byte2, byte3))
            + struct.pack("!4H", 1, ancount, nscount, arcount)
            + question
            + self.wire[self.question_end : end]
            + self.opt
        )


def _opt(edns: int, ede: int | None = None) -> bytes:
    """Our OPT record (RFC 6891), with an Extended DNS Error (RFC 8914) if given."""
    if edns == EDNS_NONE:
        return b""
    options = struct.pack("!HHH", dns.edns.OptionType.EDE, 2, ede) if ede is not None else b""
    ttl = 0x8000 if edns == EDNS_DO else 0
    return b"\x00" + struct.pack("!HHIH", TYPE_OPT, OUR_PAYLOAD, ttl, len(options)) + options


def _render_bare(key: bytes, result: _Answer, edns: int) -> Prepared:
    """A negative answer (just the SOA) or a REFUSED, put together without dnspython's
    renderer: these are what a flood of made-up names gets, one new answer each. The
    SOA's owner is a pointer to the zone's name at the end of the question."""
    question_end = 12 + len(key)
    authority = b""
    if result.negative is not None:
        zone = result.negative
        origin_at = question_end - 4 - zone.origin_size
        rdata = zone.soa_rdata
        authority = struct.pack(
            "!HHHIH", 0xC000 | origin_at, TYPE_SOA, IN, zone.negative_ttl, len(rdata)
        )
        authority += rdata
    opt = _opt(edns, result.ede)
    byte2 = QR | (AA if result.aa else 0)
    counts = struct.pack("!4H", 1, 0, 1 if authority else 0, 1 if opt else 0)
    wire = bytes((0, 0, byte2, result.rcode)) + counts + key + authority + opt
    cuts = [(question_end, 0, 0, 0, bool(authority))]
    if authority:
        cuts.append((question_end + len(authority), 0, 1, 0, False))
    return Prepared(
        byte2=byte2,
        byte3=result.rcode,
        counts=counts,
        tail=authority + opt,
        question_end=question_end,
        size=len(wire),
        wire=wire,
        opt=opt,
        cuts=tuple(cuts),
    )


def _render(
    qname: dns.name.Name,
    qtype: int,
    qclass: int,
    result: _Answer,
    edns: int,
) -> Prepared:
    byte2 = QR | (AA if result.aa else 0)
    flags = (byte2 << 8) | (result.rcode & 0xF)
    renderer = dns.renderer.Renderer(id=0, flags=flags, max_size=65535)
    renderer.add_question(qname, qtype, qclass)
    question_end = renderer.output.tell()
    cuts: list[tuple[int, int, int, int, bool]] = []
    required: list[bool] = []

    def mark(needed: bool) -> None:
        counts = renderer.counts
        cuts.append((renderer.output.tell(), counts[1], counts[2], counts[3], False))
        required.append(needed)

    mark(False)
    renderer.reserve(OPT_ROOM)  # the OPT always fits
    sections = (
        (ANSWER, result.answer, True),
        (AUTHORITY, result.authority, True),
        (AUTHORITY, result.optional_authority, False),
        (ADDITIONAL, result.additional, False),
    )
    try:
        for section, entries, needed in sections:
            for owner, rdataset in entries or ():
                renderer.add_rdataset(section, owner, rdataset)
                mark(needed)
    except dns.exception.TooBig:  # beyond 64 KiB (TCP's limit too): what fits, and TC
        required.append(True)
    body_end = renderer.output.tell()
    renderer.release_reserved()
    if edns != EDNS_NONE:
        options = (
            [dns.edns.EDEOption(dns.edns.EDECode(result.ede))] if result.ede is not None else None
        )
        renderer.add_edns(0, 0x8000 if edns == EDNS_DO else 0, OUR_PAYLOAD, options)
    renderer.write_header()
    wire = renderer.get_wire()
    # At each cut, is a required RRset after it (so cutting there needs TC)?
    marked = []
    for index, (end, an, ns, ar, _) in enumerate(cuts):
        marked.append((end, an, ns, ar, any(required[index + 1 :])))
    if marked[-1][4]:  # TooBig: the full answer is itself cut
        wire = wire[:2] + bytes((wire[2] | TC,)) + wire[3:]
    return Prepared(
        byte2=wire[2],
        byte3=wire[3],
        counts=wire[4:12],
        tail=wire[question_end:],
        question_end=question_end,
        size=len(wire),
        wire=wire,
        opt=wire[body_end:],
        cuts=tuple(marked),
    )


# -- the responder ---------------------------------------------------------------------


class Responder:
    """Answers queries from one set of zones (a new Responder for new zones)."""

    def __init__(self, zones: ZoneViews) -> None:
        self.serial = zones.serial
        self._views = (
            tuple(_Zone(zone) for zone in zones.inside),
            tuple(_Zone(zone) for zone in zones.outside),
        )
        self._networks = tuple(zones.inside_networks)
        self._client_views: dict[str, int] = {}
        # One cache per (view, EDNS state): lower-cased qname + qtype + qclass bytes.
        self._caches: list[dict[bytes, Prepared]] = [{} for _ in range(6)]
        # And the answers themselves, but for their ID, per (view, UDP or TCP): the
        # bytes of a query after its ID decide all of its answer.
        self._recent: list[dict[bytes, bytes]] = [{} for _ in range(4)]

    def view_of(self, client: str) -> int:
        """INSIDE for an address in the organization's site subnets, else OUTSIDE."""
        view = self._client_views.get(client)
        if view is None:
            view = OUTSIDE
            try:
                address = ipaddress.ip_address(client.split("%", 1)[0])
            except ValueError:
                address = None
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if address is not None and any(address in net for net in self._networks):
                view = INSIDE
            if len(self._client_views) >= VIEW_CACHE_LIMIT:
                self._client_views.clear()
            self._client_views[client] = view
        return view

    def answer(self, query: bytes, client: str, *, tcp: bool) -> bytes | None:
        """The answer to `query` from `client` (an IP address), or None when nothing
        is to be sent (a packet shorter than an ID, or a response)."""
        view = self._client_views.get(client)
        if view is None:
            view = self.view_of(client)
        recent = self._recent[view * 2 + tcp]
        rest = recent.get(query[2:])
        if rest is not None:
            return query[:2] + rest
        reply = self._answer(query, view, tcp)
        if reply is not None and reply[3] & 0xF in CACHED_RCODES:
            if len(recent) >= RECENT_LIMIT:
                recent.clear()
            recent[query[2:]] = reply[2:]
        return reply

    def _answer(self, query: bytes, view: int, tcp: bool) -> bytes | None:
        size = len(query)
        if size < 12:
            if size < 2 or (size > 2 and query[2] & QR):
                return None
            return _header_only(query, FORMERR)
        byte2 = query[2]
        if byte2 & QR:
            return None
        if byte2 & 0x78:  # opcode other than QUERY
            return _header_only(query, NOTIMP)
        qdcount, ancount, nscount, arcount = struct.unpack_from("!4H", query, 4)
        if qdcount != 1 or ancount or nscount:
            return _header_only(query, FORMERR)
        try:
            question_end = _question_end(query) + 4
            if question_end > size:
                raise MalformedQuery("question cut short")
            edns, tsig = (
                _read_additional(query, question_end, arcount) if arcount else (None, False)
            )
        except MalformedQuery:
            return _header_only(query, FORMERR)
        if edns is None:
            state, limit = EDNS_NONE, PLAIN_UDP_LIMIT
        else:
            if edns.version != 0:
                return self._special(query, EDNS_DO if edns.do else EDNS_ON, BADVERS)
            state, limit = (EDNS_DO if edns.do else EDNS_ON), edns.payload
        if tsig:
            return self._special(query, state, NOTAUTH)
        key = query[12 : question_end - 4].lower() + query[question_end - 4 : question_end]
        cache = self._caches[view * 3 + state]
        prepared = cache.get(key)
        if prepared is None:
            prepared = self._prepare(key, view, state)
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[key] = prepared
        return prepared.copy_for(query, 65535 if tcp else limit)

    def _prepare(self, key: bytes, view: int, edns: int) -> Prepared:
        qtype, qclass = struct.unpack_from("!HH", key, len(key) - 4)
        if qclass != IN or qtype in ZONE_TRANSFERS:
            result = _Answer(rcode=REFUSED, aa=False, ede=EDE_NOT_SUPPORTED)
        else:
            result = _resolve(self._views[view], key[:-4], qtype)
        if not result.answer and (result.negative is not None or result.rcode == REFUSED):
            return _render_bare(key, result, edns)
        return _render(_name(key), qtype, qclass, result, edns)

    def _special(self, query: bytes, edns: int, rcode: int) -> bytes:
        """An answer with just the question (and OPT), and `rcode` (12 bits)."""
        qname, used = dns.name.from_wire(query, 12)
        qtype, qclass = struct.unpack_from("!HH", query, 12 + used)
        renderer = dns.renderer.Renderer(
            id=struct.unpack_from("!H", query)[0],
            flags=(QR << 8) | ((query[2] & RD) << 8) | (query[3] & CD) | (rcode & 0xF),
            max_size=65535,
        )
        renderer.add_question(qname, qtype, qclass)
        if edns != EDNS_NONE:
            ednsflags = (rcode >> 4) << 24 | (0x8000 if edns == EDNS_DO else 0)
            renderer.add_edns(0, ednsflags, OUR_PAYLOAD)
        renderer.write_header()
        return bytes(renderer.get_wire())
