"""Tests of `casarray.mailstore.mime`: hand-written ENVELOPE / BODYSTRUCTURE / BODY for
RFC 3501's examples and for the usual (and unusual) shapes of mail, every form of
section spec, the SEARCH helpers, hostile input, speed, and properties over arbitrary
bytes (never an exception; BODYSTRUCTURE a balanced IMAP list whose sizes are the
sizes of the sections it numbers)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casarray.mailstore import mime
from casarray.mailstore.interface import CachedParts
from casarray.mailstore.mime import (
    cached_parts,
    decoded_header,
    fetch_section,
    header_values,
    normalize_newlines,
    search_text,
    sent_date,
    to_wire,
)
from tests.mailstore.test_dovecot_differential import (
    _children,
    _is_message,
    message_paths,
    parse_imap,
)

MESSAGES = Path(__file__).parent / "messages"


def sample(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def expect(raw: bytes, envelope: str, bodystructure: str, body: str) -> None:
    parts = cached_parts(raw)
    assert isinstance(parts, CachedParts)
    assert parts.envelope == envelope
    assert parts.bodystructure == bodystructure
    assert parts.body == body


# -- RFC 3501's examples ------------------------------------------------------------

TERRY = '("Terry Gray" NIL "gray" "cac.washington.edu")'
CRISPIN = '("Mark Crispin" NIL "MRC" "CAC.Washington.EDU")'
FRED = '("Fred Foobar" NIL "foobar" "Blurdybloop.COM")'


def test_rfc3501_fetch_example() -> None:
    """RFC 3501 section 8's FETCH of message 12 (3028 octets, 92 lines). The RFC prints
    a space between the two cc addresses; its grammar (env-cc = "(" 1*address ")")
    has none, and "7BIT" there is our "7bit": there is no Content-Transfer-Encoding."""
    expect(
        sample("01_rfc3501_fetch_example.eml"),
        '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        f"({TERRY}) ({TERRY}) ({TERRY}) "
        '((NIL NIL "imap" "cac.washington.edu")) '
        '((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        'NIL NIL "<B27397-0100000@cac.washington.edu>")',
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 3028 92 NIL NIL NIL NIL)',
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 3028 92)',
    )


def test_rfc3501_bodystructure_example() -> None:
    """RFC 3501 section 7.4.2's BODYSTRUCTURE: a MIXED of 1152/23 text and a 4554/73
    BASE64 "cc.diff" with Content-ID and Content-Description."""
    expect(
        sample("02_rfc3501_bodystructure_example.eml"),
        '("Tue, 23 Jul 1996 16:34:07 -0700" "compiler diff" '
        f"({CRISPIN}) ({CRISPIN}) ({CRISPIN}) "
        '((NIL NIL "imap" "cac.washington.edu")) NIL NIL NIL '
        '"<960723163407.20117h@cac.washington.edu>")',
        '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 1152 23 NIL NIL NIL NIL)'
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        '"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73 '
        'NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "8323328-2120168431-824004247=:20117") '
        "NIL NIL NIL)",
        '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 1152 23)'
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        '"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) '
        '"MIXED")',
    )


def test_rfc3501_append_example() -> None:
    """The message of RFC 3501's APPEND example (section 6.3.11)."""
    expect(
        sample("03_rfc3501_append_example.eml"),
        '("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" '
        f"({FRED}) ({FRED}) ({FRED}) "
        '((NIL NIL "mooch" "owatagu.siam.edu")) NIL NIL NIL "<B27397-0100000@Blurdybloop.COM>")',
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 55 1 NIL NIL NIL NIL)',
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 55 1)',
    )


# -- shapes of mail -------------------------------------------------------------------

PLAIN = crlf(
    "From: Alice <alice@lab.net>\n"
    "To: bob@lab.net\n"
    "Subject: hello\n"
    "Date: Thu, 2 May 2024 10:15:00 +0200\n"
    "Message-ID: <p1@lab.net>\n"
    "In-Reply-To: <p0@lab.net>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Hi Bob,\n"
    "see you.\n"
)
ALICE = '("Alice" NIL "alice" "lab.net")'


def test_plain_text() -> None:
    expect(
        PLAIN,
        f'("Thu, 2 May 2024 10:15:00 +0200" "hello" ({ALICE}) ({ALICE}) ({ALICE}) '
        '((NIL NIL "bob" "lab.net")) NIL NIL "<p0@lab.net>" "<p1@lab.net>")',
        '("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 19 2 NIL NIL NIL NIL)',
        '("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 19 2)',
    )


def test_multipart_alternative() -> None:
    example = '("Alice Example" NIL "alice" "lab.net")'
    expect(
        sample("04_alternative.eml"),
        '("Thu, 02 May 2024 10:15:00 +0200" "Lunch =?UTF-8?Q?caf=C3=A9?=" '
        f"({example}) ({example}) ({example}) "
        '(("Bob" NIL "bob" "lab.net")) NIL NIL NIL "<alt-1@lab.net>")',
        '(("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL '
        '"quoted-printable" 92 2 NIL NIL NIL NIL)'
        '("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 79 0 NIL NIL NIL NIL) '
        '"alternative" ("boundary" "alt-boundary") NIL NIL NIL)',
        '(("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL '
        '"quoted-printable" 92 2)'
        '("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 79 0) "alternative")',
    )


def test_mixed_with_base64_attachment_and_rfc2231_names() -> None:
    """name*0/name*1 are merged into name; filename* (extended) keeps its encoded value
    and comes after the plain parameters, as Dovecot does."""
    parts = cached_parts(sample("05_mixed_attachment_rfc2231.eml"))
    assert parts.bodystructure == (
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1 NIL NIL NIL NIL)'
        '("application" "pdf" ("name" "quarterly report.pdf") NIL NIL "base64" 2052 NIL '
        '("attachment" ("size" "1500" "creation-date" "Fri, 3 May 2024 07:59:00 -0000" '
        '"filename*" "UTF-8\'\'na%C3%AFve%20r%C3%A9sum%C3%A9.pdf")) NIL NIL) '
        '"mixed" ("boundary" "----=_Part_0_1234.5678") NIL NIL NIL)'
    )
    assert parts.body == (
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1)'
        '("application" "pdf" ("name" "quarterly report.pdf") NIL NIL "base64" 2052) "mixed")'
    )


def test_rfc2231_continuations() -> None:
    raw = crlf(
        "Content-Type: application/x-test; plain=1;\n"
        ' title*2="c"; title*0*=us-ascii\'en\'a%20; title*1="b 100%";\n'
        " gap*0=x; gap*2=z; Name==?UTF-8?B?w6k=?=\n\nx"
    )
    assert cached_parts(raw).bodystructure == (
        '("application" "x-test" ("plain" "1" "Name" "=?UTF-8?B?w6k=?=" '
        '"gap*0" "x" "gap*2" "z" "title*" "us-ascii\'en\'a%20b 100%25c") '
        'NIL NIL "7bit" 1 NIL NIL NIL NIL)'
    )


def test_nested_multipart() -> None:
    expect(
        sample("06_nested.eml"),
        '("Sat, 4 May 2024 12:00:00 +0000" "nested structure" ((NIL NIL "eve" "lab.net")) '
        '((NIL NIL "eve" "lab.net")) ((NIL NIL "eve" "lab.net")) '
        '((NIL NIL "frank" "lab.net")) NIL NIL NIL NIL)',
        '((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 13 0 NIL NIL NIL NIL)'
        '(("text" "html" ("charset" "utf-8") NIL NIL "7bit" 40 0 NIL NIL NIL NIL)'
        '("image" "png" NIL "<logo@lab.net>" NIL "base64" 96 NIL '
        '("inline" ("filename" "logo.png")) NIL NIL) '
        '"related" ("boundary" "rel" "type" "text/html") NIL NIL NIL) '
        '"alternative" ("boundary" "alt") NIL NIL NIL)'
        '("text" "csv" ("name" "data.csv" "charset" "us-ascii") NIL NIL "7bit" 8 1 NIL '
        '("attachment" ("filename" "data.csv")) NIL NIL) '
        '"mixed" ("boundary" "outer") NIL NIL NIL)',
        '((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 13 0)'
        '(("text" "html" ("charset" "utf-8") NIL NIL "7bit" 40 0)'
        '("image" "png" NIL "<logo@lab.net>" NIL "base64" 96) "related") "alternative")'
        '("text" "csv" ("name" "data.csv" "charset" "us-ascii") NIL NIL "7bit" 8 1) "mixed")',
    )


ANDRE = '("=?ISO-8859-1?Q?Andr=E9?=" NIL "andre" "example.org")'
INNER_ENVELOPE = (
    '("Sat, 4 May 2024 18:00:00 +0200" "=?ISO-8859-1?Q?R=E9union?=" '
    f"({ANDRE}) ({ANDRE}) ({ANDRE}) "
    '((NIL NIL "grace" "lab.net")("Ivan" NIL "ivan" "example.org")) NIL NIL '
    '"<earlier@example.org>" "<orig-1@example.org>")'
)


def test_message_rfc822_attached() -> None:
    grace = '("Grace" NIL "grace" "lab.net")'
    expect(
        sample("07_forwarded_rfc822.eml"),
        '("Sun, 5 May 2024 09:30:00 +0100" "Fwd: =?ISO-8859-1?Q?R=E9union?=" '
        f"({grace}) ({grace}) ({grace}) "
        '((NIL NIL "heidi" "lab.net")) NIL NIL NIL "<fwd-1@lab.net>")',
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
        f'("message" "rfc822" NIL NIL NIL "7bit" 529 {INNER_ENVELOPE} '
        '(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 17 0 '
        'NIL NIL NIL NIL)("text" "html" ("charset" "ISO-8859-1") NIL NIL "7bit" 22 0 '
        'NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL) 19 '
        'NIL ("inline" NIL) NIL NIL) "mixed" ("boundary" "fwd") NIL NIL NIL)',
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0)'
        f'("message" "rfc822" NIL NIL NIL "7bit" 529 {INNER_ENVELOPE} '
        '(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 17 0)'
        '("text" "html" ("charset" "ISO-8859-1") NIL NIL "7bit" 22 0) "alternative") 19) '
        '"mixed")',
    )


def test_encoded_words_stay_encoded() -> None:
    """UTF-8 and ISO-8859-1 encoded words in the subject and display names are sent as
    they are (RFC 3501: the envelope is not decoded); folding and runs of blanks in the
    subject collapse to single spaces."""
    joerg = '("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=" NIL "joerg" "example.de")'
    parts = cached_parts(sample("08_encoded_words.eml"))
    assert parts.envelope == (
        '("Mon, 6 May 2024 14:00:00 +0200" '
        '"=?UTF-8?B?w5xiZXJ3ZWlzdW5n?= und =?ISO-8859-1?Q?Gr=FC=DFe?= aus Berlin" '
        f"({joerg}) ({joerg}) ({joerg}) "
        '(("=?ISO-8859-1?Q?Fran=E7ois?= Dupont" NIL "fd" "example.fr")'
        '("=?UTF-8?Q?Zo=C3=AB?=" NIL "zoe" "example.com")) NIL NIL NIL "<ew-1@example.de>")'
    )


def test_group_addresses() -> None:
    parts = cached_parts(sample("09_groups_and_addresses.eml"))
    assert parts.envelope == (
        '("Tue, 7 May 2024 07:07:07 -0700" "addresses" '
        '(("Smith, John" NIL "john.smith" "lab.net")) '
        '(("Secretary" NIL "secretary" "lab.net")) '
        '((NIL NIL "a" "lab.net")(NIL NIL "b" "lab.net")) '
        '((NIL NIL "Project Team" NIL)(NIL NIL "alice" "lab.net")("Bob B." NIL "bob" "lab.net")'
        '(NIL NIL NIL NIL)(NIL NIL "carol" "lab.net")) '
        '((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        '((NIL NIL "Empty Group" NIL)(NIL NIL NIL NIL)) "<prev@lab.net>" "<grp-1@lab.net>")'
    )


def test_a_group_of_only_comments_has_no_member() -> None:
    """`group2: (foo) ;` is an empty group: its start and end markers and nothing
    between them (no MISSING_MAILBOX address), as Dovecot answers (imaptest's
    fetch-envelope)."""
    raw = crlf("From: a@lab.net\nCc: group:;, group2: (foo) ;\nBcc: g: (x), b@lab.net;\n\n")
    envelope = cached_parts(raw).envelope
    assert (
        '((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) '
        '((NIL NIL "g" NIL)(NIL NIL "b" "lab.net")(NIL NIL NIL NIL))'
    ) in envelope
    assert "MISSING" not in envelope


def test_addresses_without_host_route_and_broken_lists() -> None:
    raw = crlf(
        "From: foo\n"
        "Sender: <@r1.example,@r2.example:user@host.example>\n"
        'Reply-To: "quoted local"@example.com, <>, a@, @b\n'
        "To: display name only, x@y.example (Comment name)\n"
        "Cc: a@b.example c@d.example, e@f.example\n"
        "Bcc: Jo <jo@x.example\n\n"
    )
    assert cached_parts(raw).envelope == (
        '(NIL NIL ((NIL NIL "foo" "MISSING_DOMAIN")) '
        '((NIL "@r1.example,@r2.example" "user" "host.example")) '
        '((NIL NIL "quoted local" "example.com")(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")'
        '(NIL NIL "a" "MISSING_DOMAIN")(NIL NIL "MISSING_MAILBOX" "b")) '
        '(("display name only" NIL "MISSING_MAILBOX" "MISSING_DOMAIN")'
        '("Comment name" NIL "x" "y.example")) '
        '((NIL NIL "a" "b.example")) '
        '(("Jo" NIL "jo" "SYNTAX_ERROR")) NIL NIL)'
    )


def test_missing_headers_are_nil() -> None:
    expect(
        sample("10_missing_headers.eml"),
        "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
        '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)',
        '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1)',
    )


def test_sender_and_reply_to_default_to_from() -> None:
    raw = crlf("From: a@lab.net\nSender:\nReply-To:   \nSubject:\n\n")
    assert cached_parts(raw).envelope == (
        '(NIL "" ((NIL NIL "a" "lab.net")) ((NIL NIL "a" "lab.net")) '
        '((NIL NIL "a" "lab.net")) NIL NIL NIL NIL NIL)'
    )


def test_normalize_newlines_gives_every_bare_lf_a_cr() -> None:
    assert normalize_newlines(b"a\r\nb\r\n") == b"a\r\nb\r\n"
    assert normalize_newlines(b"a\nb\r\nc\n\n") == b"a\r\nb\r\nc\r\n\r\n"
    # a lone CR stays as it is, also right before a line end
    assert normalize_newlines(b"a\rb\r\r\nc\r") == b"a\rb\r\r\nc\r"
    assert normalize_newlines(b"a\r\rb\n") == b"a\r\rb\r\n"


def test_bare_lf_input() -> None:
    """Bare LF line ends parse like CRLF; octets are those of the bytes given (one per
    line end less than the CRLF form, which is what Dovecot stores and reports)."""
    raw = sample("11_bare_lf.eml")
    assert b"\r" not in raw
    expect(
        raw,
        '("Wed, 8 May 2024 10:00:00 +0000" "bare LF line ends" ((NIL NIL "lf" "lab.net")) '
        '((NIL NIL "lf" "lab.net")) ((NIL NIL "lf" "lab.net")) ((NIL NIL "unix" "lab.net")) '
        "NIL NIL NIL NIL)",
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 2 NIL NIL NIL NIL)'
        '("application" "octet-stream" NIL NIL NIL "base64" 8 NIL NIL NIL NIL) '
        '"mixed" ("boundary" "lf") NIL NIL NIL)',
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 2)'
        '("application" "octet-stream" NIL NIL NIL "base64" 8) "mixed")',
    )
    as_crlf = cached_parts(normalize_newlines(raw)).bodystructure
    assert '"7bit" 10 2' in as_crlf
    assert '"base64" 8 NIL' in as_crlf  # the line end before the delimiter is its own
    assert fetch_section(raw, "1") == b"one\ntwo\n"
    assert fetch_section(raw, "2.MIME") == (
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
    )
    assert fetch_section(raw, "HEADER.FIELDS (SUBJECT)") == b"Subject: bare LF line ends\n\n"


def test_part_without_content_type_is_text_plain_us_ascii() -> None:
    assert cached_parts(sample("12_default_content_type.eml")).bodystructure == (
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 0 NIL NIL NIL NIL)'
        '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 0 NIL '
        '("attachment" ("filename" "notes.txt")) NIL NIL)'
        '("text" "plain" ("charset" "us-ascii") NIL NIL "quoted-printable" 12 1 '
        'NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)'
    )


def test_invalid_content_type_is_the_default() -> None:
    """RFC 2045 section 5.2 (Dovecot differs: see the differential test)."""
    raw = crlf("Content-Type: text\n\nx")
    assert cached_parts(raw).body == '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)'


def test_extension_fields() -> None:
    """md5, disposition with parameters, language list, location, on parts and on the
    multipart itself; id and description with quotes and a backslash."""
    assert cached_parts(sample("13_extension_fields.eml")).bodystructure == (
        '(("text" "plain" ("charset" "utf-8") "<part1@lab.net>" '
        '"A description with \\"quotes\\" and \\\\backslash" "7bit" 5 0 '
        '"Q2hlY2sgSW50ZWdyaXR5IQ==" NIL ("en" "de-CH") "http://lab.net/a/  b.txt")'
        '("image" "jpeg" ("name" "photo.jpg") NIL NIL "base64" 28 NIL '
        '("attachment" ("filename" "photo.jpg" "modification-date" '
        '"Wed, 12 Feb 1997 16:29:51 -0500")) NIL NIL) '
        '"mixed" ("boundary" "ext" "charset" "x-ignored") ("inline" NIL) ("en-GB") '
        '"http://lab.net/messages/ext")'
    )


def test_digest_parts_default_to_message_rfc822() -> None:
    structure = cached_parts(sample("14_digest.eml")).bodystructure
    assert structure.startswith('(("message" "rfc822" NIL NIL NIL "7bit" 50 (NIL "first" ')
    assert '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 33 0 ' in structure


def test_eight_bit_headers_become_literals() -> None:
    parts = cached_parts(sample("17_8bit_headers.eml"))
    wire = to_wire(parts.envelope)
    subject = "Grüße aus Köln — raw UTF-8".encode()
    assert b"{%d}\r\n%s" % (len(subject), subject) in wire
    assert parse_imap(wire)[1] == subject  # type: ignore[index]
    latin1 = to_wire(cached_parts(sample("26_latin1_raw_headers.eml")).envelope)
    assert b"{10}\r\ncaf\xe9 cr\xe8me" in latin1


def test_header_values_are_unfolded_not_decoded() -> None:
    raw = sample("18_duplicate_and_odd_headers.eml")
    subjects = ["first subject", "second subject", "x"]  # "Subject : x" too (obsolete)
    assert header_values(raw, "subject") == subjects
    assert header_values(raw, "SUBJECT ") == subjects
    assert header_values(raw, "Message-ID") == [" <folded@lab.net>"]
    assert header_values(raw, "X-Nothing") == []
    assert header_values(sample("08_encoded_words.eml"), "Subject") == [
        "=?UTF-8?B?w5xiZXJ3ZWlzdW5n?= und =?ISO-8859-1?Q?Gr=FC=DFe?=  \t aus\tBerlin"
    ]
    assert header_values(sample("26_latin1_raw_headers.eml"), "subject") == ["café crème"]


def test_duplicate_headers() -> None:
    """ENVELOPE: the last Subject, both From lists (Dovecot's choice); MIME: the first
    Content-Type; a line without a colon is kept in the header but means nothing."""
    parts = cached_parts(sample("18_duplicate_and_odd_headers.eml"))
    both = '((NIL NIL "first" "lab.net")(NIL NIL "second" "lab.net"))'
    assert parts.envelope == (
        f'("Fri, 10 May 2024 10:10:10 +0000  " "x" {both} {both} {both} '
        'NIL NIL NIL "   " " <folded@lab.net>")'
    )
    assert parts.body == (
        '("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "7bit" 6 1)'
    )


# -- fetch_section ---------------------------------------------------------------------

NESTED = sample("07_forwarded_rfc822.eml")
INNER = NESTED[NESTED.index(b"From: =?ISO") : NESTED.index(b"\r\n--fwd--")]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("", NESTED),
        ("HEADER", NESTED[: NESTED.index(b"\r\n\r\n") + 4]),
        ("TEXT", NESTED[NESTED.index(b"\r\n\r\n") + 4 :]),
        ("text", NESTED[NESTED.index(b"\r\n\r\n") + 4 :]),
        (
            "HEADER.FIELDS (DATE FROM)",
            crlf("From: Grace <grace@lab.net>\nDate: Sun, 5 May 2024 09:30:00 +0100\n\n"),
        ),
        ('header.fields ("subject" X-NONE)', crlf("Subject: Fwd: =?ISO-8859-1?Q?R=E9union?=\n\n")),
        ("HEADER.FIELDS (X-NONE)", b"\r\n"),
        (
            "HEADER.FIELDS.NOT (From To Subject Date Message-ID)",
            crlf('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="fwd"\n\n'),
        ),
        ("1", b"See below."),
        ("1.MIME", b"Content-Type: text/plain\r\n\r\n"),
        ("2", INNER),
        ("2.MIME", crlf("Content-Type: message/rfc822\nContent-Disposition: inline\n\n")),
        ("2.HEADER", INNER[: INNER.index(b"\r\n\r\n") + 4]),
        ("2.TEXT", INNER[INNER.index(b"\r\n\r\n") + 4 :]),
        ("2.HEADER.FIELDS (SUBJECT)", crlf("Subject: =?ISO-8859-1?Q?R=E9union?=\n\n")),
        (
            "2.header.fields.not (mime-version content-type from to date message-id in-reply-to)",
            crlf("Subject: =?ISO-8859-1?Q?R=E9union?=\n\n"),
        ),
        ("2.1", b"R=E9union demain."),
        ("2.2", b"<p>Reunion demain.</p>"),
        ("2.2.MIME", b"Content-Type: text/html; charset=ISO-8859-1\r\n\r\n"),
        ("1.HEADER", b""),  # HEADER/TEXT only for message/rfc822 parts
        ("1.TEXT", b""),
        ("3", b""),  # no such part
        ("2.3", b""),
        ("2.1.1", b""),  # a text part has no part 1 (RFC 3501; Dovecot differs)
        ("9.9.9.MIME", b""),
    ],
)
def test_fetch_section(section: str, expected: bytes) -> None:
    assert fetch_section(NESTED, section) == expected


def test_fetch_section_of_a_single_part_message() -> None:
    """Part 1 of a non-multipart message is its body; 1.MIME its header (as Dovecot)."""
    assert fetch_section(PLAIN, "1") == b"Hi Bob,\r\nsee you.\r\n"
    assert fetch_section(PLAIN, "1.MIME") == fetch_section(PLAIN, "HEADER")
    assert fetch_section(PLAIN, "2") == b""
    assert fetch_section(PLAIN, "1.1") == b""


def test_fetch_section_of_nested_multiparts() -> None:
    raw = sample("06_nested.eml")
    assert fetch_section(raw, "1.1") == b"plain version"
    assert fetch_section(raw, "1.2.1") == b'<p>html <img src="cid:logo@lab.net"></p>'
    assert fetch_section(raw, "1.2.2.MIME").startswith(b"Content-Type: image/png\r\n")
    assert fetch_section(raw, "1.2").startswith(b"--rel\r\n")
    assert fetch_section(raw, "1.2").endswith(b"--rel--\r\n")
    assert fetch_section(raw, "2") == b"a,b\r\n1,2"


def test_fetch_section_inside_deeper_messages() -> None:
    raw = sample("24_deep_nesting.eml")
    assert fetch_section(raw, "1.1.HEADER") == crlf(
        "Subject: level 3 message\nContent-Type: multipart/mixed; boundary=L3\n\n"
    )
    assert fetch_section(raw, "1.1.1.1") == b"deepest plain"
    assert fetch_section(raw, "1.1.1.2.TEXT") == b"deepest body"
    assert fetch_section(raw, "1.1.1.2.1") == b"deepest body"
    assert fetch_section(raw, "2") == b"after"


@pytest.mark.parametrize(
    "section",
    [
        "0",
        "1.0",
        "01",
        "1.",
        ".1",
        "1..2",
        "MIME",
        "HEADERS",
        "1.BODY",
        "HEADER.FIELDS",
        "HEADER.FIELDS ()",
        "HEADER.FIELDS (A",
        'HEADER.FIELDS ("A)',
        "HEADER.FIELDS (A:B)",
        "HEADER.FIELDS.NOT",
        "TEXT.MIME",
        "1.MIME.TEXT",
        "x",
        "²",
    ],
)
def test_malformed_section_raises(section: str) -> None:
    with pytest.raises(ValueError, match="section"):
        fetch_section(PLAIN, section)


def test_header_fields_take_whole_folded_fields() -> None:
    raw = crlf("X-A: 1\nx-a: 2\n  continued\nX-B: 3\n\nbody")
    assert fetch_section(raw, "HEADER.FIELDS (X-A)") == crlf("X-A: 1\nx-a: 2\n  continued\n\n")
    assert fetch_section(raw, "HEADER.FIELDS.NOT (x-a)") == crlf("X-B: 3\n\n")


# -- SEARCH helpers -----------------------------------------------------------------------


def test_decoded_header() -> None:
    assert decoded_header("=?UTF-8?B?w5xiZXJ3ZWlzdW5n?= und") == "Überweisung und"
    assert decoded_header("=?ISO-8859-1?Q?Gr=FC=DFe_aus?= Berlin") == "Grüße aus Berlin"
    assert decoded_header("=?utf-8?q?a?= \t =?utf-8?q?b?=") == "ab"
    assert decoded_header("=?UTF-8?B?w6k=?= x =?UTF-8?B?w6k=?=") == "é x é"
    # a multi-byte character split over two encoded words
    assert decoded_header("=?UTF-8?B?w6?= =?UTF-8?B?k=?=") != ""
    assert decoded_header("=?UTF-8*en?Q?hi?=") == "hi"
    assert decoded_header("=?x-unknown?Q?abc?=") == "abc"
    assert decoded_header("=?base64?Q?abc?=") == "abc"
    assert decoded_header("no encoded words") == "no encoded words"
    assert decoded_header("=?UTF-8?B?!!!?=") == ""


def test_search_text_body_and_text() -> None:
    alternative = sample("04_alternative.eml")
    assert search_text(alternative, "café", body_only=True)  # quoted-printable UTF-8
    assert search_text(alternative, "CAFÉ AT NOON", body_only=True)
    assert search_text(alternative, "corner of the square", body_only=True)  # soft break
    assert not search_text(alternative, "Lunch", body_only=True)  # only in the subject
    assert search_text(alternative, "lunch café", body_only=False)  # decoded subject
    assert search_text(alternative, "alice@lab.net", body_only=False)
    assert not search_text(alternative, "nowhere", body_only=False)
    assert search_text(alternative, "", body_only=True)


def test_search_text_charsets_and_encodings() -> None:
    forwarded = sample("07_forwarded_rfc822.eml")
    assert search_text(forwarded, "réunion demain", body_only=True)  # ISO-8859-1 qp
    assert search_text(forwarded, "andré", body_only=True)  # the attached message's header
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        "R3LDvMOfZSBhdXMgS8O2bG4=\n--b\n"
        "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        "c2VjcmV0IHdvcmQ=\n--b--\n"
    )
    assert search_text(raw, "grüße aus köln", body_only=True)
    assert not search_text(raw, "secret word", body_only=True)  # not a text part
    assert not search_text(raw, "c2VjcmV0", body_only=True)
    latin1 = sample("26_latin1_raw_headers.eml")
    assert search_text(latin1, "café crème", body_only=True)
    assert search_text(latin1, "crème", body_only=False)


def test_sent_date() -> None:
    assert sent_date(sample("03_rfc3501_append_example.eml")) == datetime.date(1994, 2, 7)
    # the date as written, whatever the zone
    assert sent_date(crlf("Date: Mon, 31 Dec 2012 23:59:59 -1200\n\n")) == datetime.date(
        2012, 12, 31
    )
    assert sent_date(crlf("Date: 1 Jan 99 10:00 GMT\n\n")) == datetime.date(1999, 1, 1)
    assert sent_date(sample("10_missing_headers.eml")) is None
    assert sent_date(crlf("Date: yesterday\n\n")) is None
    assert sent_date(crlf("Date: 31 Feb 2024 10:00 +0000\n\n")) is None


# -- hostile input and speed -----------------------------------------------------------


def test_deep_nesting_is_capped() -> None:
    depth = 5 * mime.MAX_DEPTH
    raw = (
        b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (k, k)
            for k in range(depth)
        )
        + b"\r\ninnermost\r\n"
    )
    started = time.perf_counter()
    parts = cached_parts(raw)
    assert (
        time.perf_counter() - started < 10
    )  # a guard against runaway (quadratic) time, 10x the usual: bench/ measures speed
    nesting = max_nesting(parse_imap(to_wire(parts.bodystructure)))
    assert mime.MAX_DEPTH <= nesting <= mime.MAX_DEPTH + 2
    assert '"application" "octet-stream"' in parts.bodystructure
    messages = b"Content-Type: message/rfc822\r\n\r\n" * depth + b"Subject: deep\r\n\r\nx"
    nesting = max_nesting(parse_imap(to_wire(cached_parts(messages).bodystructure)))
    assert nesting <= 2 * mime.MAX_DEPTH + 4


def max_nesting(value: object) -> int:
    if not isinstance(value, list):
        return 0
    return 1 + max((max_nesting(v) for v in value), default=0)


def test_many_headers_many_parts_many_dashes() -> None:
    started = time.perf_counter()
    headers = b"".join(b"X-H%d: v\r\n" % k for k in range(200_000)) + b"\r\nbody"
    assert cached_parts(headers).envelope == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert fetch_section(headers, "HEADER.FIELDS (X-H7)") == b"X-H7: v\r\n\r\n"
    parts = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 50_000
    structure = cached_parts(parts).bodystructure
    assert structure.count('"text" "plain"') == mime.MAX_PARTS - 1
    dashes = (
        b"".join(
            b"Content-Type: multipart/mixed; boundary=%d\r\n\r\n--%d\r\n" % (k, k)
            for k in range(90)
        )
        + b"--\r\n--x\r\n--1x\r\n" * 100_000
    )
    cached_parts(dashes)
    missing = b"Content-Type: multipart/mixed; boundary=never\r\n\r\n" + b"a line\r\n" * 100_000
    assert cached_parts(missing).body == (
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")'
    )
    assert time.perf_counter() - started < 10


# -- properties over arbitrary bytes ------------------------------------------------------

LINES = [
    b"",
    b"--b",
    b"--b--",
    b"--c",
    b"--c--  ",
    b"--",
    b"Content-Type: multipart/mixed; boundary=b",
    b'Content-Type: multipart/alternative; boundary="c"',
    b"Content-Type: multipart/digest; boundary=c",
    b"Content-Type: message/rfc822",
    b"Content-Type: text/plain; charset=utf-8; name*0=a; name*1*=%20b",
    b"Content-Type: text",
    b"Content-Transfer-Encoding: base64",
    b"Content-Disposition: attachment; filename*=UTF-8''%C3%A9",
    b"Content-Language: en, fr",
    b"From: A <a@b>, (c) d@e, g: h@i;",
    b'To: "x\\"y" <@r:u@h>, <>, broken <z',
    b"Subject: =?UTF-8?B?w6k=?= \t x",
    b" folded continuation",
    b"\tfolded",
    b"no colon here",
    b'text \xc3\xa9 \xff \x00 "q" \\',
    b"aGVsbG8gd29ybGQ=",
]
MIME_LIKE = st.builds(
    lambda lines, eol: eol.join(lines),
    st.lists(st.sampled_from(LINES), max_size=40),
    st.sampled_from([b"\r\n", b"\n"]),
)
MESSAGES_ST = st.one_of(st.binary(max_size=3000), MIME_LIKE)
SECTION_TEXT = [
    "",
    "HEADER",
    "TEXT",
    "MIME",
    "HEADER.FIELDS (SUBJECT FROM)",
    "HEADER.FIELDS.NOT (To)",
]
SECTIONS = st.builds(
    lambda numbers, text: ".".join([*map(str, numbers), *([text] if text else [])]),
    st.lists(st.integers(1, 4), max_size=4),
    st.sampled_from(SECTION_TEXT),
).filter(lambda s: not s.startswith("MIME"))


def check_sizes(raw: bytes, structure: list) -> None:
    """Every part's octet count is the length of BODY[part]; text lines are its LFs."""
    for path, _ in message_paths(structure):
        node = structure_at(structure, path)
        if isinstance(node[0], list):
            continue
        data = fetch_section(raw, path)
        assert node[6] == len(data), (path, node)
        if node[0].lower() == b"text":
            assert node[7] == data.count(b"\n"), (path, node)


def structure_at(structure: list, path: str) -> list:
    """The body structure of part `path` (RFC 3501 numbering, as `fetch_section`)."""
    node = structure
    at_message = True  # at the top of a message: part 1 of a single part is itself
    for k in map(int, path.split(".")):
        if not at_message and _is_message(node):
            node, at_message = node[8], True
        if at_message and not isinstance(node[0], list):
            assert k == 1, path
        else:
            node = _children(node)[k - 1]
        at_message = False
    return node


@given(MESSAGES_ST)
def test_cached_parts_never_raises_and_is_balanced(raw: bytes) -> None:
    parts = cached_parts(raw)
    envelope = parse_imap(to_wire(parts.envelope))
    assert isinstance(envelope, list) and len(envelope) == 10
    structure = parse_imap(to_wire(parts.bodystructure))
    body = parse_imap(to_wire(parts.body))
    assert isinstance(structure, list) and isinstance(body, list)
    check_sizes(raw, structure)


@given(MESSAGES_ST, SECTIONS)
def test_fetch_section_never_raises(raw: bytes, section: str) -> None:
    data = fetch_section(raw, section)
    assert isinstance(data, bytes)
    if not section.startswith("HEADER.FIELDS") and ".HEADER.FIELDS" not in section:
        assert data in raw
    assert fetch_section(raw, "HEADER") + fetch_section(raw, "TEXT") == raw
    assert fetch_section(raw, "") == raw


@given(MESSAGES_ST, st.text(max_size=5), st.booleans())
def test_search_helpers_never_raise(raw: bytes, needle: str, body_only: bool) -> None:
    assert isinstance(search_text(raw, needle, body_only=body_only), bool)
    sent_date(raw)
    for value in header_values(raw, "subject"):
        decoded_header(value)


@given(st.text(max_size=60))
def test_decoded_header_never_raises(value: str) -> None:
    assert isinstance(decoded_header(value), str)


def test_envelope_fields_read_back_the_cached_envelope() -> None:
    from casarray.mailstore.mime import envelope_fields

    raw = (
        b"From: =?UTF-8?B?5L2g5aW9?= <bob@lab.net>\r\n"
        b'To: "Alice \\"A\\" W" <alice@lab.net>, carol@lab.net\r\n'
        b"Cc: Team: x@y.z;\r\n"
        b"Subject: hello \xc3\xa9 there\r\n\r\nbody\r\n"
    )
    fields = envelope_fields(cached_parts(raw).envelope)
    assert fields["from"] == "你好 <bob@lab.net>"
    assert fields["to"] == 'Alice "A" W <alice@lab.net>, carol@lab.net'
    assert fields["cc"] == "Team, x@y.z"
    assert fields["subject"] == "hello é there"
    assert fields["bcc"] == ""


@pytest.mark.parametrize("name", sorted(p.name for p in MESSAGES.glob("*.eml")))
def test_envelope_items_read_without_literals_as_with_them(name: str) -> None:
    """The one-pass reader of literal-free IMAP values (what SORT uses on every
    envelope) gives what the general reader gives, also with a literal in the text."""
    from casarray.mailstore.mime import envelope_items
    from casarray.mailstore.mime.search import _imap_values

    parts = cached_parts(sample(name))
    items = envelope_items(parts.envelope)
    assert len(items) == 10
    for text in (parts.envelope, parts.bodystructure):
        with_literal = "(" + text + ' {3}\r\nx{y "q")'
        general = _imap_values(with_literal)  # a literal: the token-by-token reader
        assert general[0][0] == _imap_values(text)[0]
        assert general[0][1:] == [b"x{y", b"q"]


# -- the parts of a message, as a reader sees them --------------------------------------

READER = crlf(
    "From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\n"
    "To: Alice <alice@lab.net>, team: carol@lab.net;\n"
    "Subject: =?utf-8?b?UXVhcnRhbHNiZXJpY2h0?=\n"
    " folded\n"
    "Date: Tue, 2 Jan 2024 09:30:00 +0000\n"
    "Message-ID: <r1@lab.net>\n"
    "Content-Type: multipart/mixed; boundary=outer\n\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=alt\n\n"
    "--alt\n"
    "Content-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "Caf=E9 au lait, a long line that goes on and =\n"
    "on.\n"
    "--alt\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n\n"
    "PHA+Q2Fmw6k8L3A+\n"
    "--alt--\n"
    "--outer\n"
    "Content-Type: image/png\n"
    "Content-ID: <logo@lab.net>\n"
    "Content-Disposition: inline\n"
    "Content-Transfer-Encoding: base64\n\n"
    "iVBORw0K\n"
    "--outer\n"
    "Content-Type: application/pdf;\n"
    " name*0*=utf-8''Quartals;\n"
    " name*1*=%C3%BCbersicht.pdf\n"
    "Content-Transfer-Encoding: BASE64\n\n"
    "JVBERi0x\n"
    "LjQ=\n"
    "--outer\n"
    "Content-Type: text/plain; charset=x-unknown-charset\n"
    "Content-Disposition: ATTACHMENT; filename==?utf-8?q?notes_=C3=A9.txt?=\n\n"
    "LATIN-1\n"
    "--outer\n"
    "Content-Type: message/rfc822\n\n"
    "Subject: inner\n"
    "Content-Type: multipart/alternative; boundary=in\n\n"
    "--in\n\ninner text\n--in\nContent-Type: text/html\n\n<b>inner</b>\n--in--\n"
    "--outer--\n"
).replace(b"LATIN-1", b"caf\xe9 \xff")  # not UTF-8


def test_message_parts_of_a_mixed_message() -> None:
    from casarray.mailstore.mime import MessagePart, message_parts

    parts = message_parts(READER)
    assert all(isinstance(p, MessagePart) for p in parts)
    assert [(p.number, p.content_type) for p in parts] == [
        ("", "multipart/mixed"),
        ("1", "multipart/alternative"),
        ("1.1", "text/plain"),
        ("1.2", "text/html"),
        ("2", "image/png"),
        ("3", "application/pdf"),
        ("4", "text/plain"),
        ("5", "message/rfc822"),  # one part: its own parts are not listed
    ]
    by_number = {p.number: p for p in parts}
    assert [p.number for p in parts if p.is_multipart] == ["", "1"]
    assert by_number[""].params == {"boundary": "outer"} and by_number[""].size == 0
    plain, html = by_number["1.1"], by_number["1.2"]
    assert plain.charset == "iso-8859-1" and plain.encoding == "quoted-printable"
    assert html.charset == "utf-8" and html.encoding == "base64"
    assert not plain.is_attachment and not html.is_attachment and plain.filename is None
    image = by_number["2"]
    assert image.content_id == "<logo@lab.net>" and image.disposition == "inline"
    assert image.params == {} and image.charset is None and not image.is_attachment
    pdf = by_number["3"]
    assert pdf.filename == "Quartalsübersicht.pdf" and pdf.is_attachment
    assert pdf.disposition is None and pdf.encoding == "base64"
    notes = by_number["4"]
    assert notes.disposition == "attachment" and notes.filename == "notes é.txt"
    # sizes are those of the bytes `fetch_section` hands out, as in the BODYSTRUCTURE
    for p in parts:
        if not p.is_multipart:
            assert p.size == len(fetch_section(READER, p.number)), p.number
    # a single-part message is part 1; every text part has a charset (RFC 2045)
    (single,) = message_parts(b"Subject: hi\r\n\r\nbody\r\n")
    assert (single.number, single.content_type, single.charset) == ("1", "text/plain", "us-ascii")
    assert single.size == len(b"body\r\n")


def test_decoded_part_and_part_text() -> None:
    from casarray.mailstore.mime import decoded_part, part_text

    assert part_text(READER, "1.1") == "Café au lait, a long line that goes on and on."
    assert part_text(READER, "1.2") == "<p>Café</p>"
    assert decoded_part(READER, "1.2") == "<p>Café</p>".encode()
    assert decoded_part(READER, "2") == b"\x89PNG\r\n"
    assert decoded_part(READER, "3") == b"%PDF-1.4"  # BASE64 in capitals, over 2 lines
    # an unknown charset is read as UTF-8; what isn't UTF-8 is U+FFFD
    assert part_text(READER, "4") == "caf\ufffd \ufffd"
    assert decoded_part(READER, "5").startswith(b"Subject: inner\r\n")
    assert part_text(PLAIN, "1") == fetch_section(PLAIN, "1").decode()


def test_message_part_finds_parts_inside_an_attached_message() -> None:
    from casarray.mailstore.mime import decoded_part, message_part, part_text

    assert message_part(READER, "5").content_type == "message/rfc822"
    inner_plain = message_part(READER, "5.1")
    assert inner_plain.content_type == "text/plain" and inner_plain.charset == "us-ascii"
    assert part_text(READER, "5.1") == "inner text"
    assert part_text(READER, "5.2") == "<b>inner</b>"
    assert message_part(READER, "1").is_multipart
    assert message_part(READER, "").content_type == "multipart/mixed"
    for missing in ("6", "1.3", "2.1", "5.3", "0", "01", "x", "1.", "1..2"):
        with pytest.raises(KeyError):
            message_part(READER, missing)
        with pytest.raises(KeyError):
            decoded_part(READER, missing)
    with pytest.raises(KeyError):
        message_part(PLAIN, "")  # a single-part message has no multipart


def test_a_multipart_without_parts_has_one_empty_part() -> None:
    from casarray.mailstore.mime import decoded_part, message_part, message_parts, part_text

    raw = crlf("Subject: x\nContent-Type: multipart/mixed\n\nno boundary, no parts\n")
    parts = message_parts(raw)
    assert [(p.number, p.content_type, p.size) for p in parts] == [
        ("", "multipart/mixed", 0),
        ("1", "text/plain", 0),
    ]
    assert message_part(raw, "1") == parts[1]
    assert decoded_part(raw, "1") == b"" and part_text(raw, "1") == ""
    with pytest.raises(KeyError):
        message_part(raw, "2")


def test_rfc2231_and_rfc2047_parameters() -> None:
    from casarray.mailstore.mime import message_parts

    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "--b\n"
        "Content-Type: application/octet-stream; name=plain.bin\n"
        "Content-Disposition: attachment;\n"
        " filename*0*=iso-8859-1'fr'r%E9sum%E9%20;\n"
        ' filename*1="final.txt"; filename="fallback.txt"\n\n'
        "x\n"
        "--b\n"
        'Content-Type: application/octet-stream; name="=?utf-8?b?5oql5ZGKLnBkZg==?="\n\n'
        "y\n"
        "--b\n"
        "Content-Type: application/octet-stream; name*=no-prefix%20here.txt\n\n"
        "z\n"
        "--b\n"
        "Content-Type: application/octet-stream; name*=x-bogus''%FF%FE.bin\n\n"
        "w\n"
        "--b\n"
        'Content-Type: text/plain; CHARSET="UTF-8"; Format=Flowed\n\n'
        "v\n"
        "--b--\n"
    )
    parts = {p.number: p for p in message_parts(raw)}
    # continuations merged, the extended value decoded in its charset; it wins over the
    # plain filename, and the disposition's filename over the type's name
    assert parts["1"].filename == "résumé final.txt"
    assert parts["1"].params == {"name": "plain.bin"}
    assert parts["2"].filename == "报告.pdf"  # encoded words, as many mailers send them
    assert parts["3"].filename == "no-prefix here.txt"
    assert parts["4"].filename == "\ufffd\ufffd.bin"  # unknown charset: UTF-8, broken
    assert parts["5"].params == {"charset": "UTF-8", "format": "Flowed"}
    assert parts["5"].charset == "UTF-8" and parts["5"].filename is None


def test_broken_charsets_never_fail() -> None:
    from casarray.mailstore.mime import charset_decode, part_text

    assert charset_decode("café".encode("cp1252"), "windows-1252") == "café"
    assert charset_decode("café".encode(), "x-no-such-charset") == "café"
    assert charset_decode(b"caf\xe9", None) == "caf\ufffd"
    assert charset_decode(b"caf\xe9", "us-ascii") == "caf\ufffd"
    assert charset_decode(b"abc", "base64") == "abc"  # not a text codec
    # codecs that cannot replace what they cannot decode: read as UTF-8
    for charset in ("idna", "punycode", "undefined"):
        assert charset_decode(b"caf\xc3\xa9 \xff", charset) == "caf\u00e9 \ufffd", charset
    # a charset that yields lone surrogates: never in the text
    assert charset_decode(b"+2AA-", "utf-7") == "\ufffd"
    assert decoded_header("=?undefined?q?caf=C3=A9?=") == "café"
    raw = b"Content-Type: text/plain; charset=idna\r\n\r\nhello \xff"
    assert part_text(raw, "1") == "hello \ufffd"


def test_transfer_decode() -> None:
    from casarray.mailstore.mime import transfer_decode

    assert transfer_decode(b"SGVs\r\nbG8=", "base64") == b"Hello"
    assert transfer_decode(b"SGVs bG8\r\n!!", " Base64 ") == b"Hello"  # garbage skipped
    assert transfer_decode(b"SGVsbG8gd", "base64") == b"Hello "  # a lone sextet dropped
    assert transfer_decode(b"caf=C3=A9=\r\n!", "quoted-printable") == "café!".encode()
    assert transfer_decode(b"a=3Db=\r\n=XYc", "QUOTED-PRINTABLE") == b"a=b=XYc"
    for encoding in ("7bit", "8bit", "binary", "x-uuencode", ""):
        assert transfer_decode(b"=41 SGVs", encoding) == b"=41 SGVs"


def test_decoded_headers() -> None:
    from casarray.mailstore.mime import decoded_headers

    headers = decoded_headers(READER)
    assert headers[0] == ("From", "Jörg <joerg@example.org>")
    assert ("Subject", "Quartalsbericht folded") in headers
    assert [name for name, _ in headers][-1] == "Content-Type"
    raw = b"X-Latin: caf\xe9\r\nx-lower: =?utf-7?q?+2AA-?=\r\nno colon\r\n\r\nbody"
    assert decoded_headers(raw) == [("X-Latin", "café"), ("x-lower", "\ufffd")]
    assert decoded_headers(b"") == []


def test_read_envelope() -> None:
    from casarray.mailstore.mime import Address, read_envelope

    env = read_envelope(cached_parts(READER).envelope)
    assert env.subject == "Quartalsbericht folded"
    assert env.date == "Tue, 2 Jan 2024 09:30:00 +0000"
    assert env.message_id == "<r1@lab.net>" and env.in_reply_to is None
    joerg = Address("Jörg", "joerg", "example.org")
    assert env.addresses["from"] == env.addresses["sender"] == env.addresses["reply-to"]
    assert env.addresses["from"] == (joerg,) and joerg.address == "joerg@example.org"
    # group markers are left out
    assert env.addresses["to"] == (
        Address("Alice", "alice", "lab.net"),
        Address(None, "carol", "lab.net"),
    )
    assert env.addresses["cc"] == env.addresses["bcc"] == ()
    nobody = read_envelope(cached_parts(b"To: undisclosed\r\n\r\n").envelope)
    assert nobody.subject is None and nobody.date is None
    assert nobody.addresses["to"] == (Address(None, "undisclosed", "MISSING_DOMAIN"),)
    assert read_envelope("").addresses["from"] == ()


@pytest.mark.parametrize("name", sorted(p.name for p in MESSAGES.glob("*.eml")))
def test_bodystructure_parts_are_the_message_parts(name: str) -> None:
    from casarray.mailstore.mime import bodystructure_parts, message_parts

    raw = normalize_newlines(sample(name))
    assert bodystructure_parts(cached_parts(raw).bodystructure) == message_parts(raw)


@given(MESSAGES_ST)
def test_reader_helpers_never_raise_and_agree(raw: bytes) -> None:
    from casarray.mailstore.mime import (
        bodystructure_parts,
        decoded_headers,
        decoded_part,
        message_parts,
        part_text,
        read_envelope,
    )

    parts = message_parts(raw)
    assert parts == bodystructure_parts(cached_parts(raw).bodystructure)
    for p in parts:
        if p.is_multipart:
            continue
        assert p.size == len(fetch_section(raw, p.number))
        assert isinstance(decoded_part(raw, p.number), bytes)
        part_text(raw, p.number).encode("utf-8")  # no lone surrogates
    for name, value in decoded_headers(raw):
        (name + value).encode("utf-8")
    read_envelope(cached_parts(raw).envelope)
