"""Variables: $env:, and the read-only ones."""

from __future__ import annotations

import pytest

from tests.shell.runtime_shell import Run, lines


def test_env_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASARRAY_TEST", "hello")
    assert lines("$env:CASARRAY_TEST") == ["hello"]


def test_true_is_read_only() -> None:
    run = Run()
    run("$true = 1")
    assert not run.ok
    assert "Cannot overwrite variable true" in run.err.getvalue()
