"""The lab fixtures the lab tests share: a lab in a fresh folder, stopped and removed
at the end whatever the test did."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.lab import Lab


@contextlib.contextmanager
def fresh_lab(prefix: Sequence[str] = ()) -> Iterator[Lab]:
    """A lab in a new folder (short: the control socket's path has a limit), its
    commands run behind `prefix` (setpriv, say); `lab down` and the folder removed
    at the end."""
    folder = Path(tempfile.mkdtemp(prefix="casarray-lab-"))
    lab = Lab(folder / "lab", list(prefix))
    try:
        yield lab
    finally:
        lab.down()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def lab_folder() -> Iterator[Lab]:
    """A lab in a fresh folder, not started."""
    with fresh_lab() as lab:
        yield lab
