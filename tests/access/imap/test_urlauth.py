"""Transcripts of URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524): GENURLAUTH signs a
URL into the user's own mailbox (HMAC-SHA256 under the mailbox key, INTERNAL), URLFETCH
returns its data to whom the access identifier allows (another user's session too) and
NIL otherwise, RESETKEY revokes; bad input is answered BAD or NO and changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import re

from casarray.access.imap.session import ImapSession
from tests.access.imap.fakes import (
    PASSWORD,
    FakeBackend,
    FakeMailboxStore,
    make_session,
    rx,
    sent,
    transcript,
)
from tests.access.imap.test_binary import MIXED

HELLO = b"From: foo@example.com\r\nSubject: hi\r\n\r\nHello world body\r\n"
ALICE = "alice@lab.net"
BOB = "bob@lab.net"


def two_users() -> tuple[ImapSession, ImapSession, FakeMailboxStore]:
    backend = FakeBackend()
    store = backend.add_user(ALICE, PASSWORD)
    store.append("INBOX", HELLO)
    store.append("INBOX", MIXED)
    backend.add_user(BOB, PASSWORD)
    sessions = []
    for user in (ALICE, BOB):
        session = make_session(backend)
        session.greeting()
        assert sent(session.feed(f'l LOGIN {user} "{PASSWORD}"\r\n'.encode())).startswith(b"l OK")
        sessions.append(session)
    return sessions[0], sessions[1], store


def generate(session: ImapSession, rump: str) -> str:
    out = sent(session.feed(b'g GENURLAUTH "%s" INTERNAL\r\n' % rump.encode()))
    m = re.fullmatch(rb'\* GENURLAUTH "([^"]+)"\r\ng OK GENURLAUTH completed\r\n', out)
    assert m, out
    return m.group(1).decode()


def test_genurlauth_signs_with_the_mailbox_key_and_urlfetch_verifies() -> None:
    alice, _, store = two_users()
    rump = f"imap://alice@lab.net/INBOX/;uid=1;urlauth=user+{ALICE}"
    url = generate(alice, rump)
    key = store.urlauth_keys[("INBOX", store.folder("INBOX").uid_validity)]
    assert url == rump + ":internal:" + hmac.new(key, rump.encode(), hashlib.sha256).hexdigest()
    transcript(
        alice,
        [
            (
                b'f1 URLFETCH "%s"\r\n' % url.encode(),
                b'* URLFETCH "%s" {%d}\r\n%s\r\nf1 OK URLFETCH completed\r\n'
                % (url.encode(), len(HELLO), HELLO),
            ),
            (b"r1 RESETKEY INBOX\r\n", b"r1 OK RESETKEY completed\r\n"),
            (
                b'f2 URLFETCH "%s"\r\n' % url.encode(),
                b'* URLFETCH "%s" NIL\r\nf2 OK URLFETCH completed\r\n' % url.encode(),
            ),
        ],
    )


def test_access_identifiers_decide_who_fetches() -> None:
    alice, bob, _ = two_users()
    for_alice = generate(alice, "imap://alice@lab.net/INBOX/;uid=1;urlauth=user+alice@lab.net")
    for_bob = generate(
        alice, "imap://alice@lab.net/INBOX/;uid=1/;section=text;urlauth=user+bob@lab.net"
    )
    for_any = generate(alice, "imap://alice@lab.net/INBOX/;uid=1;urlauth=authuser")
    anonymous = generate(alice, "imap://alice@lab.net/INBOX/;uid=1;urlauth=anonymous")
    submit = generate(alice, "imap://alice@lab.net/INBOX/;uid=1;urlauth=submit+bob@lab.net")
    tampered = for_any[:-1] + ("0" if for_any[-1] != "0" else "1")
    expired = generate(
        alice, "imap://alice@lab.net/INBOX/;uid=1;expire=2001-01-01T00:00:00Z;urlauth=authuser"
    )

    def fetch(session: ImapSession, url: str) -> bytes:
        out = sent(session.feed(b'f URLFETCH "%s"\r\n' % url.encode()))
        assert out.endswith(b"f OK URLFETCH completed\r\n"), out
        return out[
            len(b'* URLFETCH "%s" ' % url.encode()) : -len(b"\r\nf OK URLFETCH completed\r\n")
        ]

    body = b"{%d}\r\n%s" % (len(HELLO), HELLO)
    assert fetch(bob, for_alice) == b"NIL"
    assert fetch(bob, for_bob) == b"{18}\r\nHello world body\r\n"
    assert fetch(alice, for_bob) == b"NIL"
    assert fetch(bob, for_any) == body
    assert fetch(bob, anonymous) == body
    assert fetch(bob, submit) == b"NIL"  # for a submission server only
    assert fetch(bob, tampered) == b"NIL"
    assert fetch(alice, expired) == b"NIL"
    assert fetch(alice, "imap://alice@lab.net/INBOX/;uid=1;urlauth=authuser") == b"NIL"
    assert fetch(alice, "not a url") == b"NIL"
    sent(alice.feed(b"r RESETKEY\r\n"))  # every key of the mailbox
    assert fetch(bob, for_any) == b"NIL"


def test_urlfetch_binary_parameters() -> None:
    alice, _, _ = two_users()
    url = generate(alice, "imap://alice@lab.net/INBOX/;uid=2/;section=1;urlauth=authuser")
    whole = generate(alice, "imap://alice@lab.net/INBOX/;uid=1;urlauth=authuser")
    quoted = b'"%s"' % url.encode()
    transcript(
        alice,
        [
            (
                b"f1 URLFETCH (%s BINARY BODYPARTSTRUCTURE)\r\n" % quoted,
                b'* URLFETCH %s (BODYPARTSTRUCTURE ("text" "plain" ("charset" "us-ascii") '
                b'NIL NIL "base64" 11 0 NIL NIL NIL NIL)) (BINARY {11}\r\nhello world)\r\n'
                b"f1 OK URLFETCH completed\r\n" % quoted,
            ),
            (
                b"f2 URLFETCH (%s BODY) (%s BODYPARTSTRUCTURE)\r\n" % (quoted, whole.encode()),
                rx(
                    rb'\* URLFETCH ".+" \(BODY \{21\}\r\naGVsbG8g\r\n  d29ybGQ= \) ".+" '
                    rb'\(BODYPARTSTRUCTURE \("text" "plain" \("charset" "us-ascii"\) NIL NIL '
                    rb'"7bit" 18 1 NIL NIL NIL NIL\)\)\r\nf2 OK URLFETCH completed\r\n'
                ),
            ),
        ],
    )


def test_bad_urlauth_commands() -> None:
    alice, _, store = two_users()
    transcript(
        alice,
        [
            (
                b'g1 GENURLAUTH "imap://alice@lab.net/INBOX/;uid=1;urlauth=authuser" HMAC\r\n',
                b"g1 NO Unsupported URLAUTH mechanism HMAC\r\n",
            ),
            (
                b'g2 GENURLAUTH "imap://bob@lab.net/INBOX/;uid=1;urlauth=authuser" INTERNAL\r\n',
                rx(rb"g2 NO \[BADURL imap://bob@lab.net/.*\] Only URLs to your own .*\r\n"),
            ),
            (
                b'g3 GENURLAUTH "imap://alice@lab.net/INBOX/;uid=1" INTERNAL\r\n',
                rx(rb"g3 NO \[BADURL .*\] The URL must end with ;URLAUTH=.*\r\n"),
            ),
            (
                b'g4 GENURLAUTH "/INBOX/;uid=1;urlauth=authuser" INTERNAL\r\n',
                rx(rb"g4 NO \[BADURL .*\] GENURLAUTH needs an absolute URL .*\r\n"),
            ),
            (
                b'g5 GENURLAUTH "imap://alice@lab.net/Nope/;uid=1;urlauth=authuser" INTERNAL\r\n',
                b"g5 NO [BADURL imap://alice@lab.net/Nope/;uid=1;urlauth=authuser] Mailbox "
                b"doesn't exist: Nope\r\n",
            ),
            (
                b'g6 GENURLAUTH "imap://alice@lab.net/INBOX/;uid=1;urlauth=someone" INTERNAL\r\n',
                rx(rb"g6 NO \[BADURL .*\] Invalid access identifier .*\r\n"),
            ),
            (b"g7 GENURLAUTH\r\n", rx(rb"g7 BAD GENURLAUTH: Expected a space .*\r\n")),
            (b"g8 GENURLAUTH x\r\n", rx(rb"g8 BAD GENURLAUTH: Expected a space .*\r\n")),
            (b"f1 URLFETCH\r\n", rx(rb"f1 BAD URLFETCH: Expected a space .*\r\n")),
            (b"f2 URLFETCH (x FOO)\r\n", b"f2 BAD URLFETCH: Unknown URLFETCH parameter FOO\r\n"),
            (
                b"f3 URLFETCH (x BODY BINARY)\r\n",
                b"f3 BAD URLFETCH: BODY and BINARY can't both be asked for one URL\r\n",
            ),
            (b"r1 RESETKEY Nope\r\n", b"r1 NO [NONEXISTENT] Mailbox doesn't exist: Nope\r\n"),
            (b"r2 RESETKEY INBOX HMAC\r\n", b"r2 NO Unsupported URLAUTH mechanism HMAC\r\n"),
            (b"r3 RESETKEY INBOX INTERNAL\r\n", b"r3 OK RESETKEY completed\r\n"),
        ],
    )
    assert store.urlauth_keys == {}  # nothing generated by the bad commands


def test_urlauth_needs_a_login() -> None:
    backend = FakeBackend()
    session = make_session(backend)
    session.greeting()
    transcript(
        session,
        [
            (b"f1 URLFETCH x\r\n", rx(rb"f1 BAD .*\r\n")),
            (b"r1 RESETKEY\r\n", rx(rb"r1 BAD .*\r\n")),
        ],
    )
