"""The receive service in this process (aiosmtpd on a free port), driven with smtplib:
EHLO's features, anonymous mail to an accepted domain, relay refused, AUTH only after
STARTTLS on the submission connector, SIZE, malformed commands, recipient limits, the
loop check, and what reaches the queue."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from casarray.transport import tls
from casarray.transport.config import (
    ANONYMOUS_USERS,
    AUTHORITATIVE,
    BASIC_AUTH,
    BASIC_AUTH_REQUIRE_TLS,
    EXCHANGE_USERS,
    TLS,
    Connector,
    Domain,
    TransportConfig,
)
from casarray.transport.mailboxes import AuthOutcome
from casarray.transport.policy import SessionGuard
from casarray.transport.queue import LOCAL, RELAY, SqliteQueue
from casarray.transport.receive import ReceiveContext, bind, serve

PASSWORD = "P@ssw0rd-lab"

DEFAULT = Connector(
    name="Default MBX01",
    bindings=(("0.0.0.0", 25),),
    auth_mechanism=frozenset({TLS, BASIC_AUTH, BASIC_AUTH_REQUIRE_TLS}),
    permission_groups=frozenset({ANONYMOUS_USERS, EXCHANGE_USERS}),
    max_message_size=2000,
    max_recipients_per_message=3,
)
CLIENT = Connector(
    name="Client MBX01",
    bindings=(("0.0.0.0", 587),),
    auth_mechanism=frozenset({TLS, BASIC_AUTH, BASIC_AUTH_REQUIRE_TLS}),
    permission_groups=frozenset({EXCHANGE_USERS}),
    banner="220 Welcome to the lab's submission service",
)


@dataclass
class FakeUsers:
    mailboxes: set[str] = field(default_factory=lambda: {"alice@lab.net", "bob@lab.net"})
    throttled: bool = False
    attempts: int = 0

    def exists(self, address: str) -> bool | None:
        return address.lower() in self.mailboxes

    def known(self, address: str) -> bool:
        return False  # every recipient looked up in a worker thread, as at first sight

    def authenticate(self, login: str, password: str, client_address: str) -> AuthOutcome:
        self.attempts += 1
        if self.throttled:
            return AuthOutcome(None, 30.0)
        if login in {"alice", "alice@lab.net"} and password == PASSWORD:
            return AuthOutcome("alice@lab.net")
        return AuthOutcome(None)


@dataclass
class Harness:
    queue: SqliteQueue
    users: FakeUsers
    context: ReceiveContext
    ports: dict[int, int]
    queued: list[str]
    cafile: Path

    def smtp(self, port: int = 25) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.ports[port], timeout=10)

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cafile))
        context.check_hostname = False
        return context


@pytest.fixture
async def harness(tmp_path: Path, casarray_home: Path) -> AsyncIterator[Harness]:
    files = tls.ensure_fallback("MBX01", ["mbx01.lab.net"])
    smtp_tls = tls.SmtpTls("MBX01", "mbx01.lab.net", files)
    queue = SqliteQueue(tmp_path / "queue.db")
    users = FakeUsers()
    queued: list[str] = []
    context = ReceiveContext(
        config=TransportConfig(
            server="MBX01",
            fqdn="mbx01.lab.net",
            domains=(Domain("lab.net", AUTHORITATIVE),),
            connectors=(DEFAULT, CLIENT),
        ),
        queue=queue,
        recipients=users,
        authenticator=users,
        tls=smtp_tls.context,
        on_queued=queued.append,
        guard_factory=lambda: SessionGuard(
            free_failures=1, delay=0.05, auth_limit=3, recipient_limit=5
        ),
    )
    servers = []
    ports = {}
    for port in (25, 587):
        sock = bind("127.0.0.1", 0)
        ports[port] = sock.getsockname()[1]
        servers.append(await serve(context, sock, port))
    yield Harness(queue, users, context, ports, queued, files.certificate)
    for server in servers:
        server.close()
    queue.close()


async def run(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


MESSAGE = b"From: x@far.net\r\nTo: alice@lab.net\r\nSubject: hello\r\n\r\nHi Alice.\r\n"


async def test_ehlo_offers_the_extensions(harness: Harness) -> None:
    def talk() -> tuple[int, bytes, int, bytes]:
        with harness.smtp() as client:
            code, text = client.ehlo("client.far.net")
            client.starttls(context=harness.tls_context())
            code2, text2 = client.ehlo("client.far.net")
            return code, text, code2, text2

    code, text, _, text2 = await run(talk)
    assert code == 250
    lines = text.decode().splitlines()
    assert lines[0] == "mbx01.lab.net"
    for feature in (
        "SIZE 2000",
        "8BITMIME",
        "SMTPUTF8",
        "STARTTLS",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
    ):
        assert feature in lines, lines
    assert not any(line.startswith("AUTH") for line in lines)  # only after STARTTLS
    after = text2.decode().splitlines()
    assert "AUTH LOGIN PLAIN" in after and "STARTTLS" not in after


async def test_anonymous_mail_to_an_accepted_domain_is_queued(harness: Harness) -> None:
    def talk() -> tuple[Any, ...]:
        with harness.smtp() as client:
            client.ehlo("client.far.net")
            mail = client.mail("x@far.net")
            rcpt = client.rcpt("alice@lab.net")
            data = client.data(MESSAGE)
            return mail, rcpt, data

    mail, rcpt, data = await run(talk)
    assert mail == (250, b"2.1.0 Sender OK")
    assert rcpt == (250, b"2.1.5 Recipient OK")
    assert data[0] == 250
    text = data[1].decode()
    assert text.startswith("2.6.0 <") and text.endswith("> Queued mail for delivery")
    queue_id = text[len("2.6.0 <") : text.index(">")]
    assert harness.queued == [queue_id]
    message = harness.queue.message(queue_id)
    assert message is not None and message.sender == "x@far.net"
    assert [(r.address, r.route) for r in message.recipients] == [("alice@lab.net", LOCAL)]
    stored = harness.queue.message_data(queue_id)
    assert stored.startswith(b"Received: from client.far.net (127.0.0.1)\r\n")
    assert f"with ESMTP id {queue_id}".encode() in stored
    assert stored.endswith(MESSAGE)
    assert message.hop_count == 1


async def test_unknown_user_relay_and_null_sender(harness: Harness) -> None:
    def talk() -> tuple[Any, ...]:
        with harness.smtp() as client:
            client.ehlo("client.far.net")
            mail = client.mail("<>")
            unknown = client.rcpt("nobody@lab.net")
            relay = client.rcpt("bob@far.net")
            ok = client.rcpt("bob@lab.net")
            data = client.data(b"Subject: bounce\r\n\r\nx\r\n")
            return mail, unknown, relay, ok, data

    mail, unknown, relay, ok, data = await run(talk)
    assert mail[0] == 250
    assert unknown == (550, b"5.1.1 User unknown")
    assert relay == (550, b"5.7.1 Unable to relay")
    assert ok[0] == 250 and data[0] == 250
    [message] = harness.queue.messages()
    assert message.sender == "" and [r.address for r in message.recipients] == ["bob@lab.net"]


async def test_size_over_the_limit_is_refused_at_mail_from(harness: Harness) -> None:
    def talk() -> tuple[Any, ...]:
        with harness.smtp() as client:
            client.ehlo("c")
            too_big = client.docmd("MAIL FROM:<x@far.net> SIZE=5000")
            fits = client.docmd("MAIL FROM:<x@far.net> SIZE=100")
            client.rcpt("alice@lab.net")
            data = client.data(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 40)
            noop = client.noop()
            return too_big, fits, data, noop

    too_big, fits, data, noop = await run(talk)
    assert too_big[0] == 552 and too_big[1].startswith(b"5.3.4")
    assert fits[0] == 250
    assert data[0] == 552 and data[1].startswith(b"5.3.4")  # more than SIZE said
    assert noop[0] == 250  # the session goes on
    assert harness.queue.messages() == []


async def test_data_is_read_to_its_lone_dot_exactly(harness: Harness) -> None:
    """DATA's end is a line holding one dot; a line that only ends in a dot, a dot-stuffed
    line, an empty message and a message larger than the stream's 1 KB reads all come
    through byte for byte; a line over 1,000 octets gets 500 and the session goes on."""
    roomy = dataclasses.replace(DEFAULT, max_message_size=1_000_000)
    harness.context.config = dataclasses.replace(harness.context.config, connectors=(roomy, CLIENT))
    big = b"".join(b"line %05d ends with a dot.\r\n" % i for i in range(4000))  # ~120 KB
    cases = {
        "dots": b"Subject: dots\r\n\r\nEnd of sentence.\r\n.\r\n..\r\n.x\r\nlast.\r\n",
        "empty": b"",
        "big": b"Subject: big\r\n\r\n" + big,
    }

    def send(client: smtplib.SMTP, body: bytes) -> tuple[int, bytes]:
        client.mail("x@far.net")
        client.rcpt("alice@lab.net")
        # smtplib dot-stuffs and adds the final CRLF and "." itself
        return client.data(body)

    def talk() -> dict[str, Any]:
        with harness.smtp() as client:
            client.ehlo("c")
            out: dict[str, Any] = {name: send(client, body) for name, body in cases.items()}
            client.mail("x@far.net")
            client.rcpt("alice@lab.net")
            client.putcmd("DATA")
            client.getreply()
            client.send(b"Subject: long\r\n\r\n" + b"z" * 1200 + b"\r\n.\r\n")
            out["long"] = client.getreply()
            out["noop"] = client.noop()
            return out

    out = await run(talk)
    assert out["long"][0] == 500 and out["noop"][0] == 250, out
    for name, body in cases.items():
        assert out[name][0] == 250, (name, out[name])
        queue_id = out[name][1].decode().split("<")[1].split(">")[0]
        stored = harness.queue.message_data(queue_id)
        # what smtplib sent before the final dot (it ends every message with a CRLF)
        expected = body if body.endswith(b"\r\n") else body + b"\r\n"
        assert stored.startswith(b"Received: from c ") and b"\tfor <alice@lab.net>" in stored
        assert stored.split(b"\r\n", 3)[3] == expected, name  # after our 3-line Received


async def test_malformed_commands_get_5xx_and_the_session_goes_on(harness: Harness) -> None:
    def talk() -> list[tuple[int, bytes]]:
        with harness.smtp() as client:
            replies = [client.docmd("MAIL FROM:<x@far.net>")]  # before EHLO
            client.ehlo("c")
            replies.append(client.docmd("RCPT TO:<alice@lab.net>"))  # before MAIL
            replies.append(client.docmd("MAIL FROM:<<<bad"))
            replies.append(client.docmd("MAIL FROM:nobody"))
            replies.append(client.docmd("MAIL FROM:a@"))  # the email parser's IndexError
            replies.append(client.docmd('MAIL FROM:"'))
            replies.append(client.docmd("FOO"))
            replies.append(client.docmd("DATA"))
            replies.append(client.docmd("MAIL FROM:<x@far.net> BOGUS=1"))
            replies.append(client.docmd("EHLO"))
            replies.append(client.noop())
            return replies

    replies = await run(talk)
    *errors, noop = replies
    for code, text in errors:
        assert 500 <= code < 600, (code, text)
        assert text[:1] == b"5" and text[1:2] == b"." and text[3:4] in (b".", b"")
    assert noop == (250, b"2.0.0 OK")


async def test_recipient_limit(harness: Harness) -> None:
    def talk() -> list[int]:
        with harness.smtp() as client:
            client.ehlo("c")
            client.mail("x@far.net")
            codes = [client.rcpt(r)[0] for r in ["alice@lab.net", "bob@lab.net", "alice@lab.net"]]
            over = client.rcpt("bob@lab.net")
            return [*codes, over[0], int(over[1][:1])]

    assert await run(talk) == [250, 250, 250, 452, 4]


async def test_a_flood_of_refused_recipients_closes_the_session(harness: Harness) -> None:
    def talk() -> list[int]:
        codes = []
        with harness.smtp() as client:
            client.ehlo("c")
            client.mail("x@far.net")
            try:
                for n in range(10):
                    codes.append(client.rcpt(f"nobody{n}@lab.net")[0])
            except smtplib.SMTPServerDisconnected:
                codes.append(-1)
        return codes

    codes = await run(talk)
    assert codes[:4] == [550, 550, 550, 550] and codes[4] == 421


async def test_auth_only_after_starttls_on_submission(harness: Harness) -> None:
    def talk() -> tuple[Any, ...]:
        with harness.smtp(587) as client:
            banner = client.ehlo_resp
            client.ehlo("laptop")
            clear = client.docmd(
                "AUTH PLAIN " + base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
            )
            anonymous = client.docmd("MAIL FROM:<alice@lab.net>")
            client.docmd("RSET")
            client.starttls(context=harness.tls_context())
            client.ehlo("laptop")
            try:
                client.login("alice", "wrong")
            except smtplib.SMTPAuthenticationError as exc:
                wrong = (exc.smtp_code, exc.smtp_error)
            client.login("alice", PASSWORD)
            client.mail("alice@lab.net")
            relay = client.rcpt("bob@far.net")
            local = client.rcpt("bob@lab.net")
            data = client.data(b"Subject: out\r\n\r\nhi\r\n")
            return banner, clear, anonymous, wrong, relay, local, data

    _, clear, anonymous, wrong, relay, local, data = await run(talk)
    assert clear[0] == 538 and clear[1].startswith(b"5.7.11")
    assert anonymous[0] == 250  # MAIL is taken; recipients need AUTH on this connector
    assert wrong[0] == 535 and wrong[1].startswith(b"5.7.8")
    assert relay[0] == 250 and local[0] == 250 and data[0] == 250
    [message] = harness.queue.messages()
    assert message.authenticated_as == "alice@lab.net"
    assert [(r.address, r.route, r.next_hop) for r in message.recipients] == [
        ("bob@far.net", RELAY, "far.net"),
        ("bob@lab.net", LOCAL, ""),
    ]
    assert b"with ESMTPSA id" in harness.queue.message_data(message.message_id)


async def test_submission_banner_and_anonymous_relay_refused(harness: Harness) -> None:
    def talk() -> tuple[Any, ...]:
        client = smtplib.SMTP(timeout=10)
        greeting = client.connect("127.0.0.1", harness.ports[587])
        client.ehlo("laptop")
        client.mail("x@far.net")
        relay = client.rcpt("bob@far.net")
        client.quit()
        return greeting, relay

    greeting, relay = await run(talk)
    assert greeting == (220, b"Welcome to the lab's submission service")
    assert relay[0] == 550


async def test_bad_auth_attempts_are_throttled(harness: Harness) -> None:
    wrong = "AUTH PLAIN " + base64.b64encode(b"\0alice\0wrong").decode()

    def talk() -> list[Any]:
        results: list[Any] = []
        with harness.smtp(587) as client:
            client.starttls(context=harness.tls_context())
            client.ehlo("laptop")
            for _ in range(4):
                try:
                    results.append(client.docmd(wrong)[0])
                except smtplib.SMTPServerDisconnected:
                    results.append("closed")
                    break
        return results

    assert await run(talk) == [535, 535, 421, "closed"]
    harness.users.throttled = True

    def throttled() -> int:
        with harness.smtp(587) as client:
            client.starttls(context=harness.tls_context())
            client.ehlo("laptop")
            try:
                client.login("alice", PASSWORD)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code
        return 0

    assert await run(throttled) == 454


async def test_pipelined_commands(harness: Harness) -> None:
    def talk() -> bytes:
        import socket

        with socket.create_connection(("127.0.0.1", harness.ports[25]), timeout=10) as sock:
            sock.recv(1000)
            sock.sendall(b"EHLO c\r\n")
            buf = b""
            while b"250 HELP" not in buf:
                buf += sock.recv(1000)
            sock.sendall(
                b"MAIL FROM:<x@far.net>\r\nRCPT TO:<alice@lab.net>\r\nRCPT TO:<nobody@lab.net>\r\n"
                b"DATA\r\n"
            )
            buf = b""
            while b"354" not in buf:
                buf += sock.recv(1000)
            sock.sendall(b"Subject: p\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
            while b"221" not in buf:
                chunk = sock.recv(1000)
                if not chunk:
                    break
                buf += chunk
            return buf

    answer = await run(talk)
    codes = [line[:3] for line in answer.split(b"\r\n") if line]
    assert codes == [b"250", b"250", b"550", b"354", b"250", b"221"]
    [message] = harness.queue.messages()
    assert harness.queue.message_data(message.message_id).endswith(b"Subject: p\r\n\r\n.dot\r\n")


async def test_a_loop_is_refused(harness: Harness) -> None:
    looped = b"".join(b"Received: from a by b; x\r\n" for _ in range(30)) + b"\r\nbody\r\n"

    def talk() -> tuple[int, bytes]:
        with harness.smtp() as client:
            client.ehlo("c")
            client.mail("x@far.net")
            client.rcpt("alice@lab.net")
            return client.data(looped)

    assert await run(talk) == (554, b"5.4.6 Routing loop detected: too many Received headers")
    assert harness.queue.messages() == []


async def test_8bitmime_and_smtputf8(harness: Harness) -> None:
    body = "Subject: Grüße\r\n\r\nDas Büro ist zu.\r\n".encode()

    def talk() -> dict[str, tuple[int, bytes]]:
        with harness.smtp() as client:
            client.ehlo("c")
            return client.sendmail(
                "jörg@far.net", ["alice@lab.net"], body, mail_options=["BODY=8BITMIME", "SMTPUTF8"]
            )

    assert await run(talk) == {}
    [message] = harness.queue.messages()
    assert message.sender == "jörg@far.net"
    assert harness.queue.message_data(message.message_id).endswith(body)


async def test_proxy_protocol_from_a_trusted_balancer(harness: Harness) -> None:
    """The balancer (here 127.0.0.1, trusted for port 25) names the client 10.1.2.7 in
    its PROXY header: that client is served (the relay connector of its range) and is
    the one in the Received header."""
    relay = Connector(
        name="Relay MBX01",
        bindings=(("0.0.0.0", 25),),
        remote_ip_ranges=("10.1.2.0/24",),
        permission_groups=frozenset({ANONYMOUS_USERS}),
    )
    config = harness.context.config
    harness.context.config = TransportConfig(
        server=config.server,
        fqdn=config.fqdn,
        domains=config.domains,
        connectors=(*config.connectors, relay),
        proxy_sources={25: frozenset({"127.0.0.1"})},
    )

    def talk() -> list[bytes]:
        import socket

        answers = []
        with socket.create_connection(("127.0.0.1", harness.ports[25]), timeout=10) as sock:
            sock.sendall(b"PROXY TCP4 10.1.2.7 127.0.0.1 5555 25\r\n")
            file = sock.makefile("rb")
            answers.append(file.readline())
            for line in (
                b"HELO c",
                b"MAIL FROM:<x@far.net>",
                b"RCPT TO:<bob@far.net>",
                b"DATA",
                b"Subject: via a balancer\r\n\r\nx\r\n.",
                b"QUIT",
            ):
                sock.sendall(line + b"\r\n")
                answers.append(file.readline())
        return answers

    answers = await run(talk)
    assert [a[:3] for a in answers] == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
    [message] = harness.queue.messages()
    assert message.client_address == "10.1.2.7"
    assert harness.queue.message_data(message.message_id).startswith(b"Received: from c (10.1.2.7)")

    def without_header() -> bytes:
        import socket

        with socket.create_connection(("127.0.0.1", harness.ports[25]), timeout=10) as sock:
            sock.sendall(b"EHLO c\r\n")
            return sock.recv(100)

    assert await run(without_header) == b""  # closed: a trusted source must send PROXY


async def test_the_proxied_client_stays_the_client_after_starttls(harness: Harness) -> None:
    """aiosmtpd starts a new session after STARTTLS: the client the balancer's PROXY
    header named is still the one in the Received header."""
    config = harness.context.config
    harness.context.config = dataclasses.replace(
        config, proxy_sources={25: frozenset({"127.0.0.1"})}
    )

    def talk() -> tuple[int, bytes]:
        import socket

        sock = socket.create_connection(("127.0.0.1", harness.ports[25]), timeout=10)
        sock.sendall(b"PROXY TCP4 10.1.2.8 127.0.0.1 5555 25\r\n")
        client = smtplib.SMTP(timeout=10)
        client._host = "mbx01.lab.net"  # type: ignore[attr-defined]
        client.sock = sock
        client.file = sock.makefile("rb")
        client.getreply()
        client.ehlo("c")
        client.starttls(context=harness.tls_context())
        client.ehlo("c")
        client.mail("x@far.net")
        client.rcpt("alice@lab.net")
        answer = client.data(b"Subject: after STARTTLS\r\n\r\nx\r\n")
        client.quit()
        return answer

    assert (await run(talk))[0] == 250
    [message] = harness.queue.messages()
    assert message.client_address == "10.1.2.8"
    assert harness.queue.message_data(message.message_id).startswith(b"Received: from c (10.1.2.8)")
