"""Failed-login throttling: the lockout policy, kept in memory or in the directory.

Failed logins are counted per user and per client address: `max_failures` within
`window` seconds block that user (or address) for `backoff` seconds, doubling with
each block in a row up to `max_backoff`; a quiet `forget_after` seconds forgets a key.
A successful login clears the user's counter (not the address's: one valid account
must not unlock guessing others from the same address).

`DirectoryLockout` keeps the counters in the directory (table `login_failure`), as
Active Directory keeps badPwdCount and lockoutTime on the account: every Client
Access server and every worker process counts the same failures, so guesses spread
over an array's members, or over a server's processes, are throttled together. Its
writes don't bump the topology version. Blocking a user also forgets the logins
remembered for them (`directory.verified_logins`). `MemoryLockout` keeps them in this process
(for a server without a directory, and for tests of the layers above).

Both offer `retry_after(user, address)`, `failed(user, address)` and
`succeeded(user)`, and are thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete, select

from casarray.directory.schema import LoginFailureRow, VerifiedLoginRow

if TYPE_CHECKING:
    from casarray.directory.store import Store


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    window: float = 60.0
    backoff: float = 30.0
    max_backoff: float = 900.0
    forget_after: float = 3600.0


@dataclass
class FailureRecord:
    failures: list[float] = field(default_factory=list)  # recent failure times
    strikes: int = 0  # how many times this key was blocked lately: the backoff grows
    blocked_until: float = 0.0
    last: float = 0.0


def keys(user: str, address: str) -> tuple[str, str]:
    return "user:" + user.strip().lower(), "addr:" + address


def is_forgotten(policy: LockoutPolicy, record: FailureRecord, now: float) -> bool:
    return now - record.last > policy.forget_after and record.blocked_until <= now


def add_failure(policy: LockoutPolicy, record: FailureRecord, now: float) -> None:
    """Count one failure at `now`; block the key once there are enough in the window."""
    record.last = now
    record.failures = [t for t in record.failures if now - t <= policy.window] + [now]
    if len(record.failures) >= policy.max_failures:
        record.failures = []
        record.strikes += 1
        record.blocked_until = now + min(
            policy.backoff * 2 ** (record.strikes - 1), policy.max_backoff
        )


def wait_for(records: Iterable[FailureRecord | None], now: float) -> float | None:
    wait = max((r.blocked_until - now for r in records if r is not None), default=0.0)
    return wait if wait > 0 else None


class Lockout(Protocol):
    def retry_after(self, user: str, address: str) -> float | None:
        """Seconds until `user` may try again from `address`, or None if they may now."""
        ...

    def failed(self, user: str, address: str) -> None: ...

    def succeeded(self, user: str) -> None: ...


class MemoryLockout:
    """The counters in this process's memory; at most `max_keys` (the stalest go)."""

    def __init__(
        self,
        policy: LockoutPolicy | None = None,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        **settings: float,
    ) -> None:
        self.policy = policy or LockoutPolicy(**settings)  # type: ignore[arg-type]
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._records: OrderedDict[str, FailureRecord] = OrderedDict()

    def _get(self, key: str, now: float) -> FailureRecord | None:
        record = self._records.get(key)
        if record is not None and is_forgotten(self.policy, record, now):
            del self._records[key]
            return None
        return record

    def retry_after(self, user: str, address: str) -> float | None:
        now = self.clock()
        with self._lock:
            return wait_for((self._get(key, now) for key in keys(user, address)), now)

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys(user, address):
                record = self._get(key, now)
                if record is None:
                    record = self._records[key] = FailureRecord()
                else:
                    self._records.move_to_end(key)
                add_failure(self.policy, record, now)
            while len(self._records) > self.max_keys:
                self._records.popitem(last=False)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._records.pop(keys(user, "")[0], None)


def _record(row: LoginFailureRow) -> FailureRecord:
    failures = [float(t) for t in row.failures.split()] if row.failures else []
    return FailureRecord(failures, row.strikes, row.blocked_until, row.last)


class DirectoryLockout:
    """The counters in the directory, shared by every process that opens it. A login
    costs one read; only failures (and the success that ends a user's failures)
    write."""

    def __init__(
        self,
        store: Store,
        policy: LockoutPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy or LockoutPolicy()
        self.clock = clock

    def _read(self, wanted: Iterable[str]) -> dict[str, FailureRecord]:
        with self.store.read() as session:
            rows = session.scalars(select(LoginFailureRow).where(LoginFailureRow.key.in_(wanted)))
            return {row.key: _record(row) for row in rows}

    def retry_after(self, user: str, address: str) -> float | None:
        now = self.clock()
        records = self._read(keys(user, address))
        return wait_for(records.values(), now)

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self.store.write_state() as session:
            for key in keys(user, address):
                row = session.get(LoginFailureRow, key)
                record = _record(row) if row is not None else FailureRecord()
                if row is not None and is_forgotten(self.policy, record, now):
                    record = FailureRecord()
                blocked = record.blocked_until > now
                add_failure(self.policy, record, now)
                if key.startswith("user:") and not blocked and record.blocked_until > now:
                    # Locked out: the logins remembered for this user go too
                    # (`directory.verified_logins`).
                    session.execute(
                        delete(VerifiedLoginRow).where(VerifiedLoginRow.user_key == key)
                    )
                if row is None:
                    row = LoginFailureRow(key=key)
                    session.add(row)
                row.failures = " ".join(f"{t:.3f}" for t in record.failures)
                row.strikes = record.strikes
                row.blocked_until = record.blocked_until
                row.last = record.last
            # what nobody has tried for long and isn't blocked is forgotten
            session.execute(
                delete(LoginFailureRow).where(
                    LoginFailureRow.last < now - self.policy.forget_after,
                    LoginFailureRow.blocked_until <= now,
                )
            )

    def succeeded(self, user: str) -> None:
        key = keys(user, "")[0]
        if not self._read([key]):
            return
        with self.store.write_state() as session:
            session.execute(delete(LoginFailureRow).where(LoginFailureRow.key == key))
