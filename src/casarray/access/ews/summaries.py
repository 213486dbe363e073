"""What a stored message says that never changes, read once and kept: its ENVELOPE and
BODYSTRUCTURE as Python values, its text and HTML bodies, and the XML of the
properties derived from them (`Summary`), in a per-process cache (`SummaryCache`).

A message under one UID of a folder of one UIDVALIDITY never changes (IMAP's
promise, which the store keeps: a changed message is a new UID), so a summary keyed by
where the mailbox's database keeps its store and the item's `ItemRef` (mailbox, folder,
UIDVALIDITY, UID) is never stale; its size is checked too. What does change (flags,
the modseq in the ChangeKey, the folder) is read from the store on every request and
never kept here. The cache plays the part Dovecot's index cache plays for IMAP: the
first read of a message parses it (the cached IMAP strings, and the message's bytes for
a body), later reads of it through this process only write XML. Its weight is the
messages' sizes (a summary holds at most about that much text), bounded by
`DEFAULT_BUDGET` per process; the least recently used go first.
"""

from __future__ import annotations

import email.utils
import threading
from collections import OrderedDict
from collections.abc import Hashable
from datetime import UTC, datetime

from casarray.access.http.message_view import Part, Structure, parse_structure
from casarray.mailstore.interface import CachedParts
from casarray.mailstore.mime import Envelope, part_text, read_envelope

DEFAULT_BUDGET = 64 * 1024 * 1024  # octets of messages summarised, per process


def is_inline(part: Part) -> bool:
    return part.disposition == "inline" and bool(part.content_id)


class Summary:
    """One message's unchanging content, read lazily: `parts` (the store's cached
    ENVELOPE and BODYSTRUCTURE) may come after the summary, the bodies from the
    message's bytes (`read_texts`); `fragments` holds the XML of properties already
    written (UTF-8), by property (and body type)."""

    def __init__(self, size: int, parts: CachedParts | None = None) -> None:
        self.size = size
        self.parts = parts
        self.texts: tuple[str | None, str | None] | None = None  # (plain, HTML)
        self.fragments: dict[str, bytes] = {}
        self._envelope: Envelope | None = None
        self._structure: Structure | None = None
        self._sent: datetime | bool | None = False  # False: not read yet

    @property
    def envelope(self) -> Envelope:
        if self._envelope is None:
            if self.parts is None:
                return read_envelope("")  # not kept: the parts may come later
            self._envelope = read_envelope(self.parts.envelope)
        return self._envelope

    @property
    def structure(self) -> Structure:
        if self._structure is None:
            if self.parts is None:
                return parse_structure("")
            self._structure = parse_structure(self.parts.bodystructure)
        return self._structure

    @property
    def has_attachments(self) -> bool:
        return any(not is_inline(p) for p in self.structure.attachments)

    @property
    def sent(self) -> datetime | None:
        """The Date header as a datetime (None when absent or unreadable)."""
        if self._sent is False:
            value: datetime | None = None
            if self.envelope.date:
                try:
                    value = email.utils.parsedate_to_datetime(self.envelope.date)
                except (TypeError, ValueError, IndexError):
                    value = None
                if value is not None and value.tzinfo is None:
                    value = value.replace(tzinfo=UTC)
            if self.parts is None:
                return value
            self._sent = value
        assert not isinstance(self._sent, bool)
        return self._sent

    def read_texts(self, raw: bytes | None) -> tuple[str | None, str | None]:
        """(plain text, HTML) of the message's body parts, read from `raw` once; (None,
        None) without `raw` when they weren't read before."""
        if self.texts is None:
            if raw is None:
                return None, None
            s = self.structure
            texts = (_part_text(raw, s.plain), _part_text(raw, s.html))
            if self.parts is None:
                return texts
            self.texts = texts
        return self.texts


def _part_text(raw: bytes, part: Part | None) -> str | None:
    if part is None or not raw:
        return None
    try:
        return part_text(raw, part.number)
    except KeyError:
        return None


class SummaryCache:
    """Summaries by key, least recently used dropped past `budget` octets of messages;
    safe to share between the worker threads of a process."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._entries: OrderedDict[Hashable, Summary] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, size: int) -> Summary:
        """The summary of the message `key` of `size` octets: the kept one, or a new
        empty one, kept from now on."""
        return self.get_many([(key, size)])[0]

    def get_many(self, wanted: list[tuple[Hashable, int]]) -> list[Summary]:
        """`get` of each (key, size), under one taking of the lock."""
        out = []
        with self._lock:
            for key, size in wanted:
                found = self._entries.get(key)
                if found is not None and found.size == size:
                    self._entries.move_to_end(key)
                    out.append(found)
                    continue
                if found is not None:
                    self._weight -= found.size
                summary = Summary(size)
                self._entries[key] = summary
                self._weight += size
                out.append(summary)
            while self._weight > self.budget and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._weight -= dropped.size
        return out

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._weight = 0


SUMMARIES = SummaryCache()
