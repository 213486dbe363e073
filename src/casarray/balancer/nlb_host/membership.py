"""One host's membership and convergence state machine, sans-IO: heartbeats in and out
as bytes, the clock passed in, and out come the buckets this host takes new
connections in (`owned`) and what it reports of itself (`status`).

- Every `heartbeat_period` the host sends a heartbeat (sooner, once, when its view
  changes). A peer not heard for `tolerance` periods is gone.
- The view is the live members (this host included) with their admin state, priority,
  per-rule health and weights. Every host computes `bucket_map` over its view.
- Converged: every live peer's last heartbeat names the same view (digest) and the same
  port rules as this host's; otherwise Converging.
- A host gives up buckets at once when its own view no longer gives them to it, but
  takes new buckets only when converged (and, after start, not before it has listened
  for two periods), so two hosts never own one bucket: the other host gives a bucket
  up before its heartbeat announces the view that makes this host take it (the driver
  calls `advance`, applies `owned` to the data plane, then sends `poll`'s heartbeats).
- Admin states: Started takes buckets; Draining, Suspended and Stopped take none (the
  data plane keeps a draining host's connections; `drops_everything` says when the
  host serves nothing at all: Stopped and Suspended, as Stop-NlbClusterNode without
  -Drain). A non-Started host still sends heartbeats so the others see its state.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any

from casarray.balancer.model import HostState
from casarray.balancer.nlb_host.bucket_map import (
    BucketMap,
    Member,
    bucket_map,
    owned_by,
    view_digest,
)
from casarray.balancer.nlb_host.config import NlbHostConfig, config_digest
from casarray.balancer.nlb_host.heartbeat import Heartbeat, encode, parse

__all__ = ["CONVERGED", "CONVERGING", "Membership"]

CONVERGED = "Converged"
CONVERGING = "Converging"


@dataclass
class _Peer:
    beat: Heartbeat
    last_seen: float


class Membership:
    """The state machine of host `config.host_id`; `now` is any monotonic clock."""

    def __init__(self, config: NlbHostConfig, now: float) -> None:
        self.config = config
        self._config_digest = config_digest(config)
        self._cluster_id = int(ipaddress.IPv4Address(config.cluster_ip))
        self._state = config.state
        self._health = [True] * len(config.rules)
        self._peers: dict[int, _Peer] = {}
        self._sequence = 0
        self._listen_until = now + 2 * config.heartbeat_period
        self._next_beat = now
        self._last_sent = -math.inf
        self._sent_view: bytes | None = None
        self._owned: tuple[frozenset[int], ...] = tuple(frozenset() for _ in config.rules)
        self._map: BucketMap = ()
        self._map_digest: bytes | None = None
        self._view = b""
        self.rejected = 0  # datagrams that were not heartbeats
        self._recompute(now)

    # inputs

    def set_state(self, state: HostState, now: float) -> None:
        """Start-, Stop-, Suspend-, Resume-NlbClusterNode, Stop -Drain on this host."""
        self._state = state
        self._recompute(now)

    def reconfigure(self, config: NlbHostConfig, now: float) -> None:
        """The administrator changed the cluster (weights, priority, heartbeat timings,
        port rules, admin state) without a restart: the view changes and the hosts
        converge as NLB's do (a weight moves only the buckets it moves). New port rules
        (ports, filtering mode, affinity) give up every bucket (old rule indexes
        mean nothing under the new rules) and start healthy; the hosts take buckets
        again once they all agree on the rules."""
        if (config.cluster_ip, config.host_id) != (self.config.cluster_ip, self.config.host_id):
            raise ValueError("a host's cluster IP and HostID need a new Membership")
        digest = config_digest(config)  # the rules' ports, modes, affinities, buckets
        rules_changed = digest != self._config_digest
        self.config = config
        self._config_digest = digest
        self._state = config.state
        if rules_changed:
            self._health = [True] * len(config.rules)
            self._owned = tuple(frozenset() for _ in config.rules)
            self._map_digest = None
        self._next_beat = min(self._next_beat, now + config.heartbeat_period)
        self._recompute(now)

    def set_health(self, rule: int, healthy: bool, now: float) -> None:
        """This host's service for rule `rule` passed (or failed) its probe."""
        if self._health[rule] != healthy:
            self._health[rule] = healthy
            self._recompute(now)

    def receive(self, data: bytes, now: float) -> Heartbeat | None:
        """A datagram from the heartbeat port: the heartbeat of a peer of this cluster,
        or None (another cluster's, or this host's own echo). HeartbeatError if the
        datagram is not a heartbeat."""
        try:
            beat = parse(data)
        except ValueError:
            self.rejected += 1
            raise
        if beat.cluster_id != self._cluster_id or beat.host_id == self.config.host_id:
            return None
        self._peers[beat.host_id] = _Peer(beat, now)
        self._recompute(now)
        return beat

    def advance(self, now: float) -> list[int]:
        """Let time pass: forget the peers not heard for `tolerance` periods (their
        HostIDs are returned) and end the listening after start."""
        limit = self.config.tolerance * self.config.heartbeat_period
        gone = [hid for hid, peer in self._peers.items() if now - peer.last_seen > limit]
        for hid in gone:
            del self._peers[hid]
        self._recompute(now)
        return gone

    def poll(self, now: float) -> list[bytes]:
        """The heartbeats to send now (at most one): when the period is up, or when the
        view changed since the last one (not more often than every quarter period)."""
        self.advance(now)
        period = self.config.heartbeat_period
        changed = self._sent_view != self._view and now - self._last_sent >= period / 4
        if now < self._next_beat and not changed:
            return []
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        self._next_beat = now + period
        self._last_sent = now
        self._sent_view = self._view
        return [encode(self.heartbeat())]

    def heartbeat_now(self, now: float) -> bytes:
        """A heartbeat to send at once, out of turn (the last one, when leaving)."""
        self._next_beat = now
        beats = self.poll(now)
        return beats[0]

    def next_wakeup(self, now: float) -> float:
        """When `poll` next has something to do (a heartbeat or an expiry)."""
        limit = self.config.tolerance * self.config.heartbeat_period
        times = [self._next_beat, self._listen_until]
        times += [peer.last_seen + limit for peer in self._peers.values()]
        if self._sent_view != self._view:
            times.append(self._last_sent + self.config.heartbeat_period / 4)
        future = [t + 1e-6 for t in times if t + 1e-6 > now]
        return min(future, default=now + self.config.heartbeat_period)

    # outputs

    def heartbeat(self) -> Heartbeat:
        me = self._me()
        return Heartbeat(
            cluster_id=self._cluster_id,
            host_id=me.host_id,
            priority=me.priority,
            name=me.name,
            state=me.state,
            sequence=self._sequence,
            period_ms=round(self.config.heartbeat_period * 1000),
            tolerance=self.config.tolerance,
            config_digest=self._config_digest,
            view_digest=self._view,
            health=me.health,
            weights=me.weights,
        )

    def healthy(self, rule: int) -> bool:
        """Whether this host's service for rule `rule` passes its probe."""
        return self._health[rule]

    @property
    def state(self) -> HostState:
        return self._state

    @property
    def members(self) -> tuple[Member, ...]:
        """The live members, this host included, by HostID."""
        members = [self._me()] + [_member(p.beat) for p in self._peers.values()]
        return tuple(sorted(members, key=lambda m: m.host_id))

    @property
    def converged(self) -> bool:
        return all(
            p.beat.view_digest == self._view and p.beat.config_digest == self._config_digest
            for p in self._peers.values()
        )

    @property
    def map(self) -> BucketMap:
        """The bucket map of this host's current view."""
        return self._map

    @property
    def owned(self) -> tuple[frozenset[int], ...]:
        """Per rule, the buckets this host takes new connections in now."""
        return self._owned

    @property
    def drops_everything(self) -> bool:
        """Stopped or Suspended: the host serves nothing, established connections too."""
        return self._state in (HostState.STOPPED, HostState.SUSPENDED)

    @property
    def default_host(self) -> bool:
        """Whether this host takes the cluster IP's traffic no port rule covers (NLB's
        default host: the Started member with the best HostPriority), when converged."""
        started = [m for m in self.members if m.state is HostState.STARTED]
        best = min(started, key=lambda m: (m.priority, m.host_id), default=None)
        return self.converged and best is not None and best.host_id == self.config.host_id

    @property
    def answers_arp(self) -> bool:
        """Whether this host gives the one ARP answer for the cluster IP (`arp`): the
        live member with the best HostPriority that still has connections to serve
        (Started or Draining), in this host's view."""
        serving = [m for m in self.members if m.state in (HostState.STARTED, HostState.DRAINING)]
        best = min(serving, key=lambda m: (m.priority, m.host_id), default=None)
        return best is not None and best.host_id == self.config.host_id

    def status(self) -> dict[str, Any]:
        """What Get-NlbClusterNode shows of this host, as the host itself reports it."""
        if self._state is HostState.STARTED:
            state = CONVERGED if self.converged else CONVERGING
        else:
            state = self._state.value
        rules = self.config.rules
        return {
            "cluster_ip": self.config.cluster_ip,
            "name": self.config.name,
            "host_id": self.config.host_id,
            "priority": self.config.priority,
            "state": state,
            "admin_state": self._state.value,
            "converged": self.converged,
            "answers_arp": self.answers_arp,
            "view": self._view.hex(),
            "members": [
                {
                    "host_id": m.host_id,
                    "name": m.name,
                    "priority": m.priority,
                    "state": m.state.value,
                    "health": list(m.health),
                }
                for m in self.members
            ],
            "owned": {
                f"{r.start_port}-{r.end_port}/{r.protocol.value}": sorted(owned)
                for r, owned in zip(rules, self._owned, strict=True)
            },
        }

    # internals

    def _me(self) -> Member:
        return Member(
            host_id=self.config.host_id,
            name=self.config.name,
            priority=self.config.priority,
            state=self._state,
            health=tuple(self._health),
            weights=self.config.weights(),
        )

    def _recompute(self, now: float) -> None:
        members = self.members
        self._view = view_digest(self._config_digest, members)
        if self._view != self._map_digest:
            self._map = bucket_map(self.config.rules, members, self.config.buckets)
            self._map_digest = self._view
        target = owned_by(self._map, self.config.host_id)
        if self._state is not HostState.STARTED:
            self._owned = tuple(frozenset() for _ in target)
        elif self.converged and now >= self._listen_until:
            self._owned = target
        else:
            self._owned = tuple(old & new for old, new in zip(self._owned, target, strict=True))


def _member(beat: Heartbeat) -> Member:
    return Member(
        host_id=beat.host_id,
        name=beat.name,
        priority=beat.priority,
        state=beat.state,
        health=beat.health,
        weights=beat.weights,
    )
