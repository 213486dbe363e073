"""`casarray lab walkthrough` (what `make demo` runs) end to end: every step of the seed
passes, as root (standard ports, Kernel data plane) and without the rights to bind low
ports or change nftables (ports +10000, Proxy data plane), mail from outside
included; the client's failover time is printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.lab import required

STEPS = ("1", "2", "3", "4", "5", "6", "7a", "7b", "7c", "7d", "7e", "8")
DROPPED = "-net_bind_service,-net_admin"


def walkthrough(prefix: list[str]) -> str:
    folder = Path(tempfile.mkdtemp(prefix="casarray-walk-"))
    env = {**os.environ, "CASARRAY_HOME": str(folder / "unused"), "COLUMNS": "200"}
    env.pop("CASARRAY_DIRECTORY", None)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "casarray", "lab", "walkthrough", "--home",
             str(folder / "lab")],
            capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def check(output: str, engine: str, dns_port: int) -> None:
    for step in STEPS:
        assert re.search(rf"^│ {step} +│ .*│ passed +│", output, re.M), (step, output)
    assert f"({engine} data plane)" in output
    assert f"answered by the lab's DNS at 127.77.0.53:{dns_port}" in output
    assert "Server     bj-cas.lab.net" in output  # Autodiscover gave the array
    assert "NO [REFERRAL imap://alice%40lab.net@CAS02.lab.net/]" in output
    assert "lab.net's MX smtp.lab.net took it; in alice's inbox" in output
    # mail out: the smart host got it and the tracking log shows the SEND
    assert "the Internet send connector took it to the smart host 127.77.9.60" in output
    assert re.search(r"SEND +SMTP +\{dave@example\.net\}", output), output
    failover = re.search(r"alice carried on through CAS02 after (\d+) ms", output)
    healthy = re.search(r"all healthy in ([0-9.]+) s", output)
    assert failover and healthy, output
    print(f"{engine}: lab up {healthy.group(1)} s, client failover {failover.group(1)} ms")
    assert int(failover.group(1)) < 5000  # the goal (1 s) is reported, not asserted


def test_walkthrough_as_root() -> None:
    if os.geteuid() != 0:
        required("the walkthrough on the standard ports needs root")
    check(walkthrough([]), "Kernel" if shutil.which("nft") else "Proxy", 53)


def test_walkthrough_without_low_ports_or_nftables() -> None:
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        required(None if setpriv else "setpriv (util-linux) is needed to drop root's rights")
        assert setpriv is not None
        prefix = [setpriv, f"--bounding-set={DROPPED}", f"--inh-caps={DROPPED}"]
    check(walkthrough(prefix), "Proxy", 10053)
