"""DNS in the directory, on SQLite and PostgreSQL: the zones (accepted domains and
added ones), the records made from the topology (servers, NLB clusters, arrays,
autodiscover, MX, SRV), records added by cmdlet and their rules (RFC 1034's CNAME
rule, TTLs, names in the zone), the serial, the hidden names and inside networks of
the views, and the DNS server's listening address."""

from __future__ import annotations

import ipaddress

import pytest

from casarray.directory import (
    ConflictError,
    Directory,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.dns.objects import DnsRecord
from casarray.directory.dns.values import parse_ttl, timespan

CLUSTER, VIP = "bj-cas.lab.net", "127.77.1.10"


def rows(records: list[DnsRecord]) -> list[tuple[str, str, str, int, bool]]:
    return [(r.host_name, r.record_type, r.data, r.ttl, r.automatic) for r in records]


def table(d: Directory, zone: str = "lab.net") -> list[tuple[str, str, str]]:
    return [(r.host_name, r.record_type, r.data) for r in d.dns.records(zone)]


@pytest.fixture
def lab(bj: Directory) -> Directory:
    """The seed's organization: the BJ array, fronted by an NLB cluster that follows
    it (bj-cas.lab.net, 127.77.1.10)."""
    bj.arrays.new(CLUSTER, site="BJ", name="BJ CAS Array")
    bj.nlb.new_cluster(CLUSTER, VIP, array="BJ CAS Array")
    return bj


def unchanged(d: Directory):  # type: ignore[no-untyped-def]
    """A context that checks a refused change wrote nothing."""

    class Check:
        def __enter__(self) -> None:
            self.version = d.topology_version()
            self.records = table(d)

        def __exit__(self, *exc: object) -> None:
            assert d.topology_version() == self.version
            assert table(d) == self.records

    return Check()


# -- zones ------------------------------------------------------------------------------


def test_accepted_domains_are_zones(bj: Directory) -> None:
    zones = bj.dns.zones()
    assert [(z.zone_name, z.from_accepted_domain, z.is_ds_integrated) for z in zones] == [
        ("lab.net", True, True)
    ]
    bj.add_accepted_domain("Contoso.COM")
    assert [z.zone_name for z in bj.dns.zones()] == ["lab.net", "contoso.com"]
    assert bj.dns.zone("CONTOSO.com.").zone_name == "contoso.com"


def test_add_and_remove_zone(bj: Directory) -> None:
    zone = bj.dns.add_zone("Fabrikam.com", zone_file="fabrikam.com.dns")
    assert (zone.zone_name, zone.zone_file, zone.is_ds_integrated) == (
        "fabrikam.com",
        "fabrikam.com.dns",
        False,
    )
    assert not bj.dns.add_zone("tailspin.net").zone_file
    assert [z.zone_name for z in bj.dns.zones()] == ["lab.net", "fabrikam.com", "tailspin.net"]
    bj.dns.add_record("fabrikam.com", "www", "A", "192.0.2.80")
    assert ("www", "A", "192.0.2.80") in table(bj, "fabrikam.com")
    bj.dns.remove_zone("fabrikam.com")
    assert [z.zone_name for z in bj.dns.zones()] == ["lab.net", "tailspin.net"]
    # its records went with it: a zone of that name again starts empty
    bj.dns.add_zone("fabrikam.com")
    assert ("www", "A", "192.0.2.80") not in table(bj, "fabrikam.com")


def test_zone_errors(bj: Directory) -> None:
    bj.dns.add_zone("fabrikam.com")
    with unchanged(bj):
        with pytest.raises(ConflictError, match=r"zone of the accepted domain lab.net"):
            bj.dns.add_zone("LAB.net")
        with pytest.raises(ConflictError, match=r"The zone fabrikam.com already exists"):
            bj.dns.add_zone("fabrikam.com.")
        with pytest.raises(InvalidValueError, match=r"is not a fully qualified domain name"):
            bj.dns.add_zone("fabrikam")
        with pytest.raises(InvalidValueError, match=r"label 'bad_label'"):
            bj.dns.add_zone("bad_label.com")
        with pytest.raises(
            InvalidOperationError, match=r"accepted domain lab.net.*can't be removed"
        ):
            bj.dns.remove_zone("lab.net")
        with pytest.raises(NotFoundError, match=r'DNS zone "nowhere.net"'):
            bj.dns.remove_zone("nowhere.net")
        with pytest.raises(NotFoundError, match=r'DNS zone "nowhere.net"'):
            bj.dns.records("nowhere.net")


# -- records made from the directory -------------------------------------------------------


def test_lab_zone(lab: Directory) -> None:
    serial = lab.topology_version()
    assert rows(lab.dns.records("lab.net")) == [
        ("@", "SOA", f"ns1.lab.net. hostmaster.lab.net. {serial} 900 600 86400 3600", 3600, True),
        ("@", "NS", "ns1.lab.net.", 3600, True),
        ("@", "MX", "10 mail.lab.net.", 1200, True),
        ("_autodiscover._tcp", "SRV", "0 1 443 autodiscover.lab.net.", 1200, True),
        ("_imap._tcp", "SRV", "0 1 143 mail.lab.net.", 1200, True),
        ("_imaps._tcp", "SRV", "0 1 993 mail.lab.net.", 1200, True),
        ("_submission._tcp", "SRV", "0 1 587 mail.lab.net.", 1200, True),
        ("autoconfig", "A", VIP, 1200, True),
        ("autodiscover", "A", VIP, 1200, True),
        ("bj-cas", "A", VIP, 1200, True),
        ("CAS01", "A", "127.77.1.11", 1200, True),
        ("CAS02", "A", "127.77.1.12", 1200, True),
        ("CAS03", "A", "127.77.2.11", 1200, True),
        ("mail", "A", VIP, 1200, True),
        ("MBX01", "A", "127.77.1.21", 1200, True),
        ("MBX02", "A", "127.77.2.21", 1200, True),
        ("ns1", "A", "127.77.0.53", 1200, True),
    ]
    origins = {(r.host_name, r.record_type): r.origin for r in lab.dns.records("lab.net")}
    assert origins["CAS01", "A"] == "server 'CAS01'"
    assert origins["bj-cas", "A"] == (
        "NLB cluster 'bj-cas.lab.net' and client access array 'BJ CAS Array' "
        "(NLB cluster 'bj-cas.lab.net')"
    )
    assert origins["autodiscover", "A"] == "client access array 'BJ CAS Array'"


def test_hub_transport_servers_take_the_domains_mail(lab: Directory) -> None:
    """With Hub Transport servers, smtp.<zone> has their addresses and the MX and the
    submission SRV point at it; IMAP's SRV records stay on the array's mail name."""
    lab.servers.new("HUB01", "HubTransport", "127.77.1.31", site="BJ")
    lab.servers.new("HUB02", "Mailbox,HubTransport", "127.77.2.31", site="SH")
    records = {(r[0], r[1], r[2]) for r in rows(lab.dns.records("lab.net"))}
    assert {("smtp", "A", "127.77.1.31"), ("smtp", "A", "127.77.2.31")} <= records
    assert ("@", "MX", "10 smtp.lab.net.") in records
    assert ("@", "MX", "10 mail.lab.net.") not in records
    assert ("_submission._tcp", "SRV", "0 1 587 smtp.lab.net.") in records
    assert ("_imap._tcp", "SRV", "0 1 143 mail.lab.net.") in records
    origins = {(r.host_name, r.data): r.origin for r in lab.dns.records("lab.net")}
    assert origins["smtp", "127.77.1.31"] == "Hub Transport server 'HUB01'"
    # a cmdlet's MX still wins over the automatic one
    lab.dns.add_record("lab.net", "@", "MX", "5 mx.lab.net")
    assert [r[2] for r in rows(lab.dns.records("lab.net", "@", "MX"))] == ["5 mx.lab.net."]


def test_an_nlb_cluster_of_hub_transport_servers_is_the_mx(lab: Directory) -> None:
    """A cluster of BJ's Hub Transport servers with rules for 25 and 587 is an MX and the
    submission host, by its own (public) name; smtp.lab.net has its IP in place of its
    nodes', and stays an MX for SH's Hub Transport server, behind no cluster."""
    lab.servers.new("HUB01", "HubTransport", "127.77.1.31", site="BJ")
    lab.servers.new("HUB02", "HubTransport", "127.77.1.32", site="BJ")
    lab.servers.new("HUB03", "Mailbox,HubTransport", "127.77.2.31", site="SH")
    for server in ("HUB01", "HUB02", "HUB03"):
        lab.nlb.install_feature(server, ["NLB"])
    lab.nlb.new_cluster("bj-smtp.lab.net", "127.77.1.20", host="HUB01")
    lab.nlb.add_node("bj-smtp.lab.net", "HUB02")
    lab.nlb.remove_port_rule("bj-smtp.lab.net", 0)
    lab.nlb.add_port_rule("bj-smtp.lab.net", 25, 25, protocol="Tcp", proxy_protocol=True)
    records = set(table(lab))
    assert {r for r in records if r[1] == "MX"} == {
        ("@", "MX", "10 bj-smtp.lab.net."),
        ("@", "MX", "10 smtp.lab.net."),
    }
    assert {r for r in records if r[0] == "smtp"} == {
        ("smtp", "A", "127.77.1.20"),
        ("smtp", "A", "127.77.2.31"),
    }
    assert ("bj-smtp", "A", "127.77.1.20") in records
    assert {r for r in records if r[0] == "_submission._tcp"} == {
        ("_submission._tcp", "SRV", "0 1 587 smtp.lab.net."),
    }
    lab.nlb.add_port_rule("bj-smtp.lab.net", 587, 587, protocol="Tcp", proxy_protocol=True)
    assert {r for r in table(lab) if r[0] == "_submission._tcp"} == {
        ("_submission._tcp", "SRV", "0 1 587 bj-smtp.lab.net."),
        ("_submission._tcp", "SRV", "0 1 587 smtp.lab.net."),
    }
    hidden = lab.dns.contents().zone("lab.net").hidden
    assert "bj-smtp" not in hidden and "bj-cas" in hidden and "hub01" in hidden
    # SH's server behind a cluster too: the clusters are the only MX and submission hosts
    lab.nlb.new_cluster("sh-smtp.lab.net", "127.77.2.20", host="HUB03")
    records = set(table(lab))
    assert {r[2] for r in records if r[1] == "MX"} == {"10 bj-smtp.lab.net.", "10 sh-smtp.lab.net."}
    assert {r[2] for r in records if r[0] == "_submission._tcp"} == {
        "0 1 587 bj-smtp.lab.net.",
        "0 1 587 sh-smtp.lab.net.",  # its default rule covers every port
    }
    assert {r[2] for r in records if r[0] == "smtp"} == {"127.77.1.20", "127.77.2.20"}
    # a cluster whose rules stop covering 25 is a cluster like any other: hidden, no MX
    lab.nlb.set_port_rule("bj-smtp.lab.net", 25, new_mode="Disabled")
    records = set(table(lab))
    assert ("@", "MX", "10 bj-smtp.lab.net.") not in records
    assert {r[2] for r in records if r[0] == "smtp"} == {
        "127.77.1.31",
        "127.77.1.32",
        "127.77.2.20",
    }
    assert "bj-smtp" in lab.dns.contents().zone("lab.net").hidden


def test_no_array_no_public_names(bj: Directory) -> None:
    """Without an array that has an address, there is nothing for autodiscover, mail,
    MX and SRV to point at: the zone has only its SOA, NS and the servers."""
    names = {r.host_name for r in bj.dns.records("lab.net")}
    assert names == {"@", "ns1", "CAS01", "CAS02", "CAS03", "MBX01", "MBX02"}
    # an array without a cluster or A record: still nothing public
    bj.arrays.new(CLUSTER, site="BJ", name="BJ CAS Array")
    assert {r.host_name for r in bj.dns.records("lab.net")} == names


def test_array_name_by_cluster_name(bj: Directory) -> None:
    """The seed's order: the NLB cluster first (on CAS01, linked to no array), then the
    array of the same FQDN. The cluster's name resolves at once; the array takes it."""
    bj.nlb.install_feature("CAS01", ["NLB"])
    bj.nlb.new_cluster(CLUSTER, VIP, host="CAS01")
    assert ("bj-cas", "A", VIP) in table(bj)
    assert ("autodiscover", "A", VIP) not in table(bj)  # no array yet
    bj.arrays.new(CLUSTER, site="BJ", name="BJ CAS Array")
    assert [(h, t, v) for h, t, v in table(bj) if h in ("bj-cas", "autodiscover")] == [
        ("autodiscover", "A", VIP),
        ("bj-cas", "A", VIP),
    ]


def test_cluster_linked_to_array_of_another_name(bj: Directory) -> None:
    bj.arrays.new("outlook.lab.net", site="BJ", name="BJ CAS Array")
    bj.nlb.new_cluster("nlb-bj.lab.net", VIP, array="BJ CAS Array")
    assert ("outlook", "A", VIP) in table(bj)
    assert ("nlb-bj", "A", VIP) in table(bj)


def test_first_array_serves_autodiscover(bj: Directory) -> None:
    """Two sites with arrays: autodiscover, autoconfig and mail point at the oldest
    array that has an address."""
    bj.arrays.new("sh-cas.lab.net", site="SH", name="SH CAS Array")
    bj.arrays.new(CLUSTER, site="BJ", name="BJ CAS Array")
    bj.nlb.new_cluster(CLUSTER, VIP, array="BJ CAS Array")
    assert ("autodiscover", "A", VIP) in table(bj)  # SH's array has no address yet
    bj.nlb.new_cluster("sh-cas.lab.net", "127.77.2.10", array="SH CAS Array")
    public = [(h, v) for h, t, v in table(bj) if h in ("autodiscover", "autoconfig", "mail")]
    assert public == [
        ("autoconfig", "127.77.2.10"),
        ("autodiscover", "127.77.2.10"),
        ("mail", "127.77.2.10"),
    ]


def test_every_accepted_domain_gets_public_names(lab: Directory) -> None:
    lab.add_accepted_domain("contoso.com")
    contoso = table(lab, "contoso.com")
    assert ("autodiscover", "A", VIP) in contoso
    assert ("@", "MX", "10 mail.contoso.com.") in contoso
    assert ("_imaps._tcp", "SRV", "0 1 993 mail.contoso.com.") in contoso
    assert not any(h.startswith("CAS0") for h, _, _ in contoso)  # servers are in lab.net


def test_added_zone_has_no_public_names(lab: Directory) -> None:
    lab.dns.add_zone("fabrikam.com")
    assert {h for h, _, _ in table(lab, "fabrikam.com")} == {"@", "ns1"}


def test_server_changes_show(lab: Directory) -> None:
    lab.servers.new("CAS04", "ClientAccess", "127.77.2.12")
    assert ("CAS04", "A", "127.77.2.12") in table(lab)
    lab.servers.remove("CAS04")
    assert not any(h == "CAS04" for h, _, _ in table(lab))


# -- the serial ----------------------------------------------------------------------------


def test_serial_is_the_topology_version(lab: Directory) -> None:
    contents = lab.dns.contents()
    assert contents.serial == lab.topology_version()
    soa = contents.zone("lab.net").records[0]
    assert soa.record_type == "SOA" and soa.data.split()[2] == str(contents.serial)
    lab.dns.add_record("lab.net", "owa", "A", VIP)
    assert lab.dns.contents().serial == contents.serial + 1
    lab.servers.new("CAS04", "ClientAccess", "127.77.2.12")
    assert lab.dns.contents().serial == contents.serial + 2


# -- records added by cmdlet -----------------------------------------------------------------


def test_seed_step_3_identical_to_automatic(bj: Directory) -> None:
    """Add-DnsServerResourceRecordA for the cluster's own name and IP works, and the
    zone holds the record once."""
    bj.nlb.install_feature("CAS01", ["NLB"])
    bj.nlb.new_cluster(CLUSTER, VIP, host="CAS01")
    added = bj.dns.add_record("lab.net", "bj-cas", "A", VIP)
    assert (added.host_name, added.ttl, added.automatic) == ("bj-cas", 3600, False)
    assert [r for r in rows(bj.dns.records("lab.net", "bj-cas"))] == [
        ("bj-cas", "A", VIP, 3600, False)
    ]
    bj.arrays.new(CLUSTER, site="BJ", name="BJ CAS Array")
    assert rows(bj.dns.records("lab.net", "bj-cas.lab.net", "A")) == [
        ("bj-cas", "A", VIP, 3600, False)
    ]
    # removing it leaves the cluster's record
    bj.dns.remove_records("lab.net", "bj-cas", "A")
    assert rows(bj.dns.records("lab.net", "bj-cas")) == [("bj-cas", "A", VIP, 1200, True)]


def test_array_address_from_a_record(bj: Directory) -> None:
    """An array with no cluster but an A record at its FQDN: autodiscover follows it."""
    bj.arrays.new(CLUSTER, site="BJ", name="BJ CAS Array")
    bj.dns.add_record("lab.net", "bj-cas", "A", "127.77.1.99")
    assert ("autodiscover", "A", "127.77.1.99") in table(bj)
    assert ("@", "MX", "10 mail.lab.net.") in table(bj)


def test_cmdlet_record_replaces_automatic_of_its_type(lab: Directory) -> None:
    lab.dns.add_record("lab.net", "autodiscover", "A", "192.0.2.10", ttl=300)
    assert rows(lab.dns.records("lab.net", "autodiscover")) == [
        ("autodiscover", "A", "192.0.2.10", 300, False)
    ]
    lab.dns.add_record("lab.net", "@", "MX", "5 mx.lab.net")
    assert rows(lab.dns.records("lab.net", "@", "MX")) == [
        ("@", "MX", "5 mx.lab.net.", 3600, False)
    ]
    # a CNAME at a public name: the automatic records there go, and the SRV follows
    lab.dns.add_record("lab.net", "mail", "CNAME", "mail.outlook.example")
    assert rows(lab.dns.records("lab.net", "mail")) == [
        ("mail", "CNAME", "mail.outlook.example.", 3600, False)
    ]
    assert ("_imap._tcp", "SRV", "0 1 143 mail.lab.net.") in table(lab)


def test_record_names(lab: Directory) -> None:
    assert lab.dns.add_record("lab.net", "Web.Int", "A", "192.0.2.1").host_name == "Web.Int"
    assert lab.dns.add_record("lab.net", "owa.lab.net", "A", VIP).host_name == "owa"
    assert lab.dns.add_record("lab.net", "ews.LAB.NET.", "A", VIP).host_name == "ews"
    assert lab.dns.add_record("lab.net", "*.wild", "A", VIP).host_name == "*.wild"
    assert lab.dns.add_record("lab.net", "_sip._tcp", "SRV", "0 0 5061 x.lab.net").host_name == (
        "_sip._tcp"
    )
    assert lab.dns.add_record("lab.net", ".", "TXT", 'v=spf1 mx "x" -all').host_name == "@"
    assert ("@", "TXT", '"v=spf1 mx \\"x\\" -all"') in table(lab)


def test_record_types(lab: Directory) -> None:
    lab.dns.add_record("lab.net", "v6", "AAAA", "2001:DB8:0::10")
    lab.dns.add_record("lab.net", "_xmpp._tcp", "SRV", "10 5 5222 chat.lab.net.")
    lab.dns.add_record("lab.net", "big", "TXT", "x" * 300)
    records = {(h, t): v for h, t, v in table(lab)}
    assert records["v6", "AAAA"] == "2001:db8::10"
    assert records["_xmpp._tcp", "SRV"] == "10 5 5222 chat.lab.net."
    assert records["big", "TXT"] == f'"{"x" * 255}" "{"x" * 45}"'


def test_bad_records_change_nothing(lab: Directory) -> None:
    lab.dns.add_record("lab.net", "owa", "A", VIP)
    lab.dns.add_record("lab.net", "webmail", "CNAME", "owa.lab.net")
    cases = [
        (("lab.net", "x", "A", "127.77.1.300"), InvalidValueError, "is not an IPv4 address"),
        (("lab.net", "x", "A", "bj-cas.lab.net"), InvalidValueError, "is not an IPv4 address"),
        (("lab.net", "x.contoso.com.", "A", VIP), InvalidValueError, "is not in the zone lab.net"),
        (("lab.net", "bad name", "A", VIP), InvalidValueError, "label 'bad name'"),
        (("lab.net", "-x", "A", VIP), InvalidValueError, "label '-x'"),
        (("lab.net", "x.*", "A", VIP), InvalidValueError, r"label '\*'"),
        (("nowhere.net", "x", "A", VIP), NotFoundError, 'DNS zone "nowhere.net"'),
        (("lab.net", "x", "PTR", "a.lab.net"), InvalidValueError, "is not one of A, AAAA"),
        (("lab.net", "x", "AAAA", VIP), InvalidValueError, "is not an IPv6 address"),
        (("lab.net", "x", "MX", "mail.lab.net"), InvalidValueError, "is not 'preference host'"),
        (("lab.net", "x", "MX", "70000 mail.lab.net"), InvalidValueError, "from 0 to 65535"),
        (("lab.net", "x", "SRV", "0 0 443"), InvalidValueError, "'priority weight port host'"),
        (("lab.net", "x", "CNAME", "owa"), InvalidValueError, "not a fully qualified"),
        (("lab.net", "owa", "A", VIP), ConflictError, f"record owa.lab.net {VIP} already exists"),
        (("lab.net", "owa", "CNAME", "x.lab.net"), ConflictError, "already has an A record"),
        (("lab.net", "webmail", "A", VIP), ConflictError, "already has a CNAME record"),
        (("lab.net", "webmail", "CNAME", "y.lab.net"), ConflictError, "already has a CNAME"),
        (("lab.net", "CAS01", "CNAME", "x.lab.net"), ConflictError, "made from server 'CAS01'"),
        (("lab.net", "@", "CNAME", "x.lab.net"), InvalidValueError, "zone's apex"),
        (("lab.net", "x", "TXT", ""), InvalidValueError, "is empty"),
    ]
    for args, error, message in cases:
        with unchanged(lab), pytest.raises(error, match=message):
            lab.dns.add_record(*args)


def test_ttl(lab: Directory) -> None:
    assert lab.dns.add_record("lab.net", "a", "A", VIP, ttl="00:05:00").ttl == 300
    assert lab.dns.add_record("lab.net", "b", "A", VIP, ttl="1.00:00:00").ttl == 86400
    assert lab.dns.add_record("lab.net", "c", "A", VIP, ttl=60).ttl == 60
    assert lab.dns.add_record("lab.net", "d", "A", VIP, ttl="0").ttl == 0
    for bad, message in [
        (-1, "is out of range"),
        (2**31, "is out of range"),
        ("1:99:00", "is not a valid time span"),
        ("soon", "is not a time span"),
        (True, "is not a time span"),
    ]:
        with unchanged(lab), pytest.raises(InvalidValueError, match=message) as err:
            lab.dns.add_record("lab.net", "e", "A", VIP, ttl=bad)
        assert err.value.parameter == "TimeToLive"
    assert parse_ttl("TimeToLive", "01:00:00") == 3600
    assert [timespan(s) for s in (3600, 1200, 86400 + 61)] == ["01:00:00", "00:20:00", "1.00:01:01"]


def test_records_filters(lab: Directory) -> None:
    assert rows(lab.dns.records("lab.net", "cas01")) == [("CAS01", "A", "127.77.1.11", 1200, True)]
    assert [r.host_name for r in lab.dns.records("lab.net", rr_type="srv")] == [
        "_autodiscover._tcp",
        "_imap._tcp",
        "_imaps._tcp",
        "_submission._tcp",
    ]
    assert lab.dns.records("lab.net", "nothing-here") == []
    with pytest.raises(InvalidValueError, match=r"'PTR' is not one of SOA, NS, A"):
        lab.dns.records("lab.net", rr_type="PTR")
    with pytest.raises(InvalidValueError, match=r"is not in the zone lab.net"):
        lab.dns.records("lab.net", "x.contoso.com.")


def test_remove_records(lab: Directory) -> None:
    lab.dns.add_record("lab.net", "owa", "A", "192.0.2.1")
    lab.dns.add_record("lab.net", "owa", "A", "192.0.2.2")
    removed = lab.dns.remove_records("lab.net", "owa", "A", "192.0.2.1")
    assert [r.data for r in removed] == ["192.0.2.1"]
    assert [v for h, _, v in table(lab) if h == "owa"] == ["192.0.2.2"]
    lab.dns.add_record("lab.net", "owa", "A", "192.0.2.3")
    assert len(lab.dns.remove_records("lab.net", "OWA.lab.net.", "a")) == 2
    assert not any(h == "owa" for h, _, _ in table(lab))


def test_remove_errors(lab: Directory) -> None:
    with unchanged(lab):
        with pytest.raises(InvalidOperationError) as err:
            lab.dns.remove_records("lab.net", "CAS01", "A")
        assert err.value.message == (
            "The A record CAS01.lab.net 127.77.1.11 is made from server 'CAS01' in the "
            "directory, not added by cmdlet; change or remove that object instead."
        )
        with pytest.raises(InvalidOperationError, match=r"made from NLB cluster 'bj-cas.lab.net'"):
            lab.dns.remove_records("lab.net", "bj-cas", "A", VIP)
        with pytest.raises(InvalidOperationError, match=r"made from zone 'lab.net'"):
            lab.dns.remove_records("lab.net", "@", "SOA")
        with pytest.raises(NotFoundError, match=r"A record owa.lab.net"):
            lab.dns.remove_records("lab.net", "owa", "A")
        with pytest.raises(NotFoundError, match=r"A record CAS01.lab.net 10.0.0.1"):
            lab.dns.remove_records("lab.net", "CAS01", "A", "10.0.0.1")


def test_zone_inside_a_zone(lab: Directory) -> None:
    """int.lab.net added as a zone: lab.net delegates it (NS and glue), names below it
    belong to it, and a server whose FQDN is in it is there."""
    lab.dns.add_zone("int.lab.net")
    assert [(h, t, v) for h, t, v in table(lab) if h.endswith("int")] == [
        ("int", "NS", "ns1.int.lab.net."),
        ("ns1.int", "A", "127.77.0.53"),
    ]
    with unchanged(lab), pytest.raises(InvalidValueError, match=r"belongs to the zone int.lab.net"):
        lab.dns.add_record("lab.net", "web.int", "A", VIP)
    # the delegation's records are lab.net's, shown and not removable
    assert [r.record_type for r in lab.dns.records("lab.net", "int")] == ["NS"]
    with pytest.raises(InvalidOperationError, match=r"made from the delegation of zone 'int"):
        lab.dns.remove_records("lab.net", "int", "NS")
    lab.dns.add_record("int.lab.net", "web", "A", VIP)
    lab.servers.new("CAS09", "ClientAccess", "127.77.1.19", fqdn="cas09.int.lab.net")
    inner = table(lab, "int.lab.net")
    assert ("web", "A", VIP) in inner and ("cas09", "A", "127.77.1.19") in inner
    assert not any(h.startswith("cas09") for h, _, _ in table(lab))


# -- views -----------------------------------------------------------------------------------


def test_hidden_names(lab: Directory) -> None:
    lab.dns.add_record("lab.net", "owa", "A", VIP)
    zone = lab.dns.contents().zone("lab.net")
    assert zone.hidden == {"bj-cas", "cas01", "cas02", "cas03", "mbx01", "mbx02"}


def test_query_policies_hide_names(lab: Directory) -> None:
    lab.dns.add_record("lab.net", "owa", "A", VIP)
    lab.dns.add_record("lab.net", "web.int", "A", VIP)
    lab.dns.add_record("lab.net", "int", "TXT", "internal")
    policy = lab.dns.add_query_policy("Internal", "EQ,*.int.lab.net,OWA.lab.net.")
    assert (policy.action, policy.fqdn, policy.processing_order, policy.is_enabled) == (
        "DENY",
        ("*.int.lab.net", "owa.lab.net"),
        1,
        True,
    )
    hidden = lab.dns.contents().zone("lab.net").hidden
    assert {"owa", "web.int"} <= hidden
    assert "int" not in hidden  # "*." is below the name, not the name
    # the apex and the name server are never hidden
    lab.dns.add_query_policy("All", "EQ,lab.net,ns1.lab.net,*.lab.net", processing_order=5)
    hidden = lab.dns.contents().zone("lab.net").hidden
    assert "@" not in hidden and "ns1" not in hidden and "autodiscover" in hidden
    assert [p.name for p in lab.dns.query_policies()] == ["Internal", "All"]
    lab.dns.remove_query_policy("all")
    lab.dns.add_query_policy("Off", "EQ,autodiscover.lab.net", enabled=False)
    assert "autodiscover" not in lab.dns.contents().zone("lab.net").hidden


def test_query_policy_errors(lab: Directory) -> None:
    lab.dns.add_query_policy("Internal", "EQ,owa.lab.net")
    for args, message in [
        (("X", "owa.lab.net"), 'not an FQDN criterion of the form "EQ,name'),
        (("X", "NE,owa.lab.net"), "not an FQDN criterion"),
        (("X", "EQ,"), "not an FQDN criterion"),
        (("X", "EQ,bad name.lab.net"), "label 'bad name'"),
        (("X", "EQ,owa.lab.net", "ALLOW"), "only DENY names to clients outside"),
        (("internal", "EQ,owa.lab.net"), "policy Internal already exists"),
    ]:
        with unchanged(lab), pytest.raises((InvalidValueError, ConflictError), match=message):
            lab.dns.add_query_policy(*args)
    with pytest.raises(NotFoundError):
        lab.dns.remove_query_policy("Nope")


def test_inside_networks(lab: Directory) -> None:
    net = ipaddress.ip_network
    assert lab.dns.contents().inside_networks == (
        net("127.77.1.0/24"),
        net("127.77.2.0/24"),
        net("127.0.0.0/8"),
        net("::1/128"),
    )
    subnet = lab.dns.add_client_subnet("VPN", ["10.8.0.0/16", "10.9.0.0/16"], "2001:db8::/32")
    assert subnet.ipv4_subnets == ("10.8.0.0/16", "10.9.0.0/16")
    lab.sites.add_subnet("192.0.2.0/24", "SH")
    assert lab.dns.contents().inside_networks == (
        net("127.77.1.0/24"),
        net("127.77.2.0/24"),
        net("192.0.2.0/24"),
        net("10.8.0.0/16"),
        net("10.9.0.0/16"),
        net("2001:db8::/32"),
        net("127.0.0.0/8"),
        net("::1/128"),
    )
    assert [s.name for s in lab.dns.client_subnets()] == ["VPN"]
    lab.dns.remove_client_subnet("vpn")
    assert len(lab.dns.contents().inside_networks) == 5


def test_client_subnet_errors(lab: Directory) -> None:
    lab.dns.add_client_subnet("VPN", "10.8.0.0/16")
    for args, message in [
        (("X", "10.8.0.1/16"), "has host bits set; the subnet is 10.8.0.0/16"),
        (("X", "10.8.0.0"), "is not an IPv4 subnet in CIDR form"),
        (("X", "2001:db8::/32"), "is not an IPv4 subnet"),
        (("X", None, "10.0.0.0/8"), "is not an IPv6 subnet"),
        (("X", None, None), "give -IPv4Subnet or -IPv6Subnet"),
        (("vpn", "10.10.0.0/16"), "client subnet VPN already exists"),
    ]:
        with unchanged(lab), pytest.raises((InvalidValueError, ConflictError), match=message):
            lab.dns.add_client_subnet(*args)
    with pytest.raises(NotFoundError):
        lab.dns.client_subnets("Nope")


# -- the server's address --------------------------------------------------------------------


def test_listening_address(lab: Directory) -> None:
    assert lab.dns.listening_address() == "127.77.0.53"
    assert lab.dns.set_listening_address(" 127.77.0.54 ") == "127.77.0.54"
    assert lab.dns.listening_address() == "127.77.0.54"
    assert ("ns1", "A", "127.77.0.54") in table(lab)
    with unchanged(lab), pytest.raises(InvalidValueError, match=r"is not an IPv4 address"):
        lab.dns.set_listening_address("ns1.lab.net")
    with unchanged(lab), pytest.raises(ConflictError, match=r"NLB cluster 'bj-cas\.lab\.net'"):
        lab.dns.set_listening_address(VIP)
    assert lab.dns.set_listening_address(None) == "127.77.0.53"
