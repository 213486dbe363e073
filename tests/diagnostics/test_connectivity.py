"""The test mailboxes of Test-MAPIConnectivity and Test-OutlookConnectivity."""

from __future__ import annotations

import pytest

from casarray.diagnostics.connectivity import connectivity_alias, connectivity_mailbox
from casarray.directory import ConflictError, Directory


def test_the_test_mailbox_is_made_once_and_its_password_renewed(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01", mounted=True)
    made, first = connectivity_mailbox(bj, "DB01")
    assert (made.alias, made.primary_smtp_address, made.database) == (
        "extest_db01",
        "extest_db01@lab.net",
        "DB01",
    )
    again, second = connectivity_mailbox(bj, bj.databases.one("DB01"))
    assert again.guid == made.guid and second != first
    assert bj.mailboxes.authenticate("extest_db01@lab.net", second) is not None
    assert bj.mailboxes.authenticate("extest_db01@lab.net", first) is None
    assert connectivity_alias("Mailbox Database 0815") == "extest_mailbox-database-0815"


def test_a_test_mailbox_alias_taken_elsewhere_is_refused(bj: Directory, password: str) -> None:
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.databases.new("DB03", "MBX02", mounted=True)
    bj.mailboxes.new(name="Someone", alias="extest_db01", database="DB03", password=password)
    with pytest.raises(ConflictError, match="taken by a mailbox in database DB03"):
        connectivity_mailbox(bj, "DB01")
    assert bj.mailboxes.authenticate("extest_db01", password) is not None
