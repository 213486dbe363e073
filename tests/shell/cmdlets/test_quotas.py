"""Storage quotas through the shell, as an Exchange administrator sets them:
Set-MailboxDatabase and Set-Mailbox -IssueWarningQuota, -ProhibitSendQuota,
-ProhibitSendReceiveQuota and -UseDatabaseQuotaDefaults, shown by Get-MailboxDatabase
and Get-Mailbox as Exchange shows them; bad values are errors that change nothing."""

from __future__ import annotations

import pytest

from casarray.directory import Directory
from casarray.directory.quotas import DATABASE_DEFAULTS, Quotas
from tests.shell.cmdlet_shell import Shell

GB = 1024**3
MB = 1024**2


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.databases.new("DB02", "MBX01", mounted=True)
    bj.mailboxes.new(name="Alice", alias="alice", database="DB01", password_hash=password_hash)
    return bj


def test_get_mailboxdatabase_shows_exchanges_defaults(shell: Shell, org: Directory) -> None:
    out = shell.ok("Get-MailboxDatabase DB01 | Format-List *Quota").out
    assert "IssueWarningQuota        : 1.899 GB (2,039,480,320 bytes)" in out
    assert "ProhibitSendQuota        : 2 GB (2,147,483,648 bytes)" in out
    assert "ProhibitSendReceiveQuota : 2.3 GB (2,469,396,480 bytes)" in out


def test_set_mailboxdatabase_quotas(shell: Shell, org: Directory) -> None:
    shell.ok(
        "Set-MailboxDatabase DB01 -IssueWarningQuota 4.5GB -ProhibitSendQuota 5GB "
        "-ProhibitSendReceiveQuota 6GB"
    )
    assert org.databases.one("DB01").quotas == Quotas(4608 * MB, 5 * GB, 6 * GB)
    assert org.databases.one("DB02").quotas == DATABASE_DEFAULTS
    shell.ok(
        "Get-MailboxDatabase | Set-MailboxDatabase -IssueWarningQuota Unlimited "
        "-ProhibitSendQuota Unlimited -ProhibitSendReceiveQuota Unlimited"
    )
    assert org.databases.one("DB02").quotas == Quotas()
    out = shell.ok("(Get-MailboxDatabase DB01).ProhibitSendReceiveQuota").out
    assert out.strip() == "Unlimited"


@pytest.mark.parametrize(
    ("command", "parameter", "why"),
    [
        (
            "Set-MailboxDatabase DB01 -ProhibitSendReceiveQuota lots",
            "ProhibitSendReceiveQuota",
            "is not a size",
        ),
        (
            "Set-MailboxDatabase DB01 -ProhibitSendReceiveQuota 1GB",
            "ProhibitSendQuota",
            "must be less than or equal to the value of ProhibitSendReceiveQuota",
        ),
        ("Set-MailboxDatabase DB01 -IssueWarningQuota 3TB", "IssueWarningQuota", "is out of range"),
    ],
)
def test_set_mailboxdatabase_bad_quota_changes_nothing(
    shell: Shell, org: Directory, command: str, parameter: str, why: str
) -> None:
    error = shell.run(command).error()
    assert error.category == "InvalidArgument"
    assert f"parameter '{parameter}'" in error.message and why in error.message
    assert org.databases.one("DB01").quotas == DATABASE_DEFAULTS


def test_set_mailbox_quotas_and_use_database_quota_defaults(shell: Shell, org: Directory) -> None:
    out = shell.ok("Get-Mailbox alice | Format-List *Quota*").out
    assert "UseDatabaseQuotaDefaults : True" in out
    assert "ProhibitSendReceiveQuota : Unlimited" in out
    shell.ok(
        "Set-Mailbox alice -UseDatabaseQuotaDefaults $false -IssueWarningQuota 400MB "
        "-ProhibitSendQuota 450MB -ProhibitSendReceiveQuota 500MB"
    )
    alice = org.mailboxes.one("alice")
    assert not alice.use_database_quota_defaults
    assert org.mailboxes.quota_limits("alice") == Quotas(400 * MB, 450 * MB, 500 * MB)
    out = shell.ok("Get-Mailbox alice | Format-List *Quota*").out
    assert "ProhibitSendReceiveQuota : 500 MB (524,288,000 bytes)" in out
    assert "UseDatabaseQuotaDefaults : False" in out
    shell.ok("Set-Mailbox alice -UseDatabaseQuotaDefaults $true")
    assert org.mailboxes.quota_limits("alice") == DATABASE_DEFAULTS
    # the same again is no change
    result = shell.ok("Set-Mailbox alice -UseDatabaseQuotaDefaults $true")
    assert result.warnings == [
        "The command completed successfully but no settings of 'alice' have been modified."
    ]


def test_set_mailbox_bad_quota_changes_nothing(shell: Shell, org: Directory) -> None:
    error = shell.run("Set-Mailbox alice -ProhibitSendReceiveQuota 12parsecs").error()
    assert "parameter 'ProhibitSendReceiveQuota'" in error.message
    error = shell.run(
        "Set-Mailbox alice -IssueWarningQuota 2GB -ProhibitSendQuota 1GB "
        "-ProhibitSendReceiveQuota 3GB"
    ).error()
    assert "parameter 'IssueWarningQuota'" in error.message
    assert org.mailboxes.one("alice").quotas == Quotas()
