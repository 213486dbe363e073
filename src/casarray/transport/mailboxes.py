"""The recipients and users of the organization, as the transport needs them: whether
an address is a mailbox's (RCPT TO), a submission login checked with the directory's
password and lockout rules (AUTH, the same counters IMAP and HTTP use), and a
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

if TYPE_CHECKING:
    from casarray.directory import Directory, MailboxDatabase
    from casarray.directory.lockout import Lockout
    from casarray.mailstore.interface import DatabaseStore, MailboxStore

log = logging.getLogger("casarray.transport")


@dataclass(frozen=True)
class AuthOutcome:
    user: str | None  # the mailbox's primary address when the login is good
    retry_after: float | None = None  # throttled: seconds to wait


class Recipients(Protocol):
    def exists(self, address: str) -> bool | None:
        """Whether a mailbox has `address`; None when it can't be told now."""
        ...


class Authenticator(Protocol):
    def authenticate(self, login: str, password: str, client_address: str) -> AuthOutcome: ...


class TemporaryFailure(Exception):
    """A delivery that may succeed later (the database dismounted, a store error)."""


class PermanentFailure(Exception):
    """A delivery that can't succeed (no such mailbox any more)."""


class Mailboxes(Protocol):
    def open(self, address: str) -> MailboxStore:
        """The mailbox of `address` in its database's store. TemporaryFailure or
        PermanentFailure."""
        ...


class DirectoryMailboxes:
    """`Recipients`, `Authenticator` and `Mailboxes` on the directory."""

    def __init__(self, directory: Directory, *, throttle: Lockout | None = None) -> None:
        from casarray.directory.lockout import DirectoryLockout

        self.directory = directory
        self.throttle: Lockout = throttle or DirectoryLockout(directory.store)
        self._lock = threading.Lock()
        self._stores: dict[str, tuple[str, DatabaseStore]] = {}

    def exists(self, address: str) -> bool | None:
        from casarray.directory.errors import DirectoryError, NotFoundError

        try:
            mailbox = self.directory.mailboxes.one(address)
        except NotFoundError:
            return False
        except DirectoryError as exc:
            log.warning("recipient %r can't be looked up: %s", address, exc)
            return None
        return mailbox.primary_smtp_address.lower() == address.strip().lower()

    def authenticate(self, login: str, password: str, client_address: str) -> AuthOutcome:
        retry = self.throttle.retry_after(login, client_address)
        if retry is not None:
            return AuthOutcome(None, retry)
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
            mailbox = self.directory.mailboxes.one(address)
            database = self.directory.databases.one(mailbox.database)
        except NotFoundError as exc:
            raise PermanentFailure(f"550 5.1.1 No mailbox has the address {address}") from exc
        except DirectoryError as exc:
            raise TemporaryFailure(f"The directory can't be read: {exc}") from exc
        if mailbox.primary_smtp_address.lower() != address.strip().lower():
            raise PermanentFailure(f"550 5.1.1 No mailbox has the address {address}")
        if not database.mounted:
            raise TemporaryFailure(f"The mailbox database {database.name} is dismounted")
        try:
            return open_mailbox(database, mailbox.guid, store=self._store(database))
        except Exception as exc:
            raise TemporaryFailure(
                f"The mailbox database {database.name} can't be opened ({exc})"
            ) from exc

    def close(self) -> None:
        with self._lock:
            stores = [store for _, store in self._stores.values()]
            self._stores.clear()
        for store in stores:
            try:
                store.close()
            except Exception:
                log.exception("closing a mailbox database store")
