"""The client at work: connect through the profile, keep the profile in step with
what the servers say, and stay connected (`client mail --watch`).

`connect` opens the mailbox (`mailbox.open_mailbox`); when a referral was followed,
Autodiscover is asked again, as Outlook does after its server turned it away, so that
the profile gets the new server's ServerDN too (if Autodiscover names another server
or fails, the referral's host is kept). The caller saves the profile and tells the user.

`watch` yields what happens, as events, until the caller stops iterating:

- `Connected` (with the outage, after a reconnection) and the folder's messages
  (`Listed` the first time, `NewMail` for those that came meanwhile);
- `NewMail` whenever messages arrive: the session waits for the server to send
  something for up to `poll` seconds, then sends NOOP, so a connection that breaks is
  noticed at once (the end of the stream wakes the wait), not at the next poll;
- `Lost` when the connection breaks (the server killed, say), then `Retrying` before
  each new attempt: the name is looked up again each time and the waits are
  `backoff.Backoff`'s (the first attempt at once, then 0.1 s doubling to 2 s);
- `ProfileChanged` when a referral was followed, or when Autodiscover (asked again
  every `refresh` seconds, connected or not; Outlook asks every hour) names another
  server: the session is closed and the client connects to the new server at once.

A wrong password ends the watch (AuthenticationFailed); so does any error that is not
`transient`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

from casarray.client.autodiscover import autodiscover
from casarray.client.backoff import Backoff
from casarray.client.errors import ClientError
from casarray.client.mailbox import MailboxSession, Message, open_mailbox
from casarray.client.network import Network
from casarray.client.profile import Profile

POLL = 1.0
REFRESH = 10.0


@dataclass(frozen=True)
class ProfileChanged:
    """The profile points at another server now. `why` is "referral" (the server
    referred the login there) or "autodiscover" (Autodiscover names it)."""

    old: Profile
    new: Profile
    why: str


@dataclass(frozen=True)
class Connected:
    """Logged in and the folder opened. `outage`: seconds from noticing the loss to
    now, after a reconnection (None for the first connection)."""

    name: str  # the name connected to (the profile's server)
    server: str | None  # who greeted
    address: str  # IP:port
    folder: str
    exists: int
    outage: float | None
    timings: dict[str, float]


@dataclass(frozen=True)
class Listed:
    folder: str
    messages: list[Message]


@dataclass(frozen=True)
class NewMail:
    folder: str
    messages: list[Message]


@dataclass(frozen=True)
class Lost:
    name: str
    server: str | None
    reason: str


@dataclass(frozen=True)
class Retrying:
    """An attempt failed; the next one comes in `delay` seconds."""

    name: str
    attempt: int
    delay: float
    reason: str


Event = ProfileChanged | Connected | Listed | NewMail | Lost | Retrying


def connect(
    profile: Profile, password: str, *, network: Network, timeout: float = 10.0
) -> tuple[MailboxSession, ProfileChanged | None]:
    """A session to the profile's server (module doc), and the change of profile when
    a referral was followed."""
    session = open_mailbox(profile, password, network=network, timeout=timeout)
    if not session.referrals:
        return session, None
    moved = session.profile
    try:
        result = autodiscover(profile.address, password, network=network, timeout=timeout)
    except ClientError:
        result = None
    if result is not None and result.server.lower() == moved.server.lower():
        moved = moved.refreshed(result)
        session.profile = moved
    return session, ProfileChanged(profile, moved, "referral")


def _announced(
    profile: Profile, password: str, network: Network, timeout: float
) -> ProfileChanged | None:
    """The change when Autodiscover names another server than the profile's; None
    when it names the same one or fails (Outlook keeps its profile then)."""
    try:
        result = autodiscover(profile.address, password, network=network, timeout=timeout)
    except ClientError:
        return None
    if result.server.lower() == profile.server.lower():
        return None
    return ProfileChanged(profile, profile.refreshed(result), "autodiscover")


def watch(
    profile: Profile,
    password: str,
    *,
    network: Network,
    folder: str = "INBOX",
    count: int | None = None,
    poll: float = POLL,
    refresh: float | None = REFRESH,
    backoff: Backoff | None = None,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Generator[Event, None, None]:
    """Stay connected to the mailbox and say what happens (module doc)."""
    backoff = backoff or Backoff()
    session: MailboxSession | None = None
    lost_at: float | None = None
    last_uid: int | None = None
    next_refresh = clock() + refresh if refresh else None
    try:
        while True:
            if session is None:
                try:
                    session, change = connect(profile, password, network=network, timeout=timeout)
                    if change is not None:
                        profile = change.new
                        yield change
                    messages = session.list(folder, count if last_uid is None else None)
                except ClientError as exc:
                    if session is not None:
                        session.close()
                        session = None
                    if not exc.transient:
                        raise
                    delay = backoff.next()
                    yield Retrying(profile.server, backoff.attempts, delay, exc.message)
                    sleep(delay)
                    if refresh and next_refresh is not None and clock() >= next_refresh:
                        next_refresh = clock() + refresh
                        change = _announced(profile, password, network, timeout)
                        if change is not None:
                            profile = change.new
                            backoff.reset()
                            yield change
                    continue
                backoff.reset()
                outage = clock() - lost_at if lost_at is not None else None
                lost_at = None
                yield Connected(
                    session.name, session.server, session.address, folder, session.exists,
                    outage, dict(session.timings),
                )  # fmt: skip
                if last_uid is None:
                    yield Listed(folder, messages)
                else:
                    missed = [m for m in messages if m.uid > last_uid]
                    if missed:
                        yield NewMail(folder, missed)
                last_uid = max([last_uid or 0, *(m.uid for m in messages)])
                session.last_uid = last_uid
            try:
                session.wait(poll)
                new = session.poll()
            except ClientError as exc:
                lost_at = clock()
                yield Lost(session.name, session.server, exc.message)
                session.close()
                session = None
                continue
            if new:
                last_uid = max(last_uid or 0, *(m.uid for m in new))
                yield NewMail(folder, new)
            if refresh and next_refresh is not None and clock() >= next_refresh:
                next_refresh = clock() + refresh
                change = _announced(profile, password, network, timeout)
                if change is not None:
                    profile = change.new
                    session.close()
                    session = None
                    yield change
    finally:
        if session is not None:
            session.close()
