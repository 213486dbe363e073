"""Where casarray keeps its state: `$CASARRAY_HOME` and the directory URL."""

from __future__ import annotations

import os
from pathlib import Path


def casarray_home() -> Path:
    """The state folder: `$CASARRAY_HOME`, or `~/.casarray`."""
    home = os.environ.get("CASARRAY_HOME")
    return Path(home).expanduser() if home else Path.home() / ".casarray"


def directory_url(explicit: str | None = None) -> str:
    """The directory's database URL: the argument, `$CASARRAY_DIRECTORY`, or the SQLite default.

    A bare file path is taken as a SQLite file.
    """
    url = explicit or os.environ.get("CASARRAY_DIRECTORY")
    if not url:
        return f"sqlite:///{casarray_home() / 'directory.db'}"
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url
