"""NLB clusters (New-, Get-, Set-, Remove-NlbCluster).

A cluster is named by its FQDN and has a primary IP (a valid IPv4 address, no server's
address), a subnet mask (by default NLB's: the address class's mask, so 255.0.0.0 for
127.77.1.10), an operation mode (Unicast, Multicast, IgmpMulticast: kept and shown,
meaningless on loopback) and a data plane for casarray's balancer (Kernel, Proxy, or
Auto: the balancer picks when it starts). It starts on one host, its first node, or
follows a client access array (see `reading`), and with NLB's default port rule:
0..65535, All, Both, Multiple, Single.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from casarray.directory import validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import ConflictError, InvalidOperationError, InvalidValueError
from casarray.directory.nlb.features import require_feature
from casarray.directory.nlb.objects import NlbCluster
from casarray.directory.nlb.reading import (
    array_of,
    cluster_record,
    cluster_rows,
    materialise_all,
    require_free,
    resolve_cluster,
)
from casarray.directory.nlb.values import (
    DATA_PLANES,
    DEFAULT_INTERFACE,
    DEFAULT_RULE,
    HEARTBEAT_PERIOD_RANGE,
    HEARTBEAT_TOLERANCE_RANGE,
    OPERATION_MODES,
    STARTED,
    choice,
    default_subnet_mask,
    in_range,
    subnet_mask_or_none,
)
from casarray.directory.schema import (
    ClientAccessArrayRow,
    NlbClusterRow,
    NlbNodeRow,
    NlbPortRuleRow,
    ServerRow,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class ClusterService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    # -- reading -------------------------------------------------------------------------

    def get(self, cluster: object | None = None) -> list[NlbCluster]:
        """Get-NlbCluster: one cluster (by FQDN, IP, GUID or one of its hosts) or all."""
        with self.dir.store.read() as session:
            return [
                cluster_record(self.dir, session, row)
                for row in cluster_rows(self.dir, session, cluster)
            ]

    def one(self, cluster: object) -> NlbCluster:
        return self.get(cluster)[0]

    # -- checks ----------------------------------------------------------------------------

    def _check_ip(self, session: Session, ip: str, exclude_id: int | None) -> None:
        server = session.scalars(select(ServerRow).where(ServerRow.ip_address == ip)).first()
        if server is not None:
            raise ConflictError(
                f"The cluster IP {ip} is the address of server '{server.name}'; a cluster "
                "needs a virtual address of its own.",
                conflicting=server.name,
                target=ip,
            )
        other = session.scalars(select(NlbClusterRow).where(NlbClusterRow.ip_address == ip)).first()
        if other is not None and other.id != exclude_id:
            raise ConflictError(
                f"The IP address {ip} is already the primary IP of the NLB cluster '{other.name}'.",
                conflicting=other.name,
                target=ip,
            )

    def _check_name(self, session: Session, name: str, exclude_id: int | None) -> None:
        key = name.lower()
        other = session.scalars(select(NlbClusterRow).where(NlbClusterRow.name_key == key)).first()
        if other is not None and other.id != exclude_id:
            raise ConflictError(
                f"The NLB cluster '{other.name}' ({other.ip_address}) already has that name.",
                conflicting=other.name,
                target=name,
            )
        server = session.scalars(
            select(ServerRow).where(or_(ServerRow.name_key == key, ServerRow.fqdn_key == key))
        ).first()
        if server is not None:
            raise ConflictError(
                f"The cluster name '{name}' is the name of server '{server.name}' "
                f"({server.fqdn}); a cluster needs a virtual name of its own.",
                conflicting=server.fqdn,
                target=name,
            )

    def _check_follow(
        self, session: Session, row_id: int | None, array: ClientAccessArrayRow
    ) -> None:
        """The array is followed by no other cluster and none of its members is a node
        of another cluster's own (conflicts are refused here, not resolved later)."""
        other = session.scalars(
            select(NlbClusterRow).where(NlbClusterRow.array_id == array.id)
        ).first()
        if other is not None and other.id != row_id:
            raise ConflictError(
                f"The client access array '{array.name}' is already served by the NLB "
                f"cluster '{other.name}'.",
                conflicting=other.name,
                target=array.name,
            )
        for server in self.dir.servers.client_access_rows(session, array.site_id):
            node = session.scalars(
                select(NlbNodeRow).where(NlbNodeRow.server_id == server.id)
            ).first()
            if node is not None and node.cluster_id != row_id:
                cluster = session.get(NlbClusterRow, node.cluster_id)
                assert cluster is not None
                raise ConflictError(
                    f"The server '{server.name}', a member of the array '{array.name}', is "
                    f"already a node of the NLB cluster '{cluster.name}'; a server can be in "
                    "only one cluster. Remove it there first.",
                    conflicting=cluster.name,
                    target=server.name,
                )

    # -- changes ---------------------------------------------------------------------------

    def new(
        self,
        cluster_name: str,
        ip: str,
        *,
        host: object | None = None,
        interface: str | None = None,
        subnet_mask: str | None = None,
        operation_mode: str = "Unicast",
        array: object | None = None,
        data_plane: str = "Auto",
    ) -> NlbCluster:
        """New-NlbCluster on `host` (its first node), or following `array`'s members
        (then `host`, if given, must be one of them)."""
        name = validate.fqdn("ClusterName", cluster_name)
        address = validate.ipv4("ClusterPrimaryIP", ip)
        mask = (
            subnet_mask_value
            if (subnet_mask_value := subnet_mask_or_none(subnet_mask)) is not None
            else default_subnet_mask(address)
        )
        mode = choice("OperationMode", operation_mode, OPERATION_MODES)
        plane = choice("DataPlane", data_plane, DATA_PLANES)
        interface_name = validate.display_name("InterfaceName", interface or DEFAULT_INTERFACE, 255)
        if host is None and array is None:
            raise InvalidValueError(
                "HostName",
                "",
                "is missing: name the host the cluster starts on (or pass "
                "-ClientAccessArray to make the array's members its nodes).",
            )
        with self.dir.store.write() as session:
            host_row = self.dir.servers.resolve_row(session, host) if host is not None else None
            array_row = self.dir.arrays.resolve_row(session, array) if array is not None else None
            self._check_name(session, name, None)
            self._check_ip(session, address, None)
            if array_row is not None:
                self._check_follow(session, None, array_row)
            if host_row is not None:
                require_feature(session, host_row)
                require_free(session, host_row)
                if array_row is not None and not (
                    host_row.client_access and host_row.site_id == array_row.site_id
                ):
                    raise InvalidOperationError(
                        f"The server '{host_row.name}' isn't a member of the client access "
                        f"array '{array_row.name}' (its Client Access servers of site "
                        f"'{array_row.site.name}'), whose members the cluster's nodes are.",
                        target=host_row.name,
                    )
            now = utcnow()
            row = NlbClusterRow(
                guid=new_guid(),
                name=name,
                name_key=name.lower(),
                ip_address=address,
                subnet_mask=mask,
                operation_mode=mode,
                data_plane=plane,
                interface_name=interface_name,
                array_id=array_row.id if array_row is not None else None,
                follow_array=array_row is not None,
                when_created=now,
                when_changed=now,
            )
            session.add(row)
            session.flush()
            if host_row is not None:
                session.add(
                    NlbNodeRow(
                        cluster_id=row.id,
                        server_id=host_row.id,
                        interface_name=interface_name,
                        host_id=1,
                        host_priority=1,
                        initial_host_state=STARTED,
                        state=STARTED,
                        drain_until=None,
                        when_added=now,
                    )
                )
            start, end = DEFAULT_RULE
            session.add(
                NlbPortRuleRow(
                    cluster_id=row.id,
                    ip=None,
                    start_port=start,
                    end_port=end,
                    protocol="Both",
                    mode="Multiple",
                    affinity="Single",
                    timeout=0,
                )
            )
            session.flush()
            return cluster_record(self.dir, session, row)

    def set(
        self,
        cluster: object,
        *,
        name: str | None = None,
        operation_mode: str | None = None,
        data_plane: str | None = None,
        follow_array: bool | None = None,
        array: object | None = None,
        heartbeat_period: object | None = None,
        heartbeat_tolerance: object | None = None,
    ) -> NlbCluster:
        """Set-NlbCluster. -FollowArray without an array links the array whose FQDN is
        the cluster's name; turning it off keeps the nodes it had (their rows are
        written). The heartbeat period (ms) and tolerance are NLB's AliveMsgPeriod
        and AliveMsgTolerance, in their ranges."""
        period = (
            in_range("HeartbeatPeriod", heartbeat_period, *HEARTBEAT_PERIOD_RANGE)
            if heartbeat_period is not None
            else None
        )
        tolerance = (
            in_range("HeartbeatTolerance", heartbeat_tolerance, *HEARTBEAT_TOLERANCE_RANGE)
            if heartbeat_tolerance is not None
            else None
        )
        new_name = validate.fqdn("ClusterName", name) if name is not None else None
        mode = (
            choice("OperationMode", operation_mode, OPERATION_MODES)
            if operation_mode is not None
            else None
        )
        plane = choice("DataPlane", data_plane, DATA_PLANES) if data_plane is not None else None
        with self.dir.store.write() as session:
            row = resolve_cluster(self.dir, session, cluster)
            if new_name is not None:
                self._check_name(session, new_name, row.id)
                row.name, row.name_key = new_name, new_name.lower()
            if mode is not None:
                row.operation_mode = mode
            if plane is not None:
                row.data_plane = plane
            if period is not None:
                row.heartbeat_period = period
            if tolerance is not None:
                row.heartbeat_tolerance = tolerance
            if array is not None:
                array_row = self.dir.arrays.resolve_row(session, array)
                if row.follow_array and row.array_id != array_row.id:
                    materialise_all(self.dir, session, row)
                row.array_id = array_row.id
                if follow_array is None:
                    follow_array = True
            if follow_array is True:
                self._follow(session, row)
            elif follow_array is False and row.follow_array:
                materialise_all(self.dir, session, row)
                row.follow_array = False
            row.when_changed = utcnow()
            session.flush()
            return cluster_record(self.dir, session, row)

    def _follow(self, session: Session, row: NlbClusterRow) -> None:
        array_row = array_of(session, row)
        if array_row is None:
            array_row = session.scalars(
                select(ClientAccessArrayRow).where(ClientAccessArrayRow.fqdn_key == row.name_key)
            ).first()
            if array_row is None:
                raise InvalidOperationError(
                    f"The NLB cluster '{row.name}' serves no client access array, and no "
                    "array has its name as FQDN: name one with -ClientAccessArray.",
                    target=row.name,
                )
        self._check_follow(session, row.id, array_row)
        outsiders = [
            s.name
            for s in session.scalars(
                select(ServerRow)
                .join(NlbNodeRow, NlbNodeRow.server_id == ServerRow.id)
                .where(NlbNodeRow.cluster_id == row.id)
                .order_by(ServerRow.install_order)
            )
            if not (s.client_access and s.site_id == array_row.site_id)
        ]
        if outsiders:
            raise InvalidOperationError(
                f"The NLB cluster '{row.name}' has nodes that aren't members of the array "
                f"'{array_row.name}': {', '.join(outsiders)}. A cluster that follows an array "
                "has exactly its members as nodes; remove them first (Remove-NlbClusterNode).",
                target=row.name,
            )
        row.array_id = array_row.id
        row.follow_array = True

    def remove(self, cluster: object) -> NlbCluster:
        """Remove-NlbCluster: the cluster, its nodes' places and its rules."""
        with self.dir.store.write() as session:
            row = resolve_cluster(self.dir, session, cluster)
            record = cluster_record(self.dir, session, row)
            session.delete(row)
            return record
