"""A simulated cluster of `Membership` state machines on a shared clock, for
transcripts: every host polls, and its heartbeats reach every other connected host."""

from __future__ import annotations

import dataclasses

from casarray.balancer.model import Affinity, FilteringMode, PortRule, RuleProtocol
from casarray.balancer.nlb_host.config import NlbHostConfig
from casarray.balancer.nlb_host.membership import Membership

CLUSTER_IP = "198.19.200.100"


def rules(**weights: int) -> tuple[PortRule, ...]:
    return (
        PortRule(443, 443, protocol=RuleProtocol.TCP, affinity=Affinity.NONE, weights=weights),
        PortRule(143, 143, protocol=RuleProtocol.TCP, mode=FilteringMode.SINGLE),
    )


def config(host_id: int, priority: int | None = None, **kwargs: object) -> NlbHostConfig:
    base = NlbHostConfig(
        cluster_ip=CLUSTER_IP,
        interface="eth0",
        name=f"CAS0{host_id}",
        address=f"198.19.200.{10 + host_id}",
        prefix_length=24,
        host_id=host_id,
        priority=priority or host_id,
        rules=rules(),
        heartbeat_period=1.0,
        tolerance=5,
    )
    return dataclasses.replace(base, **kwargs)  # type: ignore[arg-type]


class Cluster:
    def __init__(self, *configs: NlbHostConfig) -> None:
        self.now = 0.0
        self.hosts: dict[int, Membership] = {}
        self.down: set[int] = set()
        for c in configs:
            self.add(c)

    def add(self, c: NlbHostConfig) -> Membership:
        self.hosts[c.host_id] = Membership(c, self.now)
        self.down.discard(c.host_id)
        return self.hosts[c.host_id]

    def run(self, seconds: float, step: float = 0.1) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 6)
            for hid, host in self.hosts.items():
                if hid in self.down:
                    continue
                for beat in host.poll(self.now):
                    for other_id, other in self.hosts.items():
                        if other_id != hid and other_id not in self.down:
                            other.receive(beat, self.now)

    def owners(self, rule: int = 0) -> dict[int, set[int]]:
        """bucket -> the live hosts that own it now."""
        result: dict[int, set[int]] = {}
        for hid, host in self.hosts.items():
            if hid in self.down:
                continue
            for bucket in host.owned[rule]:
                result.setdefault(bucket, set()).add(hid)
        return result

    def live(self) -> list[Membership]:
        return [h for hid, h in self.hosts.items() if hid not in self.down]
