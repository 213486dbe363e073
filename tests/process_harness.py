"""What the tests' process harnesses share: start a casarray process, wait until its
status file names its pid, read its log, stop it (SIGTERM, then its exit status) or
kill it (kill -9)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class ManagedProcess:
    """One process a test runs; subclasses say what to run and what to read from the
    status file (`launch`)."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        status_path: Path,
        timeout: float,
    ) -> dict[str, Any]:
        """Runs `argv` and waits until `status_path` names its pid: the status."""
        with contextlib.suppress(FileNotFoundError):
            status_path.unlink()
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(
                    f"{self.name} exited {self.proc.returncode}: {err}\n{self.logs()}"
                )
            with contextlib.suppress(OSError, ValueError):
                status = json.loads(status_path.read_text())
                if status.get("pid") == self.proc.pid:
                    return dict(status)
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not start in {timeout} s\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, and the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL (kill -9)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
