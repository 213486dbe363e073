"""The DNS record cmdlets through the shell: the seed's step 3
(Add-DnsServerResourceRecordA for the cluster's name), the records as
Get-DnsServerResourceRecord shows them (automatic ones marked), adding, removal with
its confirmation and its refusal of automatic records, and the errors."""

from __future__ import annotations

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell, what_if
from tests.shell.cmdlets.dns.dns_shell import SEED_STEP_3, VIP, lines, table


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
