"""Tests of casarray.pki. Shared here: `openssl`, which runs the real OpenSSL command
(Debian's `openssl` package) on files, and skips the test when it is missing (fails
under CI)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

OPENSSL_MISSING = "openssl (Debian's openssl package) is not installed"


def openssl(*args: str, check: bool = True, stdin: bytes | None = None) -> str:
    """Run `openssl ARGS`; its stdout and stderr together, as text."""
    binary = shutil.which("openssl")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(OPENSSL_MISSING)
        pytest.skip(OPENSSL_MISSING)
    proc = subprocess.run(
        [binary, *args], input=stdin, capture_output=True, timeout=60, check=False
    )
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    if check:
        assert proc.returncode == 0, f"openssl {' '.join(args)} failed: {output}"
    return output
