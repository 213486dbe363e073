"""The error of a process that can't start."""

from __future__ import annotations

from casarray.errors import CasarrayError


class StartupError(CasarrayError):
    """A process can't start: an unknown server or cluster, a role the server doesn't
    hold, a port taken, a worker that died before it served. The message says which."""

    category = "ResourceUnavailable"
