"""The hosts lab's PostgreSQL server (as root, with Debian's postgresql): `casarray lab
up --hosts` under a test prefix (`$CASARRAY_LAB_HOSTS_PREFIX`) starts it in DC01
before anything else; the directory and the mailbox databases are on it, every lab
process reaches it at DC01's address, a user reads her INBOX through CAS01 from
CLIENT-BJ, and `lab down` stops it and leaves no namespace."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from casarray.lab.config import LabConfig
from casarray.lab.hosts.network import HostNetwork, missing, namespaces
from casarray.lab.hosts.plan import PREFIX_VARIABLE, HostPlan
from casarray.lab.hosts.postgres import LabPostgres, find_binaries
from tests.lab import required
from tests.lab.hosts.conftest import fresh_prefix

READ_INBOX = """
import imaplib, ssl, sys
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
imap = imaplib.IMAP4("198.18.1.11", 143, timeout=10)
imap.starttls(context)
imap.login(sys.argv[1], sys.argv[2])
print(imap.select("INBOX")[1][0].decode())
"""


def lab(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "casarray", "lab", args[0], "--home", str(home), *args[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=55, env=env)


def test_directory_and_mailboxes_on_postgres_in_dc01(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    required(missing())
    required(None if find_binaries() else "PostgreSQL's server is not installed (postgresql)")
    prefix = fresh_prefix()
    monkeypatch.setenv(PREFIX_VARIABLE, prefix)
    env = dict(os.environ)
    home = tmp_path / "lab"
    network = HostNetwork(HostPlan.build(prefix=prefix))
    try:
        done = lab(home, env, "up", "--hosts", "--detach", "--timeout", "40")
        assert done.returncode == 0, done.stdout + done.stderr
        config = LabConfig.load(home)
        assert config is not None and config.postgres
        assert config.hosts == prefix
        assert config.hosts_directory == "postgresql+psycopg://casarray@198.18.1.5:5432/casarray"
        passwords = dict(re.findall(r"^\s+(\S+@lab\.net)\s+(\S+)$", done.stdout, re.M))

        # every lab process reaches the directory at DC01's address
        sockets = network.exec(
            "DC01",
            ["ss", "-Htn", "state", "established", "( sport = :5432 )"],
            capture_output=True,
            text=True,
        ).stdout
        peers = {line.split()[-1].rsplit(":", 1)[0] for line in sockets.splitlines()}
        assert {"198.18.1.11", "198.18.1.12", "198.18.1.21", "198.18.2.11"} <= peers, sockets

        # the mailbox databases are schemas of the same database
        import psycopg

        server = LabPostgres(home, network.plan.host("DC01").namespace)
        with psycopg.connect(host=str(server.sockets), user="casarray", dbname="casarray") as db:
            schemas = {r[0] for r in db.execute("SELECT nspname FROM pg_namespace")}
        assert {"db01", "db03"} <= schemas

        done = network.exec(
            "CLIENT-BJ",
            [sys.executable, "-c", READ_INBOX, "alice@lab.net", passwords["alice@lab.net"]],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0 and done.stdout.strip() == "3", done.stdout + done.stderr
        state = json.loads(lab(home, env, "status", "--json").stdout)
        assert state["healthy"], state["problems"]
    finally:
        done = lab(home, env, "down")
        print(done.stdout, done.stderr)
        network.down()
    assert not LabPostgres(home, "").running()
    assert namespaces(prefix) == []
