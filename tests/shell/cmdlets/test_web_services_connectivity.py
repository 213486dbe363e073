"""Test-WebServicesConnectivity against a real HTTPS service (uvicorn with a
self-signed certificate, trusted as the lab's CA through lab.json): success, /EWS
answering 401 (Basic turned off) and 404, a certificate not trusted, a name that
doesn't resolve."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from casarray.access import tls
from casarray.access.http import AppContext, create_app
from casarray.config import casarray_home
from casarray.directory import Directory
from tests.access.http import Served, build_org
from tests.conftest import PASSWORD
from tests.shell.cmdlet_shell import Shell

CREDS = (
    f"-Identity alice@lab.net -Password (ConvertTo-SecureString '{PASSWORD}' -AsPlainText -Force)"
)
URL = "https://127.0.0.1/EWS/Exchange.asmx"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    build_org(bj, password_hash)
    bj.mailboxes.set("alice", password=PASSWORD)
    return bj


@pytest.fixture
def certificate(tmp_path: Path) -> tls.CertificateFiles:
    files, _ = tls.ensure_certificate("CAS01", ["CAS01.lab.net", "127.0.0.1"], home=tmp_path)
    return files


def lab_json(port: int, root: Path) -> None:
    (casarray_home() / "lab.json").write_text(
        json.dumps(
            {
                "dns_address": "127.0.0.1",
                "dns_port": 9,
                "port_offset": port - 443,
                "root_ca": str(root),
            }
        )
    )


@pytest.fixture
def cas01(org: Directory, shell: Shell, certificate: tls.CertificateFiles) -> Iterator[Served]:
    app = create_app(AppContext.for_server(org, "CAS01"))
    with Served(app, tls.server_context(certificate)) as served:
        lab_json(served.port, certificate.certificate)
        shell.ok(f"Set-WebServicesVirtualDirectory CAS01 -InternalUrl {URL}")
        yield served


def rows(shell: Shell, command: str) -> list[dict[str, str]]:
    out = shell.ok(
        command + ' | % { "$($_.ClientAccessServer)|$($_.Scenario)|$($_.Result)|$($_.Error)" }'
    ).out
    found = []
    for line in out.splitlines():
        if line.count("|") >= 3:
            server, scenario, result, error = line.split("|", 3)
            found.append({"server": server, "scenario": scenario, "result": result, "error": error})
    return found


def test_success(shell: Shell, cas01: Served) -> None:
    got = rows(shell, f"Test-WebServicesConnectivity CAS01 {CREDS}")
    assert [(r["scenario"], r["result"]) for r in got] == [
        ("GetFolder", "Success"),
        ("FindItem", "Success"),
    ]
    table = shell.ok(f"Test-WebServicesConnectivity CAS01 {CREDS}").out
    assert "ServiceEndpoint" in table and "Latency(MS)" in table and URL in table


def test_basic_turned_off_is_a_401_failure(shell: Shell, cas01: Served) -> None:
    shell.ok("Set-WebServicesVirtualDirectory CAS01 -BasicAuthentication $false")
    got = rows(shell, f"Test-WebServicesConnectivity CAS01 {CREDS}")
    assert [(r["scenario"], r["result"]) for r in got] == [
        ("GetFolder", "Failure"),
        ("FindItem", "Skipped"),
    ]
    assert "401" in got[0]["error"] and "Basic authentication is off" in got[0]["error"]
    assert "NTLM" in got[0]["error"]


def test_wrong_password_is_a_401_failure(shell: Shell, cas01: Served) -> None:
    creds = CREDS.replace(PASSWORD, "wrong")
    [first, _] = rows(shell, f"Test-WebServicesConnectivity CAS01 {creds}")
    assert first["result"] == "Failure" and "401" in first["error"]


def test_no_ews_there_is_a_404_failure(
    shell: Shell, org: Directory, certificate: tls.CertificateFiles
) -> None:
    with Served(Starlette(), tls.server_context(certificate)) as served:
        lab_json(served.port, certificate.certificate)
        shell.ok(f"Set-WebServicesVirtualDirectory CAS01 -InternalUrl {URL}")
        [first, second] = rows(shell, f"Test-WebServicesConnectivity CAS01 {CREDS}")
    assert first["result"] == "Failure" and "404" in first["error"]
    assert second["result"] == "Skipped"


def test_untrusted_certificate_is_a_tls_failure(
    shell: Shell, cas01: Served, tmp_path: Path
) -> None:
    other, _ = tls.ensure_certificate("OTHER", ["other.lab.net"], home=tmp_path / "other")
    lab_json(cas01.port, other.certificate)
    [first, _] = rows(shell, f"Test-WebServicesConnectivity CAS01 {CREDS}")
    assert first["result"] == "Failure" and "not trusted" in first["error"]


def test_every_server_by_default(shell: Shell, cas01: Served) -> None:
    got = rows(shell, f"Test-WebServicesConnectivity {CREDS}")
    servers = {r["server"] for r in got}
    assert {"CAS01", "CAS02", "CAS03"} <= servers
    assert all(r["result"] == "Success" for r in got if r["server"] == "CAS01")
    # CAS02's URL names CAS02.lab.net, which the (absent) lab DNS doesn't resolve.
    cas02 = [r for r in got if r["server"] == "CAS02"]
    assert cas02[0]["result"] == "Failure" and "cas02.lab.net" in cas02[0]["error"].lower()


def test_refusals(shell: Shell, org: Directory) -> None:
    bad = shell.run("Test-WebServicesConnectivity MBX01 " + CREDS)
    assert not bad.ok and "isn't a Client Access server" in bad.err
    bad = shell.run("Test-WebServicesConnectivity CAS01 -Identity alice@lab.net")
    assert not bad.ok and "-Password" in bad.err
