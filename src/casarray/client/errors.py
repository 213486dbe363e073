"""What can go wrong for the client, each error saying what failed in words a user
can act on. `transient` tells a failure worth retrying (a server down, a name that
does not resolve yet) from one that is not (a wrong password)."""

from __future__ import annotations

from casarray.errors import CasarrayError


class ClientError(CasarrayError):
    """A client failure; `str()` is the message for the user."""

    transient = False


class LookupFailed(ClientError):
    """A name did not resolve, or the DNS server did not answer."""

    transient = True


class ConnectFailed(ClientError):
    """No TCP connection to any address of a name (refused, timed out, unreachable)."""

    transient = True


class CertificateRejected(ClientError):
    """The server's certificate does not chain to a trusted root or does not cover the
    name connected to. Not retried by `open_mailbox`'s callers on their own: a user
    must look at it, but a watching client keeps trying (a certificate may be fixed)."""

    transient = True


class ConnectionLost(ClientError):
    """An open connection broke (the server died, or closed it)."""

    transient = True


class AutodiscoverFailed(ClientError):
    """No Autodiscover service gave settings; `attempts` says what each URL answered."""

    def __init__(self, message: str, attempts: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts


class AuthenticationFailed(ClientError):
    """The server refused the address and password (HTTP 401, IMAP AUTHENTICATIONFAILED)."""


class ProfileError(ClientError):
    """A profile that does not exist, or a profile file that can't be read."""
