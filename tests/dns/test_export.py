"""Export-DnsServerZone's master file: Debian's nsd-checkzone accepts it, dnspython
reads back the same zone, and NSD serves it (asked with dig); where it is written and
what it refuses."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.zone
import pytest

from casarray.directory import Directory, InvalidOperationError, InvalidValueError, NotFoundError
from casarray.dns.export import export_zone
from casarray.dns.zones import build_zones
from tests.dns.nsd import NSD_ADDRESS, start_nsd, stop_nsd

VIP = "127.77.1.10"


def need(tool: str, package: str) -> str:
    """The tool's path; skipped (failed under CI) when its Debian package is missing."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{tool} is not installed (Debian package {package}: apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def seeded(bj: Directory) -> Directory:
    """The seed's organization (cluster, A record, array) with records of every type,
    a wildcard, quoted text and a zone delegated from lab.net."""
    bj.nlb.install_feature("CAS01", ["NLB"])
    bj.nlb.new_cluster("bj-cas.lab.net", VIP, host="CAS01")
    bj.dns.add_record("lab.net", "bj-cas", "A", VIP)
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    bj.dns.add_record("lab.net", "owa", "CNAME", "bj-cas.lab.net", ttl=300)
    bj.dns.add_record("lab.net", "v6", "AAAA", "2001:db8::10")
    bj.dns.add_record("lab.net", "@", "TXT", 'v=spf1 mx "quoted" ; -all')
    bj.dns.add_record("lab.net", "*.apps", "A", "127.77.1.90")
    bj.dns.add_record("lab.net", "_xmpp._tcp", "SRV", "10 5 5222 chat.lab.net")
    bj.dns.add_zone("int.lab.net")
    bj.dns.add_record("int.lab.net", "web", "A", "127.77.1.80")
    return bj


def check_zone(zone: str, path: Path) -> None:
    checker = need("nsd-checkzone", "nsd")
    proc = subprocess.run(
        [checker, zone, str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"zone {zone} is ok" in proc.stdout


def test_export_is_a_master_file(seeded: Directory, tmp_path: Path) -> None:
    path = tmp_path / "lab.net.dns"
    exported = export_zone(seeded, "LAB.net", str(path))
    serial = seeded.topology_version()
    assert (exported.zone_name, exported.file_name, exported.serial) == (
        "lab.net",
        str(path),
        serial,
    )
    assert exported.records == len(seeded.dns.records("lab.net"))
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0].startswith(f"; Zone lab.net, serial {serial}")
    assert "$ORIGIN lab.net." in lines
    assert f"@ 3600 IN SOA ns1 hostmaster {serial} 900 600 86400 3600" in lines
    assert "bj-cas 3600 IN A 127.77.1.10" in lines
    assert "owa 300 IN CNAME bj-cas" in lines
    assert "int 1200 IN NS ns1.int" in lines
    check_zone("lab.net", path)
    # dnspython reads back the zone the server serves (compared as text: read back,
    # names in rdata are relative to the origin; as built, absolute)
    again = dns.zone.from_file(str(path), origin="lab.net", relativize=True)
    assert again.to_text() == build_zones(seeded).zone("lab.net").to_text()
    assert len(again.nodes) == len({r.host_name.lower() for r in seeded.dns.records("lab.net")})


def test_every_zone_exports(seeded: Directory, tmp_path: Path) -> None:
    seeded.add_accepted_domain("contoso.com")
    for zone in ("contoso.com", "int.lab.net"):
        path = tmp_path / f"{zone}.dns"
        export_zone(seeded, zone, str(path))
        check_zone(zone, path)
        again = dns.zone.from_file(str(path), origin=zone)
        assert again.to_text() == build_zones(seeded).zone(zone).to_text()


def test_relative_file_name(
    seeded: Directory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    exported = export_zone(seeded, "lab.net", "lab.net.dns")
    assert exported.file_name == str(out / "lab.net.dns")
    assert (out / "lab.net.dns").is_file()
    assert [p.name for p in out.iterdir()] == ["lab.net.dns"]  # no temporary left


def test_export_errors(seeded: Directory, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "lab.net.dns"
    existing.write_text("mine\n")
    with pytest.raises(InvalidOperationError, match=r"lab\.net\.dns already exists"):
        export_zone(seeded, "lab.net", str(existing))
    assert existing.read_text() == "mine\n"
    with pytest.raises(InvalidValueError, match="in a folder that doesn't exist"):
        export_zone(seeded, "lab.net", str(out / "nowhere" / "lab.net.dns"))
    with pytest.raises(InvalidValueError, match="is empty"):
        export_zone(seeded, "lab.net", " ")
    with pytest.raises(NotFoundError, match=r'DNS zone "nowhere\.net"'):
        export_zone(seeded, "nowhere.net", str(out / "nowhere.dns"))
    assert [p.name for p in out.iterdir()] == ["lab.net.dns"]


# -- NSD serves the exported zone ------------------------------------------------------


@contextlib.contextmanager
def nsd_serving(folder: Path, zones: dict[str, Path]) -> Iterator[int]:
    """NSD serving `zones` on NSD_ADDRESS; its port."""
    need("nsd", "nsd")
    nsd = start_nsd(folder, zones)
    try:
        yield nsd.port
    finally:
        stop_nsd(nsd)


def dig(port: int, name: str, rdtype: str) -> list[str]:
    tool = need("dig", "bind9-dnsutils")
    proc = subprocess.run(
        [tool, f"@{NSD_ADDRESS}", "-p", str(port), "+norec", "+short", "+time=2", name, rdtype],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return sorted(proc.stdout.split("\n")[:-1])


def test_nsd_serves_the_export(seeded: Directory, tmp_path: Path) -> None:
    zones = {}
    for zone in ("lab.net", "int.lab.net"):
        zones[zone] = tmp_path / f"{zone}.dns"
        export_zone(seeded, zone, str(zones[zone]))
    serial = seeded.topology_version()
    with nsd_serving(tmp_path, zones) as port:
        assert dig(port, "bj-cas.lab.net", "A") == [VIP]
        assert dig(port, "BJ-CAS.lab.net", "A") == [VIP]
        assert dig(port, "autodiscover.lab.net", "A") == [VIP]
        assert dig(port, "owa.lab.net", "A") == [VIP, "bj-cas.lab.net."]
        assert dig(port, "lab.net", "MX") == ["10 mail.lab.net."]
        assert dig(port, "_imaps._tcp.lab.net", "SRV") == ["0 1 993 mail.lab.net."]
        assert dig(port, "_submission._tcp.lab.net", "SRV") == ["0 1 587 mail.lab.net."]
        assert dig(port, "lab.net", "TXT") == ['"v=spf1 mx \\"quoted\\" ; -all"']
        assert dig(port, "x.apps.lab.net", "A") == ["127.77.1.90"]
        assert dig(port, "v6.lab.net", "AAAA") == ["2001:db8::10"]
        assert dig(port, "web.int.lab.net", "A") == ["127.77.1.80"]
        assert dig(port, "lab.net", "SOA") == [
            f"ns1.lab.net. hostmaster.lab.net. {serial} 900 600 86400 3600"
        ]
        assert dig(port, "nothing.lab.net", "A") == []
