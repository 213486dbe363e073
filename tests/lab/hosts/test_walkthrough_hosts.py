"""`casarray lab walkthrough --hosts` end to end (as root, with Debian's postgresql):
every step of the seed's procedure on a lab on several hosts made under a test prefix,
then nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from casarray.lab.hosts.network import missing, namespaces
from casarray.lab.hosts.plan import PREFIX_VARIABLE
from casarray.lab.hosts.postgres import find_binaries
from tests.lab import required, tool
from tests.lab.hosts.conftest import fresh_prefix

TEST_TIMEOUT = 150  # the whole procedure: about 45 s here


def test_walkthrough_on_several_hosts(tmp_path: Path) -> None:
    required(missing())
    required(None if find_binaries() else "PostgreSQL's server is not installed (postgresql)")
    tool("nft", "nftables")
    prefix = fresh_prefix()
    env = {**os.environ, PREFIX_VARIABLE: prefix}
    home = tmp_path / "walk"
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "casarray",
                "lab",
                "walkthrough",
                "--hosts",
                "--home",
                str(home),
            ],
            capture_output=True,
            text=True,
            timeout=TEST_TIMEOUT - 10,
            env=env,
        )
        print(done.stdout[-6000:], done.stderr[-3000:])
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "FAILED" not in done.stdout and "not run" not in done.stdout
        assert "(Hosts data plane)" in done.stdout
    finally:
        leftover = namespaces(prefix)
        if leftover:  # the walkthrough stops its lab; only a crash leaves one
            subprocess.run(
                [sys.executable, "-m", "casarray", "lab", "down", "--home", str(home)],
                capture_output=True,
                timeout=60,
                env=env,
            )
    assert namespaces(prefix) == []
