"""The one life cycle of a server process: start, serve, stop always; one startup error."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.dns import dns_process
from casarray.dns.dns_process import DnsOptions, DnsProcess
from casarray.process.errors import StartupError
from casarray.process.lifecycle import Job, ServiceProcess, run_process
from tests.conftest import build_bj


class Recorder(ServiceProcess):
    def __init__(self, fail: str | None = None) -> None:
        super().__init__()
        self.fail = fail
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")
        if self.fail == "start":
            raise StartupError("CAS09: can't listen on 127.77.1.99: address not local")

    def started(self) -> None:
        self.calls.append("started")

    def jobs(self) -> list[Job]:
        return [self.serve()]

    async def serve(self) -> None:
        self.calls.append("serve")
        if self.fail == "job":
            raise RuntimeError("the job broke")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)

    async def stop(self) -> None:
        self.calls.append("stop")


def test_sigterm_stops_it_and_stop_runs() -> None:
    process = Recorder()
    assert run_process(lambda: process) == 0
    assert process.calls == ["start", "started", "serve", "stop"]


def test_a_failed_start_is_one_line_exit_1_and_stop_still_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    process = Recorder(fail="start")
    log = tmp_path / "x.log"
    assert run_process(lambda: process, log_file=str(log)) == 1
    assert process.calls == ["start", "stop"]
    err = capfd.readouterr().err
    assert err == "casarray: CAS09: can't listen on 127.77.1.99: address not local\n"
    assert "ERROR CAS09: can't listen" in log.read_text()


def test_a_job_that_fails_is_logged_and_the_process_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    process = Recorder(fail="job")
    with caplog.at_level(logging.ERROR, logger="casarray"):
        assert run_process(lambda: process) == 0
    assert process.calls[-1] == "stop"
    assert "RuntimeError('the job broke')" in caplog.text


def test_dns_with_a_worker_that_fails_to_start_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`casarray dns run --processes 2` whose worker dies before it serves: a one-line
    error and exit status 1 (it was a traceback: the pool raised the IMAP runner's
    StartupError, which the DNS runner did not catch)."""
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    with Directory.open(url, organization="Lab", domain="lab.net") as directory:
        build_bj(directory)

    def failing_worker(self: DnsProcess, index: int) -> list[str]:
        return [sys.executable, "-c", "import sys; sys.exit(3)"]

    monkeypatch.setattr(DnsProcess, "command", failing_worker)
    options = DnsOptions(
        directory=url,
        address="127.77.53.9",
        port=0,
        processes=2,
        use_uvloop=False,
        log_file=str(tmp_path / "dns.log"),
    )
    assert dns_process.run(options) == 1
    assert capfd.readouterr().err == "casarray: DNS: worker 1 exited with status 3\n"
    assert dns_process.read_status() is None  # no status file left behind


class DatabaseAway(Recorder):
    """A process whose database refuses the first `outages` starts (or, with
    `when="job"`, breaks off under its first job), as PostgreSQL restarting does."""

    attempts = 0

    def __init__(self, outages: int, when: str = "start") -> None:
        super().__init__()
        self.outages, self.when = outages, when

    async def start(self) -> None:
        type(self).attempts += 1
        self.calls.append("start")
        if self.when == "start" and type(self).attempts <= self.outages:
            raise refused()

    async def serve(self) -> None:
        self.calls.append("serve")
        if self.when == "job" and type(self).attempts <= self.outages:
            raise refused()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)


def refused() -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


@pytest.mark.parametrize("when", ["start", "job"])
def test_a_database_away_is_waited_for_in_place(
    when: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No exit into the supervisor's backoff: the process is built anew in place until
    the database answers, then serves; each attempt says why in the log."""
    monkeypatch.setattr("casarray.process.lifecycle.RETRY_FIRST", 0.01)
    DatabaseAway.attempts = 0
    built: list[DatabaseAway] = []

    def make() -> DatabaseAway:
        built.append(DatabaseAway(outages=2, when=when))
        return built[-1]

    with caplog.at_level(logging.WARNING, logger="casarray"):
        assert run_process(make) == 0
    assert len(built) == 3
    assert all("stop" in p.calls for p in built)  # every attempt closed what it opened
    assert built[-1].calls == ["start", "started", "serve", "stop"]
    assert caplog.text.count("a database can't be reached (connection refused)") == 2


def test_a_sqlite_files_own_error_is_not_waited_for() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from casarray.process.lifecycle import unreachable_database

    no_table = OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: servers"))
    assert not unreachable_database(no_table)
    assert unreachable_database(refused())
    assert not unreachable_database(RuntimeError("the job broke"))


def test_a_server_waits_for_its_database_and_sigterm_still_ends_it() -> None:
    """The DNS server pointed at a PostgreSQL that refuses: it keeps trying (a line each
    time), and SIGTERM ends it while it waits, exit 0 or by the signal, no traceback."""
    import subprocess
    import time

    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    process = subprocess.Popen(
        [sys.executable, "-m", "casarray", "dns", "run", "--directory", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2.0)
    assert process.poll() is None, process.communicate()[0]  # still waiting, not exited
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    assert process.returncode in (0, -signal.SIGTERM), out
    assert out.count("a database can't be reached (connection failed") >= 2, out
    assert "Traceback" not in out, out
