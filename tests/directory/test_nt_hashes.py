"""NT hashes for NTLM: the MD4 we rely on, and a mailbox's NT hash set wherever its
password is set, sealed at rest with the organization's KEK."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from spnego._ntlm_raw.crypto import ntowfv1
from spnego._ntlm_raw.md4 import md4
from sqlalchemy import select, update

from casarray.directory import Directory, InvalidValueError
from casarray.directory.errors import DirectoryError
from casarray.directory.nt_hashes import nt_hash
from casarray.directory.schema import MailboxRow
from casarray.errors import CasarrayError


@pytest.fixture
def org(bj: Directory) -> Directory:
    bj.databases.new("DB01", "MBX01", mounted=True)
    return bj


def sealed(d: Directory, alias: str) -> bytes | None:
    with d.store.read() as session:
        return session.scalars(
            select(MailboxRow.nt_hash).where(MailboxRow.alias_key == alias)
        ).one()


@pytest.mark.parametrize(
    ("message", "digest"),
    [  # RFC 1320, appendix A.5
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
        (
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "e33b4ddc9c38f2199c3e7b164fcc0536",
        ),
    ],
)
def test_md4_matches_rfc_1320(message: bytes, digest: str) -> None:
    assert md4(message).hex() == digest


def test_nt_hash_is_windows_ntowfv1() -> None:
    # The NT hash of "Password", as Windows and every NTLM tool compute it.
    assert nt_hash("Password").hex().upper() == "A4F49C406510BDCAB6824EE7C30FD852"
    assert nt_hash("Pässwörd-1") == ntowfv1("Pässwörd-1")
    # A password that looks like "LM:NT" hex is a password here, not a hash.
    looks_like = "00000000000000000000000000000000:A4F49C406510BDCAB6824EE7C30FD852"
    assert nt_hash(looks_like) == md4(looks_like.encode("utf-16-le"))
    with pytest.raises(InvalidValueError, match="Password"):
        nt_hash("")


def test_new_mailbox_keeps_the_nt_hash_sealed(
    org: Directory, password: str, casarray_home: Path
) -> None:
    alice = org.mailboxes.new(name="Alice", alias="alice", database="DB01", password=password)
    blob = sealed(org, "alice")
    assert blob is not None and nt_hash(password) not in blob
    found = org.mailboxes.nt_credentials("ALICE@lab.net")
    assert found is not None and found.mailbox == alice and found.nt_hash == nt_hash(password)
    assert org.mailboxes.nt_credentials("alice") == found
    assert org.mailboxes.nt_credentials("nobody") is None
    assert nt_hash(password).hex() not in repr(found)
    # the KEK lives outside the database, private
    (kek,) = (casarray_home / "pki").glob("*.kek")
    assert kek.stat().st_mode & 0o077 == 0


def test_a_mailbox_without_nt_hash_gets_one_when_its_password_is_set(
    org: Directory, password_hash: str, password: str
) -> None:
    org.mailboxes.new(name="Bob", alias="bob", database="DB01", password_hash=password_hash)
    found = org.mailboxes.nt_credentials("bob")
    assert found is not None and found.nt_hash is None
    assert org.mailboxes.authenticate("bob", password) is not None  # Basic's check works

    org.mailboxes.set("bob", password="New-pass-2")
    found = org.mailboxes.nt_credentials("bob")
    assert found is not None and found.nt_hash == nt_hash("New-pass-2")
    assert org.mailboxes.authenticate("bob", "New-pass-2") is not None


def test_a_sealed_hash_opens_only_for_its_mailbox(org: Directory, password: str) -> None:
    org.mailboxes.new(name="Alice", alias="alice", database="DB01", password=password)
    org.mailboxes.new(name="Bob", alias="bob", database="DB01", password="Bobs-pass-1")
    with org.store.write() as session:
        session.execute(
            update(MailboxRow)
            .where(MailboxRow.alias_key == "bob")
            .values(nt_hash=sealed(org, "alice"))
        )
    with pytest.raises(DirectoryError, match="another mailbox"):
        org.mailboxes.nt_credentials("bob")


def test_without_the_kek_a_password_change_is_refused_and_changes_nothing(
    org: Directory, password: str, casarray_home: Path
) -> None:
    org.mailboxes.new(name="Alice", alias="alice", database="DB01", password=password)
    before = sealed(org, "alice")
    for kek in (casarray_home / "pki").glob("*.kek"):
        kek.unlink()
    fresh = Directory(org.store)  # another host's process: no KEK read yet
    with pytest.raises(CasarrayError, match="key-encryption key"):
        fresh.mailboxes.set("alice", password="Other-pass-3")
    with pytest.raises(CasarrayError, match="key-encryption key"):
        fresh.mailboxes.new(name="Carol", alias="carol", database="DB01", password=password)
    assert sealed(org, "alice") == before
    assert fresh.mailboxes.authenticate("alice", password) is not None
    assert [m.alias for m in fresh.mailboxes.get()] == ["alice"]


def test_passwords_and_nt_hashes_are_never_logged(
    org: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    org.mailboxes.new(name="Alice", alias="alice", database="DB01", password="Secret-pass-9")
    org.mailboxes.set("alice", password="Secret-pass-8")
    org.mailboxes.nt_credentials("alice")
    for secret in ("Secret-pass-9", "Secret-pass-8"):
        assert secret not in caplog.text
        assert nt_hash(secret).hex() not in caplog.text.lower()
