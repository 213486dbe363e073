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


def test_a_reply_quoting_bytes_that_are_not_utf8_is_sent() -> None:
    # VRFY's reply quotes its argument, where aiosmtpd keeps a byte that isn't UTF-8 as a
    # lone surrogate: encoding the reply failed, and the client got aiosmtpd's
    # "500 Error: (UnicodeEncodeError)" with a traceback in the log
    exchange = make_smtp_exchange()
    out = exchange(b"VRFY [127.0.0.1\xd4\r\nQUIT\r\n")
    assert b"502 5.5.1 Could not VRFY [127.0.0.1?\r\n" in out
    assert out.endswith(b"221 2.0.0 Bye\r\n")


def test_an_address_the_email_parser_fails_on_is_a_malformed_address() -> None:
    # the standard library's address parser raised AttributeError on an address literal
    # that runs into another address: aiosmtpd's "500 Error: (AttributeError)"
    exchange = make_smtp_exchange()
    out = exchange(b"EHLO far.net\r\nMAIL FROM:<x@far.net>\r\nRCPT TO:<a@[1b:<x@c>\r\nQUIT\r\n")
    assert b"250 2.1.0 Sender OK\r\n553 5.1.3 Error: malformed address\r\n221 " in out
