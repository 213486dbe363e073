"""Mailbox databases and their RpcClientAccessServer: the name their users' clients
connect to.

A new database gets its site's array FQDN when the site has an array, else the FQDN of
the site's first-installed Client Access server, else its own server's FQDN. Creating
an array changes no existing database: that is `Set-MailboxDatabase
-RpcClientAccessServer`, which accepts only the FQDN of a Client Access server or of an
array.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casarray.config import casarray_home
from casarray.directory import identity, quotas, store_locations, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import (
    ConflictError,
    InUseError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.objects import MailboxDatabase
from casarray.directory.schema import (
    ClientAccessArrayRow,
    MailboxDatabaseRow,
    MailboxRow,
    ServerRow,
    SiteRow,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

DATABASE = identity.Kind(
    label="mailbox database",
    row=MailboxDatabaseRow,
    keys=("name_key",),
    dn=lambda names, row: names.database_dn(row.name),
    legacy_dn=lambda names, row: names.database_legacy_dn(row.name),
    describe=lambda row: row.name,
)

_COLUMNS = (MailboxDatabaseRow, ServerRow.name, ServerRow.fqdn, SiteRow.name)


def _joined(stmt: Any) -> Any:
    return stmt.join(ServerRow, MailboxDatabaseRow.server_id == ServerRow.id).join(
        SiteRow, ServerRow.site_id == SiteRow.id
    )


def row_quotas(row: MailboxDatabaseRow | MailboxRow) -> quotas.Quotas:
    return quotas.Quotas(
        row.issue_warning_quota, row.prohibit_send_quota, row.prohibit_send_receive_quota
    )


def set_row_quotas(row: MailboxDatabaseRow | MailboxRow, values: quotas.Quotas) -> None:
    (
        row.issue_warning_quota,
        row.prohibit_send_quota,
        row.prohibit_send_receive_quota,
    ) = values.values()


def parse_quotas(values: Mapping[str, object] | None) -> dict[str, int | None]:
    """Quota parameters as written, in bytes (None: Unlimited); unknown names are a
    programming error."""
    if not values:
        return {}
    unknown = set(values) - set(quotas.ORDER)
    if unknown:
        raise ValueError(f"not quota parameters: {sorted(unknown)}")
    return {name: quotas.parse_size(name, value) for name, value in values.items()}


class DatabaseService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def _record(
        self, row: MailboxDatabaseRow, server: str, fqdn: str, site: str
    ) -> MailboxDatabase:
        names = self.dir.names
        return MailboxDatabase(
            guid=row.guid,
            name=row.name,
            server=server,
            server_fqdn=fqdn,
            site=site,
            rpc_client_access_server=row.rpc_client_access_server,
            store_location=row.store_location,
            mounted=row.mounted,
            exchange_legacy_dn=names.database_legacy_dn(row.name),
            distinguished_name=names.database_dn(row.name),
            when_created=row.when_created,
            quotas=row_quotas(row),
        )

    def _records(self, session: Session, stmt: Any) -> list[MailboxDatabase]:
        return [self._record(*r) for r in session.execute(stmt)]

    def resolve_row(self, session: Session, database: object) -> MailboxDatabaseRow:
        return identity.resolve(session, self.dir.names, DATABASE, database)

    def default_rpc_client_access_server(self, session: Session, server: ServerRow) -> str:
        """The name Exchange gives a new database of `server`: see the module docstring."""
        array = session.scalars(
            select(ClientAccessArrayRow).where(ClientAccessArrayRow.site_id == server.site_id)
        ).first()
        if array is not None:
            return array.fqdn
        first_cas = self.dir.servers.client_access_rows(session, server.site_id)
        if first_cas:
            return first_cas[0].fqdn
        return server.fqdn

    def rpc_client_access_target(self, session: Session, value: str) -> str:
        """The canonical FQDN `value` names if it is a CAS or an array; else an error."""
        text = str(value).strip().rstrip(".")
        key = text.lower()
        array = session.scalars(
            select(ClientAccessArrayRow.fqdn).where(ClientAccessArrayRow.fqdn_key == key)
        ).first()
        if array is not None:
            return array
        server = session.scalars(select(ServerRow).where(ServerRow.fqdn_key == key)).first()
        if server is not None:
            if not server.client_access:
                raise InvalidValueError(
                    "RpcClientAccessServer",
                    value,
                    f"names server {server.name}, which doesn't have the Client Access role.",
                )
            return server.fqdn
        by_name = session.scalars(select(ServerRow).where(ServerRow.name_key == key)).first()
        if by_name is not None and by_name.client_access:
            raise InvalidValueError(
                "RpcClientAccessServer",
                value,
                f"is a server name; use its FQDN, {by_name.fqdn}.",
            )
        by_array_name = session.scalars(
            select(ClientAccessArrayRow).where(ClientAccessArrayRow.name_key == key)
        ).first()
        if by_array_name is not None:
            raise InvalidValueError(
                "RpcClientAccessServer",
                value,
                f"is an array name; use its FQDN, {by_array_name.fqdn}.",
            )
        raise InvalidValueError(
            "RpcClientAccessServer",
            value,
            "is not the FQDN of a Client Access server or of a client access array.",
        )

    def check_rpc_client_access_server(self, value: str) -> str:
        """The canonical FQDN `value` names if it may be a database's
        RpcClientAccessServer (a Client Access server's or an array's FQDN); else the
        InvalidValueError that Set-MailboxDatabase would raise. Reads only."""
        with self.dir.store.read() as session:
            return self.rpc_client_access_target(session, value)

    def new(
        self,
        name: str,
        server: object,
        *,
        store_location: str | None = None,
        mounted: bool = False,
    ) -> MailboxDatabase:
        """New-MailboxDatabase. Like Exchange, the new database is left dismounted
        unless `mounted`."""

        name = validate.display_name("Name", name, 64)
        with self.dir.store.write() as session:
            server_row = self.dir.servers.resolve_row(session, server)
            if not server_row.mailbox:
                raise InvalidValueError(
                    "Server",
                    server_row.name,
                    "doesn't have the Mailbox role; a mailbox database needs a Mailbox server.",
                )
            existing = session.scalars(
                select(MailboxDatabaseRow).where(MailboxDatabaseRow.name_key == name.lower())
            ).first()
            if existing is not None:
                raise ConflictError(
                    f"The mailbox database '{existing.name}' already exists on server "
                    f"{existing.server.name}.",
                    conflicting=existing.name,
                    target=name,
                )
            rpc = self.default_rpc_client_access_server(session, server_row)
            location = store_location or self.default_store_location(session, name)
            row = MailboxDatabaseRow(
                guid=new_guid(),
                name=name,
                name_key=name.lower(),
                server_id=server_row.id,
                rpc_client_access_server=rpc,
                rpc_client_access_server_key=rpc.lower(),
                store_location=location,
                mounted=mounted,
                when_created=utcnow(),
            )
            set_row_quotas(row, quotas.DATABASE_DEFAULTS)
            session.add(row)
            session.flush()
            return self._record(
                row,
                server_row.name,
                server_row.fqdn,
                self.dir.servers.site_name(session, server_row.site_id),
            )

    def default_store_location(self, session: Session, name: str) -> str:
        """Where New-MailboxDatabase puts database `name` without -EdbFilePath: beside
        the directory. A directory on PostgreSQL gets it a schema of its own in the
        same PostgreSQL database (`store_locations.schema_for`: "Sales-DB" ->
        sales_db; never a schema another database's location names); a directory on
        SQLite, the file `$CASARRAY_HOME/databases/<name>.db`."""
        if self.dir.store.dialect != "postgresql":
            return str(casarray_home() / "databases" / f"{name}.db")
        taken = session.scalars(select(MailboxDatabaseRow.store_location)).all()
        return store_locations.default_postgres_location(self.dir.store.url, name, taken)

    def get(
        self,
        database: object | None = None,
        *,
        server: object | None = None,
        site: object | None = None,
    ) -> list[MailboxDatabase]:
        with self.dir.store.read() as session:
            stmt = _joined(select(*_COLUMNS)).order_by(MailboxDatabaseRow.name_key)
            if database is not None and server is None and site is None:
                hit = identity.resolve(session, self.dir.names, DATABASE, database, stmt)
                return [self._record(*hit)]
            if database is not None:
                stmt = stmt.where(MailboxDatabaseRow.id == self.resolve_row(session, database).id)
            if server is not None:
                server_id = self.dir.servers.resolve_row(session, server).id
                stmt = stmt.where(MailboxDatabaseRow.server_id == server_id)
            if site is not None:
                stmt = stmt.where(ServerRow.site_id == self.dir.sites.resolve_row(session, site).id)
            return self._records(session, stmt)

    def one(self, database: object) -> MailboxDatabase:
        return self.get(database)[0]

    def count(self) -> int:
        with self.dir.store.read() as session:
            return session.scalar(select(func.count()).select_from(MailboxDatabaseRow)) or 0

    def set_rpc_client_access_server(
        self, databases: object | Iterable[object] | None, value: str
    ) -> int:
        """Set-MailboxDatabase -RpcClientAccessServer on one database, on many, or (with
        None) on all of them, in one transaction. Returns how many were set."""
        with self.dir.store.write() as session:
            target = self.rpc_client_access_target(session, value)
            values = {
                "rpc_client_access_server": target,
                "rpc_client_access_server_key": target.lower(),
            }
            if databases is None:
                result = session.execute(update(MailboxDatabaseRow).values(**values))
                return int(getattr(result, "rowcount", 0) or 0)  # a CursorResult's
            if isinstance(databases, (str, MailboxDatabase)) or not isinstance(databases, Iterable):
                databases = [databases]
            ids = self._resolve_ids(session, databases)
            for chunk in _chunks(sorted(ids), 500):
                session.execute(
                    update(MailboxDatabaseRow)
                    .where(MailboxDatabaseRow.id.in_(chunk))
                    .values(**values)
                )
            return len(ids)

    def _resolve_ids(self, session: Session, databases: Iterable[object]) -> set[int]:
        """Row ids of many identities; objects and GUIDs are looked up 500 at a time."""
        ids: set[int] = set()
        by_guid: dict[str, object] = {}
        for db in databases:
            guid = getattr(db, "guid", None)
            text = str(guid) if guid is not None else identity.parse_guid(str(db))
            if text is None:
                ids.add(self.resolve_row(session, db).id)
            else:
                by_guid[text] = db
        guids = list(by_guid)
        for start in range(0, len(guids), 500):
            chunk = guids[start : start + 500]
            found = dict(
                session.execute(
                    select(MailboxDatabaseRow.guid, MailboxDatabaseRow.id).where(
                        MailboxDatabaseRow.guid.in_(chunk)
                    )
                ).all()
            )
            for guid in chunk:
                if guid not in found:
                    shown = getattr(by_guid[guid], "name", None) or guid
                    raise NotFoundError(DATABASE.label, str(shown))
                ids.add(found[guid])
        return ids

    def set(
        self,
        database: object,
        *,
        rpc_client_access_server: str | None = None,
        name: str | None = None,
        quota_values: Mapping[str, object] | None = None,
    ) -> MailboxDatabase:
        """Set-MailboxDatabase on one database. `quota_values`: IssueWarningQuota,
        ProhibitSendQuota and ProhibitSendReceiveQuota as written ("2GB", "Unlimited")."""
        new_name = validate.display_name("Name", name, 64) if name is not None else None
        changes = parse_quotas(quota_values)
        with self.dir.store.write() as session:
            row = self.resolve_row(session, database)
            if changes:
                new_quotas = row_quotas(row).with_parameters(changes)
                quotas.check_order(new_quotas)
                set_row_quotas(row, new_quotas)
            if rpc_client_access_server is not None:
                target = self.rpc_client_access_target(session, rpc_client_access_server)
                row.rpc_client_access_server = target
                row.rpc_client_access_server_key = target.lower()
            if new_name is not None and new_name.lower() != row.name_key:
                clash = session.scalars(
                    select(MailboxDatabaseRow).where(
                        MailboxDatabaseRow.name_key == new_name.lower()
                    )
                ).first()
                if clash is not None:
                    raise ConflictError(
                        f"The mailbox database '{clash.name}' already exists.",
                        conflicting=clash.name,
                        target=new_name,
                    )
            if new_name is not None:
                row.name, row.name_key = new_name, new_name.lower()
            guid = row.guid
        return self.one(guid)

    def set_mounted(self, database: object, mounted: bool) -> MailboxDatabase:
        """Mount-Database / Dismount-Database."""
        with self.dir.store.write() as session:
            row = self.resolve_row(session, database)
            row.mounted = mounted
            guid = row.guid
        return self.one(guid)

    def remove(self, database: object) -> str:
        """Remove-MailboxDatabase: refused while it holds mailboxes. Returns the store
        location, which (as in Exchange) is left on disk for the administrator."""
        with self.dir.store.write() as session:
            row = self.resolve_row(session, database)
            holders = list(
                session.scalars(
                    select(MailboxRow.alias)
                    .where(MailboxRow.database_id == row.id)
                    .order_by(MailboxRow.alias_key)
                    .limit(11)
                )
            )
            if holders:
                shown = ", ".join(holders[:10]) + (", ..." if len(holders) > 10 else "")
                raise InUseError(
                    f"The mailbox database '{row.name}' contains one or more mailboxes "
                    f"({shown}). Move or remove them first.",
                    dependents=holders,
                    target=row.name,
                )
            location = row.store_location
            session.delete(row)
            return location

    def store_path(self, database: MailboxDatabase) -> Path | None:
        """The SQLite file of a database stored in one, else None (a URL)."""
        if "://" in database.store_location:
            return None
        return Path(database.store_location)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
