"""`casarray server run`: the command line, the ports (standard, plus 10000 when low
ports can't be bound, or chosen), the server's certificate (made at first start, renewed
when its names change), the status file, the log, and refusing what isn't a Client
Access server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from casarray.access import cas_process as runner_mod
from casarray.access.cas_process import ClientAccessProcess, RunOptions, read_status, status_file
from tests.access.imap.server_harness import Lab, make_lab, running


@pytest.fixture
def lab(tmp_path: Path, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path / "lab", password_hash)
    yield lab
    lab.directory.close()


def casarray(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casarray", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def free_pair(host: str) -> int:
    """An offset N with 143+N, 993+N, 80+N and 443+N all free on `host`."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((host, 0))
            offset = probe.getsockname()[1] - 143
        if offset <= 0 or 993 + offset > 65535:
            continue
        try:
            for port in (993, 80, 443):
                with socket.socket() as other:
                    other.bind((host, port + offset))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free set of ports")


def test_help() -> None:
    result = casarray("server", "run", "--help")
    assert result.returncode == 0
    for option in ("--directory", "--port-offset", "--log-file", "SERVER"):
        assert option in result.stdout


def test_cli_start_up_stays_lazy() -> None:
    code = (
        "import sys, casarray.cli; casarray.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('asyncio', 'cryptography', "
        "'uvloop', 'casarray.access', 'casarray.mailstore'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_refuses_other_servers(lab: Lab) -> None:
    result = casarray("server", "run", "MBX01", "--directory", lab.url, env=lab.env)
    assert result.returncode == 1
    assert "isn't a Client Access server" in result.stderr
    result = casarray("server", "run", "CAS09", "--directory", lab.url, env=lab.env)
    assert result.returncode == 1
    assert "CAS09" in result.stderr and "couldn't be found" in result.stderr


def test_port_offset_status_file_and_log(lab: Lab) -> None:
    host = "127.77.1.12"
    offset = free_pair(host)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "casarray",
            "server",
            "run",
            "CAS02",
            "--directory",
            lab.url,
            "--port-offset",
            str(offset),
            "--processes",
            "2",
        ],
        env=lab.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline and status is None:
            status = read_status("CAS02", lab.home)
            time.sleep(0.05)
        assert status is not None
        assert status["pid"] == proc.pid
        assert [status[key] for key in ("host", "imap", "imaps", "http", "https")] == [
            host,
            143 + offset,
            993 + offset,
            80 + offset,
            443 + offset,
        ]
        assert len(status["processes"]) == 2 and proc.pid not in status["processes"]
        with socket.create_connection((host, 143 + offset), timeout=5) as sock:
            stream = sock.makefile("rb")
            assert stream.readline().startswith(b"* OK [CAPABILITY")
            sock.sendall(b"a LOGOUT\r\n")
            assert stream.readline().startswith(b"* BYE")
            assert stream.readline().startswith(b"a OK")
        with socket.create_connection((host, 80 + offset), timeout=5) as sock:
            sock.sendall(b"GET /imap/healthcheck.htm HTTP/1.0\r\n\r\n")
            answer = sock.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.1 200") and b"CAS02.lab.net" in answer
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert read_status("CAS02", lab.home) is None
    assert not status_file("CAS02", lab.home).path.exists()
    lines = err.splitlines()
    # each worker says where it listens, and the supervisor says it once for all
    assert sum("] CAS02: IMAP listening on" in line for line in lines) == 2
    assert sum("2 worker processes serve IMAP" in line for line in lines) == 1
    assert f"{host}:{143 + offset} (STARTTLS)" in err and f"{host}:{993 + offset} (TLS)" in err
    assert f"HTTPS on {host}:{443 + offset}" in err
    # the client that logged out is logged; the health page's probe (no bytes in) isn't
    closes = [line for line in lines if " close after " in line]
    assert len(closes) == 1 and "10 bytes in" in closes[0]
    assert sum("IMAP stopped" in line for line in lines) == 2
    assert lines[-1].endswith("CAS02: stopped")
    assert "plus 10000" not in err  # the ports were chosen: nothing to say about them


def test_read_status_of_a_dead_process(tmp_path: Path) -> None:
    path = status_file("CAS01", tmp_path).path
    path.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({"pid": dead.pid, "imap": 143}))
    assert read_status("CAS01", tmp_path) is None
    path.write_text(json.dumps({"pid": os.getpid(), "imap": 143}))
    assert read_status("CAS01", tmp_path) == {"pid": os.getpid(), "imap": 143}
    path.write_text("garbage")
    assert read_status("CAS01", tmp_path) is None


def test_low_ports_refused_means_plus_10000_said_once(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When binding 143 fails with EACCES (not root), the server uses the standard
    ports plus the offset for every service and says so once."""
    monkeypatch.setenv("CASARRAY_HOME", str(lab.home))
    offset = free_pair("127.77.1.11")
    monkeypatch.setattr(runner_mod, "UNPRIVILEGED_OFFSET", offset)
    original = runner_mod.bind_socket
    tried: list[int] = []

    def bind_socket(host: str, port: int, **kw: Any) -> socket.socket:
        tried.append(port)
        if port < 1024:
            raise PermissionError(13, "Permission denied")
        return original(host, port, **kw)

    monkeypatch.setattr(runner_mod, "bind_socket", bind_socket)

    async def main() -> tuple[int | None, int | None, dict[str, int]]:
        runner = ClientAccessProcess(RunOptions(server="CAS01", directory=lab.url))
        await runner.start()
        try:
            assert runner.imap is not None
            return runner.imap.port(False), runner.imap.port(True), runner.ports
        finally:
            await runner.stop()

    with caplog.at_level(logging.INFO, logger="casarray"):
        imap, imaps, ports = asyncio.run(main())
    assert tried == [143, 143 + offset, 993 + offset, 80 + offset, 443 + offset]
    assert (imap, imaps) == (143 + offset, 993 + offset)
    assert ports == {
        "imap": 143 + offset,
        "imaps": 993 + offset,
        "http": 80 + offset,
        "https": 443 + offset,
    }
    said = [r.getMessage() for r in caplog.records if "may not bind ports below 1024" in r.message]
    assert len(said) == 1
    assert (
        f"plus {offset}: IMAP {143 + offset} (STARTTLS) and {993 + offset} (TLS), "
        f"HTTP {80 + offset} and HTTPS {443 + offset}"
    ) in said[0]


def test_explicit_ports_in_use(lab: Lab) -> None:
    with socket.socket() as taken:
        taken.bind(("127.77.1.11", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = casarray(
            "server",
            "run",
            "CAS01",
            "--directory",
            lab.url,
            "--imap-port",
            str(port),
            "--imaps-port",
            "0",
            env=lab.env,
        )
    assert result.returncode == 1
    assert "can't listen on 127.77.1.11" in result.stderr


def _peer_certificate(host: str, port: int, cafile: Path, name: str) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as sock,
    ):
        return sock.getpeercert()  # type: ignore[return-value]


def test_certificate_made_at_first_start_and_renewed(lab: Lab) -> None:
    with running(lab, "CAS01") as server:
        pem, key = server.certificate, server.certificate.with_suffix(".key")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert b"PRIVATE KEY" not in pem.read_bytes()
        cert = _peer_certificate(server.host, server.imaps_port, pem, "CAS01.lab.net")
        assert sorted(cert["subjectAltName"]) == [
            ("DNS", "cas01.lab.net"),
            ("IP Address", "127.77.1.11"),
        ]
        # trusted by address too (mutt and the tests connect to the address)
        _peer_certificate(server.host, server.imaps_port, pem, "127.77.1.11")
        # an array is created: the certificate is renewed to cover its name, at once
        lab.directory.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if b"bj-cas" in pem.read_bytes() or "new certificate" in server.logs():
                break
            time.sleep(0.05)
        time.sleep(0.2)
        cert = _peer_certificate(server.host, server.imaps_port, pem, "bj-cas.lab.net")
        assert ("DNS", "bj-cas.lab.net") in cert["subjectAltName"]
        # STARTTLS connections get it too
        client = server.imap()
        assert client.sock.getpeercert() == cert  # type: ignore[attr-defined]
        client.logout()
    # a restart reuses it
    with running(lab, "CAS01") as again:
        assert "using the certificate" in again.logs()
        assert _peer_certificate(again.host, again.imaps_port, pem, "bj-cas.lab.net") == cert
