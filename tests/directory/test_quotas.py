"""Storage quotas as Exchange keeps them (`directory.quotas`): sizes parsed as Exchange
accepts them and shown as it shows them, the order IssueWarningQuota <=
ProhibitSendQuota <= ProhibitSendReceiveQuota, a database's defaults, a mailbox's own
quotas applying only with UseDatabaseQuotaDefaults $false, bad values changing nothing."""

from __future__ import annotations

import pytest

from casarray.directory import Directory, InvalidValueError
from casarray.directory.quotas import (
    DATABASE_DEFAULTS,
    MAX_QUOTA,
    Quotas,
    check_order,
    format_size,
    parse_size,
)

GB = 1024**3
MB = 1024**2


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2 * GB),
        ("2 gb", 2 * GB),
        ("500MB", 500 * MB),
        ("1.5GB", 1536 * MB),
        ("100KB", 102_400),
        ("1TB", 1024 * GB),
        ("1048576", MB),
        ("1048576B", MB),
        (1048576, MB),
        ("0", 0),
        ("Unlimited", None),
        ("unlimited", None),
        ("2 GB (2,147,483,648 bytes)", 2 * GB),
        ("2.3 GB (2,469,396,480 bytes)", 2_469_396_480),
    ],
)
def test_parse_size(text: object, size: int | None) -> None:
    assert parse_size("ProhibitSendReceiveQuota", text) == size


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2 GiB", "is not a size"),
        ("lots", "is not a size"),
        ("-1GB", "is not a size"),
        ("", "is not a size"),
        ("0.5B", "is not a whole number of bytes"),
        ("2TB", "is out of range"),
        (True, "is not a size"),
    ],
)
def test_parse_size_refuses(text: object, why: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_size("IssueWarningQuota", text)
    assert caught.value.parameter == "IssueWarningQuota"
    assert why in caught.value.message


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "Unlimited"),
        (2 * GB, "2 GB (2,147,483,648 bytes)"),
        (2_039_480_320, "1.899 GB (2,039,480,320 bytes)"),
        (2_469_396_480, "2.3 GB (2,469,396,480 bytes)"),
        (500 * MB, "500 MB (524,288,000 bytes)"),
        (1536 * MB, "1.5 GB (1,610,612,736 bytes)"),
        (100, "100 B (100 bytes)"),
        (0, "0 B (0 bytes)"),
        (MAX_QUOTA, "2 TB (2,199,023,254,528 bytes)"),
    ],
)
def test_format_size(size: int | None, shown: str) -> None:
    assert format_size(size) == shown
    assert parse_size("X", shown) == size  # what Get-* shows is accepted back


def test_order() -> None:
    check_order(DATABASE_DEFAULTS)
    check_order(Quotas())
    check_order(Quotas(GB, None, None))
    check_order(Quotas(GB, GB, GB))
    with pytest.raises(InvalidValueError) as caught:
        check_order(Quotas(3 * GB, 2 * GB, None))
    assert caught.value.parameter == "IssueWarningQuota"
    assert "less than or equal to the value of ProhibitSendQuota (2 GB" in caught.value.message
    with pytest.raises(InvalidValueError) as caught:
        check_order(Quotas(None, None, 2 * GB))  # Unlimited is above every size
    assert caught.value.parameter == "ProhibitSendQuota"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.mailboxes.new(name="Alice", database="DB01", password_hash=password_hash)
    return bj


def test_a_new_database_has_exchanges_defaults_and_a_mailbox_uses_them(org: Directory) -> None:
    assert org.databases.one("DB01").quotas == DATABASE_DEFAULTS
    alice = org.mailboxes.one("alice")
    assert alice.use_database_quota_defaults
    assert alice.quotas == Quotas()
    assert org.mailboxes.quota_limits("alice") == DATABASE_DEFAULTS


def test_set_database_quotas(org: Directory) -> None:
    version = org.topology_version()
    db = org.databases.set(
        "DB01", quota_values={"ProhibitSendReceiveQuota": "3GB", "ProhibitSendQuota": "2.5GB"}
    )
    assert db.quotas == Quotas(2_039_480_320, 2560 * MB, 3 * GB)
    assert org.topology_version() > version
    assert org.mailboxes.quota_limits("alice").prohibit_send_receive == 3 * GB
    org.databases.set("DB01", quota_values={q: "Unlimited" for q in Quotas().by_parameter()})
    assert org.mailboxes.quota_limits("alice") == Quotas()


def test_set_database_quotas_out_of_order_changes_nothing(org: Directory) -> None:
    with pytest.raises(InvalidValueError) as caught:
        org.databases.set("DB01", quota_values={"ProhibitSendReceiveQuota": "1GB"})
    assert caught.value.parameter == "ProhibitSendQuota"
    with pytest.raises(InvalidValueError):
        org.databases.set("DB01", quota_values={"IssueWarningQuota": "many"}, name="DB09")
    assert org.databases.one("DB01").quotas == DATABASE_DEFAULTS


def test_a_mailboxs_own_quotas_apply_without_the_defaults(org: Directory) -> None:
    # one limit alone, below the others (Unlimited), is out of order, as in Exchange
    with pytest.raises(InvalidValueError):
        org.mailboxes.set("alice", quota_values={"ProhibitSendReceiveQuota": "100MB"})
    own = {"IssueWarningQuota": "80MB", "ProhibitSendQuota": "90MB"}
    org.mailboxes.set("alice", quota_values={**own, "ProhibitSendReceiveQuota": "100MB"})
    mine = Quotas(80 * MB, 90 * MB, 100 * MB)
    assert org.mailboxes.one("alice").quotas == mine
    # still the database's until UseDatabaseQuotaDefaults is $false
    assert org.mailboxes.quota_limits("alice") == DATABASE_DEFAULTS
    org.mailboxes.set("alice", use_database_quota_defaults=False)
    assert org.mailboxes.quota_limits("alice") == mine
    with pytest.raises(InvalidValueError):
        org.mailboxes.set("alice", quota_values={"IssueWarningQuota": "200MB"})
    assert org.mailboxes.one("alice").quotas == mine
    org.mailboxes.set("alice", use_database_quota_defaults=True)
    assert org.mailboxes.quota_limits("alice") == DATABASE_DEFAULTS
