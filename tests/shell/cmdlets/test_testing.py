"""Test-ClientAccessArray through the shell, as an administrator uses it: the
walkthrough's step 6 (a database left on CAS01 is flagged until the bulk
Set-MailboxDatabase), the Fix of every finding run as typed until the check is clean,
the output, a bad identity, and member health read from real running processes
(`casarray server run`, `casarray balancer run`)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.balancer.balancer_process import status_file
from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell

ARRAY = "bj-cas.lab.net"
MAKE_ARRAY = 'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ'
MAKE_CLUSTER = (
    "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
    "-ClientAccessArray bj-cas.lab.net"
)


def certify(shell: Shell, server: str, names: str = f"{ARRAY},autodiscover.lab.net") -> None:
    """A certificate for IMAP and IIS on `server` covering `names` and the server's own
    name (its EWS virtual directory's InternalUrl names it: Test-ClientAccessArray's
    EwsUrlNotCovered)."""
    if f"{server}.lab.net".lower() not in names.lower().split(","):
        names = f"{server}.lab.net,{names}"
    shell.ok(f"New-ExchangeCertificate -Server {server} -DomainName {names} -Services IMAP,IIS")


def findings(shell: Shell, identity: str = "") -> list[tuple[str, str, str]]:
    """(Severity, Check, Target) of every object Test-ClientAccessArray writes."""
    out = shell.ok(
        f"Test-ClientAccessArray {identity} | % {{ $_.Severity + '|' + $_.Check + '|' + "
        "$_.Target }"
    ).out
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]  # type: ignore[misc]


def fixes(shell: Shell, identity: str = "") -> list[str]:
    """The Fix of every Error and Warning."""
    out = shell.ok(
        f"Test-ClientAccessArray {identity} | ? {{ $_.Severity -in 'Error','Warning' }} | % Fix"
    ).out
    return [line for line in out.splitlines() if line.strip()]


def fix_until_clean(shell: Shell, identity: str = "", rounds: int = 4) -> list[str]:
    """Run the fixes Test-ClientAccessArray gives, as typed, until it finds no Error or
    Warning; every command run, in order."""
    ran: list[str] = []
    for _ in range(rounds):
        todo = fixes(shell, identity)
        if not todo:
            return ran
        for command in todo:
            assert not command.startswith("casarray "), command
            shell.ok(command)
            ran.append(command)
    raise AssertionError(f"still not clean after {ran}: {findings(shell, identity)}")


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shell's working folder (where the certificate fixes write their files)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- the walkthrough -------------------------------------------------------------------


def test_walkthrough_step_6(shell: Shell, bj: Directory) -> None:
    shell.ok("New-MailboxDatabase DB01 -Server MBX01")  # before the array: CAS01
    shell.ok(MAKE_ARRAY)
    shell.ok(MAKE_CLUSTER)
    certify(shell, "CAS01", f"{ARRAY},CAS01.lab.net,autodiscover.lab.net")
    certify(shell, "CAS02")
    shell.ok("New-MailboxDatabase DB02 -Server MBX01")
    assert bj.databases.one("DB02").rpc_client_access_server == ARRAY
    assert ("Warning", "DatabasesNotOnArray", "DB01") in findings(shell)
    assert fixes(shell) == ["Set-MailboxDatabase DB01 -RpcClientAccessServer bj-cas.lab.net"]
    assert "No issues found" not in shell.ok("Test-ClientAccessArray").out
    shell.ok("Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net")
    # what is left: recommendations (SH has no array; nothing runs to check health)
    assert findings(shell) == [
        ("Info", "MemberHealthUnknown", "CAS01, CAS02"),
        ("Info", "NoArray", "SH"),
        ("None", "None", ""),
    ]
    out = shell.ok("Test-ClientAccessArray bj-cas.lab.net | fl Severity,Finding").out
    assert "No issues found in site BJ. 1 recommendation (Info) above." in out


# -- every fix, as typed ----------------------------------------------------------------


def test_the_fixes_make_the_site_clean(shell: Shell, bj: Directory, in_tmp: Path) -> None:
    """From a site with no array to a clean one, by running the fixes: the array, the
    NLB cluster (DNS follows), lab CA certificates for both members, the database."""
    shell.ok("New-MailboxDatabase DB01 -Server MBX01")
    assert [f for f in findings(shell) if f[1] == "NoArray"] == [
        ("Warning", "NoArray", "BJ"),
        ("Info", "NoArray", "SH"),
    ]
    ran = fix_until_clean(shell)
    assert ran[0] == MAKE_ARRAY
    assert ran[1:] == [
        MAKE_CLUSTER,
        'New-ExchangeCertificate -GenerateRequest -SubjectName "CN=bj-cas.lab.net" '
        "-DomainName bj-cas.lab.net,cas01.lab.net,autodiscover.lab.net -Server CAS01 | "
        "Get-LabCertificate -Path CAS01.cer; Import-ExchangeCertificate -FileName CAS01.cer "
        "-Server CAS01 | Enable-ExchangeCertificate -Services IMAP,IIS -Force",
        'New-ExchangeCertificate -GenerateRequest -SubjectName "CN=bj-cas.lab.net" '
        "-DomainName bj-cas.lab.net,autodiscover.lab.net,cas02.lab.net -Server CAS02 | "
        "Get-LabCertificate -Path CAS02.cer; Import-ExchangeCertificate -FileName CAS02.cer "
        "-Server CAS02 | Enable-ExchangeCertificate -Services IMAP,IIS -Force",
        "Set-MailboxDatabase DB01 -RpcClientAccessServer bj-cas.lab.net",
    ]
    issued = bj.certificates.get("CAS02")
    assert [(c.status, c.root_ca_type, c.services) for c in issued] == [
        ("Valid", "Enterprise", ("IMAP", "IIS"))
    ]
    assert (in_tmp / "CAS01.cer").exists()
    assert findings(shell, ARRAY)[-1] == ("None", "None", "")


@pytest.fixture
def clean(shell: Shell, bj: Directory) -> Shell:
    shell.ok(MAKE_ARRAY)
    shell.ok(MAKE_CLUSTER)
    certify(shell, "CAS01")
    certify(shell, "CAS02")
    assert fixes(shell, ARRAY) == []
    return shell


def test_fixes_of_dns_findings(clean: Shell, bj: Directory) -> None:
    clean.ok("Add-DnsServerResourceRecordA -ZoneName lab.net -Name bj-cas -IPv4Address 127.77.1.11")
    clean.ok("Add-DnsServerPrimaryZone -Name bj-cas.lab.net")  # its apex: seen outside
    assert [f[1] for f in findings(clean, ARRAY) if f[0] != "Info"] == [
        "ResolvableOutside"
    ]  # the new zone's A comes from the cluster; lab.net's stray record is shadowed
    # the zone gone, the stray record in lab.net is what clients get
    assert fix_until_clean(clean, ARRAY) == [
        "Remove-DnsServerZone -Name bj-cas.lab.net -Force",
        "Remove-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas -RRType A "
        "-RecordData 127.77.1.11 -Force",
    ]
    assert findings(clean, ARRAY)[-1] == ("None", "None", "")


def test_fixes_of_balancer_and_member_findings(clean: Shell, bj: Directory) -> None:
    clean.ok("Remove-NlbCluster -HostName bj-cas.lab.net -Force")
    clean.ok("Install-WindowsFeature NLB -ComputerName CAS01")
    clean.ok("Install-WindowsFeature NLB -ComputerName CAS03")
    clean.ok(
        "New-NlbCluster -HostName CAS01 -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10"
    )
    clean.ok("Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS03")
    clean.ok(
        "Set-ServerComponentState CAS02 -Component ServerWideOffline -State Inactive "
        "-Requester Maintenance"
    )
    assert [f[:2] for f in findings(clean, ARRAY)] == [
        ("Error", "BalancerExtraNodes"),
        ("Warning", "BalancerMissingMembers"),
        ("Warning", "MemberInMaintenance"),
        ("Info", "MemberHealthUnknown"),
    ]
    assert fix_until_clean(clean, ARRAY) == [
        "Remove-NlbClusterNode -HostName CAS03 -Force",
        "Set-NlbCluster -HostName bj-cas.lab.net -ClientAccessArray bj-cas.lab.net -FollowArray",
        "Set-ServerComponentState CAS02 -Component ServerWideOffline -State Active "
        "-Requester Maintenance",
    ]
    assert bj.nlb.cluster(ARRAY).follow_array


def test_fix_of_an_array_named_as_a_public_name(shell: Shell, bj: Directory) -> None:
    shell.ok('New-ClientAccessArray -Name "BJ CAS Array" -Fqdn mail.lab.net -Site BJ')
    shell.ok('New-NlbCluster -ClusterPrimaryIP 127.77.1.10 -ClientAccessArray "BJ CAS Array"')
    certify(shell, "CAS01", f"{ARRAY},mail.lab.net,autodiscover.lab.net")
    certify(shell, "CAS02", f"{ARRAY},mail.lab.net,autodiscover.lab.net")
    assert fix_until_clean(shell, '"BJ CAS Array"') == [
        'Set-ClientAccessArray -Identity "BJ CAS Array" -Fqdn bj-cas.lab.net'
    ]
    assert bj.arrays.one("BJ CAS Array").fqdn == ARRAY


# -- output and errors ----------------------------------------------------------------------


def test_the_output(clean: Shell) -> None:
    clean.ok("New-MailboxDatabase DB01 -Server MBX01")
    clean.ok("Set-MailboxDatabase DB01 -RpcClientAccessServer CAS02.lab.net")
    out = clean.ok("Test-ClientAccessArray bj-cas.lab.net").out
    lines = [line.rstrip() for line in out.splitlines() if line.strip()]
    assert lines[:4] == [
        "Severity : Warning",
        "Check    : DatabasesNotOnArray",
        "Site     : BJ",
        "Array    : bj-cas.lab.net",
    ]
    assert "Fix      : Set-MailboxDatabase DB01 -RpcClientAccessServer bj-cas.lab.net" in lines
    counted = clean.ok("@(Test-ClientAccessArray | ? Severity -eq Warning).Count").out
    assert counted.strip() == "1"


def test_a_bad_identity_is_an_error(clean: Shell) -> None:
    result = clean.run("Test-ClientAccessArray nosuch.lab.net")
    error = result.error()
    assert error.category == "ObjectNotFound"
    assert "nosuch.lab.net" in error.message
    assert "Severity" not in result.out


# -- member health from running processes ---------------------------------------------------


@pytest.fixture
def lab_shell(tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from tests.access.imap.server_harness import make_lab

    lab = make_lab(tmp_path / "lab", password_hash)
    monkeypatch.setenv("CASARRAY_HOME", str(lab.home))
    shell = Shell(lab.url)
    yield lab, shell
    shell.close()
    lab.directory.close()


def test_member_health_from_the_balancer_and_the_health_pages(lab_shell: tuple) -> None:
    from tests.access.imap.server_harness import free_offset, start_casarray, stop_process
    from tests.balancer.test_balancer_process import LAB_PORTS as BALANCER_PORTS
    from tests.balancer.test_balancer_process import node_states, wait_for

    lab, shell = lab_shell
    shell.ok(MAKE_ARRAY)
    shell.ok(MAKE_CLUSTER + " -DataPlane Proxy")
    shell.ok("Remove-NlbClusterPortRule -HostName bj-cas.lab.net -Port 0 -Force")
    shell.ok(
        "Add-NlbClusterPortRule -HostName bj-cas.lab.net -StartPort 143 -EndPort 143 "
        "-Protocol Tcp -Affinity None"
    )
    certify(shell, "CAS01")
    certify(shell, "CAS02")
    shell.ok("Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net")
    offset = free_offset(BALANCER_PORTS)
    run = ["--port-offset", str(offset), "--processes", "1"]
    procs = {"CAS01": start_casarray(["server", "run", "CAS01", *run], lab, lab.home / "CAS01.log")}
    offsets = ["--listen-offset", str(offset), "--backend-offset", str(offset)]
    balancer = ["balancer", "run", ARRAY, "--engine", "Proxy", *offsets]
    procs["balancer"] = start_casarray(balancer, lab, lab.home / "balancer.log")
    status = status_file(ARRAY, lab.home).path
    try:
        # CAS02 doesn't run: the balancer's probes fail
        up = ("Converging", "Converged")  # Converging: slow start, new clients come
        wait_for(lambda: node_states(status)["CAS02"] == "Unhealthy")
        wait_for(lambda: node_states(status)["CAS01"] in up)
        unhealthy = shell.ok(
            f"Test-ClientAccessArray {ARRAY} | ? Check -eq MemberUnhealthy | fl Target,Finding"
        ).out
        assert "CAS02" in unhealthy and "(balancer bj-cas.lab.net): imap 143" in unhealthy
        assert fixes(shell, ARRAY) == ["casarray server run CAS02"]

        cas02 = ["server", "run", "CAS02", *run]
        procs["CAS02"] = start_casarray(cas02, lab, lab.home / "CAS02.log")
        wait_for(lambda: node_states(status)["CAS02"] in up)
        wait_for(lambda: json.loads((lab.home / "run" / "cas-cas02.json").read_text()))
        assert findings(shell, ARRAY) == [("None", "None", "")]  # health known: no Info

        # a hung CAS02 (SIGSTOP): it accepts connections but answers nothing
        os.kill(procs["CAS02"].pid, signal.SIGSTOP)
        try:
            wait_for(lambda: [f[1] for f in findings(shell, ARRAY)] == ["MemberUnhealthy"])
        finally:
            os.kill(procs["CAS02"].pid, signal.SIGCONT)
        wait_for(lambda: node_states(status)["CAS02"] in up)
        assert findings(shell, ARRAY) == [("None", "None", "")]
    finally:
        for proc in reversed(procs.values()):
            stop_process(proc)


# -- Test-OutlookConnectivity and Test-MAPIConnectivity against a running organization ------

VIP = "127.77.1.10"
CAS = {"CAS01": "127.77.1.11", "CAS02": "127.77.1.12"}
LAB_PORTS = [(VIP, (993, 443))] + [(host, (143, 993, 80, 443)) for host in CAS.values()]
DNS_ADDRESS = "127.77.0.53"
PASSWORD_ARG = "-Password (ConvertTo-SecureString 'P@ssw0rd-lab' -AsPlainText -Force)"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[tuple]:
    """BJ's array behind a Proxy-plane balancer (993 and 443), CAS01 and CAS02 with lab
    CA certificates made by the fixes Test-ClientAccessArray gives, the DNS server, and
    $CASARRAY_HOME/lab.json telling clients where the DNS server is and the offset.
    alice (DB01, BJ) has two messages; DB03 (SH) has CAS03 as endpoint, not running."""
    import time

    from casarray.dns.dns_process import read_status as dns_status
    from casarray.lab.config import LabConfig
    from tests.access.imap.server_harness import free_offset, make_lab, start_casarray, stop_process
    from tests.balancer.test_balancer_process import wait_for

    lab = make_lab(tmp_path_factory.mktemp("testing-lab"), password_hash)
    offset = free_offset(LAB_PORTS)
    procs = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CASARRAY_HOME", str(lab.home))
        mp.chdir(lab.home)
        shell = Shell(lab.url)
        try:
            shell.ok(MAKE_ARRAY)
            shell.ok(MAKE_CLUSTER + " -DataPlane Proxy")
            shell.ok("Remove-NlbClusterPortRule -HostName bj-cas.lab.net -Port 0 -Force")
            for port in (993, 443):
                shell.ok(
                    f"Add-NlbClusterPortRule -HostName bj-cas.lab.net -StartPort {port} "
                    f"-EndPort {port} -Protocol Tcp -Affinity None"
                )
            fix_until_clean(shell, ARRAY)  # the certificates and DB01
            lab.add_user("alice")
            for subject in ("Welcome", "Quarterly report"):
                lab.mailbox_store("alice").append(
                    "INBOX", f"From: bob@lab.net\r\nSubject: {subject}\r\n\r\nHi\r\n".encode()
                )
            run = ["--port-offset", str(offset), "--processes", "1"]
            dns = ["dns", "run", "--address", DNS_ADDRESS, "--port", "0"]
            procs.append(start_casarray(dns, lab, lab.home / "dns.log"))
            for name in CAS:
                server = ["server", "run", name, *run]
                procs.append(start_casarray(server, lab, lab.home / f"{name}.log"))
            offsets = ["--listen-offset", str(offset), "--backend-offset", str(offset)]
            balancer = ["balancer", "run", ARRAY, "--engine", "Proxy", *offsets]
            procs.append(start_casarray(balancer, lab, lab.home / "balancer.log"))
            status = status_file(ARRAY, lab.home).path
            up = {"Converging", "Converged"}  # Converging: slow start, clients come
            wait_for(lambda: {n["state"] for n in json.loads(status.read_text())["nodes"]} <= up,
                     timeout=30)  # fmt: skip
            wait_for(lambda: (dns_status(lab.home) or {}).get("pid") == procs[0].pid)
            dns_port = int((dns_status(lab.home) or {})["port"])
            LabConfig(
                home=lab.home,
                port_offset=offset,
                dns_address=DNS_ADDRESS,
                dns_port=dns_port,
                root_ca=lab.home / "pki" / "lab-root.pem",
                directory=lab.url,
                data_plane="Proxy",
                created=time.strftime("%Y-%m-%dT%H:%M:%S"),
            ).save()
            yield lab, shell, offset, dns_port, procs
        finally:
            for proc in reversed(procs):
                stop_process(proc)
            shell.close()
            lab.directory.close()


@pytest.fixture
def org(running: tuple, monkeypatch: pytest.MonkeyPatch) -> tuple:
    lab = running[0]
    monkeypatch.setenv("CASARRAY_HOME", str(lab.home))
    monkeypatch.chdir(lab.home)
    return running


def rows(shell: Shell, command: str, *columns: str) -> list[list[str]]:
    """The given properties of each object `command` writes."""
    joined = " + '|' + ".join(f"[string]$_.{c}" for c in columns)
    out = shell.ok(f"{command} | % {{ {joined} }}").out
    return [line.split("|") for line in out.splitlines() if line.strip()]


def test_the_running_organization_is_clean(org: tuple) -> None:
    shell = org[1]
    assert findings(shell, ARRAY) == [("None", "None", "")]  # members healthy, checked


def test_outlook_connectivity_through_the_array(org: tuple) -> None:
    _, shell, offset, dns_port, _ = org
    command = f"Test-OutlookConnectivity -Protocol TCP -Identity alice@lab.net {PASSWORD_ARG}"
    got = rows(shell, command, "Scenario", "Result", "Server", "ServiceEndpoint", "Detail")
    assert [r[:2] for r in got] == [
        ["Autodiscover", "Success"],
        ["DNS", "Success"],
        ["Connect", "Success"],
        ["TLS", "Success"],
        ["Logon", "Success"],
        ["ListInbox", "Success"],
    ]
    autodiscover, dns, connect, tls, logon, listed = got
    assert autodiscover[2] == "autodiscover.lab.net"
    assert autodiscover[4].startswith("Server bj-cas.lab.net (found by SRV _autodiscover._tcp")
    assert dns[2:5] == [f"the DNS server {DNS_ADDRESS}:{dns_port}", ARRAY, VIP]
    assert connect[2] == f"{VIP}:{993 + offset}"
    assert tls[2] == ARRAY
    assert logon[2] in ("CAS01.lab.net", "CAS02.lab.net")
    assert listed[4] == "2 messages"
    latencies = shell.ok(f"({command}).Latency").out.split()
    assert len(latencies) == 6 and all(float(x) >= 0 for x in latencies)
    table = shell.ok(command).out
    assert table.splitlines()[1].split() == ["Scenario", "Result", "Latency", "Server", "Error"]


def test_outlook_connectivity_through_each_server(org: tuple) -> None:
    _, shell, offset, *_ = org
    command = (
        f"Test-OutlookConnectivity -Protocol TCP -RpcTestType Server -Identity alice {PASSWORD_ARG}"
    )
    got = rows(shell, command, "Scenario", "Result", "Server", "Error")
    cas01, cas02 = got[:6], got[6:]
    assert [r[1] for r in cas01] == ["Success"] * 6
    assert [r[2] for r in cas01[2:]] == [
        f"127.77.1.11:{993 + offset}",
        "CAS01.lab.net",  # its certificate names it: DB01 named CAS01 when it was made
        "CAS01.lab.net",
        "CAS01.lab.net",
    ]
    # Test-ClientAccessArray's fixes gave CAS02 a certificate naming it too (its EWS
    # InternalUrl names it: EwsUrlNotCovered), so by its own name TLS verifies
    assert [r[:2] for r in cas02] == [
        ["Autodiscover", "Success"],
        ["DNS", "Success"],
        ["Connect", "Success"],
        ["TLS", "Success"],
        ["Logon", "Success"],
        ["ListInbox", "Success"],
    ]
    only_cas01 = rows(shell, command + " -RpcClientAccessServer CAS01", "Result")
    assert only_cas01 == [["Success"]] * 6


def test_outlook_connectivity_with_the_test_mailbox(org: tuple) -> None:
    lab, shell, *_ = org
    got = rows(shell, "Test-OutlookConnectivity -Protocol TCP", "Result", "Mailbox", "Detail")
    assert [r[0] for r in got] == ["Success"] * 6
    assert {r[1] for r in got} == {"extest_db01@lab.net"}  # DB01: the first mounted
    assert got[-1][2] == "0 messages"
    assert lab.directory.mailboxes.one("extest_db01").database == "DB01"


def test_outlook_connectivity_failures(org: tuple) -> None:
    shell = org[1]
    wrong = "-Password (ConvertTo-SecureString 'nope' -AsPlainText -Force)"
    got = rows(shell, f"Test-OutlookConnectivity -Protocol TCP -Identity alice {wrong}",
               "Scenario", "Result", "Error")  # fmt: skip
    assert [r[:2] for r in got] == [["Autodiscover", "Failure"]] + [
        [s, "Skipped"] for s in ("DNS", "Connect", "TLS", "Logon", "ListInbox")
    ]
    assert got[0][2]
    error = shell.run("Test-OutlookConnectivity -Protocol TCP -Identity alice").error()
    assert "-Password" in error.message


def test_mapi_connectivity(org: tuple) -> None:
    lab, shell, *_ = org
    got = rows(shell, "Test-MAPIConnectivity", "MailboxServer", "Database", "Result", "Server",
               "Endpoint", "Error")  # fmt: skip
    db01, db03 = got
    assert db01 == ["MBX01", "DB01", "Success", db01[3], ARRAY, ""]
    assert db01[3] in ("CAS01.lab.net", "CAS02.lab.net")
    # DB03's users go to CAS03 (site SH has no array), which doesn't run
    assert db03[:3] == ["MBX02", "DB03", "Failure"] and db03[4] == "CAS03.lab.net"
    assert db03[5].startswith("Connect: can't connect to CAS03.lab.net port")
    assert {m.alias for m in lab.directory.mailboxes.get()} >= {"extest_db01", "extest_db03"}

    assert rows(shell, "Test-MAPIConnectivity -Database DB01", "Database", "Result") == [
        ["DB01", "Success"]
    ]
    assert rows(shell, f"Test-MAPIConnectivity -Identity alice {PASSWORD_ARG}", "Result") == [
        ["Success"]
    ]
    assert [r[0] for r in rows(shell, "Test-MAPIConnectivity -Server MBX01", "Database")] == [
        "DB01"
    ]
    error = shell.run("Test-MAPIConnectivity -Database DB01 -Server MBX01").error()
    assert "give one of -Identity, -Database and -Server" in error.message


def test_mapi_connectivity_of_a_dismounted_database(org: tuple) -> None:
    shell = org[1]
    shell.ok("Dismount-Database DB03 -Confirm:$false")
    try:
        got = rows(shell, "Test-MAPIConnectivity -Database DB03", "Result", "Error")
        assert got == [["Failure", "Logon: the database DB03 is dismounted (Mount-Database)"]]
    finally:
        shell.ok("Mount-Database DB03")
