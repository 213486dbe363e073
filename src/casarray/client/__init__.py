"""The Outlook-like client: a profile made by Autodiscover from an e-mail address,
the mailbox read over IMAP through the server name the profile holds, referrals
followed, reconnection when the server goes away.

For other code (Test-OutlookConnectivity, the lab):

    from casarray.client.autodiscover import autodiscover
    from casarray.client.mailbox import open_mailbox
    from casarray.client.network import Network
    from casarray.client.profile import Profile

    network = Network.configure()                 # the lab's DNS, CA and port offset
    result = autodiscover("alice@lab.net", password, network=network)
    profile = Profile.from_autodiscover(result)
    with open_mailbox(profile, password, network=network) as session:
        session.server, session.timings, session.list("INBOX")

The package also offers the classes and `open_mailbox` by name, imported on first use
(so that `casarray` builds its command line without loading the client); the function
`autodiscover` is not among them, its module having the same name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casarray.client.autodiscover import AutodiscoverError, AutodiscoverResult
    from casarray.client.errors import (
        AuthenticationFailed,
        AutodiscoverFailed,
        CertificateRejected,
        ClientError,
        ConnectFailed,
        ConnectionLost,
        LookupFailed,
        ProfileError,
    )
    from casarray.client.mailbox import MailboxSession, Message, open_mailbox
    from casarray.client.network import Network
    from casarray.client.profile import Profile, ProfileStore
    from casarray.client.resolver import NameResolver

_WHERE = {
    "AutodiscoverError": "autodiscover",
    "AutodiscoverResult": "autodiscover",
    "AuthenticationFailed": "errors",
    "AutodiscoverFailed": "errors",
    "CertificateRejected": "errors",
    "ClientError": "errors",
    "ConnectFailed": "errors",
    "ConnectionLost": "errors",
    "LookupFailed": "errors",
    "ProfileError": "errors",
    "MailboxSession": "mailbox",
    "Message": "mailbox",
    "open_mailbox": "mailbox",
    "Network": "network",
    "Profile": "profile",
    "ProfileStore": "profile",
    "NameResolver": "resolver",
}
__all__ = [
    "AuthenticationFailed",
    "AutodiscoverError",
    "AutodiscoverFailed",
    "AutodiscoverResult",
    "CertificateRejected",
    "ClientError",
    "ConnectFailed",
    "ConnectionLost",
    "LookupFailed",
    "MailboxSession",
    "Message",
    "NameResolver",
    "Network",
    "Profile",
    "ProfileError",
    "ProfileStore",
    "open_mailbox",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'casarray.client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"casarray.client.{module}"), name)
