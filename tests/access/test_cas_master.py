"""`casarray server run CAS01 --processes N`: worker processes sharing the ports, a
worker that dies is started again while the others serve, the workers die with their
supervisor (also by kill -9), and connections are spread over the workers."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.access.cas_process import read_status
from tests.access.imap.server_harness import PASSWORD, Lab, make_lab, running


@pytest.fixture
def lab(tmp_path: Path, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path / "lab", password_hash)
    yield lab
    lab.directory.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped) counts as dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def greets(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            return sock.makefile("rb").readline().startswith(b"* OK")
    except OSError:
        return False


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_killed_worker_is_started_again_while_the_other_serves(lab: Lab) -> None:
    address = lab.add_user("dave")
    with running(lab, "CAS01", "--processes", "2") as server:
        status = read_status("CAS01", lab.home)
        assert status is not None
        first, second = status["processes"]
        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: not alive(first))
        # Connections the kernel had handed to the dead worker are reset, as on any
        # crash (a few may still be, in the moments after it died); then the other
        # worker answers every new connection.
        assert wait_for(
            lambda: all(greets(server.host, server.imap_port) for _ in range(20)), timeout=3
        )
        for _ in range(10):
            client = server.imap()
            assert client.login(address, PASSWORD)[0] == "OK"
            client.logout()
        assert wait_for(lambda: "worker 1 (pid" in server.logs() and "starting" in server.logs())
        assert f"worker 1 (pid {first}) exited with status -9; restarting it in" in server.logs()

        def replaced() -> bool:
            now = read_status("CAS01", lab.home)
            return now is not None and first not in now["processes"] and len(now["processes"]) == 2

        assert wait_for(replaced)
        now = read_status("CAS01", lab.home)
        assert now is not None and second in now["processes"]


def test_the_workers_die_with_the_supervisor_even_by_kill_9(lab: Lab) -> None:
    with running(lab, "CAS01", "--processes", "2") as server:
        status = read_status("CAS01", lab.home)
        assert status is not None
        workers = status["processes"]
        assert all(alive(pid) for pid in workers)
        server.kill()
        assert wait_for(lambda: not any(alive(pid) for pid in workers))


def test_connections_are_spread_over_the_workers(lab: Lab) -> None:
    with running(lab, "CAS01", "--processes", "2") as server:
        clients = [server.imap(starttls=False) for _ in range(40)]
        for client in clients:
            client.noop()
        for client in clients:
            client.logout()
        assert wait_for(lambda: server.logs().count(" close after ") >= 40)
        logs = server.logs()
        per_worker = [
            sum(" close after " in line for line in logs.splitlines() if f"[w{i}]" in line)
            for i in (1, 2)
        ]
        # SO_REUSEPORT hashes each connection to a worker: both get a share
        assert sum(per_worker) == 40 and min(per_worker) >= 5, per_worker


def test_stop_ends_every_worker_and_removes_the_status(lab: Lab) -> None:
    with running(lab, "CAS01", "--processes", "3") as server:
        status = read_status("CAS01", lab.home)
        assert status is not None and len(status["processes"]) == 3
        assert server.stop() == 0
        assert not any(alive(pid) for pid in status["processes"])
        assert read_status("CAS01", lab.home) is None
        logs = server.logs()
        assert logs.count("IMAP stopped") == 3
        assert logs.rstrip().endswith("CAS01: stopped")
