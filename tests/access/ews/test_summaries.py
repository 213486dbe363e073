"""The per-process summaries of messages (`access.ews.summaries`): what they keep, when
they are dropped, and that nothing is kept from a read that lacked what it needed."""

from __future__ import annotations

from casarray.access.ews.summaries import Summary, SummaryCache
from casarray.mailstore.mime import cached_parts

MESSAGE = (
    b"From: Bob Li <bob@lab.net>\r\nTo: alice@lab.net\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Date: Wed, 03 Jan 2024 10:00:00 +0800\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain body\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html body</p>\r\n--b--\r\n"
)


def test_the_least_recently_used_go_first_past_the_budget() -> None:
    cache = SummaryCache(budget=300)
    a, b = cache.get("a", 100), cache.get("b", 100)
    assert cache.get("a", 100) is a  # kept; now the most recently used
    cache.get("c", 150)  # 350 > 300: b, the least recently used, goes
    assert len(cache) == 2
    assert cache.get("a", 100) is a
    assert cache.get("b", 100) is not b  # read anew


def test_a_message_of_another_size_under_the_same_key_is_read_anew() -> None:
    cache = SummaryCache()
    first = cache.get("k", 10)
    first.fragments["item:Subject"] = b"<t:Subject>old</t:Subject>"
    second = cache.get("k", 11)
    assert second is not first and second.fragments == {}
    assert len(cache) == 1


def test_a_summary_reads_its_parts_once_they_come() -> None:
    summary = Summary(len(MESSAGE))
    assert summary.envelope.subject is None  # no parts yet: nothing read, nothing kept
    assert summary.sent is None
    summary.parts = cached_parts(MESSAGE)
    assert summary.envelope.subject == "caf\u00e9"
    assert summary.sent is not None and summary.sent.hour == 10
    assert summary.structure.html is not None and not summary.has_attachments


def test_the_bodies_are_kept_only_when_read_from_the_message() -> None:
    summary = Summary(len(MESSAGE), cached_parts(MESSAGE))
    assert summary.read_texts(None) == (None, None)  # the bytes weren't read: not kept
    assert summary.texts is None
    plain, markup = summary.read_texts(MESSAGE)
    assert plain is not None and plain.startswith("plain body")
    assert markup is not None and "<p>html body</p>" in markup
    assert summary.read_texts(None) == (plain, markup)  # kept now
