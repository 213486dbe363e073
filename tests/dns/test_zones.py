"""The zones as dnspython builds them from the directory (`build_zones`): the lab's
zone after the seed's steps, the two views and which clients get which, the serial,
and the listening address."""

from __future__ import annotations

import ipaddress

import dns.name
import dns.rdatatype
import dns.zone
import pytest

from casarray.directory import Directory
from casarray.dns.zones import ZoneSet, build_zones, listen_address

VIP = "127.77.1.10"


@pytest.fixture
def seeded(bj: Directory) -> Directory:
    """The seed's steps: NLB on CAS01 and CAS02, the cluster bj-cas.lab.net, its A
    record by cmdlet, then the BJ array."""
    for server in ("CAS01", "CAS02"):
        bj.nlb.install_feature(server, ["NLB"])
    bj.nlb.new_cluster("bj-cas.lab.net", VIP, host="CAS01", interface="Ethernet")
    bj.nlb.add_node("bj-cas.lab.net", "CAS02", "Ethernet")
    bj.dns.add_record("lab.net", "bj-cas", "A", VIP)
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    return bj


def answer(zone: dns.zone.Zone, name: str, rdtype: str) -> list[str]:
    """The data of the RRset (sorted), or [] when there is none."""
    rdataset = zone.get_rdataset(name, rdtype)
    return sorted(rdata.to_text() for rdata in rdataset) if rdataset is not None else []


def names(zone: dns.zone.Zone) -> set[str]:
    return {name.to_text() for name in zone.nodes}


def test_lab_zone(seeded: Directory) -> None:
    zones = build_zones(seeded)
    assert [z.origin for z in zones.inside] == [dns.name.from_text("lab.net")]
    lab = zones.zone("lab.net")
    assert lab.relativize
    assert names(lab) == {
        "@",
        "ns1",
        "bj-cas",
        "autodiscover",
        "autoconfig",
        "mail",
        "CAS01",
        "CAS02",
        "CAS03",
        "MBX01",
        "MBX02",
        "_autodiscover._tcp",
        "_imap._tcp",
        "_imaps._tcp",
        "_submission._tcp",
    }
    # one A record for the array's name, though the cluster and the cmdlet both make it
    assert answer(lab, "bj-cas", "A") == [VIP]
    assert lab.get_rdataset("bj-cas", "A").ttl == 3600  # the cmdlet's
    assert answer(lab, "autodiscover", "A") == [VIP]
    assert answer(lab, "CAS03", "A") == ["127.77.2.11"]
    # names in rdata are absolute
    assert answer(lab, "@", "NS") == ["ns1.lab.net."]
    assert answer(lab, "@", "MX") == ["10 mail.lab.net."]
    assert answer(lab, "_imaps._tcp", "SRV") == ["0 1 993 mail.lab.net."]
    assert answer(lab, "_autodiscover._tcp", "SRV") == ["0 1 443 autodiscover.lab.net."]
    assert answer(lab, "ns1", "A") == ["127.77.0.53"]
    soa = lab.get_rdataset("@", "SOA")[0]
    assert (soa.mname.to_text(), soa.rname.to_text(), soa.serial) == (
        "ns1.lab.net.",
        "hostmaster.lab.net.",
        zones.serial,
    )
    assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (900, 600, 86400, 3600)
    lab.check_origin()  # SOA and NS at the apex


def test_outside_view_hides_the_array_and_servers(seeded: Directory) -> None:
    zones = build_zones(seeded)
    outside = zones.zone("lab.net", outside=True)
    assert names(outside) == {
        "@",
        "ns1",
        "autodiscover",
        "autoconfig",
        "mail",
        "_autodiscover._tcp",
        "_imap._tcp",
        "_imaps._tcp",
        "_submission._tcp",
    }
    assert outside.get_node("bj-cas") is None
    assert answer(outside, "autodiscover", "A") == [VIP]
    assert answer(outside, "@", "MX") == ["10 mail.lab.net."]
    assert outside.get_rdataset("@", "SOA")[0].serial == zones.serial
    # policies hide more from the outside only
    seeded.dns.add_record("lab.net", "web.int", "A", "127.77.1.80")
    seeded.dns.add_query_policy("Internal", "EQ,*.int.lab.net")
    zones = build_zones(seeded)
    assert answer(zones.zone("lab.net"), "web.int", "A") == ["127.77.1.80"]
    assert zones.zone("lab.net", outside=True).get_node("web.int") is None


@pytest.mark.parametrize(
    ("client", "inside"),
    [
        ("127.77.1.50", True),  # site BJ
        ("127.77.2.9", True),  # site SH
        ("127.0.0.1", True),  # loopback
        ("::1", True),
        ("::ffff:127.77.1.50", True),  # IPv4-mapped
        ("10.8.1.2", True),  # the VPN client subnet
        ("2001:db8::5", True),
        ("192.0.2.7", False),
        ("::2", False),
        ("fe80::1%eth0", False),
        ("not an address", False),
    ],
)
def test_view_for(seeded: Directory, client: str, inside: bool) -> None:
    seeded.dns.add_client_subnet("VPN", "10.8.0.0/16", "2001:db8::/32")
    zones = build_zones(seeded)
    assert zones.view_for(client) is (zones.inside if inside else zones.outside)


def test_a_site_subnet_added_later_is_inside(seeded: Directory) -> None:
    assert build_zones(seeded).view_for("192.0.2.7") == build_zones(seeded).outside
    seeded.sites.add_subnet("192.0.2.0/24", "SH")
    zones = build_zones(seeded)
    assert ipaddress.ip_network("192.0.2.0/24") in zones.inside_networks
    assert zones.view_for("192.0.2.7") is zones.inside


def test_serial_increases_with_every_change(seeded: Directory) -> None:
    first = build_zones(seeded)
    assert first.serial == seeded.topology_version()
    seeded.dns.add_record("lab.net", "owa", "A", VIP)
    second = build_zones(seeded)
    assert second.serial > first.serial
    assert answer(second.zone("lab.net"), "owa", "A") == [VIP]
    assert answer(first.zone("lab.net"), "owa", "A") == []  # a ZoneSet is a snapshot
    seeded.servers.new("CAS04", "ClientAccess", "127.77.2.12")
    third = build_zones(seeded)
    assert third.serial > second.serial
    for zone in (*third.inside, *third.outside):
        assert zone.get_rdataset("@", "SOA")[0].serial == third.serial


def test_several_zones(seeded: Directory) -> None:
    seeded.add_accepted_domain("contoso.com")
    seeded.dns.add_zone("int.lab.net")
    seeded.dns.add_record("int.lab.net", "web", "CNAME", "bj-cas.lab.net")
    zones = build_zones(seeded)
    assert isinstance(zones, ZoneSet)
    assert [z.origin.to_text() for z in zones.inside] == [
        "lab.net.",
        "contoso.com.",
        "int.lab.net.",
    ]
    assert [z.origin for z in zones.outside] == [z.origin for z in zones.inside]
    assert answer(zones.zone("contoso.com"), "autodiscover", "A") == [VIP]
    lab = zones.zone("lab.net")
    assert answer(lab, "int", "NS") == ["ns1.int.lab.net."]  # the delegation
    assert answer(lab, "ns1.int", "A") == ["127.77.0.53"]  # and its glue
    assert answer(zones.zone("int.lab.net"), "web", "CNAME") == ["bj-cas.lab.net."]


def test_records_of_every_type(seeded: Directory) -> None:
    seeded.dns.add_record("lab.net", "v6", "AAAA", "2001:db8::10", ttl=60)
    seeded.dns.add_record("lab.net", "@", "TXT", 'v=spf1 mx "quoted" -all')
    seeded.dns.add_record("lab.net", "*.apps", "A", "127.77.1.90")
    seeded.dns.add_record("lab.net", "_xmpp._tcp", "SRV", "10 5 5222 chat.lab.net")
    lab = build_zones(seeded).zone("lab.net")
    assert answer(lab, "v6", "AAAA") == ["2001:db8::10"]
    assert lab.get_rdataset("v6", "AAAA").ttl == 60
    assert answer(lab, "@", "TXT") == ['"v=spf1 mx \\"quoted\\" -all"']
    assert answer(lab, "*.apps", "A") == ["127.77.1.90"]
    assert answer(lab, "_xmpp._tcp", "SRV") == ["10 5 5222 chat.lab.net."]
    assert lab.get_rdataset("_xmpp._tcp", dns.rdatatype.SRV) is not None


def test_listen_address(seeded: Directory) -> None:
    assert listen_address(seeded) == "127.77.0.53"
    seeded.dns.set_listening_address("127.77.0.54")
    assert listen_address(seeded) == "127.77.0.54"
    assert answer(build_zones(seeded).zone("lab.net"), "ns1", "A") == ["127.77.0.54"]
