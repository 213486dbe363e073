"""Stateless web sessions for the web mail: a signed, expiring cookie and the CSRF
tokens of its forms.

Exchange 2010's OWA keeps its forms-based sessions in the memory of the Client Access
server that made them, so a balancer in front of a CAS array needs client affinity.
Here the session is the cookie itself: the mailbox GUID, a CSRF token, the login time
and the time it was signed, signed (HMAC-SHA256, itsdangerous) with the
organization's session secret from the directory (`directory.session_secret()`). Any
member of the array checks it alone, with no shared memory, so any member serves any
request.

Expiry: a session ends `idle_timeout` seconds after it was last signed, or
`lifetime` seconds after the login, whichever comes first. Pages sign it again
(`needs_refresh`) once it is `refresh_after` seconds old, so an active user stays in.

Signing out clears the cookie in that browser. The server keeps no list of sessions,
so a copy of the cookie taken before (from another machine, say) stays valid until it
expires: that is the price of statelessness, kept small by the idle timeout. Changing
the session secret ends every session at once.

CSRF: every form of a signed-in page carries the session's token, which only pages of
our origin can read (the cookie is HttpOnly); the sign-in form, before there is a
session, carries a random token that must match a signed cookie of its own (a
double-submit check). Cookies are HttpOnly, SameSite=Lax, limited to /owa, and Secure
when the page came over HTTPS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from starlette.responses import Response

COOKIE = "owa_session"
LOGIN_COOKIE = "owa_login"
COOKIE_PATH = "/owa"

IDLE_TIMEOUT = 60 * 60  # an hour without a page
LIFETIME = 12 * 60 * 60  # a working day, whatever the activity
REFRESH_AFTER = 5 * 60
LOGIN_FORM_TIMEOUT = 60 * 60  # how long a sign-in form may be left open


@dataclass(frozen=True)
class WebSession:
    """A signed-in user's session, as its cookie carries it."""

    mailbox: str  # the mailbox GUID
    csrf: str
    login_time: int
    signed_at: int


class SessionCodec:
    """Makes and checks session cookies and sign-in form tokens with one secret."""

    def __init__(
        self,
        secret: bytes,
        *,
        idle_timeout: int = IDLE_TIMEOUT,
        lifetime: int = LIFETIME,
        refresh_after: int = REFRESH_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must have at least 16 bytes")
        kw: dict[str, Any] = {"signer_kwargs": {"digest_method": hashlib.sha256}}
        self._sessions = URLSafeSerializer(secret, salt="casarray.owa.session", **kw)
        self._logins = URLSafeSerializer(secret, salt="casarray.owa.login", **kw)
        self.idle_timeout = idle_timeout
        self.lifetime = lifetime
        self.refresh_after = refresh_after
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock())

    # -- sessions ---------------------------------------------------------------------

    def new(self, mailbox_guid: str) -> WebSession:
        now = self._now()
        return WebSession(mailbox_guid, secrets.token_urlsafe(24), now, now)

    def dump(self, session: WebSession) -> str:
        """The cookie value of `session`."""
        payload = [session.mailbox, session.csrf, session.login_time, session.signed_at]
        return str(self._sessions.dumps(payload))

    def load(self, value: str | None) -> WebSession | None:
        """The session in a cookie value; None when it is missing, forged, malformed
        or expired."""
        if not value:
            return None
        try:
            payload = self._sessions.loads(value)
        except BadData:
            return None
        if not (isinstance(payload, list) and len(payload) == 4):
            return None
        mailbox, csrf, login_time, signed_at = payload
        if not (isinstance(mailbox, str) and isinstance(csrf, str)):
            return None
        if not (isinstance(login_time, int) and isinstance(signed_at, int)):
            return None
        now = self._now()
        if now - signed_at > self.idle_timeout or now - login_time > self.lifetime:
            return None
        if signed_at > now + 60 or login_time > signed_at:
            return None  # from the future: a clock gone wrong; don't trust it
        return WebSession(mailbox, csrf, login_time, signed_at)

    def needs_refresh(self, session: WebSession) -> bool:
        return self._now() - session.signed_at >= self.refresh_after

    def refreshed(self, session: WebSession) -> WebSession:
        return replace(session, signed_at=self._now())

    def max_age(self, session: WebSession) -> int:
        """Seconds the browser should keep the cookie: until the session expires."""
        now = self._now()
        return max(
            0,
            min(session.signed_at + self.idle_timeout, session.login_time + self.lifetime) - now,
        )

    @staticmethod
    def check_csrf(session: WebSession, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(session.csrf, token)

    # -- the sign-in form -------------------------------------------------------------

    def new_login(self) -> tuple[str, str]:
        """(cookie value, form token) for a new sign-in form."""
        token = secrets.token_urlsafe(24)
        return str(self._logins.dumps([token, self._now()])), token

    def check_login(self, cookie: str | None, token: object) -> bool:
        """Whether a sign-in form's token matches its cookie (and the form is fresh)."""
        if not cookie or not isinstance(token, str):
            return False
        try:
            payload = self._logins.loads(cookie)
        except BadData:
            return False
        if not (isinstance(payload, list) and len(payload) == 2):
            return False
        expected, issued = payload
        if not (isinstance(expected, str) and isinstance(issued, int)):
            return False
        if not 0 <= self._now() - issued <= LOGIN_FORM_TIMEOUT:
            return False
        return hmac.compare_digest(expected, token)


def set_cookie(response: Response, name: str, value: str, *, max_age: int, secure: bool) -> None:
    """Set one of our cookies: HttpOnly, SameSite=Lax, path /owa, Secure over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, name: str, *, secure: bool) -> None:
    """Tell the browser to drop one of our cookies at once."""
    response.delete_cookie(name, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax")


__all__ = [
    "COOKIE",
    "COOKIE_PATH",
    "LOGIN_COOKIE",
    "SessionCodec",
    "WebSession",
    "clear_cookie",
    "set_cookie",
]
