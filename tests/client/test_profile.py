"""Profiles on disk: where they are kept, the default one, a saved password's mode,
and the errors for a missing, damaged or misnamed profile."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from casarray.client.autodiscover import AutodiscoverResult, MailProtocol, Settings
from casarray.client.errors import ProfileError
from casarray.client.profile import Profile, ProfileStore, check_address, profiles_folder


def result(server: str = "bj-cas.lab.net", imap: bool = True) -> AutodiscoverResult:
    settings = Settings(
        display_name="Alice Wang",
        legacy_dn="/o=Lab/cn=Recipients/cn=alice",
        address="alice@lab.net",
        deployment_id="d",
        server=server,
        server_dn=f"/o=Lab/cn=Servers/cn={server}",
        mdb_dn="/o=Lab/cn=Servers/cn=MBX01/cn=Microsoft Private MDB",
        server_version="738180DA",
        imap=MailProtocol(server, 10993, "SSL", "alice@lab.net") if imap else None,
        smtp=MailProtocol(server, 10587, "TLS", "alice@lab.net"),
        owa_url=f"https://{server}/owa/",
    )
    return AutodiscoverResult(settings, "https://autodiscover.lab.net/x", "autodiscover.lab.net")


def test_profiles_live_under_casarray_home(casarray_home: Path) -> None:
    assert profiles_folder() == casarray_home / "client" / "profiles"


def test_a_profile_round_trips_and_becomes_the_default(casarray_home: Path) -> None:
    store = ProfileStore()
    profile = Profile.from_autodiscover(result(), dns="127.77.0.53:10053", port_offset=10000)
    path = store.save(profile, make_default=True)
    assert path == casarray_home / "client" / "profiles" / "alice@lab.net.json"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = store.load()
    assert loaded == profile
    assert (loaded.server, loaded.imap_port, loaded.dns) == (
        "bj-cas.lab.net", 10993, "127.77.0.53:10053",
    )  # fmt: skip
    assert store.load("ALICE@lab.net") == profile
    assert "password" not in path.read_text().lower()


def test_a_referral_moves_the_server_and_autodiscover_refreshes_it() -> None:
    profile = Profile.from_autodiscover(result())
    moved = profile.moved_to("CAS02.lab.net")
    assert (moved.server, moved.smtp_server, moved.server_dn) == (
        "CAS02.lab.net", "CAS02.lab.net", profile.server_dn,
    )  # fmt: skip
    refreshed = moved.refreshed(result("CAS02.lab.net"))
    assert refreshed.server_dn == "/o=Lab/cn=Servers/cn=CAS02.lab.net"
    assert refreshed.created == profile.created


def test_the_default_profile() -> None:
    store = ProfileStore()
    with pytest.raises(ProfileError, match="there is no client profile; make one"):
        store.load()
    alice = Profile.from_autodiscover(result())
    store.save(alice)
    assert store.default() == "alice@lab.net"  # the only one
    bob = Profile.from_autodiscover(result(), address="bob@lab.net")
    store.save(bob)
    with pytest.raises(ProfileError, match=r"several profiles \(alice@lab.net, bob@lab.net\)"):
        store.load()
    store.save(bob, make_default=True)
    assert store.load().address == "bob@lab.net"


def test_a_saved_password_is_private() -> None:
    store = ProfileStore()
    assert store.saved_password("alice@lab.net") is None
    path = store.save_password("alice@lab.net", "P@ss w0rd")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.saved_password("alice@lab.net") == "P@ss w0rd"
    assert store.forget_password("alice@lab.net")
    assert not store.forget_password("alice@lab.net")
    assert store.saved_password("alice@lab.net") is None


def test_errors_name_what_is_wrong() -> None:
    store = ProfileStore()
    with pytest.raises(ProfileError, match=r"there is no profile for carol@lab\.net; make one"):
        store.load("carol@lab.net")
    for bad in ("alice", "../x@lab.net", "a@b/c", "a b@lab.net", "@lab.net"):
        with pytest.raises(ProfileError, match="is not an e-mail address"):
            check_address(bad)
    store.folder.mkdir(parents=True)
    damaged = store.path("alice@lab.net")
    damaged.write_text("{not json")
    with pytest.raises(ProfileError, match="can't be read"):
        store.load("alice@lab.net")
    damaged.write_text(json.dumps({"format": 1, "address": "alice@lab.net"}))
    with pytest.raises(ProfileError, match="is damaged"):
        store.load("alice@lab.net")
    damaged.write_text(json.dumps({"server": "x"}))
    with pytest.raises(ProfileError, match="is not a casarray client profile"):
        store.load("alice@lab.net")
    with pytest.raises(ProfileError, match="no IMAP settings"):
        Profile.from_autodiscover(result(imap=False))
