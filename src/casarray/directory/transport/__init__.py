"""Hub Transport in the directory: accepted domains, receive connectors (per Hub
Transport server), send connectors and the transport servers' settings, with Exchange
2010's names, values and defaults.

- `values`: the names, values, defaults and parameter checks.
- `objects`: the records the services return.
- `hubs`: a Hub Transport server by identity (refused without the role).
- `accepted_domains`, `receive_connectors`, `send_connectors`, `settings`: one service
  each.
- `service`: `TransportService`, `Directory.transport`, the entry point of the cmdlets
  and of the transport service (`casarray.transport`).
"""

from casarray.directory.transport.objects import (
    AcceptedDomain,
    ReceiveConnector,
    SendConnector,
    TransportServerSettings,
)
from casarray.directory.transport.service import TransportService

__all__ = [
    "AcceptedDomain",
    "ReceiveConnector",
    "SendConnector",
    "TransportServerSettings",
    "TransportService",
]
