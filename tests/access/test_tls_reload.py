"""Certificates enabled with the shell, served by real `casarray server run` processes
behind `casarray balancer run` (Proxy plane): the seed's certificate for bj-cas.lab.net,
mail.lab.net and autodiscover.lab.net, issued by the lab CA, requested, imported and
enabled for IMAP and IIS on CAS01 (two worker processes) and CAS02. New handshakes get
it within a second, with no restart; `openssl s_client` and curl verify it through the
cluster IP against the lab root, and refuse it for a name it does not cover; an IMAP
session in IDLE and a keep-alive HTTPS connection opened before go on after."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from casarray.balancer.balancer_process import status_file
from tests.access.imap.server_harness import (
    PASSWORD,
    Lab,
    free_offset,
    make_lab,
    start_casarray,
    stop_process,
)

VIP = "127.77.1.10"
HOSTS = {"CAS01": "127.77.1.11", "CAS02": "127.77.1.12"}
# The ports wanted free (plus an offset): the array's on the cluster IP, the servers' own.
LAB_PORTS = [(VIP, (993, 143, 443))] + [(host, (143, 993, 80, 443)) for host in HOSTS.values()]
NAMES = ("bj-cas.lab.net", "mail.lab.net", "autodiscover.lab.net")
RELOAD_WITHIN = 1.0


def tools_missing() -> str | None:
    for tool, package in (("openssl", "openssl"), ("curl", "curl")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    return None


@pytest.fixture
def lab(tmp_path: Path, password_hash: str) -> Iterator[Lab]:
    if missing := tools_missing():
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    lab = make_lab(tmp_path / "lab", password_hash)
    lab.directory.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    lab.directory.databases.set("DB01", rpc_client_access_server="bj-cas.lab.net")
    lab.add_user("alice")
    yield lab
    lab.directory.close()


def wait_for(predicate: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError("timed out")


@functools.cache
def unverified() -> ssl.SSLContext:
    """A client context that takes any certificate (made once: a new handshake every
    few milliseconds is what the reload is measured with)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served(host: str, port: int, server_name: str = "bj-cas.lab.net") -> str:
    """The thumbprint (SHA-1, upper-case hex, as Exchange shows it) of the certificate
    a new TLS handshake with host:port gets when asking for `server_name`."""
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        unverified().wrap_socket(raw, server_hostname=server_name) as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha1(der).hexdigest().upper()


def thumbprint_of(path: Path) -> str:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        cert = x509.load_pem_x509_certificate(data)
    else:
        cert = x509.load_der_x509_certificate(data)
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


def leaf_thumbprint(s_client_output: str) -> str:
    """The thumbprint of the server certificate `openssl s_client` printed."""
    start = s_client_output.index("-----BEGIN CERTIFICATE-----")
    end = s_client_output.index("-----END CERTIFICATE-----", start) + 25
    cert = x509.load_pem_x509_certificate(s_client_output[start:end].encode())
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


def s_client(port: int, *args: str, starttls: bool = False) -> subprocess.CompletedProcess[str]:
    """openssl s_client through the cluster IP; it sends nothing and quits."""
    command = ["openssl", "s_client", "-connect", f"{VIP}:{port}", *args]
    if starttls:
        command += ["-starttls", "imap"]
    return subprocess.run(
        command, input="", capture_output=True, text=True, timeout=30, check=False
    )


def casarray(lab: Lab, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "casarray", *args],
        env=lab.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def import_lab_certificate(lab: Lab, server: str, *, with_shell: bool) -> str:
    """The seed's certificate for `server`, the administrator's way: a request with
    every client-facing name, issued by the lab CA (Get-LabCertificate, or `casarray
    pki sign`), imported. Its thumbprint."""
    request, issued = lab.home / f"{server}.csr", lab.home / f"{server}.cer"
    lab.shell(
        f"New-ExchangeCertificate -Server {server} -GenerateRequest "
        '-SubjectName "C=CN, O=Lab, CN=bj-cas.lab.net" '
        f"-DomainName {','.join(NAMES)} -RequestFile '{request}'"
    )
    if with_shell:
        lab.shell(f"Get-LabCertificate -RequestFile '{request}' -Path '{issued}'")
    else:
        casarray(lab, "pki", "sign", str(request), "--out", str(issued))
    lab.shell(f"Import-ExchangeCertificate -Server {server} -FileName '{issued}'")
    return thumbprint_of(issued)


def test_enabled_certificates_are_served_through_the_balancer_without_a_restart(
    lab: Lab,
) -> None:
    offset = free_offset(LAB_PORTS)
    imaps, https, imap = 993 + offset, 443 + offset, 143 + offset
    lab.shell(
        "Install-WindowsFeature NLB -ComputerName CAS01; "
        "Install-WindowsFeature NLB -ComputerName CAS02; "
        'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName bj-cas.lab.net '
        f"-ClusterPrimaryIP {VIP} -DataPlane Proxy; "
        "Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet; "
        "Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force; "
        + "; ".join(
            f"Add-NlbClusterPortRule -HostName CAS01 -StartPort {port} -EndPort {port} "
            "-Protocol Tcp -Affinity None"
            for port in (143, 993, 443)
        )
    )
    processes = {"CAS01": ["--processes", "2"], "CAS02": ["--processes", "1"]}
    servers = {
        name: start_casarray(
            ["server", "run", name, "--port-offset", str(offset), *processes[name]],
            lab,
            lab.home / f"{name}.log",
        )
        for name in HOSTS
    }
    balancer: subprocess.Popen[bytes] | None = None
    log = lab.home / "balancer.log"
    try:
        for host in HOSTS.values():
            wait_for(lambda host=host: socket.create_connection((host, imaps), 1))
        balancer = start_casarray(
            ["balancer", "run", "bj-cas.lab.net", "--engine", "Proxy",
             "--listen-offset", str(offset), "--backend-offset", str(offset)],
            lab,
            log,
        )  # fmt: skip
        status = status_file("bj-cas.lab.net", lab.home).path
        wait_for(
            lambda: {n["state"] for n in json.loads(status.read_text())["nodes"]} == {"Converged"}
        )
        self_signed = {name: served(host, imaps) for name, host in HOSTS.items()}

        # the lab root does not vouch for the self-signed certificates
        root = Path(casarray(lab, "pki", "root").strip())  # the lab CA, made now
        assert root == lab.home / "pki" / "lab-root.pem"
        before = s_client(
            imaps, "-servername", "bj-cas.lab.net", "-verify_hostname", "bj-cas.lab.net",
            "-CAfile", str(root), "-verify_return_error",
        )  # fmt: skip
        assert before.returncode != 0
        assert "self-signed certificate" in before.stdout + before.stderr

        # the seed's certificate, imported on each server: not served until enabled
        enabled = {
            name: import_lab_certificate(lab, name, with_shell=name == "CAS01") for name in HOSTS
        }
        time.sleep(0.5)
        assert {name: served(host, imaps) for name, host in HOSTS.items()} == self_signed

        # sessions opened before: IMAP in IDLE, HTTPS kept alive
        from imapclient import IMAPClient

        session = IMAPClient(VIP, port=imaps, ssl=True, ssl_context=unverified(), timeout=10)
        session.login("alice@lab.net", PASSWORD)
        session.select_folder("INBOX")
        session.idle()
        web = http.client.HTTPSConnection(VIP, https, timeout=10, context=unverified())
        web.request("GET", "/owa/healthcheck.htm", headers={"Host": "bj-cas.lab.net"})
        first = web.getresponse()
        assert first.status == 200 and first.read().startswith(b"200 OK")
        assert web.sock is not None
        web_before = web.sock.getpeercert(binary_form=True)

        # enabled for IMAP and IIS: every new handshake gets it within a second, on
        # every worker process (10 in a row on each port), with no restart
        lab.shell(
            "; ".join(
                f"Enable-ExchangeCertificate -Server {name} -Thumbprint {thumbprint} "
                "-Services IMAP,IIS"
                for name, thumbprint in enabled.items()
            )
        )
        deadline = time.monotonic() + RELOAD_WITHIN
        for name, host in HOSTS.items():
            for port in (imaps, https):
                streak = 0
                while streak < 10:
                    streak = streak + 1 if served(host, port) == enabled[name] else 0
                    assert time.monotonic() < deadline, (name, port)
            assert served(host, imaps, "mail.lab.net") == enabled[name]

        # the open sessions went on
        session.idle_done()
        assert session.noop()[0].startswith(b"NOOP completed")
        web.request("GET", "/imap/healthcheck.htm", headers={"Host": "bj-cas.lab.net"})
        second = web.getresponse()
        assert second.status == 200 and second.read().startswith(b"200 OK")
        assert web.sock.getpeercert(binary_form=True) == web_before
        session.logout()
        web.close()

        # through the cluster IP, on both servers: openssl verifies the chain up to the
        # lab root and the name, and refuses a name the certificate does not cover
        seen: set[str] = set()
        for _ in range(40):
            good = s_client(
                imaps, "-servername", "bj-cas.lab.net", "-verify_hostname", "bj-cas.lab.net",
                "-CAfile", str(root), "-verify_return_error",
            )  # fmt: skip
            assert good.returncode == 0, good.stdout + good.stderr
            assert "Verify return code: 0 (ok)" in good.stdout
            seen.add(leaf_thumbprint(good.stdout))
            if seen == set(enabled.values()):
                break
        assert seen == set(enabled.values())
        for _ in range(4):
            bad = s_client(
                imaps, "-servername", "bj-cas.lab.net", "-verify_hostname", "other.lab.net",
                "-CAfile", str(root), "-verify_return_error",
            )  # fmt: skip
            assert bad.returncode != 0
            assert "hostname mismatch" in bad.stdout + bad.stderr
        # a client that sends no name gets the default: the array's certificate
        nameless = s_client(
            imaps, "-noservername", "-verify_hostname", "autodiscover.lab.net",
            "-CAfile", str(root), "-verify_return_error",
        )  # fmt: skip
        assert nameless.returncode == 0, nameless.stdout + nameless.stderr
        # STARTTLS on 143 too
        upgraded = s_client(
            imap, "-servername", "mail.lab.net", "-verify_hostname", "mail.lab.net",
            "-CAfile", str(root), "-verify_return_error", starttls=True,
        )  # fmt: skip
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr

        # HTTPS: curl trusts the lab root for the array's name, and refuses another name
        for name, expect in (
            ("bj-cas.lab.net", 0),
            ("autodiscover.lab.net", 0),
            ("other.lab.net", 60),
        ):
            curl = subprocess.run(
                ["curl", "--silent", "--show-error", "--max-time", "20", "--cacert", str(root),
                 "--resolve", f"{name}:{https}:{VIP}",
                 f"https://{name}:{https}/owa/healthcheck.htm"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert curl.returncode == expect, (name, curl.stderr)
            if expect == 0:
                assert curl.stdout.startswith("200 OK<br/>CAS0"), curl.stdout
            else:
                assert "no alternative certificate subject name matches" in curl.stderr
    finally:
        if balancer is not None:
            stop_process(balancer)
        for proc in servers.values():
            stop_process(proc)
    for name in HOSTS:
        logged = (lab.home / f"{name}.log").read_text()
        assert f"{name}: IMAP serves certificate {enabled[name]}" in logged
        assert "PRIVATE KEY" not in logged
