"""What the access services see of a mailbox database: typed Protocols and frozen
records, never SQL. The IMAP and HTTP services program against these; the store
(`mailstore.store`) implements them on SQLite or PostgreSQL.

Names: a folder's `name` is its full path with "/" as the hierarchy delimiter; "INBOX"
(any case) is the inbox. Flags are IMAP flag strings: system flags with a backslash
("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft") and keywords without.
Every change to a folder gets a new modification sequence (RFC 7162 style), so a
session on any Client Access server learns what changed since it last looked.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from casarray.errors import CasarrayError

SPECIAL_FOLDERS = (
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
# What a mailbox holds when its store creates it (at first use, or New-Mailbox): INBOX
# and the special folders, each subscribed, in this order (their UIDVALIDITYs ascend).
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (("INBOX", None), *SPECIAL_FOLDERS)
DELIMITER = "/"
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


class MailstoreError(CasarrayError):
    """Base of the store's errors; `code` is an IMAP response code where one fits."""

    code: str | None = None


class FolderNotFound(MailstoreError):
    code = "NONEXISTENT"


class FolderExists(MailstoreError):
    code = "ALREADYEXISTS"


class FolderInUse(MailstoreError):
    """E.g. deleting INBOX, or renaming onto itself."""

    code = "CANNOT"


class MessageTooLarge(MailstoreError):
    code = "TOOBIG"


class FolderHasChildren(FolderInUse):
    """DELETE of a folder that has subfolders: delete them first (RFC 5530)."""

    code = "HASCHILDREN"


class DestinationNotFound(FolderNotFound):
    """APPEND, COPY or MOVE into a folder that doesn't exist: the client may CREATE it
    and try again (RFC 3501 TRYCREATE)."""

    code = "TRYCREATE"


class InvalidFolderName(MailstoreError):
    """Empty, an empty level ("a//b"), a control character, or a LIST wildcard."""

    code = "CANNOT"


class InvalidFlag(MailstoreError):
    """Not a system flag and not a keyword atom (RFC 3501 flag syntax)."""


class MessageNotFound(MailstoreError):
    """No message with that UID in the folder (never was, or expunged meanwhile)."""


class DatabaseUnavailable(MailstoreError):
    """The mailbox database is dismounted (Dismount-Database) or can't be opened."""

    code = "UNAVAILABLE"


STORAGE_FULL_TEXT = "Not enough disk space"


class StorageFull(DatabaseUnavailable):
    """The disk holding the mailbox database is full (SQLite's "database or disk is
    full", PostgreSQL's disk_full 53100): the change was refused and rolled back, so
    nothing stored changed, and writes work again once there is space. IMAP answers it
    `NO [OVERQUOTA] Not enough disk space`, as Dovecot does (RFC 9051 OVERQUOTA); as a
    DatabaseUnavailable, a caller that retries later (delivery) does so. `where` names
    the database for the logs."""

    code = "OVERQUOTA"
    category = "WriteError"

    def __init__(self, where: str = "") -> None:
        super().__init__(STORAGE_FULL_TEXT)
        self.where = where
        self.target = where or None


@dataclass(frozen=True)
class Folder:
    name: str
    uid_validity: int
    uid_next: int
    highest_modseq: int
    exists: int
    recent: int
    unseen: int
    special_use: str | None
    subscribed: bool
    has_children: bool


@dataclass(frozen=True)
class FolderStatistics:
    """What Get-MailboxFolderStatistics shows of a folder: its messages and their bytes."""

    name: str
    special_use: str | None
    messages: int
    size: int


@dataclass(frozen=True)
class MessageInfo:
    """A message's metadata; the body is fetched separately."""

    uid: int
    flags: frozenset[str]
    internal_date: datetime
    size: int
    modseq: int
    recent: bool = False


@dataclass(frozen=True)
class CachedParts:
    """What FETCH answers without reading the message: the ENVELOPE and BODYSTRUCTURE
    (and BODY) of a message, already serialised in IMAP syntax."""

    envelope: str
    bodystructure: str
    body: str


@dataclass(frozen=True)
class FlagMap:
    name: str
    uid_validity: int
    uid_next: int
    highest_modseq: int
    uids: array[int]  # typecode "I"
    flags: list[frozenset[str]]
    recent: frozenset[int]
    first_unseen: int | None = None  # sequence number of the first message without \\Seen
    flag_sets: frozenset[frozenset[str]] = frozenset()  # the distinct values of `flags`

    @classmethod
    def build(
        cls,
        name: str,
        uid_validity: int,
        uid_next: int,
        highest_modseq: int,
        entries: Iterable[tuple[int, frozenset[str], bool]],
    ) -> FlagMap:
        """From (uid, flags, recent) in UID order, with the derived fields filled in."""
        uids: array[int] = array("I")
        flags: list[frozenset[str]] = []
        recent: list[int] = []
        for uid, flag_set, is_recent in entries:
            uids.append(uid)
            flags.append(flag_set)
            if is_recent:
                recent.append(uid)
        first = next((n for n, f in enumerate(flags, 1) if "\\Seen" not in f), None)
        return cls(
            name,
            uid_validity,
            uid_next,
            highest_modseq,
            uids,
            flags,
            frozenset(recent),
            first,
            frozenset(flags),
        )


@dataclass(frozen=True)
class Changes:
    """What changed in a folder since a modseq: new or changed messages (with their
    current state), UIDs expunged, and the folder's modseq now."""

    changed: tuple[MessageInfo, ...]
    expunged: tuple[int, ...]
    highest_modseq: int
    uid_validity: int


@dataclass(frozen=True)
class Appended:
    uid_validity: int
    uid: int


@dataclass(frozen=True)
class Copied:
    uid_validity: int  # of the destination
    pairs: tuple[tuple[int, int], ...]  # (source uid, destination uid)


class MailboxStore(Protocol):
    """One user's mailbox (all their folders) in one mailbox database."""

    def folders(self) -> list[Folder]: ...

    def folder(self, name: str) -> Folder:
        """Raises FolderNotFound."""
        ...

    def create_folder(self, name: str, special_use: str | None = None) -> Folder:
        """Creates missing parents too (RFC 3501 CREATE). Raises FolderExists."""
        ...

    def delete_folder(self, name: str) -> None: ...

    def rename_folder(self, old: str, new: str) -> None:
        """Renames its children too; renaming INBOX moves its messages (RFC 3501)."""
        ...

    def subscribe(self, name: str, subscribed: bool) -> None: ...

    def subscriptions(self) -> list[str]: ...

    def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> Appended:
        """Durable when it returns (it survives kill -9 of any process)."""
        ...

    def append_many(
        self,
        folder: str,
        messages: Sequence[tuple[bytes, Iterable[str], datetime | None]],
    ) -> list[Appended]:
        """Several messages (data, flags, internal date) in one transaction: all stored,
        with ascending UIDs, or none (MULTIAPPEND, RFC 3502)."""
        ...

    def messages(self, folder: str) -> list[MessageInfo]:
        """Every message of the folder, in UID order."""
        ...

    def newest(self, folder: str, offset: int, limit: int) -> tuple[int, list[MessageInfo]]:
        """(how many messages the folder has, `limit` of them from `offset` on, newest
        first: by internal date, then UID, descending), in one read: a page of a folder
        listed as Exchange lists one, without reading the whole folder."""
        ...

    def uid_flags(self, folder: str) -> FlagMap:
        """What SELECT needs, read consistently: the folder's UIDVALIDITY, UIDNEXT and
        modseq, and every message's UID and flags in UID order. Shared and read-only:
        copy before changing."""
        ...

    def changes_since(self, folder: str, modseq: int) -> Changes: ...

    def take_recent(self, folder: str) -> list[int]:
        """The UIDs that are \\Recent for the session that calls this (a read-write
        SELECT): they stop being recent for every later caller."""
        ...

    def body(self, folder: str, uid: int) -> bytes:
        """The raw RFC 5322 message."""
        ...

    def bodies(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        """The raw messages of `uids` that exist, in one read (a FETCH's batch)."""
        ...

    def infos(self, folder: str, uids: Sequence[int]) -> dict[int, MessageInfo]:
        """What `messages` says of the messages of `uids` that exist."""
        ...

    def cached(self, folder: str, uids: Sequence[int]) -> dict[int, CachedParts]: ...

    def envelopes(self, folder: str, uids: Sequence[int]) -> dict[int, str]:
        """Only the cached ENVELOPEs (what SEARCH FROM/TO/CC/BCC/SUBJECT reads)."""
        ...

    def store_flags(
        self,
        folder: str,
        uids: Sequence[int],
        mode: str,  # "set", "add" or "remove"
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> list[MessageInfo]:
        """The messages after the change (those changed)."""
        ...

    def copy(self, folder: str, uids: Sequence[int], destination: str) -> Copied: ...

    def move(self, folder: str, uids: Sequence[int], destination: str) -> Copied: ...

    def expunge(self, folder: str, uids: Sequence[int] | None = None) -> list[int]:
        """Removes the messages flagged \\Deleted (only those in `uids`, if given);
        returns the UIDs removed."""
        ...

    def urlauth_key(self, folder: str, create: bool = False) -> bytes | None:
        """The folder's URLAUTH key (RFC 4467), made when `create` and missing."""
        ...

    def reset_urlauth_keys(self, folder: str | None = None) -> None:
        """RESETKEY: forgets the folder's key (without `folder`: every key)."""
        ...

    def statistics(self) -> list[FolderStatistics]:
        """Every folder's message count and size, in hierarchy order (INBOX first)."""
        ...

    def storage_used(self) -> int:
        """The bytes of all the mailbox's messages: what its storage quota counts."""
        ...


class DatabaseStore(Protocol):
    """A mailbox database: the mailboxes it holds."""

    def mailbox(self, mailbox_guid: str) -> MailboxStore:
        """The mailbox's store; its folders are created on first use."""
        ...

    def create_mailbox(self, mailbox_guid: str) -> MailboxStore:
        """INBOX and the special folders (`DEFAULT_FOLDERS`); an existing mailbox as it is."""
        ...

    def remove_mailbox(self, mailbox_guid: str) -> None: ...

    def close(self) -> None: ...
