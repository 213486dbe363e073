"""The bucket map: which host takes new connections in each bucket of each port rule,
a pure function of the live members (as their heartbeats describe them), so every host
that has heard the same heartbeats computes the same map without asking anyone.

Windows NLB cuts each port rule's client hash space into 60 buckets. Here bucket `b`
of a Multiple-hosts rule goes to the rendezvous winner of `hashing.slot_key(b)` among
the members that are Started and whose service passes the rule's probe, weighted by
their LoadWeight (`hashing.slot_table`): a member leaving moves only its own buckets,
one joining takes ~its share from each of the others. Single host mode gives every
bucket to the eligible member with the best HostPriority; Disabled gives none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from casarray.balancer.hashing import slot_table
from casarray.balancer.model import HostState, Node, PortRule

__all__ = ["BucketMap", "Member", "bucket_map", "moves", "owned_by", "view_digest"]

# Per rule, bucket -> the HostID that takes its new connections (None: nobody).
BucketMap = tuple[tuple[int | None, ...], ...]


@dataclass(frozen=True)
class Member:
    """A live host as its own heartbeat (or, for this host, its own state) says."""

    host_id: int
    name: str
    priority: int
    state: HostState
    health: tuple[bool, ...]  # per rule
    weights: tuple[int, ...]  # per rule

    def healthy(self, rule: int) -> bool:
        return rule < len(self.health) and self.health[rule]

    def weight(self, rule: int) -> int:
        return self.weights[rule] if rule < len(self.weights) else 0


def bucket_map(rules: Sequence[PortRule], members: Sequence[Member], buckets: int) -> BucketMap:
    """The map every host computes from the same members; members in any order."""
    ordered = sorted(members, key=lambda m: m.host_id)
    nodes = [
        Node(name=m.name, address="", host_id=m.host_id, priority=m.priority, state=m.state)
        for m in ordered
    ]
    result: list[tuple[int | None, ...]] = []
    for index, rule in enumerate(rules):
        healthy = {m.name for m in ordered if m.healthy(index)}
        weights = {m.name: float(m.weight(index)) for m in ordered}
        table = slot_table(rule, nodes, buckets, healthy=healthy, weights=weights)
        result.append(tuple(None if node is None else node.host_id for node in table))
    return tuple(result)


def owned_by(buckets: BucketMap, host_id: int) -> tuple[frozenset[int], ...]:
    """Per rule, the buckets of `host_id`."""
    return tuple(
        frozenset(b for b, owner in enumerate(rule) if owner == host_id) for rule in buckets
    )


def moves(before: BucketMap, after: BucketMap) -> int:
    """How many (rule, bucket) pairs changed hands."""
    return sum(
        1
        for old, new in zip(before, after, strict=True)
        for a, b in zip(old, new, strict=True)
        if a != b
    )


def view_digest(config_digest: bytes, members: Sequence[Member]) -> bytes:
    """8 bytes naming a view: the shared config and every input of the map."""
    h = hashlib.blake2b(config_digest, digest_size=8)
    for m in sorted(members, key=lambda m: m.host_id):
        h.update(f"|{m.host_id},{m.name.lower()},{m.priority},{m.state.value},".encode())
        h.update(bytes(int(ok) for ok in m.health) + b"/" + bytes(m.weights))
    return h.digest()
