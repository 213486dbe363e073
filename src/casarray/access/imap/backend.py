"""What the IMAP session needs from the rest of casarray, as a Protocol: checking a
login (directory passwords, throttling, the referral rule) and opening the user's
mailbox in their mailbox database. The real one is `access.imap.directory_backend`;
the protocol tests use a fake."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from casarray.mailstore.interface import MailboxStore


@dataclass(frozen=True)
class LoginOk:
    user: str  # the address they logged in as
    mailbox: MailboxStore
    # The mailbox's storage limit in bytes now (None: Unlimited), read when needed
    # (QUOTA, APPEND, COPY): an administrator may change it during the session.
    storage_limit: Callable[[], int | None] | None = None


@dataclass(frozen=True)
class LoginFailed:
    """Wrong user or password (never says which)."""

    reason: str = "Authentication failed."


@dataclass(frozen=True)
class LoginThrottled:
    """Too many failures for this user or client address: try later."""

    retry_after: float


@dataclass(frozen=True)
class LoginReferred:
    """The password was right but this server is not a right endpoint for the user's
    database: RFC 2221 `NO [REFERRAL url]` (the seed's "redirect users to a good CAS")."""

    url: str  # imap://alice@CAS02.lab.net/
    server: str  # the RpcClientAccessServer named


@dataclass(frozen=True)
class LoginUnavailable:
    """Right password, but the mailbox database can't be reached (dismounted...)."""

    reason: str


LoginResult = LoginOk | LoginFailed | LoginThrottled | LoginReferred | LoginUnavailable


class Backend(Protocol):
    @property
    def server_fqdn(self) -> str:
        """This Client Access server's FQDN (named in the greeting)."""
        ...

    def login(self, user: str, password: str, client_address: str) -> LoginResult: ...

    def mailbox_of(self, user: str) -> MailboxStore | None:
        """Another user's mailbox, for URLFETCH of a URL they authorized (RFC 4467);
        None when there is no such user or their database can't be reached."""
        ...
