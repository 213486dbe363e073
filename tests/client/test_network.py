"""Where the client's network settings come from: the options, else the lab's
lab.json (its DNS server, port offset and CA root), else the system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casarray.client.errors import ClientError
from casarray.client.network import Network
from casarray.lab.config import LabConfig


def write_lab(home: Path, root: Path) -> None:
    LabConfig.path(home).parent.mkdir(parents=True, exist_ok=True)
    LabConfig.path(home).write_text(
        json.dumps({
            "port_offset": 10000,
            "dns_address": "127.77.0.53",
            "dns_port": 10053,
            "root_ca": str(root),
            "directory": f"sqlite:///{home / 'directory.db'}",
            "data_plane": "Proxy",
        })
    )  # fmt: skip


def test_outside_a_lab_the_system_is_used(casarray_home: Path) -> None:
    network = Network.configure()
    assert network.resolver.server is None
    assert network.resolver.describe() == "the system resolver"
    assert (network.port_offset, network.cafile) == (0, None)
    assert network.trust() == "the system's CAs"
    with pytest.raises(ValueError, match="is not an IP address"):
        Network.configure("dns.lab.net")


def test_a_lab_gives_its_dns_offset_and_root(casarray_home: Path) -> None:
    root = casarray_home / "pki" / "lab-root.pem"
    root.parent.mkdir(parents=True)
    root.write_text("not read here")
    write_lab(casarray_home, root)
    network = Network.configure()
    assert (network.resolver.server, network.resolver.port) == ("127.77.0.53", 10053)
    assert network.resolver.describe() == "the DNS server 127.77.0.53:10053"
    assert (network.port_offset, network.cafile) == (10000, root)


def test_options_win_over_the_lab(casarray_home: Path, tmp_path: Path) -> None:
    write_lab(casarray_home, casarray_home / "pki" / "lab-root.pem")
    ca = tmp_path / "other.pem"
    network = Network.configure("[::1]:5353", ca, 0)
    assert (network.resolver.server, network.resolver.port) == ("::1", 5353)
    assert network.resolver.describe() == "the DNS server [::1]:5353"
    assert (network.port_offset, network.cafile) == (0, ca)
    with pytest.raises(ClientError, match=f"the CA file {ca} does not exist"):
        network.tls_context()


def test_a_damaged_lab_file_is_said(casarray_home: Path) -> None:
    LabConfig.path(casarray_home).parent.mkdir(parents=True, exist_ok=True)
    LabConfig.path(casarray_home).write_text("{")
    with pytest.raises(ClientError, match="the lab's settings can't be read"):
        Network.configure()
