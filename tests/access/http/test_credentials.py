"""Verified Basic credentials are remembered briefly (argon2 once, not per request),
never a failure, and forgotten when the directory changes (a new password) or when
their time is up."""

from __future__ import annotations

from typing import Any

import pytest

from casarray.access.http.credentials import CredentialCache
from casarray.directory import Directory
from tests.access.http import build_org, client
from tests.conftest import PASSWORD

CONFIG = "/mail/config-v1.1.xml"  # any route would do; the JSON API needs Basic
FOLDERS = "/api/v1/folders"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    return build_org(bj, password_hash)


@pytest.fixture
def checks(org: Directory, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check against the directory (argon2), by login."""
    seen: list[str] = []
    original = org.mailboxes.authenticate

    def authenticate(login: str, password: str) -> Any:
        seen.append(login)
        return original(login, password)

    monkeypatch.setattr(org.mailboxes, "authenticate", authenticate)
    return seen


def test_a_verified_login_is_checked_once(org: Directory, checks: list[str]) -> None:
    with client(org, "CAS01") as c:
        for _ in range(5):
            assert c.get(FOLDERS, auth=("alice@lab.net", PASSWORD)).status_code == 200
        assert checks == ["alice@lab.net"]
        # a wrong password is checked every time, never remembered
        for _ in range(2):
            assert c.get(FOLDERS, auth=("alice@lab.net", "wrong")).status_code == 401
        assert checks == ["alice@lab.net"] * 3


def test_a_new_password_ends_the_remembered_one(org: Directory, checks: list[str]) -> None:
    with client(org, "CAS01") as c:
        assert c.get(FOLDERS, auth=("alice@lab.net", PASSWORD)).status_code == 200
        org.mailboxes.set("alice", password="N3w-passw0rd!")
        assert c.get(FOLDERS, auth=("alice@lab.net", PASSWORD)).status_code == 401
        assert c.get(FOLDERS, auth=("alice@lab.net", "N3w-passw0rd!")).status_code == 200


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_are_bounded() -> None:
    clock = Clock()
    cache = CredentialCache(ttl=60, max_entries=2, clock=clock)
    mailbox: Any = object()
    cache.put("Alice", "pw", mailbox)
    assert cache.get("alice", "pw") is mailbox  # logins compare case-insensitively
    assert cache.get("alice", "PW") is None  # passwords don't
    clock.now = 61
    assert cache.get("alice", "pw") is None
    for name in ("a", "b", "c"):
        cache.put(name, "pw", mailbox)
    assert len(cache) == 2 and cache.get("a", "pw") is None
    cache.topology_changed(1)
    assert len(cache) == 2  # the first version seen: nothing to compare with
    cache.topology_changed(2)
    assert len(cache) == 0
    assert CredentialCache(ttl=0).get("a", "pw") is None


def test_requests_at_once_share_one_password_check(org: Directory, checks: list[str]) -> None:
    import asyncio

    import httpx

    from casarray.access.http import AppContext, create_app

    app = create_app(AppContext.for_server(org, "CAS01"))

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://cas01") as c:
            good = [c.get(FOLDERS, auth=("alice@lab.net", PASSWORD)) for _ in range(6)]
            bad = [c.get(FOLDERS, auth=("alice@lab.net", "wrong")) for _ in range(3)]
            answers = await asyncio.gather(*good, *bad)
        return [a.status_code for a in answers]

    assert asyncio.run(main()) == [200] * 6 + [401] * 3
    assert checks == ["alice@lab.net", "alice@lab.net"]  # one check per password


def test_autodiscover_answers_are_kept_until_the_directory_changes(
    org: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xml.etree.ElementTree as ET

    from casarray.access.http import autodiscover
    from tests.access.http.test_autodiscover import O, outlook_request, protocols

    lookups: list[str] = []
    original = autodiscover.lookup

    def lookup(context: Any, mailbox: Any, request: Any) -> Any:
        lookups.append(mailbox.alias)
        return original(context, mailbox, request)

    monkeypatch.setattr(autodiscover, "lookup", lookup)

    def server(c: Any) -> str | None:
        answer = c.post(
            "/autodiscover/autodiscover.xml",
            content=outlook_request(),
            auth=("alice@lab.net", PASSWORD),
        )
        return protocols(ET.fromstring(answer.content))["EXCH"].findtext(f"{O}Server")

    with client(org, "CAS01") as c:
        assert [server(c) for _ in range(3)] == ["bj-cas.lab.net"] * 3
        assert lookups == ["alice"]
        org.databases.set("DB01", rpc_client_access_server="CAS02.lab.net")
        assert server(c) == "CAS02.lab.net"
        assert lookups == ["alice", "alice"]
