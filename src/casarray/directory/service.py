"""The directory: one object that opens the store and offers the services, one per
object class (`sites`, `servers`, `arrays`, `databases`, `mailboxes`, `components`,
`nlb`, `dns`, `certificates`, `transport`,
`virtual_directories`), plus the topology version and a way to watch it, and
the session secret."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

from sqlalchemy import select

from casarray.config import directory_url
from casarray.directory import validate
from casarray.directory.arrays import ArrayService
from casarray.directory.base import new_guid, utcnow
from casarray.directory.certificates.service import Certificates
from casarray.directory.components import ComponentService
from casarray.directory.databases import DatabaseService
from casarray.directory.dns.service import DnsService
from casarray.directory.errors import InvalidOperationError, InvalidValueError
from casarray.directory.mailboxes import MailboxService
from casarray.directory.migrate import ensure_schema
from casarray.directory.nlb.service import NlbService
from casarray.directory.objects import Names, Organization
from casarray.directory.schema import AcceptedDomainRow, OrganizationRow
from casarray.directory.servers import ServerService
from casarray.directory.sites import SiteService
from casarray.directory.store import NOTIFY_CHANNEL, Store
from casarray.directory.transport import accepted_domains
from casarray.directory.transport.service import TransportService
from casarray.directory.verified_logins import VerifiedLogins
from casarray.directory.virtual_directories import VirtualDirectoryService

SESSION_SECRET_BYTES = 32


class Directory:
    """casarray's Active Directory: the topology every other part reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._names: Names | None = None
        self.sites = SiteService(self)
        self.servers = ServerService(self)
        self.arrays = ArrayService(self)
        self.databases = DatabaseService(self)
        self.mailboxes = MailboxService(self)
        self.verified_logins = VerifiedLogins(self)
        self.components = ComponentService(self)
        self.nlb = NlbService(self)
        self.dns = DnsService(self)
        self.certificates = Certificates(self)
        self.transport = TransportService(self)
        self.virtual_directories = VirtualDirectoryService(self)
        self._session_secret: bytes | None = None

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        organization: str = "Lab",
        domain: str = "lab.net",
    ) -> Directory:
        """Open the directory at `url` (default: `$CASARRAY_DIRECTORY` or the SQLite file
        in `$CASARRAY_HOME`), creating the schema and the organization if it is empty."""
        store = Store(directory_url(url))
        ensure_schema(store)
        directory = cls(store)
        directory._ensure_organization(organization, domain)
        return directory

    def close(self) -> None:
        self.store.dispose()

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- organization ---------------------------------------------------------

    def _ensure_organization(self, name: str, domain: str) -> None:
        with self.store.read() as session:
            if session.scalars(select(OrganizationRow)).first() is not None:
                return
        name = validate.display_name("Organization", name)
        domain = validate.fqdn("Domain", domain).lower()
        with self.store.write() as session:
            if session.scalars(select(OrganizationRow)).first() is not None:
                return
            session.add(
                OrganizationRow(
                    id=1,
                    guid=new_guid(),
                    name=name,
                    ad_domain=domain,
                    when_created=utcnow(),
                    session_secret=secrets.token_bytes(SESSION_SECRET_BYTES),
                )
            )
            session.add(accepted_domains.new_row(domain, default=True))

    @property
    def names(self) -> Names:
        """The naming context (organization name and AD domain); fixed once created."""
        if self._names is None:
            with self.store.read() as session:
                org = session.scalars(select(OrganizationRow)).one()
                self._names = Names(org.name, org.ad_domain)
        return self._names

    def session_secret(self) -> bytes:
        """The organization's session secret: 32 random bytes made once with the
        organization (or by the migration that brought it, revision 0003) and the same
        for every array member, so a session cookie signed by one Client Access server
        is accepted by all. It is a shared secret kept in the directory database:
        whoever can read that database can forge sessions, so protect it (file
        permissions on the SQLite file, roles on PostgreSQL)."""
        if self._session_secret is None:
            with self.store.read() as session:
                secret = session.scalars(select(OrganizationRow.session_secret)).one()
            self._session_secret = bytes(secret)
        return self._session_secret

    def organization(self) -> Organization:
        with self.store.read() as session:
            org = session.scalars(select(OrganizationRow)).one()
            domains = list(
                session.scalars(select(AcceptedDomainRow).order_by(AcceptedDomainRow.id))
            )
        default = next((d.domain for d in domains if d.is_default), org.ad_domain)
        return Organization(
            guid=org.guid,
            name=org.name,
            ad_domain=org.ad_domain,
            # a wildcard accepted domain ("*.contoso.com") names no one domain: it takes
            # mail (Directory.transport.accepted) but holds no addresses or DNS zone
            accepted_domains=tuple(d.domain for d in domains if not d.domain.startswith("*.")),
            default_domain=default,
            when_created=org.when_created,
        )

    def add_accepted_domain(self, domain: str, *, default: bool = False) -> Organization:
        domain = validate.fqdn("DomainName", domain).lower()
        with self.store.write() as session:
            existing = session.scalars(
                select(AcceptedDomainRow).where(
                    (AcceptedDomainRow.domain == domain) | (AcceptedDomainRow.name_key == domain)
                )
            ).first()
            if existing is not None:
                raise InvalidOperationError(
                    f"The accepted domain '{domain}' already exists.", target=domain
                )
            if default:
                for row in session.scalars(select(AcceptedDomainRow)):
                    row.is_default = False
            session.add(accepted_domains.new_row(domain, default=default))
        return self.organization()

    def accepted_domain(self, domain: str, parameter: str) -> str:
        """`domain` if it is an accepted domain, else an error naming the parameter."""
        org = self.organization()
        if domain.lower() not in org.accepted_domains:
            raise InvalidValueError(
                parameter,
                domain,
                "is not an accepted domain of the organization "
                f"({', '.join(org.accepted_domains)}).",
            )
        return domain.lower()

    # -- topology version -----------------------------------------------------

    def topology_version(self) -> int:
        """A number that grows with every change to the directory."""
        return self.store.topology_version()

    def wait_for_change(self, since: int, timeout: float, interval: float = 0.1) -> int:
        """Block until the topology version differs from `since` or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            version = self.topology_version()
            if version != since or time.monotonic() >= deadline:
                return version
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    async def watch(self, interval: float = 0.2) -> AsyncIterator[int]:
        """Yield the topology version now and after every change (within `interval`).

        On PostgreSQL a LISTEN connection wakes the watcher at once; polling stays as
        the safety net on both back ends."""
        if self.store.is_postgres:
            async for version in self._watch_postgres(interval):
                yield version
            return
        last = await asyncio.to_thread(self.topology_version)
        yield last
        while True:
            await asyncio.sleep(interval)
            version = await asyncio.to_thread(self.topology_version)
            if version != last:
                last = version
                yield version

    async def _watch_postgres(self, interval: float) -> AsyncIterator[int]:
        import psycopg

        url = self.store.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            last = await asyncio.to_thread(self.topology_version)
            yield last
            while True:
                async for _ in conn.notifies(timeout=interval, stop_after=1):
                    pass
                version = await asyncio.to_thread(self.topology_version)
                if version != last:
                    last = version
                    yield version
