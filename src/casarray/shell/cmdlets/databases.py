"""Mailbox database cmdlets: New-, Get-, Set-, Remove-MailboxDatabase, Mount-Database
and Dismount-Database.

Set-MailboxDatabase -RpcClientAccessServer is the seed's step V and must be fast in
bulk (`Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer X` over
10,000 databases): the value is checked once, at the start, and the databases piped in
are written in batches (one directory transaction per ~500 databases, or per 50 ms of
input), still while Get-MailboxDatabase is streaming them. A failed batch is retried
one database at a time, so each error names its database and the others are set.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.errors import DirectoryError, InvalidValueError
from casarray.directory.objects import MailboxDatabase, Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import database_object, identity_arg, name_list

IDENTITY_HELP = "The database's name, GUID, distinguished name or legacyExchangeDN."
RPC_PARAMETER = "RpcClientAccessServer"
QUOTA_PARAMETERS = (
    Parameter(
        "IssueWarningQuota",
        help="The size at which a mailbox's owner is warned (2GB, 500MB, Unlimited).",
    ),
    Parameter(
        "ProhibitSendQuota",
        help="The size at which a mailbox's owner can no longer send (2GB, Unlimited).",
    ),
    Parameter(
        "ProhibitSendReceiveQuota",
        help="The size at which nothing more is stored in a mailbox: no delivery, no "
        "IMAP APPEND or COPY (2.3GB, Unlimited).",
    ),
)


def quota_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The quota parameters given, as written (the directory parses them)."""
    return {p.name: params[p.name] for p in QUOTA_PARAMETERS if p.name in params}


def _database(cmdlet: Cmdlet, identity: Any) -> MailboxDatabase:
    """The database an identity parameter names: a piped Get-MailboxDatabase object
    as it is (no lookup), anything else looked up in the directory."""
    base = getattr(identity, "base", None)
    if isinstance(base, MailboxDatabase):
        return base
    return cmdlet.directory.databases.one(identity_arg(identity, MailboxDatabase))


@register
class NewMailboxDatabase(Cmdlet):
    name = "New-MailboxDatabase"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The database's name, e.g. DB01."),
        Parameter(
            "Server",
            kind="identity",
            mandatory=True,
            identity_of="server",
            help="The Mailbox server that holds it.",
        ),
        Parameter("EdbFilePath", help="Where its store is kept (a file path or a URL)."),
    )
    synopsis = "Creates a mailbox database on a Mailbox server."
    description = (
        "Creates a mailbox database, dismounted (Mount-Database mounts it). Its "
        "RpcClientAccessServer is the FQDN of its site's client access array when the site "
        "has one, else the FQDN of the site's first Client Access server."
    )
    examples = (
        Example(
            "New-MailboxDatabase -Name DB03 -Server MBX02",
            "Creates DB03 on MBX02, in MBX02's site.",
        ),
        Example(
            'New-MailboxDatabase "DB04" -Server MBX01 -EdbFilePath /srv/mail/DB04.db',
            "Creates DB04 with its store in the given file.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = self.directory.servers.one(identity_arg(params["Server"], Server))
        if not self.should_process(params["Name"]):
            return
        database = self.directory.databases.new(
            params["Name"], server, store_location=params.get("EdbFilePath") or None
        )
        yield database_object(database)


@register
class GetMailboxDatabase(Cmdlet):
    name = "Get-MailboxDatabase"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="database",
            help=IDENTITY_HELP,
        ),
        Parameter(
            "Server", kind="identity", identity_of="server", help="Only this server's databases."
        ),
        Parameter("Status", kind="switch", help="Also read the state: Mounted."),
    )
    synopsis = "Gets mailbox databases."
    description = (
        "Gets one mailbox database, the databases of a server, or every database, with "
        "its RpcClientAccessServer: the name its users' clients connect to. Mounted is "
        "filled only with -Status, as in Exchange."
    )
    examples = (
        Example("Get-MailboxDatabase", "Lists every database."),
        Example(
            "Get-MailboxDatabase | Format-Table Name,Server,RpcClientAccessServer",
            "Shows which name each database's users connect to.",
        ),
        Example(
            "Get-MailboxDatabase -Server MBX01 -Status", "Shows MBX01's databases with Mounted."
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        server = params.get("Server")
        status = bool(params.get("Status"))
        databases = self.directory.databases.get(
            identity_arg(identity, MailboxDatabase) if identity is not None else None,
            server=identity_arg(server, Server) if server is not None else None,
        )
        for database in databases:
            yield database_object(database, status=status)


@register
class SetMailboxDatabase(Cmdlet):
    name = "Set-MailboxDatabase"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="database",
            help=IDENTITY_HELP,
        ),
        Parameter(
            RPC_PARAMETER,
            help="The FQDN its users' clients connect to: the site's client access array, "
            "or one Client Access server.",
        ),
        Parameter("Name", help="A new name."),
        *QUOTA_PARAMETERS,
    )
    synopsis = "Changes a mailbox database: its RpcClientAccessServer, name or quotas."
    description = (
        "Changes mailbox databases. -RpcClientAccessServer takes the FQDN of a client "
        "access array or of a Client Access server: after a client access array is "
        "created, the existing databases must be pointed at it (new ones are), and "
        "pointing a database at one good Client Access server redirects its users there. "
        "Databases piped in are written in batches."
    )
    examples = (
        Example(
            'Set-MailboxDatabase "DB01" -RpcClientAccessServer bj-cas.lab.net',
            "Points DB01's users at the array bj-cas.lab.net.",
        ),
        Example(
            "Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net",
            "Points every database at the array (the bulk update of the CAS-array set-up).",
        ),
        Example(
            "Set-MailboxDatabase DB02 -RpcClientAccessServer CAS02.lab.net",
            "Redirects DB02's users to the good Client Access server CAS02.",
        ),
        Example(
            "Set-MailboxDatabase DB01 -IssueWarningQuota 4.5GB -ProhibitSendQuota 5GB "
            "-ProhibitSendReceiveQuota 6GB",
            "Sets DB01's storage quotas, which its mailboxes use by default.",
        ),
    )
    supports_should_process = True

    BATCH_SIZE = 500
    BATCH_SECONDS = 0.05

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self._target: str | None = None
        self._batch: list[MailboxDatabase] = []
        self._batch_started = 0.0
        self._unchanged: list[str] = []
        value = params.get(RPC_PARAMETER)
        if value is not None:
            # Checked once: a bad value is one error, not one per database.
            self._target = self.directory.databases.check_rpc_client_access_server(value)
        self._quotas = quota_values(params)
        self._batched = self._target is not None and params.get("Name") is None and not self._quotas
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        try:
            database = _database(self, params["Identity"])
        except DirectoryError:
            # The databases before this one are written first, as if set one by one:
            # with -ErrorAction Stop this error ends the command.
            self._flush()
            raise
        name = params.get("Name")
        if self._batched:
            assert self._target is not None
            if not self.should_process(database.name):
                return ()
            if database.rpc_client_access_server.lower() == self._target.lower():
                self._unchanged.append(database.name)
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.append(database)
            if (
                len(self._batch) >= self.BATCH_SIZE
                or time.monotonic() - self._batch_started >= self.BATCH_SECONDS
            ):
                self._flush()
            return ()
        same_name = name is None or name.strip() == database.name
        if self._target is None and not self._quotas and same_name:
            self._no_change([database.name])
            return ()
        if self.should_process(database.name):
            self.directory.databases.set(
                database,
                rpc_client_access_server=self._target,
                name=name,
                quota_values=self._quotas,
            )
        return ()

    def stopped(self) -> None:
        self._flush()  # databases already confirmed are written even if the pipeline stops

    def end(self) -> Iterable[Any]:
        self._flush()
        if self._unchanged:
            self._no_change(self._unchanged)
        return ()

    def _no_change(self, names: list[str]) -> None:
        if len(names) == 1:
            what = f"'{names[0]}'"
        else:
            what = f"{len(names)} databases ({name_list(names)})"
        self.write_warning(
            f"The command completed successfully but no settings of {what} have been modified."
        )

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch or self._target is None:
            return
        databases = self.directory.databases
        try:
            databases.set_rpc_client_access_server(batch, self._target)
            return
        except InvalidValueError as exc:
            if exc.parameter == RPC_PARAMETER:  # the array or server went away meanwhile
                raise self.terminate(exc) from None
        except DirectoryError:
            pass
        for database in batch:  # retried one by one: each error names its database
            try:
                databases.set_rpc_client_access_server(database, self._target)
            except InvalidValueError as exc:
                if exc.parameter == RPC_PARAMETER:
                    raise self.terminate(exc) from None
                self.write_error(exc)
            except DirectoryError as exc:
                self.write_error(exc)


@register
class RemoveMailboxDatabase(Cmdlet):
    name = "Remove-MailboxDatabase"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="database",
            help=IDENTITY_HELP,
        ),
    )
    synopsis = "Removes a mailbox database."
    description = (
        "Removes a mailbox database from the directory. Refused while it holds mailboxes. "
        "As in Exchange, its store is left on disk: a warning says where."
    )
    examples = (
        Example("Remove-MailboxDatabase DB02", "Removes DB02 after confirmation."),
        Example("Remove-MailboxDatabase DB02 -Confirm:$false", "Removes DB02 without asking."),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        database = _database(self, params["Identity"])
        if not self.should_process(database.name):
            return ()
        location = self.directory.databases.remove(database)
        self.write_warning(
            "The specified database has been removed. You must remove the database file "
            f"located in {location} from your computer manually if it exists. Specified "
            f"database: {database.name}"
        )
        return ()


class _MountCmdlet(Cmdlet):
    mount: bool = True
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="database",
            help=IDENTITY_HELP,
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        database = _database(self, params["Identity"])
        if self.should_process(database.name):
            self.directory.databases.set_mounted(database, self.mount)
        return ()


@register
class MountDatabase(_MountCmdlet):
    name = "Mount-Database"
    mount = True
    synopsis = "Mounts a mailbox database."
    description = (
        "Mounts a mailbox database: its users can log on and mail can be delivered to it. "
        "New mailboxes are placed only in mounted databases when -Database is not given."
    )
    examples = (
        Example("Mount-Database DB01", "Mounts DB01."),
        Example("Get-MailboxDatabase -Server MBX01 | Mount-Database", "Mounts MBX01's databases."),
    )


@register
class DismountDatabase(_MountCmdlet):
    name = "Dismount-Database"
    mount = False
    synopsis = "Dismounts a mailbox database."
    description = "Dismounts a mailbox database: its users can't log on until it is mounted."
    examples = (
        Example("Dismount-Database DB01", "Dismounts DB01 after confirmation."),
        Example("Dismount-Database DB01 -Confirm:$false", "Dismounts DB01 without asking."),
    )
    confirm_impact = "High"
