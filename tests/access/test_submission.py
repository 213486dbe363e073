"""The Client Access server's submission to a real Hub Transport process
(`casarray transport run MBX01`, harness of tests/transport) keeps its authenticated
SMTP sessions: two messages go over one session (one AUTH in the transport's log), a
session the transport closed meanwhile is replaced transparently and the message is
delivered once, messages from several threads at once all arrive exactly once, a
session idle past the limit is not reused, and a connection lost after the content was
sent is reported as such and never sent again."""

from __future__ import annotations

import re
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from casarray.access import submission
from casarray.access.submission import SessionPool, SubmissionError, Submitted
from tests.access.http.test_webmail_send import (  # noqa: F401 (fixtures)
    backend,
    delivered,
    folder_messages,
    org,
    transport,
)
from tests.transport.harness import SERVER, Org, TransportProcess, wait_for

pytestmark = pytest.mark.integration  # a real Hub Transport process
CAS_AUTH = re.compile(r"AUTH 'CAS01\$' from .*: ok")


def message(subject: str) -> bytes:
    return (
        f"From: alice@lab.net\r\nTo: bob@lab.net\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@lab.net>\r\n\r\n"
        ".a line starting with a dot\r\nbody\r\n"
    ).encode()


def send(lab: Org, pool: SessionPool, subject: str) -> Submitted:
    cas = lab.directory.servers.one("CAS01")
    return submission.submit(
        lab.directory, cas, "alice@lab.net", ["bob@lab.net"], message(subject), pool=pool
    )


def auths(hub: TransportProcess) -> int:
    """Sessions CAS01 authenticated, as the transport logged them."""
    return len(CAS_AUTH.findall(hub.logs()))


def subjects(lab: Org, count: int) -> list[str]:
    return sorted(str(m["Subject"]) for m in delivered(lab, "bob", count))


@pytest.fixture
def pool() -> Iterator[SessionPool]:
    pool = SessionPool()
    yield pool
    pool.close()


def test_two_submissions_share_one_session(
    org: Org,  # noqa: F811
    transport: TransportProcess,  # noqa: F811
    pool: SessionPool,
) -> None:
    first = send(org, pool, "first")
    second = send(org, pool, "second")
    assert first.queue_id and second.queue_id and first.queue_id != second.queue_id
    assert pool.opened == 1 and pool.count() == 1
    assert wait_for(lambda: auths(transport) >= 1)
    assert subjects(org, 2) == ["first", "second"]
    assert auths(transport) == 1, transport.logs()
    [one, _] = delivered(org, "bob", 2)
    assert ".a line starting with a dot" in one.get_content()  # dot-stuffed and back


class FixedPorts(TransportProcess):
    """The transport again on the ports an earlier one listened on."""

    def __init__(self, org: Org, ports: dict[int, int]) -> None:  # noqa: F811
        super().__init__(org)
        self.fixed = ports

    def start(self, timeout: float = 30) -> FixedPorts:
        argv = [sys.executable, "-m", "casarray", "transport", "run", SERVER]
        argv += ["--directory", self.org.url, "--log-file", str(self.log)]
        for configured, actual in self.fixed.items():
            argv += ["--port", f"{configured}={actual}"]
        status = self.launch(argv, self.org.env, self.status_path, timeout)
        self.ports = {int(k): int(v) for k, v in status["ports"].items()}
        return self


def test_a_session_the_hub_closed_is_replaced(
    org: Org,  # noqa: F811
    transport: TransportProcess,  # noqa: F811
    pool: SessionPool,
) -> None:
    send(org, pool, "before")
    assert pool.count() == 1
    transport.stop()  # the hub closes its sessions; the kept one is dead now
    again = FixedPorts(org, transport.ports).start()
    try:
        after = send(org, pool, "after")
        assert after.queue_id
        assert pool.opened == 2 and pool.count() == 1
        assert subjects(org, 2) == ["after", "before"]
        assert len(folder_messages(org, "bob")) == 2  # "after" once
    finally:
        again.close()


def test_concurrent_submissions_arrive_exactly_once(
    org: Org,  # noqa: F811
    transport: TransportProcess,  # noqa: F811
    pool: SessionPool,
) -> None:
    threads, each = 6, 5
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(each):
            try:
                done = send(org, pool, f"t{n} m{i}")
            except BaseException as exc:  # reported below
                errors.append(exc)
                return
            with lock:
                ids.append(done.queue_id)

    running = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(60)
    assert not errors, errors
    total = threads * each
    assert len(set(ids)) == total
    expected = sorted(f"t{n} m{i}" for n in range(threads) for i in range(each))
    assert subjects(org, total) == expected
    assert len(folder_messages(org, "bob")) == total
    assert pool.opened < total  # sessions were reused (more than POOL_SIZE at once)
    assert pool.count() <= pool.size


def test_an_idle_session_is_not_reused(
    org: Org,  # noqa: F811
    transport: TransportProcess,  # noqa: F811
) -> None:
    pool = SessionPool(idle_limit=0.0)
    try:
        send(org, pool, "one")
        send(org, pool, "two")
        assert pool.opened == 2 and pool.count() == 1
        assert subjects(org, 2) == ["one", "two"]
    finally:
        pool.close()


def test_lost_after_the_content_is_not_sent_again(
    org: Org,  # noqa: F811
    transport: TransportProcess,  # noqa: F811
    pool: SessionPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send(org, pool, "first")
    [[idle]] = pool._idle.values()
    client = idle.client
    real_send = client.send

    def send_then_drop(data: Any) -> None:
        real_send(data)
        if isinstance(data, bytes) and data.endswith(b"\r\n.\r\n"):
            client.sock.shutdown(socket.SHUT_RDWR)  # gone before the DATA reply

    monkeypatch.setattr(client, "send", send_then_drop)
    with pytest.raises(SubmissionError, match="may or may not have been sent"):
        send(org, pool, "second")
    assert pool.opened == 1  # not sent again on a new session
    assert len(folder_messages(org, "bob")) <= 2


def test_no_pool_opens_a_session_per_message(
    org: Org,  # noqa: F811
    transport: TransportProcess,  # noqa: F811
) -> None:
    cas = org.directory.servers.one("CAS01")
    for subject in ("a", "b"):
        submission.submit(
            org.directory, cas, "alice@lab.net", ["bob@lab.net"], message(subject), pool=None
        )
    assert wait_for(lambda: auths(transport) >= 2)
    assert subjects(org, 2) == ["a", "b"]
