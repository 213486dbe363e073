"""Debian's NSD for the DNS tests: started in a folder of its own (no root needed, RRL
off) on NSD_ADDRESS and a port free for both UDP and TCP, serving zone files."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from casarray.dns.dns_process import bind_pair

NSD = shutil.which("nsd") or shutil.which("nsd", path="/usr/sbin:/sbin")
NSD_ADDRESS = "127.77.54.2"


def nsd_missing() -> str | None:
    if NSD is None:
        return "nsd is not installed (Debian package nsd)"
    return None


def free_port(address: str) -> int:
    udp, tcp = bind_pair(address, 0, reuse_port=False)
    port = int(tcp.getsockname()[1])
    udp.close()
    tcp.close()
    return port


@dataclass
class Nsd:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


def start_nsd(folder: Path, zones: dict[str, Path]) -> Nsd:
    """NSD in `folder`, unprivileged-friendly, RRL off, serving `zones`."""
    assert NSD is not None
    configure = subprocess.run([NSD, "-v"], capture_output=True, text=True, check=False)
    rrl = (
        "  rrl-ratelimit: 0\n"
        if "--enable-ratelimit" in configure.stderr + configure.stdout
        else ""
    )
    for _ in range(5):
        port = free_port(NSD_ADDRESS)
        config = folder / "nsd.conf"
        config.write_text(
            "server:\n"
            f"  ip-address: {NSD_ADDRESS}@{port}\n"
            f'  zonesdir: "{folder}"\n'
            f'  pidfile: "{folder}/nsd.pid"\n'
            f'  xfrdfile: "{folder}/xfrd.state"\n'
            f'  zonelistfile: "{folder}/zone.list"\n'
            '  database: ""\n'
            '  username: ""\n'
            "  hide-version: yes\n"
            "  verbosity: 1\n"
            f"{rrl}"
            "remote-control:\n"
            "  control-enable: no\n"
            + "".join(
                f"zone:\n  name: {name}\n  zonefile: {path}\n" for name, path in zones.items()
            )
        )
        log = folder / "nsd.log"
        out = log.open("ab")
        proc = subprocess.Popen([NSD, "-d", "-c", str(config)], stdout=out, stderr=out)
        out.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                query = dns.message.make_query(next(iter(zones)), "SOA")
                if dns.query.udp(query, NSD_ADDRESS, port=port, timeout=0.2).answer:
                    return Nsd(proc, port, log)
            except (dns.exception.Timeout, OSError):
                pass
        stop_nsd(Nsd(proc, port, log))  # the port was taken meanwhile, say: again
    raise AssertionError(f"nsd didn't start:\n{log.read_text()}")


def stop_nsd(nsd: Nsd) -> None:
    if nsd.proc.poll() is None:
        nsd.proc.send_signal(signal.SIGTERM)
        try:
            nsd.proc.wait(10)
        except subprocess.TimeoutExpired:
            nsd.proc.kill()
            nsd.proc.wait()
