"""What one host's NLB driver is told: a frozen `NlbHostConfig`, the same on every
host of a cluster except for the host's own part (name, HostID, HostPriority, address,
admin state), as `New-NlbCluster`, `Add-NlbClusterNode` and the port rules set it.

The other team builds it from the directory; the command line reads it from a JSON
file (`NlbHostConfig.from_json`, `to_json`), which the driver re-reads when it changes,
so a cmdlet can set the host's admin state or the rules by rewriting the file.

`config_digest` hashes what every host must agree on (cluster IP, bucket count, the
port rules' ports, protocol, filtering mode and affinity): heartbeats carry it, and
hosts whose rules differ never converge, as NLB refuses to converge on mismatched port
rules. Load weights are each host's own (`PortRule.weights` by host name) and travel
in the heartbeat instead.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from casarray.balancer.model import Affinity, FilteringMode, HostState, PortRule, RuleProtocol
from casarray.errors import CasarrayError

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_HEARTBEAT_PERIOD",
    "DEFAULT_HEARTBEAT_PORT",
    "DEFAULT_TOLERANCE",
    "NlbConfigError",
    "NlbHostConfig",
    "OperationMode",
    "config_digest",
]

DEFAULT_BUCKETS = 60  # Windows NLB's buckets per port rule
DEFAULT_HEARTBEAT_PERIOD = 1.0  # seconds (NLB's AliveMsgPeriod, 1000 ms)
DEFAULT_TOLERANCE = 5  # missed heartbeats before a host is gone (AliveMsgTolerance)
DEFAULT_HEARTBEAT_PORT = 2504  # UDP; NLB's own heartbeats are EtherType 0x886F frames

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class NlbConfigError(CasarrayError, ValueError):
    """A host's NLB configuration is invalid (a bad address, HostID, rule, ...)."""

    category = "InvalidArgument"


class OperationMode(enum.Enum):
    """New-NlbCluster -OperationMode."""

    UNICAST = "Unicast"
    MULTICAST = "Multicast"
    IGMP_MULTICAST = "IgmpMulticast"


@dataclass(frozen=True)
class NlbHostConfig:
    cluster_ip: str  # ClusterPrimaryIP, e.g. 198.19.200.100
    interface: str  # the cluster interface inside the host's namespace, e.g. eth0
    name: str  # this host's server name, e.g. CAS01
    address: str  # this host's dedicated IP on the interface
    prefix_length: int  # of the dedicated IP's subnet (heartbeats go to its broadcast)
    host_id: int  # NLB's HostID, 1..32, unique in the cluster
    priority: int  # NLB's HostPriority, 1..32, unique; 1 is the highest
    rules: tuple[PortRule, ...]
    cluster_name: str = ""
    mode: OperationMode = OperationMode.MULTICAST
    state: HostState = HostState.STARTED  # the administrator's (Start-/Stop-/...)
    heartbeat_period: float = DEFAULT_HEARTBEAT_PERIOD
    tolerance: int = DEFAULT_TOLERANCE
    buckets: int = DEFAULT_BUCKETS
    heartbeat_port: int = DEFAULT_HEARTBEAT_PORT
    probe: bool = True  # service-aware: probe the rules' ports on this host
    probe_address: str | None = None  # None: the cluster IP
    probe_timeout: float = 1.0
    probe_failures: int = 2  # failed probes in a row before the rule's buckets go
    status_file: str | None = None  # where the host's own status JSON is written

    def __post_init__(self) -> None:
        for label, value in (("cluster IP", self.cluster_ip), ("address", self.address)):
            try:
                ipaddress.IPv4Address(value)
            except ValueError as exc:
                raise NlbConfigError(f"the {label} must be an IPv4 address, not {value!r}") from exc
        if not 0 < self.prefix_length <= 32:
            raise NlbConfigError(f"prefix length {self.prefix_length} is not 1..32")
        if not 1 <= self.host_id <= 32:
            raise NlbConfigError(f"HostID {self.host_id} is not 1..32", target=self.name)
        if not 1 <= self.priority <= 32:
            raise NlbConfigError(f"HostPriority {self.priority} is not 1..32", target=self.name)
        if not _NAME.match(self.name):
            raise NlbConfigError(f"host name {self.name!r} is not a server name")
        if not self.interface or "/" in self.interface or len(self.interface) > 15:
            raise NlbConfigError(f"interface {self.interface!r} is not an interface name")
        if not 0.01 <= self.heartbeat_period <= 60:
            raise NlbConfigError(f"heartbeat period {self.heartbeat_period} s is not 0.01..60")
        if not 1 <= self.tolerance <= 255:
            raise NlbConfigError(f"heartbeat tolerance {self.tolerance} is not 1..255")
        if not 1 <= self.buckets <= 4096:
            raise NlbConfigError(f"{self.buckets} buckets: a port rule has 1..4096")
        if not 1 <= len(self.rules) <= 32:
            raise NlbConfigError(f"{len(self.rules)} port rules: a cluster has 1..32")
        for rule in self.rules:
            if not 0 <= rule.start_port <= rule.end_port <= 65535:
                raise NlbConfigError(f"port rule {rule.start_port}-{rule.end_port} is invalid")
            if not 0 <= rule.weight(self.name) <= 100:
                raise NlbConfigError(f"load weight {rule.weight(self.name)} is not 0..100")

    @property
    def identity(self) -> tuple[object, ...]:
        """What a running driver can't change (`NlbHostDriver.reconfigure`): which
        cluster and host it is, where it listens, and the operation mode."""
        return (
            self.cluster_ip,
            self.interface,
            self.name,
            self.address,
            self.prefix_length,
            self.host_id,
            self.mode,
            self.heartbeat_port,
            self.status_file,
        )

    @property
    def seed(self) -> int:
        """The jhash seed, the same on every host: CRC-32 of the cluster IP."""
        return zlib.crc32(self.cluster_ip.encode())

    @property
    def broadcast(self) -> str:
        """The broadcast address of the host's subnet (where heartbeats go)."""
        network = ipaddress.IPv4Network(f"{self.address}/{self.prefix_length}", strict=False)
        return str(network.broadcast_address)

    def weights(self) -> tuple[int, ...]:
        """This host's LoadWeight of each rule."""
        return tuple(rule.weight(self.name) for rule in self.rules)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "cluster_ip": self.cluster_ip,
            "cluster_name": self.cluster_name,
            "interface": self.interface,
            "name": self.name,
            "address": self.address,
            "prefix_length": self.prefix_length,
            "host_id": self.host_id,
            "priority": self.priority,
            "mode": self.mode.value,
            "state": self.state.value,
            "heartbeat_period": self.heartbeat_period,
            "tolerance": self.tolerance,
            "buckets": self.buckets,
            "heartbeat_port": self.heartbeat_port,
            "probe": self.probe,
            "probe_address": self.probe_address,
            "probe_timeout": self.probe_timeout,
            "probe_failures": self.probe_failures,
            "status_file": self.status_file,
            "rules": [_rule_json(rule) for rule in self.rules],
        }
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> NlbHostConfig:
        """The config in `text` (as `to_json` writes it); NlbConfigError if invalid."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise NlbConfigError("an NLB host config is a JSON object")
            rules = tuple(_rule_from_json(item) for item in data.pop("rules"))
            mode = OperationMode(data.pop("mode", OperationMode.MULTICAST.value))
            state = HostState(data.pop("state", HostState.STARTED.value))
            return cls(rules=rules, mode=mode, state=state, **data)
        except NlbConfigError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise NlbConfigError(f"invalid NLB host config: {exc}") from exc


def _rule_json(rule: PortRule) -> dict[str, Any]:
    return {
        "start_port": rule.start_port,
        "end_port": rule.end_port,
        "protocol": rule.protocol.value,
        "mode": rule.mode.value,
        "affinity": rule.affinity.value,
        "weights": dict(rule.weights),
    }


def _rule_from_json(item: Any) -> PortRule:
    if not isinstance(item, dict):
        raise NlbConfigError("a port rule is a JSON object")
    return PortRule(
        start_port=int(item["start_port"]),
        end_port=int(item.get("end_port") or item["start_port"]),
        protocol=RuleProtocol(item.get("protocol", RuleProtocol.TCP.value)),
        mode=FilteringMode(item.get("mode", FilteringMode.MULTIPLE.value)),
        affinity=Affinity(item.get("affinity", Affinity.SINGLE.value)),
        weights={str(k): int(v) for k, v in dict(item.get("weights", {})).items()},
    )


def config_digest(config: NlbHostConfig) -> bytes:
    """8 bytes every host of the cluster must share: cluster IP, buckets, the rules'
    ports, protocols, filtering modes and affinities (not the per-host weights)."""
    shared = [config.cluster_ip, config.buckets]
    shared += [
        [r.start_port, r.end_port, r.protocol.value, r.mode.value, r.affinity.value]
        for r in config.rules
    ]
    return hashlib.blake2b(json.dumps(shared).encode(), digest_size=8).digest()
