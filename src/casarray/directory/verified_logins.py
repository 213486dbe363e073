"""Logins verified lately, remembered in the directory so any process may skip argon2.

A password check costs argon2id's ~100 ms of CPU on purpose; an IMAP client that
connects again and again (or several at once), and an HTTP client sending Basic
credentials with each request, would pay it every time. Like IIS's token cache
(UserTokenTTL), a verified login is remembered for `ttl` seconds (60): a repeated
login with the same credentials costs one indexed read.

Where: table `verified_login` of the directory, so a login verified by one worker
process (a Client Access server runs several on one port with SO_REUSEPORT) or one
array member is cheap in all of them. What: the key is an HMAC-SHA256 of the login and
password under a key derived from the organization's secret (never the password,
and useless without the secret, which is kept in the same protected database); the
row names the mailbox and a digest of its password hash at verification time.

How long: `ttl` seconds, DEFAULT_TTL unless $CASARRAY_LOGIN_CACHE_SECONDS says
otherwise (0 turns remembering off: every login pays argon2, as `bench/imap.py` shows).

When it is forgotten: an entry matches only the mailbox's current password hash, so a
password change (Set-Mailbox -Password) stops it at once, and that change also
deletes the mailbox's entries; a lockout (`directory.lockout`, blocking the user after
too many failures) deletes the user's entries; and it expires after `ttl`. A wrong
password never matches (it is a different HMAC), and failures are never remembered:
they go to the lockout counters as before, which callers check before this cache.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy.orm import Session

from casarray.directory.errors import DirectoryError
from casarray.directory.schema import VerifiedLoginRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0
TTL_ENV = "CASARRAY_LOGIN_CACHE_SECONDS"
_KEY_LABEL = b"casarray verified-login v1"


def user_key(login: str) -> str:
    """The login as the lockout counts it (`directory.lockout.keys`)."""
    return "user:" + login.strip().lower()


def configured_ttl() -> float:
    """$CASARRAY_LOGIN_CACHE_SECONDS (seconds, 0 for none), else DEFAULT_TTL."""
    value = os.environ.get(TTL_ENV, "").strip()
    if not value:
        return DEFAULT_TTL
    try:
        ttl = float(value)
    except ValueError:
        ttl = -1.0
    if not 0 <= ttl <= 86400:
        raise DirectoryError(
            f"{TTL_ENV} must be a number of seconds from 0 to 86400, not {value!r}."
        )
    return ttl


def password_check(password_hash: str) -> str:
    """A digest of a stored hash: an entry applies only while the hash is unchanged."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


class VerifiedLogins:
    """The directory's remembered logins (thread-safe: state is in the database)."""

    def __init__(
        self,
        directory: Directory,
        ttl: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = directory
        self.ttl = configured_ttl() if ttl is None else ttl
        self.clock = clock
        self._key: bytes | None = None
        # Counted in this process, for logs and tests: logins served from here.
        self.hits = 0

    def _hmac_key(self) -> bytes:
        if self._key is None:
            self._key = hmac.new(self.dir.session_secret(), _KEY_LABEL, hashlib.sha256).digest()
        return self._key

    def digest(self, login: str, password: str) -> str:
        # surrogatepass, not replace: two passwords must never share their bytes
        name = login.strip().lower().encode("utf-8", "surrogatepass")
        message = name + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._hmac_key(), message, hashlib.sha256).hexdigest()

    def valid(self, stored_check: str, password_hash: str, expires: float) -> bool:
        """Whether a row found by `digest` (its `password_check` and `expires`) still
        stands for the mailbox's current password hash `password_hash`."""
        ok = (
            self.ttl > 0
            and expires > self.clock()
            and hmac.compare_digest(stored_check, password_check(password_hash))
        )
        if ok:
            self.hits += 1
        return ok

    def remember(self, login: str, password: str, mailbox_guid: str, password_hash: str) -> None:
        """After argon2 verified the password: remember it for `ttl` seconds. Never
        fails the login: an error only costs the next login its argon2 check."""
        if self.ttl <= 0:
            return
        now = self.clock()
        try:
            with self.dir.store.write_state() as session:
                session.merge(
                    VerifiedLoginRow(
                        key=self.digest(login, password),
                        user_key=user_key(login),
                        mailbox_guid=mailbox_guid,
                        password_check=password_check(password_hash),
                        expires=now + self.ttl,
                    )
                )
                session.execute(delete(VerifiedLoginRow).where(VerifiedLoginRow.expires <= now))
        except Exception:
            log.exception("remembering a verified login failed")

    def forget_mailbox(self, session: Session, mailbox_guid: str) -> None:
        """Forget every login of a mailbox (its password changed), in `session`."""
        session.execute(
            delete(VerifiedLoginRow).where(VerifiedLoginRow.mailbox_guid == mailbox_guid)
        )

    def forget_user(self, session: Session, key: str) -> None:
        """Forget the logins counted under lockout key `key` ("user:alice"), in `session`."""
        session.execute(delete(VerifiedLoginRow).where(VerifiedLoginRow.user_key == key))
