"""Client access arrays: one per site, computed members, names that are nobody
else's, Set- and Remove-ClientAccessArray."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from casarray.directory import (
    ConflictError,
    Directory,
    InUseError,
    InvalidValueError,
    NotFoundError,
    validate,
)

ADMIN_GROUP_DN = (
    "CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,CN=Lab,"
    "CN=Microsoft Exchange,CN=Services,CN=Configuration,DC=lab,DC=net"
)


def test_new_array(bj: Directory) -> None:
    array = bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    assert array.name == "BJ CAS Array"
    assert array.fqdn == "bj-cas.lab.net"
    assert array.site == "BJ"
    assert array.members == ("CAS01", "CAS02")
    assert array.distinguished_name == f"CN=BJ CAS Array,CN=Arrays,{ADMIN_GROUP_DN}"
    assert array.exchange_legacy_dn == (
        "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration"
        "/cn=Servers/cn=bj-cas.lab.net"
    )
    assert array.exchange_legacy_dn.endswith("cn=bj-cas.lab.net")
    assert array.when_changed == array.when_created
    assert bj.arrays.get() == [array]
    assert bj.arrays.for_site("bj") == array
    assert bj.arrays.for_site("SH") is None


def test_name_defaults_to_the_host_part_of_the_fqdn(bj: Directory) -> None:
    assert bj.arrays.new("outlook-bj.lab.net", site="BJ").name == "outlook-bj"
    assert bj.arrays.new("SH-Cas.lab.net.", site="SH", name="").name == "SH-Cas"


def test_fqdn_keeps_its_case_and_drops_a_trailing_dot(bj: Directory) -> None:
    array = bj.arrays.new("BJ-CAS.Lab.Net.", site="BJ")
    assert array.fqdn == "BJ-CAS.Lab.Net"
    assert bj.arrays.one("bj-cas.lab.net").guid == array.guid


def test_array_name_at_most_64_characters(bj: Directory) -> None:
    name = "A" * 64
    assert bj.arrays.new("bj-cas.lab.net", site="BJ", name=name).name == name
    with pytest.raises(InvalidValueError) as err:
        bj.arrays.new("sh-cas.lab.net", site="SH", name="B" * 65)
    assert err.value.parameter == "Name"
    assert "maximum is 64" in str(err.value)
    assert bj.arrays.for_site("SH") is None


@pytest.mark.parametrize(
    "bad",
    [
        "bjcas",  # not qualified
        "",
        "   ",
        "-bj.lab.net",
        "bj-.lab.net",
        "bj_cas.lab.net",
        "bj..lab.net",
        "bj cas.lab.net",
        "127.77.1.10",
        "bj.lab.123",
        ("a" * 64) + ".lab.net",  # a label over 63
        ".".join(["abcdefghi"] * 26),  # over 253 characters
        "bj.lab.net/x",
        "bj.lab.net\n.x",
        "bj\n.lab.net",
    ],
)
def test_bad_fqdn_refused_naming_the_parameter(bj: Directory, bad: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        bj.arrays.new(bad, site="BJ", name="BJ CAS Array")
    assert err.value.parameter == "Fqdn"
    assert "parameter 'Fqdn'" in str(err.value)
    assert bj.arrays.get() == []


# Text that looks like host names, with some junk mixed into the labels.
_junk_label = st.text(alphabet=string.ascii_letters + string.digits + "-_ \t\n\x00é", max_size=12)
_fqdnish = st.lists(_junk_label, min_size=1, max_size=5).map(".".join)


@example(value="cas\n.lab.net")
@example(value="cas.lab.net\n")
@example(value="cas. lab.net")
@given(value=st.one_of(_fqdnish, st.text(max_size=300)))
def test_fqdn_validation_only_raises_invalid_value(value: str) -> None:
    try:
        fqdn = validate.fqdn("Fqdn", value)
    except InvalidValueError as err:
        assert err.parameter == "Fqdn"
        return
    # an accepted name is clean: ASCII labels of letters, digits and hyphens
    labels = fqdn.split(".")
    assert len(labels) >= 2
    assert len(fqdn) <= 253
    for label in labels:
        assert 1 <= len(label) <= 63
        assert set(label) <= set(string.ascii_letters + string.digits + "-"), repr(fqdn)
        assert not label.startswith("-") and not label.endswith("-")
    assert validate.fqdn("Fqdn", fqdn) == fqdn


def test_one_array_per_site(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    with pytest.raises(ConflictError) as err:
        bj.arrays.new("bj-cas2.lab.net", site="bj", name="Second")
    assert "Site 'BJ' already has the client access array 'BJ CAS Array'" in str(err.value)
    assert "bj-cas.lab.net" in str(err.value)
    assert err.value.conflicting == "BJ CAS Array"
    assert [a.name for a in bj.arrays.get()] == ["BJ CAS Array"]


def test_fqdn_used_by_another_array_refused_naming_it(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    with pytest.raises(ConflictError) as err:
        bj.arrays.new("BJ-CAS.lab.net", site="SH", name="SH CAS Array")
    text = str(err.value)
    assert "FQDN" in text
    assert "'BJ CAS Array'" in text
    assert "site 'BJ'" in text
    assert err.value.conflicting == "BJ CAS Array"
    assert bj.arrays.for_site("SH") is None


def test_name_used_by_another_array_refused(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="Outlook")
    with pytest.raises(ConflictError) as err:
        bj.arrays.new("sh-cas.lab.net", site="SH", name="OUTLOOK")
    assert "name is already used" in str(err.value)
    assert "'Outlook'" in str(err.value)


def test_new_array_named_like_another_arrays_fqdn_refused(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    with pytest.raises(ConflictError) as err:
        bj.arrays.new("sh-cas.lab.net", site="SH", name="bj-cas.lab.net")
    assert "'BJ CAS Array'" in str(err.value)


def test_new_array_whose_fqdn_is_another_arrays_name_refused(bj: Directory) -> None:
    """An FQDN equal to another array's name would make that identity ambiguous."""
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="outlook.lab.net")
    with pytest.raises(ConflictError) as err:
        bj.arrays.new("OUTLOOK.lab.net", site="SH", name="SH CAS Array")
    assert "'outlook.lab.net' (bj-cas.lab.net)" in str(err.value)
    assert bj.arrays.for_site("SH") is None
    assert bj.arrays.one("outlook.lab.net").fqdn == "bj-cas.lab.net"


@pytest.mark.parametrize(
    ("fqdn", "name", "server"),
    [
        ("cas01.lab.net", "Array", "CAS01"),  # FQDN = a server's FQDN
        ("CAS02.LAB.NET", None, "CAS02"),
        ("bj-cas.lab.net", "cas01", "CAS01"),  # name = a server's name
        ("bj-cas.lab.net", "MBX01.lab.net", "MBX01"),  # name = a server's FQDN
        ("mbx01.other.net", None, "MBX01"),  # default name = a server's name
    ],
)
def test_array_named_like_a_server_refused_naming_it(
    bj: Directory, fqdn: str, name: str | None, server: str
) -> None:
    with pytest.raises(ConflictError) as err:
        bj.arrays.new(fqdn, site="BJ", name=name)
    assert f"server '{server}' ({server}.lab.net)" in str(err.value)
    assert err.value.conflicting == f"{server}.lab.net"
    assert bj.arrays.get() == []


def test_array_in_unknown_site(bj: Directory) -> None:
    with pytest.raises(NotFoundError) as err:
        bj.arrays.new("x-cas.lab.net", site="Atlantis")
    assert "Atlantis" in str(err.value)


def test_members_are_the_client_access_servers_of_the_site(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    sh = bj.arrays.new("sh-cas.lab.net", site="SH")
    assert sh.members == ("CAS03",)  # not MBX02 (Mailbox only), not the BJ servers
    assert bj.arrays.one("bj-cas").members == ("CAS01", "CAS02")


def test_members_follow_servers_added_later_in_install_order(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    bj.servers.new("CAS00", "ClientAccess", "127.77.1.10")  # sorts first by name
    bj.servers.new("MBX09", "Mailbox", "127.77.1.29")
    bj.servers.new("EX01", "Mailbox,ClientAccess", "127.77.1.30")
    bj.servers.new("CAS10", "ClientAccess", "127.77.2.10")  # site SH
    assert bj.arrays.one("bj-cas.lab.net").members == ("CAS01", "CAS02", "CAS00", "EX01")


def test_members_drop_removed_servers(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    bj.servers.remove("CAS01")
    assert bj.arrays.one("bj-cas.lab.net").members == ("CAS02",)


def test_array_in_a_site_without_client_access_servers(directory: Directory) -> None:
    directory.sites.new("HK", ["127.77.3.0/24"])
    directory.servers.new("MBX03", "Mailbox", "127.77.3.21")
    assert directory.arrays.new("hk-cas.lab.net", site="HK").members == ()


def test_creating_an_array_changes_no_existing_database(bj: Directory) -> None:
    db01 = bj.databases.new("DB01", "MBX01")
    db03 = bj.databases.new("DB03", "MBX02")
    assert db01.rpc_client_access_server == "CAS01.lab.net"
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    bj.arrays.new("sh-cas.lab.net", site="SH")
    assert bj.databases.one("DB01") == db01
    assert bj.databases.one("DB03") == db03
    # a database created afterwards gets the array
    assert bj.databases.new("DB02", "MBX01").rpc_client_access_server == "bj-cas.lab.net"


# -- Set-ClientAccessArray ----------------------------------------------------------


def test_rename(bj: Directory) -> None:
    old = bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    renamed = bj.arrays.set("BJ CAS Array", name="Outlook BJ")
    assert (renamed.guid, renamed.name, renamed.fqdn) == (old.guid, "Outlook BJ", old.fqdn)
    assert renamed.distinguished_name.startswith("CN=Outlook BJ,CN=Arrays,")
    assert renamed.when_changed >= old.when_changed
    assert bj.arrays.one("outlook bj").guid == old.guid
    with pytest.raises(NotFoundError):
        bj.arrays.one("BJ CAS Array")


def test_new_fqdn_carries_the_databases_along(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB02", "MBX01")
    bj.databases.set_rpc_client_access_server("DB02", "CAS02.lab.net")
    bj.databases.new("DB03", "MBX02")
    array = bj.arrays.set("bj-cas.lab.net", fqdn="outlook.lab.net")
    assert array.fqdn == "outlook.lab.net"
    assert array.name == "BJ CAS Array"
    assert array.exchange_legacy_dn.endswith("/cn=outlook.lab.net")
    rpc = {d.name: d.rpc_client_access_server for d in bj.databases.get()}
    assert rpc == {"DB01": "outlook.lab.net", "DB02": "CAS02.lab.net", "DB03": "CAS03.lab.net"}
    with pytest.raises(InUseError) as err:
        bj.arrays.remove("outlook.lab.net")
    assert err.value.dependents == ["DB01"]


def test_fqdn_case_change_is_seen_by_the_databases(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    bj.databases.new("DB01", "MBX01")
    assert bj.arrays.set("bj-cas", fqdn="BJ-CAS.LAB.NET").fqdn == "BJ-CAS.LAB.NET"
    # RpcClientAccessServer is stored canonically: the array's FQDN as now spelled
    assert bj.databases.one("DB01").rpc_client_access_server == "BJ-CAS.LAB.NET"


def test_move_to_a_site_that_has_an_array_refused(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    bj.arrays.new("sh-cas.lab.net", site="SH", name="SH CAS Array")
    with pytest.raises(ConflictError) as err:
        bj.arrays.set("BJ CAS Array", site="SH", name="Renamed")
    assert "Site 'SH' already has the client access array 'SH CAS Array'" in str(err.value)
    assert bj.arrays.one("bj-cas.lab.net").site == "BJ"
    assert bj.arrays.one("bj-cas.lab.net").name == "BJ CAS Array"


def test_move_to_a_free_site(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    moved = bj.arrays.set("bj-cas", site="SH")
    assert (moved.site, moved.members) == ("SH", ("CAS03",))
    assert bj.arrays.for_site("BJ") is None
    # the site it left may get a new array
    assert bj.arrays.new("bj2.lab.net", site="BJ").members == ("CAS01", "CAS02")


def test_set_same_site_and_names_is_fine(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    same = bj.arrays.set("bj cas array", site="BJ", name="BJ CAS Array", fqdn="bj-cas.lab.net")
    assert (same.name, same.fqdn, same.site) == ("BJ CAS Array", "bj-cas.lab.net", "BJ")


def test_set_to_a_name_taken_by_a_server_or_array_refused(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    bj.arrays.new("sh-cas.lab.net", site="SH", name="SH CAS Array")
    with pytest.raises(ConflictError) as err:
        bj.arrays.set("bj-cas.lab.net", fqdn="cas01.lab.net")
    assert "'CAS01'" in str(err.value)
    with pytest.raises(ConflictError) as err:
        bj.arrays.set("bj-cas.lab.net", fqdn="sh-cas.lab.net")
    assert "'SH CAS Array'" in str(err.value)
    with pytest.raises(ConflictError) as err:
        bj.arrays.set("bj-cas.lab.net", name="sh cas array")
    assert "'SH CAS Array'" in str(err.value)
    assert bj.arrays.one("bj-cas.lab.net").name == "BJ CAS Array"


def test_set_bad_values_refused(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    with pytest.raises(InvalidValueError) as err:
        bj.arrays.set("bj-cas", fqdn="not a name")
    assert err.value.parameter == "Fqdn"
    with pytest.raises(InvalidValueError) as err:
        bj.arrays.set("bj-cas", name="x" * 65)
    assert err.value.parameter == "Name"


# -- Remove-ClientAccessArray -------------------------------------------------------


def test_remove_unused_array(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    assert bj.arrays.remove("bj-cas") == []
    assert bj.arrays.get() == []
    with pytest.raises(NotFoundError) as err:
        bj.arrays.one("bj-cas.lab.net")
    assert 'client access array "bj-cas.lab.net"' in str(err.value)


def test_remove_array_named_by_databases_refused_listing_them(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    bj.databases.new("DB02", "MBX01")
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB03", "MBX02")
    bj.databases.set_rpc_client_access_server("DB03", "BJ-CAS.lab.net")
    with pytest.raises(InUseError) as err:
        bj.arrays.remove("BJ CAS Array")
    text = str(err.value)
    assert "'BJ CAS Array' (bj-cas.lab.net)" in text
    assert "DB01, DB02, DB03" in text
    assert "-Force" in text
    assert err.value.dependents == ["DB01", "DB02", "DB03"]
    assert bj.arrays.one("bj-cas.lab.net").name == "BJ CAS Array"


def test_forced_remove_returns_the_databases(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    bj.databases.new("DB01", "MBX01")
    assert bj.arrays.remove("bj-cas.lab.net", force=True) == ["DB01"]
    assert bj.arrays.get() == []
    # the database still names the removed array; a new database falls back to CAS01
    assert bj.databases.one("DB01").rpc_client_access_server == "bj-cas.lab.net"
    assert bj.databases.new("DB02", "MBX01").rpc_client_access_server == "CAS01.lab.net"
