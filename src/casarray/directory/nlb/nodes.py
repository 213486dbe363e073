"""The nodes of NLB clusters (Add-, Get-, Set-, Remove-NlbClusterNode; Start-, Stop-,
Suspend-, Resume-NlbClusterNode).

A server is a node of at most one cluster. HostID (1..32) is the lowest free one;
HostPriority (1..32, unique in the cluster, 1 the highest) by default too. The node
with the highest priority (lowest number) among the started ones is the default host,
shown as "Converged(default)". Stop -Drain makes a node Draining: no new connections,
existing ones run until they end or the timeout passes (then it reads Stopped). A
following node (see `reading`) has its row written on its first change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casarray.directory import validate
from casarray.directory.base import utcnow
from casarray.directory.errors import (
    ConflictError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.nlb.features import require_feature
from casarray.directory.nlb.objects import NlbNode
from casarray.directory.nlb.reading import (
    Member,
    cluster_of_server,
    cluster_rows,
    following,
    materialise,
    node_records,
    nodes_of,
    require_free,
    resolve_cluster,
)
from casarray.directory.nlb.values import (
    DRAINING,
    HOST_STATES,
    MAX_NODES,
    MAX_TIMEOUT,
    STARTED,
    STOPPED,
    SUSPENDED,
    choice,
    in_range,
    lowest_free,
)
from casarray.directory.schema import (
    NlbClusterRow,
    NlbNodeRow,
    NlbNodeWeightRow,
    NlbPortRuleRow,
    ServerRow,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

StateChange = Callable[[NlbNodeRow, ServerRow], None]


def _one_node(
    directory: Directory, session: Session, row: NlbClusterRow, server_id: int
) -> NlbNode:
    members = nodes_of(directory, session, row)
    records = node_records(row, members)
    index = next(i for i, m in enumerate(members) if m.server.id == server_id)
    return records[index]


class NodeService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    # -- reading -------------------------------------------------------------------------

    def get(self, cluster: object | None = None, node: object | None = None) -> list[NlbNode]:
        """Get-NlbClusterNode: the nodes of one cluster or of all, or one node (by its
        server's name)."""
        with self.dir.store.read() as session:
            if node is not None:
                server = self.dir.servers.resolve_row(session, node)
                row = cluster_of_server(session, server)
                if row is None or (
                    cluster is not None and resolve_cluster(self.dir, session, cluster).id != row.id
                ):
                    raise NotFoundError("NLB cluster node", server.name)
                records = node_records(row, nodes_of(self.dir, session, row))
                return [r for r in records if r.name == server.name]
            out: list[NlbNode] = []
            for row in cluster_rows(self.dir, session, cluster):
                out.extend(node_records(row, nodes_of(self.dir, session, row)))
            return out

    def one(self, node: object) -> NlbNode:
        return self.get(node=node)[0]

    def _for_change(
        self, session: Session, node: object
    ) -> tuple[NlbClusterRow, list[Member], Member]:
        server = self.dir.servers.resolve_row(session, node)
        row = cluster_of_server(session, server)
        if row is None:
            raise NotFoundError("NLB cluster node", server.name)
        members = nodes_of(self.dir, session, row)
        member = next((m for m in members if m.server.id == server.id), None)
        if member is None:  # a member beyond NLB's 32
            raise NotFoundError("NLB cluster node", server.name)
        return row, members, member

    # -- membership ----------------------------------------------------------------------

    def add(self, cluster: object, server: object, interface: str | None = None) -> NlbNode:
        """Add-NlbClusterNode: HostID and HostPriority the lowest free ones."""
        with self.dir.store.write() as session:
            row = resolve_cluster(self.dir, session, cluster)
            server_row = self.dir.servers.resolve_row(session, server)
            array = following(session, row)
            if array is not None:
                member = cluster_of_server(session, server_row)
                if member is not None and member.id == row.id:
                    raise ConflictError(
                        f"The server '{server_row.name}' is already a node of the NLB "
                        f"cluster '{row.name}' (a member of the array '{array.name}' it "
                        "follows).",
                        conflicting=row.name,
                        target=server_row.name,
                    )
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' follows the client access array "
                    f"'{array.name}': its nodes are the array's members (the Client Access "
                    f"servers of site '{array.site.name}'). Install the server in that site, "
                    "or stop following (Set-NlbCluster -FollowArray:$false).",
                    target=server_row.name,
                )
            require_free(session, server_row)
            require_feature(session, server_row)
            members = nodes_of(self.dir, session, row)
            host_id = lowest_free(m.host_id for m in members)
            priority = lowest_free(m.host_priority for m in members)
            if host_id is None or priority is None:
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' already has {MAX_NODES} nodes, NLB's limit.",
                    target=row.name,
                )
            interface_name = validate.display_name(
                "NewNodeInterface", interface or row.interface_name, 255
            )
            node = NlbNodeRow(
                cluster_id=row.id,
                server_id=server_row.id,
                interface_name=interface_name,
                host_id=host_id,
                host_priority=priority,
                initial_host_state=STARTED,
                state=STARTED,
                drain_until=None,
                when_added=utcnow(),
            )
            session.add(node)
            session.flush()
            return _one_node(self.dir, session, row, server_row.id)

    def remove(self, node: object) -> NlbNode:
        """Remove-NlbClusterNode. The cluster's last node can't go (remove the cluster)."""
        with self.dir.store.write() as session:
            row, members, member = self._for_change(session, node)
            record = node_records(row, members)[members.index(member)]
            array = following(session, row)
            if array is not None:
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' follows the client access array "
                    f"'{array.name}', so '{member.server.name}' is a node as long as it is a "
                    "member. Stop it (Stop-NlbClusterNode) or stop following "
                    "(Set-NlbCluster -FollowArray:$false) first.",
                    target=member.server.name,
                )
            if len(members) == 1:
                raise InvalidOperationError(
                    f"'{member.server.name}' is the last node of the NLB cluster "
                    f"'{row.name}'; remove the cluster instead (Remove-NlbCluster).",
                    target=member.server.name,
                )
            assert member.row is not None
            session.execute(
                delete(NlbNodeWeightRow).where(
                    NlbNodeWeightRow.server_id == member.server.id,
                    NlbNodeWeightRow.rule_id.in_(
                        select(NlbPortRuleRow.id).where(NlbPortRuleRow.cluster_id == row.id)
                    ),
                )
            )
            session.delete(member.row)
            return record

    # -- settings --------------------------------------------------------------------------

    def set(
        self,
        node: object,
        *,
        host_priority: int | None = None,
        initial_host_state: str | None = None,
    ) -> NlbNode:
        """Set-NlbClusterNode -HostPriority (1..32, unique) -InitialHostState."""
        priority = (
            in_range("HostPriority", host_priority, 1, MAX_NODES)
            if host_priority is not None
            else None
        )
        initial = (
            choice("InitialHostState", initial_host_state, HOST_STATES)
            if initial_host_state is not None
            else None
        )
        with self.dir.store.write() as session:
            row, members, member = self._for_change(session, node)
            if priority is not None:
                holder = next(
                    (m for m in members if m.host_priority == priority and m is not member), None
                )
                if holder is not None:
                    raise ConflictError(
                        f"The host priority {priority} is already that of node "
                        f"'{holder.server.name}' in the NLB cluster '{row.name}'; each node "
                        "needs its own (1 to 32, 1 the highest).",
                        conflicting=holder.server.name,
                        target=member.server.name,
                    )
            for other in members:  # keep every node's values where they are
                materialise(session, row, other)
            node_row = materialise(session, row, member)
            if priority is not None:
                node_row.host_priority = priority
            if initial is not None:
                node_row.initial_host_state = initial
            session.flush()
            return _one_node(self.dir, session, row, member.server.id)

    # -- states ----------------------------------------------------------------------------

    def _set_state(self, node: object, change: StateChange) -> NlbNode:
        with self.dir.store.write() as session:
            row, members, member = self._for_change(session, node)
            for other in members:
                materialise(session, row, other)
            node_row = materialise(session, row, member)
            change(node_row, member.server)
            session.flush()
            return _one_node(self.dir, session, row, member.server.id)

    def start(self, node: object) -> NlbNode:
        """Start-NlbClusterNode: Started (a suspended node must be resumed first)."""

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            if n.state == SUSPENDED:
                raise InvalidOperationError(
                    f"The node '{server.name}' is suspended; resume it first "
                    f"(Resume-NlbClusterNode -HostName {server.name}).",
                    target=server.name,
                )
            n.state, n.drain_until = STARTED, None

        return self._set_state(node, change)

    def stop(self, node: object, *, drain: bool = False, timeout: int | None = None) -> NlbNode:
        """Stop-NlbClusterNode: Stopped at once, or with `drain` Draining (no new
        connections; existing ones run until they end or `timeout` seconds pass)."""
        if timeout is not None:
            if not drain:
                raise InvalidValueError(
                    "Timeout", timeout, "applies only with -Drain (a drainstop's limit)."
                )
            timeout = in_range("Timeout", timeout, 0, MAX_TIMEOUT)

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            if n.state == SUSPENDED:
                raise InvalidOperationError(
                    f"The node '{server.name}' is suspended; resume it first "
                    f"(Resume-NlbClusterNode -HostName {server.name}).",
                    target=server.name,
                )
            if drain and n.state in (STARTED, DRAINING):
                n.state = DRAINING
                n.drain_until = utcnow() + timedelta(seconds=timeout) if timeout else None
            else:
                n.state, n.drain_until = STOPPED, None

        return self._set_state(node, change)

    def suspend(self, node: object) -> NlbNode:
        """Suspend-NlbClusterNode: Suspended (stops, and won't start until resumed)."""

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            n.state, n.drain_until = SUSPENDED, None

        return self._set_state(node, change)

    def resume(self, node: object) -> NlbNode:
        """Resume-NlbClusterNode: a suspended node becomes Stopped (start it next)."""

        def change(n: NlbNodeRow, server: ServerRow) -> None:
            if n.state == SUSPENDED:
                n.state, n.drain_until = STOPPED, None

        return self._set_state(node, change)
