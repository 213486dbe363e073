"""Transcripts of ESEARCH (RFC 4731) and RETURN PARTIAL (RFC 5267): `SEARCH RETURN
(MIN MAX COUNT ALL)`, the UID form, empty results, partial ranges, the bad inputs that
are answered BAD; and SEARCH HEADER with an empty string, which matches only the
messages that have the field (RFC 3501)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.access.imap.fakes import FakeMailboxStore, message, selected, sent, transcript


def store_of(count: int) -> FakeMailboxStore:
    store = FakeMailboxStore()
    for n in range(1, count + 1):
        raw = message(f"message {n}", f"Body {n}.", From=f"user{n}@lab.net")
        store.append(
            "INBOX", raw, ["\\Seen"] if n in (2, 4) else [], datetime(2024, 1, n, tzinfo=UTC)
        )
    return store


def answer(session, command: bytes) -> bytes:  # type: ignore[no-untyped-def]
    return sent(session.feed(command))


def test_capability_names_esearch() -> None:
    session, _ = selected(store_of(1))
    assert b" ESEARCH " in answer(session, b"a1 CAPABILITY\r\n")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("(ALL)", b" ALL 1:6"),
        ("()", b" ALL 1:6"),
        ("(MIN)", b" MIN 1"),
        ("(MAX)", b" MAX 6"),
        ("(COUNT)", b" COUNT 6"),
        ("(MIN MAX COUNT ALL)", b" MIN 1 MAX 6 ALL 1:6 COUNT 6"),
        ("(CONTEXT)", b" ALL 1:6"),
    ],
)
def test_return_options_answer_one_esearch_response(options: str, expected: bytes) -> None:
    session, _ = selected(store_of(6))
    out = answer(session, f"a1 SEARCH RETURN {options} ALL\r\n".encode())
    assert out == b'* ESEARCH (TAG "a1")' + expected + b"\r\na1 OK SEARCH completed\r\n"


def test_uid_search_return_names_uids_and_folds_ranges() -> None:
    session, _ = selected(store_of(6))
    transcript(
        session,
        [
            (b"a1 STORE 4 +FLAGS.SILENT (\\Deleted)\r\n", b"a1 OK STORE completed\r\n"),
            (b"a2 EXPUNGE\r\n", b"* 4 EXPUNGE\r\na2 OK EXPUNGE completed\r\n"),
            (
                b"a3 UID SEARCH RETURN (ALL COUNT) ALL\r\n",
                b'* ESEARCH (TAG "a3") UID ALL 1:3,5:6 COUNT 5\r\na3 OK UID SEARCH completed\r\n',
            ),
            (
                b"a4 UID SEARCH RETURN (MIN MAX) SEEN\r\n",
                b'* ESEARCH (TAG "a4") UID MIN 2 MAX 2\r\na4 OK UID SEARCH completed\r\n',
            ),
            (
                b"a5 SEARCH RETURN (ALL) CHARSET UTF-8 FROM user3\r\n",
                b'* ESEARCH (TAG "a5") ALL 3\r\na5 OK SEARCH completed\r\n',
            ),
        ],
    )


def test_an_empty_result_leaves_out_min_max_and_all_but_counts_zero() -> None:
    session, _ = selected(store_of(3))
    transcript(
        session,
        [
            (
                b"a1 SEARCH RETURN (MIN MAX ALL) 1000\r\n",
                b'* ESEARCH (TAG "a1")\r\na1 OK SEARCH completed\r\n',
            ),
            (
                b"a2 UID SEARCH RETURN (COUNT) 1000\r\n",
                b'* ESEARCH (TAG "a2") UID COUNT 0\r\na2 OK UID SEARCH completed\r\n',
            ),
        ],
    )


@pytest.mark.parametrize(
    ("criteria", "partial", "expected"),
    [
        ("ALL", "1:1", "(1:1 1)"),
        ("ALL", "4:2", "(2:4 2:4)"),
        ("ALL", "1:6", "(1:6 1:5)"),
        ("ALL", "6:6", "(6:6 NIL)"),
        ("1:2,4:5", "2:3", "(2:3 2,4)"),
        ("1:2,4:5", "2:10", "(2:10 2,4:5)"),
    ],
)
def test_partial_returns_that_range_of_positions(
    criteria: str, partial: str, expected: str
) -> None:
    session, _ = selected(store_of(5))
    out = answer(session, f"a1 SEARCH RETURN (PARTIAL {partial}) {criteria}\r\n".encode())
    line = f'* ESEARCH (TAG "a1") PARTIAL {expected}\r\na1 OK SEARCH completed\r\n'
    assert out == line.encode()


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (b"SEARCH RETURN (PARTIAL 1) ALL", b"Invalid PARTIAL range '1'"),
        (b"SEARCH RETURN (PARTIAL 1:*) ALL", b"Invalid PARTIAL range '1:*'"),
        (b"SEARCH RETURN (PARTIAL *:1) ALL", b"Invalid PARTIAL range '*:1'"),
        (b"SEARCH RETURN (PARTIAL 0:3) ALL", b"positions start at 1"),
        (b"SEARCH RETURN (PARTIAL 1:2 ALL) ALL", b"PARTIAL and ALL can't be asked together"),
        (b"SEARCH RETURN (FROB) ALL", b"Unknown RETURN option FROB"),
        (b"SEARCH RETURN (SAVE) ALL", b"needs SEARCHRES"),
        (b"SEARCH RETURN MIN ALL", b"Expected '(' to open the RETURN options"),
        (b"SEARCH RETURN (MIN", b"Expected a space after a RETURN option"),
    ],
)
def test_malformed_return_options_are_bad(command: bytes, reason: bytes) -> None:
    session, _ = selected(store_of(3))
    out = answer(session, b"a1 " + command + b"\r\n")
    assert out.startswith(b"a1 BAD SEARCH: "), out
    assert reason in out, out
    # nothing changed: the session goes on
    assert answer(session, b"a2 SEARCH ALL\r\n") == b"* SEARCH 1 2 3\r\na2 OK SEARCH completed\r\n"


def test_tag_with_quote_characters_is_quoted() -> None:
    session, _ = selected(store_of(1))
    out = answer(session, b"a.1 SEARCH RETURN (COUNT) ALL\r\n")
    assert out == b'* ESEARCH (TAG "a.1") COUNT 1\r\na.1 OK SEARCH completed\r\n'


# -- SEARCH HEADER <field> "" -----------------------------------------------------------


def test_header_with_an_empty_string_matches_messages_that_have_the_field() -> None:
    store = FakeMailboxStore()
    store.append("INBOX", b"Subject: hello beautiful world\r\n\r\nbody\r\n")
    store.append(
        "INBOX",
        b"X-Extra: hello beautiful header\r\nX-Extra: another one\r\n\r\nbody\r\n",
    )
    store.append("INBOX", b"From: RealFrom <user-from@domain.org>\r\nTo: groupname:;\r\n\r\nb\r\n")
    session, _ = selected(store)
    transcript(
        session,
        [
            (b'a1 SEARCH HEADER SUBJECT ""\r\n', b"* SEARCH 1\r\na1 OK SEARCH completed\r\n"),
            (b'a2 SEARCH NOT HEADER SUBJECT ""\r\n', b"* SEARCH 2 3\r\na2 OK SEARCH completed\r\n"),
            (b'a3 SEARCH HEADER X-Extra ""\r\n', b"* SEARCH 2\r\na3 OK SEARCH completed\r\n"),
            (b"a4 SEARCH HEADER X-Extra another\r\n", b"* SEARCH 2\r\na4 OK SEARCH completed\r\n"),
            (b'a5 SEARCH HEADER FROM ""\r\n', b"* SEARCH 3\r\na5 OK SEARCH completed\r\n"),
            (b'a6 SEARCH HEADER TO ""\r\n', b"* SEARCH 3\r\na6 OK SEARCH completed\r\n"),
            (b"a7 SEARCH TO groupname\r\n", b"* SEARCH 3\r\na7 OK SEARCH completed\r\n"),
            (b"a8 SEARCH FROM ealfro\r\n", b"* SEARCH 3\r\na8 OK SEARCH completed\r\n"),
        ],
    )
