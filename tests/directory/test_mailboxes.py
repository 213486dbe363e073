"""Mailboxes: addresses, aliases, passwords, bulk import, automatic distribution."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from casarray.directory import (
    ConflictError,
    Directory,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.mailboxes import MailboxSpec
from casarray.directory.schema import MailboxRow


@pytest.fixture
def org(bj: Directory) -> Directory:
    """BJ/SH with DB01, DB02 on MBX01 and DB03 on MBX02, DB01 and DB03 mounted."""
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.databases.new("DB02", "MBX01")
    bj.databases.new("DB03", "MBX02", mounted=True)
    return bj


def stored_hash(d: Directory, alias: str) -> str:
    with d.store.read() as session:
        return session.scalars(
            select(MailboxRow.password_hash).where(MailboxRow.alias_key == alias.lower())
        ).one()


def test_new_mailbox_with_password(org: Directory, password: str) -> None:
    alice = org.mailboxes.new(
        name="Alice Wang", primary_smtp_address="Alice@Lab.Net", database="DB01", password=password
    )
    assert alice.alias == "Alice"
    assert alice.display_name == "Alice Wang"
    assert alice.primary_smtp_address == "Alice@lab.net"
    assert (alice.database, alice.server) == ("DB01", "MBX01")
    assert alice.distinguished_name == "CN=Alice,CN=Users,DC=lab,DC=net"
    assert alice.exchange_legacy_dn == (
        "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=Alice"
    )
    stored = stored_hash(org, "alice")
    assert stored.startswith("$argon2")
    assert password not in stored
    assert org.mailboxes.count() == 1


def test_authenticate(org: Directory, password_hash: str, password: str) -> None:
    alice = org.mailboxes.new(
        name="Alice Wang", alias="alice", database="DB01", password_hash=password_hash
    )
    assert org.mailboxes.authenticate("alice@lab.net", password) == alice
    assert org.mailboxes.authenticate(" ALICE@LAB.NET ", password) == alice
    assert org.mailboxes.authenticate("Alice", password) == alice
    assert org.mailboxes.authenticate("alice", password + "x") is None
    assert org.mailboxes.authenticate("alice wang", password) is None  # not a login name
    assert org.mailboxes.authenticate("bob@lab.net", password) is None


def test_authenticate_with_a_precomputed_hash(org: Directory, password_hash: str) -> None:
    org.mailboxes.new(name="Bob", database="DB01", password_hash=password_hash)
    assert stored_hash(org, "bob") == password_hash
    assert org.mailboxes.authenticate("bob@lab.net", "P@ssw0rd-lab") is not None


def test_set_password(org: Directory, password_hash: str) -> None:
    org.mailboxes.new(name="Bob", database="DB01", password_hash=password_hash)
    org.mailboxes.set("bob", password="n3w-secret")
    assert stored_hash(org, "bob").startswith("$argon2")
    assert org.mailboxes.authenticate("bob", "n3w-secret") is not None
    assert org.mailboxes.authenticate("bob", "P@ssw0rd-lab") is None


def test_password_required(org: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        org.mailboxes.new(name="Bob", database="DB01")
    assert err.value.parameter == "Password"
    with pytest.raises(InvalidValueError) as err:
        org.mailboxes.new(name="Bob", database="DB01", password="")
    assert err.value.parameter == "Password"
    assert org.mailboxes.count() == 0


def test_defaults(org: Directory, password_hash: str) -> None:
    # alias from the display name, address from the alias and the default domain
    m = org.mailboxes.new(name="Zhang San", database="DB01", password_hash=password_hash)
    assert (m.alias, m.primary_smtp_address) == ("ZhangSan", "ZhangSan@lab.net")
    # alias from the address's local part
    m = org.mailboxes.new(
        name="Li Si", primary_smtp_address="smtp:li.si@lab.net", password_hash=password_hash
    )
    assert (m.alias, m.primary_smtp_address) == ("li.si", "li.si@lab.net")


def test_address_must_be_in_an_accepted_domain(org: Directory, password_hash: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        org.mailboxes.new(
            name="Eve", primary_smtp_address="eve@other.com", password_hash=password_hash
        )
    assert err.value.parameter == "PrimarySmtpAddress"
    assert "other.com" in str(err.value)
    assert "not an accepted domain" in str(err.value)
    assert "(lab.net)" in str(err.value)
    org.add_accepted_domain("Other.com")
    eve = org.mailboxes.new(
        name="Eve", primary_smtp_address="eve@OTHER.com", password_hash=password_hash
    )
    assert eve.primary_smtp_address == "eve@other.com"


@pytest.mark.parametrize(
    "address",
    ["eve", "@lab.net", "eve@", "eve@lab", "e ve@lab.net", "eve@lab..net", "eve\n@lab.net"],
)
def test_malformed_address_refused(org: Directory, password_hash: str, address: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        org.mailboxes.new(
            name="Eve", alias="eve", primary_smtp_address=address, password_hash=password_hash
        )
    assert err.value.parameter == "PrimarySmtpAddress"
    assert org.mailboxes.count() == 0


@pytest.mark.parametrize("alias", ["a b", "a..b", ".ab", "x" * 65, "ali(ce)"])
def test_malformed_alias_refused(org: Directory, password_hash: str, alias: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        org.mailboxes.new(name="Eve", alias=alias, password_hash=password_hash)
    assert err.value.parameter == "Alias"


def test_duplicate_alias_refused(org: Directory, password_hash: str) -> None:
    org.mailboxes.new(name="Alice", alias="alice", database="DB01", password_hash=password_hash)
    with pytest.raises(ConflictError) as err:
        org.mailboxes.new(
            name="Alice 2",
            alias="ALICE",
            primary_smtp_address="alice2@lab.net",
            database="DB01",
            password_hash=password_hash,
        )
    assert "alias is already used by mailbox 'alice' (alice@lab.net)" in str(err.value)
    assert err.value.conflicting == "alice@lab.net"


def test_duplicate_address_refused(org: Directory, password_hash: str) -> None:
    org.mailboxes.new(name="Alice", alias="alice", database="DB01", password_hash=password_hash)
    with pytest.raises(ConflictError) as err:
        org.mailboxes.new(
            name="Alice 2",
            alias="alice2",
            primary_smtp_address="Alice@lab.net",
            database="DB01",
            password_hash=password_hash,
        )
    assert "e-mail address is already used by mailbox 'alice'" in str(err.value)
    assert org.mailboxes.count() == 1


def test_unknown_database(org: Directory, password_hash: str) -> None:
    with pytest.raises(NotFoundError) as err:
        org.mailboxes.new(name="Bob", database="DB99", password_hash=password_hash)
    assert 'mailbox database "DB99"' in str(err.value)


# -- automatic mailbox distribution -------------------------------------------------


def test_automatic_database_is_a_mounted_one_with_fewest_mailboxes(
    org: Directory, password_hash: str
) -> None:
    chosen = [
        org.mailboxes.new(name=f"User {i}", alias=f"u{i}", password_hash=password_hash).database
        for i in range(4)
    ]
    assert chosen == ["DB01", "DB03", "DB01", "DB03"]  # DB02 is dismounted


def test_automatic_database_needs_a_mounted_database(bj: Directory, password_hash: str) -> None:
    bj.databases.new("DB01", "MBX01")
    with pytest.raises(InvalidOperationError) as err:
        bj.mailboxes.new(name="Bob", password_hash=password_hash)
    assert "No mounted mailbox database" in str(err.value)
    bj.databases.set_mounted("DB01", True)
    assert bj.mailboxes.new(name="Bob", password_hash=password_hash).database == "DB01"


# -- bulk import ----------------------------------------------------------------------


def specs(n: int, database: str = "DB01", prefix: str = "user") -> list[MailboxSpec]:
    return [
        MailboxSpec(f"{prefix}{i:04}", f"User {i}", f"{prefix}{i:04}@lab.net", database)
        for i in range(n)
    ]


def test_new_many(org: Directory, password_hash: str, password: str) -> None:
    assert org.mailboxes.new_many(specs(300), password_hash) == 300
    assert org.mailboxes.new_many(specs(20, "db03", prefix="sh"), password_hash) == 20
    assert org.mailboxes.count() == 320
    assert len(org.mailboxes.get(database="DB01")) == 300
    assert [m.alias for m in org.mailboxes.get(server="MBX02", limit=3)] == [
        "sh0000",
        "sh0001",
        "sh0002",
    ]
    assert org.mailboxes.authenticate("user0299@lab.net", password) is not None
    assert org.mailboxes.new_many([], password_hash) == 0


def test_new_many_by_database_guid(org: Directory, password_hash: str) -> None:
    guid = org.databases.one("DB02").guid
    assert org.mailboxes.new_many(specs(2, database=guid.upper()), password_hash) == 2
    assert {m.database for m in org.mailboxes.get()} == {"DB02"}


def test_new_many_duplicate_in_the_import_refused(org: Directory, password_hash: str) -> None:
    batch = specs(5)
    batch.append(MailboxSpec("USER0003", "Again", "again@lab.net", "DB01"))
    with pytest.raises(ConflictError) as err:
        org.mailboxes.new_many(batch, password_hash)
    assert "appears twice in the import" in str(err.value)
    assert "USER0003" in str(err.value)
    assert org.mailboxes.count() == 0

    batch = [*specs(5), MailboxSpec("other", "Other", "User0004@LAB.net", "DB01")]
    with pytest.raises(ConflictError):
        org.mailboxes.new_many(batch, password_hash)
    assert org.mailboxes.count() == 0


def test_new_many_clash_with_existing_refused(org: Directory, password_hash: str) -> None:
    org.mailboxes.new(
        name="Old",
        alias="old",
        primary_smtp_address="user0450@lab.net",
        password_hash=password_hash,
    )
    with pytest.raises(ConflictError) as err:
        org.mailboxes.new_many(specs(600), password_hash)  # the clash is in the second chunk
    assert "'old' (user0450@lab.net) already exists" in str(err.value)
    assert org.mailboxes.count() == 1


def test_new_many_checks_every_spec(org: Directory, password_hash: str) -> None:
    for bad, parameter in [
        (MailboxSpec("x y", "X", "xy@lab.net", "DB01"), "Alias"),
        (MailboxSpec("xy", "X", "xy@other.com", "DB01"), "PrimarySmtpAddress"),
        (MailboxSpec("xy", "", "xy@lab.net", "DB01"), "Name"),
    ]:
        with pytest.raises(InvalidValueError) as err:
            org.mailboxes.new_many([*specs(3), bad], password_hash)
        assert err.value.parameter == parameter
    with pytest.raises(NotFoundError):
        org.mailboxes.new_many([*specs(3), MailboxSpec("xy", "X", "xy@lab.net", "DB9")], "h")
    assert org.mailboxes.count() == 0


# -- Set-Mailbox / Remove-Mailbox ---------------------------------------------------


@pytest.fixture
def people(org: Directory, password_hash: str) -> Directory:
    for alias, name in [("alice", "Alice Wang"), ("bob", "Bob Li")]:
        org.mailboxes.new(name=name, alias=alias, database="DB01", password_hash=password_hash)
    return org


def test_set_mailbox(people: Directory) -> None:
    before = people.mailboxes.one("alice")
    after = people.mailboxes.set(
        "alice@lab.net", display_name="Alice W.", alias="awang", primary_smtp_address="a@lab.net"
    )
    assert after.guid == before.guid
    assert (after.alias, after.display_name, after.primary_smtp_address) == (
        "awang",
        "Alice W.",
        "a@lab.net",
    )
    assert people.mailboxes.one("a@lab.net").guid == before.guid
    with pytest.raises(NotFoundError):
        people.mailboxes.one("alice@lab.net")


def test_set_own_values_again_is_fine(people: Directory) -> None:
    m = people.mailboxes.set("alice", alias="Alice", primary_smtp_address="ALICE@lab.net")
    assert (m.alias, m.primary_smtp_address) == ("Alice", "ALICE@lab.net")


def test_set_alias_to_anothers_refused(people: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        people.mailboxes.set("alice", alias="bob")
    assert "alias is already used by mailbox 'bob'" in str(err.value)
    assert people.mailboxes.one("alice@lab.net").alias == "alice"


def test_set_address_to_anothers_refused(people: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        people.mailboxes.set("alice", primary_smtp_address="Bob@lab.net")
    assert "e-mail address is already used by mailbox 'bob'" in str(err.value)
    assert people.mailboxes.one("alice").primary_smtp_address == "alice@lab.net"


def test_set_address_outside_accepted_domains_refused(people: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        people.mailboxes.set("alice", primary_smtp_address="alice@other.com")
    assert err.value.parameter == "PrimarySmtpAddress"


def test_remove_mailbox(people: Directory) -> None:
    removed = people.mailboxes.remove("Bob Li")
    assert removed.alias == "bob"
    assert [m.alias for m in people.mailboxes.get()] == ["alice"]
    assert people.mailboxes.authenticate("bob", "P@ssw0rd-lab") is None
    with pytest.raises(NotFoundError):
        people.mailboxes.remove("bob")


def test_default_alias_from_a_name_with_accents(org: Directory, password_hash: str) -> None:
    """New-Mailbox -Name 'José Díaz' needs no -Alias: the alias made from the name must
    itself be a valid alias."""
    m = org.mailboxes.new(name="José Díaz", database="DB01", password_hash=password_hash)
    assert m.alias.isascii()
    assert m.alias.startswith("Jos")
    assert m.primary_smtp_address == f"{m.alias}@lab.net"


def test_authenticate_with_a_malformed_stored_hash(org: Directory) -> None:
    org.mailboxes.new(name="Bob", database="DB01", password_hash="not-an-argon2-hash")
    assert org.mailboxes.authenticate("bob", "not-an-argon2-hash") is None
