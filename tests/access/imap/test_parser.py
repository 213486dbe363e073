"""The sans-IO parser: framing (lines, literals, limits, any chunking), the grammar of
every command and its error messages, sequence sets and modified UTF-7."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casarray.access.imap import commands as c
from casarray.access.imap import search as s
from casarray.access.imap.commands import ParseError
from casarray.access.imap.framing import (
    RawCommand,
)
from casarray.access.imap.parser import CommandParser
from casarray.access.imap.sequence import SequenceError, SequenceSet
from casarray.wire import utf7

# -- grammar ------------------------------------------------------------------------


def parse(line: bytes, *literals: bytes) -> c.Command:
    segments = line.split(b"\x00")
    raw = RawCommand(tuple(segments), literals)
    parser = CommandParser(raw)
    parser.tag()
    return parser.arguments(parser.command_name())


def bad(line: bytes, *literals: bytes) -> str:
    with pytest.raises(ParseError) as info:
        parse(line, *literals)
    return str(info.value)


def test_simple_commands() -> None:
    for name in ("CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "EXPUNGE"):
        assert parse(b"t " + name.lower().encode()) == c.Simple("t", name)
    assert parse(b"t IDLE") == c.Simple("t", "IDLE")
    assert "Unexpected ' x'" in bad(b"t NOOP x")


def test_login_forms() -> None:
    assert parse(b"t LOGIN alice secret") == c.Login("t", "LOGIN", "alice", "secret")
    assert parse(b'a LOGIN "al ice" "p\\"w\\\\"') == c.Login("a", "LOGIN", "al ice", 'p"w\\')
    assert parse(b"a LOGIN {5}\x00 {2}\x00", b"alice", b"pw") == c.Login(
        "a", "LOGIN", "alice", "pw"
    )
    assert parse(b"a LOGIN alice] pw") == c.Login("a", "LOGIN", "alice]", "pw")
    assert "Expected a password" in bad(b"a LOGIN alice ")
    assert "Expected a space after the user name" in bad(b"a LOGIN alice")
    assert "Unterminated quoted" in bad(b'a LOGIN "alice pw')


def test_tag_and_name_errors() -> None:
    parser = CommandParser(RawCommand((b"* NOOP",), ()))
    with pytest.raises(ParseError, match="tag"):
        parser.tag()
    parser = CommandParser(RawCommand((b"a1",), ()))
    parser.tag()
    with pytest.raises(ParseError, match="Missing command"):
        parser.command_name()
    assert "Unknown command FROB" in bad(b"a1 FROB")
    assert "Unknown command UID FROB" in bad(b"a1 UID FROB 1")


def test_authenticate() -> None:
    assert parse(b"t AUTHENTICATE plain") == c.Authenticate("t", "AUTHENTICATE", "PLAIN", None)
    assert parse(b"t AUTHENTICATE PLAIN AGFsaWNlAHB3") == c.Authenticate(
        "t", "AUTHENTICATE", "PLAIN", b"AGFsaWNlAHB3"
    )
    assert parse(b"t AUTHENTICATE PLAIN =") == c.Authenticate("t", "AUTHENTICATE", "PLAIN", b"=")
    assert "initial response" in bad(b"t AUTHENTICATE PLAIN !!")


def test_mailbox_names() -> None:
    assert parse(b"t SELECT inbox") == c.MailboxCommand("t", "SELECT", "INBOX")
    assert parse(b't SELECT "Inbox/Work"') == c.MailboxCommand("t", "SELECT", "INBOX/Work")
    assert parse(b"t CREATE Entw&APw-rfe") == c.MailboxCommand("t", "CREATE", "Entwürfe")
    assert parse('t CREATE "Entwürfe"'.encode()) == c.MailboxCommand("t", "CREATE", "Entwürfe")
    assert parse(b"t DELETE {3}\x00", b"a b") == c.MailboxCommand("t", "DELETE", "a b")
    assert parse(b"t RENAME a b") == c.Rename("t", "RENAME", "a", "b")
    assert parse(b"t SUBSCRIBE a") == c.MailboxCommand("t", "SUBSCRIBE", "a")
    parser = CommandParser(RawCommand((b"t SELECT &Jjo",), ()))
    parser.tag(), parser.command_name()
    assert parser.arguments("SELECT") == c.MailboxCommand("t", "SELECT", "&Jjo")
    assert "'&Jjo' is not valid modified UTF-7" in (parser.invalid_name or "")
    assert "Expected mailbox name" in bad(b"t SELECT (a)")


def test_list_patterns() -> None:
    assert parse(b't LIST "" *') == c.ListCommand("t", "LIST", "", "*")
    assert parse(b"t LIST ~/Mail/ %") == c.ListCommand("t", "LIST", "~/Mail/", "%")
    assert parse(b't LSUB "" "a/%"') == c.ListCommand("t", "LSUB", "", "a/%")
    assert parse(b't LIST "" ""') == c.ListCommand("t", "LIST", "", "")
    assert "Expected a mailbox name pattern" in bad(b't LIST ""  *')


def test_status() -> None:
    assert parse(b"t STATUS INBOX (MESSAGES UNSEEN uidnext)") == c.Status(
        "t", "STATUS", "INBOX", ("MESSAGES", "UNSEEN", "UIDNEXT")
    )
    assert "Unknown status item SIZES" in bad(b"t STATUS INBOX (SIZES)")
    assert "Expected '('" in bad(b"t STATUS INBOX MESSAGES")


def test_append() -> None:
    cmd = parse(b't APPEND Sent (\\Seen \\recent $X) "05-Jan-2024 10:00:00 +0100" {3}\x00', b"abc")
    when = datetime(2024, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert cmd == c.Append(
        "t", "APPEND", "Sent", (c.AppendMessage(("\\Seen", "$X"), when, (b"abc",)),)
    )
    assert isinstance(
        cmd := parse(b'a APPEND x " 5-Jan-2024 10:00:00 -0000" {1+}\x00', b"m"), c.Append
    )
    assert cmd.messages[0].date is not None
    assert parse(b"a APPEND x () {1}\x00", b"m") == c.Append(
        "a", "APPEND", "x", (c.AppendMessage((), None, (b"m",)),)
    )
    assert "Unknown system flag \\Foo" in bad(b"a APPEND x (\\Foo) {1}\x00", b"m")
    assert "Invalid date-time" in bad(b'a APPEND x "yesterday" {1}\x00', b"m")
    assert "as a literal" in bad(b"a APPEND x hello")
    assert "as a literal" in bad(b"a APPEND x ~{1}")


def test_fetch_items() -> None:
    cmd = parse(b"t FETCH 1:* (FLAGS ENVELOPE)")
    assert cmd == c.Fetch(
        "t",
        "FETCH",
        False,
        SequenceSet(((1, 0),)),
        (c.FetchAttribute("FLAGS"), c.FetchAttribute("ENVELOPE")),
    )
    assert [i.name for i in parse(b"t FETCH 1 all").items] == [  # type: ignore[attr-defined]
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
    ]
    assert len(parse(b"t FETCH 1 FULL").items) == 5  # type: ignore[attr-defined]
    assert len(parse(b"t FETCH 1 fast").items) == 3  # type: ignore[attr-defined]
    cmd = parse(
        b"t UID FETCH 4:2 (BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> BODY[1.2.MIME] "
        b"BODY[] BODY[TEXT] BODY[2] RFC822.SIZE BODYSTRUCTURE BODY)"
    )
    assert isinstance(cmd, c.Fetch) and cmd.uid
    peek, mime, whole, text, part, *rest = cmd.items
    assert peek == c.FetchAttribute(
        "BODY[]", c.Section((), "HEADER.FIELDS", ("FROM", "SUBJECT")), (0, 100), peek=True
    )
    assert peek.section is not None and peek.section.spec == "HEADER.FIELDS (FROM SUBJECT)"
    assert mime.section == c.Section((1, 2), "MIME") and mime.section.spec == "1.2.MIME"
    assert whole.section == c.Section() and whole.sets_seen
    assert text.section is not None and text.section.spec == "TEXT"
    assert part.section is not None and part.section.spec == "2"
    assert [i.name for i in rest] == ["RFC822.SIZE", "BODYSTRUCTURE", "BODY"]
    assert "Unknown fetch item FROB" in bad(b"t FETCH 1 (FROB)")
    assert "Invalid section MIME" in bad(b"t FETCH 1 BODY[MIME]")
    assert "Invalid section FOO" in bad(b"t FETCH 1 BODY[FOO]")
    assert "partial" in bad(b"t FETCH 1 BODY[]<1.0>")
    assert "Invalid message set" in bad(b"t FETCH 1:2:3 FLAGS")
    assert "Expected a message set" in bad(b"t FETCH x FLAGS")
    assert "Unexpected ' UID'" in bad(b"t FETCH 1 FLAGS UID")
    assert "macro" in bad(b"t FETCH 1 (ALL)")


def test_store() -> None:
    assert parse(b"t STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)") == c.Store(
        "t", "STORE", False, SequenceSet(((1, 1),)), "add", True, ("\\Seen", "\\Deleted")
    )
    assert parse(b"t UID STORE 1:3 -FLAGS \\Seen $Junk") == c.Store(
        "t", "UID STORE", True, SequenceSet(((1, 3),)), "remove", False, ("\\Seen", "$Junk")
    )
    assert parse(b"t STORE 2,4 FLAGS ()") == c.Store(
        "t", "STORE", False, SequenceSet(((2, 2), (4, 4))), "set", False, ()
    )
    assert "Unknown store item" in bad(b"t STORE 1 LABELS (x)")
    assert "Unknown system flag" in bad(b"t STORE 1 FLAGS (\\Bogus)")


def test_copy_move_expunge() -> None:
    assert parse(b"t COPY 1:2 Trash") == c.CopyMove(
        "t", "COPY", False, SequenceSet(((1, 2),)), "Trash"
    )
    assert parse(b"t UID MOVE * Trash") == c.CopyMove(
        "t", "UID MOVE", True, SequenceSet(((0, 0),)), "Trash"
    )
    assert parse(b"t UID EXPUNGE 3:5") == c.UidExpunge("t", "UID EXPUNGE", SequenceSet(((3, 5),)))


def test_search_keys() -> None:
    cmd = parse(
        b"t SEARCH CHARSET utf-8 (OR FROM alice NOT SEEN) UID 1:5 2 LARGER 10 "
        b'SINCE 1-Feb-2024 HEADER X-Spam "yes" KEYWORD $Junk NEW BODY {4}\x00',
        b"caf\xc3\xa9",
    )
    assert isinstance(cmd, c.Search) and cmd.charset == "UTF-8"
    assert cmd.key == s.And(
        (
            s.Or(s.HeaderKey("From", "alice"), s.Not(s.FlagKey("\\Seen", True))),
            s.UidKey(SequenceSet(((1, 5),))),
            s.SequenceKey(SequenceSet(((2, 2),))),
            s.SizeKey(True, 10),
            s.DateKey(False, "since", date(2024, 2, 1)),
            s.HeaderKey("X-Spam", "yes"),
            s.FlagKey("$Junk", True),
            s.And((s.RecentKey(True), s.FlagKey("\\Seen", False))),
            s.TextKey("café", True),
        )
    )
    every = (
        b"t SEARCH ALL ANSWERED BCC x BEFORE 1-Jan-2020 BODY x CC x DELETED DRAFT FLAGGED "
        b"FROM x HEADER a b KEYWORD k LARGER 1 NEW NOT SEEN OLD ON 1-Jan-2020 OR SEEN DRAFT "
        b"RECENT SEEN SENTBEFORE 1-Jan-2020 SENTON 1-Jan-2020 SENTSINCE 1-Jan-2020 "
        b"SINCE 1-Jan-2020 SMALLER 5 SUBJECT x TEXT x TO x UID 1 UNANSWERED UNDELETED "
        b"UNDRAFT UNFLAGGED UNKEYWORD k UNSEEN 1:* (SEEN)"
    )
    cmd = parse(every)
    assert isinstance(cmd, c.Search) and isinstance(cmd.key, s.And)
    assert len(cmd.key.keys) == 37
    assert "Unknown search key FROB" in bad(b"t SEARCH FROB")
    assert "Invalid date" in bad(b"t SEARCH SINCE 2024-02-01")
    assert "Expected a space after OR" in bad(b"t SEARCH OR")
    assert "nested too deeply" in bad(b"t SEARCH " + b"NOT " * 100 + b"ALL")


def test_id_enable_namespace() -> None:
    assert parse(b"t ID NIL") == c.Id("t", "ID", None)
    assert parse(b't ID ("name" "mutt" "version" NIL)') == c.Id(
        "t", "ID", (("name", "mutt"), ("version", None))
    )
    assert "ID" in bad(b"t ID (name mutt)")
    assert parse(b"t ENABLE CONDSTORE utf8=accept") == c.Enable(
        "t", "ENABLE", ("CONDSTORE", "UTF8=ACCEPT")
    )
    assert "at least one" in bad(b"t ENABLE")
    assert parse(b"t NAMESPACE") == c.Simple("t", "NAMESPACE")


# -- sequence sets ------------------------------------------------------------------


def test_sequence_numbers() -> None:
    assert SequenceSet(((1, 0),)).indexes(3) == [0, 1, 2]
    assert SequenceSet(((3, 1), (2, 2), (0, 0))).indexes(5) == [0, 1, 2, 4]
    assert SequenceSet(((0, 2),)).indexes(4) == [1, 2, 3]
    assert SequenceSet(((1, 0),)).indexes(0) == []
    with pytest.raises(SequenceError):
        SequenceSet(((6, 6),)).indexes(5)
    with pytest.raises(SequenceError):
        SequenceSet(((1, 1),)).indexes(0)


def test_uid_sets() -> None:
    uids = [3, 5, 9, 10]
    assert SequenceSet(((1, 0),)).uid_indexes(uids) == [0, 1, 2, 3]
    assert SequenceSet(((4, 9),)).uid_indexes(uids) == [1, 2]
    assert SequenceSet(((100, 0),)).uid_indexes(uids) == [3]  # n:* includes the last
    assert SequenceSet(((1, 2), (11, 20))).uid_indexes(uids) == []
    assert SequenceSet(((10, 3), (5, 5))).uid_indexes(uids) == [0, 1, 2, 3]
    assert SequenceSet(((1, 0),)).uid_indexes([]) == []


# -- modified UTF-7 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("a&b", "a&-b"),
        ("日本語", "&ZeVnLIqe-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ],
)
def test_utf7(text: str, wire: str) -> None:
    assert utf7.encode(text) == wire
    assert utf7.decode(wire) == text


@given(st.text())
def test_utf7_round_trip(text: str) -> None:
    assert utf7.decode(utf7.encode(text)) == text


def test_utf7_errors() -> None:
    for wrong in ("&", "&Jjo", "&!!-", "é"):
        with pytest.raises(utf7.Utf7Error):
            utf7.decode(wrong)
