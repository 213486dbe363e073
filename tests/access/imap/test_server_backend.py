"""The IMAP server's real Backend (`directory_backend`): passwords checked against the
directory, the referral rule, dismounted databases, throttling, and how quickly it
follows directory changes made by another process. The mailbox stores are stand-ins
here (the end-to-end tests use the real ones)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from casarray.access.imap.backend import (
    LoginFailed,
    LoginOk,
    LoginReferred,
    LoginThrottled,
    LoginUnavailable,
)
from casarray.access.imap.directory_backend import DirectoryBackend, LoginThrottle, referral_url
from casarray.directory import Directory, MailboxDatabase


@pytest.fixture
def backend() -> str:
    """SQLite: the directory tests cover both back ends."""
    return "sqlite"


@dataclass
class FakeDatabaseStore:
    database: MailboxDatabase
    opened: list[str] = field(default_factory=list)
    closed: bool = False

    def mailbox(self, guid: str) -> Any:
        self.opened.append(guid)
        return ("mailbox", self.database.name, guid)

    def close(self) -> None:
        self.closed = True


class Opener:
    def __init__(self) -> None:
        self.stores: list[FakeDatabaseStore] = []

    def __call__(self, database: MailboxDatabase) -> FakeDatabaseStore:
        store = FakeDatabaseStore(database)
        self.stores.append(store)
        return store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    """DB01 (MBX01, BJ) and DB03 (MBX02, SH), mounted, created before any array: their
    RpcClientAccessServer is their site's first CAS (CAS01, CAS03). alice and bob on
    DB01, carol on DB03."""
    bj.databases.new("DB01", "MBX01", mounted=True, store_location="/nonexistent/DB01.db")
    bj.databases.new("DB03", "MBX02", mounted=True, store_location="/nonexistent/DB03.db")
    for alias, db in (("alice", "DB01"), ("bob", "DB01"), ("carol", "DB03")):
        bj.mailboxes.new(name=alias.title(), alias=alias, database=db, password_hash=password_hash)
    return bj


def make(directory: Directory, server: str = "CAS01", **kwargs: Any) -> tuple[Any, Opener]:
    opener = Opener()
    return DirectoryBackend(directory, server, open_store=opener, **kwargs), opener


def test_login_ok(org: Directory, password: str) -> None:
    backend, opener = make(org)
    assert backend.server_fqdn == "CAS01.lab.net"
    alice = org.mailboxes.one("alice")
    for login in ("alice", "alice@lab.net", "ALICE@Lab.Net"):
        result = backend.login(login, password, "127.0.0.1")
        assert isinstance(result, LoginOk)
        assert result.user == "alice@lab.net"
        assert result.mailbox == ("mailbox", "DB01", alice.guid)
    assert len(opener.stores) == 1  # one store per database, kept open
    backend.close()
    assert opener.stores[0].closed


def test_login_gives_the_storage_limit_as_it_is_now(
    org: Directory, second_directory: Directory, password: str
) -> None:
    backend, _ = make(org)
    result = backend.login("alice", password, "127.0.0.1")
    assert isinstance(result, LoginOk) and result.storage_limit is not None
    assert result.storage_limit() == 2_469_396_480  # DB01's default, 2.3 GB
    # another process (the shell) changes DB01's quotas: the session sees it
    second_directory.databases.set(
        "DB01",
        quota_values={
            "IssueWarningQuota": "Unlimited",
            "ProhibitSendQuota": "Unlimited",
            "ProhibitSendReceiveQuota": "Unlimited",
        },
    )
    assert result.storage_limit() is None
    second_directory.mailboxes.set(
        "alice",
        use_database_quota_defaults=False,
        quota_values={"IssueWarningQuota": "1MB", "ProhibitSendQuota": "1MB"}
        | {"ProhibitSendReceiveQuota": "2MB"},
    )
    assert result.storage_limit() == 2 * 1024 * 1024
    backend.close()


def test_login_failed(org: Directory, password: str) -> None:
    backend, opener = make(org)
    assert isinstance(backend.login("alice", "wrong", "127.0.0.1"), LoginFailed)
    assert isinstance(backend.login("nobody", password, "127.0.0.1"), LoginFailed)
    assert isinstance(backend.login("", "", "127.0.0.1"), LoginFailed)
    assert opener.stores == []


def test_referred_to_the_database_name(org: Directory, password: str) -> None:
    backend, opener = make(org)
    result = backend.login("carol", password, "127.0.0.1")
    assert result == LoginReferred(url="imap://carol@CAS03.lab.net/", server="CAS03.lab.net")
    assert opener.stores == []  # the mailbox is not opened


def test_follows_rpc_client_access_server_changes(
    org: Directory, second_directory: Directory, password: str
) -> None:
    """Another process (the shell) changes the directory: the next login follows."""
    cas01, _ = make(org, "CAS01")
    cas02, _ = make(org, "CAS02")
    assert isinstance(cas01.login("alice", password, "127.0.0.1"), LoginOk)
    assert isinstance(cas02.login("alice", password, "127.0.0.1"), LoginReferred)
    second_directory.databases.set("DB01", rpc_client_access_server="CAS02.lab.net")
    result = cas01.login("alice", password, "127.0.0.1")
    assert result == LoginReferred(url="imap://alice@CAS02.lab.net/", server="CAS02.lab.net")
    assert isinstance(cas02.login("alice", password, "127.0.0.1"), LoginOk)
    # the array: every member serves, the other site refers to the array
    second_directory.arrays.new("bj-cas.lab.net", "BJ")
    second_directory.databases.set_rpc_client_access_server(None, "bj-cas.lab.net")
    assert isinstance(cas01.login("alice", password, "127.0.0.1"), LoginOk)
    # the bulk change also named BJ's array on DB03 (site SH): as in Exchange 2010 SP2
    # RU3 a name of another site is not followed; carol's endpoint is her site's CAS03
    result = cas02.login("carol", password, "127.0.0.1")
    assert result == LoginReferred(url="imap://carol@CAS03.lab.net/", server="CAS03.lab.net")
    cas03, _ = make(org, "CAS03")
    result = cas03.login("alice@lab.net", password, "127.0.0.1")
    assert result == LoginReferred(
        url="imap://alice%40lab.net@bj-cas.lab.net/", server="bj-cas.lab.net"
    )


def test_cross_site_allowed(org: Directory, second_directory: Directory, password: str) -> None:
    backend, _ = make(org, "CAS01")
    assert isinstance(backend.login("carol", password, "127.0.0.1"), LoginReferred)
    second_directory.servers.set_client_access("CAS01", allow_cross_site_rpc_client_access=True)
    result = backend.login("carol", password, "127.0.0.1")
    assert isinstance(result, LoginOk) and result.mailbox[1] == "DB03"
    # a same-site redirection is still followed
    second_directory.databases.set("DB01", rpc_client_access_server="CAS02.lab.net")
    assert isinstance(backend.login("alice", password, "127.0.0.1"), LoginReferred)
    second_directory.servers.set_client_access("CAS01", allow_cross_site_rpc_client_access=False)
    assert isinstance(backend.login("carol", password, "127.0.0.1"), LoginReferred)


def test_dismounted_database(org: Directory, second_directory: Directory, password: str) -> None:
    backend, opener = make(org)
    second_directory.databases.set_mounted("DB01", False)
    result = backend.login("alice", password, "127.0.0.1")
    assert isinstance(result, LoginUnavailable) and "DB01" in result.reason
    assert opener.stores == []
    # the right endpoint is decided first: CAS02 refers rather than saying unavailable
    cas02, _ = make(org, "CAS02")
    assert isinstance(cas02.login("alice", password, "127.0.0.1"), LoginReferred)
    second_directory.databases.set_mounted("DB01", True)
    assert isinstance(backend.login("alice", password, "127.0.0.1"), LoginOk)


def test_store_that_cannot_open(org: Directory, password: str) -> None:
    def broken(database: MailboxDatabase) -> Any:
        raise OSError("disk gone")

    backend = DirectoryBackend(org, "CAS01", open_store=broken)
    result = backend.login("alice", password, "127.0.0.1")
    assert isinstance(result, LoginUnavailable) and "DB01" in result.reason


def test_store_reopened_when_the_database_moves(org: Directory, password: str) -> None:
    from casarray.directory.schema import MailboxDatabaseRow

    backend, opener = make(org)
    backend.login("alice", password, "127.0.0.1")
    with org.store.write() as session:
        row = session.query(MailboxDatabaseRow).filter_by(name_key="db01").one()
        row.store_location = "/elsewhere/DB01.db"
    backend.login("alice", password, "127.0.0.1")
    assert [s.database.store_location for s in opener.stores] == [
        "/nonexistent/DB01.db",
        "/elsewhere/DB01.db",
    ]
    backend.close()
    assert all(s.closed for s in opener.stores)


def test_not_a_client_access_server(org: Directory) -> None:
    from casarray.directory import InvalidOperationError

    with pytest.raises(InvalidOperationError):
        DirectoryBackend(org, "MBX01", open_store=Opener())


# -- throttling ------------------------------------------------------------------------


def test_throttled_after_five_failures(org: Directory, password: str) -> None:
    clock = Clock()
    backend, _ = make(org, throttle=LoginThrottle(clock=clock))
    for _ in range(5):
        assert isinstance(backend.login("alice", "wrong", "127.0.0.9"), LoginFailed)
    # even the right password is refused now, from any address (the user's counter)
    result = backend.login("alice", password, "127.0.0.8")
    assert isinstance(result, LoginThrottled) and result.retry_after == pytest.approx(30)
    # and anyone from that address (the address's counter)
    assert isinstance(backend.login("bob", password, "127.0.0.9"), LoginThrottled)
    # another user from another address is not affected
    assert isinstance(backend.login("bob", password, "127.0.0.8"), LoginOk)
    clock.now += 31
    assert isinstance(backend.login("alice", password, "127.0.0.8"), LoginOk)


def test_backoff_grows_and_success_resets(org: Directory, password: str) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, backoff=10, max_backoff=35)
    backend, _ = make(org, throttle=throttle)
    waits = []
    for _ in range(4):
        for _ in range(5):
            backend.login("alice", "wrong", f"10.0.0.{len(waits)}")
        result = backend.login("alice", password, "127.0.0.1")
        assert isinstance(result, LoginThrottled)
        waits.append(round(result.retry_after))
        clock.now += result.retry_after + 0.1
    assert waits == [10, 20, 35, 35]
    assert isinstance(backend.login("alice", password, "127.0.0.1"), LoginOk)
    # the success cleared alice's counter: four failures don't block her
    for _ in range(4):
        backend.login("alice", "wrong", "127.0.0.2")
    assert isinstance(backend.login("alice", password, "127.0.0.3"), LoginOk)


def test_failures_outside_the_window_dont_count() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(10):
        throttle.failed("alice", "127.0.0.1")
        clock.now += 20  # 3 failures per minute at most
        if throttle.retry_after("alice", "127.0.0.1"):
            break
    else:
        return
    pytest.fail("throttled with fewer than 5 failures in 60 s")


def test_throttle_keeps_a_bounded_number_of_keys() -> None:
    throttle = LoginThrottle(max_keys=100)
    for i in range(1000):
        throttle.failed(f"user{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._records) <= 100
    throttle.failed("user999", "10.0.3.231")  # the newest keys are kept


def test_throttle_forgets_quiet_keys() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, forget_after=100)
    for _ in range(5):
        throttle.failed("alice", "127.0.0.1")
    assert throttle.retry_after("alice", "127.0.0.1") == pytest.approx(30)
    clock.now += 200
    assert throttle.retry_after("alice", "127.0.0.1") is None
    assert throttle._records == {}


def test_referral_url() -> None:
    assert referral_url("alice", "CAS02.lab.net") == "imap://alice@CAS02.lab.net/"
    assert referral_url("alice@lab.net", "bj-cas.lab.net.") == (
        "imap://alice%40lab.net@bj-cas.lab.net/"
    )
    assert referral_url("a b/c;d", "x.lab.net") == "imap://a%20b%2Fc%3Bd@x.lab.net/"
