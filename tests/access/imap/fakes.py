"""Test doubles for the IMAP core: an in-memory `MailboxStore` with the semantics the
real store promises (modseqs, tombstones for expunges, \\Recent taken by one session,
TRYCREATE errors), a `Backend` whose login results a test can choose, and the
transcript helper that drives an `ImapSession` with (client bytes, expected server
bytes or regex) steps."""

from __future__ import annotations

import imaplib
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from casarray.access.imap.backend import LoginFailed, LoginOk, LoginResult
from casarray.access.imap.events import Event, Send
from casarray.access.imap.session import ImapSession, Limits
from casarray.mailstore.interface import (
    DELIMITER,
    SPECIAL_FOLDERS,
    Appended,
    CachedParts,
    Changes,
    Copied,
    DestinationNotFound,
    FlagMap,
    Folder,
    FolderExists,
    FolderHasChildren,
    FolderInUse,
    FolderNotFound,
    FolderStatistics,
    MessageInfo,
    MessageNotFound,
    MessageTooLarge,
)

SYSTEM = {"\\seen": "\\Seen", "\\answered": "\\Answered", "\\flagged": "\\Flagged"}
SYSTEM |= {"\\deleted": "\\Deleted", "\\draft": "\\Draft"}


def canonical(name: str) -> str:
    head, sep, rest = name.partition(DELIMITER)
    return "INBOX" + sep + rest if head.upper() == "INBOX" else name


def normal_flags(flags: Iterable[str]) -> frozenset[str]:
    out = set()
    for flag in flags:
        if flag.lower() == "\\recent":
            continue
        out.add(SYSTEM.get(flag.lower(), flag))
    return frozenset(out)


def trivial_parts(raw: bytes) -> CachedParts:
    """ENVELOPE/BODY/BODYSTRUCTURE from the MIME module when it is there; otherwise a
    stand-in with the Subject only."""
    try:
        from casarray.mailstore.mime import cached_parts
    except ImportError:
        subject = re.search(rb"(?im)^subject: *(.*?)\r?$", raw)
        text = subject.group(1).decode("ascii", "replace") if subject else ""
        quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        envelope = f"(NIL {quoted} NIL NIL NIL NIL NIL NIL NIL NIL)"
        body = f'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" {len(raw)} 1)'
        return CachedParts(envelope, body, body)
    return cached_parts(raw)


@dataclass
class FakeMessage:
    uid: int
    raw: bytes
    flags: frozenset[str]
    internal_date: datetime
    modseq: int
    recent: bool = True
    parts: CachedParts | None = None

    def info(self) -> MessageInfo:
        return MessageInfo(
            self.uid, self.flags, self.internal_date, len(self.raw), self.modseq, self.recent
        )


@dataclass
class FakeFolder:
    name: str
    uid_validity: int
    special_use: str | None = None
    uid_next: int = 1
    modseq: int = 1
    messages: dict[int, FakeMessage] = field(default_factory=dict)
    tombstones: list[tuple[int, int]] = field(default_factory=list)  # (uid, modseq)


class FakeMailboxStore:
    """One user's folders in memory (implements `MailboxStore`). Thread-safe; several
    sessions may share one instance, as sessions on several servers share a database.
    `calls` counts the calls of each method (tests check what FETCH/SEARCH read)."""

    def __init__(self, max_message: int = 10 * 1024 * 1024) -> None:
        self._lock = threading.RLock()
        self._folders: dict[str, FakeFolder] = {}
        self._subscribed: set[str] = set()
        self._next_validity = 1000
        self.max_message = max_message
        self.calls: dict[str, int] = {}
        self.urlauth_keys: dict[tuple[str, int], bytes] = {}  # by (folder, UIDVALIDITY)
        self.create_folder("INBOX")
        for name, use in SPECIAL_FOLDERS:
            self.create_folder(name, use)
            self._subscribed.add(name)
        self._subscribed.add("INBOX")

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    def _get(self, name: str, destination: bool = False) -> FakeFolder:
        folder = self._folders.get(canonical(name))
        if folder is None:
            error = DestinationNotFound if destination else FolderNotFound
            raise error(f"The folder '{name}' doesn't exist.")
        return folder

    def _folder(self, f: FakeFolder) -> Folder:
        prefix = f.name + DELIMITER
        return Folder(
            name=f.name,
            uid_validity=f.uid_validity,
            uid_next=f.uid_next,
            highest_modseq=f.modseq,
            exists=len(f.messages),
            recent=sum(1 for m in f.messages.values() if m.recent),
            unseen=sum(1 for m in f.messages.values() if "\\Seen" not in m.flags),
            special_use=f.special_use,
            subscribed=f.name in self._subscribed,
            has_children=any(n.startswith(prefix) for n in self._folders),
        )

    def folders(self) -> list[Folder]:
        with self._lock:
            self._count("folders")
            return [self._folder(f) for f in self._folders.values()]

    def folder(self, name: str) -> Folder:
        with self._lock:
            self._count("folder")
            return self._folder(self._get(name))

    def create_folder(self, name: str, special_use: str | None = None) -> Folder:
        with self._lock:
            name = canonical(name.rstrip(DELIMITER) or name)
            if name in self._folders:
                raise FolderExists(f"The folder '{name}' already exists.")
            pieces = name.split(DELIMITER)
            for i in range(1, len(pieces)):
                parent = DELIMITER.join(pieces[:i])
                if parent not in self._folders:
                    self._new_folder(parent, None)
            return self._folder(self._new_folder(name, special_use))

    def _new_folder(self, name: str, special_use: str | None) -> FakeFolder:
        self._next_validity += 1
        folder = FakeFolder(name, self._next_validity, special_use)
        self._folders[name] = folder
        return folder

    def delete_folder(self, name: str) -> None:
        with self._lock:
            name = canonical(name)
            if name == "INBOX":
                raise FolderInUse("INBOX can't be deleted.")
            self._get(name)
            if any(n.startswith(name + DELIMITER) for n in self._folders):
                raise FolderHasChildren(f"The folder '{name}' has subfolders.")
            del self._folders[name]

    def rename_folder(self, old: str, new: str) -> None:
        with self._lock:
            old, new = canonical(old), canonical(new)
            source = self._get(old)
            if new in self._folders:
                raise FolderExists(f"The folder '{new}' already exists.")
            if old == "INBOX":  # INBOX stays, empty; its messages are reported expunged
                target = self._new_folder(new, None)
                target.messages, source.messages = source.messages, {}
                target.uid_next = source.uid_next
                if target.messages:
                    self._remove(source, [], tombstones=list(target.messages))
                return
            for name in [n for n in self._folders if n == old or n.startswith(old + DELIMITER)]:
                folder = self._folders.pop(name)
                folder.name = new + name[len(old) :]
                self._folders[folder.name] = folder

    def subscribe(self, name: str, subscribed: bool) -> None:
        with self._lock:
            (self._subscribed.add if subscribed else self._subscribed.discard)(canonical(name))

    def subscriptions(self) -> list[str]:
        with self._lock:
            return sorted(self._subscribed)

    def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> Appended:
        with self._lock:
            self._count("append")
            target = self._get(folder, destination=True)
            if len(message) > self.max_message:
                raise MessageTooLarge(f"The message is larger than {self.max_message} bytes.")
            uid = target.uid_next
            target.uid_next += 1
            target.modseq += 1
            target.messages[uid] = FakeMessage(
                uid,
                bytes(message),
                normal_flags(flags),
                internal_date or datetime.now(UTC),
                target.modseq,
            )
            return Appended(target.uid_validity, uid)

    def append_many(
        self,
        folder: str,
        messages: Sequence[tuple[bytes, Iterable[str], datetime | None]],
    ) -> list[Appended]:
        with self._lock:
            self._count("append_many")
            target = self._get(folder, destination=True)
            if any(len(m[0]) > self.max_message for m in messages):
                raise MessageTooLarge(f"A message is larger than {self.max_message} bytes.")
            target.modseq += 1
            appended = []
            for data, flags, internal_date in messages:
                uid = target.uid_next
                target.uid_next += 1
                target.messages[uid] = FakeMessage(
                    uid,
                    bytes(data),
                    normal_flags(flags),
                    internal_date or datetime.now(UTC),
                    target.modseq,
                )
                appended.append(Appended(target.uid_validity, uid))
            return appended

    def messages(self, folder: str) -> list[MessageInfo]:
        with self._lock:
            self._count("messages")
            f = self._get(folder)
            return [f.messages[uid].info() for uid in sorted(f.messages)]

    def newest(self, folder: str, offset: int, limit: int) -> tuple[int, list[MessageInfo]]:
        infos = self.messages(folder)
        infos.sort(key=lambda i: (i.internal_date, i.uid), reverse=True)
        return len(infos), infos[max(offset, 0) : max(offset, 0) + max(limit, 0)]

    def envelopes(self, folder: str, uids: Sequence[int]) -> dict[int, str]:
        return {uid: parts.envelope for uid, parts in self.cached(folder, uids).items()}

    def uid_flags(self, folder: str) -> FlagMap:
        info = self.folder(folder)
        messages = self.messages(folder)
        return FlagMap.build(
            info.name,
            info.uid_validity,
            info.uid_next,
            info.highest_modseq,
            ((m.uid, m.flags, m.recent) for m in messages),
        )

    def changes_since(self, folder: str, modseq: int) -> Changes:
        with self._lock:
            self._count("changes_since")
            f = self._get(folder)
            newer = sorted(uid for uid, m in f.messages.items() if m.modseq > modseq)
            changed = tuple(f.messages[uid].info() for uid in newer)
            gone = tuple(uid for uid, ms in f.tombstones if ms > modseq)
            return Changes(changed, gone, f.modseq, f.uid_validity)

    def take_recent(self, folder: str) -> list[int]:
        with self._lock:
            f = self._get(folder)
            taken = sorted(uid for uid, m in f.messages.items() if m.recent)
            for uid in taken:
                f.messages[uid].recent = False
            return taken

    def body(self, folder: str, uid: int) -> bytes:
        with self._lock:
            self._count("body")
            message = self._get(folder).messages.get(uid)
            if message is None:
                raise MessageNotFound(f"There is no message with UID {uid}.")
            return message.raw

    def bodies(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        with self._lock:
            self._count("bodies")
            found = self._get(folder).messages
            return {uid: found[uid].raw for uid in uids if uid in found}

    def infos(self, folder: str, uids: Sequence[int]) -> dict[int, MessageInfo]:
        with self._lock:
            self._count("infos")
            found = self._get(folder).messages
            return {uid: found[uid].info() for uid in uids if uid in found}

    def cached(self, folder: str, uids: Sequence[int]) -> dict[int, CachedParts]:
        with self._lock:
            self._count("cached")
            f = self._get(folder)
            out = {}
            for uid in uids:
                message = f.messages.get(uid)
                if message is None:
                    continue
                if message.parts is None:
                    message.parts = trivial_parts(message.raw)
                out[uid] = message.parts
            return out

    def store_flags(
        self,
        folder: str,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> list[MessageInfo]:
        with self._lock:
            self._count("store_flags")
            f = self._get(folder)
            wanted = normal_flags(flags)
            changed = []
            modseq = f.modseq + 1
            for uid in sorted(set(uids)):
                message = f.messages.get(uid)
                if message is None:
                    continue
                if unchanged_since is not None and message.modseq > unchanged_since:
                    continue
                if mode == "set":
                    new = wanted
                elif mode == "add":
                    new = message.flags | wanted
                elif mode == "remove":
                    new = message.flags - wanted
                else:
                    raise ValueError(mode)
                if new != message.flags:
                    message.flags = new
                    message.modseq = modseq
                    changed.append(message.info())
            if changed:
                f.modseq = modseq
            return changed

    def _transfer(self, folder: str, uids: Sequence[int], destination: str, move: bool) -> Copied:
        with self._lock:
            source = self._get(folder)
            target = self._get(destination, destination=True)
            found = [source.messages[uid] for uid in sorted(set(uids)) if uid in source.messages]
            if not found:
                return Copied(target.uid_validity, ())
            target.modseq += 1
            pairs = []
            for message in found:
                uid = target.uid_next
                target.uid_next += 1
                target.messages[uid] = FakeMessage(
                    uid, message.raw, message.flags, message.internal_date, target.modseq
                )
                pairs.append((message.uid, uid))
            if move:
                self._remove(source, [m.uid for m in found])
            return Copied(target.uid_validity, tuple(pairs))

    def copy(self, folder: str, uids: Sequence[int], destination: str) -> Copied:
        return self._transfer(folder, uids, destination, move=False)

    def move(self, folder: str, uids: Sequence[int], destination: str) -> Copied:
        return self._transfer(folder, uids, destination, move=True)

    def _remove(self, f: FakeFolder, uids: list[int], tombstones: Iterable[int] = ()) -> None:
        f.modseq += 1
        for uid in uids:
            del f.messages[uid]
            f.tombstones.append((uid, f.modseq))
        f.tombstones.extend((uid, f.modseq) for uid in tombstones)

    def expunge(self, folder: str, uids: Sequence[int] | None = None) -> list[int]:
        with self._lock:
            self._count("expunge")
            f = self._get(folder)
            candidates = f.messages if uids is None else [u for u in uids if u in f.messages]
            doomed = sorted(u for u in candidates if "\\Deleted" in f.messages[u].flags)
            if doomed:
                self._remove(f, doomed)
            return doomed

    def urlauth_key(self, folder: str, create: bool = False) -> bytes | None:
        with self._lock:
            f = self._get(folder)
            key = (f.name, f.uid_validity)
            if key not in self.urlauth_keys and create:
                self.urlauth_keys[key] = secrets.token_bytes(32)
            return self.urlauth_keys.get(key)

    def reset_urlauth_keys(self, folder: str | None = None) -> None:
        with self._lock:
            if folder is None:
                self.urlauth_keys.clear()
                return
            name = self._get(folder).name
            for key in [k for k in self.urlauth_keys if k[0] == name]:
                del self.urlauth_keys[key]

    def storage_used(self) -> int:
        with self._lock:
            return sum(len(m.raw) for f in self._folders.values() for m in f.messages.values())

    def statistics(self) -> list[FolderStatistics]:
        with self._lock:
            return [
                FolderStatistics(
                    f.name,
                    f.special_use,
                    len(f.messages),
                    sum(len(m.raw) for m in f.messages.values()),
                )
                for f in sorted(self._folders.values(), key=lambda f: f.name)
            ]


class FakeBackend:
    """Users with passwords and a store each; `results[user]` forces a login result
    (throttled, referred, unavailable) once the password is right."""

    def __init__(self, server_fqdn: str = "CAS01.lab.net") -> None:
        self._fqdn = server_fqdn
        self.users: dict[str, tuple[str, FakeMailboxStore]] = {}
        self.results: dict[str, LoginResult] = {}
        self.logins: list[tuple[str, str]] = []  # (user, client address)
        # Storage limits in bytes by user (absent: Unlimited), read at each use.
        self.storage_limits: dict[str, int | None] = {}

    @property
    def server_fqdn(self) -> str:
        return self._fqdn

    def add_user(
        self, user: str, password: str, store: FakeMailboxStore | None = None
    ) -> FakeMailboxStore:
        store = store or FakeMailboxStore()
        self.users[user.lower()] = (password, store)
        return store

    def mailbox_of(self, user: str) -> FakeMailboxStore | None:
        entry = self.users.get(user.lower())
        return entry[1] if entry is not None else None

    def login(self, user: str, password: str, client_address: str) -> LoginResult:
        self.logins.append((user, client_address))
        if user.lower() in self.results:
            return self.results[user.lower()]
        entry = self.users.get(user.lower())
        if entry is None or entry[0] != password:
            return LoginFailed()
        key = user.lower()
        return LoginOk(user, entry[1], storage_limit=lambda: self.storage_limits.get(key))


# -- driving a session --------------------------------------------------------------


def make_session(
    backend: FakeBackend,
    *,
    tls: bool = True,
    starttls: bool = False,
    allow_plaintext: bool = False,
    limits: Limits | None = None,
) -> ImapSession:
    return ImapSession(
        backend,
        client_address="127.0.0.1",
        tls_active=tls,
        starttls_available=starttls,
        allow_plaintext=allow_plaintext,
        limits=limits or Limits(),
    )


def sent(events: Iterable[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


Expected = bytes | re.Pattern[bytes]


def rx(pattern: str | bytes) -> re.Pattern[bytes]:
    """A regex for a transcript step (matched against the whole output, DOTALL)."""
    if isinstance(pattern, str):
        pattern = pattern.encode()
    return re.compile(pattern, re.DOTALL)


def transcript(session: ImapSession, steps: Sequence[tuple[bytes, Expected]]) -> None:
    """Feeds each step's client bytes and checks everything the session sends back."""
    for number, (client, expected) in enumerate(steps, 1):
        got = sent(session.feed(client))
        if isinstance(expected, re.Pattern):
            assert expected.fullmatch(got), (
                f"step {number}: C: {client!r}\nexpected /{expected.pattern!r}/\ngot {got!r}"
            )
        else:
            assert got == expected, (
                f"step {number}: C: {client!r}\nexpected {expected!r}\ngot {got!r}"
            )


PASSWORD = "s3cret pw"


def logged_in(
    store: FakeMailboxStore | None = None, *, user: str = "alice@lab.net", **options: object
) -> tuple[ImapSession, FakeMailboxStore]:
    """A session logged in as `user` (greeting and login responses consumed)."""
    backend = FakeBackend()
    store = backend.add_user(user, PASSWORD, store)
    session = make_session(backend, **options)  # type: ignore[arg-type]
    session.greeting()
    out = sent(session.feed(f'a0 LOGIN {user} "{PASSWORD}"\r\n'.encode()))
    assert out.startswith(b"a0 OK "), out
    return session, store


def selected(
    store: FakeMailboxStore | None = None, mailbox: str = "INBOX", **options: object
) -> tuple[ImapSession, FakeMailboxStore]:
    """A session with `mailbox` selected (SELECT responses consumed)."""
    session, store = logged_in(store, **options)
    out = sent(session.feed(f"s0 SELECT {mailbox}\r\n".encode()))
    assert b"s0 OK [READ-WRITE]" in out, out
    return session, store


def message(subject: str, body: str = "Hello.", **headers: str) -> bytes:
    """A small RFC 5322 message (CRLF line ends)."""
    lines = [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append(f"Subject: {subject}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


class LoopbackIMAP4(imaplib.IMAP4):
    """imaplib's client talking to an in-process `ImapSession`: what it sends is fed
    to the session and what the session sends is what it reads, so responses go
    through imaplib's own parser."""

    def __init__(self, session: ImapSession) -> None:
        self._session = session
        self._inbox = bytearray()
        super().__init__("loopback")

    def open(self, host: str = "", port: int = 143, timeout: float | None = None) -> None:
        self.host, self.port = host, port
        self.sock = _NoSocket()  # type: ignore[assignment]
        self._inbox += sent(self._session.greeting())

    def read(self, size: int) -> bytes:
        data = bytes(self._inbox[:size])
        del self._inbox[:size]
        return data

    def readline(self) -> bytes:
        end = self._inbox.find(b"\n")
        if end < 0:
            raise imaplib.IMAP4.abort("the session sent nothing more")
        return self.read(end + 1)

    def send(self, data: bytes) -> None:
        self._inbox += sent(self._session.feed(data))

    def shutdown(self) -> None:
        self._session.connection_lost()


class _NoSocket:
    def settimeout(self, timeout: float | None) -> None:
        pass
