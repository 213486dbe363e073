"""The DNS views (client subnets, query resolution policies) and the server's
listening address, through the shell."""

from __future__ import annotations

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell
from tests.shell.cmdlets.dns.dns_shell import table


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
