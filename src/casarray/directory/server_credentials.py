"""An Exchange server's own SMTP credential: how a Client Access (or Mailbox) server
proves to a Hub Transport server that it is a member of the Exchange Servers group.

In Exchange 2010 a server authenticates to a receive connector as its computer account
(`LAB\\CAS01$`), by Kerberos or by the certificate published in Active Directory
(the ExchangeServer authentication mechanism, over TLS); the connector's
ExchangeServers permission group then lets it submit as any sender and relay. casarray
has no Kerberos, so the computer account's secret is derived from the organization's
session secret (`Directory.session_secret()`, made once with the organization):

    login     CAS01$                (a `DOMAIN\\` prefix is ignored, as Windows does)
    password  base64url(HMAC-SHA256(secret, LABEL + "CAS01"))   (the name in upper case)

Any process that can read the directory can make a server's password and check one; a
client that can't read the directory can't. The password never leaves the directory's
readers except over the TLS session it authenticates (the transport accepts it only
after STARTTLS). Rotating the session secret rotates every server's password.

Who counts as an Exchange server: every server of the directory (Client Access,
Mailbox, Hub Transport), as every Exchange server is a member of the Exchange Servers
universal group.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from casarray.directory.objects import Server
    from casarray.directory.service import Directory

LABEL = b"casarray ExchangeServer SMTP credential v1\x00"
SUFFIX = "$"  # a computer account's name ends in "$"


@dataclass(frozen=True)
class ServerCredential:
    """What a server sends in SMTP AUTH (PLAIN or LOGIN)."""

    login: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"ServerCredential(login={self.login!r})"


def login_of(server_name: str) -> str:
    """The SMTP login of server `server_name`: its computer account, `CAS01$`."""
    return server_name.upper() + SUFFIX


def server_name_of(login: str) -> str | None:
    """The server name a login names (`CAS01$`, `LAB\\CAS01$`, `cas01$`), in upper
    case, or None when it is not a computer account's login."""
    name = login.strip().rsplit("\\", 1)[-1]
    if not name.endswith(SUFFIX):
        return None
    name = name[: -len(SUFFIX)]
    if not name or SUFFIX in name or "@" in name:
        return None
    return name.upper()


def derive_password(secret: bytes, server_name: str) -> str:
    """The password of server `server_name` under the organization secret `secret`."""
    digest = hmac.new(secret, LABEL + server_name.upper().encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


def credential(directory: Directory, server: object) -> ServerCredential:
    """The SMTP credential of the server `server` (a name, FQDN or GUID). Blocking;
    NotFoundError when there is no such server."""
    record = directory.servers.one(server)
    return ServerCredential(
        login_of(record.name), derive_password(directory.session_secret(), record.name)
    )


def check(directory: Directory, login: str, password: str) -> Server | None:
    """The Exchange server whose credential `login` and `password` are, or None.
    Blocking (reads the directory)."""
    name = server_name_of(login)
    if name is None:
        return None
    expected = derive_password(directory.session_secret(), name)
    if not hmac.compare_digest(expected.encode("ascii"), password.encode("utf-8", "replace")):
        return None
    return next((s for s in directory.servers.get() if s.name.upper() == name), None)
