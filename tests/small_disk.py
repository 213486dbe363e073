"""A small file system to fill up, for the tests of a full disk: a tmpfs of a few MB
mounted on a folder for one test (root only: `mount -t tmpfs`), a filler file that
takes its space, and the filler's removal. Unmounted when the test ends, whatever
happened (lazily if a file on it is still open).

Not a conftest: the disk-full test modules import what they use."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

NEEDS = "mounting a small tmpfs to fill up needs root (mount -t tmpfs) and mount(8)"


def require_root() -> None:
    """Skip the test without root or mount(8), naming what is missing (CI, which runs
    as root, fails instead)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if os.environ.get("CI"):
            pytest.fail(NEEDS)
        pytest.skip(NEEDS)


class SmallDisk:
    """A mounted tmpfs: `fill()` takes its space, `free_up()` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def free(self) -> int:
        """Bytes free on it now."""
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Fill it to the last page, then give `leave` bytes back."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 16, 1 << 12, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
            if leave:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)
        assert self.free() <= leave + 4096, f"{self.free()} bytes still free on {self.path}"

    def free_up(self) -> None:
        """Remove the filler: the space is back."""
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()


@contextlib.contextmanager
def small_disk(
    path: Path, size: str = "4m", owner: tuple[int, int] | None = None
) -> Iterator[SmallDisk]:
    """A tmpfs of `size` on `path` (made if missing), owned by `owner` (uid, gid) when
    given, unmounted when the block ends."""
    require_root()
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755"
    if owner is not None:
        options += f",uid={owner[0]},gid={owner[1]}"
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "casarray-test", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        yield SmallDisk(path)
    finally:
        done = subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=False)
        if done.returncode != 0:  # something still holds a file open: detach it anyway
            subprocess.run(
                ["umount", "-l", str(path)], capture_output=True, timeout=30, check=False
            )
