"""Failed-login throttling kept in the directory: two processes (two Directory
objects) count the same failures, the counters don't touch the topology version, and
the policy (window, doubling backoff, forgetting, success clearing the user) holds."""

from __future__ import annotations

from casarray.directory import Directory
from casarray.directory.lockout import DirectoryLockout, LockoutPolicy, MemoryLockout


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_failures_on_two_servers_are_counted_together(
    directory: Directory, second_directory: Directory
) -> None:
    clock = Clock()
    cas01 = DirectoryLockout(directory.store, clock=clock)
    cas02 = DirectoryLockout(second_directory.store, clock=clock)
    version = directory.topology_version()
    for i in range(4):
        (cas01 if i % 2 else cas02).failed("Alice@lab.net", f"127.0.0.{i + 1}")
    assert cas01.retry_after("alice@lab.net", "127.0.0.9") is None
    cas02.failed("alice@lab.net", "127.0.0.5")  # the fifth, on either server
    assert cas01.retry_after("alice@lab.net", "127.0.0.9") == 30.0
    assert cas02.retry_after("ALICE@lab.net", "127.0.0.9") == 30.0
    # others from elsewhere are not affected; the counters are not topology
    assert cas01.retry_after("bob@lab.net", "127.0.0.9") is None
    assert directory.topology_version() == version


def test_backoff_doubles_then_success_clears_the_user_not_the_address(
    directory: Directory,
) -> None:
    clock = Clock()
    lockout = DirectoryLockout(directory.store, LockoutPolicy(backoff=10), clock=clock)
    for _ in range(5):
        lockout.failed("alice", "10.0.0.1")
    assert lockout.retry_after("alice", "10.0.0.2") == 10.0
    clock.now += 11
    for _ in range(5):
        lockout.failed("alice", "10.0.0.3")
    assert lockout.retry_after("alice", "10.0.0.2") == 20.0  # the second block in a row
    clock.now += 21
    lockout.succeeded("alice")
    for _ in range(4):
        lockout.failed("alice", "10.0.0.4")
    assert lockout.retry_after("alice", "10.0.0.9") is None  # a fresh count: 4 < 5
    # the address that guessed five times is still blocked for any user
    lockout.failed("bob", "10.0.0.1")
    lockout.failed("bob", "10.0.0.1")
    assert lockout.retry_after("carol", "10.0.0.1") is None
    assert lockout.retry_after("carol", "10.0.0.3") is None


def test_failures_outside_the_window_and_quiet_keys_are_forgotten(directory: Directory) -> None:
    clock = Clock()
    policy = LockoutPolicy(window=60, forget_after=100)
    lockout = DirectoryLockout(directory.store, policy, clock=clock)
    for _ in range(4):
        lockout.failed("alice", "10.0.0.1")
    clock.now += 61
    lockout.failed("alice", "10.0.0.1")  # the old four are out of the window
    assert lockout.retry_after("alice", "10.0.0.1") is None
    clock.now += 500
    lockout.failed("bob", "10.0.0.2")  # writing prunes what was quiet for long
    with directory.store.read() as session:
        from sqlalchemy import text

        keys = sorted(session.execute(text("SELECT key FROM login_failure")).scalars())
    assert keys == ["addr:10.0.0.2", "user:bob"]


def test_memory_lockout_follows_the_same_policy() -> None:
    clock = Clock()
    lockout = MemoryLockout(clock=clock, backoff=10)
    for _ in range(5):
        lockout.failed("alice", "10.0.0.1")
    assert lockout.retry_after("alice", "10.0.0.7") == 10.0
    assert lockout.retry_after("bob", "10.0.0.1") == 10.0
    lockout.succeeded("alice")
    assert lockout.retry_after("alice", "10.0.0.7") is None
