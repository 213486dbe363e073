"""Status files: one naming scheme, atomic writes, one liveness rule for every reader."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casarray.balancer import balancer_process
from casarray.dns import dns_process
from casarray.mailstore import mailbox_process
from casarray.process import status
from casarray.process.status import StatusFile, pid_alive, status_file


def test_one_name_per_kind_and_process(tmp_path: Path) -> None:
    assert status_file(status.CLIENT_ACCESS, "CAS01", tmp_path).path == (
        tmp_path / "run" / "cas-cas01.json"
    )
    assert status_file(status.DNS, home=tmp_path).path == tmp_path / "run" / "dns.json"
    assert balancer_process.status_file("bj-cas.lab.net", tmp_path).path == (
        tmp_path / "run" / "balancer-bj-cas.lab.net.json"
    )
    assert mailbox_process.status_file("MBX01", tmp_path).path.name == "mailbox-mbx01.json"


def test_written_read_and_removed_by_its_process(tmp_path: Path) -> None:
    file = StatusFile(tmp_path / "run" / "x.json")
    file.write({"pid": os.getpid(), "port": 143})
    assert file.read() == {"pid": os.getpid(), "port": 143}
    assert not [p for p in file.path.parent.iterdir() if p.name.startswith(".")]  # no tmp
    file.remove()
    assert not file.path.exists()


def test_another_process_file_is_not_removed_by_remove(tmp_path: Path) -> None:
    file = StatusFile(tmp_path / "x.json")
    file.write({"pid": 1})
    file.remove()
    assert file.path.exists()


def test_a_dead_process_is_no_status_and_its_file_is_cleared(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    file = StatusFile(tmp_path / "x.json")
    file.write({"pid": child.pid})
    assert file.read() is None
    assert file.read_any() == {"pid": child.pid}
    assert file.remove_if_dead() is True and not file.path.exists()


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 5
        while pid_alive(child.pid) and time.monotonic() < deadline:  # exited, not reaped
            time.sleep(0.01)
        assert not pid_alive(child.pid)
        assert Path(f"/proc/{child.pid}").exists()  # a zombie: exited, not reaped
    finally:
        child.wait()


@pytest.mark.parametrize(
    "read",
    [
        lambda home: balancer_process.read_status("bj-cas.lab.net", home),
        lambda home: dns_process.read_status(home),
        lambda home: mailbox_process.read_status("MBX01", home),
    ],
    ids=["balancer", "dns", "mailbox"],
)
def test_another_users_process_counts_as_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read
) -> None:
    """A balancer run as root reads as running to a non-root `lab status`: kill(pid, 0)
    answers EPERM for another user's process, which exists. (The balancer's copy of
    this rule took EPERM for 'not running'.)"""
    for path in (
        balancer_process.status_file("bj-cas.lab.net", tmp_path).path,
        dns_process.status_file(tmp_path).path,
        mailbox_process.status_file("MBX01", tmp_path).path,
    ):
        StatusFile(path).write({"pid": 4_000_000, "note": "root's"})

    def kill(pid: int, signum: int) -> None:
        if pid == 4_000_000:
            raise PermissionError(1, "Operation not permitted")
        raise ProcessLookupError(pid)

    monkeypatch.setattr(os, "kill", kill)
    assert read(tmp_path) == {"pid": 4_000_000, "note": "root's"}


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"pid": "12"}', '{"port": 53}'])
def test_a_malformed_file_is_no_status(tmp_path: Path, content: str) -> None:
    path = dns_process.status_file(tmp_path).path
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert dns_process.read_status(tmp_path) is None


def test_an_unreadable_file_is_no_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DNS and Mailbox copies of `read_status` raised UnboundLocalError here."""
    for path in (
        dns_process.status_file(tmp_path).path,
        mailbox_process.status_file("MBX01", tmp_path).path,
    ):
        StatusFile(path).write({"pid": os.getpid()})
    original = Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
        if self.parent == tmp_path / "run":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert dns_process.read_status(tmp_path) is None
    assert mailbox_process.read_status("MBX01", tmp_path) is None


def test_a_folder_in_its_place_is_no_status(tmp_path: Path) -> None:
    path = dns_process.status_file(tmp_path).path
    path.mkdir(parents=True)
    assert dns_process.read_status(tmp_path) is None
