"""Windows features (ServerManager's Install-WindowsFeature, Uninstall-WindowsFeature,
Get-WindowsFeature): `Install-WindowsFeature NLB -ComputerName CAS01` records the
feature on the server. A cluster can be created on a host only when the host has it,
and a host added as a node must have it too (a node of a cluster that follows an
array needs none: casarray's balancer serves it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.base import utcnow
from casarray.directory.errors import InUseError, InvalidOperationError
from casarray.directory.nlb.objects import FeatureResult, WindowsFeature
from casarray.directory.nlb.reading import cluster_of_server
from casarray.directory.nlb.values import FEATURES, NLB, choice
from casarray.directory.schema import ServerRow, WindowsFeatureRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def has_feature(session: Session, server_id: int, name: str = NLB) -> bool:
    return (
        session.scalars(
            select(WindowsFeatureRow.id).where(
                WindowsFeatureRow.server_id == server_id, WindowsFeatureRow.name == name
            )
        ).first()
        is not None
    )


def require_feature(session: Session, server: ServerRow) -> None:
    """Refuse a host without the NLB feature."""
    if not has_feature(session, server.id):
        raise InvalidOperationError(
            f"The NLB feature isn't installed on {server.name}; run "
            f"Install-WindowsFeature NLB -ComputerName {server.name}",
            target=server.name,
        )


def _feature_names(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(choice("Name", n, tuple(FEATURES)) for n in names))


class FeatureService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def install(self, server: object, names: Iterable[str]) -> FeatureResult:
        """Install-WindowsFeature: record the features on the server."""
        wanted = _feature_names(names)
        with self.dir.store.write() as session:
            row = self.dir.servers.resolve_row(session, server)
            changed = []
            for name in wanted:
                if not has_feature(session, row.id, name):
                    session.add(
                        WindowsFeatureRow(server_id=row.id, name=name, when_installed=utcnow())
                    )
                    changed.append(WindowsFeature(row.name, name, FEATURES[name], True))
            return FeatureResult(row.name, tuple(changed))

    def uninstall(self, server: object, names: Iterable[str]) -> FeatureResult:
        """Uninstall-WindowsFeature. NLB can't go while the server is a node."""
        wanted = _feature_names(names)
        with self.dir.store.write() as session:
            row = self.dir.servers.resolve_row(session, server)
            if NLB in wanted:
                cluster = cluster_of_server(session, row)
                if cluster is not None:
                    raise InUseError(
                        f"The server '{row.name}' is a node of the NLB cluster "
                        f"'{cluster.name}'; remove it first (Remove-NlbClusterNode "
                        f"-HostName {row.name}).",
                        dependents=[cluster.name],
                        target=row.name,
                    )
            changed = []
            for name in wanted:
                found = session.scalars(
                    select(WindowsFeatureRow).where(
                        WindowsFeatureRow.server_id == row.id, WindowsFeatureRow.name == name
                    )
                ).first()
                if found is not None:
                    session.delete(found)
                    changed.append(WindowsFeature(row.name, name, FEATURES[name], False))
            return FeatureResult(row.name, tuple(changed))

    def get(self, server: object, names: Iterable[str] | None = None) -> list[WindowsFeature]:
        """Get-WindowsFeature: the catalogue's features on the server, installed or not."""
        wanted = [choice("Name", n, tuple(FEATURES)) for n in names] if names else list(FEATURES)
        with self.dir.store.read() as session:
            row = self.dir.servers.resolve_row(session, server)
            installed = set(
                session.scalars(
                    select(WindowsFeatureRow.name).where(WindowsFeatureRow.server_id == row.id)
                )
            )
            return [WindowsFeature(row.name, n, FEATURES[n], n in installed) for n in wanted]
