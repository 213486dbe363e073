"""The mailbox over IMAP, the way the profile says: TLS to the profile's server name
(looked up through the client's DNS, the certificate verified for that name), LOGIN
with the profile's login name, folders opened read-only (EXAMINE), messages listed
with their From, Subject and Date.

A LOGIN answered `NO [REFERRAL imap://alice@CAS02.lab.net/]` (RFC 2221: the server is
not the right one for this mailbox) is followed: the session closes, the profile is
pointed at the host the URL names, and the client connects there; `open_mailbox`
returns the session with the changed profile and the referrals it followed, for the
caller to keep and to tell the user about.

The IMAP client is the standard library's imaplib, on a socket this module connects;
the parsing of what imaplib leaves raw (the greeting, response codes, FETCH items) is
in plain functions below, with no I/O.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import email.parser
import email.policy
import imaplib
import re
import select
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casarray.client.errors import AuthenticationFailed, ClientError, ConnectionLost
from casarray.client.network import Network
from casarray.client.profile import Profile
from casarray.wire import utf7

MAX_REFERRALS = 3
FETCH_ITEMS = "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+\.?$")
_CODE = re.compile(r"^\s*\[([^\]]*)\]\s*(.*)$", re.S)


class MailboxUnavailable(ClientError):
    """The server can't open the mailbox now (database dismounted, throttled)."""

    transient = True


class FolderNotFound(ClientError):
    """No folder of that name."""


# -- parsing (no I/O) ------------------------------------------------------------------


@dataclass(frozen=True)
class Referral:
    """An RFC 2221 login referral: the IMAP URL and what it names."""

    url: str
    host: str
    port: int | None = None
    user: str | None = None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def response_code(text: bytes | str) -> tuple[str, str, str]:
    """(code atom in upper case, its arguments, the human text) of a response's text
    ("[REFERRAL imap://...] Go there" -> ("REFERRAL", "imap://...", "Go there")); the
    code is "" when there is none."""
    text = _text(text)
    match = _CODE.match(text)
    if match is None:
        return "", "", text.strip()
    atom, _, args = match.group(1).strip().partition(" ")
    return atom.upper(), args.strip(), match.group(2).strip()


def parse_referral(text: bytes | str) -> Referral | None:
    """The referral in a NO response's text, or None when it has none (or its URL is
    not an imap:// URL naming a host)."""
    code, url, _ = response_code(text)
    if code != "REFERRAL":
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "imap" or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2]  # as written: hostname is lower-cased
    host = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    user = None
    if parts.username:
        user = urllib.parse.unquote(parts.username.partition(";")[0]) or None
    return Referral(url=url, host=host, port=port, user=user)


def greeting_server(welcome: bytes | str) -> str | None:
    """The server name in an IMAP greeting ("* OK [CAPABILITY ...] CAS02.lab.net
    casarray IMAP4 service ready" -> "CAS02.lab.net"), or None when its first word is
    not a host name."""
    text = _text(welcome).strip()
    for prefix in ("* OK", "* PREAUTH"):
        if text.upper().startswith(prefix):
            text = text[len(prefix) :]
            break
    else:
        return None
    _, _, rest = response_code(text)
    word = rest.split(" ", 1)[0] if rest else ""
    return word.rstrip(".") if _HOST.match(word) else None


@dataclass(frozen=True)
class Message:
    """A message as the list shows it."""

    uid: int
    sender: str
    subject: str
    date: datetime | None
    size: int
    seen: bool


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")


def _header_message(uid: int, items: bytes, header: bytes) -> Message:
    parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(header)
    date = None
    with contextlib.suppress(Exception):
        value = parsed["Date"]
        date = value.datetime if value is not None else None
    size = _SIZE.search(items)
    flags = _FLAGS.search(items)
    return Message(
        uid=uid,
        sender=str(parsed["From"] or ""),
        subject=str(parsed["Subject"] or ""),
        date=date,
        size=int(size.group(1)) if size else 0,
        seen=flags is not None and b"\\seen" in flags.group(1).lower(),
    )


def parse_fetch(data: list[Any]) -> list[Message]:
    """The messages in imaplib's FETCH data: per message a (items up to the literal,
    header literal) tuple, then the rest of its items as bytes. Responses without the
    header (a FETCH of flags only, sent unasked) are skipped. Sorted by UID."""
    messages: dict[int, Message] = {}
    i = 0
    while i < len(data):
        entry = data[i]
        i += 1
        if not isinstance(entry, tuple) or len(entry) != 2:
            continue
        items, header = entry
        if i < len(data) and isinstance(data[i], bytes):
            items += data[i]  # the items after the literal, and ")"
            i += 1
        uid = _UID.search(items)
        if uid is None:
            continue
        messages[int(uid.group(1))] = _header_message(int(uid.group(1)), items, header)
    return [messages[uid] for uid in sorted(messages)]


def quote(name: str) -> str:
    """A mailbox name as an IMAP quoted string (modified UTF-7 inside)."""
    encoded = utf7.encode(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- the session -----------------------------------------------------------------------


class _IMAP(imaplib.IMAP4):
    """imaplib on a TLS socket connected beforehand (through the client's DNS)."""

    def __init__(self, sock: ssl.SSLSocket, host: str, port: int) -> None:
        self._connected = sock
        super().__init__(host, port)

    def _create_socket(self, timeout: float | None) -> ssl.SSLSocket:
        return self._connected


@contextlib.contextmanager
def _guard(what: str) -> Iterator[None]:
    """imaplib's and the socket's failures as client errors."""
    try:
        yield
    except imaplib.IMAP4.abort as exc:
        raise ConnectionLost(f"{what}: the connection broke ({_text(exc.args[0])})") from None
    except (OSError, EOFError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
        raise ConnectionLost(f"{what}: the connection broke ({reason})") from None
    except imaplib.IMAP4.error as exc:
        raise ClientError(f"{what}: the server said {_text(exc.args[0])}") from None


@dataclass
class MailboxSession:
    """A logged-in IMAP session. `server` is who greeted (e.g. CAS02.lab.net), `name`
    the name connected to (the profile's server), `profile` the profile as it is now
    (changed when a referral was followed), `timings` the seconds each step took."""

    imap: imaplib.IMAP4
    sock: ssl.SSLSocket
    name: str
    server: str | None
    address: str
    profile: Profile
    referrals: tuple[Referral, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    folder: str | None = None
    exists: int = 0
    last_uid: int = 0

    def select(self, folder: str = "INBOX") -> int:
        """Open `folder` read-only; how many messages it has."""
        with _guard(f"opening {folder} on {self.name}"):
            typ, data = self.imap.select(quote(folder), readonly=True)
        if typ != "OK":
            code, _, text = response_code(data[-1] if data and data[-1] else b"")
            if code == "NONEXISTENT" or "exist" in text.lower():
                raise FolderNotFound(f"{self.profile.address} has no folder '{folder}'")
            raise ClientError(f"opening {folder} on {self.name} failed: {text}")
        self.folder = folder
        self.exists = int(data[0] or 0)
        return self.exists

    def _fetch(self, what: str, *, uid: bool) -> list[Message]:
        with _guard(f"listing {self.folder} on {self.name}"):
            if uid:
                typ, data = self.imap.uid("FETCH", what, FETCH_ITEMS)
            else:
                typ, data = self.imap.fetch(what, FETCH_ITEMS)
        if typ != "OK":
            raise ClientError(f"listing {self.folder} on {self.name} failed: {data!r}")
        messages = parse_fetch(data)
        if messages:
            self.last_uid = max(self.last_uid, messages[-1].uid)
        return messages

    def list(self, folder: str = "INBOX", count: int | None = None) -> list[Message]:
        """The messages of `folder` (the last `count` when given), oldest first."""
        started = time.perf_counter()
        exists = self.select(folder)
        messages = []
        if exists:
            first = max(1, exists - count + 1) if count else 1
            messages = self._fetch(f"{first}:*", uid=False)
        self.timings["list"] = time.perf_counter() - started
        return messages

    # (below the `list` method, builtins.list names the type)
    def since(self, uid: int) -> builtins.list[Message]:
        """The messages of the open folder whose UID is above `uid`."""
        return [m for m in self._fetch(f"{uid + 1}:*", uid=True) if m.uid > uid]

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the server to send something (new data, or
        the end of the connection); True when it did."""
        if self.sock.pending():
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError):
            return True  # closed: the next command says how
        return bool(readable)

    def poll(self) -> builtins.list[Message]:
        """NOOP: the messages arrived since the last look, fetched when the server
        says the folder grew (ConnectionLost when the connection is gone)."""
        with _guard(f"checking {self.name}"):
            typ, data = self.imap.noop()
            _, exists = self.imap.response("EXISTS")
        if typ != "OK":
            raise ConnectionLost(f"checking {self.name}: the server said {data!r}")
        counts = [int(n) for n in exists if n is not None and n.isdigit()]
        if not counts or self.folder is None:
            return []
        grew = counts[-1] > self.exists
        self.exists = counts[-1]
        return self.since(self.last_uid) if grew else []

    def close(self) -> None:
        """LOGOUT when the connection still works; the socket closed in any case."""
        with contextlib.suppress(Exception):
            self.sock.settimeout(1.0)
            self.imap.logout()
        with contextlib.suppress(Exception):
            self.imap.shutdown()
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> MailboxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Referred(Exception):
    def __init__(self, referral: Referral) -> None:
        self.referral = referral


def _refused(profile: Profile, said: bytes | str) -> Exception:
    """The error for a LOGIN answered NO: _Referred for a referral,
    AuthenticationFailed for a wrong password, MailboxUnavailable when the server
    can't serve the mailbox now."""
    referral = parse_referral(said)
    if referral is not None:
        return _Referred(referral)
    code, _, text = response_code(said)
    if code == "AUTHENTICATIONFAILED":
        return AuthenticationFailed(
            f"{profile.server} refused the password of {profile.login_name}: {text}"
        )
    if code == "UNAVAILABLE":
        return MailboxUnavailable(f"{profile.server} can't open the mailbox now: {text}")
    return ClientError(f"{profile.server} refused the login: {_text(said)}")


def _login(profile: Profile, password: str, network: Network, timeout: float) -> MailboxSession:
    """One connection and LOGIN (errors: `_refused`, and the network's)."""
    name = profile.server
    if profile.imap_encryption.upper() not in ("SSL", "TLS"):
        raise ClientError(f"the profile's IMAP encryption is {profile.imap_encryption}; "
                          "this client speaks IMAP over TLS only")  # fmt: skip
    connection = network.connect(name, profile.imap_port, timeout=timeout)
    timings = dict(connection.timings)
    sock = connection.sock
    try:
        t0 = time.perf_counter()
        with _guard(f"connecting to {name}"):
            imap = _IMAP(sock, name, profile.imap_port)
        t1 = time.perf_counter()
        timings["greeting"] = t1 - t0
        try:
            imap.login(profile.login_name or profile.address, password)
        except imaplib.IMAP4.abort as exc:
            raise ConnectionLost(f"logging in to {name}: the connection broke ({exc})") from None
        except imaplib.IMAP4.error as exc:
            raise _refused(profile, exc.args[0] if exc.args else b"") from None
        except OSError as exc:
            raise ConnectionLost(f"logging in to {name}: the connection broke ({exc})") from None
        timings["login"] = time.perf_counter() - t1
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    server = greeting_server(imap.welcome)
    return MailboxSession(imap, sock, name, server, connection.address, profile, timings=timings)


def open_mailbox(
    profile: Profile,
    password: str,
    *,
    network: Network,
    timeout: float = 10.0,
    max_referrals: int = MAX_REFERRALS,
) -> MailboxSession:
    """A logged-in session to the profile's server, referrals followed (module doc).
    LookupFailed, ConnectFailed, CertificateRejected, ConnectionLost, AuthenticationFailed,
    MailboxUnavailable or ClientError, each saying what failed."""
    referrals: list[Referral] = []
    current = profile
    started = time.perf_counter()
    while True:
        try:
            session = _login(current, password, network, timeout)
        except _Referred as referred:
            referral = referred.referral
            seen = {current.server.lower()} | {r.host.lower() for r in referrals}
            if referral.host.lower() in seen or len(referrals) >= max_referrals:
                chain = " -> ".join([profile.server, *(r.host for r in referrals), referral.host])
                raise ClientError(
                    f"the servers refer {profile.address} in a loop: {chain}"
                ) from None
            referrals.append(referral)
            current = current.moved_to(referral.host)
            if referral.port is not None:
                current = dataclasses.replace(current, imap_port=referral.port)
            continue
        session.referrals = tuple(referrals)
        session.timings["total"] = time.perf_counter() - started
        return session
