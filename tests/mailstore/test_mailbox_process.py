"""`casarray mailbox run MBX01`: the Mailbox role as a process. Its databases are
mounted while it runs and dismounted at a clean stop; kill -9 leaves them mounted and
the next start says so; a database mounted or dismounted by cmdlet meanwhile is
followed; a server without the Mailbox role is a clear error."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.mailstore.mailbox_process import checkpoint, read_status, status_file
from casarray.mailstore.store import open_database_store
from tests.conftest import build_bj


@pytest.fixture
def url(tmp_path: Path, casarray_home: Path) -> str:
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    with Directory.open(url) as d:
        build_bj(d)
        d.databases.new("DB01", "MBX01")
        d.databases.new("DB02", "MBX01")
        d.databases.new("DB03", "MBX02")
    return url


def start(url: str, server: str = "MBX01") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "casarray", "mailbox", "run", server, "--directory", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.wait(30)
        raise AssertionError(f"not ready: {line!r} {proc.stderr.read() if proc.stderr else ''}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return err


def mounted(url: str) -> dict[str, bool]:
    with Directory.open(url) as d:
        return {db.name: db.mounted for db in d.databases.get()}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_mounts_while_running_and_dismounts_at_a_clean_stop(url: str, casarray_home: Path) -> None:
    assert mounted(url) == {"DB01": False, "DB02": False, "DB03": False}
    proc = start(url)
    try:
        ready(proc)
        assert mounted(url) == {"DB01": True, "DB02": True, "DB03": False}  # only MBX01's
        status = read_status("MBX01", casarray_home)
        assert status is not None and status["pid"] == proc.pid
        assert [db["name"] for db in status["databases"]] == ["DB01", "DB02"]
        assert Path(status["databases"][0]["location"]).exists()  # the store was opened
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err
    assert "DB01 mounted" in err and "DB01 dismounted" in err
    assert mounted(url) == {"DB01": False, "DB02": False, "DB03": False}
    assert not status_file("MBX01", casarray_home).path.exists()


def test_kill_9_leaves_them_mounted_and_the_next_start_says_so(
    url: str, casarray_home: Path
) -> None:
    proc = start(url)
    ready(proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert mounted(url)["DB01"] is True  # as a crashed store leaves them
    assert read_status("MBX01", casarray_home) is None  # the stale file names a dead pid
    proc = start(url)
    try:
        ready(proc)
    finally:
        err = stop(proc)
    assert "DB01 was left mounted (its store wasn't stopped cleanly); checking it" in err
    assert mounted(url)["DB01"] is False


def test_follows_mount_and_dismount_by_cmdlet(url: str, casarray_home: Path) -> None:
    proc = start(url)
    try:
        ready(proc)
        with Directory.open(url) as d:
            d.databases.set_mounted("DB02", False)  # Dismount-Database: stays dismounted

            def names() -> list[str]:
                status = read_status("MBX01", casarray_home) or {}
                return [db["name"] for db in status.get("databases", ())]

            assert wait_for(lambda: names() == ["DB01"])
            assert mounted(url)["DB02"] is False
            d.databases.set_mounted("DB02", True)  # Mount-Database
            assert wait_for(lambda: names() == ["DB01", "DB02"])
    finally:
        err = stop(proc)
    assert "DB02 is dismounted" in err
    assert mounted(url) == {"DB01": False, "DB02": False, "DB03": False}


def test_a_server_without_the_mailbox_role_is_refused(url: str) -> None:
    proc = start(url, "CAS01")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "The server 'CAS01' isn't a Mailbox server (its roles: ClientAccess)" in err
    assert mounted(url) == {"DB01": False, "DB02": False, "DB03": False}
    proc = start(url, "MBX09")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "MBX09" in err


def test_checkpoint_moves_the_wal_into_the_database(tmp_path: Path) -> None:
    store = open_database_store(str(tmp_path / "db.db"))
    box = store.create_mailbox("00000000-0000-0000-0000-000000000001")
    box.append("INBOX", b"Subject: hi\r\n\r\nhello\r\n")
    result = checkpoint(store)
    assert result is not None
    frames, copied = result
    assert frames > 0 and copied == frames
