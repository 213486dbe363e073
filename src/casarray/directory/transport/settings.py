"""Get-/Set-TransportServer: a Hub Transport server's queue settings, with Exchange
2010's defaults (MessageExpirationTimeout 2 days, MessageRetryInterval 1 minute,
MaxOutboundConnections 1000) until set."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from casarray.directory.schema import ServerRow, TransportServerRow
from casarray.directory.transport.hubs import hub_row
from casarray.directory.transport.objects import TransportServerSettings
from casarray.directory.transport.values import (
    MAX_OUTBOUND_CONNECTIONS,
    MAX_OUTBOUND_RANGE,
    MESSAGE_EXPIRATION_RANGE,
    MESSAGE_EXPIRATION_TIMEOUT,
    MESSAGE_RETRY_INTERVAL,
    MESSAGE_RETRY_RANGE,
    in_range,
    timespan,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

FIELDS = ("message_expiration_timeout", "message_retry_interval", "max_outbound_connections")


def check(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"a transport server has no setting {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if values.get("message_expiration_timeout") is not None:
        out["message_expiration_timeout"] = timespan(
            "MessageExpirationTimeout",
            values["message_expiration_timeout"],
            *MESSAGE_EXPIRATION_RANGE,
        )
    if values.get("message_retry_interval") is not None:
        out["message_retry_interval"] = timespan(
            "MessageRetryInterval", values["message_retry_interval"], *MESSAGE_RETRY_RANGE
        )
    if values.get("max_outbound_connections") is not None:
        out["max_outbound_connections"] = in_range(
            "MaxOutboundConnections", values["max_outbound_connections"], *MAX_OUTBOUND_RANGE
        )
    return out


class TransportServerService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    @staticmethod
    def record(server: ServerRow, row: TransportServerRow | None) -> TransportServerSettings:
        if row is None:
            return TransportServerSettings(
                server=server.name,
                message_expiration_timeout=MESSAGE_EXPIRATION_TIMEOUT,
                message_retry_interval=MESSAGE_RETRY_INTERVAL,
                max_outbound_connections=MAX_OUTBOUND_CONNECTIONS,
                guid=server.guid,
                fqdn=server.fqdn,
            )
        return TransportServerSettings(
            server=server.name,
            message_expiration_timeout=timedelta(seconds=row.message_expiration_timeout),
            message_retry_interval=timedelta(seconds=row.message_retry_interval),
            max_outbound_connections=row.max_outbound_connections,
            guid=server.guid,
            fqdn=server.fqdn,
        )

    def get(self, server: object) -> TransportServerSettings:
        with self.dir.store.read() as session:
            row = hub_row(self.dir, session, server)
            return self.record(row, session.get(TransportServerRow, row.id))

    def set(self, server: object, **changes: Any) -> TransportServerSettings:
        given = check(changes)
        with self.dir.store.write() as session:
            row = hub_row(self.dir, session, server)
            settings = session.get(TransportServerRow, row.id)
            if settings is None:
                settings = TransportServerRow(
                    server_id=row.id,
                    message_expiration_timeout=int(MESSAGE_EXPIRATION_TIMEOUT.total_seconds()),
                    message_retry_interval=int(MESSAGE_RETRY_INTERVAL.total_seconds()),
                    max_outbound_connections=MAX_OUTBOUND_CONNECTIONS,
                )
                session.add(settings)
            for field, value in given.items():
                if isinstance(value, timedelta):
                    value = int(value.total_seconds())
                setattr(settings, field, value)
            session.flush()
            return self.record(row, settings)
