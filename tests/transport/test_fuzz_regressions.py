"""Inputs the fuzzers found (bench/fuzz.py, tests/fuzz_targets.py) in SMTP receive,
each the smallest that broke it, kept as tests of what a client sees."""

from __future__ import annotations

import re

from tests.fuzz_targets import make_smtp_exchange


def test_a_reply_never_carries_a_control_character_the_client_sent() -> None:
    # aiosmtpd quotes an unknown command in its 500 reply: a bare CR (or a NUL) sent in
    # the command came back inside the reply line, which a client reads as the reply's
    # end; the reply keeps the command, with those characters as "?"
    exchange = make_smtp_exchange()
    out = exchange(b"EHLO far.net\r\nDATA\r\x00FROM:\r\nQUIT\r\n")
    assert b'500 5.5.1 Error: command "DATA??FROM:" not recognized\r\n' in out
    assert re.fullmatch(rb"([2-5]\d\d[ -][^\r\n\x00]*\r\n)+", out), out
