"""Transcripts of the not-authenticated state and of the connection as a whole: the
greeting and capabilities, LOGIN and AUTHENTICATE PLAIN with every login result,
STARTTLS, LOGOUT, autologout, limits, malformed input and commands in the wrong state;
a property test feeds arbitrary bytes in arbitrary chunks."""

from __future__ import annotations

import base64
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from casarray.access.imap.backend import (
    LoginReferred,
    LoginThrottled,
    LoginUnavailable,
)
from casarray.access.imap.events import Close, Idling, Send, StartTLS
from casarray.access.imap.session import ImapSession, Limits, State
from tests.access.imap.fakes import FakeBackend, make_session, rx, sent, transcript

COMMON = (
    b"SASL-IR LOGIN-REFERRALS LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE "
    b"CHILDREN UNSELECT SPECIAL-USE LIST-EXTENDED LIST-STATUS CONDSTORE QRESYNC NOTIFY "
    b"BINARY MULTIAPPEND CATENATE URLAUTH URLAUTH=BINARY APPENDLIMIT=52428800 "
    b"ESEARCH SORT SORT=DISPLAY ESORT THREAD=REFERENCES THREAD=ORDEREDSUBJECT "
    b"CONTEXT=SEARCH CONTEXT=SORT"
)
CAPS_AFTER_LOGIN = b"IMAP4rev1 " + COMMON + b" COMPRESS=DEFLATE QUOTA QUOTA=RES-STORAGE STATUS=SIZE"
LOGGED_IN = b"a1 OK [CAPABILITY " + CAPS_AFTER_LOGIN + b"] Logged in\r\n"
ANY_LOGGED_IN = rx(rb"a1 OK \[CAPABILITY [^]]*\] Logged in\r\n")


def backend() -> FakeBackend:
    b = FakeBackend()
    b.add_user("alice@lab.net", "s3cret pw")
    return b


def plain(authz: str, user: str, password: str) -> bytes:
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode())


# -- greeting and capabilities ------------------------------------------------------


def test_greeting_names_the_server_and_capabilities_before_tls() -> None:
    session = make_session(backend(), tls=False, starttls=True)
    assert session.greeting() == [
        Send(
            b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED " + COMMON + b"] "
            b"CAS01.lab.net casarray IMAP4 service ready\r\n"
        )
    ]


def test_capabilities_with_tls_and_plaintext_allowed() -> None:
    tls = make_session(backend(), tls=True, starttls=False)
    assert b"STARTTLS" not in sent(tls.greeting())
    assert b"AUTH=PLAIN" in sent(tls.greeting())
    assert b"LOGINDISABLED" not in sent(tls.greeting())
    plain_ok = make_session(backend(), tls=False, starttls=False, allow_plaintext=True)
    greeting = sent(plain_ok.greeting())
    assert b"AUTH=PLAIN" in greeting and b"STARTTLS" not in greeting
    extra = ImapSession(
        backend(),
        client_address="::1",
        tls_active=True,
        starttls_available=False,
        capabilities_extra=("XLAB", "IDLE"),
    )
    caps = sent(extra.greeting())
    assert caps.count(b"IDLE") == 1 and b" XLAB]" in caps


def test_capability_command_and_after_login() -> None:
    session = make_session(backend())
    transcript(
        session,
        [
            (
                b"a0 CAPABILITY\r\n",
                b"* CAPABILITY IMAP4rev1 AUTH=PLAIN " + COMMON + b"\r\n"
                b"a0 OK CAPABILITY completed\r\n",
            ),
            (b'a1 LOGIN alice@lab.net "s3cret pw"\r\n', LOGGED_IN),
            (
                b"a2 capability\r\n",
                b"* CAPABILITY " + CAPS_AFTER_LOGIN + b"\r\na2 OK CAPABILITY completed\r\n",
            ),
        ],
    )
    assert session.state is State.AUTHENTICATED and session.user == "alice@lab.net"


def test_noop_id_and_logout() -> None:
    session = make_session(backend())
    transcript(
        session,
        [
            (b"a1 NOOP\r\n", b"a1 OK NOOP completed\r\n"),
            (
                b'a2 ID ("name" "mutt")\r\n',
                b'* ID ("name" "casarray" "version" "0.1.0")\r\na2 OK ID completed\r\n',
            ),
            (b"a3 ID NIL\r\n", rx(rb'\* ID \("name" "casarray".*a3 OK ID completed\r\n')),
        ],
    )
    events = session.feed(b"a4 LOGOUT\r\na5 NOOP\r\n")
    assert events == [
        Send(b"* BYE casarray IMAP4 server logging out\r\na4 OK LOGOUT completed\r\n"),
        Close(),
    ]
    assert not session.wants_input
    assert session.feed(b"a6 NOOP\r\n") == []


# -- LOGIN --------------------------------------------------------------------------


def test_login_results() -> None:
    b = backend()
    b.add_user("bob@lab.net", "pw")
    b.add_user("carol@lab.net", "pw")
    b.add_user("dave@lab.net", "pw")
    b.results["bob@lab.net"] = LoginReferred("imap://bob@CAS02.lab.net/", "CAS02.lab.net")
    b.results["carol@lab.net"] = LoginThrottled(12.2)
    b.results["dave@lab.net"] = LoginUnavailable("The mailbox database DB01 is dismounted.")
    session = make_session(b)
    transcript(
        session,
        [
            (
                b"a1 LOGIN alice@lab.net wrong\r\n",
                b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
            ),
            (
                b"a2 LOGIN nobody@lab.net x\r\n",
                b"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
            ),
            (
                b"a3 LOGIN bob@lab.net pw\r\n",
                b"a3 NO [REFERRAL imap://bob@CAS02.lab.net/] This mailbox is served by "
                b"CAS02.lab.net; connect there\r\n",
            ),
            (
                b"a4 LOGIN carol@lab.net pw\r\n",
                b"a4 NO [UNAVAILABLE] Too many failed logins; try again in 13 seconds\r\n",
            ),
            (
                b"a5 LOGIN dave@lab.net pw\r\n",
                b"a5 NO [UNAVAILABLE] The mailbox database DB01 is dismounted.\r\n",
            ),
            (b"a6 SELECT INBOX\r\n", b"a6 BAD SELECT is not allowed before logging in\r\n"),
            (b"a7 LOGIN {13}\r\n", b"+ Ready for literal data\r\n"),
            (b"alice@lab.net {9}\r\n", b"+ Ready for literal data\r\n"),
            (b"s3cret pw\r\n", LOGGED_IN.replace(b"a1", b"a7")),
            (
                b"a8 LOGIN alice@lab.net x\r\n",
                b"a8 BAD LOGIN is not allowed: already authenticated\r\n",
            ),
        ],
    )
    assert b.logins[0] == ("alice@lab.net", "127.0.0.1")
    assert session.state is State.AUTHENTICATED


def test_login_referral_does_not_open_the_mailbox() -> None:
    b = backend()
    b.results["alice@lab.net"] = LoginReferred("imap://alice@CAS02.lab.net/", "CAS02.lab.net")
    session = make_session(b)
    transcript(
        session,
        [
            (
                b"r1 LOGIN alice@lab.net pw\r\n",
                b"r1 NO [REFERRAL imap://alice@CAS02.lab.net/] This mailbox is served by "
                b"CAS02.lab.net; connect there\r\n",
            ),
            (b'r2 LIST "" *\r\n', b"r2 BAD LIST is not allowed before logging in\r\n"),
        ],
    )
    assert session.state is State.NOT_AUTHENTICATED


def test_privacy_required_before_tls() -> None:
    b = backend()
    session = make_session(b, tls=False, starttls=True)
    transcript(
        session,
        [
            (
                b'a1 LOGIN alice@lab.net "s3cret pw"\r\n',
                b"a1 NO [PRIVACYREQUIRED] Logging in is not allowed on an unencrypted "
                b"connection; use STARTTLS first\r\n",
            ),
            (b"a2 AUTHENTICATE PLAIN\r\n", rx(rb"a2 NO \[PRIVACYREQUIRED\] .*\r\n")),
            (
                b"a3 AUTHENTICATE PLAIN " + plain("", "alice@lab.net", "s3cret pw") + b"\r\n",
                rx(rb"a3 NO \[PRIVACYREQUIRED\] .*\r\n"),
            ),
        ],
    )
    assert b.logins == []  # the password never reached the backend


# -- AUTHENTICATE PLAIN -------------------------------------------------------------


def test_authenticate_plain_with_initial_response() -> None:
    session = make_session(backend())
    initial = plain("", "alice@lab.net", "s3cret pw")
    transcript(
        session,
        [(b"a1 AUTHENTICATE PLAIN " + initial + b"\r\n", LOGGED_IN)],
    )


def test_authenticate_plain_with_continuation() -> None:
    session = make_session(backend())
    transcript(
        session,
        [
            (b"a1 AUTHENTICATE plain\r\n", b"+ \r\n"),
            (plain("alice@lab.net", "alice@lab.net", "s3cret pw") + b"\r\n", LOGGED_IN),
        ],
    )


def test_authenticate_plain_failures() -> None:
    session = make_session(backend())
    transcript(
        session,
        [
            (b"a1 AUTHENTICATE PLAIN\r\n", b"+ \r\n"),
            (b"*\r\n", b"a1 BAD AUTHENTICATE cancelled\r\n"),
            (b"a2 AUTHENTICATE PLAIN\r\n", b"+ \r\n"),
            (b"%%%\r\n", b"a2 BAD AUTHENTICATE: the response is not valid base64\r\n"),
            (
                b"a3 AUTHENTICATE PLAIN " + plain("", "alice@lab.net", "nope") + b"\r\n",
                b"a3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
            ),
            (
                b"a4 AUTHENTICATE PLAIN " + plain("bob", "alice@lab.net", "s3cret pw") + b"\r\n",
                b"a4 NO [AUTHORIZATIONFAILED] Logging in as another user is not allowed\r\n",
            ),
            (
                b"a5 AUTHENTICATE PLAIN " + base64.b64encode(b"no-nuls") + b"\r\n",
                b"a5 BAD AUTHENTICATE PLAIN: expected authzid NUL authcid NUL password\r\n",
            ),
            (b"a6 AUTHENTICATE PLAIN =\r\n", rx(rb"a6 BAD AUTHENTICATE PLAIN: expected .*\r\n")),
            (
                b"a7 AUTHENTICATE CRAM-MD5\r\n",
                b"a7 NO [CANNOT] Unsupported authentication mechanism CRAM-MD5\r\n",
            ),
            (b"a8 NOOP\r\n", b"a8 OK NOOP completed\r\n"),
        ],
    )


def test_authenticate_response_split_across_chunks() -> None:
    session = make_session(backend())
    assert sent(session.feed(b"a1 AUTHENTICATE PLAIN\r\n")) == b"+ \r\n"
    response = plain("", "alice@lab.net", "s3cret pw") + b"\r\n"
    out = b""
    for byte in response:
        out += sent(session.feed(bytes([byte])))
    assert out == LOGGED_IN


# -- STARTTLS -----------------------------------------------------------------------


def test_starttls_event_sequence() -> None:
    b = backend()
    session = make_session(b, tls=False, starttls=True)
    session.greeting()
    events = session.feed(b"s1 STARTTLS\r\ns2 LOGIN alice@lab.net injected\r\n")
    assert events == [Send(b"s1 OK Begin TLS negotiation now\r\n"), StartTLS()]
    # Plaintext arriving before the handshake completes is dropped (CVE-2011-0411).
    assert session.feed(b"s3 LOGIN alice@lab.net x\r\n") == []
    assert session.tls_started() == []
    assert b.logins == []
    transcript(
        session,
        [
            (
                b"s4 CAPABILITY\r\n",
                b"* CAPABILITY IMAP4rev1 AUTH=PLAIN " + COMMON + b"\r\n"
                b"s4 OK CAPABILITY completed\r\n",
            ),
            (b"s5 STARTTLS\r\n", b"s5 BAD TLS is already active\r\n"),
            (b'a1 LOGIN alice@lab.net "s3cret pw"\r\n', LOGGED_IN),
        ],
    )


def test_starttls_unavailable_or_after_login() -> None:
    session = make_session(backend(), tls=False, starttls=False, allow_plaintext=True)
    transcript(
        session,
        [
            (b"s1 STARTTLS\r\n", b"s1 BAD STARTTLS is not available on this connection\r\n"),
            (b'a1 LOGIN alice@lab.net "s3cret pw"\r\n', LOGGED_IN),
            (b"s2 STARTTLS\r\n", b"s2 BAD STARTTLS is not allowed: already authenticated\r\n"),
        ],
    )


# -- time-outs and the end ----------------------------------------------------------


def test_autologout() -> None:
    session = make_session(backend())
    assert session.timed_out() == [Send(b"* BYE Autologout; idle for too long\r\n"), Close()]
    assert not session.wants_input
    assert session.timed_out() == []


def test_autologout_while_idling() -> None:
    session = make_session(backend())
    session.feed(b'a1 LOGIN alice@lab.net "s3cret pw"\r\n')
    assert session.feed(b"a2 IDLE\r\n") == [Send(b"+ idling\r\n"), Idling(True)]
    assert session.timed_out() == [
        Send(b"* BYE Autologout; idle for too long\r\n"),
        Idling(False),
        Close(),
    ]


def test_connection_lost() -> None:
    session = make_session(backend())
    session.feed(b'a1 LOGIN alice@lab.net "s3cret pw"\r\n')
    session.connection_lost()
    assert not session.wants_input
    assert session.feed(b"a2 NOOP\r\n") == []
    assert session.poll() == []


# -- bad input and limits -----------------------------------------------------------


def test_malformed_commands_and_wrong_states() -> None:
    session = make_session(backend())
    transcript(
        session,
        [
            (b"\r\n", b"* BAD Missing or invalid tag; a command starts with a tag\r\n"),
            (b"* NOOP\r\n", b"* BAD Missing or invalid tag; a command starts with a tag\r\n"),
            (b"a1\r\n", b"a1 BAD Missing command\r\n"),
            (b"a2 FROBNICATE\r\n", b"a2 BAD Unknown command FROBNICATE\r\n"),
            (b"a3 NOOP now\r\n", b"a3 BAD NOOP: Unexpected ' now' after NOOP\r\n"),
            (b"a4 FETCH 1 FLAGS\r\n", b"a4 BAD FETCH is not allowed before logging in\r\n"),
            (b'a5 LOGIN alice@lab.net "s3cret pw"\r\n', LOGGED_IN.replace(b"a1", b"a5")),
            (
                b"a6 FETCH 1 FLAGS\r\n",
                b"a6 BAD FETCH needs a selected mailbox: SELECT or EXAMINE one first\r\n",
            ),
            (b"a7 UID FETCH 1 FLAGS\r\n", rx(rb"a7 BAD UID FETCH needs a selected mailbox.*")),
            (b"a8 EXPUNGE\r\n", rx(rb"a8 BAD EXPUNGE needs a selected mailbox.*")),
            (
                b"a9 SELECT\r\n",
                b"a9 BAD SELECT: Expected a space after SELECT, found the end of the line\r\n",
            ),
            (b"b1 SELECT INBOX\r\n", rx(rb".*b1 OK \[READ-WRITE\] SELECT completed\r\n")),
            (
                b"b2 ENABLE CONDSTORE\r\n",
                b"b2 BAD ENABLE is only allowed in the authenticated state (not with a "
                b"mailbox selected)\r\n",
            ),
            (b"b3 FETCH 1 FLAGS\r\n", rx(rb"b3 BAD FETCH: invalid message set: .*\r\n")),
            (b"b4 FETCH 1 (FLAGS\r\n", rx(rb"b4 BAD FETCH: Expected a space after a fetch item.*")),
        ],
    )


def test_line_too_long() -> None:
    session = make_session(backend(), limits=Limits(max_line=100))
    transcript(
        session,
        [
            (
                b"a1 NOOP " + b"x" * 200 + b"\r\n",
                b"a1 BAD Command line too long (the limit is 100 bytes); line ignored\r\n",
            ),
            (b"x" * 300, b""),
            (
                b"\r\na2 NOOP\r\n",
                b"* BAD Command line too long (the limit is 100 bytes); line ignored\r\n"
                b"a2 OK NOOP completed\r\n",
            ),
        ],
    )


def test_literal_too_big_synchronising() -> None:
    session = make_session(backend(), limits=Limits(max_literal=1000))
    transcript(
        session,
        [
            (b'a1 LOGIN alice@lab.net "s3cret pw"\r\n', ANY_LOGGED_IN),
            (
                b"a2 APPEND INBOX {1001}\r\n",
                b"a2 NO [TOOBIG] Literal of 1001 bytes is larger than the limit of 1000 bytes\r\n",
            ),
            (
                b"a3 LOGIN {5000}\r\n",
                b"a3 BAD Literal of 5000 bytes is larger than the limit of 1000 bytes\r\n",
            ),
            (b"a4 NOOP\r\n", b"a4 OK NOOP completed\r\n"),
        ],
    )


def test_literal_too_big_literal_plus_is_read_and_dropped() -> None:
    b = backend()
    session = make_session(b, limits=Limits(max_literal=1000))
    transcript(
        session,
        [
            (b'a1 LOGIN alice@lab.net "s3cret pw"\r\n', ANY_LOGGED_IN),
            (b"a2 APPEND INBOX {3000+}\r\n" + b"x" * 1500, b""),
            (b"a3 NOOP\r\n" * 100, b""),  # still inside the literal
            (
                b"y" * 600 + b"\r\na4 NOOP\r\n",
                b"a2 NO [TOOBIG] Literal of 3000 bytes is larger than the limit of 1000 bytes\r\n"
                b"a4 OK NOOP completed\r\n",
            ),
        ],
    )
    assert b.users["alice@lab.net"][1].calls.get("append", 0) == 0


def test_append_literal_split_at_every_byte_boundary() -> None:
    message = b"From: a@lab.net\r\nSubject: split\r\n\r\nbody {5}\r\n"
    command = b"a2 APPEND INBOX (\\Seen) {%d}\r\n" % len(message)
    stream = command + message + b"\r\n"
    for cut in range(1, len(stream)):
        b = backend()
        session = make_session(b)
        session.feed(b'a1 LOGIN alice@lab.net "s3cret pw"\r\n')
        out = sent(session.feed(stream[:cut])) + sent(session.feed(stream[cut:]))
        assert out == (
            b"+ Ready for literal data\r\na2 OK [APPENDUID 1001 1] APPEND completed\r\n"
        ), cut
        store = b.users["alice@lab.net"][1]
        assert store.body("INBOX", 1) == message
    # and byte by byte
    b = backend()
    session = make_session(b)
    session.feed(b'a1 LOGIN alice@lab.net "s3cret pw"\r\n')
    out = b"".join(sent(session.feed(bytes([x]))) for x in stream)
    assert out == b"+ Ready for literal data\r\na2 OK [APPENDUID 1001 1] APPEND completed\r\n"


def test_internal_error_becomes_serverbug_and_session_continues() -> None:
    class Broken(FakeBackend):
        def login(self, user: str, password: str, client_address: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("directory down")

    session = make_session(Broken())
    transcript(
        session,
        [
            (
                b"a1 LOGIN alice x\r\n",
                b"a1 NO [SERVERBUG] Internal server error; the server log has the details\r\n",
            ),
            (b"a2 NOOP\r\n", b"a2 OK NOOP completed\r\n"),
        ],
    )


# -- arbitrary input ----------------------------------------------------------------

_LINE = re.compile(rb"(\*|\+|[^\s(){%*\"\\+]+) [^\r\n]*\r\n|\+ \r\n")
_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n$")


def check_well_formed(data: bytes) -> None:
    """Every response line ends with CRLF and starts with "*", "+" or a tag; literals
    ({n} at the end of a line) are skipped over."""
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        assert end >= 0, data[pos:]
        line = data[pos : end + 2]
        assert _LINE.fullmatch(line) or line == b"+ \r\n", line
        pos = end + 2
        literal = _LITERAL_AT_END.search(line)
        while literal:
            pos += int(literal.group(1))
            end = data.find(b"\r\n", pos)
            rest = data[pos : end + 2]
            pos = end + 2
            literal = _LITERAL_AT_END.search(rest)


PIECES = [
    b'a1 LOGIN alice@lab.net "s3cret pw"\r\n',
    b"a2 SELECT INBOX\r\n",
    b"a3 APPEND INBOX {5}\r\nhello\r\n",
    b"a4 FETCH 1:* (FLAGS UID ENVELOPE)\r\n",
    b"a5 IDLE\r\n",
    b"DONE\r\n",
    b"a6 AUTHENTICATE PLAIN\r\n",
    b"{3+}\r\n",
    b"*\r\n",
    b"a7 SEARCH OR SEEN (UNSEEN 1:*)\r\n",
    b"a8 STORE 1 +FLAGS (\\Deleted)\r\n",
    b"a9 EXPUNGE\r\n",
    b'b1 LIST "" *\r\n',
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(PIECES)), max_size=12),
    st.lists(st.integers(1, 30), max_size=30),
)
def test_arbitrary_input_never_raises_and_responses_are_well_formed(
    pieces: list[bytes], cuts: list[int]
) -> None:
    b = backend()
    b.users["alice@lab.net"][1].append("INBOX", b"Subject: x\r\n\r\nhi\r\n")
    session = make_session(b, limits=Limits(max_line=200, max_literal=100))
    data = b"".join(pieces)
    out = sent(session.greeting())
    pos = 0
    for size in [*cuts, len(data)]:
        out += sent(session.feed(data[pos : pos + size]))
        pos += size
    out += sent(session.poll()) + sent(session.timed_out())
    check_well_formed(out)


def test_literals_before_login_are_limited_to_the_line_limit() -> None:
    session = make_session(backend(), limits=Limits(max_line=1000, max_literal=100_000))
    transcript(
        session,
        [
            (
                b"a1 APPEND INBOX {5000}\r\n",
                b"a1 BAD Literal of 5000 bytes is larger than the limit of 1000 bytes\r\n",
            ),
            (b"a2 LOGIN {13}\r\n", b"+ Ready for literal data\r\n"),
            (b'alice@lab.net "s3cret pw"\r\n', rx(rb"a2 OK \[CAPABILITY .*\] Logged in\r\n")),
            (b"a3 APPEND INBOX {5000}\r\n", b"+ Ready for literal data\r\n"),
            (b"x" * 5000 + b"\r\n", b"a3 OK [APPENDUID 1001 1] APPEND completed\r\n"),
        ],
    )
