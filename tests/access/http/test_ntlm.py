"""NTLM for the HTTP services: the acceptor against pyspnego's own initiator, then
the handshake over a real uvicorn with requests-ntlm (exchangelib's NTLM), raw NTLM
under Negotiate on one keep-alive connection, the lockout shared with Basic, Basic
still working, and a mailbox without an NT hash refused over NTLM only."""

from __future__ import annotations

import base64
import http.client
import logging
from collections.abc import Iterator

import httpx
import pytest
import requests
import spnego
from requests_ntlm import HttpNtlmAuth

from casarray.access.http import AppContext, create_app
from casarray.access.http.ntlm import NtlmAcceptor, NtlmError, Target, decode_token
from casarray.directory import Directory
from casarray.directory.nt_hashes import nt_hash
from casarray.directory.schema import LoginFailureRow
from tests.access.http import Served, build_org
from tests.conftest import PASSWORD

FOLDERS = "/api/v1/folders"  # the JSON API: a resource that needs a login
TARGET = Target.of("lab.net", "CAS01", "CAS01.lab.net")


def handshake(user: str, password: str, **kw: object) -> tuple[NtlmAcceptor, bytes]:
    """An acceptor that sent its challenge, and pyspnego's AUTHENTICATE for it."""
    client = spnego.client(user, password, protocol="ntlm", **kw)
    acceptor = NtlmAcceptor(TARGET)
    challenge = acceptor.challenge(client.step() or b"")
    return acceptor, client.step(challenge) or b""


# -- the acceptor, sans-IO -------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "login", "domain"),
    [
        ("LAB\\alice", "alice", "LAB"),
        ("alice@lab.net", "alice@lab.net", ""),
        ("alice", "alice", ""),
    ],
)
def test_pyspnego_initiator_logs_in(user: str, login: str, domain: str) -> None:
    acceptor, authenticate = handshake(user, PASSWORD)
    who = acceptor.login(authenticate)
    assert (who.user, who.domain) == (login, domain)
    assert acceptor.verify(nt_hash(PASSWORD))


def test_a_wrong_password_does_not_verify_and_a_handshake_verifies_once() -> None:
    acceptor, authenticate = handshake("LAB\\alice", "wrong-password")
    acceptor.login(authenticate)
    assert not acceptor.verify(nt_hash(PASSWORD))
    with pytest.raises(NtlmError):
        acceptor.verify(nt_hash("wrong-password"))  # no second guess on one challenge
    acceptor, authenticate = handshake("LAB\\alice", PASSWORD)
    acceptor.login(authenticate)
    with pytest.raises(NtlmError, match="already used"):
        acceptor.login(authenticate)


def test_the_mic_binds_the_three_messages() -> None:
    acceptor, authenticate = handshake("LAB\\alice", PASSWORD)
    mic_at = 72  # pyspnego sends Version, then the MIC (the client signs the exchange)
    forged = bytearray(authenticate)
    forged[mic_at] ^= 1
    acceptor.login(bytes(forged))
    assert not acceptor.verify(nt_hash(PASSWORD))


def test_ntlmv1_and_junk_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LM_COMPAT_LEVEL", "1")  # pyspnego then sends NTLMv1 and LM
    acceptor, authenticate = handshake("LAB\\alice", PASSWORD)
    with pytest.raises(NtlmError, match="NTLMv2 is required"):
        acceptor.login(authenticate)
    with pytest.raises(NtlmError, match="not a NEGOTIATE"):
        NtlmAcceptor(TARGET).challenge(b"NTLMSSP\x00\x03\x00\x00\x00" + bytes(60))
    with pytest.raises(NtlmError, match="malformed"):
        NtlmAcceptor(TARGET).challenge(b"NTLMSSP\x00\x01\x00\x00\x00")
    with pytest.raises(NtlmError, match="before a challenge"):
        NtlmAcceptor(TARGET).login(authenticate)
    with pytest.raises(NtlmError, match="base64"):
        decode_token("not base64!")
    with pytest.raises(NtlmError, match="longer"):
        decode_token(base64.b64encode(bytes(20_000)).decode())


# -- over HTTP -------------------------------------------------------------------------


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    """alice's password set after NT hashes (she has one); bob's only as an argon2
    hash, as a mailbox made before them."""
    build_org(bj, password_hash)
    bj.mailboxes.set("alice", password=PASSWORD)
    return bj


@pytest.fixture
def served(org: Directory) -> Iterator[Served]:
    app = create_app(AppContext.for_server(org, "CAS01", require_tls=False))
    with Served(app, None) as server:
        yield server


def url(served: Served, path: str = FOLDERS) -> str:
    return f"http://127.0.0.1:{served.port}{path}"


def failures(org: Directory, login: str) -> int:
    with org.store.read() as session:
        row = session.get(LoginFailureRow, "user:" + login)
        return 0 if row is None else len(row.failures.split()) + 5 * row.strikes


def test_a_401_offers_negotiate_ntlm_and_basic(served: Served) -> None:
    answer = httpx.get(url(served))
    assert answer.status_code == 401
    assert answer.headers.get_list("www-authenticate") == [
        "Negotiate",
        "NTLM",
        'Basic realm="CAS01.lab.net"',
    ]


@pytest.mark.parametrize("user", ["LAB\\alice", "alice@lab.net", "alice"])
def test_requests_ntlm_logs_in(served: Served, user: str) -> None:
    with requests.Session() as session:
        answer = session.get(url(served), auth=HttpNtlmAuth(user, PASSWORD))
    assert answer.status_code == 200, answer.text
    assert answer.json()["folders"][0]["name"] == "INBOX"


def test_negotiate_with_raw_ntlm_on_one_keep_alive_connection(served: Served) -> None:
    client = spnego.client("LAB\\alice", PASSWORD, protocol="ntlm")
    connection = http.client.HTTPConnection("127.0.0.1", served.port)
    try:
        token = base64.b64encode(client.step() or b"").decode()
        connection.request("GET", FOLDERS, headers={"Authorization": f"Negotiate {token}"})
        first = connection.getresponse()
        first.read()
        assert first.status == 401
        scheme, _, challenge = first.getheader("WWW-Authenticate", "").partition(" ")
        assert scheme == "Negotiate"
        token = base64.b64encode(client.step(base64.b64decode(challenge)) or b"").decode()
        connection.request("GET", FOLDERS, headers={"Authorization": f"Negotiate {token}"})
        second = connection.getresponse()
        assert second.status == 200, second.read()
        assert b"INBOX" in second.read()
    finally:
        connection.close()


def test_authenticate_on_another_connection_is_refused(served: Served) -> None:
    client = spnego.client("LAB\\alice", PASSWORD, protocol="ntlm")
    negotiate = base64.b64encode(client.step() or b"").decode()
    first = httpx.get(url(served), headers={"Authorization": f"NTLM {negotiate}"})
    challenge = first.headers["www-authenticate"].split(" ", 1)[1]
    authenticate = base64.b64encode(client.step(base64.b64decode(challenge)) or b"").decode()
    second = httpx.get(url(served), headers={"Authorization": f"NTLM {authenticate}"})
    assert second.status_code == 401  # a new connection: no challenge of its own


def test_a_kerberos_negotiate_token_is_refused_with_the_offers(served: Served) -> None:
    spnego_token = base64.b64encode(b"\x60\x28\x06\x06\x2b\x06\x01\x05\x05\x02" + bytes(32))
    answer = httpx.get(url(served), headers={"Authorization": b"Negotiate " + spnego_token})
    assert answer.status_code == 401
    assert "NTLM" in answer.headers.get_list("www-authenticate")


def test_wrong_password_counts_for_the_lockout_shared_with_basic(
    served: Served, org: Directory
) -> None:
    with requests.Session() as session:
        bad = session.get(url(served), auth=HttpNtlmAuth("LAB\\alice", "wrong-password"))
        assert bad.status_code == 401
        assert failures(org, "alice") == 1
        for _ in range(4):  # five in a minute lock the user out
            session.get(url(served), auth=HttpNtlmAuth("LAB\\alice", "wrong-password"))
        locked = session.get(url(served), auth=HttpNtlmAuth("LAB\\alice", PASSWORD))
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert httpx.get(url(served), auth=("alice", PASSWORD)).status_code == 429  # Basic too


def test_a_user_locked_out_over_basic_is_refused_over_ntlm(served: Served) -> None:
    for _ in range(5):
        assert httpx.get(url(served), auth=("alice", "wrong-password")).status_code == 401
    with requests.Session() as session:
        answer = session.get(url(served), auth=HttpNtlmAuth("alice", PASSWORD))
    assert answer.status_code == 429


def test_basic_still_works(served: Served) -> None:
    assert httpx.get(url(served), auth=("alice@lab.net", PASSWORD)).status_code == 200
    assert httpx.get(url(served), auth=("LAB\\alice", PASSWORD)).status_code == 200


def test_no_nt_hash_refuses_ntlm_with_a_log_line_and_basic_works(
    served: Served, org: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="casarray.http")
    with requests.Session() as session:
        answer = session.get(url(served), auth=HttpNtlmAuth("LAB\\bob", PASSWORD))
    assert answer.status_code == 401
    assert "bob@lab.net has no NT hash" in caplog.text
    assert "Set-Mailbox -Password" in caplog.text
    assert failures(org, "bob") == 0  # not a guess: nothing to lock out
    # bob's mailbox is on another site's server; Basic gets past the login to say so
    assert httpx.get(url(served), auth=("bob", PASSWORD)).status_code != 401


def test_a_new_password_ends_the_remembered_ntlm_login(served: Served, org: Directory) -> None:
    with requests.Session() as session:
        assert session.get(url(served), auth=HttpNtlmAuth("alice", PASSWORD)).status_code == 200
        org.mailboxes.set("alice", password="Changed-pass-7")
        assert session.get(url(served), auth=HttpNtlmAuth("alice", PASSWORD)).status_code == 401
        changed = session.get(url(served), auth=HttpNtlmAuth("alice", "Changed-pass-7"))
        assert changed.status_code == 200


def test_nt_hashes_are_not_logged(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with requests.Session() as session:
        session.get(url(served), auth=HttpNtlmAuth("alice", PASSWORD))
        session.get(url(served), auth=HttpNtlmAuth("alice", "wrong-password"))
    assert nt_hash(PASSWORD).hex() not in caplog.text.lower()
    assert PASSWORD not in caplog.text


def test_exchangelib_over_ntlm_reads_the_inbox(served: Served) -> None:
    pytest.importorskip("casarray.access.ews.http")
    from exchangelib import DELEGATE, NTLM, Account, Build, Configuration, Credentials, Version

    config = Configuration(
        service_endpoint=url(served, "/EWS/Exchange.asmx"),
        credentials=Credentials("LAB\\alice", PASSWORD),
        auth_type=NTLM,
        version=Version(build=Build(14, 3)),
    )
    account = Account("alice@lab.net", config=config, autodiscover=False, access_type=DELEGATE)
    assert account.inbox.total_count == 0
    assert [folder.name for folder in account.root.children] == ["Top of Information Store"]
