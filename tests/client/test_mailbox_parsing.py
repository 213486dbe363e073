"""What the client reads out of IMAP responses, with no network: the server named in
the greeting, response codes, RFC 2221 referrals, FETCH results as imaplib hands them
over, and folder names as quoted strings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from casarray.client.mailbox import (
    Referral,
    greeting_server,
    parse_fetch,
    parse_referral,
    quote,
    response_code,
)


@pytest.mark.parametrize(
    ("welcome", "server"),
    [
        (b"* OK [CAPABILITY IMAP4rev1 LOGIN-REFERRALS IDLE] CAS02.lab.net casarray IMAP4 "
         b"service ready", "CAS02.lab.net"),
        (b"* OK CAS01.lab.net casarray IMAP4 service ready", "CAS01.lab.net"),
        (b"* OK [CAPABILITY IMAP4rev1] mail.example.org. ready", "mail.example.org"),
        (b"* PREAUTH host.lab.net ready", "host.lab.net"),
        (b"* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot (Debian) ready.", None),
        (b"* OK ready", None),
        (b"* BYE go away", None),
        (b"", None),
    ],
)  # fmt: skip
def test_the_greeting_names_the_server(welcome: bytes, server: str | None) -> None:
    assert greeting_server(welcome) == server


def test_response_codes() -> None:
    assert response_code(b"[REFERRAL imap://a@b/] Go there") == (
        "REFERRAL", "imap://a@b/", "Go there",
    )  # fmt: skip
    assert response_code("[authenticationfailed] Nope") == ("AUTHENTICATIONFAILED", "", "Nope")
    assert response_code(b"Logged in") == ("", "", "Logged in")


@pytest.mark.parametrize(
    ("text", "referral"),
    [
        (b"[REFERRAL imap://alice@CAS02.lab.net/] This mailbox is served by CAS02.lab.net; "
         b"connect there", Referral("imap://alice@CAS02.lab.net/", "CAS02.lab.net", None, "alice")),
        # RFC 2221's own example, with ;AUTH=* and a port
        (b"[REFERRAL IMAP://user;AUTH=*@SERVER2:10993/] Specified user is invalid on this "
         b"server. Try SERVER2.", Referral("IMAP://user;AUTH=*@SERVER2:10993/", "SERVER2",
                                          10993, "user")),
        (b"[REFERRAL imap://alice%40lab.net@CAS03.lab.net/] go",
         Referral("imap://alice%40lab.net@CAS03.lab.net/", "CAS03.lab.net", None,
                  "alice@lab.net")),
        (b"[AUTHENTICATIONFAILED] Invalid credentials", None),
        (b"[REFERRAL http://CAS02.lab.net/] not IMAP", None),
        (b"[REFERRAL imap:///] no host", None),
        (b"[REFERRAL imap://a@b.net:99999/] bad port", None),
        (b"Login failed", None),
    ],
)  # fmt: skip
def test_referrals(text: bytes, referral: Referral | None) -> None:
    assert parse_referral(text) == referral


HEADER_1 = (
    b"From: Bob Li <bob@lab.net>\r\nSubject: =?utf-8?q?Caf=C3=A9_tomorrow?=\r\n"
    b"Date: Tue, 07 May 2024 09:30:00 +0000\r\n\r\n"
)
HEADER_2 = b"From: carol@lab.net\r\nSubject: No date\r\n\r\n"


def test_fetch_results_as_imaplib_hands_them_over() -> None:
    data = [
        (b"2 (UID 7 FLAGS () RFC822.SIZE 512 BODY[HEADER.FIELDS (FROM SUBJECT DATE)] {%d}"
         % len(HEADER_2), HEADER_2),
        b")",
        # items after the literal, as some servers order them
        (b"1 (BODY[HEADER.FIELDS (FROM SUBJECT DATE)] {%d}" % len(HEADER_1), HEADER_1),
        b" UID 3 FLAGS (\\Seen \\Answered) RFC822.SIZE 1024)",
        b"3 (FLAGS (\\Seen))",  # an unasked flag update: skipped
    ]  # fmt: skip
    first, second = parse_fetch(data)
    assert first.uid == 3
    assert first.sender == "Bob Li <bob@lab.net>"
    assert first.subject == "Café tomorrow"
    assert first.date == datetime(2024, 5, 7, 9, 30, tzinfo=UTC)
    assert (first.size, first.seen) == (1024, True)
    assert second.uid == 7
    assert (second.sender, second.subject, second.date) == ("carol@lab.net", "No date", None)
    assert (second.size, second.seen) == (512, False)


def test_nothing_fetched() -> None:
    assert parse_fetch([None]) == []


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("INBOX", '"INBOX"'),
        ("Sent Items", '"Sent Items"'),
        ('a "b" \\c', '"a \\"b\\" \\\\c"'),
        ("Entwürfe", '"Entw&APw-rfe"'),
    ],
)
def test_folder_names_are_quoted(name: str, quoted: str) -> None:
    assert quote(name) == quoted
