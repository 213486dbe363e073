"""Mailbox cmdlets: New-, Get-, Set- and Remove-Mailbox.

Passwords arrive as SecureStrings (`(ConvertTo-SecureString "..." -AsPlainText
-Force)`) and go straight to the directory, which keeps only their argon2 hash. The
rules (accepted domains, unique alias and address, automatic database choice) live in
`Directory.mailboxes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.errors import InvalidValueError
from casarray.directory.objects import Mailbox, MailboxDatabase, Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.databases import QUOTA_PARAMETERS, quota_values
from casarray.shell.cmdlets.messages import create_store_mailbox, purge_store_mailbox
from casarray.shell.objects import ObjectRef, identity_arg, mailbox_object
from casarray.shell.values import SecureString

IDENTITY_HELP = "The mailbox's alias, e-mail address, display name, GUID or distinguished name."
DEFAULT_RESULT_SIZE = 1000


def _password(value: Any) -> str | None:
    return value.reveal() if isinstance(value, SecureString) else None


def parse_result_size(value: Any) -> int | None:
    """-ResultSize: a positive number, or Unlimited (None)."""
    if value is None:
        return DEFAULT_RESULT_SIZE
    text = str(value).strip()
    if text.lower() == "unlimited":
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise InvalidValueError("ResultSize", value, "is not a positive number or Unlimited.")
    return number


@register
class NewMailbox(Cmdlet):
    name = "New-Mailbox"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The mailbox's name."),
        Parameter("Alias", help="The alias; by default from the e-mail address or the name."),
        Parameter(
            "UserPrincipalName",
            help="The logon name (user@domain); the primary SMTP address unless one is given.",
        ),
        Parameter(
            "PrimarySmtpAddress", help="The e-mail address; by default alias@default domain."
        ),
        Parameter(
            "Database",
            kind="identity",
            identity_of="database",
            help="Its mailbox database; by default the mounted one with fewest mailboxes.",
        ),
        Parameter(
            "Password",
            kind="securestring",
            mandatory=True,
            help='The password: (ConvertTo-SecureString "..." -AsPlainText -Force).',
        ),
        Parameter("DisplayName", help="The name shown in address lists; by default Name."),
        Parameter("FirstName", help="Accepted for compatibility."),
        Parameter("LastName", help="Accepted for compatibility."),
        Parameter("OrganizationalUnit", help="Accepted for compatibility."),
    )
    synopsis = "Creates a user and its mailbox."
    description = (
        "Creates a mailbox (with its user account) in a mailbox database. Its address must "
        "be in an accepted domain; its users reach it through the database's "
        "RpcClientAccessServer."
    )
    examples = (
        Example(
            'New-Mailbox -Name "Alice Wang" -Alias alice -UserPrincipalName alice@lab.net '
            '-Database DB01 -Password (ConvertTo-SecureString "P@ssw0rd" -AsPlainText -Force)',
            "Creates Alice's mailbox in DB01.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        database = params.get("Database")
        database_arg = (
            self.directory.databases.one(identity_arg(database, MailboxDatabase))
            if database is not None
            else None
        )
        address = params.get("PrimarySmtpAddress")
        upn = params.get("UserPrincipalName")
        if address is not None and upn is not None and upn.strip().lower() != address.lower():
            self.write_warning(
                f"The UserPrincipalName {upn} isn't kept apart from the primary SMTP address "
                f"{address}: users log on with their address or alias."
            )
        display = params.get("DisplayName") or params["Name"]
        if not self.should_process(display):
            return
        mailbox = self.directory.mailboxes.new(
            name=display,
            primary_smtp_address=address if address is not None else upn,
            alias=params.get("Alias"),
            database=database_arg,
            password=_password(params["Password"]),
        )
        create_store_mailbox(self, mailbox)
        yield mailbox_object(mailbox)


@register
class GetMailbox(Cmdlet):
    name = "Get-Mailbox"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="mailbox",
            help=IDENTITY_HELP,
        ),
        Parameter(
            "Database",
            kind="identity",
            identity_of="database",
            help="Only this database's mailboxes.",
        ),
        Parameter(
            "Server", kind="identity", identity_of="server", help="Only this server's mailboxes."
        ),
        Parameter(
            "ResultSize",
            help=f"How many mailboxes at most (default {DEFAULT_RESULT_SIZE}), or Unlimited.",
        ),
    )
    synopsis = "Gets mailboxes."
    description = (
        "Gets one mailbox, the mailboxes of a database or a server, or every mailbox: the "
        f"first {DEFAULT_RESULT_SIZE} unless -ResultSize says otherwise."
    )
    examples = (
        Example("Get-Mailbox", "Lists the first 1000 mailboxes."),
        Example("Get-Mailbox -Database DB01 -ResultSize Unlimited", "Lists every DB01 mailbox."),
        Example("Get-Mailbox alice | Format-List", "Shows every property of Alice's mailbox."),
        Example("Get-MailboxDatabase DB01 | Get-Mailbox", "Lists the mailboxes of DB01."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        database = params.get("Database")
        server = params.get("Server")
        # `Get-MailboxDatabase DB01 | Get-Mailbox`: a piped database (or server) object
        # lists its mailboxes, as in Exchange.
        base = getattr(identity, "base", None)
        if isinstance(base, MailboxDatabase) and database is None:
            identity, database = None, base
        elif isinstance(base, Server) and server is None:
            identity, server = None, base
        limit = parse_result_size(params.get("ResultSize"))
        mailboxes = self.directory.mailboxes.get(
            identity_arg(identity, Mailbox) if identity is not None else None,
            database=identity_arg(database, MailboxDatabase) if database is not None else None,
            server=identity_arg(server, Server) if server is not None else None,
            limit=limit + 1 if limit is not None else None,
        )
        if limit is not None and len(mailboxes) > limit:
            mailboxes = mailboxes[:limit]
            if params.get("ResultSize") is None:
                self.write_warning(
                    f"By default only the first {DEFAULT_RESULT_SIZE} items are returned. Use "
                    "the ResultSize parameter to specify the number of items returned. To "
                    'return all items, specify "-ResultSize Unlimited".'
                )
            else:
                self.write_warning(
                    "There are more results available than are currently displayed. To view "
                    "them, increase the value for the ResultSize parameter."
                )
        for mailbox in mailboxes:
            yield mailbox_object(mailbox)


def _mailbox(cmdlet: Cmdlet, identity: Any) -> Mailbox:
    return cmdlet.directory.mailboxes.one(identity_arg(identity, Mailbox))


@register
class SetMailbox(Cmdlet):
    name = "Set-Mailbox"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="mailbox",
            help=IDENTITY_HELP,
        ),
        Parameter("DisplayName", help="A new display name."),
        Parameter("PrimarySmtpAddress", help="A new e-mail address (in an accepted domain)."),
        Parameter("Alias", help="A new alias."),
        Parameter("Password", kind="securestring", help="A new password (a reset)."),
        *QUOTA_PARAMETERS,
        Parameter(
            "UseDatabaseQuotaDefaults",
            kind="bool",
            help="$true: the database's quotas apply (the default); $false: the mailbox's own.",
        ),
    )
    synopsis = "Changes a mailbox: display name, address, alias, password or quotas."
    description = (
        "Changes a mailbox's display name, primary SMTP address, alias, password or storage "
        "quotas. A mailbox's own quotas apply once -UseDatabaseQuotaDefaults is $false."
    )
    examples = (
        Example(
            'Set-Mailbox alice -DisplayName "Alice W." -PrimarySmtpAddress a.wang@lab.net',
            "Renames Alice and changes her address.",
        ),
        Example(
            'Set-Mailbox alice -Password (ConvertTo-SecureString "N3w-pass" -AsPlainText -Force)',
            "Resets Alice's password.",
        ),
        Example(
            "Set-Mailbox alice -UseDatabaseQuotaDefaults $false -ProhibitSendReceiveQuota 10GB "
            "-ProhibitSendQuota 9GB -IssueWarningQuota 8GB",
            "Gives Alice quotas of her own instead of her database's.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        mailbox = _mailbox(self, params["Identity"])
        display = params.get("DisplayName")
        address = params.get("PrimarySmtpAddress")
        alias = params.get("Alias")
        password = _password(params.get("Password"))
        quotas = quota_values(params)
        use_defaults = params.get("UseDatabaseQuotaDefaults")
        if use_defaults is not None:
            use_defaults = bool(use_defaults)
        changes = (
            (display is not None and display.strip() != mailbox.display_name)
            or (
                address is not None
                and address.strip().lower() != mailbox.primary_smtp_address.lower()
            )
            or (alias is not None and alias.strip() != mailbox.alias)
            or password is not None
            or bool(quotas)
            or use_defaults not in (None, mailbox.use_database_quota_defaults)
        )
        if not changes:
            self.write_warning(
                "The command completed successfully but no settings of "
                f"'{mailbox.alias}' have been modified."
            )
            return ()
        if self.should_process(mailbox.alias):
            self.directory.mailboxes.set(
                ObjectRef(mailbox.guid, mailbox.alias),
                display_name=display,
                primary_smtp_address=address,
                alias=alias,
                password=password,
                quota_values=quotas,
                use_database_quota_defaults=use_defaults,
            )
        return ()


@register
class RemoveMailbox(Cmdlet):
    name = "Remove-Mailbox"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="mailbox",
            help=IDENTITY_HELP,
        ),
        Parameter(
            "Permanent",
            kind="bool",
            help="$true also purges its folders and messages from its mailbox database; "
            "by default they stay there, disconnected, as in Exchange.",
        ),
    )
    synopsis = "Removes a mailbox and its user."
    description = (
        "Removes a mailbox and its user account from the directory. As in Exchange, its "
        "content stays in its mailbox database, disconnected, unless -Permanent $true "
        "purges it."
    )
    examples = (
        Example("Remove-Mailbox alice", "Removes Alice's mailbox after confirmation."),
        Example(
            "Get-Mailbox -Database DB02 | Remove-Mailbox -Confirm:$false",
            "Removes every mailbox of DB02 without asking.",
        ),
        Example(
            "Remove-Mailbox bob -Permanent $true -Confirm:$false",
            "Removes Bob's mailbox and purges its messages from its database.",
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        mailbox = _mailbox(self, params["Identity"])
        if self.should_process(mailbox.alias):
            self.directory.mailboxes.remove(ObjectRef(mailbox.guid, mailbox.alias))
            if params.get("Permanent"):
                purge_store_mailbox(self, mailbox)
        return ()
