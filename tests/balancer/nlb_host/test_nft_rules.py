"""The host filter's nft text, the config's JSON form and the cluster MACs."""

from __future__ import annotations

import dataclasses

import pytest

from casarray.balancer.model import HostState
from casarray.balancer.nlb_host.config import NlbConfigError, NlbHostConfig, OperationMode
from casarray.balancer.nlb_host.macs import cluster_mac, igmp_group
from casarray.balancer.nlb_host.nft_rules import (
    PlaneState,
    alive_timeout_ms,
    render_alive,
    render_full,
    render_remove,
    render_update,
    table_name,
)

from .helpers import config


def test_full_table_filters_the_cluster_ip_by_owned_buckets() -> None:
    c = config(1)
    text = render_full(c, PlaneState((frozenset({1, 2}), frozenset())))
    assert "set owned_0 { typeof meta mark; elements = { 1, 2 }; }" in text
    assert "set owned_1 { typeof meta mark; }" in text
    assert 'iifname "eth0" ip daddr 198.19.200.100 jump cluster' in text
    assert "meta pkttype set host" in text
    assert f"jhash ip saddr . tcp sport mod 60 seed {c.seed:#010x} meta mark @owned_0" in text
    assert "jhash ip saddr mod 60" in text  # Single affinity of rule 1
    assert text.index("ct state established,related accept") < text.index("@owned_0")
    assert "arp daddr ip 198.19.200.100 drop" in text
    assert render_full(c, PlaneState((frozenset(), frozenset()))).count(table_name(c)) >= 4


def test_update_moves_only_moved_buckets() -> None:
    c = config(1)
    before = PlaneState((frozenset({1, 2, 3}), frozenset()))
    after = PlaneState((frozenset({3, 4}), frozenset()), drop_all=True, default_host=True)
    lines = render_update(c, before, after).splitlines()
    name = table_name(c)
    assert lines == [
        f"delete element ip {name} owned_0 {{ 1, 2 }}",
        f"add element ip {name} owned_0 {{ 4 }}",
        f"flush chain ip {name} gate",
        f"add rule ip {name} gate drop",
        f"flush chain ip {name} uncovered",
    ]
    assert render_update(c, after, after) == ""
    assert "delete table arp" in render_remove(c)


def test_config_json_round_trip_and_errors() -> None:
    c = config(2, state=HostState.DRAINING, heartbeat_period=0.2)
    assert NlbHostConfig.from_json(c.to_json()) == c
    with pytest.raises(NlbConfigError):
        NlbHostConfig.from_json("[]")
    with pytest.raises(NlbConfigError):
        NlbHostConfig.from_json(c.to_json().replace('"Draining"', '"Sleeping"'))
    with pytest.raises(NlbConfigError):
        dataclasses.replace(c, host_id=33)
    assert c.broadcast == "198.19.200.255"


def test_cluster_macs() -> None:
    ip = "198.19.200.100"
    assert cluster_mac(ip, OperationMode.UNICAST) == "02:bf:c6:13:c8:64"
    assert cluster_mac(ip, OperationMode.MULTICAST) == "03:bf:c6:13:c8:64"
    assert cluster_mac(ip, OperationMode.IGMP_MULTICAST) == "01:00:5e:7f:c8:64"
    assert igmp_group(ip) == "239.255.200.100"
    with pytest.raises(NlbConfigError):
        cluster_mac("fe80::1", OperationMode.MULTICAST)


def test_dead_mans_switch_expires_when_the_others_may_take_over() -> None:
    c = config(1, heartbeat_period=0.1, tolerance=5)
    assert alive_timeout_ms(c) == 500
    assert alive_timeout_ms(config(1, heartbeat_period=1.0, tolerance=1)) == 1000
    text = render_full(c, PlaneState((frozenset(), frozenset())))
    assert (
        "set alive { type ipv4_addr; flags timeout; elements = { 198.19.200.100 timeout 500ms }; }"
        in text
    )
    assert text.index("ct state established,related accept") < text.index("@alive")
    assert text.index("@alive") < text.index("@owned_0")  # before any new connection
    name = table_name(c)
    assert render_alive(c).splitlines() == [
        f"flush set ip {name} alive",
        f"add element ip {name} alive {{ 198.19.200.100 timeout 500ms }}",
    ]
