"""The port rules of NLB clusters (Add-, Get-, Set-, Remove-NlbClusterPortRule).

A rule covers StartPort..EndPort (0..65535, start <= end) on one cluster IP or on all
("All"), with Protocol Tcp|Udp|Both, Mode Multiple|Single|Disabled, Affinity
None|Single|Network and a Timeout in minutes; the ranges of rules on the same IP never
overlap (NLB refuses it). A cmdlet names a rule by a port it covers (and its IP when
that is needed to tell two apart). -ProxyProtocol is casarray's own: the balancer
starts each connection to a node with a PROXY v2 header naming the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.errors import ConflictError, InvalidOperationError, InvalidValueError
from casarray.directory.nlb.objects import NlbPortRule
from casarray.directory.nlb.reading import cluster_rows, resolve_cluster
from casarray.directory.nlb.values import (
    AFFINITIES,
    MAX_TIMEOUT,
    MODES,
    PROTOCOLS,
    choice,
    in_range,
    ip_text,
    port,
    rule_ip,
)
from casarray.directory.schema import NlbClusterRow, NlbNodeWeightRow, NlbPortRuleRow, ServerRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def rule_rows(session: Session, cluster: NlbClusterRow) -> list[NlbPortRuleRow]:
    """The cluster's rules, by start port."""
    return list(
        session.scalars(
            select(NlbPortRuleRow)
            .where(NlbPortRuleRow.cluster_id == cluster.id)
            .order_by(NlbPortRuleRow.start_port, NlbPortRuleRow.id)
        )
    )


def rule_record(session: Session, cluster: NlbClusterRow, rule: NlbPortRuleRow) -> NlbPortRule:
    weights = session.execute(
        select(ServerRow.name, NlbNodeWeightRow.load_weight)
        .join(ServerRow, NlbNodeWeightRow.server_id == ServerRow.id)
        .where(NlbNodeWeightRow.rule_id == rule.id)
        .order_by(ServerRow.install_order)
    ).all()
    return NlbPortRule(
        cluster=cluster.name,
        cluster_guid=cluster.guid,
        cluster_ip=cluster.ip_address,
        ip=rule.ip,
        start_port=rule.start_port,
        end_port=rule.end_port,
        protocol=rule.protocol,
        mode=rule.mode,
        affinity=rule.affinity,
        timeout=rule.timeout,
        weights=tuple((n, w) for n, w in weights),
        proxy_protocol=bool(rule.proxy_protocol),
    )


def resolve_rule(
    session: Session, cluster: NlbClusterRow, port_number: int | None, ip: Any
) -> NlbPortRuleRow:
    """The rule covering `port_number` (on `ip` when given); with no port, the
    cluster's only rule."""
    rules = rule_rows(session, cluster)
    if ip is not None:
        wanted = rule_ip(ip)
        rules = [r for r in rules if r.ip == wanted]
    if port_number is not None:
        number = port("Port", port_number)
        rules = [r for r in rules if r.start_port <= number <= r.end_port]
    if not rules:
        where = f" covering port {port_number}" if port_number is not None else ""
        on = f" on {ip}" if ip is not None else ""
        raise InvalidOperationError(
            f"The NLB cluster '{cluster.name}' has no port rule{where}{on}.",
            target=cluster.name,
        )
    if len(rules) > 1:
        listed = ", ".join(f"{r.start_port}-{r.end_port} on {ip_text(r.ip)}" for r in rules)
        raise InvalidOperationError(
            f"Several port rules of the NLB cluster '{cluster.name}' match: {listed}. "
            "Name one with -Port and -IP.",
            target=cluster.name,
        )
    return rules[0]


def _check_overlap(
    session: Session,
    cluster: NlbClusterRow,
    ip: str | None,
    start: int,
    end: int,
    exclude_id: int | None,
) -> None:
    if start > end:
        raise InvalidValueError(
            "EndPort",
            end,
            f"is lower than the start port {start}; a rule covers StartPort to EndPort.",
        )
    for other in rule_rows(session, cluster):
        if other.id == exclude_id or other.ip != ip:
            continue
        if other.start_port <= end and start <= other.end_port:
            raise ConflictError(
                f"The port range {start}-{end} on {ip_text(ip)} overlaps the port rule "
                f"{other.start_port}-{other.end_port} on {ip_text(other.ip)} of the NLB "
                f"cluster '{cluster.name}'; NLB doesn't allow port rules on the same IP "
                "to overlap. Narrow or remove that rule first (Set-NlbClusterPortRule "
                f"-Port {other.start_port} -NewStartPort/-NewEndPort, or "
                f"Remove-NlbClusterPortRule -Port {other.start_port}).",
                conflicting=f"{other.start_port}-{other.end_port}",
                target=f"{start}-{end}",
            )


def _check_ip_of_cluster(cluster: NlbClusterRow, ip: str | None) -> None:
    if ip is not None and ip != cluster.ip_address:
        raise InvalidValueError(
            "IP",
            ip,
            f"isn't an IP address of the NLB cluster '{cluster.name}' (its address is "
            f"{cluster.ip_address}); use it or All.",
        )


class PortRuleService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def get(
        self, cluster: object | None = None, *, port_number: int | None = None, ip: Any = None
    ) -> list[NlbPortRule]:
        """Get-NlbClusterPortRule: a cluster's rules (or every cluster's), optionally
        those covering a port or on an IP."""
        with self.dir.store.read() as session:
            rows = cluster_rows(self.dir, session, cluster)
            out = []
            wanted_ip = rule_ip(ip) if ip is not None else None
            number = port("Port", port_number) if port_number is not None else None
            for row in rows:
                for rule in rule_rows(session, row):
                    if ip is not None and rule.ip != wanted_ip:
                        continue
                    if number is not None and not rule.start_port <= number <= rule.end_port:
                        continue
                    out.append(rule_record(session, row, rule))
            return out

    def add(
        self,
        cluster: object,
        start_port: int,
        end_port: int,
        *,
        ip: str | None = None,
        protocol: str = "Both",
        mode: str = "Multiple",
        affinity: str = "Single",
        timeout: int = 0,
        proxy_protocol: bool = False,
    ) -> NlbPortRule:
        """Add-NlbClusterPortRule, with NLB's defaults."""
        start, end = port("StartPort", start_port), port("EndPort", end_port)
        new_ip = rule_ip(ip)
        values = dict(
            protocol=choice("Protocol", protocol, PROTOCOLS),
            mode=choice("Mode", mode, MODES),
            affinity=choice("Affinity", affinity, AFFINITIES),
            timeout=in_range("Timeout", timeout, 0, MAX_TIMEOUT),
            proxy_protocol=bool(proxy_protocol),
        )
        with self.dir.store.write() as session:
            row = resolve_cluster(self.dir, session, cluster)
            _check_ip_of_cluster(row, new_ip)
            _check_overlap(session, row, new_ip, start, end, None)
            rule = NlbPortRuleRow(
                cluster_id=row.id, ip=new_ip, start_port=start, end_port=end, **values
            )
            session.add(rule)
            session.flush()
            return rule_record(session, row, rule)

    def set(
        self,
        cluster: object,
        port_number: int | None = None,
        *,
        ip: Any = None,
        new_start_port: int | None = None,
        new_end_port: int | None = None,
        new_ip: Any = None,
        new_protocol: str | None = None,
        new_mode: str | None = None,
        new_affinity: str | None = None,
        new_timeout: int | None = None,
        proxy_protocol: bool | None = None,
    ) -> NlbPortRule:
        """Set-NlbClusterPortRule: the rule covering `port_number` gets new values."""
        start = port("NewStartPort", new_start_port) if new_start_port is not None else None
        end = port("NewEndPort", new_end_port) if new_end_port is not None else None
        protocol = choice("NewProtocol", new_protocol, PROTOCOLS) if new_protocol else None
        mode = choice("NewMode", new_mode, MODES) if new_mode else None
        affinity = choice("NewAffinity", new_affinity, AFFINITIES) if new_affinity else None
        timeout = (
            in_range("NewTimeout", new_timeout, 0, MAX_TIMEOUT) if new_timeout is not None else None
        )
        with self.dir.store.write() as session:
            row = resolve_cluster(self.dir, session, cluster)
            rule = resolve_rule(session, row, port_number, ip)
            target_ip = rule.ip if new_ip is None else rule_ip(new_ip)
            _check_ip_of_cluster(row, target_ip)
            target_start = start if start is not None else rule.start_port
            target_end = end if end is not None else rule.end_port
            _check_overlap(session, row, target_ip, target_start, target_end, rule.id)
            rule.ip, rule.start_port, rule.end_port = target_ip, target_start, target_end
            if protocol is not None:
                rule.protocol = protocol
            if mode is not None:
                rule.mode = mode
            if affinity is not None:
                rule.affinity = affinity
            if timeout is not None:
                rule.timeout = timeout
            if proxy_protocol is not None:
                rule.proxy_protocol = bool(proxy_protocol)
            session.flush()
            return rule_record(session, row, rule)

    def remove(
        self, cluster: object, port_number: int | None = None, *, ip: Any = None
    ) -> NlbPortRule:
        """Remove-NlbClusterPortRule: the rule covering `port_number`."""
        with self.dir.store.write() as session:
            row = resolve_cluster(self.dir, session, cluster)
            rule = resolve_rule(session, row, port_number, ip)
            record = rule_record(session, row, rule)
            session.delete(rule)
            return record
