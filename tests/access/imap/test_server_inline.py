"""Which input of a logged-in session the IMAP server may run on its event loop
(`server._inline_ok`): command lines and literals (a client's pipelined batch, an APPEND
included) up to INLINE_MAX bytes, never a login, IDLE, STARTTLS or COMPRESS, nor a batch
holding one."""

from __future__ import annotations

import pytest

from casarray.access.imap.server import INLINE_MAX, _inline_ok


@pytest.mark.parametrize(
    "data",
    [
        b"a1 NOOP\r\n",
        b"a2 FETCH 1:5 (FLAGS ENVELOPE)\r\n",
        b"a3 UID STORE 4 +FLAGS.SILENT (\\Seen)\r\n",
        b"a4 uid fetch 1:* flags\r\n",
        b'a5 STATUS "INBOX" (MESSAGES UNSEEN)\r\n',
        b"a6 EXPUNGE\r\n",
        b"a7 NOOP\r\na8 UID FETCH 1:* (FLAGS)\r\na9 STORE 2 +FLAGS (\\Deleted)\r\n",
        b"a10 APPEND INBOX {5+}\r\nhello\r\n",
        b"a11 APPEND INBOX (\\Seen) {21}\r\n",  # the literal follows after "+"
        b"Subject: hello there\r\n\r\nbody\r\n",  # ... which is this
        b"a12 FETCH 1 (FLAGS",  # incomplete: the rest comes later
        b"DONE\r\n",
    ],
)
def test_commands_and_literals_run_inline(data: bytes) -> None:
    assert _inline_ok(data)


@pytest.mark.parametrize(
    "data",
    [
        b'a1 LOGIN alice "secret"\r\n',
        b"a2 login alice secret\r\n",
        b"a3 AUTHENTICATE PLAIN\r\n",
        b"a6 IDLE\r\n",
        b"a7 STARTTLS\r\n",
        b"a8 COMPRESS DEFLATE\r\n",
        b"a8 NOOP\r\na9 LOGIN alice secret\r\n",  # a login in a batch
        b"a8 NOOP\r\na9 IDLE\r\n",
        b"a11 SEARCH " + b"ALL " * INLINE_MAX + b"\r\n",
        b"a12 NOOP\r\n" * (INLINE_MAX // 8),  # too long a batch
    ],
)
def test_logins_idle_and_long_input_go_to_the_pool(data: bytes) -> None:
    assert not _inline_ok(data)
