"""Test-ExchangeCertificate: the names clients use for each Client Access server that
its enabled certificates do not cover: the site's array FQDN (else the server's FQDN),
the server's FQDN when a database of its site still names it, autodiscover.<accepted
domain> for IIS, and any names the administrator adds (the public OWA name)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from casarray.directory.base import utcnow
from casarray.directory.certificates.objects import CertificateTest
from casarray.directory.certificates.services import serving_rows
from casarray.directory.certificates.values import (
    DATE_INVALID,
    FAILURE,
    SERVICES,
    SUCCESS,
    TESTED_SERVICES,
    current_status,
    parse_domain_names,
    parse_services,
    stored_services,
)
from casarray.directory.schema import (
    ClientAccessArrayRow,
    ExchangeCertificateRow,
    MailboxDatabaseRow,
    ServerRow,
)
from casarray.pki import names as pki_names

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def _unusable_reason(row: ExchangeCertificateRow, now: dt.datetime) -> str:
    status = current_status(row, now)
    if status == DATE_INVALID:
        return "is outside its validity dates"
    if row.private_key is None:
        return "has no private key"
    return f"its status is {status}"


class CheckService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def test(
        self,
        server: object | None = None,
        services: str | Iterable[str] | None = None,
        domain_names: Iterable[str] = (),
    ) -> list[CertificateTest]:
        """For each Client Access server (or `server`) and service, the names clients
        use that its enabled certificates don't cover (see the module docstring)."""
        extra = parse_domain_names("DomainName", domain_names)
        asked = parse_services(services, "Service") if services is not None else None
        accepted = self.dir.organization().accepted_domains
        now = utcnow()
        results: list[CertificateTest] = []
        with self.dir.store.read() as session:
            if server is not None:
                servers = [self.dir.servers.resolve_row(session, server)]
            else:
                servers = list(
                    session.scalars(
                        select(ServerRow)
                        .where(ServerRow.client_access.is_(True))
                        .order_by(ServerRow.install_order)
                    )
                )
            for row in servers:
                results.extend(self._test_server(session, row, asked, extra, accepted, now))
        return results

    def _client_names(self, session: Session, server: ServerRow) -> list[str]:
        """The names clients reach `server` by: its site's array FQDN (else its own),
        and its own FQDN while a database of its site names it."""
        array = session.scalar(
            select(ClientAccessArrayRow.fqdn).where(ClientAccessArrayRow.site_id == server.site_id)
        )
        names = [array.lower()] if array is not None else []
        holder = aliased(ServerRow)
        named = session.scalar(
            select(func.count())
            .select_from(MailboxDatabaseRow)
            .join(holder, MailboxDatabaseRow.server_id == holder.id)
            .where(
                MailboxDatabaseRow.rpc_client_access_server_key == server.fqdn_key,
                holder.site_id == server.site_id,
            )
        )
        if array is None or named:
            names.append(server.fqdn.lower())
        return names

    def _test_server(
        self,
        session: Session,
        server: ServerRow,
        asked: tuple[str, ...] | None,
        extra: list[str],
        accepted: Sequence[str],
        now: dt.datetime,
    ) -> list[CertificateTest]:
        rows = list(
            session.scalars(
                select(ExchangeCertificateRow)
                .where(ExchangeCertificateRow.server_id == server.id)
                .order_by(ExchangeCertificateRow.id)
            )
        )
        serving = serving_rows(session, server, None, now)
        enabled = {s for r in rows for s in stored_services(r.services)}
        services = asked or tuple(s for s in SERVICES if s in TESTED_SERVICES or s in enabled)
        clients = self._client_names(session, server)
        results = []
        for service in services:
            if service == "IIS":
                required = clients + [f"autodiscover.{d}" for d in accepted]
            elif service == "SMTP":
                required = [server.fqdn.lower()]
            else:
                required = list(clients)
            required = pki_names.unique(required + extra)
            served = [r for r in serving if service in stored_services(r.services)]
            names = [[n for n in r.domains.split("\n") if n] for r in served]
            missing = [n for n in required if not any(pki_names.covers(c, n) for c in names)]
            unusable = [
                f"{r.thumbprint} is enabled but {_unusable_reason(r, now)}"
                for r in rows
                if service in stored_services(r.services) and r not in served
            ]
            if not served:
                message = (
                    f"No usable certificate is enabled for {service} on {server.name}: "
                    f"Enable-ExchangeCertificate -Server {server.name} -Services {service}."
                )
            elif missing:
                message = (
                    f"The certificates enabled for {service} don't cover "
                    f"{', '.join(missing)}: clients using these names get a certificate "
                    "warning. Request one whose domains include them."
                )
            else:
                message = f"The certificates enabled for {service} cover every name."
            if unusable:
                message += " " + "; ".join(unusable) + "."
            results.append(
                CertificateTest(
                    server=server.name,
                    service=service,
                    result=SUCCESS if served and not missing else FAILURE,
                    thumbprints=tuple(r.thumbprint for r in served),
                    required_names=tuple(required),
                    missing_names=tuple(missing),
                    message=message,
                )
            )
        return results
