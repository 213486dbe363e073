"""The Postfix peer the transport tests and `bench/smtp.py` use: as a sink it keeps
what it accepts with the envelope sender; as a relay it hands everything to the next
hop (here another sink)."""

from __future__ import annotations

import smtplib

import pytest

from tests.peers.postfix import PostfixPeer, missing

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))


def test_a_sink_keeps_each_message_with_its_envelope_sender() -> None:
    with PostfixPeer() as sink:
        with smtplib.SMTP(sink.host, sink.port) as client:
            assert client.ehlo()[0] == 250
            assert "8bitmime" in client.esmtp_features and "pipelining" in client.esmtp_features
            client.sendmail("", ["x@example.com"], b"Subject: bounce\r\n\r\nA DSN.\r\n")
            client.sendmail("alice@lab.net", ["y@example.com"], b"Subject: hello\r\n\r\nHi.\r\n")
        got = sink.wait_received(2)
    assert len(got) == 2, sink.log()
    by_subject = {m.split(b"Subject: ")[1].split(b"\r\n")[0].split(b"\n")[0]: m for m in got}
    assert by_subject[b"bounce"].startswith(b"Return-Path: <>")
    assert by_subject[b"hello"].startswith(b"Return-Path: <alice@lab.net>")
    assert b"by smarthost.example.test (Postfix)" in by_subject[b"hello"]


def test_a_relay_hands_everything_to_the_next_hop() -> None:
    with PostfixPeer(hostname="sink.example.test") as sink:
        relay = PostfixPeer(hostname="mx.example.net", relay_to=(sink.host, sink.port))
        with relay, smtplib.SMTP(relay.host, relay.port) as client:
            client.sendmail("bob@example.net", ["alice@lab.net"], b"Subject: in\r\n\r\nx\r\n")
            got = sink.wait_received(1)
    assert len(got) == 1
    assert b"by mx.example.net (Postfix)" in got[0] and b"by sink.example.test" in got[0]
