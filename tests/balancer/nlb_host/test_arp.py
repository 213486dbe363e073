"""Transcripts of the one ARP answer for the cluster IP: requests in, the reply (or
nothing) out, as bytes; and which host of a cluster answers."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from casarray.balancer.model import HostState
from casarray.balancer.nlb_host.arp import answer, mac_bytes, parse_request

from .helpers import Cluster, config

CLUSTER = "198.19.200.100"
CLUSTER_MAC = mac_bytes("03:bf:c6:13:c8:64")
OWN_MAC = mac_bytes("aa:bb:cc:00:00:01")
CLIENT_MAC = mac_bytes("aa:bb:cc:00:00:99")
CLIENT_IP = bytes((198, 19, 200, 2))


def request(target: bytes, sender_ip: bytes = CLIENT_IP, op: int = 1) -> bytes:
    eth = b"\xff" * 6 + CLIENT_MAC + b"\x08\x06"
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
    return eth + body + CLIENT_MAC + sender_ip + b"\x00" * 6 + target


def test_a_request_for_the_cluster_ip_gets_the_cluster_mac() -> None:
    reply = answer(request(bytes((198, 19, 200, 100))), CLUSTER, CLUSTER_MAC, OWN_MAC)
    assert reply is not None and len(reply) == 60
    assert reply[0:6] == CLIENT_MAC and reply[6:12] == OWN_MAC and reply[12:14] == b"\x08\x06"
    assert reply[20:22] == b"\x00\x02"  # a reply
    assert reply[22:28] == CLUSTER_MAC and reply[28:32] == bytes((198, 19, 200, 100))
    assert reply[32:38] == CLIENT_MAC and reply[38:42] == CLIENT_IP


def test_other_frames_get_nothing() -> None:
    assert answer(request(bytes((198, 19, 200, 11))), CLUSTER, CLUSTER_MAC, OWN_MAC) is None
    assert answer(request(bytes((198, 19, 200, 100)), op=2), CLUSTER, CLUSTER_MAC, OWN_MAC) is None
    gratuitous = request(bytes((198, 19, 200, 100)), sender_ip=bytes((198, 19, 200, 100)))
    assert answer(gratuitous, CLUSTER, CLUSTER_MAC, OWN_MAC) is None
    assert answer(request(bytes((198, 19, 200, 100)))[:30], CLUSTER, CLUSTER_MAC, OWN_MAC) is None


@given(st.binary(max_size=128))
def test_any_bytes_parse_or_are_refused(frame: bytes) -> None:
    parse_request(frame)  # never raises
    answer(frame, CLUSTER, CLUSTER_MAC, OWN_MAC)


def test_one_host_answers_the_best_priority_that_serves() -> None:
    cluster = Cluster(config(1, priority=2), config(2, priority=1), config(3, priority=3))
    cluster.run(3)
    assert [h.answers_arp for h in cluster.live()] == [False, True, False]
    cluster.hosts[2].set_state(HostState.DRAINING, cluster.now)
    cluster.run(1)
    assert [h.answers_arp for h in cluster.live()] == [False, True, False]  # still serves
    cluster.hosts[2].set_state(HostState.STOPPED, cluster.now)
    cluster.run(1)
    assert [h.answers_arp for h in cluster.live()] == [True, False, False]
    cluster.down.add(1)
    cluster.run(6)
    assert [h.answers_arp for h in cluster.live()] == [False, True]
