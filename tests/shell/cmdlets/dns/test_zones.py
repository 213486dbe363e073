"""The DNS zone cmdlets through the shell: zones and the export."""

from __future__ import annotations

from pathlib import Path

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell
from tests.shell.cmdlets.dns.dns_shell import lines, table


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
