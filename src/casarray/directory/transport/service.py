"""`TransportService`, `Directory.transport`: the Hub Transport configuration the
cmdlets and the transport service read: accepted domains, receive and send connectors,
the transport servers' settings, and the routing questions (is a domain accepted,
which connector takes mail for a domain)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from casarray.directory.transport.accepted_domains import AcceptedDomainService
from casarray.directory.transport.objects import (
    AcceptedDomain,
    ReceiveConnector,
    SendConnector,
    TransportServerSettings,
)
from casarray.directory.transport.receive_connectors import ReceiveConnectorService
from casarray.directory.transport.send_connectors import SendConnectorService
from casarray.directory.transport.settings import TransportServerService
from casarray.directory.transport.values import AUTHORITATIVE

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class TransportService:
    """Directory.transport."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory
        self.domains = AcceptedDomainService(directory)
        self.receive = ReceiveConnectorService(directory)
        self.send = SendConnectorService(directory)
        self.servers = TransportServerService(directory)

    # -- accepted domains ----------------------------------------------------------------

    def accepted_domains(self) -> list[AcceptedDomain]:
        return self.domains.get()

    def accepted_domain(self, identity: object) -> AcceptedDomain:
        return self.domains.one(identity)

    def new_accepted_domain(
        self,
        name: str,
        domain_name: str,
        domain_type: str = AUTHORITATIVE,
        make_default: bool = False,
    ) -> AcceptedDomain:
        return self.domains.new(name, domain_name, domain_type, make_default)

    def set_accepted_domain(self, identity: object, **changes: Any) -> AcceptedDomain:
        return self.domains.set(identity, **changes)

    def remove_accepted_domain(self, identity: object) -> AcceptedDomain:
        return self.domains.remove(identity)

    def accepted(self, domain: str) -> AcceptedDomain | None:
        """The accepted domain that takes mail for `domain`, or None."""
        return self.domains.accepted(domain)

    # -- receive connectors --------------------------------------------------------------

    def receive_connectors(self, server: object | None = None) -> list[ReceiveConnector]:
        return self.receive.get(server)

    def receive_connector(self, identity: object) -> ReceiveConnector:
        return self.receive.one(identity)

    def new_receive_connector(self, name: str, server: object, **fields: Any) -> ReceiveConnector:
        return self.receive.new(name, server, **fields)

    def set_receive_connector(self, identity: object, **changes: Any) -> ReceiveConnector:
        return self.receive.set(identity, **changes)

    def remove_receive_connector(self, identity: object) -> ReceiveConnector:
        return self.receive.remove(identity)

    def receive_connector_for(
        self, server: object, local: tuple[str, int], remote_address: str
    ) -> ReceiveConnector | None:
        """The connector a client at `remote_address` meets on `local` (ip, port)."""
        return self.receive.connector_for(server, local, remote_address)

    # -- send connectors -----------------------------------------------------------------

    def send_connectors(self) -> list[SendConnector]:
        return self.send.get()

    def send_connector(self, identity: object) -> SendConnector:
        return self.send.one(identity)

    def new_send_connector(self, name: str, **fields: Any) -> SendConnector:
        return self.send.new(name, **fields)

    def set_send_connector(self, identity: object, **changes: Any) -> SendConnector:
        return self.send.set(identity, **changes)

    def remove_send_connector(self, identity: object) -> SendConnector:
        return self.send.remove(identity)

    def route_for(self, domain: str, server: str | None = None) -> SendConnector | None:
        return self.send.route_for(domain, server)

    # -- transport servers ---------------------------------------------------------------

    def server_settings(self, server: object) -> TransportServerSettings:
        return self.servers.get(server)

    def set_server_settings(self, server: object, **changes: Any) -> TransportServerSettings:
        return self.servers.set(server, **changes)
