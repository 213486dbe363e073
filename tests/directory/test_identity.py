"""Identity parameters: a name, an FQDN, an address or alias, a GUID, a distinguished
name or a legacyExchangeDN, in any case; the record itself; unknown and ambiguous
identities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casarray.directory import AmbiguousIdentityError, Directory, NotFoundError


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.databases.new("Mailbox Database, Two", "MBX02")
    bj.mailboxes.new(name="Alice Wang", alias="alice", database="DB01", password_hash=password_hash)
    return bj


def one(d: Directory, kind: str) -> Callable[[Any], Any]:
    return {
        "site": d.sites.one,
        "server": d.servers.one,
        "array": d.arrays.one,
        "database": d.databases.one,
        "mailbox": d.mailboxes.one,
    }[kind]


def identities(record: Any) -> list[str]:
    """Every identity string Exchange accepts for `record`."""
    forms = [
        record.guid,
        record.guid.upper(),
        "{" + record.guid + "}",
        "{" + record.guid.upper() + "}",
        record.guid.replace("-", ""),
        record.distinguished_name,
    ]
    for attr in ("name", "fqdn", "alias", "primary_smtp_address", "display_name"):
        value = getattr(record, attr, None)
        if value:
            forms.append(value)
    legacy = getattr(record, "exchange_legacy_dn", None)
    if legacy:
        forms.append(legacy)
    return forms


CASES = [
    ("site", "BJ"),
    ("site", "SH"),
    ("server", "CAS01"),
    ("server", "MBX02"),
    ("array", "BJ CAS Array"),
    ("database", "DB01"),
    ("database", "Mailbox Database, Two"),
    ("mailbox", "alice"),
]


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_every_identity_form_in_any_case(org: Directory, kind: str, name: str) -> None:
    lookup = one(org, kind)
    record = lookup(name)
    for identity in identities(record):
        for variant in (identity, identity.upper(), identity.lower(), f"  {identity} "):
            assert lookup(variant) == record, variant
    assert lookup(record) == record


def test_identity_forms_of_a_server(org: Directory) -> None:
    cas01 = org.servers.one("CAS01")
    assert org.servers.one("cas01.lab.net") == cas01
    assert (
        org.servers.one(
            "/O=LAB/OU=EXCHANGE ADMINISTRATIVE GROUP (FYDIBOHF23SPDLT)/CN=CONFIGURATION"
            "/CN=SERVERS/CN=CAS01"
        )
        == cas01
    )
    # spaces after the commas of a DN don't matter
    spaced = cas01.distinguished_name.replace(",", ", ")
    assert org.servers.one(spaced) == cas01


def test_identity_forms_of_an_array(org: Directory) -> None:
    array = org.arrays.one("BJ CAS Array")
    assert org.arrays.one("BJ-CAS.LAB.NET") == array
    assert org.arrays.one(array.exchange_legacy_dn.upper()) == array
    assert org.arrays.one(array.distinguished_name.lower()) == array


def test_identity_forms_of_a_mailbox(org: Directory) -> None:
    alice = org.mailboxes.one("alice")
    for identity in [
        "Alice@Lab.Net",
        "ALICE",
        "alice wang",
        "CN=alice,CN=Users,DC=lab,DC=net",
        "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=ALICE",
    ]:
        assert org.mailboxes.one(identity) == alice


def test_escaped_distinguished_name(org: Directory) -> None:
    db = org.databases.one("mailbox database, two")
    assert db.distinguished_name.startswith("CN=Mailbox Database\\, Two,CN=Databases,")
    assert org.databases.one(db.distinguished_name) == db


def test_dn_of_the_wrong_container_is_not_found(org: Directory) -> None:
    with pytest.raises(NotFoundError):
        org.servers.one("CN=CAS01,CN=Arrays,CN=Configuration,DC=lab,DC=net")
    with pytest.raises(NotFoundError):
        org.servers.one("/o=Other/ou=X/cn=Configuration/cn=Servers/cn=CAS01")


def test_the_fqdn_of_an_array_is_not_a_server(org: Directory) -> None:
    with pytest.raises(NotFoundError):
        org.servers.one("bj-cas.lab.net")
    with pytest.raises(NotFoundError):
        org.arrays.one("CAS01.lab.net")


def test_a_record_of_another_kind_is_not_found(org: Directory) -> None:
    for kind, name in CASES:
        record = one(org, kind)(name)
        other = "server" if kind != "server" else "site"
        with pytest.raises(NotFoundError):
            one(org, other)(record)


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("site", "site"),
        ("server", "server"),
        ("array", "client access array"),
        ("database", "mailbox database"),
        ("mailbox", "mailbox"),
    ],
)
def test_unknown_identity_names_it(org: Directory, kind: str, label: str) -> None:
    for identity in [
        "nobody",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "CN=nobody,CN=Users,DC=lab,DC=net",
        "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=nobody",
    ]:
        with pytest.raises(NotFoundError) as err:
            one(org, kind)(identity)
        assert err.value.kind == label
        assert f'The {label} "{identity}" couldn\'t be found' in str(err.value)


def test_empty_identity_is_not_found(org: Directory) -> None:
    with pytest.raises(NotFoundError):
        org.servers.one("   ")


def test_ambiguous_display_name_lists_the_candidates(org: Directory, password_hash: str) -> None:
    org.mailboxes.new(
        name="Alice Wang", alias="alice2", database="DB01", password_hash=password_hash
    )
    with pytest.raises(AmbiguousIdentityError) as err:
        org.mailboxes.one("alice wang")
    text = str(err.value)
    assert 'The mailbox "alice wang" matches multiple entries' in text
    assert "Alice Wang <alice@lab.net>" in text
    assert "Alice Wang <alice2@lab.net>" in text
    assert err.value.candidates == ["Alice Wang <alice2@lab.net>", "Alice Wang <alice@lab.net>"]
    # a more specific identity still works
    assert org.mailboxes.one("alice2@lab.net").alias == "alice2"
    assert org.mailboxes.one("alice").alias == "alice"


def test_alias_equal_to_another_display_name_is_ambiguous(
    org: Directory, password_hash: str
) -> None:
    org.mailboxes.new(name="alice", alias="a.w", database="DB01", password_hash=password_hash)
    with pytest.raises(AmbiguousIdentityError) as err:
        org.mailboxes.one("ALICE")
    assert len(err.value.candidates) == 2


def test_a_name_that_looks_like_a_guid_is_still_found(org: Directory) -> None:
    # A database named like another object's GUID is found by that name, and by its
    # own GUID.
    guid = org.servers.one("CAS01").guid
    db = org.databases.new(guid, "MBX01")
    assert org.databases.one(guid) == db
    assert org.databases.one(db.guid) == db


def _case_variants(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda flips: "".join(
            c.upper() if f else c.lower() for c, f in zip(text, flips, strict=True)
        )
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_lookup_is_case_insensitive(org: Directory, data: st.DataObject) -> None:
    kind, name = data.draw(st.sampled_from(CASES))
    record = one(org, kind)(name)
    identity = data.draw(st.sampled_from(identities(record)))
    variant = data.draw(_case_variants(identity))
    assert one(org, kind)(variant) == record
