"""The DNS server cmdlets through the shell, as an administrator types them: the seed's
step 3 (Add-DnsServerResourceRecordA for the cluster's name), the records as
Get-DnsServerResourceRecord shows them (automatic ones marked), zones, removal with
its confirmation and its refusal of automatic records, the export, the views
(client subnets, query resolution policies), the listening address, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell, what_if

VIP = "127.77.1.10"
SEED_STEP_3 = "Add-DnsServerResourceRecordA -ZoneName lab.net -Name bj-cas -IPv4Address 127.77.1.10"


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def table(text: str) -> list[list[str]]:
    return [line.split() for line in lines(text)[2:]]


@pytest.fixture
def seeded(shell: Shell, bj: Directory) -> Shell:
    """The seed's steps 1-2 and III: NLB, the cluster bj-cas.lab.net, the BJ array."""
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS01")
    shell.ok(
        'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName bj-cas.lab.net '
        "-ClusterPrimaryIP 127.77.1.10"
    )
    shell.ok('New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"')
    return shell


# -- the seed's step 3 ---------------------------------------------------------------------


def test_seed_step_3(seeded: Shell, bj: Directory) -> None:
    """The A record for the cluster's name and IP: no output (as Windows), and the zone
    holds it once, now as the administrator's record."""
    before = table(seeded.ok("Get-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas").out)
    assert before == [["bj-cas", "A", "1", "0", "00:20:00", VIP, "Directory"]]
    assert seeded.ok(SEED_STEP_3).out == ""
    out = seeded.ok("Get-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas").out
    assert lines(out) == [
        "HostName RecordType Type Timestamp TimeToLive RecordData  Source",
        "-------- ---------- ---- --------- ---------- ----------  ------",
        "bj-cas   A             1 0         01:00:00   127.77.1.10 Cmdlet",
    ]
    # the same line again is refused, as Windows refuses a record that exists
    error = seeded.run(SEED_STEP_3).error()
    assert (
        error.message == "The A record bj-cas.lab.net 127.77.1.10 already exists in zone lab.net."
    )
    assert error.category == "ResourceExists"


def test_get_resource_records(seeded: Shell, bj: Directory) -> None:
    serial = bj.topology_version()
    out = seeded.ok("Get-DnsServerResourceRecord lab.net").out
    assert lines(out)[:2] == [
        "HostName           RecordType Type Timestamp TimeToLive RecordData" + " " * 30 + "Source",
        "--------           ---------- ---- --------- ---------- ----------" + " " * 30 + "------",
    ]
    rows = table(out)
    assert rows[0] == [
        "@",
        "SOA",
        "6",
        "0",
        "01:00:00",
        f"[{serial}][ns1.lab.net.][hostmaster.lab.net.]",
        "Directory",
    ]
    assert [r[:2] for r in rows] == [
        ["@", "SOA"],
        ["@", "NS"],
        ["@", "MX"],
        ["_autodiscover._tcp", "SRV"],
        ["_imap._tcp", "SRV"],
        ["_imaps._tcp", "SRV"],
        ["_submission._tcp", "SRV"],
        ["autoconfig", "A"],
        ["autodiscover", "A"],
        ["bj-cas", "A"],
        ["CAS01", "A"],
        ["CAS02", "A"],
        ["CAS03", "A"],
        ["mail", "A"],
        ["MBX01", "A"],
        ["MBX02", "A"],
        ["ns1", "A"],
    ]
    srv = table(seeded.ok("Get-DnsServerResourceRecord lab.net -RRType Srv -Name _imaps._tcp").out)
    assert srv == [
        ["_imaps._tcp", "SRV", "33", "0", "00:20:00", "[0][1][993][mail.lab.net.]", "Directory"]
    ]
    mx = table(seeded.ok("Get-DnsServerResourceRecord lab.net @ MX").out)
    assert mx == [["@", "MX", "15", "0", "00:20:00", "[10][mail.lab.net.]", "Directory"]]
    out = seeded.ok("Get-DnsServerResourceRecord lab.net -Name CAS01 | Format-List").out
    assert "Origin            : server 'CAS01'" in lines(out)
    out = seeded.ok("(Get-DnsServerResourceRecord lab.net -Name mail).RecordData.IPv4Address").out
    assert lines(out) == [VIP]
    out = seeded.ok("(Get-DnsServerResourceRecord lab.net -RRType SOA).RecordData.SerialNumber").out
    assert lines(out) == [str(serial)]


def test_add_records(seeded: Shell) -> None:
    out = seeded.ok(
        "Add-DnsServerResourceRecordA owa 127.77.1.10,127.77.1.11 lab.net -TimeToLive 00:05:00 "
        "-AllowUpdateAny -PassThru"
    ).out
    assert table(out) == [
        ["owa", "A", "1", "0", "00:05:00", "127.77.1.10", "Cmdlet"],
        ["owa", "A", "1", "0", "00:05:00", "127.77.1.11", "Cmdlet"],
    ]
    seeded.ok(
        "Add-DnsServerResourceRecordCName -ZoneName lab.net -Name webmail "
        "-HostNameAlias owa.lab.net"
    )
    seeded.ok(
        "Add-DnsServerResourceRecordMX -ZoneName lab.net -Name . -MailExchange mx.lab.net "
        "-Preference 5"
    )
    seeded.ok(
        "Add-DnsServerResourceRecordAAAA -ZoneName lab.net -Name v6 -IPv6Address 2001:db8::10"
    )
    seeded.ok(
        "Add-DnsServerResourceRecord -Srv -ZoneName lab.net -Name _pop3s._tcp "
        "-DomainName mail.lab.net -Priority 0 -Weight 1 -Port 995"
    )
    seeded.ok(
        'Add-DnsServerResourceRecord -ZoneName lab.net -Txt -Name "@" '
        '-DescriptiveText "v=spf1 mx -all"'
    )
    seeded.ok(
        "Add-DnsServerResourceRecord lab.net -A -Name ews -IPv4Address 127.77.1.10 -TimeToLive 60"
    )
    seeded.ok("Add-DnsServerResourceRecord lab.net -CName -Name files -HostNameAlias owa.lab.net")
    seeded.ok(
        "Add-DnsServerResourceRecord lab.net -MX -Name sub -MailExchange mx.lab.net -Preference 20"
    )
    rows = {
        (r[0], r[1]): r[4:6] for r in table(seeded.ok("Get-DnsServerResourceRecord lab.net").out)
    }
    assert rows["webmail", "CNAME"] == ["01:00:00", "owa.lab.net."]
    assert rows["@", "MX"] == ["01:00:00", "[5][mx.lab.net.]"]  # replaced the automatic MX
    assert rows["v6", "AAAA"] == ["01:00:00", "2001:db8::10"]
    assert rows["_pop3s._tcp", "SRV"] == ["01:00:00", "[0][1][995][mail.lab.net.]"]
    assert rows["@", "TXT"] == ["01:00:00", "v=spf1"]
    text = seeded.ok("(Get-DnsServerResourceRecord lab.net -RRType Txt).RecordData.DescriptiveText")
    assert lines(text.out) == ["v=spf1 mx -all"]
    assert rows["ews", "A"] == ["00:01:00", VIP]
    assert rows["files", "CNAME"] == ["01:00:00", "owa.lab.net."]
    assert rows["sub", "MX"] == ["01:00:00", "[20][mx.lab.net.]"]


def test_add_record_errors_change_nothing(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Add-DnsServerResourceRecordA -ZoneName lab.net -Name owa -IPv4Address 127.77.1.10")
    version = bj.topology_version()
    cases = [
        (
            "Add-DnsServerResourceRecordA -ZoneName lab.net -Name x -IPv4Address 127.77.1.300",
            "Cannot validate argument on parameter 'IPv4Address'. The value '127.77.1.300' is "
            "not an IPv4 address.",
        ),
        (
            "Add-DnsServerResourceRecordA -ZoneName lab.net -Name x.contoso.com. "
            "-IPv4Address 10.0.0.1",
            "Cannot validate argument on parameter 'Name'. The value 'x.contoso.com.' is not in "
            "the zone lab.net: the name must end in lab.net.",
        ),
        (
            "Add-DnsServerResourceRecordA -ZoneName nowhere.net -Name x -IPv4Address 10.0.0.1",
            'The DNS zone "nowhere.net" couldn\'t be found. Make sure you typed the identity '
            "correctly.",
        ),
        (
            "Add-DnsServerResourceRecordA -ZoneName lab.net -Name x -IPv4Address 10.0.0.1 "
            "-TimeToLive 99999999999",
            "Cannot validate argument on parameter 'TimeToLive'. The value '99999999999' is out "
            "of range: a TTL is 0 to 2147483647 seconds.",
        ),
        (
            "Add-DnsServerResourceRecordCName -ZoneName lab.net -Name owa -HostNameAlias x.lab.net",
            "owa.lab.net already has an A record (127.77.1.10); a CNAME can't share its name "
            "with other data (RFC 1034): remove that record first.",
        ),
        (
            "Add-DnsServerResourceRecordCName -ZoneName lab.net -Name bj-cas "
            "-HostNameAlias x.lab.net",
            "bj-cas.lab.net already has an A record (127.77.1.10) made from NLB cluster "
            "'bj-cas.lab.net' and client access array 'BJ CAS Array' (NLB cluster "
            "'bj-cas.lab.net'); a CNAME can't share its name with other data (RFC 1034).",
        ),
        (
            "Add-DnsServerResourceRecord -ZoneName lab.net -Name x -IPv4Address 10.0.0.1",
            "Say the record's type with one switch: -A, -AAAA, -CName, -MX, -Srv or -Txt.",
        ),
        (
            "Add-DnsServerResourceRecord -ZoneName lab.net -Name x -Srv -DomainName a.lab.net",
            "-Srv needs -Priority, -Weight, -Port: give them the record's data.",
        ),
        (
            "Add-DnsServerResourceRecordA -ZoneName lab.net -IPv4Address 10.0.0.1",
            None,  # a missing mandatory parameter
        ),
    ]
    for command, message in cases:
        error = seeded.run(command).error()
        if message is not None:
            assert error.message == message, command
        else:
            assert "missing mandatory parameters: Name" in error.message
    assert bj.topology_version() == version


def test_remove_records(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Add-DnsServerResourceRecordA owa 127.77.1.10,127.77.1.11 lab.net")
    seeded.ok(
        "Add-DnsServerResourceRecordMX -Name . -MailExchange mx.lab.net -Preference 5 "
        "-ZoneName lab.net"
    )
    # asks first (ConfirmImpact High); the answer No keeps it
    result = seeded.run(
        "Remove-DnsServerResourceRecord -ZoneName lab.net -RRType A -Name owa", stdin="n\n"
    )
    assert result.prompts == 1
    assert len(bj.dns.records("lab.net", "owa")) == 2
    result = seeded.ok(
        "Remove-DnsServerResourceRecord lab.net A owa -RecordData 127.77.1.11 -WhatIf"
    )
    assert what_if("Remove-DnsServerResourceRecord", "owa A 127.77.1.11") in result.out
    assert len(bj.dns.records("lab.net", "owa")) == 2
    seeded.ok("Remove-DnsServerResourceRecord lab.net A owa -RecordData 127.77.1.11 -Force")
    assert [r.data for r in bj.dns.records("lab.net", "owa")] == [VIP]
    # the data as Get-DnsServerResourceRecord shows it
    seeded.ok(
        'Remove-DnsServerResourceRecord -ZoneName lab.net -RRType MX -Name "@" '
        '-RecordData "[5][mx.lab.net.]" -Force'
    )
    assert [r.data for r in bj.dns.records("lab.net", "@", "MX")] == ["10 mail.lab.net."]
    # piped from Get-DnsServerResourceRecord
    result = seeded.ok(
        "Get-DnsServerResourceRecord lab.net -Name owa | Remove-DnsServerResourceRecord "
        "-ZoneName lab.net -Confirm:$false -PassThru"
    )
    assert table(result.out) == [["owa", "A", "1", "0", "01:00:00", VIP, "Cmdlet"]]
    assert bj.dns.records("lab.net", "owa") == []


def test_remove_automatic_record_refused(seeded: Shell, bj: Directory) -> None:
    version = bj.topology_version()
    error = seeded.run("Remove-DnsServerResourceRecord lab.net A bj-cas -Force").error()
    assert error.message == (
        "The A record bj-cas.lab.net 127.77.1.10 is made from NLB cluster 'bj-cas.lab.net' and "
        "client access array 'BJ CAS Array' (NLB cluster 'bj-cas.lab.net') in the directory, "
        "not added by cmdlet; change or remove that object instead."
    )
    assert error.category == "InvalidOperation"
    error = seeded.run("Remove-DnsServerResourceRecord lab.net A owa -Force").error()
    assert error.category == "ObjectNotFound"
    error = seeded.run("Remove-DnsServerResourceRecord lab.net -Force").error()
    assert (
        error.message
        == "Name the record: -RRType and -Name (or pipe it in from Get-DnsServerResourceRecord)."
    )
    assert bj.topology_version() == version


# -- zones -------------------------------------------------------------------------------------


def test_zones(shell: Shell, bj: Directory) -> None:
    assert (
        shell.ok("Add-DnsServerPrimaryZone -Name contoso.com -ZoneFile contoso.com.dns").out == ""
    )
    out = shell.ok("Add-DnsServerPrimaryZone fabrikam.com -ReplicationScope Forest -PassThru").out
    assert table(out) == [["fabrikam.com", "Primary", "False", "True", "False", "False"]]
    assert lines(shell.ok("Get-DnsServerZone").out) == [
        "ZoneName     ZoneType IsAutoCreated IsDsIntegrated IsReverseLookupZone IsSigned",
        "--------     -------- ------------- -------------- ------------------- --------",
        "lab.net      Primary          False           True               False    False",
        "contoso.com  Primary          False          False               False    False",
        "fabrikam.com Primary          False           True               False    False",
    ]
    out = shell.ok("Get-DnsServerZone contoso.com | Format-List ZoneName,ZoneFile").out
    assert lines(out) == ["ZoneName : contoso.com", "ZoneFile : contoso.com.dns"]
    shell.ok("Add-DnsServerResourceRecordA -ZoneName contoso.com -Name www -IPv4Address 192.0.2.80")
    result = shell.run("Remove-DnsServerZone contoso.com", stdin="n\n")
    assert result.prompts == 1 and len(bj.dns.zones()) == 3
    shell.ok("Remove-DnsServerZone contoso.com -Force")
    assert [z.zone_name for z in bj.dns.zones()] == ["lab.net", "fabrikam.com"]
    error = shell.run("Remove-DnsServerZone lab.net -Force").error()
    assert "accepted domain lab.net" in error.message and "can't be removed" in error.message
    error = shell.run("Add-DnsServerPrimaryZone lab.net").error()
    assert (
        error.message
        == "The zone lab.net already exists: it is the zone of the accepted domain lab.net."
    )
    error = shell.run("Get-DnsServerZone nowhere.net").error()
    assert error.category == "ObjectNotFound"


# -- export ------------------------------------------------------------------------------------


def test_export(
    seeded: Shell, bj: Directory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)
    result = seeded.ok("Export-DnsServerZone -Name lab.net -FileName lab.net.dns")
    path = out_dir / "lab.net.dns"
    assert table(result.out) == [["lab.net", str(bj.topology_version()), "17", str(path)]]
    assert "bj-cas 1200 IN A 127.77.1.10" in path.read_text().splitlines()
    error = seeded.run("Export-DnsServerZone lab.net lab.net.dns").error()
    assert error.message == f"The file {path} already exists; remove it or choose another FileName."


# -- views and settings ----------------------------------------------------------------------


def test_client_subnets(shell: Shell, bj: Directory) -> None:
    out = shell.ok(
        "Add-DnsServerClientSubnet -Name VPN -IPv4Subnet 10.8.0.0/16,10.9.0.0/16 -PassThru"
    ).out
    assert table(out) == [["VPN", "{10.8.0.0/16,", "10.9.0.0/16}"]]
    shell.ok("Add-DnsServerClientSubnet Branch -IPv6Subnet 2001:db8::/32")
    assert [r[0] for r in table(shell.ok("Get-DnsServerClientSubnet").out)] == ["VPN", "Branch"]
    assert "10.8.0.0/16" in [str(n) for n in bj.dns.contents().inside_networks]
    error = shell.run("Add-DnsServerClientSubnet X -IPv4Subnet 10.8.0.1/16").error()
    assert error.message == (
        "Cannot validate argument on parameter 'IPv4Subnet'. The value '10.8.0.1/16' has host "
        "bits set; the subnet is 10.8.0.0/16."
    )
    shell.ok("Remove-DnsServerClientSubnet vpn -Force")
    assert [s.name for s in bj.dns.client_subnets()] == ["Branch"]


def test_query_resolution_policies(seeded: Shell, bj: Directory) -> None:
    seeded.ok(
        "Add-DnsServerResourceRecordA -ZoneName lab.net -Name web.int -IPv4Address 127.77.1.80"
    )
    out = seeded.ok(
        "Add-DnsServerQueryResolutionPolicy -Name Internal -Action DENY "
        '-Fqdn "EQ,*.int.lab.net" -PassThru'
    ).out
    assert table(out) == [["Internal", "1", "True", "Deny", "Fqdn", "EQ,*.int.lab.net"]]
    assert "web.int" in bj.dns.contents().zone("lab.net").hidden
    seeded.ok('Add-DnsServerQueryResolutionPolicy Public -Fqdn "EQ,autodiscover.lab.net" -Disable')
    assert [r[:3] for r in table(seeded.ok("Get-DnsServerQueryResolutionPolicy").out)] == [
        ["Internal", "1", "True"],
        ["Public", "2", "False"],
    ]
    error = seeded.run(
        'Add-DnsServerQueryResolutionPolicy X -Action ALLOW -Fqdn "EQ,a.lab.net"'
    ).error()
    assert "only DENY names to clients outside the inside networks" in error.message
    error = seeded.run(
        "Add-DnsServerQueryResolutionPolicy X -ClientSubnet 'EQ,VPN' -Fqdn 'EQ,a.lab.net'"
    ).error()
    assert "ClientSubnet" in error.message
    seeded.ok("Remove-DnsServerQueryResolutionPolicy Internal -Force")
    assert "web.int" not in bj.dns.contents().zone("lab.net").hidden


def test_server_setting(shell: Shell, bj: Directory) -> None:
    assert table(shell.ok("Get-DnsServerSetting -All").out) == [
        ["casarray", "DNS", "{127.77.0.53}"]
    ]
    shell.ok("Set-DnsServerSetting -ListeningIPAddress 127.77.0.54")
    assert bj.dns.listening_address() == "127.77.0.54"
    error = shell.run("Set-DnsServerSetting -ListeningIPAddress dns.lab.net").error()
    assert "is not an IPv4 address" in error.message
