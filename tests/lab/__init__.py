"""Tests of `casarray lab`; below, what the tests that run a whole lab share: running
the command (as another user if asked), waiting on the supervisor's state, and the
real clients they reach the lab with."""

from __future__ import annotations

import http.client
import imaplib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

UP_TIMEOUT = 120


def required(what: str | None) -> None:
    """Skip for a missing tool or privilege `what`; fail under CI."""
    if what:
        if os.environ.get("CI"):
            pytest.fail(what)
        pytest.skip(what)


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    required(None if path else f"{name} is not installed (Debian package {package})")
    assert path is not None
    return path


@dataclass
class Lab:
    home: Path
    prefix: list[str] = field(default_factory=list)  # run as another user (setpriv ...)
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)
    up_output: str = ""
    passwords: dict[str, str] = field(default_factory=dict)
    healthy_after: float = 0.0

    def env(self) -> dict[str, str]:
        env = {**os.environ, "CASARRAY_HOME": str(self.home), **self.extra_env}
        env.pop("CASARRAY_DIRECTORY", None)
        return env

    def run(self, *args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`casarray lab ARGS --home HOME`."""
        return self.casarray("lab", *args, "--home", str(self.home), timeout=timeout)

    def casarray(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, self.python, "-m", "casarray", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def shell(self, commands: str) -> str:
        result = self.casarray("shell", "-c", commands)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def up(self) -> None:
        result = self.run("up", "--detach")
        self.up_output = result.stdout + result.stderr
        assert result.returncode == 0, self.up_output + self.logs()
        found = re.search(r"all healthy in ([0-9.]+) s", self.up_output)
        assert found, self.up_output
        self.healthy_after = float(found.group(1))
        self.passwords = dict(re.findall(r"^  (\S+@lab\.net)\s+(\S+)$", self.up_output, re.M))

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.run("down")

    def status(self) -> dict[str, Any]:
        result = self.run("status", "--json")
        assert result.returncode in (0, 3), result.stderr
        return dict(json.loads(result.stdout))

    def state(self) -> dict[str, Any]:
        """The supervisor's state file (read directly: it is world-readable)."""
        try:
            return dict(json.loads((self.home / "run" / "lab-supervisor.json").read_text()))
        except (OSError, ValueError):
            return {}

    def process(self, name: str) -> dict[str, Any]:
        for entry in self.state().get("processes", ()):
            if entry["name"].lower() == name.lower():
                return dict(entry)
        return {}

    def logs(self, name: str = "lab") -> str:
        try:
            return (self.home / "logs" / f"{name}.log").read_text()
        except OSError:
            return ""

    def processes(self) -> list[int]:
        """Pids of the processes whose command line names this lab's folder."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if str(self.home).encode() in command and int(entry.name) != os.getpid():
                    found.append(int(entry.name))
        return found


def has_row(text: str, *cells: str) -> bool:
    """Whether a line of a printed table begins with these cells (any spacing)."""
    wanted = " ".join(" ".join(cells).split())
    return any(" ".join(line.split()).startswith(wanted) for line in text.splitlines())


def wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


def http_get(host: str, port: int, path: str, source: str | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection(
        host, port, timeout=5, source_address=(source, 0) if source else None
    )
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def imap_inbox(host: str, port: int, user: str, password: str) -> list[str]:
    """Log in over STARTTLS (the lab's self-signed certificates) and read the INBOX's
    subjects."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4(host, port, timeout=10) as client:
        client.starttls(ssl_context=context)
        client.login(user, password)
        kind, data = client.select("INBOX", readonly=True)
        assert kind == "OK", data
        kind, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert kind == "OK", data
        subjects = [
            part[1].decode().strip().removeprefix("Subject: ")
            for part in data
            if isinstance(part, tuple)
        ]
        client.logout()
    return subjects
