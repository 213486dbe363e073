"""Who sees what: client subnets (Add-DnsServerClientSubnet: networks whose clients
see the inside view) and query resolution policies (Add-DnsServerQueryResolutionPolicy,
reduced to DENY: names clients outside the inside networks get NXDOMAIN for)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select

from casarray.directory import validate
from casarray.directory.dns.objects import DnsClientSubnet, DnsQueryPolicy
from casarray.directory.dns.values import (
    POLICY_ACTIONS,
    csv_items,
    fqdn_criterion,
    network,
    split_list,
)
from casarray.directory.errors import ConflictError, InvalidValueError, NotFoundError
from casarray.directory.schema import DnsClientSubnetRow, DnsQueryPolicyRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def client_subnet(row: DnsClientSubnetRow) -> DnsClientSubnet:
    return DnsClientSubnet(
        row.name, tuple(csv_items(row.ipv4_subnets)), tuple(csv_items(row.ipv6_subnets))
    )


def query_policy(row: DnsQueryPolicyRow) -> DnsQueryPolicy:
    return DnsQueryPolicy(
        row.name, row.action, tuple(csv_items(row.fqdn)), row.processing_order, row.is_enabled
    )


class ClientSubnetService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def add(
        self,
        name: str,
        ipv4: Iterable[str] | str | None = None,
        ipv6: Iterable[str] | str | None = None,
    ) -> DnsClientSubnet:
        """Add-DnsServerClientSubnet: networks whose clients see the inside view."""
        label = validate.display_name("Name", name)
        v4 = [network("IPv4Subnet", s, 4) for s in split_list(ipv4)]
        v6 = [network("IPv6Subnet", s, 6) for s in split_list(ipv6)]
        if not v4 and not v6:
            raise InvalidValueError(
                "IPv4Subnet", "", "is missing: give -IPv4Subnet or -IPv6Subnet (or both)."
            )
        with self.dir.store.write() as session:
            other = session.scalars(
                select(DnsClientSubnetRow).where(DnsClientSubnetRow.name_key == label.lower())
            ).first()
            if other is not None:
                raise ConflictError(
                    f"The client subnet {other.name} already exists.",
                    conflicting=other.name,
                    target=label,
                )
            row = DnsClientSubnetRow(
                name=label,
                name_key=label.lower(),
                ipv4_subnets=",".join(dict.fromkeys(v4)),
                ipv6_subnets=",".join(dict.fromkeys(v6)),
            )
            session.add(row)
            return client_subnet(row)

    def get(self, name: str | None = None) -> list[DnsClientSubnet]:
        with self.dir.store.read() as session:
            stmt = select(DnsClientSubnetRow).order_by(DnsClientSubnetRow.id)
            if name is not None:
                stmt = stmt.where(DnsClientSubnetRow.name_key == str(name).strip().lower())
            found = [client_subnet(row) for row in session.scalars(stmt)]
        if name is not None and not found:
            raise NotFoundError("client subnet", str(name))
        return found

    def remove(self, name: str) -> DnsClientSubnet:
        with self.dir.store.write() as session:
            row = session.scalars(
                select(DnsClientSubnetRow).where(
                    DnsClientSubnetRow.name_key == str(name).strip().lower()
                )
            ).first()
            if row is None:
                raise NotFoundError("client subnet", str(name))
            subnet = client_subnet(row)
            session.delete(row)
            return subnet


class QueryPolicyService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def add(
        self,
        name: str,
        fqdn: str,
        action: str = "DENY",
        processing_order: int | None = None,
        enabled: bool = True,
    ) -> DnsQueryPolicy:
        """Add-DnsServerQueryResolutionPolicy, reduced: -Action DENY for the names of
        -Fqdn ("EQ,name,*.name"), for every client outside the inside networks."""
        label = validate.display_name("Name", name)
        verb = str(action).strip().upper()
        if verb not in POLICY_ACTIONS:
            raise InvalidValueError(
                "Action",
                action,
                "is not supported: casarray's policies only DENY names to clients outside "
                "the inside networks (site subnets, client subnets, loopback).",
            )
        patterns = fqdn_criterion(fqdn)
        with self.dir.store.write() as session:
            rows = list(session.scalars(select(DnsQueryPolicyRow)))
            other = next((r for r in rows if r.name_key == label.lower()), None)
            if other is not None:
                raise ConflictError(
                    f"The query resolution policy {other.name} already exists.",
                    conflicting=other.name,
                    target=label,
                )
            if processing_order is None:
                order = max((r.processing_order for r in rows), default=0) + 1
            else:
                order = int(processing_order)
                if order < 1:
                    raise InvalidValueError(
                        "ProcessingOrder", processing_order, "is not a number from 1 up."
                    )
            row = DnsQueryPolicyRow(
                name=label,
                name_key=label.lower(),
                action=verb,
                fqdn=",".join(patterns),
                processing_order=order,
                is_enabled=bool(enabled),
            )
            session.add(row)
            return query_policy(row)

    def get(self, name: str | None = None) -> list[DnsQueryPolicy]:
        with self.dir.store.read() as session:
            stmt = select(DnsQueryPolicyRow).order_by(
                DnsQueryPolicyRow.processing_order, DnsQueryPolicyRow.id
            )
            if name is not None:
                stmt = stmt.where(DnsQueryPolicyRow.name_key == str(name).strip().lower())
            found = [query_policy(row) for row in session.scalars(stmt)]
        if name is not None and not found:
            raise NotFoundError("query resolution policy", str(name))
        return found

    def remove(self, name: str) -> DnsQueryPolicy:
        with self.dir.store.write() as session:
            row = session.scalars(
                select(DnsQueryPolicyRow).where(
                    DnsQueryPolicyRow.name_key == str(name).strip().lower()
                )
            ).first()
            if row is None:
                raise NotFoundError("query resolution policy", str(name))
            policy = query_policy(row)
            session.delete(row)
            return policy
