"""Load weights (Set-NlbClusterPortRuleNodeWeight): per port rule and node a LoadWeight
0..100, or Equal (no row; the balancer reads it as 50). A node's weights go with it
when it leaves the cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from casarray.directory.errors import InvalidOperationError
from casarray.directory.nlb.objects import NlbPortRule
from casarray.directory.nlb.port_rules import resolve_rule, rule_record
from casarray.directory.nlb.reading import nodes_of, resolve_cluster
from casarray.directory.nlb.values import in_range
from casarray.directory.schema import NlbNodeWeightRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class LoadWeightService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def set(
        self,
        cluster: object,
        node: object,
        load_weight: int | None,
        *,
        port_number: int | None = None,
        ip: Any = None,
    ) -> NlbPortRule:
        """Set-NlbClusterPortRuleNodeWeight: a node's LoadWeight (0..100) on the rule
        covering `port_number`, or Equal (`load_weight` None)."""
        weight = in_range("LoadWeight", load_weight, 0, 100) if load_weight is not None else None
        with self.dir.store.write() as session:
            row = resolve_cluster(self.dir, session, cluster)
            rule = resolve_rule(session, row, port_number, ip)
            server = self.dir.servers.resolve_row(session, node)
            if server.id not in {m.server.id for m in nodes_of(self.dir, session, row)}:
                raise InvalidOperationError(
                    f"The server '{server.name}' isn't a node of the NLB cluster '{row.name}'.",
                    target=server.name,
                )
            existing = session.get(NlbNodeWeightRow, (rule.id, server.id))
            if weight is None:
                if existing is not None:
                    session.delete(existing)
            elif existing is not None:
                existing.load_weight = weight
            else:
                session.add(
                    NlbNodeWeightRow(rule_id=rule.id, server_id=server.id, load_weight=weight)
                )
            session.flush()
            return rule_record(session, row, rule)
