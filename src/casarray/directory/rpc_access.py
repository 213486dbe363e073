"""What a Client Access server does with a user of a mailbox database (`RpcAccess`),
and the server's own side of that choice (`RpcAccessPolicy`).

The rule is the preferred endpoint's (`endpoints`, Exchange 2010 SP2 RU3's): every
mailbox has one endpoint, chosen from its database's site (the database's
RpcClientAccessServer when that names a Client Access server or the array of that
site, else the site's array, else a Client Access server of the site). A server
serves the user itself when it is that endpoint or a member of that array
(`endpoints.serves`), and also when it allows cross-site RPC client access and the
endpoint is in another site (`CROSS_SITE`); otherwise it sends the client to the
endpoint (`REFER`: an IMAP referral, RFC 2221; the seed's "redirect users to a good
CAS server"). So a name of another site, or one the directory no longer knows, in
RpcClientAccessServer is not followed.

In Exchange 2010 SP2 RU3, AllowCrossSiteRpcClientAccess is a property of a database
availability group (Set-DatabaseAvailabilityGroup); casarray has no DAGs, so it is a
property of each Client Access server (Set-ClientAccessServer).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RpcAccess(enum.Enum):
    """What a Client Access server does with a user of a given database."""

    SERVE = "serve"  # the server is the user's endpoint, or a member of the endpoint array
    CROSS_SITE = "cross-site"  # the endpoint is in another site; cross-site access allowed
    REFER = "refer"  # send the client to the endpoint


@dataclass(frozen=True)
class RpcAccessPolicy:
    """One Client Access server's side of the rule: its names, its site and its
    site's array, and whether it allows cross-site RPC client access."""

    server: str
    server_fqdn: str
    site: str
    array_fqdn: str | None
    allow_cross_site: bool
