"""The lab's organization in the seed's "before" state, and its settings file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.directory.errors import InvalidValueError
from casarray.lab.config import LabConfig, LabConfigError
from casarray.lab.topology import build_seed_organization, next_address
from casarray.mailstore.store import store_for


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Directory, dict[str, str]]]:
    directory = Directory.open(f"sqlite:///{tmp_path / 'directory.db'}")
    passwords = build_seed_organization(directory)
    yield directory, passwords
    directory.close()


def test_the_before_organization(seeded: tuple[Directory, dict[str, str]]) -> None:
    d, passwords = seeded
    assert [(s.name, s.site, s.ip_address) for s in d.servers.get()] == [
        ("CAS01", "BJ", "127.77.1.11"),
        ("CAS02", "BJ", "127.77.1.12"),
        ("MBX01", "BJ", "127.77.1.21"),
        ("CAS03", "SH", "127.77.2.11"),
        ("MBX02", "SH", "127.77.2.21"),
    ]
    assert d.arrays.get() == [] and d.nlb.clusters() == []
    # databases made before any array point at the first Client Access server of their site
    assert {db.name: db.rpc_client_access_server for db in d.databases.get()} == {
        "DB01": "CAS01.lab.net",
        "DB03": "CAS03.lab.net",
    }
    assert d.dns.listening_address() == "127.77.0.53"  # in the directory, not a constant
    assert d.dns.records("lab.net", "bj-cas") == []  # no name for the array yet
    assert [r.data for r in d.dns.records("lab.net", "cas01", "A")] == ["127.77.1.11"]
    assert set(passwords) == {"alice@lab.net", "bob@lab.net", "carol@lab.net"}
    assert len(set(passwords.values())) == 3
    for address, password in passwords.items():
        assert d.mailboxes.authenticate(address, password) is not None
        assert d.mailboxes.authenticate(address, password + "x") is None


def test_every_user_has_a_few_messages(seeded: tuple[Directory, dict[str, str]]) -> None:
    d, _ = seeded
    for mailbox in d.mailboxes.get():
        box = store_for(d.databases.one(mailbox.database)).mailbox(mailbox.guid)
        messages = box.messages("INBOX")
        assert len(messages) == 3
        first = box.body("INBOX", messages[0].uid)
        assert b"Subject: Welcome to lab.net\r\n" in first
        assert f"To: {mailbox.display_name} <{mailbox.primary_smtp_address}>".encode() in first
        dates = [m.internal_date for m in messages]
        assert dates == sorted(dates)  # oldest first, as delivered


def test_next_address_skips_what_is_taken(seeded: tuple[Directory, dict[str, str]]) -> None:
    d, _ = seeded
    assert next_address(d, "BJ") == "127.77.1.13"
    assert next_address(d, "SH") == "127.77.2.12"
    d.arrays.new("sh-cas.lab.net", "SH", name="SH CAS Array")
    d.nlb.new_cluster("sh-cas.lab.net", "127.77.2.12", array="SH CAS Array")
    assert next_address(d, "SH") == "127.77.2.13"
    d.sites.new("HK")
    with pytest.raises(InvalidValueError, match="has no subnet"):
        next_address(d, "HK")


def test_lab_settings_round_trip(tmp_path: Path) -> None:
    assert LabConfig.load(tmp_path) is None
    config = LabConfig.decide(tmp_path, "sqlite:///x.db", "127.77.0.53")
    config.save()
    loaded = LabConfig.load(tmp_path)
    assert loaded == config
    assert loaded.dns_port == 53 + loaded.port_offset
    assert loaded.port(143) == 143 + loaded.port_offset
    assert loaded.root_ca == tmp_path / "pki" / "lab-root.pem"
    (tmp_path / "lab.json").write_text(json.dumps({"port_offset": 0}))
    with pytest.raises(LabConfigError, match="lacks or has a bad value for 'dns_address'"):
        LabConfig.load(tmp_path)
    (tmp_path / "lab.json").write_text("{")
    with pytest.raises(LabConfigError, match="Can't read"):
        LabConfig.load(tmp_path)


def test_lab_passwords_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    from casarray.lab import topology

    drawn = iter(["-first", "-second", "fine-one"])
    monkeypatch.setattr(topology.secrets, "token_urlsafe", lambda n: next(drawn))
    assert topology.lab_password() == "fine-one"
    monkeypatch.undo()
    assert all(not topology.lab_password().startswith("-") for _ in range(500))
