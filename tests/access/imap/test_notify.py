"""Transcripts of NOTIFY (RFC 5465): SET [STATUS] with the mailbox filters and events,
what a poll pushes between commands (STATUS for other mailboxes, LIST for names and
subscriptions, the selected mailbox's updates with MessageNew's fetch attributes),
NOTIFY NONE, and the requests refused."""

from __future__ import annotations

from casarray.access.imap.events import Idling
from tests.access.imap.fakes import (
    FakeMailboxStore,
    logged_in,
    message,
    rx,
    selected,
    sent,
    transcript,
)


def two_boxes() -> FakeMailboxStore:
    store = FakeMailboxStore()
    store.create_folder("box2")
    store.append("box2", message("one"))
    store.append("INBOX", message("inbox"))
    return store


def test_set_status_sends_the_status_each_event_needs() -> None:
    session, store = logged_in(two_boxes())
    v = store.folder("box2").uid_validity
    transcript(
        session,
        [
            (
                b"a1 NOTIFY SET STATUS (mailboxes box2 (MessageExpunge))\r\n",
                b'* STATUS "box2" (MESSAGES 1)\r\na1 OK NOTIFY completed\r\n',
            ),
            (
                b"a2 NOTIFY SET STATUS (MAILBOXES (box2) (MessageNew MessageExpunge))\r\n",
                b'* STATUS "box2" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)\r\n' % v
                + b"a2 OK NOTIFY completed\r\n",
            ),
            (
                b"a3 NOTIFY SET STATUS (subtree box2 (FlagChange))\r\n",
                rx(rb'\* STATUS "box2" \(UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)\r\na3 OK.*'),
            ),
            (  # without STATUS: nothing at once
                b"a4 NOTIFY SET (mailboxes box2 (MessageNew MessageExpunge FlagChange))\r\n",
                b"a4 OK NOTIFY completed\r\n",
            ),
        ],
    )


def test_poll_reports_other_mailboxes_as_status() -> None:
    store = two_boxes()
    session, _ = selected(store)
    events = session.feed(
        b"a1 NOTIFY SET (selected (MessageNew MessageExpunge)) "
        b"(personal (MessageNew MessageExpunge FlagChange))\r\n"
    )
    assert Idling(True) in events and sent(events) == b"a1 OK NOTIFY completed\r\n"
    assert sent(session.poll()) == b""
    store.append("box2", message("two"))
    assert sent(session.poll()) == b'* STATUS "box2" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY %d)\r\n' % (
        store.folder("box2").uid_validity
    )
    store.store_flags("box2", [1], "add", ["\\Seen", "\\Deleted"])
    assert sent(session.poll()) == b'* STATUS "box2" (UIDVALIDITY %d HIGHESTMODSEQ %d)\r\n' % (
        store.folder("box2").uid_validity,
        store.folder("box2").highest_modseq,
    )
    store.expunge("box2")
    assert sent(session.poll()) == b'* STATUS "box2" (MESSAGES 1)\r\n'
    # The selected mailbox: its usual updates, never a STATUS.
    store.append("INBOX", message("new"))
    assert sent(session.poll()) == b"* 2 EXISTS\r\n* 2 RECENT\r\n"


def test_message_new_fetch_attributes_for_the_selected_mailbox() -> None:
    store = two_boxes()
    session, _ = selected(store)
    transcript(
        session,
        [
            (
                b"a1 NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge))\r\n",
                b"a1 OK NOTIFY completed\r\n",
            )
        ],
    )
    store.append("INBOX", message("new"), ["\\Flagged"])
    assert sent(session.poll()) == (
        b"* 2 EXISTS\r\n* 2 RECENT\r\n* 2 FETCH (UID 2 FLAGS (\\Recent \\Flagged))\r\n"
    )


def test_mailbox_names_and_subscriptions() -> None:
    store = two_boxes()
    session, _ = logged_in(store)
    transcript(
        session,
        [
            (
                b"a1 NOTIFY SET (personal (MailboxName SubscriptionChange))\r\n",
                b"a1 OK NOTIFY completed\r\n",
            )
        ],
    )
    store.create_folder("new")
    store.subscribe("box2", True)
    store.delete_folder("box2")
    assert sent(session.poll()) == (
        b'* LIST (\\HasNoChildren) "/" "new"\r\n'
        b'* LIST (\\NonExistent) "/" "box2"\r\n'
        b'* LIST (\\NonExistent \\Subscribed) "/" "box2"\r\n'
    )
    assert sent(session.poll()) == b""
    store.rename_folder("new", "newer")
    assert sent(session.poll()) == b'* LIST (\\HasNoChildren) "/" "newer" ("OLDNAME" ("new"))\r\n'


def test_notify_none_stops_and_idle_keeps_polling() -> None:
    store = two_boxes()
    session, _ = selected(store)
    session.feed(b"a1 NOTIFY SET (inboxes (MessageNew MessageExpunge))\r\n")
    session.feed(b"a2 IDLE\r\n")
    done = session.feed(b"DONE\r\n")
    assert Idling(False) not in done  # NOTIFY still wants the polls
    events = session.feed(b"a3 NOTIFY NONE\r\n")
    assert Idling(False) in events and sent(events) == b"a3 OK NOTIFY completed\r\n"
    store.append("box2", message("two"))
    assert session.poll() == []


def test_refused_notify_requests() -> None:
    session, _ = logged_in(two_boxes())
    transcript(
        session,
        [
            (
                b"a1 NOTIFY SET (personal (AnnotationChange))\r\n",
                rx(rb"a1 NO \[BADEVENT \(MessageNew .*\)\] The event ANNOTATIONCHANGE .*"),
            ),
            (b"a2 NOTIFY SET (everything (MessageNew))\r\n", rx(rb"a2 BAD .*filter EVERYTHING.*")),
            (
                b"a3 NOTIFY SET (personal (MessageNew (UID) MessageExpunge))\r\n",
                rx(rb"a3 BAD .*selected filter.*"),
            ),
            (
                b"a4 NOTIFY SET (selected (MessageNew)) (selected-delayed (MessageNew))\r\n",
                rx(rb"a4 BAD .*Only one of SELECTED.*"),
            ),
            (b"a5 NOTIFY SET (personal ())\r\n", rx(rb"a5 BAD .*at least one event.*")),
            (b"a6 NOTIFY NONE\r\n", b"a6 OK NOTIFY completed\r\n"),
            (b"a7 NOTIFY SET (personal NONE)\r\n", b"a7 OK NOTIFY completed\r\n"),
        ],
    )
