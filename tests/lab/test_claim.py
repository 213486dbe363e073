"""One lab at a time on the lab addresses: a second `lab up` or `lab walkthrough`
refuses within seconds, naming the running lab and the command that stops it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.lab import claim
from casarray.process.status import StatusFile
from tests.lab import Lab


@pytest.fixture
def other_lab(tmp_path: Path) -> Iterator[Path]:
    """A claim of the lab addresses by a live 'supervisor' of a lab in another folder
    (the real claim, if a lab runs, is put back afterwards)."""
    path = claim.claim_path()
    before = path.read_bytes() if path.exists() else None
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    folder = tmp_path / "the-other-lab"
    path.parent.mkdir(parents=True, exist_ok=True)
    StatusFile(path).write({"pid": holder.pid, "home": str(folder)})
    try:
        yield folder
    finally:
        holder.kill()
        holder.wait()
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


def test_a_claim_of_a_dead_supervisor_counts_for_nothing(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = claim.claim_path()
    before = path.read_bytes() if path.exists() else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        StatusFile(path).write({"pid": dead.pid, "home": str(tmp_path / "gone")})
        claim.check_free(tmp_path / "mine", dns_ports=())
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


def test_up_refuses_while_another_lab_runs(lab_folder: Lab, other_lab: Path) -> None:
    lab = lab_folder
    started = time.monotonic()
    result = lab.run("up", "--detach", timeout=60)
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert (
        f"Another lab is running on this machine's lab addresses (127.77.x.x), in {other_lab}"
        in text
    )
    assert f"`casarray lab down --home {other_lab}`" in text
    assert not (lab.home / "directory.db").exists()  # nothing made


def test_walkthrough_refuses_while_another_lab_runs(lab_folder: Lab, other_lab: Path) -> None:
    lab = lab_folder
    started = time.monotonic()
    result = lab.casarray("lab", "walkthrough", timeout=60)
    assert time.monotonic() - started < 15
    assert result.returncode == 2
    assert f"casarray lab down --home {other_lab}" in "".join(result.stdout.splitlines())
