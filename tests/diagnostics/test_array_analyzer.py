"""Test-ClientAccessArray's analysis (`casarray.diagnostics.array_analyzer`) on SQLite and
PostgreSQL: for every check, a directory that produces the finding (its severity, its
text and its fix) and the change that clears it; the DNS facts come from the real zones
of the directory, member health from a provider the test passes in."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pytest

from casarray.diagnostics.array_analyzer import (
    BALANCER_EXTRA_NODES,
    BALANCER_MISSING_MEMBERS,
    CERTIFICATE_MISSING,
    DATABASES_NOT_ON_ARRAY,
    ERROR,
    INFO,
    MEMBER_HEALTH_UNKNOWN,
    MEMBER_IN_MAINTENANCE,
    MEMBER_UNHEALTHY,
    NO_ARRAY,
    NO_DNS_RECORD,
    NOT_BALANCER_ADDRESS,
    RESOLVABLE_OUTSIDE,
    SAME_AS_PUBLIC_NAME,
    WARNING,
    Finding,
    analyze,
    is_clean,
    resolve,
)
from casarray.diagnostics.member_health import HEALTHY, UNHEALTHY, UNKNOWN, MemberHealth
from casarray.directory import Directory, NotFoundError
from casarray.directory.objects import ClientAccessArray, Server
from casarray.dns.zones import build_zones

ARRAY, VIP = "bj-cas.lab.net", "127.77.1.10"


def healthy(
    array: ClientAccessArray, cluster: object, members: Sequence[Server]
) -> Mapping[str, MemberHealth]:
    return {m.name: MemberHealth(m.name, HEALTHY, "", "test") for m in members}


def run(d: Directory, array: str | None = ARRAY, **facts: object) -> list[Finding]:
    facts.setdefault("health", healthy)
    return analyze(d, array, **facts)  # type: ignore[arg-type]


def of(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def only(findings: list[Finding], check: str) -> Finding:
    found = of(findings, check)
    assert len(found) == 1, findings
    return found[0]


def certify(d: Directory, server: str, names: list[str] | None = None) -> None:
    """A self-signed certificate for IMAP and IIS on `server` covering `names` (by
    default the array FQDN, the server's FQDN and autodiscover.lab.net)."""
    names = names or [ARRAY, f"{server}.lab.net", "autodiscover.lab.net"]
    d.certificates.new_self_signed(server, domain_names=names, services="IMAP,IIS")


@pytest.fixture
def good(bj: Directory) -> Directory:
    """BJ done right: the array, an NLB cluster following it, a certificate on each
    member covering the array, a database naming the array."""
    bj.arrays.new(ARRAY, "BJ", "BJ CAS Array")
    bj.nlb.new_cluster(ARRAY, VIP, array=ARRAY)
    certify(bj, "CAS01")
    certify(bj, "CAS02")
    bj.databases.new("DB01", "MBX01")
    return bj


def test_a_well_built_array_is_clean(good: Directory) -> None:
    assert run(good) == []
    assert is_clean(run(good))
    assert resolve(build_zones(good).inside, ARRAY).addresses == (VIP,)


def test_an_unknown_array_is_an_error(good: Directory) -> None:
    with pytest.raises(NotFoundError):
        analyze(good, "nosuch.lab.net", health=healthy)


# -- NoArray --------------------------------------------------------------------------


def test_sites_without_an_array(bj: Directory) -> None:
    bj.sites.new("GZ", ["127.77.3.0/24"])
    bj.servers.new("MBX03", "Mailbox", "127.77.3.21")  # no Client Access server: fine
    findings = run(bj, None)
    assert [(f.severity, f.check, f.site, f.array) for f in findings] == [
        (WARNING, NO_ARRAY, "BJ", None),
        (INFO, NO_ARRAY, "SH", None),
    ]
    bj_site, sh_site = findings
    assert "2 Client Access servers (CAS01, CAS02) but no client access array" in (bj_site.message)
    assert bj_site.fix == (
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ'
    )
    assert "recommended even with one server" in sh_site.message
    assert sh_site.fix == 'New-ClientAccessArray -Name "SH CAS Array" -Fqdn sh-cas.lab.net -Site SH'
    assert is_clean([sh_site]) and not is_clean(findings)


def test_an_array_clears_no_array(bj: Directory) -> None:
    bj.arrays.new("sh-cas.lab.net", "SH", "SH CAS Array")
    assert [(f.check, f.site) for f in of(run(bj, None), NO_ARRAY)] == [(NO_ARRAY, "BJ")]


def test_the_suggested_fqdn_avoids_names_in_use(bj: Directory) -> None:
    bj.nlb.install_feature("CAS03", ["NLB"])
    bj.nlb.new_cluster("sh-cas.lab.net", "127.77.2.10", host="CAS03")
    finding = only(of(run(bj, None), NO_ARRAY)[1:], NO_ARRAY)
    assert "-Fqdn sh-cas2.lab.net -Site SH" in finding.fix


# -- DNS --------------------------------------------------------------------------------


def test_no_dns_record_without_a_cluster(bj: Directory) -> None:
    bj.arrays.new(ARRAY, "BJ", "BJ CAS Array")
    finding = only(run(bj), NO_DNS_RECORD)
    assert (finding.severity, finding.site, finding.array) == (ERROR, "BJ", ARRAY)
    assert "bj-cas.lab.net has no DNS record: no NLB cluster serves the array" in finding.message
    # the first free address of the site's subnet from .10 up
    assert finding.fix == (
        "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
        "-ClientAccessArray bj-cas.lab.net"
    )
    bj.nlb.new_cluster(ARRAY, VIP, array=ARRAY)
    assert of(run(bj), NO_DNS_RECORD) == []


def test_no_dns_record_when_no_zone_holds_the_name(bj: Directory) -> None:
    bj.arrays.new("cas.contoso.com", "BJ", "BJ CAS Array")
    bj.nlb.new_cluster("cas.contoso.com", VIP, array="cas.contoso.com")
    finding = only(run(bj, "cas.contoso.com"), NO_DNS_RECORD)
    assert "authoritative for no zone that holds it" in finding.message
    assert finding.fix == "Add-DnsServerPrimaryZone -Name contoso.com"
    bj.dns.add_zone("contoso.com")
    assert of(run(bj, "cas.contoso.com"), NO_DNS_RECORD) == []


def test_a_record_that_bypasses_the_balancer(good: Directory) -> None:
    good.dns.add_record("lab.net", "bj-cas", "A", "127.77.1.11")  # CAS01's address
    finding = only(run(good), NOT_BALANCER_ADDRESS)
    assert finding.severity == ERROR
    assert "resolves to 127.77.1.11 (server CAS01), not to the IP of an NLB cluster" in (
        finding.message
    )
    assert finding.fix == (
        "Remove-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas -RRType A "
        "-RecordData 127.77.1.11 -Force"
    )
    good.dns.remove_records("lab.net", "bj-cas", "A", "127.77.1.11")
    assert run(good) == []


def test_a_record_without_any_balancer_says_to_make_one(bj: Directory) -> None:
    bj.arrays.new(ARRAY, "BJ", "BJ CAS Array")
    bj.dns.add_record("lab.net", "bj-cas", "A", "127.77.1.11")
    findings = run(bj)
    assert of(findings, NO_DNS_RECORD) == []
    assert only(findings, NOT_BALANCER_ADDRESS).fix == (
        "Remove-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas -RRType A "
        "-RecordData 127.77.1.11 -Force; New-NlbCluster -ClusterName bj-cas.lab.net "
        "-ClusterPrimaryIP 127.77.1.10 -ClientAccessArray bj-cas.lab.net"
    )


def test_a_cname_to_a_server_bypasses_the_balancer(bj: Directory) -> None:
    bj.arrays.new(ARRAY, "BJ", "BJ CAS Array")
    bj.dns.add_record("lab.net", "bj-cas", "CNAME", "cas01.lab.net.")
    assert resolve(build_zones(bj).inside, ARRAY).addresses == ("127.77.1.11",)
    finding = only(run(bj), NOT_BALANCER_ADDRESS)
    assert "resolves to 127.77.1.11 (server CAS01)" in finding.message
    assert finding.fix == (
        "Remove-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas -RRType CName -Force; "
        "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
        "-ClientAccessArray bj-cas.lab.net"
    )
    bj.dns.remove_records("lab.net", "bj-cas", "CNAME")
    bj.nlb.new_cluster(ARRAY, VIP, array=ARRAY)
    assert of(run(bj), NOT_BALANCER_ADDRESS) == []


def test_resolvable_from_outside_as_a_zone_apex(good: Directory) -> None:
    good.dns.add_zone(ARRAY)  # the array name made a zone: its apex is never hidden
    finding = only(run(good), RESOLVABLE_OUTSIDE)
    assert finding.severity == WARNING
    assert "resolves from outside the organization's networks (127.77.1.10)" in finding.message
    assert finding.fix == "Remove-DnsServerZone -Name bj-cas.lab.net -Force"
    good.dns.remove_zone(ARRAY)
    assert run(good) == []


def test_resolvable_from_outside_in_the_zones_given(good: Directory) -> None:
    zones = build_zones(good)
    leaky = dataclasses.replace(zones, outside=zones.inside)  # no name hidden outside
    finding = only(run(good, zones=leaky), RESOLVABLE_OUTSIDE)
    assert finding.fix == (
        'Add-DnsServerQueryResolutionPolicy -Name "Hide bj-cas.lab.net" -Action DENY '
        '-Fqdn "EQ,bj-cas.lab.net"'
    )
    assert of(run(good, zones=zones), RESOLVABLE_OUTSIDE) == []


# -- the balancer's nodes ------------------------------------------------------------------


def test_balancer_nodes_that_differ_from_the_members(good: Directory) -> None:
    good.nlb.remove_cluster(ARRAY)
    for server in ("CAS01", "CAS03"):
        good.nlb.install_feature(server, ["NLB"])
    good.nlb.new_cluster(ARRAY, VIP, host="CAS01")  # fronts the array by its name
    good.nlb.add_node(ARRAY, "CAS03")  # a Client Access server of site SH
    findings = run(good)
    extra, missing = only(findings, BALANCER_EXTRA_NODES), only(findings, BALANCER_MISSING_MEMBERS)
    assert (extra.severity, extra.target) == (ERROR, "CAS03")
    assert "has nodes that aren't members of the array" in extra.message
    assert extra.fix == "Remove-NlbClusterNode -HostName CAS03 -Force"
    assert (missing.severity, missing.target) == (WARNING, "CAS02")
    assert missing.fix == (
        "Set-NlbCluster -HostName bj-cas.lab.net -ClientAccessArray bj-cas.lab.net -FollowArray"
    )
    good.nlb.remove_node("CAS03")
    assert [f.check for f in run(good)] == [BALANCER_MISSING_MEMBERS]
    good.nlb.set_cluster(ARRAY, array=ARRAY)
    assert run(good) == []


# -- members ----------------------------------------------------------------------------


def test_a_member_in_maintenance(good: Directory) -> None:
    asked: list[str] = []

    def health(array: ClientAccessArray, cluster: object, members: Sequence[Server]) -> dict:
        asked.extend(m.name for m in members)
        return dict(healthy(array, cluster, members))

    good.components.set_state("CAS02", "ServerWideOffline", "Inactive", "Maintenance")
    finding = only(run(good, health=health), MEMBER_IN_MAINTENANCE)
    assert (finding.severity, finding.target) == (WARNING, "CAS02")
    assert "ServerWideOffline Inactive" in finding.message
    assert finding.fix == (
        "Set-ServerComponentState CAS02 -Component ServerWideOffline -State Active "
        "-Requester Maintenance"
    )
    assert asked == ["CAS01"]  # its health page answers 503 by design: not asked
    good.components.set_state("CAS02", "ServerWideOffline", "Active", "Maintenance")
    assert run(good) == []


def test_an_unhealthy_member(good: Directory) -> None:
    def health(array: ClientAccessArray, cluster: object, members: Sequence[Server]) -> dict:
        reports = dict(healthy(array, cluster, members))
        reports["CAS02"] = MemberHealth(
            "CAS02", UNHEALTHY, "imap 143: connection refused", "balancer bj-cas.lab.net"
        )
        return reports

    finding = only(run(good, health=health), MEMBER_UNHEALTHY)
    assert (finding.severity, finding.target) == (ERROR, "CAS02")
    assert finding.message.startswith(
        "The member CAS02 is unhealthy (balancer bj-cas.lab.net): imap 143: connection refused."
    )
    assert finding.fix == "casarray server run CAS02"
    assert run(good, health=healthy) == []


def test_member_health_unknown(good: Directory) -> None:
    def unknown(array: ClientAccessArray, cluster: object, members: Sequence[Server]) -> dict:
        return {m.name: MemberHealth(m.name, UNKNOWN) for m in members}

    finding = only(run(good, health=unknown), MEMBER_HEALTH_UNKNOWN)
    assert (finding.severity, finding.target) == (INFO, "CAS01, CAS02")
    assert finding.fix == "casarray balancer run bj-cas.lab.net"
    assert is_clean([finding])

    def one_known(array: ClientAccessArray, cluster: object, members: Sequence[Server]) -> dict:
        return {**unknown(array, cluster, members), "CAS01": MemberHealth("CAS01", HEALTHY)}

    assert run(good, health=one_known) == []


# -- certificates ---------------------------------------------------------------------------


def test_a_member_without_a_certificate_for_the_array(good: Directory) -> None:
    for cert in good.certificates.get("CAS02"):
        good.certificates.remove(cert.thumbprint, "CAS02")
    certify(good, "CAS02", ["CAS02.lab.net"])  # IMAP and IIS, but not the array's name
    finding = only(run(good), CERTIFICATE_MISSING)
    assert (finding.severity, finding.target) == (ERROR, "CAS02")
    assert "No usable certificate enabled for IMAP or IIS on CAS02 covers bj-cas.lab.net" in (
        finding.message
    )
    assert finding.fix == (
        'New-ExchangeCertificate -GenerateRequest -SubjectName "CN=bj-cas.lab.net" '
        "-DomainName bj-cas.lab.net,autodiscover.lab.net,cas02.lab.net -Server CAS02 | "
        "Get-LabCertificate "
        "-Path CAS02.cer; Import-ExchangeCertificate -FileName CAS02.cer -Server CAS02 | "
        "Enable-ExchangeCertificate -Services IMAP,IIS -Force"
    )
    certify(good, "CAS02", ["*.lab.net"])  # a wildcard covers it
    assert run(good) == []


def test_a_certificate_for_one_service_only(good: Directory) -> None:
    for cert in good.certificates.get("CAS01"):
        good.certificates.remove(cert.thumbprint, "CAS01")
    good.certificates.new_self_signed(
        "CAS01", domain_names=[ARRAY, "autodiscover.lab.net"], services="IIS"
    )
    finding = only(run(good), CERTIFICATE_MISSING)
    assert "enabled for IMAP on CAS01" in finding.message
    assert finding.fix.endswith("Enable-ExchangeCertificate -Services IMAP -Force")


# -- databases ----------------------------------------------------------------------------


def test_databases_that_dont_name_the_array(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")  # before the array: CAS01.lab.net
    bj.databases.new("DB03", "MBX02")  # site SH: not the BJ array's business
    bj.arrays.new(ARRAY, "BJ", "BJ CAS Array")
    bj.nlb.new_cluster(ARRAY, VIP, array=ARRAY)
    certify(bj, "CAS01")
    certify(bj, "CAS02")
    bj.databases.new("DB02", "MBX01")  # gets the array
    finding = only(run(bj), DATABASES_NOT_ON_ARRAY)
    assert (finding.severity, finding.target) == (WARNING, "DB01")
    assert "whose RpcClientAccessServer is not the array bj-cas.lab.net: DB01 (CAS01.lab.net)" in (
        finding.message
    )
    assert finding.fix == "Set-MailboxDatabase DB01 -RpcClientAccessServer bj-cas.lab.net"
    bj.databases.set("DB02", rpc_client_access_server="CAS02.lab.net")
    finding = only(run(bj), DATABASES_NOT_ON_ARRAY)
    assert finding.target == "DB01, DB02"
    assert finding.fix == (
        "Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase -RpcClientAccessServer "
        "bj-cas.lab.net"
    )
    # the walkthrough's command: every database, the other site's too
    bj.databases.set_rpc_client_access_server(None, ARRAY)
    assert run(bj) == []


def test_many_databases_are_counted(bj: Directory) -> None:
    from tests.shell.cmdlet_shell import add_databases

    add_databases(bj, 25, rpc="CAS01.lab.net")
    bj.arrays.new(ARRAY, "BJ", "BJ CAS Array")
    finding = only(run(bj), DATABASES_NOT_ON_ARRAY)
    assert finding.message.count("(CAS01.lab.net)") == 10
    assert "BULK00009 (CAS01.lab.net) and 15 more." in finding.message


# -- public names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fqdn", "kind"),
    [
        ("mail.lab.net", "the web mail (OWA) name"),
        ("autodiscover.lab.net", "the Autodiscover name"),
    ],
)
def test_an_array_named_as_a_public_name(bj: Directory, fqdn: str, kind: str) -> None:
    bj.arrays.new(fqdn, "BJ", "BJ CAS Array")
    bj.nlb.new_cluster("nlb.lab.net", VIP, array="BJ CAS Array")
    # The server's own name too: its EWS InternalUrl names it (EwsUrlNotCovered).
    certify(bj, "CAS01", [fqdn, ARRAY, "autodiscover.lab.net", "CAS01.lab.net"])
    certify(bj, "CAS02", [fqdn, ARRAY, "autodiscover.lab.net", "CAS02.lab.net"])
    finding = only(run(bj, fqdn), SAME_AS_PUBLIC_NAME)
    assert finding.severity == WARNING
    assert finding.message.startswith(f"The array FQDN {fqdn} is {kind}.")
    assert finding.fix == 'Set-ClientAccessArray -Identity "BJ CAS Array" -Fqdn bj-cas.lab.net'
    bj.arrays.set("BJ CAS Array", fqdn=ARRAY)
    assert run(bj) == []
