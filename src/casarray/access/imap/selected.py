"""The session's view of its selected mailbox: the message sequence number map (UIDs in
order, each with its flags) and what the client has been told, kept in step with the
store through `changes_since`.

The map is all that is kept per message: UIDs in an `array('I')` (4 bytes each) and a
parallel list of flag sets, interned so messages with the same flags share one
frozenset. Messages expunged by other sessions stay in the map (and keep their sequence
numbers) until an EXPUNGE response may be sent (RFC 3501 7.4.1: never while answering
FETCH, STORE or SEARCH); then they are announced and removed together.

With CONDSTORE enabled (RFC 7162) flag updates carry the message's MODSEQ; with QRESYNC
they carry its UID too, and expunges go out as one VANISHED response of UIDs.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

from casarray.access.imap import responses as r
from casarray.mailstore.interface import (
    SYSTEM_FLAGS,
    Changes,
    FolderNotFound,
    MailboxStore,
    MessageInfo,
    StorageFull,
)


def _take_recent(store: MailboxStore, name: str, recent: Iterable[int]) -> set[int]:
    """The \\Recent messages this session takes; on a full disk (clearing \\Recent is a
    write) those it saw, left \\Recent in the store: reading never fails for lack of
    space."""
    try:
        return set(store.take_recent(name))
    except StorageFull:
        return set(recent)


class MailboxGone(Exception):
    """The selected folder was deleted, or its UIDVALIDITY changed, under the session."""


class SelectedMailbox:
    __slots__ = (
        "_intern",
        "_seen_keywords",
        "before_expunge",
        "condstore",
        "flags",
        "keywords",
        "modseq",
        "name",
        "pending_expunge",
        "qresync",
        "readonly",
        "recent",
        "uid_next",
        "uid_validity",
        "uids",
    )

    def __init__(self, name: str, readonly: bool, uid_validity: int, modseq: int) -> None:
        self.name = name
        self.readonly = readonly
        self.uid_validity = uid_validity
        self.uid_next = 1
        self.modseq = modseq
        self.uids: array[int] = array("I")
        self.flags: list[frozenset[str]] = []
        self.recent: set[int] = set()
        self.pending_expunge: set[int] = set()
        self.keywords: frozenset[str] = frozenset()
        self._intern: dict[frozenset[str], frozenset[str]] = {}
        self.condstore = False  # MODSEQ in flag updates (RFC 7162)
        self.qresync = False  # ... and UID, and VANISHED instead of EXPUNGE
        # Lines to send before EXPUNGE responses, given the indexes about to go (the
        # REMOVEFROM of RFC 5267 contexts, numbered while the messages still exist).
        self.before_expunge: Callable[[list[int]], list[bytes]] | None = None
        self._seen_keywords: set[str] = set()  # every keyword of every flag set interned

    @classmethod
    def open(
        cls, store: MailboxStore, name: str, readonly: bool
    ) -> tuple[SelectedMailbox, list[bytes]]:
        """Selects `name`: the view and the untagged SELECT responses (FLAGS, EXISTS,
        RECENT, UNSEEN, PERMANENTFLAGS, UIDVALIDITY, UIDNEXT)."""
        snapshot = store.uid_flags(name)  # its modseq is the baseline for changes
        view = cls(snapshot.name, readonly, snapshot.uid_validity, snapshot.highest_modseq)
        view.uids = array("I", snapshot.uids)
        view.flags = list(snapshot.flags)
        for flags in snapshot.flag_sets:
            view._intern_flags(flags)
        last = view.uids[-1] if view.uids else 0
        view.uid_next = max(snapshot.uid_next, last + 1)
        if readonly or not snapshot.recent:
            view.recent = set(snapshot.recent)
        else:
            view.recent = _take_recent(store, snapshot.name, snapshot.recent)
        first_unseen = snapshot.first_unseen
        view.keywords = view._all_keywords()
        lines = [
            view.flags_response(),
            b"* %d EXISTS\r\n" % len(view.uids),
            b"* %d RECENT\r\n" % view.recent_count(),
        ]
        if first_unseen is not None:
            n = first_unseen
            lines.append(b"* OK [UNSEEN %d] Message %d is the first unseen\r\n" % (n, n))
        if readonly:
            lines.append(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n")
        else:
            lines.append(view.permanent_flags_response())
        lines.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % view.uid_validity)
        lines.append(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % view.uid_next)
        return view, lines

    # -- the map

    def _intern_flags(self, flags: frozenset[str]) -> frozenset[str]:
        known = self._intern.get(flags)
        if known is not None:
            return known
        self._intern[flags] = flags
        self._seen_keywords.update(f for f in flags if not f.startswith("\\"))
        return flags

    def _all_keywords(self) -> frozenset[str]:
        return frozenset(self._seen_keywords)

    def flags_response(self) -> bytes:
        names = " ".join((*SYSTEM_FLAGS, *sorted(self.keywords)))
        return f"* FLAGS ({names})\r\n".encode("utf-8", "replace")

    def permanent_flags_response(self) -> bytes:
        names = " ".join((*SYSTEM_FLAGS, *sorted(self.keywords), "\\*"))
        return f"* OK [PERMANENTFLAGS ({names})] Flags permitted\r\n".encode("utf-8", "replace")

    @property
    def exists(self) -> int:
        return len(self.uids)

    def recent_count(self) -> int:
        """The \\Recent messages among those the client has been told exist. Taking
        \\Recent takes it from every message of the folder, also from one committed
        after the changes this session has read: that one keeps its \\Recent here but
        counts only once its EXISTS has gone out (a RECENT above EXISTS is an error)."""
        return sum(1 for uid in self.recent if self.index_of(uid) is not None)

    def index_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i
        return None

    def flag_list(self, index: int) -> bytes:
        return r.flag_list(self.flags[index], self.uids[index] in self.recent)

    def set_flags(self, infos: Iterable[MessageInfo]) -> list[int]:
        """Records flags the session itself changed; the indexes whose flags differ."""
        changed = []
        for info in infos:
            i = self.index_of(info.uid)
            if i is not None and self.flags[i] != info.flags:
                self.flags[i] = self._intern_flags(info.flags)
                changed.append(i)
        return changed

    def new_keywords(self) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS again when keywords appeared since they were sent."""
        if self._seen_keywords <= self.keywords:  # every update asks: kept cheap
            return []
        self.keywords = self.keywords | self._seen_keywords
        lines = [self.flags_response()]
        if not self.readonly:
            lines.append(self.permanent_flags_response())
        return lines

    # -- updates

    def update(
        self, store: MailboxStore, *, expunge: bool, uid_command: bool = False
    ) -> list[bytes]:
        """Untagged responses for what changed in the store since the last look, in an
        order that keeps sequence numbers right: EXPUNGE (only when `expunge`), FLAGS
        when new keywords appeared, EXISTS and RECENT for new messages, FETCH FLAGS for
        flag changes (numbered after the expunges). Raises MailboxGone."""
        try:
            changes = store.changes_since(self.name, self.modseq)
        except FolderNotFound as exc:
            raise MailboxGone(str(exc)) from exc
        added = 0
        flag_changes: list[int] = []
        if changes.highest_modseq != self.modseq or changes.changed or changes.expunged:
            added, flag_changes = self._apply(store, changes)
        lines: list[bytes] = []
        if expunge and self.pending_expunge:
            lines = self.announce_expunges()
        if added or flag_changes:
            lines.extend(self.new_keywords())
        if added:
            lines.append(b"* %d EXISTS\r\n" % len(self.uids))
            lines.append(b"* %d RECENT\r\n" % self.recent_count())
        modseqs = {info.uid: info.modseq for info in changes.changed} if self.condstore else {}
        for uid in flag_changes:
            i = self.index_of(uid)
            if i is not None:
                lines.append(self.fetch_flags(i, uid_command, modseqs.get(uid)))
        return lines

    def _apply(self, store: MailboxStore, changes: Changes) -> tuple[int, list[int]]:
        """Takes `changes` into the map: expunged messages become pending, new ones are
        appended, flags updated. Returns how many messages were added and the UIDs
        whose flags changed."""
        if changes.uid_validity != self.uid_validity:
            raise MailboxGone("the mailbox's UIDVALIDITY changed")
        self.modseq = changes.highest_modseq
        gone = set(changes.expunged)
        self.recent.difference_update(uid for uid in gone if self.index_of(uid) is None)
        for uid in gone:
            if self.index_of(uid) is not None:
                self.pending_expunge.add(uid)
        last = self.uids[-1] if self.uids else 0
        new: list[MessageInfo] = []
        flag_changes: list[int] = []
        for info in changes.changed:
            if info.uid in gone:
                continue
            i = self.index_of(info.uid)
            if i is None:
                if info.uid > last:
                    new.append(info)
                continue
            if info.uid in self.pending_expunge:
                continue
            if self.flags[i] != info.flags:
                self.flags[i] = self._intern_flags(info.flags)
                flag_changes.append(info.uid)
        if new:
            new.sort(key=lambda info: info.uid)
            self.uids.extend(info.uid for info in new)
            self.flags.extend(self._intern_flags(info.flags) for info in new)
            self.uid_next = max(self.uid_next, new[-1].uid + 1)
            if self.readonly:
                self.recent.update(info.uid for info in new if info.recent)
            elif any(info.recent for info in new):  # else another session took them
                recent = frozenset(info.uid for info in new if info.recent)
                self.recent.update(_take_recent(store, self.name, recent))
        return len(new), flag_changes

    def fetch_flags(self, index: int, with_uid: bool, modseq: int | None = None) -> bytes:
        if modseq is not None:
            uid = b"UID %d " % self.uids[index] if with_uid or self.qresync else b""
            return b"* %d FETCH (%sFLAGS %s MODSEQ (%d))\r\n" % (
                index + 1,
                uid,
                self.flag_list(index),
                modseq,
            )
        if with_uid:
            return b"* %d FETCH (UID %d FLAGS %s)\r\n" % (
                index + 1,
                self.uids[index],
                self.flag_list(index),
            )
        return b"* %d FETCH (FLAGS %s)\r\n" % (index + 1, self.flag_list(index))

    def announce_expunges(self, also: Iterable[int] = ()) -> list[bytes]:
        """EXPUNGE responses for the messages expunged meanwhile (and `also`, UIDs the
        session expunged itself), removing them from the map."""
        doomed = self.pending_expunge.union(also)
        self.pending_expunge = set()
        positions = sorted(i for i in map(self.index_of, doomed) if i is not None)
        if not positions:
            return []
        lines = self.before_expunge(positions) if self.before_expunge is not None else []
        if self.qresync:  # RFC 7162 3.2.10: the UIDs, in one response
            gone = r.uid_set([self.uids[pos] for pos in positions])
            lines.append(b"* VANISHED %s\r\n" % gone.encode("ascii"))
        else:
            # RFC 3501's example order: ascending, each number as it is after the ones before.
            lines += [b"* %d EXPUNGE\r\n" % (pos + 1 - k) for k, pos in enumerate(positions)]
        drop = set(positions)
        keep = [i for i in range(len(self.uids)) if i not in drop]
        self.uids = array("I", [self.uids[i] for i in keep])
        self.flags = [self.flags[i] for i in keep]
        self.recent.difference_update(doomed)
        return lines

    def uids_of(self, indexes: Sequence[int]) -> list[int]:
        uids = self.uids
        return [uids[i] for i in indexes]
