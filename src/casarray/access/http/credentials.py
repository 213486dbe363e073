"""Verified HTTP Basic credentials, remembered for a short while.

Outlook sends Basic credentials with every Autodiscover request and an API client with
every call; checking each against the argon2 hash costs tens of milliseconds of CPU by
design. Like IIS's token cache (UserTokenTTL), a Client Access server remembers a
login and password it verified for `ttl` seconds (60 by default), per process.

What is kept is an HMAC of the login and password under a key made at random in this
process (never the password), and the mailbox it verified to. Every entry is dropped
when the directory's topology version changes (a password set with Set-Mailbox, a
mailbox disabled or removed), so a changed password stops working within a second, as
the directory watcher reports the change (without a watcher, the version is read per
request, still far cheaper than argon2). Failed logins are never remembered: they go
to the throttle.

NTLM logins (`ntlm`) are remembered the same way, for the same time, and forgotten on
the same changes: after a handshake verified, the user's mailbox and NT hash as the
directory gave them, by an HMAC of the login, so the next handshake (a client repeats
it per request) skips the directory read and the unsealing. Only a handshake that
verifies against the remembered hash succeeds from it; the hash stays in this
process's memory, where every handshake puts it anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from casarray.directory import Mailbox
    from casarray.directory.mailboxes import NtCredentials

DEFAULT_TTL = 60.0
MAX_ENTRIES = 10_000


class CredentialCache:
    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[float, Mailbox]] = OrderedDict()
        self._nt_entries: OrderedDict[bytes, tuple[float, NtCredentials]] = OrderedDict()
        self._version: int | None = None
        # True once a directory watcher feeds the versions (the runner's); else the
        # caller reads the version itself before trusting an entry (`authenticate`).
        self.followed = False
        # Password checks under way, by key: requests with the same credentials wait
        # for the one check (used from the event loop's thread only).
        self.checking: dict[bytes, asyncio.Future[Mailbox | None]] = {}

    def key(self, login: str, password: str) -> bytes:
        """What identifies these credentials here (an HMAC, not the password)."""
        return self._digest(login, password)

    def _digest(self, login: str, password: str) -> bytes:
        message = login.strip().lower().encode() + b"\0" + password.encode("utf-8", "replace")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, login: str, password: str) -> Mailbox | None:
        """The mailbox these credentials verified to lately, or None."""
        if self.ttl <= 0:
            return None
        digest = self._digest(login, password)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] <= self.clock():
                del self._entries[digest]
                return None
            return entry[1]

    def put(self, login: str, password: str, mailbox: Mailbox) -> None:
        if self.ttl <= 0:
            return
        digest = self._digest(login, password)
        with self._lock:
            self._entries[digest] = (self.clock() + self.ttl, mailbox)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get_nt(self, login: str) -> NtCredentials | None:
        """The mailbox and NT hash an NTLM login of `login` verified against lately."""
        if self.ttl <= 0:
            return None
        digest = self._digest("ntlm\0" + login, "")
        with self._lock:
            entry = self._nt_entries.get(digest)
            if entry is None:
                return None
            if entry[0] <= self.clock():
                del self._nt_entries[digest]
                return None
            return entry[1]

    def put_nt(self, login: str, credentials: NtCredentials) -> None:
        if self.ttl <= 0:
            return
        digest = self._digest("ntlm\0" + login, "")
        with self._lock:
            self._nt_entries[digest] = (self.clock() + self.ttl, credentials)
            self._nt_entries.move_to_end(digest)
            while len(self._nt_entries) > self.max_entries:
                self._nt_entries.popitem(last=False)

    def forget_nt(self, login: str) -> None:
        with self._lock:
            self._nt_entries.pop(self._digest("ntlm\0" + login, ""), None)

    def topology_changed(self, version: int) -> None:
        """Forget everything when the directory changed (call from the watcher)."""
        with self._lock:
            if self._version is not None and version != self._version:
                self._entries.clear()
                self._nt_entries.clear()
            self._version = version

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nt_entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class AnswerCache:
    """Answers computed from the directory (an Autodiscover response, say), kept until
    the topology version changes, per process; at most `max_entries` (oldest go)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[object, bytes] = OrderedDict()
        self._version: int | None = None

    def get(self, key: object) -> bytes | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: object, value: bytes, version: int | None) -> None:
        """Keep `value` if the topology is still at `version` (read before computing)."""
        with self._lock:
            if version is None or version != self._version:
                return
            self._entries[key] = value
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    @property
    def version(self) -> int | None:
        return self._version

    def topology_changed(self, version: int) -> None:
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version
