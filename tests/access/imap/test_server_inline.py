"""Which command lines the IMAP server may run on its event loop (`server._inline_ok`):
one short complete line without a literal, never a login, an APPEND, IDLE or STARTTLS."""

from __future__ import annotations

import pytest

from casarray.access.imap.server import INLINE_MAX, _inline_ok


@pytest.mark.parametrize(
    "line",
    [
        b"a1 NOOP\r\n",
        b"a2 FETCH 1:5 (FLAGS ENVELOPE)\r\n",
        b"a3 UID STORE 4 +FLAGS.SILENT (\\Seen)\r\n",
        b"a4 uid fetch 1:* flags\r\n",
        b'a5 STATUS "INBOX" (MESSAGES UNSEEN)\r\n',
        b"a6 EXPUNGE\r\n",
    ],
)
def test_short_commands_run_inline(line: bytes) -> None:
    assert _inline_ok(line)


@pytest.mark.parametrize(
    "data",
    [
        b'a1 LOGIN alice "secret"\r\n',
        b"a2 login alice secret\r\n",
        b"a3 AUTHENTICATE PLAIN\r\n",
        b"a4 APPEND INBOX {5+}\r\nhello\r\n",
        b"a5 SEARCH SUBJECT {3}\r\n",
        b"a6 IDLE\r\n",
        b"a7 STARTTLS\r\n",
        b"a8 NOOP\r\na9 NOOP\r\n",  # more than one line
        b"a10 FETCH 1 (FLAGS",  # incomplete
        b"DONE\r\n",
        b"a11 SEARCH " + b"ALL " * INLINE_MAX + b"\r\n",
    ],
)
def test_logins_literals_and_long_input_go_to_the_pool(data: bytes) -> None:
    assert not _inline_ok(data)
