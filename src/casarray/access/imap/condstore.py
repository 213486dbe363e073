"""CONDSTORE and QRESYNC (RFC 7162) beside the session: what the commands that take a
mod-sequence answer.

The store already gives every change a modseq (per message, and the folder's highest)
and keeps a tombstone with the modseq of every expunge, so a client that remembers a
modseq can be told exactly what changed since: FETCH (CHANGEDSINCE), STORE
(UNCHANGEDSINCE) reporting [MODIFIED] where another session got there first, and a
SELECT (QRESYNC ...) that answers with VANISHED (EARLIER) and the changed flags instead
of making the client fetch everything again. The session keeps the enabled state and
calls these; they only read the store and the selected view.
"""

from __future__ import annotations

from collections.abc import Sequence

from casarray.access.imap import commands as c
from casarray.access.imap import responses as r
from casarray.access.imap.selected import SelectedMailbox
from casarray.access.imap.sequence import SequenceSet
from casarray.mailstore.interface import MailboxStore, MessageInfo

MODSEQ_ITEM = c.FetchAttribute("MODSEQ")


def highest_modseq_line(view: SelectedMailbox) -> bytes:
    return b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % view.modseq


def vanished_earlier(uids: Sequence[int]) -> list[bytes]:
    if not uids:
        return []
    return [b"* VANISHED (EARLIER) %s\r\n" % r.uid_set(sorted(uids)).encode("ascii")]


def modseqs(store: MailboxStore, view: SelectedMailbox, indexes: Sequence[int]) -> dict[int, int]:
    """The current modseq of the messages at `indexes` (that still exist), by UID."""
    uids = view.uids
    found = store.infos(view.name, [uids[i] for i in indexes])
    return {uid: info.modseq for uid, info in found.items()}


def _last_uid(view: SelectedMailbox) -> int:
    return max(view.uid_next - 1, view.uids[-1] if view.uids else 0)


def expunged_since(
    store: MailboxStore, view: SelectedMailbox, modseq: int, within: SequenceSet | None
) -> list[int]:
    """UIDs expunged after `modseq` (those in `within` only, if given) that the
    session's map no longer holds."""
    gone = store.changes_since(view.name, modseq).expunged
    last = _last_uid(view)
    return [
        uid
        for uid in gone
        if view.index_of(uid) is None and (within is None or within.contains_uid(uid, last))
    ]


def qresync_select(store: MailboxStore, view: SelectedMailbox, q: c.Qresync) -> list[bytes]:
    """After SELECT (QRESYNC ...) (RFC 7162 3.2.5): when the UIDVALIDITY is the one the
    client knew, the UIDs expunged since its modseq (VANISHED (EARLIER)) and the flags
    of the messages changed since."""
    if q.uid_validity != view.uid_validity:
        return []  # a different mailbox: the client starts over
    changes = store.changes_since(view.name, q.modseq)
    last = _last_uid(view)
    known = q.known_uids
    gone = [uid for uid in changes.expunged if known is None or known.contains_uid(uid, last)]
    lines = vanished_earlier(gone)
    for info in changes.changed:
        i = view.index_of(info.uid)
        if i is not None and info.uid not in view.pending_expunge:
            lines.append(view.fetch_flags(i, True, info.modseq))
    return lines


def changed_indexes(
    store: MailboxStore, view: SelectedMailbox, indexes: Sequence[int], since: int
) -> list[int]:
    """FETCH (CHANGEDSINCE n): the messages whose modseq is above n."""
    current = modseqs(store, view, indexes)
    uids = view.uids
    return [i for i in indexes if current.get(uids[i], 0) > since]


def store_result(
    store: MailboxStore,
    view: SelectedMailbox,
    cmd: c.Store,
    indexes: Sequence[int],
    changed: Sequence[MessageInfo],
) -> tuple[list[bytes], str | None]:
    """A STORE's untagged FETCH responses once CONDSTORE is on (each with its MODSEQ;
    with .SILENT only for the messages changed, RFC 7162 3.1.3), and the MODIFIED
    response code for messages UNCHANGEDSINCE kept from changing."""
    current = modseqs(store, view, indexes)
    done = {info.uid for info in changed}
    since = cmd.unchanged_since
    modified: list[int] = []
    lines: list[bytes] = []
    for i in indexes:
        uid = view.uids[i]
        if uid not in current or uid in view.pending_expunge:
            continue
        if since is not None and uid not in done and current[uid] > since:
            modified.append(uid if cmd.uid else i + 1)
            continue
        if cmd.silent and uid not in done:
            continue
        items = [b"UID %d" % uid] if cmd.uid or view.qresync else []
        if not cmd.silent:
            items.append(b"FLAGS " + view.flag_list(i))
        items.append(b"MODSEQ (%d)" % current[uid])
        lines.append(b"* %d FETCH (%s)\r\n" % (i + 1, b" ".join(items)))
    code = f"MODIFIED {r.uid_set(sorted(modified))}" if modified else None
    return lines, code
