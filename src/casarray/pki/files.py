"""The PKI's files under `$CASARRAY_HOME/pki/` (folder mode 0700): written atomically
with their mode set before any byte lands, and a lock for what two processes might
create at once (the lab CA, the key-encryption key)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from casarray.config import casarray_home

PRIVATE_FILE = 0o600
PUBLIC_FILE = 0o644
PRIVATE_FOLDER = 0o700


def pki_folder(home: Path | None = None) -> Path:
    """`$CASARRAY_HOME/pki`."""
    return (home or casarray_home()) / "pki"


def ensure_folder(folder: Path, mode: int = PRIVATE_FOLDER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(mode)
    return folder


def write_file(path: Path, data: bytes, mode: int, *, exclusive: bool = False) -> bool:
    """Write `data` to `path` through a temporary file with `mode` from the start,
    then move it in place. With `exclusive`, an existing `path` is kept (another
    process made it first) and False is returned."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder` (its `.lock` file) while the block runs."""
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
