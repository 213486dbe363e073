"""Shared fixtures of the cmdlet tests: they run on SQLite (the directory and store
tests cover both back ends), each with a shell session on its test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def shell(directory_url: str, directory: Directory) -> Iterator[Shell]:
    sh = Shell(directory_url)
    yield sh
    sh.close()
