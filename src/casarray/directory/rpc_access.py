"""The referral rule of a Client Access server: whose mailboxes it serves.

A Client Access server is a right endpoint for a mailbox database when the database's
RpcClientAccessServer is the server's own FQDN or the FQDN of its site's client access
array. Any other name sends the user there (an IMAP referral, RFC 2221; the seed's
"redirect users to a good CAS server") - unless the server allows cross-site RPC client
access and the name is a Client Access server or array of another site: then it serves
the user itself. A name in its own site (another member, say, chosen by the
administrator as the good server) is always followed, and so is a name the directory no
longer knows.

In Exchange 2010 SP2 RU3, AllowCrossSiteRpcClientAccess is a property of a database
availability group (Set-DatabaseAvailabilityGroup); casarray has no DAGs, so it is a
property of each Client Access server (Set-ClientAccessServer).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class RpcAccess(enum.Enum):
    """What a Client Access server does with a user of a given database."""

    SERVE = "serve"  # the database names this server or its site's array
    CROSS_SITE = "cross-site"  # names another site's endpoint; cross-site access allowed
    REFER = "refer"  # send the client to the name the database gives


def endpoint_key(fqdn: str) -> str:
    return fqdn.strip().rstrip(".").lower()


@dataclass(frozen=True)
class RpcAccessPolicy:
    """One Client Access server's view of the topology, as the referral rule needs it.

    `sites` maps the FQDN (lower case) of every Client Access server and client access
    array of the organization to its site's name."""

    server: str
    server_fqdn: str
    site: str
    array_fqdn: str | None
    allow_cross_site: bool
    sites: Mapping[str, str] = field(default_factory=dict)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The names this server answers for: its FQDN, and its site's array FQDN."""
        if self.array_fqdn is None:
            return (self.server_fqdn,)
        return (self.server_fqdn, self.array_fqdn)

    def decide(self, rpc_client_access_server: str) -> RpcAccess:
        key = endpoint_key(rpc_client_access_server)
        if key in {endpoint_key(name) for name in self.endpoints}:
            return RpcAccess.SERVE
        if self.allow_cross_site:
            site = self.sites.get(key)
            if site is not None and site.lower() != self.site.lower():
                return RpcAccess.CROSS_SITE
        return RpcAccess.REFER
