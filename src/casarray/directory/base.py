"""The directory's base helpers: a new object's GUID and the time stamps of
whenCreated and whenChanged.

They import nothing of the rest of the directory, so every service imports them at
module level (they used to live with `Directory`, which imports the services: each
service had to import them inside its functions to dodge the cycle)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_guid() -> str:
    """A new objectGUID, as text."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Now, timezone-aware UTC (what every stamp in the directory holds)."""
    return datetime.now(UTC)
