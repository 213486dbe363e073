"""NOTIFY (RFC 5465): which events of which mailboxes a client wants pushed, and what
changed since it was last told.

The session holds one `Notifier` while NOTIFY SET is in effect and asks the transport
to poll it (the `Idling` event, as IDLE does), so changes reach the client between
commands too. A poll compares the store's folder list (one `folders()` call: counts,
UIDNEXT, HIGHESTMODSEQ) and subscriptions with what the notifier saw last: message
events of mailboxes other than the selected one become STATUS responses, MailboxName
LIST responses (\\NonExistent for one deleted, OLDNAME for one renamed: the same
UIDVALIDITY under a new name), SubscriptionChange LIST responses with \\Subscribed or
without. The selected mailbox's events are the session's usual EXISTS/EXPUNGE/FETCH
updates (`selected.py`), with MessageNew's fetch attributes after them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from casarray.access.imap import commands as c
from casarray.access.imap import responses as r
from casarray.errors import CasarrayError
from casarray.mailstore.interface import DELIMITER, Folder, MailboxStore

MESSAGE_NEW = "MESSAGENEW"
MESSAGE_EXPUNGE = "MESSAGEEXPUNGE"
FLAG_CHANGE = "FLAGCHANGE"
MAILBOX_NAME = "MAILBOXNAME"
SUBSCRIPTION_CHANGE = "SUBSCRIPTIONCHANGE"
SUPPORTED = (MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE, MAILBOX_NAME, SUBSCRIPTION_CHANGE)
BADEVENT = "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"
_MESSAGE_EVENTS = frozenset({MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE})
_SELECTED = frozenset({"SELECTED", "SELECTED-DELAYED"})


class NotifyError(CasarrayError):
    """A NOTIFY SET the server refuses: `status` BAD or NO, with a response code."""

    def __init__(self, status: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def status_items(events: Iterable[str]) -> list[str]:
    """What a STATUS notification carries for the events asked for (as Dovecot)."""
    wanted = set(events)
    items = []
    if MESSAGE_NEW in wanted or MESSAGE_EXPUNGE in wanted:
        items.append("MESSAGES")
    if MESSAGE_NEW in wanted:
        items.append("UIDNEXT")
    if MESSAGE_NEW in wanted or FLAG_CHANGE in wanted:
        items.append("UIDVALIDITY")
    if FLAG_CHANGE in wanted:
        items.append("HIGHESTMODSEQ")
    return items


@dataclass(frozen=True, slots=True)
class _Seen:
    exists: int
    uid_next: int
    uid_validity: int
    highest_modseq: int


def _seen(folder: Folder) -> _Seen:
    return _Seen(folder.exists, folder.uid_next, folder.uid_validity, folder.highest_modseq)


class Notifier:
    """The NOTIFY SET in effect and what its client has been told."""

    def __init__(self, command: c.Notify) -> None:
        assert command.groups is not None
        self.groups = command.groups
        selected: list[c.NotifyGroup] = []
        for group in command.groups:
            for event in group.events:
                if event not in SUPPORTED:
                    raise NotifyError("NO", f"The event {event} is not supported", BADEVENT)
            if group.fetch_items and group.filter not in _SELECTED:
                raise NotifyError("BAD", "MessageNew's fetch attributes need a selected filter")
            if group.filter in _SELECTED:
                selected.append(group)
        if len(selected) > 1:
            raise NotifyError("BAD", "Only one of SELECTED and SELECTED-DELAYED may be given")
        chosen = selected[0] if selected else None
        self.selected_events = frozenset(chosen.events) if chosen else frozenset()
        self.delayed = chosen is not None and chosen.filter == "SELECTED-DELAYED"
        self.fetch_items: tuple[c.FetchAttribute, ...] = chosen.fetch_items if chosen else ()
        self._others = [g for g in command.groups if g.filter not in _SELECTED]
        self._seen: dict[str, _Seen] = {}
        self._names: set[str] = set()
        self._subscribed: set[str] = set()

    @property
    def wants_selected(self) -> bool:
        return bool(self.selected_events & _MESSAGE_EVENTS)

    def events_for(self, name: str, subscribed: set[str]) -> tuple[str, ...]:
        """The events asked for on mailbox `name` (the first group whose filter
        matches; none for no group)."""
        for group in self._others:
            if _matches(group, name, subscribed):
                return group.events
        return ()

    def start(self, store: MailboxStore, selected: str | None, status: bool) -> list[bytes]:
        """Takes the baseline; with SET STATUS, the STATUS of every mailbox (but the
        selected one) whose message events are asked for (RFC 5465 section 5.1)."""
        folders = store.folders()
        self._subscribed = set(store.subscriptions())
        self._names = {f.name for f in folders}
        self._seen = {f.name: _seen(f) for f in folders}
        if not status:
            return []
        lines = []
        for folder in folders:
            if folder.name == selected:
                continue
            items = status_items(self.events_for(folder.name, self._subscribed))
            if items:
                lines.append(r.status(folder, items))
        return lines

    def poll(self, store: MailboxStore, selected: str | None) -> list[bytes]:
        """What changed outside the selected mailbox since the last look."""
        folders = store.folders()
        subscribed = set(store.subscriptions())
        by_name = {f.name: f for f in folders}
        lines: list[bytes] = []
        # A rename keeps the UIDVALIDITY: a name gone and a name new with the same one.
        gone = {self._seen[n].uid_validity: n for n in self._names - by_name.keys()}
        renamed: set[str] = set()
        for name in sorted(by_name.keys() - self._names):
            if MAILBOX_NAME in self.events_for(name, subscribed):
                line = _list_line(by_name[name], subscribed)
                old = gone.get(by_name[name].uid_validity)
                if old is not None:  # RFC 5465 5.4: with its old name
                    renamed.add(old)
                    line = line[:-2] + b' ("OLDNAME" (%s))\r\n' % r.mailbox(old)
                lines.append(line)
        for name in sorted(self._names - by_name.keys() - renamed):  # deleted
            if MAILBOX_NAME in self.events_for(name, subscribed | self._subscribed):
                lines.append(b'* LIST (\\NonExistent) "/" %s\r\n' % r.mailbox(name))
        for name in sorted(subscribed ^ self._subscribed):
            if SUBSCRIPTION_CHANGE in self.events_for(name, subscribed | self._subscribed):
                folder = by_name.get(name)
                if folder is not None:
                    lines.append(_list_line(folder, subscribed))
                else:
                    attrs = (
                        b"\\NonExistent \\Subscribed" if name in subscribed else b"\\NonExistent"
                    )
                    lines.append(b'* LIST (%s) "/" %s\r\n' % (attrs, r.mailbox(name)))
        for name, folder in by_name.items():
            before = self._seen.get(name)
            now = _seen(folder)
            if name == selected or before == now:
                continue
            events = self.events_for(name, subscribed)
            items = status_items(_what_changed(before, now, events))
            if items:
                lines.append(r.status(folder, items))
        self._names = set(by_name)
        self._subscribed = subscribed
        self._seen = {name: _seen(folder) for name, folder in by_name.items()}
        return lines


def _what_changed(before: _Seen | None, now: _Seen, events: Sequence[str]) -> list[str]:
    """Which of `events` a change from `before` to `now` counts as."""
    if before is None or before.uid_validity != now.uid_validity:
        return [e for e in events if e in _MESSAGE_EVENTS]
    added = now.uid_next - before.uid_next
    found = []
    if MESSAGE_NEW in events and added > 0:
        found.append(MESSAGE_NEW)
    expunged = now.exists < before.exists + added
    if MESSAGE_EXPUNGE in events and expunged:
        found.append(MESSAGE_EXPUNGE)
    flags_only = not added and not expunged and now.highest_modseq != before.highest_modseq
    if FLAG_CHANGE in events and flags_only:
        found.append(FLAG_CHANGE)
    return found


def _matches(group: c.NotifyGroup, name: str, subscribed: set[str]) -> bool:
    kind = group.filter
    if kind == "PERSONAL":
        return True
    if kind == "INBOXES":  # where mail is delivered: INBOX
        return name == "INBOX"
    if kind == "SUBSCRIBED":
        return name in subscribed
    if kind == "MAILBOXES":
        return name in group.mailboxes
    if kind == "SUBTREE":
        return any(name == m or name.startswith(m + DELIMITER) for m in group.mailboxes)
    return False


def _list_line(folder: Folder, subscribed: set[str]) -> bytes:
    attrs = ["\\HasChildren" if folder.has_children else "\\HasNoChildren"]
    if folder.special_use:
        attrs.append(folder.special_use)
    if folder.name in subscribed:
        attrs.append("\\Subscribed")
    return b'* LIST (%s) "/" %s\r\n' % (" ".join(attrs).encode("ascii"), r.mailbox(folder.name))
