"""The DNS server's settings (Set-DnsServerSetting): the address it listens on, also
the address of every zone's name server (default 127.77.0.53, the lab's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory import validate
from casarray.directory.dns.values import DEFAULT_LISTENING_ADDRESS
from casarray.directory.errors import ConflictError
from casarray.directory.schema import DnsServerRow, NlbClusterRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def listening_address(session: Session) -> str:
    row = session.get(DnsServerRow, 1)
    if row is None or not row.listening_ip_address:
        return DEFAULT_LISTENING_ADDRESS
    return row.listening_ip_address


class SettingsService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def listening_address(self) -> str:
        """The address the DNS server listens on (default 127.77.0.53)."""
        with self.dir.store.read() as session:
            return listening_address(session)

    def set_listening_address(self, address: str | None) -> str:
        """Set-DnsServerSetting -ListeningIPAddress; None restores the default."""
        value = validate.ipv4("ListeningIPAddress", address) if address is not None else None
        with self.dir.store.write() as session:
            cluster = session.scalars(
                select(NlbClusterRow).where(NlbClusterRow.ip_address == value)
            ).first()
            if cluster is not None:
                raise ConflictError(
                    f"{value} is the primary IP of the NLB cluster '{cluster.name}', whose "
                    "balancer owns it; the DNS server needs an address of its own.",
                    conflicting=cluster.name,
                    target=value,
                )
            row = session.get(DnsServerRow, 1)
            if row is None:
                row = DnsServerRow(id=1)
                session.add(row)
            row.listening_ip_address = value
            return listening_address(session)
