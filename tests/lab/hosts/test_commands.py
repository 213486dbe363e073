"""The `casarray lab` host commands on a hosts network without a running supervisor
(the lab's settings name a test prefix): exec, partition, heal, kill-host, status's
hosts, and down removing the namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from casarray.directory import Directory
from casarray.lab.config import LabConfig
from casarray.lab.hosts.network import HostNetwork, missing, namespaces
from casarray.lab.hosts.plan import HostPlan
from casarray.lab.topology import build_seed_organization
from tests.lab import required
from tests.lab.hosts.conftest import fresh_prefix


def lab(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "casarray", "lab", args[0], "--home", str(home), *args[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_host_commands(tmp_path: Path) -> None:
    required(missing())
    home = tmp_path / "lab"
    home.mkdir()
    url = f"sqlite:///{home / 'directory.db'}"
    with Directory.open(url) as directory:
        build_seed_organization(directory, hosts=True)
    prefix = fresh_prefix()
    LabConfig.decide(home, url, "198.18.1.5", hosts=prefix).save()
    network = HostNetwork(HostPlan.build(prefix=prefix))
    try:
        network.up()
        done = lab(home, "exec", "CAS01", "--", "ip", "-br", "addr")
        assert done.returncode == 0, done.stderr
        assert "198.18.1.11/24" in done.stdout
        assert lab(home, "exec", "CAS01", "--", "sh", "-c", "exit 7").returncode == 7
        assert lab(home, "partition", "CAS02").returncode == 0
        done = lab(home, "status", "--json")
        hosts = {h["name"]: h for h in json.loads(done.stdout)["hosts"]}
        assert (hosts["CAS02"]["link"], hosts["CAS02"]["reason"]) == ("down", "partitioned")
        assert hosts["CAS01"]["link"] == "up"
        assert lab(home, "heal", "CAS02").returncode == 0
        assert {s.name: s.link for s in network.state()}["CAS02"] == "up"
        done = lab(home, "kill-host", "MBX02")
        assert done.returncode == 0 and "MBX02 killed" in done.stdout, done.stderr
        done = lab(home, "kill-host", "CAS09")
        assert done.returncode == 1 and "no host named 'CAS09'" in done.stderr
        done = lab(home, "down")
        assert done.returncode == 0 and "Removed the hosts network" in done.stdout, done.stderr
        assert namespaces(prefix) == []
    finally:
        network.down()
