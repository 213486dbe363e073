"""Transcripts of the mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, LIST (wildcards, references, CHILDREN and SPECIAL-USE
attributes), LSUB, STATUS, APPEND (flags, dates, LITERAL+, APPENDUID, TRYCREATE),
NAMESPACE, ENABLE, UNSELECT and CLOSE."""

from __future__ import annotations

import imaplib
from datetime import datetime, timedelta, timezone

from tests.access.imap.fakes import (
    FakeMailboxStore,
    logged_in,
    message,
    rx,
    selected,
    sent,
    transcript,
)


def filled_store() -> FakeMailboxStore:
    store = FakeMailboxStore()
    store.append("INBOX", message("one"), ["\\Seen"])
    store.append("INBOX", message("two"), ["$Label1"])
    store.append("INBOX", message("three"))
    store.create_folder("Work/Projects/2024")
    store.create_folder("Entwürfe")
    return store


def test_select_and_examine() -> None:
    store = filled_store()
    session, _ = logged_in(store)
    transcript(
        session,
        [
            (
                b"a1 SELECT inbox\r\n",
                b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Label1)\r\n"
                b"* 3 EXISTS\r\n"
                b"* 3 RECENT\r\n"
                b"* OK [UNSEEN 2] Message 2 is the first unseen\r\n"
                b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Label1 \\*)]"
                b" Flags permitted\r\n"
                b"* OK [UIDVALIDITY 1001] UIDs valid\r\n"
                b"* OK [UIDNEXT 4] Predicted next UID\r\n"
                b"a1 OK [READ-WRITE] SELECT completed\r\n",
            ),
            (
                b"a2 EXAMINE INBOX\r\n",
                b"* OK [CLOSED] Previous mailbox closed\r\n"  # RFC 7162 3.2.11
                b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Label1)\r\n"
                b"* 3 EXISTS\r\n"
                b"* 0 RECENT\r\n"  # the first SELECT took them
                b"* OK [UNSEEN 2] Message 2 is the first unseen\r\n"
                b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n"
                b"* OK [UIDVALIDITY 1001] UIDs valid\r\n"
                b"* OK [UIDNEXT 4] Predicted next UID\r\n"
                b"a2 OK [READ-ONLY] EXAMINE completed\r\n",
            ),
            (
                b"a3 SELECT nowhere\r\n",
                b"* OK [CLOSED] Previous mailbox closed\r\n"
                b"a3 NO [NONEXISTENT] Mailbox doesn't exist: nowhere\r\n",
            ),
            # A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
            (b"a4 FETCH 1 FLAGS\r\n", rx(rb"a4 BAD FETCH needs a selected mailbox.*")),
            (b'a5 SELECT "Entw&APw-rfe"\r\n', rx(rb".*\* 0 EXISTS\r\n.*a5 OK \[READ-WRITE\].*")),
        ],
    )


def test_examine_keeps_recent_for_a_later_select() -> None:
    store = filled_store()
    session, _ = logged_in(store)
    out = sent(session.feed(b"a1 EXAMINE INBOX\r\n"))
    assert b"* 3 RECENT\r\n" in out
    out = sent(session.feed(b"a2 SELECT INBOX\r\n"))
    assert b"* 3 RECENT\r\n" in out


def test_create_delete_rename() -> None:
    session, store = logged_in()
    transcript(
        session,
        [
            (b"a1 CREATE Projects/2025/\r\n", b"a1 OK CREATE completed\r\n"),
            (b"a2 CREATE Projects\r\n", rx(rb"a2 NO \[ALREADYEXISTS\] .*\r\n")),
            (b"a3 CREATE inbox\r\n", b"a3 NO [ALREADYEXISTS] INBOX already exists\r\n"),
            (b"a4 DELETE Projects\r\n", rx(rb"a4 NO \[HASCHILDREN\] .*\r\n")),
            (b"a5 DELETE INBOX\r\n", rx(rb"a5 NO \[CANNOT\] INBOX can't be deleted.\r\n")),
            (b"a6 DELETE Nothing\r\n", rx(rb"a6 NO \[NONEXISTENT\] .*\r\n")),
            (b"a7 RENAME Projects Archive/Old\r\n", b"a7 OK RENAME completed\r\n"),
            (b"a8 RENAME Nothing Else\r\n", rx(rb"a8 NO \[NONEXISTENT\] .*\r\n")),
            (b"a9 RENAME Archive Junk\r\n", rx(rb"a9 NO \[ALREADYEXISTS\] .*\r\n")),
            (b"b1 DELETE Archive/Old/2025\r\n", b"b1 OK DELETE completed\r\n"),
            (b'b2 CREATE "&ZeVnLIqe-"\r\n', b"b2 OK CREATE completed\r\n"),
        ],
    )
    names = {f.name for f in store.folders()}
    assert {"Archive/Old", "日本語"} <= names
    assert "Projects" not in names and "Archive/Old/2025" not in names


def test_rename_and_delete_of_the_selected_mailbox() -> None:
    store = filled_store()
    store.append("Work", message("work"))
    session, _ = selected(store, "Work")
    transcript(
        session,
        [
            (b"a1 RENAME Work Job\r\n", b"a1 OK RENAME completed\r\n"),
            (b"a2 FETCH 1 (UID)\r\n", b"* 1 FETCH (UID 1)\r\na2 OK FETCH completed\r\n"),
            (b"a3 DELETE Job/Projects/2024\r\n", b"a3 OK DELETE completed\r\n"),
            (b"a4 DELETE Job/Projects\r\n", b"a4 OK DELETE completed\r\n"),
            (b"a5 DELETE Job\r\n", b"a5 OK DELETE completed\r\n"),
            (b"a6 NOOP\r\n", b"a6 OK NOOP completed\r\n"),
            (b"a7 FETCH 1 (UID)\r\n", rx(rb"a7 BAD FETCH needs a selected mailbox.*")),
        ],
    )


def test_list() -> None:
    session, _ = logged_in(filled_store())
    transcript(
        session,
        [
            (b'a1 LIST "" ""\r\n', b'* LIST (\\Noselect) "/" ""\r\na1 OK LIST completed\r\n'),
            (
                b'a2 LIST "" *\r\n',
                b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
                b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
                b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'
                b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
                b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
                b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n'
                b'* LIST (\\HasChildren) "/" "Work"\r\n'
                b'* LIST (\\HasChildren) "/" "Work/Projects"\r\n'
                b'* LIST (\\HasNoChildren) "/" "Work/Projects/2024"\r\n'
                b"a2 OK LIST completed\r\n",
            ),
            (
                b'a3 LIST "" %\r\n',
                rx(
                    rb'\* LIST \(\\HasNoChildren\) "/" "INBOX"\r\n.*"Trash"\r\n'
                    rb'\* LIST \(\\HasChildren\) "/" "Work"\r\na3 OK LIST completed\r\n'
                ),
            ),
            (
                b"a4 LIST Work/ %\r\n",
                b'* LIST (\\HasChildren) "/" "Work/Projects"\r\na4 OK LIST completed\r\n',
            ),
            (
                b'a5 LIST "" Work/*\r\n',
                b'* LIST (\\HasChildren) "/" "Work/Projects"\r\n'
                b'* LIST (\\HasNoChildren) "/" "Work/Projects/2024"\r\n'
                b"a5 OK LIST completed\r\n",
            ),
            (
                b'a6 LIST "" inbox\r\n',
                b'* LIST (\\HasNoChildren) "/" "INBOX"\r\na6 OK LIST completed\r\n',
            ),
            (
                b'a7 LIST "" "*r*e"\r\n',
                b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
                b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\na7 OK LIST completed\r\n',
            ),
            (b'a8 LIST "" nothing*\r\n', b"a8 OK LIST completed\r\n"),
        ],
    )


def test_list_shows_levels_that_are_not_mailboxes_for_a_trailing_percent() -> None:
    store = FakeMailboxStore()
    store.create_folder("a/b/c")
    store.create_folder("x/y")
    store._folders.pop("a")
    session, _ = logged_in(store)
    transcript(
        session,
        [
            (
                b'a1 LIST "" %\r\n',
                rx(
                    rb'.*\* LIST \(\\Noselect \\HasChildren\) "/" "a"\r\n.*'
                    rb'\* LIST \(\\HasChildren\) "/" "x"\r\na1 OK LIST completed\r\n'
                ),
            ),
            (
                b'a2 LIST "" a*\r\n',
                b'* LIST (\\HasChildren) "/" "a/b"\r\n'
                b'* LIST (\\HasNoChildren) "/" "a/b/c"\r\na2 OK LIST completed\r\n',
            ),
        ],
    )


def test_names_that_are_not_modified_utf7_name_no_mailbox() -> None:
    """As Dovecot: LIST finds nothing and SELECT, STATUS, CREATE say NO (not BAD: the
    command is well formed; the name just can't be a mailbox's)."""
    session, store = logged_in(filled_store())
    transcript(
        session,
        [
            (b'a1 LIST "" &Jjo%\r\n', b"a1 OK LIST completed\r\n"),
            (
                b"a2 SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}\r\n",
                rx(rb"a2 NO \[CANNOT\] The mailbox name .* is not valid modified UTF-7.*\r\n"),
            ),
            (b"a3 STATUS &Jjo (MESSAGES)\r\n", rx(rb"a3 NO \[CANNOT\] .*UTF-7.*\r\n")),
            (b"a4 CREATE &Jjo\r\n", rx(rb"a4 NO \[CANNOT\] .*UTF-7.*\r\n")),
            (b"a5 SELECT ~foo\r\n", rx(rb"a5 NO \[NONEXISTENT\] .*\r\n")),
            (b"a6 LIST (x) ~foo\r\n", rx(rb"a6 BAD .*\r\n")),
        ],
    )
    assert "&Jjo" not in [f.name for f in store.folders()]


def test_list_responses_parse_with_imaplib() -> None:
    session, _ = logged_in(filled_store())
    out = sent(session.feed(b'a1 LIST "" *\r\n'))
    lines = [line for line in out.split(b"\r\n") if line.startswith(b"* LIST ")]
    pattern = imaplib.re.compile(  # imaplib.IMAP4's list response shape, as clients parse it
        rb'\* LIST \((?P<flags>[^)]*)\) "(?P<delim>[^"]*)" "?(?P<name>[^"]*)"?'
    )
    parsed = {m["name"]: (m["flags"], m["delim"]) for m in map(pattern.fullmatch, lines) if m}
    assert len(parsed) == len(lines) == 10
    assert parsed[b"Sent"] == (b"\\HasNoChildren \\Sent", b"/")
    # imaplib's own response parser takes the lines as untagged LIST data.
    client = imaplib.IMAP4.__new__(imaplib.IMAP4)
    client.untagged_responses = {}
    client.debug = 0
    for line in lines:
        assert client._match(imaplib.Untagged_response, line)
        client._append_untagged(client.mo.group("type").decode(), client.mo.group("data"))
    assert len(client.untagged_responses["LIST"]) == 10


def test_subscribe_and_lsub() -> None:
    session, _ = logged_in(filled_store())
    transcript(
        session,
        [
            (b"a1 SUBSCRIBE Work/Projects/2024\r\n", b"a1 OK SUBSCRIBE completed\r\n"),
            (b"a2 UNSUBSCRIBE Junk\r\n", b"a2 OK UNSUBSCRIBE completed\r\n"),
            (
                b'a3 LSUB "" *\r\n',
                b'* LSUB () "/" "INBOX"\r\n'
                b'* LSUB () "/" "Archive"\r\n'
                b'* LSUB () "/" "Drafts"\r\n'
                b'* LSUB () "/" "Sent"\r\n'
                b'* LSUB () "/" "Trash"\r\n'
                b'* LSUB () "/" "Work/Projects/2024"\r\n'
                b"a3 OK LSUB completed\r\n",
            ),
            (
                b'a4 LSUB "" Work/%\r\n',
                b'* LSUB (\\Noselect) "/" "Work/Projects"\r\na4 OK LSUB completed\r\n',
            ),
            (b'a5 LSUB "" ""\r\n', b'* LSUB (\\Noselect) "/" ""\r\na5 OK LSUB completed\r\n'),
        ],
    )


def test_status() -> None:
    session, _ = logged_in(filled_store())
    transcript(
        session,
        [
            (
                b"a1 STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)\r\n",
                b'* STATUS "INBOX" (MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY 1001 UNSEEN 2)\r\n'
                b"a1 OK STATUS completed\r\n",
            ),
            (
                b"a2 STATUS Entw&APw-rfe (UNSEEN)\r\n",
                b'* STATUS "Entw&APw-rfe" (UNSEEN 0)\r\na2 OK STATUS completed\r\n',
            ),
            (
                b"a3 STATUS nowhere (MESSAGES)\r\n",
                b"a3 NO [NONEXISTENT] Mailbox doesn't exist: nowhere\r\n",
            ),
            (b"a4 STATUS INBOX (SIZES)\r\n", b"a4 BAD STATUS: Unknown status item SIZES\r\n"),
        ],
    )


def test_append() -> None:
    session, store = logged_in()
    msg = message("appended")
    transcript(
        session,
        [
            (
                b'a1 APPEND Sent (\\Seen $Sent) "05-Jan-2024 10:00:00 +0100" {%d}\r\n' % len(msg),
                b"+ Ready for literal data\r\n",
            ),
            (msg + b"\r\n", b"a1 OK [APPENDUID 1002 1] APPEND completed\r\n"),
            (
                b"a2 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n",
                b"a2 OK [APPENDUID 1001 1] APPEND completed\r\n",
            ),
            (
                b"a3 APPEND Nowhere {3+}\r\nabc\r\n",
                rx(rb"a3 NO \[TRYCREATE\] Mailbox doesn't exist: Nowhere.*\r\n"),
            ),
            (b"a4 APPEND INBOX {0+}\r\n\r\n", b"a4 NO An empty message can't be appended\r\n"),
            (
                b"a5 APPEND INBOX (\\Bogus) {3+}\r\nabc\r\n",
                rx(rb"a5 BAD APPEND: Unknown system .*"),
            ),
        ],
    )
    [info] = store.messages("Sent")
    assert info.flags == frozenset({"\\Seen", "$Sent"})
    assert info.internal_date == datetime(2024, 1, 5, 10, tzinfo=timezone(timedelta(hours=1)))
    assert store.body("Sent", 1) == msg


def test_append_too_large_for_the_store() -> None:
    session, _ = logged_in(FakeMailboxStore(max_message=10))
    transcript(
        session,
        [(b"a1 APPEND INBOX {20+}\r\n" + b"x" * 20 + b"\r\n", rx(rb"a1 NO \[TOOBIG\] .*\r\n"))],
    )


def test_append_to_the_selected_mailbox_reports_exists() -> None:
    session, _ = selected()
    transcript(
        session,
        [
            (
                b"a1 APPEND INBOX {5+}\r\nhello\r\n",
                b"* 1 EXISTS\r\n* 1 RECENT\r\na1 OK [APPENDUID 1001 1] APPEND completed\r\n",
            ),
        ],
    )


def test_namespace_enable_unselect_close() -> None:
    store = filled_store()
    store.store_flags("INBOX", [1, 3], "add", ["\\Deleted"])
    session, _ = logged_in(store)
    transcript(
        session,
        [
            (
                b"a1 NAMESPACE\r\n",
                b'* NAMESPACE (("" "/")) NIL NIL\r\na1 OK NAMESPACE completed\r\n',
            ),
            (b"a2 ENABLE X-NONE\r\n", b"* ENABLED\r\na2 OK ENABLE completed\r\n"),
            (b"a3 EXAMINE INBOX\r\n", rx(rb".*a3 OK \[READ-ONLY\] EXAMINE completed\r\n")),
            (b"a4 CLOSE\r\n", b"a4 OK CLOSE completed\r\n"),  # read-only: no expunge
            (b"a5 SELECT INBOX\r\n", rx(rb".*\* 3 EXISTS\r\n.*a5 OK.*")),
            (b"a6 UNSELECT\r\n", b"a6 OK UNSELECT completed\r\n"),
            (b"a7 SELECT INBOX\r\n", rx(rb".*\* 3 EXISTS\r\n.*a7 OK.*")),
            (b"a8 CLOSE\r\n", b"a8 OK CLOSE completed\r\n"),  # expunges silently
            (b"a9 CLOSE\r\n", rx(rb"a9 BAD CLOSE needs a selected mailbox.*")),
            (b"b1 SELECT INBOX\r\n", rx(rb".*\* 1 EXISTS\r\n.*b1 OK.*")),
        ],
    )


def test_rename_inbox_while_selected_reports_its_messages_expunged() -> None:
    session, store = selected(filled_store())
    transcript(
        session,
        [
            (
                b"a1 RENAME INBOX Old-Inbox\r\n",
                b"* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\na1 OK RENAME completed\r\n",
            ),
            (b"a2 FETCH 1:* UID\r\n", b"a2 OK FETCH completed\r\n"),
            (b"a3 STATUS Old-Inbox (MESSAGES)\r\n", rx(rb'.*"Old-Inbox" \(MESSAGES 3\).*')),
        ],
    )
    assert len(store.messages("Old-Inbox")) == 3
