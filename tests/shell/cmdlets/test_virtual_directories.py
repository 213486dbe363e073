"""Get-/Set-WebServicesVirtualDirectory, Get-/Set-AutodiscoverVirtualDirectory and
Set-ClientAccessServer -AutoDiscoverServiceInternalUri through the shell: what the
administrator sees, pipelines, -WhatIf, and refusals that change nothing."""

from __future__ import annotations

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell

EWS_ID = '"CAS01\\EWS (Default Web Site)"'


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def test_get_lists_every_server(shell: Shell, bj: Directory) -> None:
    out = lines(shell.ok("Get-WebServicesVirtualDirectory").out)
    assert out[0].split() == ["Name", "Server"]
    assert [line.split()[-1] for line in out[2:]] == ["CAS01", "CAS02", "CAS03"]
    assert out[2].startswith("EWS (Default Web Site)")


def test_get_one_and_its_properties(shell: Shell, bj: Directory) -> None:
    out = shell.ok(
        f"Get-WebServicesVirtualDirectory -Identity {EWS_ID} | "
        "Format-List Identity,InternalUrl,ExternalUrl,BasicAuthentication,WindowsAuthentication"
    ).out
    assert lines(out) == [
        "Identity              : CAS01\\EWS (Default Web Site)",
        "InternalUrl           : https://CAS01.lab.net/EWS/Exchange.asmx",
        "ExternalUrl           :",
        "BasicAuthentication   : True",
        "WindowsAuthentication : True",
    ]
    server = shell.ok("(Get-AutodiscoverVirtualDirectory -Server CAS02).InternalUrl").out
    assert server.strip() == "https://CAS02.lab.net/Autodiscover/Autodiscover.xml"


def test_set_as_the_seed_would(shell: Shell, bj: Directory) -> None:
    result = shell.ok(
        f"Set-WebServicesVirtualDirectory -Identity {EWS_ID} "
        "-ExternalUrl https://bj-cas.lab.net/EWS/Exchange.asmx -BasicAuthentication $false"
    )
    assert result.out.strip() == ""
    [ews] = bj.virtual_directories.get("WebServices", "CAS01")
    assert ews.external_url == "https://bj-cas.lab.net/EWS/Exchange.asmx"
    assert not ews.basic_authentication
    # a pipeline sets every server's; $null clears
    shell.ok(
        "Get-WebServicesVirtualDirectory | Set-WebServicesVirtualDirectory "
        "-InternalUrl https://bj-cas.lab.net/EWS/Exchange.asmx"
    )
    assert {v.internal_url for v in bj.virtual_directories.get("WebServices")} == {
        "https://bj-cas.lab.net/EWS/Exchange.asmx"
    }
    shell.ok("Set-WebServicesVirtualDirectory CAS01 -ExternalUrl $null")
    assert bj.virtual_directories.get("WebServices", "CAS01")[0].external_url is None


def test_what_if_changes_nothing(shell: Shell, bj: Directory) -> None:
    result = shell.ok(
        "Set-AutodiscoverVirtualDirectory CAS01 -WindowsAuthentication $false -WhatIf"
    )
    assert "What if" in result.out
    assert bj.virtual_directories.get("Autodiscover", "CAS01")[0].windows_authentication


def test_a_bad_url_is_refused_by_name(shell: Shell, bj: Directory) -> None:
    version = bj.topology_version()
    result = shell.run(
        f"Set-WebServicesVirtualDirectory {EWS_ID} -InternalUrl https://cas01.lab.net/owa/"
    )
    assert not result.ok
    message = result.error().message
    assert "InternalUrl" in message and "/EWS/Exchange.asmx" in message
    assert bj.topology_version() == version


def test_unknown_and_wrong_identities(shell: Shell, bj: Directory) -> None:
    result = shell.run('Get-WebServicesVirtualDirectory "CAS01\\OWA (Default Web Site)"')
    assert "EWS (Default Web Site)" in result.error().message
    result = shell.run("Get-WebServicesVirtualDirectory -Server MBX01")
    assert "isn't a Client Access server" in result.error().message


def test_set_client_access_server_autodiscover_uri(shell: Shell, bj: Directory) -> None:
    before = shell.ok("(Get-ClientAccessServer CAS01).AutoDiscoverServiceInternalUri").out
    assert before.strip() == "https://CAS01.lab.net/Autodiscover/Autodiscover.xml"
    shell.ok(
        "Set-ClientAccessServer CAS01 "
        "-AutoDiscoverServiceInternalUri https://bj-cas.lab.net/Autodiscover/Autodiscover.xml"
    )
    after = shell.ok("(Get-ClientAccessServer CAS01).AutoDiscoverServiceInternalUri").out
    assert after.strip() == "https://bj-cas.lab.net/Autodiscover/Autodiscover.xml"
    result = shell.run("Set-ClientAccessServer CAS01 -AutoDiscoverServiceInternalUri nonsense")
    assert "AutoDiscoverServiceInternalUri" in result.error().message
