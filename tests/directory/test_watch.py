"""The topology version: every change bumps it, a failed change does not, and other
processes learn of changes through watch() and wait_for_change()."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from casarray.directory import Directory, DirectoryError

CHANGES: list[tuple[str, Callable[[Directory], object]]] = [
    ("new site", lambda d: d.sites.new("HK")),
    ("add subnet", lambda d: d.sites.add_subnet("10.0.0.0/8", "BJ")),
    ("remove subnet", lambda d: d.sites.remove_subnet("127.77.2.0/24")),
    ("new server", lambda d: d.servers.new("CAS04", "ClientAccess", "127.77.1.14")),
    ("remove server", lambda d: d.servers.remove("CAS02")),
    ("new array", lambda d: d.arrays.new("sh-cas.lab.net", site="SH")),
    ("set array", lambda d: d.arrays.set("bj-cas.lab.net", name="Renamed")),
    ("remove array", lambda d: d.arrays.remove("bj-cas.lab.net", force=True)),
    ("new database", lambda d: d.databases.new("DB09", "MBX02")),
    ("set rpc", lambda d: d.databases.set_rpc_client_access_server(None, "CAS02.lab.net")),
    ("rename database", lambda d: d.databases.set("DB01", name="DB10")),
    ("mount", lambda d: d.databases.set_mounted("DB01", False)),
    ("new mailbox", lambda d: d.mailboxes.new(name="Bob", password_hash="$argon2id$x")),
    ("set mailbox", lambda d: d.mailboxes.set("alice", display_name="Alice W.")),
    ("remove mailbox", lambda d: d.mailboxes.remove("alice")),
    ("accepted domain", lambda d: d.add_accepted_domain("other.net")),
]

FAILURES: list[tuple[str, Callable[[Directory], object]]] = [
    ("duplicate site", lambda d: d.sites.new("bj")),
    ("bad subnet", lambda d: d.sites.new("HK", ["10.0.0.1/8"])),
    ("subnet held by BJ", lambda d: d.sites.new("HK", ["127.77.1.0/24"])),
    ("site in use", lambda d: d.sites.remove("BJ")),
    ("duplicate server", lambda d: d.servers.new("CAS01", "ClientAccess", "127.77.1.99")),
    ("server in use", lambda d: d.servers.remove("MBX01", force=True)),
    ("second array", lambda d: d.arrays.new("bj2.lab.net", site="BJ")),
    ("array in use", lambda d: d.arrays.remove("bj-cas.lab.net")),
    ("database on CAS", lambda d: d.databases.new("DB09", "CAS01")),
    ("bad rpc", lambda d: d.databases.set_rpc_client_access_server(None, "MBX01.lab.net")),
    ("database in use", lambda d: d.databases.remove("DB01")),
    ("duplicate mailbox", lambda d: d.mailboxes.new(name="A", alias="alice", password_hash="h")),
    ("unknown database", lambda d: d.databases.set_mounted("DB99", True)),
    ("duplicate domain", lambda d: d.add_accepted_domain("LAB.NET")),
]


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.mailboxes.new(name="Alice", alias="alice", database="DB01", password_hash=password_hash)
    return bj


def test_a_fresh_directory_has_a_version(directory: Directory) -> None:
    assert directory.topology_version() >= 1  # creating the organization was a change


@pytest.mark.parametrize("change", [c for _, c in CHANGES], ids=[n for n, _ in CHANGES])
def test_every_change_bumps_the_version(org: Directory, change: Callable) -> None:
    before = org.topology_version()
    change(org)
    assert org.topology_version() > before


@pytest.mark.parametrize("failure", [f for _, f in FAILURES], ids=[n for n, _ in FAILURES])
def test_a_failed_change_does_not(org: Directory, failure: Callable) -> None:
    before = org.topology_version()
    with pytest.raises(DirectoryError):
        failure(org)
    assert org.topology_version() == before


def test_reads_do_not_bump_the_version(org: Directory, password: str) -> None:
    before = org.topology_version()
    org.sites.get()
    org.servers.get()
    org.arrays.get()
    org.databases.get()
    org.mailboxes.get()
    org.organization()
    org.mailboxes.authenticate("alice", password)
    assert org.topology_version() == before


def test_versions_are_shared_between_directory_objects(
    org: Directory, second_directory: Directory
) -> None:
    assert second_directory.topology_version() == org.topology_version()
    second_directory.sites.new("HK")
    assert org.topology_version() == second_directory.topology_version()
    assert org.sites.one("HK").name == "HK"


async def test_watch_sees_a_change_made_by_another_process(
    directory: Directory, second_directory: Directory
) -> None:
    watcher = directory.watch(interval=0.1)
    try:
        first = await asyncio.wait_for(anext(watcher), 5)
        assert first == directory.topology_version()
        await asyncio.to_thread(second_directory.sites.new, "HK")
        version = await asyncio.wait_for(anext(watcher), 5)
        assert version > first
        assert version == second_directory.topology_version()

        # and again: the watcher keeps going
        await asyncio.to_thread(second_directory.sites.new, "SZ")
        assert await asyncio.wait_for(anext(watcher), 1.0) > version
    finally:
        await watcher.aclose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_watch_wakes_on_notify(
    directory: Directory, second_directory: Directory
) -> None:
    """On PostgreSQL a change is seen at once through LISTEN/NOTIFY, long before the
    polling interval."""
    watcher = directory.watch(interval=30)
    try:
        first = await asyncio.wait_for(anext(watcher), 5)
        await asyncio.to_thread(second_directory.sites.new, "HK")
        assert await asyncio.wait_for(anext(watcher), 1.0) > first
    finally:
        await watcher.aclose()


async def test_watch_is_quiet_without_changes(directory: Directory) -> None:
    watcher = directory.watch(interval=0.05)
    try:
        await anext(watcher)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(watcher), 0.3)
    finally:
        await watcher.aclose()


def test_wait_for_change(directory: Directory, second_directory: Directory) -> None:
    since = directory.topology_version()
    timer = threading.Timer(0.2, second_directory.sites.new, args=("HK",))
    started = time.monotonic()
    timer.start()
    try:
        version = directory.wait_for_change(since, timeout=5, interval=0.05)
    finally:
        timer.join()
    assert version > since
    assert time.monotonic() - started < 4  # at the change, not at the 5 s timeout


def test_wait_for_change_times_out(directory: Directory) -> None:
    since = directory.topology_version()
    started = time.monotonic()
    assert directory.wait_for_change(since, timeout=0.3, interval=0.05) == since
    assert 0.25 <= time.monotonic() - started < 3


def test_wait_for_change_returns_at_once_when_already_changed(directory: Directory) -> None:
    since = directory.topology_version()
    directory.sites.new("HK")
    started = time.monotonic()
    assert directory.wait_for_change(since, timeout=5) > since
    assert time.monotonic() - started < 3  # at once, not at the 5 s timeout
