"""Folder names: "/" separates levels, names are case-sensitive except INBOX, which is
the inbox in any case ("inbox/Work" is "INBOX/Work"). The store keeps every name in
this canonical form, so a lookup is one indexed equality.
"""

from __future__ import annotations

from casarray.mailstore.interface import DELIMITER, InvalidFolderName

INBOX = "INBOX"
MAX_NAME_LENGTH = 1000
# LIST wildcards: a folder named with one could never be listed unambiguously.
_FORBIDDEN = frozenset("*%")


def canonical(name: str, *, creating: bool = False) -> str:
    """The stored form of `name`. Creating, one trailing delimiter is dropped (RFC 3501:
    "a/" declares the intent to create children under "a"). Raises InvalidFolderName."""
    if not isinstance(name, str):
        raise InvalidFolderName(f"'{name}' is not a folder name.")
    if creating and name.endswith(DELIMITER) and len(name) > 1:
        name = name[:-1]
    if name.upper() == INBOX:
        return INBOX
    if name[:6].upper() == INBOX + DELIMITER:
        name = INBOX + name[5:]
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidFolderName("A folder name must have 1 to 1000 characters.")
    if any(ch < " " or ch == "\x7f" or ch in _FORBIDDEN for ch in name):
        raise InvalidFolderName(
            f"The folder name '{name}' has a control character or a wildcard (* or %)."
        )
    if any(not level for level in name.split(DELIMITER)):
        raise InvalidFolderName(f"The folder name '{name}' has an empty level.")
    return name


def parents(name: str) -> list[str]:
    """The names above `name`, outermost first: "a/b/c" -> ["a", "a/b"]."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


def is_under(name: str, ancestor: str) -> bool:
    """True when `name` is strictly below `ancestor` in the hierarchy."""
    return name.startswith(ancestor + DELIMITER)


def sort_key(name: str) -> tuple[bool, list[str]]:
    """Hierarchy order: INBOX and its subfolders first, then by levels, so that every
    folder comes right before its subfolders ("a", "a/b", "a-b")."""
    return (not (name == INBOX or name.startswith(INBOX + DELIMITER)), name.split(DELIMITER))
