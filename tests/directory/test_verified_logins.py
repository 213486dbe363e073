"""Logins remembered in the directory (`directory.verified_logins`): a repeated login
skips argon2 in any process; a wrong password never matches; a password change, a
lockout and the time-to-live forget; nothing stored is the password."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from casarray.directory import Directory
from casarray.directory.errors import DirectoryError
from casarray.directory.lockout import DirectoryLockout
from casarray.directory.schema import MailboxRow, VerifiedLoginRow
from casarray.directory.verified_logins import TTL_ENV


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.mailboxes.new(name="Alice", database="DB01", password_hash=password_hash)
    bj.mailboxes.new(name="Bob", database="DB01", password_hash=password_hash)
    return bj


def rows(d: Directory) -> list[VerifiedLoginRow]:
    with d.store.read() as session:
        found = list(session.scalars(select(VerifiedLoginRow)))
        session.expunge_all()
        return found


def test_a_second_login_is_remembered_in_every_process(
    org: Directory, second_directory: Directory, password: str
) -> None:
    first = org.mailboxes.check_password("alice@lab.net", password)
    assert first.mailbox is not None and not first.remembered
    again = org.mailboxes.check_password("Alice@LAB.net", password)
    assert again.mailbox == first.mailbox and again.remembered
    # another process (another Directory on the same database) finds it too
    other = second_directory.mailboxes.check_password("alice@lab.net", password)
    assert other.mailbox is not None and other.remembered
    assert second_directory.verified_logins.hits == 1
    # the alias is another login: verified on its own
    assert not org.mailboxes.check_password("alice", password).remembered


def test_a_wrong_password_is_never_taken_from_the_cache(org: Directory, password: str) -> None:
    assert org.mailboxes.authenticate("alice@lab.net", password) is not None
    for wrong in ("", password + "x", password.upper(), password[:-1], "\udc80" + password[1:]):
        check = org.mailboxes.check_password("alice@lab.net", wrong)
        assert check.mailbox is None and not check.remembered
    # and Bob's password check is not Alice's
    assert not org.mailboxes.check_password("bob@lab.net", password).remembered


def test_what_is_stored_is_no_password(org: Directory, password: str) -> None:
    org.mailboxes.authenticate("alice@lab.net", password)
    (row,) = rows(org)
    assert row.user_key == "user:alice@lab.net"
    stored = " ".join([row.key, row.password_check, row.mailbox_guid])
    assert password not in stored and password.encode().hex() not in stored
    assert len(row.key) == 64  # an HMAC-SHA256


def test_a_password_change_forgets(org: Directory, password: str) -> None:
    org.mailboxes.authenticate("alice@lab.net", password)
    assert rows(org)
    org.mailboxes.set("alice", password="N3w-secret")
    assert rows(org) == []
    assert org.mailboxes.authenticate("alice@lab.net", password) is None
    check = org.mailboxes.check_password("alice@lab.net", "N3w-secret")
    assert check.mailbox is not None and not check.remembered


def test_an_entry_matches_only_the_current_password_hash(org: Directory, password: str) -> None:
    """A hash changed by any path (here straight in the table) stops the entry."""
    org.mailboxes.authenticate("alice@lab.net", password)
    from casarray.directory.mailboxes import hash_password

    with org.store.write() as session:
        session.execute(
            update(MailboxRow)
            .where(MailboxRow.alias_key == "alice")
            .values(password_hash=hash_password("Other-pass1"))
        )
    assert rows(org)  # still there, but it no longer matches
    assert org.mailboxes.authenticate("alice@lab.net", password) is None


def test_a_lockout_forgets_the_user(org: Directory, password: str) -> None:
    org.mailboxes.authenticate("alice@lab.net", password)
    org.mailboxes.authenticate("bob@lab.net", password)
    lockout = DirectoryLockout(org.store)
    for _ in range(4):
        lockout.failed("alice@lab.net", "10.0.0.1")
    assert len(rows(org)) == 2  # not blocked yet: nothing forgotten
    lockout.failed("ALICE@lab.net", "10.0.0.2")
    assert lockout.retry_after("alice@lab.net", "10.0.0.3") is not None
    assert [row.user_key for row in rows(org)] == ["user:bob@lab.net"]
    assert not org.mailboxes.check_password("alice@lab.net", password).remembered


def test_entries_expire(org: Directory, password: str) -> None:
    clock = Clock()
    org.verified_logins.clock = clock
    org.mailboxes.authenticate("alice@lab.net", password)
    clock.now += 59
    assert org.mailboxes.check_password("alice@lab.net", password).remembered
    clock.now += 2
    assert not org.mailboxes.check_password("alice@lab.net", password).remembered
    # remembering again sweeps what expired
    assert len(rows(org)) == 1


def test_a_ttl_of_zero_remembers_nothing(org: Directory, password: str) -> None:
    org.verified_logins.ttl = 0
    org.mailboxes.authenticate("alice@lab.net", password)
    assert rows(org) == []
    assert not org.mailboxes.check_password("alice@lab.net", password).remembered


def test_the_environment_sets_how_long_logins_are_remembered(
    org: Directory, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TTL_ENV, "0")
    with Directory.open(org.store.url) as other:
        assert other.verified_logins.ttl == 0
        other.mailboxes.authenticate("alice@lab.net", password)
        assert not other.mailboxes.check_password("alice@lab.net", password).remembered
    monkeypatch.setenv(TTL_ENV, "300")
    with Directory.open(org.store.url) as other:
        assert other.verified_logins.ttl == 300


@pytest.mark.parametrize("value", ["soon", "-5", "1e9"])
def test_a_bad_setting_is_refused_by_name(
    org: Directory, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TTL_ENV, value)
    with pytest.raises(DirectoryError, match=TTL_ENV):
        Directory.open(org.store.url)
