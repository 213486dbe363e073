"""The HTTP service of `casarray server run` itself (two worker processes): curl posts
an Outlook request to Autodiscover, the health pages answer for every component and
follow maintenance mode within a second on every worker, web mail and the JSON API
are served, and plain HTTP redirects Autodiscover to HTTPS."""

from __future__ import annotations

import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.access.cas_process import read_status
from tests.access.http.test_autodiscover import O, outlook_request, protocols
from tests.access.imap.server_harness import PASSWORD, Lab, make_lab, running

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def lab(tmp_path: Path, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path / "lab", password_hash)
    lab.directory.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    lab.directory.databases.set("DB01", rpc_client_access_server="bj-cas.lab.net")
    lab.add_user("alice")
    yield lab
    lab.directory.close()


def curl(*args: str) -> tuple[int, str]:
    proc = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", "--write-out", "\n%{http_code}",
         *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), body


def test_the_running_server_speaks_http(lab: Lab, tmp_path: Path) -> None:
    with running(lab, "CAS01", "--processes", "2") as server:
        status = read_status("CAS01", lab.home)
        assert status is not None
        host, https, http = status["host"], status["https"], status["http"]
        tls = ["--cacert", str(server.certificate), "--resolve", f"bj-cas.lab.net:{https}:{host}"]
        base = f"https://bj-cas.lab.net:{https}"
        request = tmp_path / "request.xml"
        request.write_bytes(outlook_request())
        code, body = curl(
            *tls, "--user", f"alice@lab.net:{PASSWORD}", "--header", "Content-Type: text/xml",
            "--user-agent", "Microsoft Office/14.0 (Windows NT 6.1; Microsoft Outlook 14.0)",
            "--data-binary", f"@{request}", f"{base}/Autodiscover/Autodiscover.xml",
        )  # fmt: skip
        assert code == 200, body
        exch = protocols(ET.fromstring(body))["EXCH"]
        assert exch.findtext(f"{O}Server") == "bj-cas.lab.net"
        for vdir in ("owa", "autodiscover", "imap", "api"):
            assert curl(*tls, f"{base}/{vdir}/healthcheck.htm") == (200, "200 OK<br/>CAS01.lab.net")
        # maintenance: IMAP drained on CAS01; every worker answers 503 within a second
        lab.directory.components.set_state("CAS01", "Imap", "Inactive", "Maintenance")
        deadline = time.monotonic() + 1.5
        answers: list[int] = []
        while time.monotonic() < deadline:
            answers = [curl(*tls, f"{base}/imap/healthcheck.htm")[0] for _ in range(6)]
            if answers == [503] * 6:
                break
        assert answers == [503] * 6
        assert curl(*tls, f"{base}/owa/healthcheck.htm")[0] == 200
        # web mail's sign-in page and the API's document; Autodiscover over plain HTTP
        code, page = curl(*tls, f"{base}/owa/login")
        assert code == 200 and "<form" in page
        code, document = curl(*tls, f"{base}/api/v1/openapi.json")
        assert code == 200 and '"openapi"' in document
        code, _ = curl(f"http://{host}:{http}/autodiscover/autodiscover.xml")
        assert code == 302
