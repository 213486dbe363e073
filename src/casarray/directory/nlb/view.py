"""The cluster as a whole, for whoever follows it: `snapshot` reads a cluster, its nodes
and its port rules in one transaction (the balancer adapts that into its own view;
the directory imports nothing of the balancer), and `proxy_sources` tells a Client
Access server which cluster IPs send it a PROXY protocol header."""

from __future__ import annotations

from typing import TYPE_CHECKING

from casarray.directory.nlb.objects import ClusterSnapshot, rule_for
from casarray.directory.nlb.port_rules import rule_record, rule_rows
from casarray.directory.nlb.reading import (
    cluster_of_server,
    cluster_record,
    node_records,
    nodes_of,
    resolve_cluster,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class ViewService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def snapshot(self, cluster: object) -> ClusterSnapshot:
        """The cluster (by FQDN, IP, GUID or one of its hosts), its nodes and its port
        rules, read in one transaction. A node whose drain timed out is Stopped."""
        with self.dir.store.read() as session:
            row = resolve_cluster(self.dir, session, cluster)
            members = nodes_of(self.dir, session, row)
            return ClusterSnapshot(
                cluster=cluster_record(self.dir, session, row, members),
                nodes=tuple(node_records(row, members)),
                rules=tuple(rule_record(session, row, r) for r in rule_rows(session, row)),
            )

    def proxy_sources(self, server: object, port: int) -> frozenset[str]:
        """The addresses that open connections to `port` of the server `server` with a
        PROXY protocol header: the IP of the cluster it is a node of when the rule
        covering `port` there (the narrowest, as the balancer picks) says
        -ProxyProtocol, since the Proxy data plane connects from the cluster IP. Empty
        when the server is a node of no cluster; NotFoundError for an unknown server."""
        with self.dir.store.read() as session:
            server_row = self.dir.servers.resolve_row(session, server)
            row = cluster_of_server(session, server_row)
            if row is None:
                return frozenset()
            rule = rule_for((rule_record(session, row, r) for r in rule_rows(session, row)), port)
            if rule is None or not rule.proxy_protocol:
                return frozenset()
            return frozenset({row.ip_address})
