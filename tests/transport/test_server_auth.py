"""Exchange servers authenticating to a real Hub Transport process (`casarray transport
run MBX01`) with their computer account (`directory.server_credentials`): on the
Default connector (ExchangeServers, ExchangeServer) after STARTTLS the right
credential logs in and may relay; a wrong secret, a login before STARTTLS, and the
right credential on the Client connector (no ExchangeServers) all fail; an anonymous
client gains nothing."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.directory import server_credentials
from tests.transport.harness import Org, TransportProcess, make_org

pytestmark = pytest.mark.integration


@pytest.fixture
def org(tmp_path: Path, password_hash: str) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)
    org.add_user("bob")
    yield org
    org.directory.close()


@pytest.fixture
def transport(org: Org) -> Iterator[TransportProcess]:
    process = TransportProcess(org).start()
    yield process
    process.close()


def test_a_server_logs_in_on_default_after_starttls(org: Org, transport: TransportProcess) -> None:
    credential = server_credentials.credential(org.directory, "CAS01")
    assert credential.login == "CAS01$"
    with transport.smtp() as client:
        client.ehlo("cas01.lab.net")
        assert not client.has_extn("auth")  # only after STARTTLS
        code, text = client.docmd("AUTH", "PLAIN AENBUzAxJAB4")
        assert code == 538, text
        client.starttls(context=transport.tls_context())
        client.ehlo("cas01.lab.net")
        assert "PLAIN" in client.esmtp_features["auth"]
        client.login(credential.login, credential.password)
        client.mail("anyone@elsewhere.example")  # any sender
        code, text = client.rcpt("someone@far.net")
        assert text[:5] != b"5.7.1"  # relay granted (no route out here: 5.4.4)
        assert client.rcpt("bob@lab.net")[0] == 250


def test_wrong_secrets_and_connectors_fail(org: Org, transport: TransportProcess) -> None:
    credential = server_credentials.credential(org.directory, "CAS01")
    other = server_credentials.derive_password(b"not the organization's secret", "CAS01")
    with transport.smtp() as client:
        client.starttls(context=transport.tls_context())
        client.ehlo("attacker.example")
        client.esmtp_features["auth"] = "PLAIN"  # one try per login (5 close the session)
        for login, password in (
            ("CAS01$", other),
            ("CAS01$", credential.password[:-1]),
            ("NOSUCH$", server_credentials.derive_password(b"x", "NOSUCH")),
        ):
            with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
                client.login(login, password)
            assert failed.value.smtp_code == 535
    with transport.smtp() as client:  # anonymous: no relay
        client.ehlo("attacker.example")
        client.mail("x@far.net")
        code, text = client.rcpt("someone@far.net")
        assert (code, text[:5]) == (550, b"5.7.1")
    with transport.smtp(587) as client:  # Client MBX01: ExchangeUsers only
        client.starttls(context=transport.tls_context())
        client.ehlo("cas01.lab.net")
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login(credential.login, credential.password)
        assert failed.value.smtp_code == 535
