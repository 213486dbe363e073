"""An Exchange server's SMTP credential (`directory.server_credentials`): its computer
account login, a password derived from the organization's secret that any directory
reader makes alike and checks, and what doesn't pass."""

from __future__ import annotations

import pytest

from casarray.directory import Directory, NotFoundError, server_credentials


@pytest.fixture
def backend() -> str:
    return "sqlite"


def test_login_and_password(bj: Directory) -> None:
    credential = server_credentials.credential(bj, "cas01.lab.net")
    assert credential.login == "CAS01$"
    assert credential.password == server_credentials.derive_password(bj.session_secret(), "CAS01")
    assert credential.password not in repr(credential)
    assert len(credential.password) == 43  # 32 bytes, base64url without padding
    other = server_credentials.credential(bj, "CAS02")
    assert other.password != credential.password
    with pytest.raises(NotFoundError):
        server_credentials.credential(bj, "NOSUCH")


def test_check(bj: Directory) -> None:
    password = server_credentials.credential(bj, "CAS01").password
    for login in ("CAS01$", "cas01$", "LAB\\CAS01$"):
        found = server_credentials.check(bj, login, password)
        assert found is not None and found.name == "CAS01"
    assert server_credentials.check(bj, "CAS02$", password) is None  # another server's
    assert server_credentials.check(bj, "CAS01$", password + "x") is None
    assert server_credentials.check(bj, "CAS01", password) is None  # not a computer account
    assert server_credentials.check(bj, "alice@lab.net", password) is None
    ghost = server_credentials.derive_password(bj.session_secret(), "GHOST")
    assert server_credentials.check(bj, "GHOST$", ghost) is None  # no such server
    assert server_credentials.check(bj, "CAS01$", "pässwörd") is None


def test_login_forms() -> None:
    assert server_credentials.server_name_of("LAB\\mbx01$") == "MBX01"
    for login in ("$", "a$b$", "mbx01", "a@b$", ""):
        assert server_credentials.server_name_of(login) is None
    assert server_credentials.login_of("cas03") == "CAS03$"
