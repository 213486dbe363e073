"""The recipients and users of the organization, as the transport needs them: whether
an address is a mailbox's (RCPT TO), a submission login checked with the directory's
password and lockout rules (AUTH, the same counters IMAP and HTTP use) or an Exchange
server's computer account (`CAS01$`, `directory.server_credentials`), and a
recipient's mailbox opened in its database's store (delivery).

Every method is blocking (directory reads, argon2, SQLite): call it from a worker
thread. The protocols let the receive service and delivery be tested without a
directory.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from casarray.errors import CasarrayError

if TYPE_CHECKING:
    from casarray.directory import Directory, Mailbox, MailboxDatabase
    from casarray.directory.lockout import Lockout
    from casarray.mailstore.interface import DatabaseStore, MailboxStore

log = logging.getLogger("casarray.transport")


@dataclass(frozen=True)
class AuthOutcome:
    user: str | None  # the mailbox's primary address (a server's login) when it is good
    retry_after: float | None = None  # throttled: seconds to wait
    server: str | None = None  # the Exchange server that logged in (`CAS01$`), by name


class Recipients(Protocol):
    def exists(self, address: str) -> bool | None:
        """Whether a mailbox has `address`; None when it can't be told now."""
        ...

    def known(self, address: str) -> bool:
        """Whether a mailbox is known to have `address` without a lookup (so the
        receive service needs no worker thread to say so)."""
        ...


class Authenticator(Protocol):
    def authenticate(self, login: str, password: str, client_address: str) -> AuthOutcome: ...


class TemporaryFailure(CasarrayError):
    """A delivery that may succeed later (the database dismounted, a store error)."""

    category = "ResourceUnavailable"


class PermanentFailure(CasarrayError):
    """A delivery that can't succeed (no such mailbox any more)."""

    category = "ObjectNotFound"


class Mailboxes(Protocol):
    def open(self, address: str) -> MailboxStore:
        """The mailbox of `address` in its database's store. TemporaryFailure or
        PermanentFailure."""
        ...

    def storage_limit(self, address: str) -> int | None:
        """The mailbox's ProhibitSendReceiveQuota in bytes (its own or its
        database's); None: unlimited."""
        ...


class DirectoryMailboxes:
    """`Recipients`, `Authenticator` and `Mailboxes` on the directory.

    Mailboxes found and opened and database records are kept until `topology_changed` (every
    write to the directory bumps its topology version; the process calls it when the
    version changes), so a delivery costs no directory query. An address not found is
    always looked up again, so a mailbox made a moment ago gets its mail."""

    def __init__(self, directory: Directory, *, throttle: Lockout | None = None) -> None:
        from casarray.directory.lockout import DirectoryLockout

        self.directory = directory
        self.throttle: Lockout = throttle or DirectoryLockout(directory.store)
        self._lock = threading.Lock()
        self._stores: dict[str, tuple[str, DatabaseStore]] = {}
        self._mailboxes: dict[str, Mailbox] = {}
        self._databases: dict[str, MailboxDatabase] = {}
        self._limits: dict[str, int | None] = {}
        self._opened: dict[str, tuple[str, MailboxStore]] = {}  # by database/mailbox

    def topology_changed(self) -> None:
        """Forget the mailboxes, databases and quotas read so far."""
        with self._lock:
            self._mailboxes.clear()
            self._databases.clear()
            self._limits.clear()
            self._opened.clear()

    def _mailbox(self, address: str) -> Mailbox | None:
        """The mailbox whose primary address is `address`, or None. DirectoryError when
        the directory can't be read."""
        from casarray.directory.errors import NotFoundError

        key = address.strip().lower()
        with self._lock:
            known = self._mailboxes.get(key)
        if known is not None:
            return known
        try:
            mailbox = self.directory.mailboxes.one(address)
        except NotFoundError:
            return None
        if mailbox.primary_smtp_address.lower() != key:
            return None  # an alias or a display name, not an address
        with self._lock:
            self._mailboxes[key] = mailbox
        return mailbox

    def _database(self, name: str) -> MailboxDatabase:
        with self._lock:
            known = self._databases.get(name)
        if known is not None:
            return known
        database = self.directory.databases.one(name)
        if database.mounted:  # a dismounted one is read again at the next delivery
            with self._lock:
                self._databases[name] = database
        return database

    def known(self, address: str) -> bool:
        with self._lock:
            return address.strip().lower() in self._mailboxes

    def exists(self, address: str) -> bool | None:
        from casarray.directory.errors import DirectoryError

        try:
            return self._mailbox(address) is not None
        except DirectoryError as exc:
            log.warning("recipient %r can't be looked up: %s", address, exc)
            return None

    def authenticate(self, login: str, password: str, client_address: str) -> AuthOutcome:
        from casarray.directory import server_credentials

        retry = self.throttle.retry_after(login, client_address)
        if retry is not None:
            return AuthOutcome(None, retry)
        if server_credentials.server_name_of(login) is not None:
            # an Exchange server's computer account (the receive service took it only
            # on a connector with ExchangeServers, after STARTTLS)
            server = server_credentials.check(self.directory, login, password)
            if server is None:
                self.throttle.failed(login, client_address)
                return AuthOutcome(None)
            self.throttle.succeeded(login)
            return AuthOutcome(server_credentials.login_of(server.name), server=server.name)
        mailbox = self.directory.mailboxes.check_password(login, password).mailbox
        if mailbox is None:
            self.throttle.failed(login, client_address)
            return AuthOutcome(None)
        self.throttle.succeeded(login)
        return AuthOutcome(mailbox.primary_smtp_address)

    def _store(self, database: MailboxDatabase) -> DatabaseStore:
        from casarray.mailstore.provisioning import database_store

        with self._lock:
            held = self._stores.get(database.guid)
            if held is not None and held[0] == database.store_location:
                return held[1]
        store = database_store(database)
        with self._lock:
            self._stores[database.guid] = (database.store_location, store)
        return store

    def open(self, address: str) -> MailboxStore:
        from casarray.directory.errors import DirectoryError, NotFoundError
        from casarray.mailstore.provisioning import open_mailbox

        try:
            mailbox = self._mailbox(address)
            if mailbox is None:
                raise PermanentFailure(f"550 5.1.1 No mailbox has the address {address}")
            database = self._database(mailbox.database)
        except NotFoundError as exc:
            raise TemporaryFailure(f"The mailbox's database can't be found: {exc}") from exc
        except DirectoryError as exc:
            raise TemporaryFailure(f"The directory can't be read: {exc}") from exc
        if not database.mounted:
            raise TemporaryFailure(f"The mailbox database {database.name} is dismounted")
        key = f"{database.guid}/{mailbox.guid}"
        with self._lock:
            opened = self._opened.get(key)
        if opened is not None and opened[0] == database.store_location:
            return opened[1]
        try:
            store = open_mailbox(database, mailbox.guid, store=self._store(database))
        except Exception as exc:
            raise TemporaryFailure(
                f"The mailbox database {database.name} can't be opened ({exc})"
            ) from exc
        with self._lock:
            self._opened[key] = (database.store_location, store)
        return store

    def storage_limit(self, address: str) -> int | None:
        from casarray.directory.errors import DirectoryError

        mailbox = self._mailbox(address)
        if mailbox is None:
            return None
        with self._lock:
            if mailbox.guid in self._limits:
                return self._limits[mailbox.guid]
        try:
            limit = self.directory.mailboxes.quota_limits(mailbox.guid).prohibit_send_receive
        except DirectoryError as exc:
            raise TemporaryFailure(f"The mailbox's quota can't be read: {exc}") from exc
        with self._lock:
            self._limits[mailbox.guid] = limit
        return limit

    def close(self) -> None:
        with self._lock:
            stores = [store for _, store in self._stores.values()]
            self._stores.clear()
        for store in stores:
            try:
                store.close()
            except Exception:
                log.exception("closing a mailbox database store")
