"""The lab's process table with small real processes standing in for the roles (each
writes its status file with its pid, as the runners do): ready when the file names it,
a crash started again after 0.5 s then 1 s (the log says so), `kill` not started again
until `start`, a role that leaves the directory stopped and its file cleared, and the
restart policy shared with the worker pools."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.lab.config import LabConfig
from casarray.lab.control_socket import SupervisorError
from casarray.lab.supervisor import (
    CAS_PROCESSES_VARIABLE,
    KILLED,
    RESTARTING,
    RUNNING,
    LabSupervisor,
    Role,
    cas_processes,
    read_state,
    roles_of,
)
from casarray.process.pool import Backoff

# A role's stand-in: writes {"pid": ...} to its status file, removes it at SIGTERM.
STAND_IN = """
import json, os, signal, sys, time
path = sys.argv[1]
def stop(*_):
    os.unlink(path)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("starting", flush=True)
time.sleep(0.1)
with open(path + ".tmp", "w") as f:
    json.dump({"pid": os.getpid()}, f)
os.replace(path + ".tmp", path)
while True:
    time.sleep(1)
"""


def stand_in(home: Path, name: str) -> Role:
    status = home / "run" / f"{name}.json"
    return Role(name, "ClientAccess", name, (sys.executable, "-c", STAND_IN, str(status)), status)


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[LabSupervisor]:
    home = tmp_path / "lab"
    (home / "run").mkdir(parents=True)
    url = f"sqlite:///{home / 'directory.db'}"
    config = LabConfig(home, 10_000, "127.77.0.53", 10_053, home / "root.pem", url, "Proxy")
    directory = Directory.open(url)
    supervisor = LabSupervisor(config, directory)
    ticking = asyncio.ensure_future(supervisor.tick())
    try:
        yield supervisor
    finally:
        supervisor.stopping.set()
        await ticking
        await supervisor.stop_all()
        directory.close()


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_ready_when_the_status_file_names_the_process(supervisor: LabSupervisor) -> None:
    home = supervisor.config.home
    supervisor.reconcile([stand_in(home, "CAS01"), stand_in(home, "CAS02")])
    entry = supervisor.find("cas01")  # names in any case
    assert entry.state == "Starting"
    assert await until(lambda: supervisor.all_running())
    assert entry.ready_after is not None and entry.ready_after >= 0.1
    state = read_state(home)
    assert state is not None and state["pid"] == os.getpid()
    assert {p["name"]: p["state"] for p in state["processes"]} == {
        "CAS01": RUNNING,
        "CAS02": RUNNING,
    }
    assert "starting" in (home / "logs" / "CAS01.log").read_text()  # its output


async def test_a_crash_is_restarted_with_backoff_and_the_logs_say_so(
    supervisor: LabSupervisor,
) -> None:
    home = supervisor.config.home
    supervisor.reconcile([stand_in(home, "CAS01")])
    entry = supervisor.find("CAS01")
    assert await until(lambda: entry.state == RUNNING)
    delays = []
    for _ in range(2):
        first = entry.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert await until(lambda: entry.state == RESTARTING)
        delays.append(entry.delay)
        crashed = time.monotonic()
        assert await until(lambda pid=first: entry.state == RUNNING and entry.pid != pid)
        assert time.monotonic() - crashed >= delays[-1] - 0.05
    assert delays == [0.5, 1.0]  # doubling while it keeps dying
    assert entry.restarts == 2
    said = (home / "logs" / "CAS01.log").read_text()
    assert "exited with status -9 (SIGKILL); starting it again in 0.5 s" in said
    assert "exited with status -9 (SIGKILL); starting it again in 1.0 s" in said
    assert "CAS01 is up again" in said
    events = [e["text"] for e in supervisor.snapshot()["events"]]
    assert any("starting it again in 1.0 s" in text for text in events)


async def test_kill_is_not_restarted_until_start(supervisor: LabSupervisor) -> None:
    home = supervisor.config.home
    supervisor.reconcile([stand_in(home, "CAS02")])
    entry = supervisor.find("CAS02")
    assert await until(lambda: entry.state == RUNNING)
    pid = entry.pid
    message = supervisor.kill("CAS02")
    assert f"kill -9 of pid {pid}" in message and "casarray lab start CAS02" in message
    await asyncio.sleep(1.5)  # longer than the first restart delay
    assert entry.state == KILLED and entry.pid is None and entry.last_exit == -9
    assert supervisor.snapshot()["processes"][0]["detail"].startswith("killed by")
    assert supervisor.kill("CAS02") == "CAS02 is already killed."
    supervisor.start_process("CAS02")
    assert await until(lambda: entry.state == RUNNING)
    assert entry.pid != pid
    assert "already running" in supervisor.start_process("CAS02")
    with pytest.raises(SupervisorError, match="no process named 'CAS09' \\(it has CAS02\\)"):
        supervisor.kill("CAS09")


async def test_a_role_that_leaves_is_stopped(supervisor: LabSupervisor) -> None:
    home = supervisor.config.home
    supervisor.reconcile([stand_in(home, "CAS01"), stand_in(home, "CAS04")])
    assert await until(lambda: supervisor.all_running())
    leaving = supervisor.find("CAS04")
    process = leaving.process
    assert process is not None
    supervisor.reconcile([stand_in(home, "CAS01")])
    assert await until(lambda: process.poll() is not None and not supervisor.retiring)
    assert process.returncode == 0  # SIGTERM: a clean stop
    assert not (home / "run" / "CAS04.json").exists()
    assert [e.role.name for e in supervisor.entries.values()] == ["CAS01"]
    events = [e["text"] for e in supervisor.snapshot()["events"]]
    assert "CAS04 left the directory; stopping it" in events


async def test_stop_all_clears_what_a_killed_process_left(supervisor: LabSupervisor) -> None:
    home = supervisor.config.home
    supervisor.reconcile([stand_in(home, "CAS01"), stand_in(home, "CAS02")])
    assert await until(lambda: supervisor.all_running())
    supervisor.kill("CAS02")
    assert (home / "run" / "CAS02.json").exists()  # kill -9: nobody removed it
    supervisor.stopping.set()
    await supervisor.stop_all()
    assert supervisor.find("CAS01").process.returncode == 0  # type: ignore[union-attr]
    assert not list((home / "run").glob("CAS0*.json"))


def test_roles_follow_the_directory(tmp_path: Path, bj: Directory) -> None:
    config = LabConfig(tmp_path, 0, "127.77.0.53", 53, tmp_path / "r.pem", "sqlite://", "Kernel")
    names = [(r.name, r.kind) for r in roles_of(bj, config)]
    assert names == [
        ("DNS", "DNS"),
        ("CAS01", "ClientAccess"),
        ("CAS02", "ClientAccess"),
        ("MBX01", "Mailbox"),
        ("CAS03", "ClientAccess"),
        ("MBX02", "Mailbox"),
    ]
    bj.servers.new("EX01", "ClientAccess,Mailbox", "127.77.1.30")
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.nlb.new_cluster("bj-cas.lab.net", "127.77.1.10", array="BJ CAS Array")
    roles = {r.name: r for r in roles_of(bj, config)}
    assert roles["EX01"].kind == "ClientAccess" and roles["EX01-store"].kind == "Mailbox"
    balancer = roles["bj-cas.lab.net"]
    assert balancer.kind == "NLB"
    assert balancer.command[3:6] == ("balancer", "run", "bj-cas.lab.net")
    assert balancer.status_file == tmp_path / "run" / "balancer-bj-cas.lab.net.json"
    cas = roles["CAS01"].command
    assert cas[cas.index("--port-offset") + 1] == "0" and "--processes" in cas


def test_client_access_processes_are_one_unless_the_variable_says_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CAS_PROCESSES_VARIABLE, raising=False)
    assert cas_processes() == "1"
    monkeypatch.setenv(CAS_PROCESSES_VARIABLE, "2")  # a master and two workers (the soak)
    assert cas_processes() == "2"
    monkeypatch.setenv(CAS_PROCESSES_VARIABLE, "many")
    assert cas_processes() == "1"


def test_backoff_doubles_up_to_its_limit_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(first=0.5, limit=2.0, stable_after=60)
    assert [backoff.next_delay(1) for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert backoff.next_delay(61) == 0.5  # it ran a minute: from the start again
    backoff.next_delay(1)
    backoff.reset()
    assert backoff.next_delay(1) == 0.5
