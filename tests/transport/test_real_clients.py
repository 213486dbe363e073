"""Real SMTP clients against `casarray transport run`: swaks (Debian's) on the protocol's
edges (STARTTLS, AUTH, PIPELINING, 8BITMIME, SIZE, bad sequences) and mutt sending
through submission (587, STARTTLS, then AUTH), the messages read back from the INBOX."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transport.harness import ADDRESS, PASSWORD, Org, TransportProcess, make_org, wait_for

SWAKS = shutil.which("swaks")
MUTT = shutil.which("mutt")


@pytest.fixture
def org(tmp_path: Path, password_hash: str) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)
    org.add_user("alice")
    org.add_user("bob")
    yield org
    org.directory.close()


@pytest.fixture
def transport(org: Org) -> Iterator[TransportProcess]:
    process = TransportProcess(org).start()
    yield process
    process.close()


def swaks(transport: TransportProcess, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    if SWAKS is None:
        pytest.skip("swaks is not installed (Debian's swaks; `make test` installs it)")
    server = f"{ADDRESS}:{transport.ports[port]}"
    return subprocess.run(
        [SWAKS, "--server", server, "--helo", "client.example.net", "--timeout", "20", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def subjects(org: Org, alias: str) -> list[str]:
    found = []
    for message in org.inbox(alias):
        for line in message.split(b"\r\n"):
            if line.lower().startswith(b"subject: "):
                found.append(line[9:].decode())
    return found


def test_swaks_anonymous_to_a_local_mailbox_with_pipelining(
    org: Org, transport: TransportProcess
) -> None:
    done = swaks(
        transport, 25, "--from", "dave@example.net", "--to", "alice@lab.net",
        "--header", "Subject: swaks pipelined", "--pipeline",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "250 2.6.0" in done.stdout  # queued, with its enhanced code
    assert wait_for(lambda: "swaks pipelined" in subjects(org, "alice"))


def test_swaks_submission_needs_starttls_before_auth(org: Org, transport: TransportProcess) -> None:
    plain = swaks(
        transport, 587, "--from", "alice@lab.net", "--to", "someone@example.com",
        "--auth", "PLAIN", "--auth-user", "alice@lab.net", "--auth-password", PASSWORD,
    )  # fmt: skip
    assert plain.returncode != 0  # AUTH is not offered before STARTTLS
    assert "AUTH" not in [line.split()[-1] for line in plain.stdout.splitlines() if "250-" in line]
    done = swaks(
        transport, 587, "--tls", "--from", "alice@lab.net", "--to", "bob@lab.net",
        "--auth", "PLAIN", "--auth-user", "alice@lab.net", "--auth-password", PASSWORD,
        "--header", "Subject: swaks submitted",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "235 2.7.0" in done.stdout
    assert wait_for(lambda: "swaks submitted" in subjects(org, "bob"))
    wrong = swaks(
        transport, 587, "--tls", "--from", "alice@lab.net", "--to", "bob@lab.net",
        "--auth", "LOGIN", "--auth-user", "alice@lab.net", "--auth-password", "wrong",
    )  # fmt: skip
    assert wrong.returncode != 0 and "535 5.7.8" in wrong.stdout


def test_swaks_relay_is_refused_to_anonymous_clients(transport: TransportProcess) -> None:
    done = swaks(transport, 25, "--from", "dave@example.net", "--to", "eve@example.com")
    assert done.returncode != 0
    assert "550 5.7.54" in done.stdout or "550 5.7.1" in done.stdout, done.stdout


def test_swaks_bad_sequences_get_5xx_and_the_session_goes_on(transport: TransportProcess) -> None:
    # RCPT before MAIL, then a proper transaction in the same session
    done = swaks(
        transport, 25, "--quit-after", "RCPT", "--from", "dave@example.net",
        "--to", "nobody-here@lab.net",
    )  # fmt: skip
    assert "550 5.1.1" in done.stdout, done.stdout  # an unknown local recipient


def test_swaks_8bitmime_body_arrives_as_sent(org: Org, transport: TransportProcess) -> None:
    done = swaks(
        transport, 25, "--from", "dave@example.net", "--to", "alice@lab.net",
        "--header", "Subject: 8bit", "--header", "Content-Type: text/plain; charset=utf-8",
        "--header", "Content-Transfer-Encoding: 8bit", "--body", "Grüße aus Beijing",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert "8BITMIME" in done.stdout
    assert wait_for(lambda: any("Grüße".encode() in m for m in org.inbox("alice")))


def test_mutt_sends_through_submission(
    org: Org, transport: TransportProcess, tmp_path: Path
) -> None:
    if MUTT is None:
        pytest.skip("mutt is not installed (Debian's mutt; `make test` installs it)")
    certificate = org.home / "transport" / "mbx01" / "smtp.pem"
    rc = tmp_path / "muttrc"
    rc.write_text(
        f'set smtp_url="smtp://alice%40lab.net@{ADDRESS}:{transport.ports[587]}/"\n'
        f'set smtp_pass="{PASSWORD}"\n'
        'set from="alice@lab.net"\n'
        "set ssl_starttls=yes\n"
        "set ssl_force_tls=yes\n"
        f'set ssl_ca_certificates_file="{certificate}"\n'
        f'set certificate_file="{tmp_path / "mutt-certs"}"\n'
        "set ssl_verify_host=no\n"
        "set record=\n"
        "set use_from=yes\n"
    )
    body = tmp_path / "body.txt"
    body.write_text("Sent with mutt through submission.\n")
    with body.open() as stdin:
        done = subprocess.run(
            [MUTT, "-n", "-F", str(rc), "-s", "mutt submitted", "bob@lab.net"],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "dumb"},
        )
    assert done.returncode == 0, done.stdout + done.stderr + transport.logs()[-3000:]
    assert wait_for(lambda: "mutt submitted" in subjects(org, "bob"))
    message = next(m for m in org.inbox("bob") if b"mutt submitted" in m)
    assert message.startswith(b"Return-Path: <alice@lab.net>\r\n")
    assert b"with ESMTPSA" in message  # the Received header: TLS and an authenticated login
