"""`casarray lab status` of a hosts lab whose directory can't be reached (DC01, with its
PostgreSQL server, killed or cut off): the processes the supervisor knows and one line
saying why the rest is missing, exit status 3, no traceback. No root and no network:
the supervisor is this test's process (its state file names our pid), the directory a
URL nothing answers at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casarray.lab.config import LabConfig
from casarray.lab.hosts.postgres import tcp_url
from casarray.lab.status import DIRECTORY_CONNECT_TIMEOUT, collect, quick_url
from casarray.lab.supervisor import state_path
from casarray.process.status import StatusFile
from tests.lab.hosts.conftest import fresh_prefix

# What the supervisor says after `casarray lab kill-host DC01`.
PROCESSES = [
    {"name": "DNS", "kind": "DNS", "target": "DNS", "state": "Restarting", "pid": None,
     "restarts": 2, "detail": "exited with status -9 (SIGKILL); again in 2.0 s"},
    {"name": "CAS01", "kind": "ClientAccess", "target": "CAS01", "state": "Running",
     "pid": 4242, "restarts": 0, "detail": "", "ready_after": 0.8},
    {"name": "MBX01", "kind": "Mailbox", "target": "MBX01", "state": "Running",
     "pid": 4243, "restarts": 0, "detail": "", "ready_after": 0.5},
]  # fmt: skip
EVENTS = [{"time": "2025-01-01T10:00:00+00:00", "text": "host DC01 killed"}]
# 198.18.0.0/15 is for benchmarks, routed nowhere from this machine's namespace
UNROUTED = "postgresql+psycopg://casarray@198.18.255.254:5432/none"


def make_lab(home: Path, directory: str, hosts_directory: str = "") -> LabConfig:
    config = LabConfig.decide(
        home, directory, "198.18.1.5", hosts=fresh_prefix(), hosts_directory=hosts_directory
    )
    config.save()
    state = {"pid": os.getpid(), "processes": PROCESSES, "events": EVENTS, "hosts": config.hosts}
    StatusFile(state_path(home)).write(state)
    return config


def lab_status(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "casarray", "lab", "status", "--home", str(home), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture
def dc01_down(tmp_path: Path) -> Path:
    """A hosts lab as `lab up --hosts` made it, its PostgreSQL server gone: the
    directory's URL is the server's Unix socket, in a folder where nothing listens."""
    home = tmp_path / "lab"
    sockets = home / "postgres" / "run"
    sockets.mkdir(parents=True)
    local = f"postgresql+psycopg://casarray@/casarray?host={sockets}&port=5432"
    make_lab(home, local, tcp_url())
    return home


def test_status_shows_the_processes_when_dc01_is_down(dc01_down: Path) -> None:
    done = lab_status(dc01_down)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("The directory"))
    end = next(i for i, line in enumerate(lines) if line.endswith("showing the processes only."))
    said = " ".join(lines[start : end + 1])  # one line, wrapped at the console's width
    assert said.startswith(
        "The directory (PostgreSQL in DC01, 198.18.1.5) is unreachable: connection"
    )
    assert str(dc01_down / "postgres" / "run") in said  # psycopg's reason names the socket
    assert said.endswith("; showing the processes only.")
    assert lines[0].startswith(f"Lab not healthy - {dc01_down}, supervisor pid {os.getpid()}")
    rows = {line.split()[0]: line.split() for line in lines if line.split()}
    assert rows["CAS01"][1:3] == ["CAS", "Running"]
    assert rows["MBX01"][1:3] == ["Mailbox", "Running"]
    assert rows["DNS"][1:5] == ["DNS", "198.18.1.5:53", "Restarting,", "2"]
    assert "host DC01 killed" in done.stdout  # the supervisor's events
    assert "Mailbox databases" not in done.stdout  # the directory's, not known


def test_status_json_says_the_directory_is_unreachable(dc01_down: Path) -> None:
    done = lab_status(dc01_down, "--json")
    assert done.returncode == 3, done.stderr
    data = json.loads(done.stdout)
    assert data["directory_reachable"] is False
    problem = data["directory_problem"]
    assert problem["where"] == "PostgreSQL in DC01, 198.18.1.5"
    assert problem["state"] == "unreachable"
    assert problem["reason"].startswith("connection")
    assert data["healthy"] is False
    assert data["problems"][0].startswith("The directory (PostgreSQL in DC01, 198.18.1.5)")
    assert "DNS is Restarting" in data["problems"][1]
    assert [p["name"] for p in data["processes"]] == ["DNS", "CAS01", "MBX01"]
    assert data["servers"] == data["databases"] == []


def test_unanswered_connection_gives_up_quickly(tmp_path: Path) -> None:
    """A directory whose packets go nowhere (a partitioned host reached over TCP):
    libpq would wait for ever; the status waits DIRECTORY_CONNECT_TIMEOUT seconds."""
    config = make_lab(tmp_path / "lab", UNROUTED)
    started = time.monotonic()
    status = collect(config, probe=False)
    took = time.monotonic() - started
    assert took < DIRECTORY_CONNECT_TIMEOUT + 3, took
    assert status.directory_problem is not None
    assert status.directory_problem.where == "PostgreSQL on 198.18.255.254"
    assert status.directory_problem.state == "unreachable"
    assert status.directory_problem.line().startswith(
        "The directory (PostgreSQL on 198.18.255.254) is unreachable: "
    )
    assert status.running and not status.healthy
    assert [p.name for p in status.processes] == ["DNS", "CAS01", "MBX01"]


def test_reachable_directory_is_read(tmp_path: Path) -> None:
    config = make_lab(tmp_path / "lab", f"sqlite:///{tmp_path / 'directory.db'}")
    status = collect(config, probe=False)
    assert status.directory_problem is None
    assert status.domain == "lab.net"
    assert status.to_json()["directory_reachable"] is True
    assert not any(p.startswith("The directory") for p in status.problems())


def test_only_the_status_read_gives_up_early() -> None:
    assert quick_url(UNROUTED) == f"{UNROUTED}?connect_timeout={DIRECTORY_CONNECT_TIMEOUT}"
    assert quick_url(f"{UNROUTED}?connect_timeout=9") == f"{UNROUTED}?connect_timeout=9"
    assert quick_url("sqlite:///x.db") == "sqlite:///x.db"
