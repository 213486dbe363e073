"""Transcripts of the membership and convergence state machine: join, leave, return,
drain, suspend, stop, per-rule health, Single-mode priorities, weights."""

from __future__ import annotations

from casarray.balancer.model import HostState
from casarray.balancer.nlb_host.bucket_map import Member, bucket_map, moves, owned_by
from casarray.balancer.nlb_host.membership import CONVERGED, CONVERGING

from .helpers import Cluster, config, rules

BUCKETS = set(range(60))


def assert_partition(cluster: Cluster, rule: int = 0, hosts: set[int] | None = None) -> None:
    owners = cluster.owners(rule)
    assert set(owners) == BUCKETS
    assert all(len(who) == 1 for who in owners.values())
    if hosts is not None:
        assert set().union(*owners.values()) == hosts


def assert_no_double_owner(cluster: Cluster, rule: int = 0) -> None:
    assert all(len(who) == 1 for who in cluster.owners(rule).values())


def test_lone_host_listens_then_owns_everything() -> None:
    cluster = Cluster(config(1))
    assert cluster.hosts[1].owned[0] == frozenset()
    cluster.run(2.5)
    assert cluster.hosts[1].owned[0] == BUCKETS
    assert cluster.hosts[1].status()["state"] == CONVERGED


def test_three_hosts_converge_to_one_identical_map() -> None:
    cluster = Cluster(config(1), config(2), config(3))
    cluster.run(3)
    maps = {host.map for host in cluster.live()}
    assert len(maps) == 1
    assert all(host.converged for host in cluster.live())
    assert_partition(cluster, 0, {1, 2, 3})
    counts = [len(h.owned[0]) for h in cluster.live()]
    assert min(counts) >= 10  # equal weights: about 20 each


def test_join_never_double_owns_and_moves_only_to_the_newcomer() -> None:
    cluster = Cluster(config(1), config(2))
    cluster.run(3)
    before = cluster.hosts[1].map
    cluster.add(config(3))
    for _ in range(40):
        cluster.run(0.1)
        assert_no_double_owner(cluster)
    assert_partition(cluster, 0, {1, 2, 3})
    after = cluster.hosts[1].map
    for old, new in zip(before[0], after[0], strict=True):
        assert new == old or new == 3


def test_leave_after_tolerance_and_only_its_buckets_move() -> None:
    cluster = Cluster(config(1), config(2), config(3))
    cluster.run(3)
    before = cluster.hosts[1].map[0]
    cluster.down.add(3)
    cluster.run(3.9)  # heard at most a period before: not gone yet
    assert len(cluster.hosts[1].members) == 3
    cluster.run(2.5)
    assert [m.host_id for m in cluster.hosts[1].members] == [1, 2]
    assert all(host.converged for host in cluster.live())
    assert_partition(cluster, 0, {1, 2})
    after = cluster.hosts[1].map[0]
    for old, new in zip(before, after, strict=True):
        assert old == new or old == 3


def test_return_takes_back_its_buckets() -> None:
    cluster = Cluster(config(1), config(2), config(3))
    cluster.run(3)
    first = cluster.hosts[3].owned[0]
    cluster.down.add(3)
    cluster.run(7)
    assert_partition(cluster, 0, {1, 2})
    cluster.add(config(3))  # restarted: a new state machine
    cluster.run(3)
    assert cluster.hosts[3].owned[0] == first
    assert_partition(cluster, 0, {1, 2, 3})


def test_drain_gives_up_new_connections_and_reports_draining() -> None:
    cluster = Cluster(config(1), config(2))
    cluster.run(3)
    cluster.hosts[2].set_state(HostState.DRAINING, cluster.now)
    assert cluster.hosts[2].owned[0] == frozenset()
    assert not cluster.hosts[2].drops_everything  # established connections stay
    cluster.run(1.5)
    assert cluster.hosts[1].owned[0] == BUCKETS
    assert cluster.hosts[2].status()["state"] == "Draining"
    assert [m["state"] for m in cluster.hosts[1].status()["members"]] == ["Started", "Draining"]


def test_suspend_and_stop_drop_everything_and_resume() -> None:
    cluster = Cluster(config(1), config(2))
    cluster.run(3)
    for state in (HostState.SUSPENDED, HostState.STOPPED):
        cluster.hosts[2].set_state(state, cluster.now)
        assert cluster.hosts[2].drops_everything
        cluster.run(1.5)
        assert cluster.hosts[1].owned[0] == BUCKETS
        assert cluster.hosts[2].status()["state"] == state.value
    cluster.hosts[2].set_state(HostState.STARTED, cluster.now)
    cluster.run(1.5)
    assert_partition(cluster, 0, {1, 2})


def test_rule_health_loss_moves_that_rule_only_and_returns() -> None:
    cluster = Cluster(config(1, priority=2), config(2, priority=1))
    cluster.run(3)
    rule1 = cluster.hosts[2].owned[1]
    assert rule1 == BUCKETS  # Single mode: best priority (host 2)
    cluster.hosts[1].set_health(0, False, cluster.now)
    assert cluster.hosts[1].owned[0] == frozenset()
    cluster.run(1.5)
    assert cluster.hosts[2].owned[0] == BUCKETS
    assert cluster.hosts[2].owned[1] == rule1
    cluster.hosts[1].set_health(0, True, cluster.now)
    cluster.run(1.5)
    assert_partition(cluster, 0, {1, 2})


def test_single_mode_follows_priority_and_fails_over() -> None:
    cluster = Cluster(config(1, priority=3), config(2, priority=1), config(3, priority=2))
    cluster.run(3)
    assert cluster.hosts[2].owned[1] == BUCKETS
    cluster.hosts[2].set_health(1, False, cluster.now)
    cluster.run(1.5)
    assert cluster.hosts[3].owned[1] == BUCKETS
    assert cluster.hosts[1].owned[1] == frozenset()


def test_weights_share_buckets() -> None:
    weighted = rules(CAS01=80, CAS02=20)
    cluster = Cluster(config(1, rules=weighted), config(2, rules=weighted))
    cluster.run(3)
    assert len(cluster.hosts[1].owned[0]) > len(cluster.hosts[2].owned[0])
    zero = rules(CAS01=50, CAS02=0)
    cluster = Cluster(config(1, rules=zero), config(2, rules=zero))
    cluster.run(3)
    assert cluster.hosts[2].owned[0] == frozenset()


def test_mismatched_rules_never_converge() -> None:
    cluster = Cluster(config(1), config(2, rules=rules()[:1] + rules()[:1]))
    cluster.run(3)
    assert cluster.hosts[1].status()["state"] == CONVERGING


def test_map_is_the_same_in_any_member_order_and_moves_little() -> None:
    members = [
        Member(i, f"CAS0{i}", i, HostState.STARTED, (True, True), (50, 50)) for i in (1, 2, 3)
    ]
    a = bucket_map(rules(), members, 60)
    assert a == bucket_map(rules(), list(reversed(members)), 60)
    b = bucket_map(rules(), members[:2], 60)
    assert moves(a, b) == len(owned_by(a, 3)[0])  # rule 1 (Single) stays on host 1


def test_reconfigured_weight_moves_only_that_hosts_buckets_without_double_owners() -> None:
    cluster = Cluster(config(1), config(2), config(3))
    cluster.run(3)
    before = {hid: set(h.owned[0]) for hid, h in cluster.hosts.items()}
    host = cluster.hosts[1]
    host.reconfigure(config(1, rules=rules(CAS01=0)), cluster.now)
    for _ in range(30):
        cluster.run(0.1)
        assert_no_double_owner(cluster)
    assert_partition(cluster, 0, {2, 3})
    for hid in (2, 3):  # the others keep theirs and share host 1's
        assert before[hid] <= set(cluster.hosts[hid].owned[0])
    assert cluster.hosts[1].owned[1] == BUCKETS  # rule 1 (Single, its own weight) stays


def test_reconfigured_rules_converge_once_every_host_has_them() -> None:
    cluster = Cluster(config(1), config(2))
    cluster.run(3)
    single = rules()[:1]
    cluster.hosts[1].reconfigure(config(1, rules=single), cluster.now)
    assert cluster.hosts[1].owned == (frozenset(),)  # old rule indexes mean nothing now
    cluster.run(1)
    assert cluster.hosts[1].status()["state"] == CONVERGING  # host 2 has the old rules
    assert cluster.hosts[1].owned == (frozenset(),)
    cluster.hosts[2].reconfigure(config(2, rules=single), cluster.now)
    cluster.run(2)
    assert all(h.converged for h in cluster.live())
    assert_partition(cluster, 0, {1, 2})


def test_reconfigure_refuses_another_host() -> None:
    cluster = Cluster(config(1))
    try:
        cluster.hosts[1].reconfigure(config(2), cluster.now)
    except ValueError:
        return
    raise AssertionError("a Membership took another HostID")
