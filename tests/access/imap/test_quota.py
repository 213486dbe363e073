"""Transcripts of QUOTA (RFC 9208) over Exchange's storage quota: GETQUOTAROOT and
GETQUOTA with and without a limit, SETQUOTA refused, and APPEND and COPY that would
go over ProhibitSendReceiveQuota answered NO [OVERQUOTA] with nothing stored; a MOVE
between folders doesn't grow the mailbox and is allowed."""

from __future__ import annotations

from tests.access.imap.fakes import (
    FakeBackend,
    FakeMailboxStore,
    make_session,
    message,
    rx,
    sent,
    transcript,
)

PASSWORD = "s3cret pw"


def session_with(limit: int | None, store: FakeMailboxStore | None = None):  # type: ignore[no-untyped-def]
    backend = FakeBackend()
    store = backend.add_user("alice@lab.net", PASSWORD, store)
    if limit is not None:
        backend.storage_limits["alice@lab.net"] = limit
    session = make_session(backend)
    session.greeting()
    assert sent(session.feed(b'a0 LOGIN alice@lab.net "s3cret pw"\r\n')).startswith(b"a0 OK")
    return session, store, backend


def append(raw: bytes, mailbox: str = "INBOX", tag: str = "ap") -> bytes:
    return b"%s APPEND %s {%d+}\r\n%s\r\n" % (tag.encode(), mailbox.encode(), len(raw), raw)


def test_capabilities_after_login() -> None:
    session, _, _ = session_with(None)
    out = sent(session.feed(b"c CAPABILITY\r\n"))
    assert b" QUOTA QUOTA=RES-STORAGE" in out
    assert b"QUOTA=RES-MESSAGE" not in out  # Exchange has no message-count quota


def test_getquotaroot_and_getquota_with_a_limit() -> None:
    session, _, _ = session_with(10 * 1024 * 1024)
    raw = message("one", "x" * 3000)
    sent(session.feed(append(raw)))
    used_kb = (len(raw) + 1023) // 1024
    transcript(
        session,
        [
            (
                b"q1 GETQUOTAROOT INBOX\r\n",
                b'* QUOTAROOT "INBOX" ""\r\n'
                b'* QUOTA "" (STORAGE %d 10240)\r\n'
                b"q1 OK GETQUOTAROOT completed\r\n" % used_kb,
            ),
            (
                b'q2 GETQUOTA ""\r\n',
                b'* QUOTA "" (STORAGE %d 10240)\r\nq2 OK GETQUOTA completed\r\n' % used_kb,
            ),
            (
                b"q3 getquotaroot Sent\r\n",
                rx(rb'\* QUOTAROOT "Sent" ""\r\n\* QUOTA "" \(STORAGE \d+ 10240\)\r\nq3 OK .*'),
            ),
            (
                b"q4 GETQUOTA other\r\n",
                b"q4 NO [NONEXISTENT] No such quota root: 'other'\r\n",
            ),
            (
                b"q5 GETQUOTAROOT Nowhere\r\n",
                b"q5 NO [NONEXISTENT] Mailbox doesn't exist: Nowhere\r\n",
            ),
        ],
    )


def test_unlimited_mailbox_has_no_quota_root() -> None:
    session, _, _ = session_with(None)
    transcript(
        session,
        [
            (
                b"q1 GETQUOTAROOT INBOX\r\n",
                b'* QUOTAROOT "INBOX"\r\nq1 OK GETQUOTAROOT completed\r\n',
            ),
            (b'q2 GETQUOTA ""\r\n', b"q2 NO [NONEXISTENT] No such quota root: ''\r\n"),
        ],
    )


def test_setquota_is_the_administrators() -> None:
    session, _, _ = session_with(1024 * 1024)
    transcript(
        session,
        [
            (
                b'q1 SETQUOTA "" (STORAGE 512)\r\n',
                b"q1 NO [NOPERM] Quotas are set by the administrator "
                b"(Set-Mailbox -ProhibitSendReceiveQuota)\r\n",
            ),
            (b'q2 SETQUOTA "" ()\r\n', rx(rb"q2 NO \[NOPERM\] .*")),
            (b'q3 SETQUOTA "" (STORAGE)\r\n', rx(rb"q3 BAD SETQUOTA: Expected a space .*")),
            (b'q3b SETQUOTA "" (STORAGE x)\r\n', rx(rb"q3b BAD SETQUOTA: Expected a limit .*")),
            (b"q4 SETQUOTA\r\n", rx(rb"q4 BAD .*")),
            (b"q5 GETQUOTA\r\n", rx(rb"q5 BAD .*")),
            (b"q6 GETQUOTAROOT\r\n", rx(rb"q6 BAD .*")),
        ],
    )


def test_quota_commands_need_a_login() -> None:
    backend = FakeBackend()
    session = make_session(backend)
    session.greeting()
    transcript(
        session,
        [
            (
                b"q1 GETQUOTAROOT INBOX\r\n",
                b"q1 BAD GETQUOTAROOT is not allowed before logging in\r\n",
            ),
        ],
    )


def test_append_over_the_limit_is_refused_and_nothing_is_stored() -> None:
    session, store, backend = session_with(4096)
    small = message("small", "a" * 1000)
    big = message("big", "b" * 3500)
    assert sent(session.feed(append(small, tag="a1"))).startswith(b"a1 OK [APPENDUID")
    used = len(small)
    out = sent(session.feed(append(big, tag="a2")))
    assert out == (
        b"a2 NO [OVERQUOTA] Over quota: storing %d bytes would take the mailbox to %d "
        b"bytes; its limit is 4096 bytes\r\n" % (len(big), used + len(big))
    )
    assert store.storage_used() == used
    assert len(store.messages("INBOX")) == 1
    # the administrator raises the limit: the same APPEND goes in
    backend.storage_limits["alice@lab.net"] = 1024 * 1024
    assert sent(session.feed(append(big, tag="a3"))).startswith(b"a3 OK [APPENDUID")
    # and lowers it below what is used: nothing more goes in, not even a small one
    backend.storage_limits["alice@lab.net"] = 100
    assert sent(session.feed(append(small, tag="a4"))).startswith(b"a4 NO [OVERQUOTA]")


def test_copy_over_the_limit_is_refused_move_between_folders_is_not() -> None:
    session, store, backend = session_with(1024 * 1024)
    raw = message("report", "r" * 2000)
    sent(session.feed(append(raw, tag="a1")))
    sent(session.feed(append(raw, tag="a2")))
    assert b"s OK" in sent(session.feed(b"s SELECT INBOX\r\n"))
    backend.storage_limits["alice@lab.net"] = 3 * len(raw)
    transcript(
        session,
        [
            # one more copy fits, two don't
            (b"c1 COPY 1:2 Archive\r\n", rx(rb"c1 NO \[OVERQUOTA\] Over quota: .*\r\n")),
            (b"c2 UID COPY 1 Archive\r\n", rx(rb"c2 OK \[COPYUID \d+ 1 1\] .*\r\n")),
            (b"c3 COPY 2 Archive\r\n", rx(rb"c3 NO \[OVERQUOTA\] .*\r\n")),
            # a move keeps the mailbox's size: allowed at the limit
            (b"m1 MOVE 2 Archive\r\n", rx(rb".*m1 OK MOVE completed\r\n")),
        ],
    )
    assert len(store.messages("Archive")) == 2
    assert store.storage_used() == 3 * len(raw)


def test_without_a_limit_nothing_is_refused() -> None:
    session, store, _ = session_with(None)
    raw = message("big", "z" * 100_000)
    assert sent(session.feed(append(raw))).startswith(b"ap OK")
    assert store.storage_used() == len(raw)


def test_status_size_and_deleted_storage() -> None:
    session, store, _ = session_with(None)
    one, two = message("one", "1" * 500), message("two", "2" * 900)
    sent(session.feed(append(one, tag="a1")))
    sent(session.feed(append(two, tag="a2")))
    assert b"STATUS=SIZE" in sent(session.feed(b"c CAPABILITY\r\n"))
    transcript(
        session,
        [
            (
                b"s1 STATUS INBOX (SIZE DELETED-STORAGE MESSAGES)\r\n",
                b'* STATUS "INBOX" (SIZE %d DELETED-STORAGE 0 MESSAGES 2)\r\n'
                b"s1 OK STATUS completed\r\n" % (len(one) + len(two)),
            ),
            (b"s2 SELECT INBOX\r\n", rx(rb".*s2 OK .*")),
            (b"s3 STORE 2 +FLAGS.SILENT (\\Deleted)\r\n", b"s3 OK STORE completed\r\n"),
            (
                b"s4 STATUS Sent (SIZE DELETED-STORAGE)\r\n",
                b'* STATUS "Sent" (SIZE 0 DELETED-STORAGE 0)\r\ns4 OK STATUS completed\r\n',
            ),
            (
                b"s5 STATUS INBOX (deleted-storage)\r\n",
                b'* STATUS "INBOX" (DELETED-STORAGE %d)\r\ns5 OK STATUS completed\r\n' % len(two),
            ),
        ],
    )
    assert store.storage_used() == len(one) + len(two)
