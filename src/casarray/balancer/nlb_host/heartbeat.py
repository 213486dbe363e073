"""The heartbeat every host of an NLB cluster sends every period: a small versioned
binary format, sans-IO (`encode`, `parse`).

NLB's hosts send "alive" frames (EtherType 0x886F) carrying the host's ID, priority,
and its view of the cluster; here they are UDP datagrams to the subnet broadcast.
Version 1, big-endian, exactly `HEADER.size + len(name) + 2 * rules` bytes:

    magic "CNLB" | version 1 | host id | host priority | admin state
    | cluster id (the cluster IPv4 as u32) | sequence u32 | period ms u16
    | tolerance u8 | rule count u8 | config digest 8 | view digest 8
    | name length u8 | name (ASCII) | per rule: healthy 0/1, load weight 0..100

`parse` trusts nothing: any datagram on the port may be hostile, so every length,
range and code is checked and anything else is a `HeartbeatError` naming the fault.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from casarray.balancer.model import HostState
from casarray.errors import CasarrayError

__all__ = ["HEADER", "MAGIC", "VERSION", "Heartbeat", "HeartbeatError", "encode", "parse"]

MAGIC = b"CNLB"
VERSION = 1
HEADER = struct.Struct("!4sBBBBIIHBB8s8sB")
MAX_RULES = 32
MAX_NAME = 63

_STATES = (HostState.STARTED, HostState.STOPPED, HostState.SUSPENDED, HostState.DRAINING)
_STATE_CODE = {state: code for code, state in enumerate(_STATES, 1)}
_NAME = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._-]*")


class HeartbeatError(CasarrayError, ValueError):
    """A datagram on the heartbeat port is not a valid heartbeat."""


@dataclass(frozen=True)
class Heartbeat:
    cluster_id: int  # the cluster IP as a u32
    host_id: int  # 1..32
    priority: int  # 1..32
    name: str
    state: HostState
    sequence: int  # u32, +1 per heartbeat
    period_ms: int
    tolerance: int
    config_digest: bytes  # 8 bytes: the rules every host must share
    view_digest: bytes  # 8 bytes: the sender's view of the live members
    health: tuple[bool, ...]  # per port rule: the sender's service passes its probe
    weights: tuple[int, ...]  # per port rule: the sender's LoadWeight


def encode(beat: Heartbeat) -> bytes:
    name = beat.name.encode("ascii", "replace")
    if not (_NAME.fullmatch(name) and len(name) <= MAX_NAME):
        raise HeartbeatError(f"host name {beat.name!r} can't go in a heartbeat")
    if len(beat.health) != len(beat.weights) or len(beat.health) > MAX_RULES:
        raise HeartbeatError("a heartbeat carries one health and one weight per rule")
    if len(beat.config_digest) != 8 or len(beat.view_digest) != 8:
        raise HeartbeatError("heartbeat digests are 8 bytes")
    if not (1 <= beat.host_id <= 32 and 1 <= beat.priority <= 32):
        raise HeartbeatError(f"host id {beat.host_id} or priority {beat.priority} not 1..32")
    head = HEADER.pack(
        MAGIC,
        VERSION,
        beat.host_id,
        beat.priority,
        _STATE_CODE[beat.state],
        beat.cluster_id,
        beat.sequence & 0xFFFFFFFF,
        min(max(beat.period_ms, 1), 0xFFFF),
        min(max(beat.tolerance, 1), 0xFF),
        len(beat.health),
        beat.config_digest,
        beat.view_digest,
        len(name),
    )
    rules = b"".join(
        bytes((int(ok), min(max(weight, 0), 100)))
        for ok, weight in zip(beat.health, beat.weights, strict=True)
    )
    return head + name + rules


def parse(data: bytes) -> Heartbeat:
    """The heartbeat in `data`; HeartbeatError if it is anything else."""
    if len(data) < HEADER.size:
        raise HeartbeatError(f"heartbeat too short: {len(data)} bytes")
    (
        magic,
        version,
        host_id,
        priority,
        state_code,
        cluster_id,
        sequence,
        period_ms,
        tolerance,
        rule_count,
        config_digest,
        view_digest,
        name_length,
    ) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise HeartbeatError("not a casarray NLB heartbeat (bad magic)")
    if version != VERSION:
        raise HeartbeatError(f"heartbeat version {version} is not supported")
    if not 1 <= host_id <= 32:
        raise HeartbeatError(f"host id {host_id} is not 1..32")
    if not 1 <= priority <= 32:
        raise HeartbeatError(f"host priority {priority} is not 1..32")
    if not 1 <= state_code <= len(_STATES):
        raise HeartbeatError(f"unknown host state code {state_code}")
    if period_ms == 0 or tolerance == 0:
        raise HeartbeatError("heartbeat period and tolerance must be positive")
    if rule_count > MAX_RULES:
        raise HeartbeatError(f"{rule_count} port rules: at most {MAX_RULES}")
    if not 1 <= name_length <= MAX_NAME:
        raise HeartbeatError(f"host name length {name_length} is not 1..{MAX_NAME}")
    expected = HEADER.size + name_length + 2 * rule_count
    if len(data) != expected:
        raise HeartbeatError(f"heartbeat is {len(data)} bytes, its header says {expected}")
    name = data[HEADER.size : HEADER.size + name_length]
    if not _NAME.fullmatch(name):
        raise HeartbeatError("host name in heartbeat is not a server name")
    body = data[HEADER.size + name_length :]
    health = tuple(body[0::2])
    weights = tuple(body[1::2])
    if any(flag > 1 for flag in health):
        raise HeartbeatError("rule health must be 0 or 1")
    if any(weight > 100 for weight in weights):
        raise HeartbeatError("load weight must be 0..100")
    return Heartbeat(
        cluster_id=cluster_id,
        host_id=host_id,
        priority=priority,
        name=name.decode("ascii"),
        state=_STATES[state_code - 1],
        sequence=sequence,
        period_ms=period_ms,
        tolerance=tolerance,
        config_digest=config_digest,
        view_digest=view_digest,
        health=tuple(flag == 1 for flag in health),
        weights=weights,
    )
