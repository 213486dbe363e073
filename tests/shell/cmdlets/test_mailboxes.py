"""Mailboxes through the shell: New-, Get-, Set-, Remove-Mailbox. Few mailboxes get
their password through the shell (argon2 costs ~50 ms a hash); the rest are made
with the session's precomputed hash."""

from __future__ import annotations

import pytest

from casarray.directory import Directory
from casarray.directory.mailboxes import MailboxSpec
from casarray.shell.objects import MAILBOX_TYPE, mailbox_object
from casarray.shell.views import view_for
from tests.shell.cmdlet_shell import Shell, what_if

SECRET = '(ConvertTo-SecureString "P@ssw0rd-1" -AsPlainText -Force)'


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    """BJ/SH with DB01 (MBX01) and DB03 (MBX02), and mailboxes alice and bob in DB01,
    carol in DB03."""
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.databases.new("DB03", "MBX02", mounted=True)
    for alias, name, db in (
        ("alice", "Alice Wang", "DB01"),
        ("bob", "Bob Li", "DB01"),
        ("carol", "Carol Zhao", "DB03"),
    ):
        bj.mailboxes.new(name=name, alias=alias, database=db, password_hash=password_hash)
    return bj


def aliases(d: Directory) -> list[str]:
    return [m.alias for m in d.mailboxes.get()]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- New-Mailbox -----------------------------------------------------------------------


def test_new_mailbox(shell: Shell, org: Directory) -> None:
    result = shell.ok(
        'New-Mailbox -Name "Dave Sun" -Alias dave -UserPrincipalName dave@lab.net '
        f"-Database DB03 -Password {SECRET}"
    )
    assert "Dave Sun" in result.out
    dave = org.mailboxes.one("dave")
    assert (dave.display_name, dave.primary_smtp_address, dave.database, dave.server) == (
        "Dave Sun",
        "dave@lab.net",
        "DB03",
        "MBX02",
    )
    assert org.mailboxes.authenticate("dave@lab.net", "P@ssw0rd-1") == dave


def test_new_mailbox_defaults(shell: Shell, org: Directory) -> None:
    shell.ok(
        'New-Mailbox "Erin" -PrimarySmtpAddress erin.q@lab.net -FirstName Erin -LastName Q '
        f"-DisplayName 'Erin Q.' -Password {SECRET}"
    )
    erin = org.mailboxes.one("erin.q@lab.net")
    assert erin.alias == "erin.q"
    assert erin.display_name == "Erin Q."
    assert erin.database == "DB03"  # the mounted database with fewest mailboxes


def test_new_mailbox_what_if(shell: Shell, org: Directory) -> None:
    result = shell.ok(f'New-Mailbox -Name "Dave Sun" -Alias dave -Password {SECRET} -WhatIf')
    assert result.out.strip() == what_if("New-Mailbox", "Dave Sun")
    assert aliases(org) == ["alice", "bob", "carol"]


def test_new_mailbox_needs_a_secure_string(shell: Shell, org: Directory) -> None:
    error = shell.run('New-Mailbox -Name "Dave Sun" -Alias dave -Password "plain"').error()
    assert "'Password'" in error.message and "ConvertTo-SecureString" in error.message
    error = shell.run('New-Mailbox -Name "Dave Sun" -Alias dave').error()
    assert "Password" in error.message
    assert aliases(org) == ["alice", "bob", "carol"]


@pytest.mark.parametrize(
    ("arguments", "category", "named"),
    [
        ("-Name Al -Alias alice", "ResourceExists", "alice"),
        ("-Name Al -PrimarySmtpAddress bob@lab.net", "ResourceExists", "bob@lab.net"),
        ("-Name Al -PrimarySmtpAddress al@example.com", "InvalidArgument", "PrimarySmtpAddress"),
        ("-Name Al -Alias 'a l'", "InvalidArgument", "Alias"),
        ("-Name Al -Database DB09", "ObjectNotFound", "DB09"),
    ],
)
def test_new_mailbox_errors(
    shell: Shell, org: Directory, arguments: str, category: str, named: str
) -> None:
    error = shell.run(f"New-Mailbox {arguments} -Password {SECRET}").error()
    assert error.category == category
    assert named in error.message
    assert aliases(org) == ["alice", "bob", "carol"]


# -- Get-Mailbox -----------------------------------------------------------------------


def test_get_mailbox(shell: Shell, org: Directory) -> None:
    assert lines(shell.ok("(Get-Mailbox).Alias").out) == ["alice", "bob", "carol"]
    assert lines(shell.ok("(Get-Mailbox -Database DB03).Name").out) == ["Carol Zhao"]
    assert lines(shell.ok("(Get-Mailbox -Server MBX01).Alias").out) == ["alice", "bob"]
    assert lines(shell.ok("(Get-Mailbox BOB@lab.net).Database").out) == ["DB01"]
    assert lines(shell.ok('(Get-Mailbox "Alice Wang").PrimarySmtpAddress').out) == ["alice@lab.net"]
    assert lines(shell.ok("(Get-MailboxDatabase DB03 | Get-Mailbox).Alias").out) == ["carol"]
    error = shell.run("Get-Mailbox zed").error()
    assert error.category == "ObjectNotFound" and "zed" in error.message


def test_get_mailbox_table(shell: Shell, org: Directory) -> None:
    out = lines(shell.ok("Get-Mailbox alice").out)
    assert out[0].split() == ["Name", "Alias", "ServerName", "ProhibitSendQuota"]
    assert out[2].split() == ["Alice", "Wang", "alice", "mbx01", "Unlimited"]


def test_get_mailbox_result_size(shell: Shell, org: Directory, password_hash: str) -> None:
    result = shell.ok("(Get-Mailbox -ResultSize 2).Alias")
    assert lines(result.out)[-2:] == ["alice", "bob"]
    assert "increase the value for the ResultSize parameter" in result.warnings[0]
    assert lines(shell.ok("(Get-Mailbox -ResultSize 3).Alias").out) == ["alice", "bob", "carol"]
    error = shell.run("Get-Mailbox -ResultSize lots").error()
    assert "ResultSize" in error.message
    org.mailboxes.new_many(
        (
            MailboxSpec(f"user{i:04d}", f"User {i}", f"user{i:04d}@lab.net", "DB01")
            for i in range(1000)
        ),
        password_hash,
    )
    result = shell.ok("(Get-Mailbox).Count")
    assert lines(result.out)[-1] == "1000"
    assert '"-ResultSize Unlimited"' in result.warnings[0]
    assert lines(shell.ok("(Get-Mailbox -ResultSize unlimited).Count").out) == ["1003"]


def test_mailbox_object_and_view(org: Directory) -> None:
    alice = org.mailboxes.one("alice")
    obj = mailbox_object(alice)
    assert obj.type_name == MAILBOX_TYPE
    assert str(obj) == "Alice Wang"
    assert obj.get("ServerName") == "mbx01"
    assert obj.get("ProhibitSendQuota") == "Unlimited"
    assert obj.get("UserPrincipalName") == "alice@lab.net"
    assert obj.get("LegacyExchangeDN") == alice.exchange_legacy_dn
    view = view_for(MAILBOX_TYPE)
    assert view is not None and view.table == ("Name", "Alias", "ServerName", "ProhibitSendQuota")


# -- Set-Mailbox -----------------------------------------------------------------------


def test_set_mailbox(shell: Shell, org: Directory) -> None:
    result = shell.ok(
        'Set-Mailbox alice -DisplayName "Alice W." -PrimarySmtpAddress a.wang@lab.net'
    )
    assert result.out == ""
    alice = org.mailboxes.one("alice")
    assert (alice.display_name, alice.primary_smtp_address) == ("Alice W.", "a.wang@lab.net")
    shell.ok("Get-Mailbox bob | Set-Mailbox -Alias robert")
    assert aliases(org) == ["alice", "carol", "robert"]


def test_set_mailbox_password(shell: Shell, org: Directory) -> None:
    shell.ok(f"Set-Mailbox carol -Password {SECRET}")
    assert org.mailboxes.authenticate("carol@lab.net", "P@ssw0rd-1") is not None


def test_set_mailbox_what_if_and_no_change(shell: Shell, org: Directory) -> None:
    result = shell.ok("Set-Mailbox alice -DisplayName Al -WhatIf")
    assert result.out.strip() == what_if("Set-Mailbox", "alice")
    assert org.mailboxes.one("alice").display_name == "Alice Wang"
    result = shell.ok("Set-Mailbox alice -Alias alice")
    assert result.warnings == [
        "The command completed successfully but no settings of 'alice' have been modified."
    ]


@pytest.mark.parametrize(
    ("command", "category", "named"),
    [
        ("Set-Mailbox alice -Alias bob", "ResourceExists", "bob"),
        ("Set-Mailbox alice -PrimarySmtpAddress a@example.com", "InvalidArgument", "example.com"),
        ("Set-Mailbox alice -Password plain", "InvalidData", "Password"),
        ("Set-Mailbox zed -DisplayName Z", "ObjectNotFound", "zed"),
    ],
)
def test_set_mailbox_errors(
    shell: Shell, org: Directory, command: str, category: str, named: str
) -> None:
    before = org.mailboxes.get()
    error = shell.run(command).error()
    assert error.category == category
    assert named in error.message
    assert org.mailboxes.get() == before


# -- Remove-Mailbox --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "left", "prompts"),
    [
        ("y\nn\ny\n", ["bob"], 3),
        ("a\n", [], 1),
        ("n\nl\n", ["alice", "bob", "carol"], 2),
    ],
)
def test_remove_mailboxes_asks(
    shell: Shell, org: Directory, answers: str, left: list[str], prompts: int
) -> None:
    result = shell.ok("Get-Mailbox | Remove-Mailbox", stdin=answers)
    assert result.prompts == prompts
    assert 'Performing the operation "Remove-Mailbox" on target "alice"' in result.out
    assert aliases(org) == left


def test_remove_mailbox_without_asking_and_what_if(shell: Shell, org: Directory) -> None:
    result = shell.ok("Remove-Mailbox bob -WhatIf")
    assert result.out.strip() == what_if("Remove-Mailbox", "bob")
    assert aliases(org) == ["alice", "bob", "carol"]
    result = shell.ok("Remove-Mailbox bob@lab.net -Confirm:$false")
    assert result.prompts == 0
    assert aliases(org) == ["alice", "carol"]
    error = shell.run("Remove-Mailbox bob -Confirm:$false").error()
    assert error.category == "ObjectNotFound" and "bob" in error.message
