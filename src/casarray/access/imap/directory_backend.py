"""The real IMAP `Backend`: logins checked against the directory, the referral rule,
and the user's mailbox opened in their mailbox database's store.

A login goes: throttled? (failures per user and per client address) -> the password
(`directory.mailboxes.authenticate`, argon2; the IMAP session calls `login` from its
worker thread, so the hash never blocks the event loop) -> the user's database and
its preferred endpoint (`directory.endpoints`, the same rule Autodiscover, autoconfig
and web mail use): served here when this server is that endpoint or a member of that
array (or allows cross-site access and the endpoint is in another site), otherwise
referred there (RFC 2221) -> the database mounted? -> the mailbox in its store
(`mailstore.provisioning.open_mailbox`: created there at the first logon).

Everything comes from the directory and the mailbox stores, so any number of Client
Access processes serve the same users. What is cached here (the referral rule's view
of the topology and the database records) is dropped as soon as the directory's
topology version changes; every login reads the version, so a change made by any
process applies to the next login. Failed-login counters are kept in the directory
(`directory.lockout`), so every Client Access server and process counts the same
failures.
"""

from __future__ import annotations

import functools
import logging
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casarray.access.imap.backend import (
    LoginFailed,
    LoginOk,
    LoginReferred,
    LoginResult,
    LoginThrottled,
    LoginUnavailable,
)
from casarray.directory.endpoints import Endpoint, NoEndpointError, database_endpoint, serves
from casarray.directory.errors import DirectoryError
from casarray.directory.lockout import DirectoryLockout, Lockout, MemoryLockout
from casarray.directory.rpc_access import RpcAccess
from casarray.mailstore.provisioning import database_store, open_mailbox

if TYPE_CHECKING:
    from casarray.directory import Directory, MailboxDatabase, Server
    from casarray.mailstore.interface import DatabaseStore, MailboxStore

log = logging.getLogger("casarray.imap")

StoreOpener = Callable[["MailboxDatabase"], "DatabaseStore"]


def referral_url(user: str, server: str) -> str:
    """The RFC 2221 / RFC 5092 IMAP URL that sends `user` to `server`."""
    enc_user = urllib.parse.quote(user, safe="!$&'()*+,=-._~")
    return f"imap://{enc_user}@{server.rstrip('.')}/"


# -- throttling ------------------------------------------------------------------------

# The in-memory lockout, under the name the IMAP layer's tests and fakes know.
LoginThrottle = MemoryLockout


# -- the backend -----------------------------------------------------------------------


@dataclass
class _Snapshot:
    """Directory lookups valid for one topology version."""

    version: int
    server: Server  # this Client Access server's record
    databases: dict[str, MailboxDatabase] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # by database GUID
    storage_limits: dict[str, int | None] = field(default_factory=dict)  # by mailbox GUID


class DirectoryBackend:
    """The IMAP `Backend` of the Client Access server `server`."""

    def __init__(
        self,
        directory: Directory,
        server: str,
        *,
        open_store: StoreOpener | None = None,
        throttle: Lockout | None = None,
    ) -> None:
        self.directory = directory
        self.throttle: Lockout = (
            throttle if throttle is not None else DirectoryLockout(directory.store)
        )
        self._open_store = open_store or database_store
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._stores: dict[str, tuple[str, DatabaseStore]] = {}
        self._retired: list[DatabaseStore] = []
        policy = directory.servers.rpc_access_policy(server)
        self._server = policy.server
        self._server_fqdn = policy.server_fqdn

    @property
    def server_fqdn(self) -> str:
        return self._server_fqdn

    @property
    def server_name(self) -> str:
        return self._server

    # -- directory lookups, cached per topology version -----------------------------

    def topology_changed(self, version: int) -> None:
        """Drop what was read from an older topology (the directory watcher calls it)."""
        with self._lock:
            if self._snapshot is not None and self._snapshot.version != version:
                self._snapshot = None

    def _current(self) -> _Snapshot:
        version = self.directory.topology_version()
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and snapshot.version == version:
                return snapshot
        snapshot = _Snapshot(version, self.directory.servers.one(self._server))
        with self._lock:
            self._snapshot = snapshot
        return snapshot

    def _database(self, snapshot: _Snapshot, name: str) -> MailboxDatabase:
        database = snapshot.databases.get(name)
        if database is None:
            database = self.directory.databases.one(name)
            snapshot.databases[name] = database
        return database

    def _endpoint(self, snapshot: _Snapshot, database: MailboxDatabase) -> Endpoint:
        endpoint = snapshot.endpoints.get(database.guid)
        if endpoint is None:
            endpoint = database_endpoint(self.directory, database)
            snapshot.endpoints[database.guid] = endpoint
        return endpoint

    def _decide(self, snapshot: _Snapshot, endpoint: Endpoint) -> RpcAccess:
        """Serve the user here, or refer them to their preferred endpoint."""
        if not serves(snapshot.server, endpoint):
            return RpcAccess.REFER
        if snapshot.server.site.lower() != endpoint.site.lower():
            return RpcAccess.CROSS_SITE
        return RpcAccess.SERVE

    def _database_store(self, database: MailboxDatabase) -> DatabaseStore:
        with self._lock:
            held = self._stores.get(database.guid)
            if held is not None and held[0] == database.store_location:
                return held[1]
        store = self._open_store(database)
        with self._lock:
            held = self._stores.get(database.guid)
            if held is not None and held[0] == database.store_location:
                self._retired.append(store)  # another thread opened it meanwhile
                return held[1]
            if held is not None:
                self._retired.append(held[1])  # moved: sessions may still use the old one
            self._stores[database.guid] = (database.store_location, store)
        return store

    # -- Backend ----------------------------------------------------------------------

    def login(self, user: str, password: str, client_address: str) -> LoginResult:
        """Check a login (blocking: argon2 and directory reads; call from a worker)."""
        retry = self.throttle.retry_after(user, client_address)
        if retry is not None:
            log.info(
                "%s login %r from %s: throttled (%.0f s)", self._server, user, client_address, retry
            )
            return LoginThrottled(retry_after=retry)
        # A login verified lately (by any process) skips argon2: `directory.verified_logins`.
        check = self.directory.mailboxes.check_password(user, password)
        mailbox = check.mailbox
        if mailbox is None:
            self.throttle.failed(user, client_address)
            log.info("%s login %r from %s: failed", self._server, user, client_address)
            return LoginFailed()
        self.throttle.succeeded(user)
        try:
            snapshot = self._current()
            database = self._database(snapshot, mailbox.database)
            endpoint = self._endpoint(snapshot, database)
        except NoEndpointError as exc:
            log.warning("%s login %r: %s", self._server, user, exc.message)
            return LoginUnavailable(exc.message)
        except DirectoryError as exc:
            log.warning("%s login %r: directory lookup failed: %s", self._server, user, exc)
            return LoginUnavailable(f"The mailbox database can't be found: {exc.message}")
        decision = self._decide(snapshot, endpoint)
        if decision is RpcAccess.REFER:
            log.info(
                "%s login %r from %s: referred to %s (database %s, %s)",
                self._server,
                user,
                client_address,
                endpoint.fqdn,
                database.name,
                endpoint.why,
            )
            return LoginReferred(url=referral_url(user, endpoint.fqdn), server=endpoint.fqdn)
        if not database.mounted:
            log.info(
                "%s login %r from %s: database %s is dismounted",
                self._server,
                user,
                client_address,
                database.name,
            )
            return LoginUnavailable(f"The mailbox database {database.name} is dismounted.")
        try:
            # Made in its database with the default folders at first use (first logon).
            store = open_mailbox(database, mailbox.guid, store=self._database_store(database))
        except Exception as exc:
            log.exception(
                "%s login %r: mailbox database %s can't be opened",
                self._server,
                user,
                database.name,
            )
            return LoginUnavailable(
                f"The mailbox database {database.name} can't be reached ({type(exc).__name__})."
            )
        log.info(
            "%s login %r from %s: ok (%s, database %s%s%s)",
            self._server,
            user,
            client_address,
            mailbox.primary_smtp_address,
            database.name,
            ", cross-site" if decision is RpcAccess.CROSS_SITE else "",
            ", verified lately" if check.remembered else "",
        )
        return LoginOk(
            user=mailbox.primary_smtp_address,
            mailbox=store,
            storage_limit=functools.partial(self._storage_limit, mailbox.guid),
        )

    def _storage_limit(self, mailbox_guid: str) -> int | None:
        """The mailbox's ProhibitSendReceiveQuota now (its own or its database's), read
        once per topology version (Set-Mailbox and Set-MailboxDatabase bump it)."""
        snapshot = self._current()
        if mailbox_guid not in snapshot.storage_limits:
            limits = self.directory.mailboxes.quota_limits(mailbox_guid)
            snapshot.storage_limits[mailbox_guid] = limits.prohibit_send_receive
        return snapshot.storage_limits[mailbox_guid]

    def mailbox_of(self, user: str) -> MailboxStore | None:
        """Another user's mailbox (URLFETCH of a URL they authorized): found by address,
        alias or UPN, in its database if that is mounted; None otherwise."""
        try:
            mailbox = self.directory.mailboxes.one(user)
            database = self._database(self._current(), mailbox.database)
        except DirectoryError:
            return None
        if not database.mounted:
            return None
        try:
            return open_mailbox(database, mailbox.guid, store=self._database_store(database))
        except Exception:
            log.exception("%s: the mailbox of %r can't be opened", self._server, user)
            return None

    def close(self) -> None:
        """Close the mailbox database stores this backend opened."""
        with self._lock:
            stores = [store for _, store in self._stores.values()] + self._retired
            self._stores.clear()
            self._retired = []
        for store in stores:
            try:
                store.close()
            except Exception:
                log.exception("closing a mailbox database store")
