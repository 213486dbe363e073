"""QUOTA (RFC 9208) over Exchange's storage quota: the responses, sans-IO.

Exchange limits a mailbox as a whole (ProhibitSendReceiveQuota, its own or its
database's: `directory.quotas`), so a mailbox has one quota root, named "" as in RFC
9208's examples, holding every folder, with one resource, STORAGE, in units of 1024
octets: the used size rounded up, the limit rounded down. A mailbox without a limit
(Unlimited) has no quota root: GETQUOTAROOT names none, GETQUOTA "" is answered NO.
There is no message-count quota in Exchange, so QUOTA=RES-MESSAGE is not offered, and
limits are the administrator's (Set-Mailbox, Set-MailboxDatabase): SETQUOTA is NO.

STATUS also answers SIZE (RFC 8438, STATUS=SIZE) and DELETED-STORAGE (RFC 9208), each
computed only when asked for.

APPEND, COPY and MOVE to another folder that would take the mailbox over its limit are
refused with `NO [OVERQUOTA]` and store nothing (the session checks before writing).
"""

from __future__ import annotations

from casarray.access.imap import responses as r
from casarray.mailstore.interface import MailboxStore

ROOT = ""
CAPABILITIES = ("QUOTA", "QUOTA=RES-STORAGE", "STATUS=SIZE")
# STATUS items of RFC 8438 (SIZE: the folder's bytes) and RFC 9208 (DELETED-STORAGE:
# the bytes an EXPUNGE would free).
STATUS_ITEMS = ("SIZE", "DELETED-STORAGE")


def kilobytes_used(used: int) -> int:
    return (used + 1023) // 1024


def quota_line(used: int, limit: int) -> bytes:
    """`* QUOTA "" (STORAGE used limit)`."""
    return b"* QUOTA %s (STORAGE %d %d)\r\n" % (
        r.string(ROOT),
        kilobytes_used(used),
        limit // 1024,
    )


def quotaroot_line(mailbox: str, limited: bool) -> bytes:
    """`* QUOTAROOT mailbox ""` (no root when the mailbox has no limit)."""
    roots = b" " + r.string(ROOT) if limited else b""
    return b"* QUOTAROOT %s%s\r\n" % (r.mailbox(mailbox), roots)


def over_quota_text(used: int, more: int, limit: int) -> str:
    return (
        f"Over quota: storing {more} bytes would take the mailbox to {used + more} bytes; "
        f"its limit is {limit} bytes"
    )


def status_values(store: MailboxStore, folder: str, items: tuple[str, ...]) -> dict[str, int]:
    """SIZE and DELETED-STORAGE of `folder`, for those of them in `items`."""
    values: dict[str, int] = {}
    if "SIZE" in items:
        values["SIZE"] = next((s.size for s in store.statistics() if s.name == folder), 0)
    if "DELETED-STORAGE" in items:
        values["DELETED-STORAGE"] = sum(
            info.size for info in store.messages(folder) if "\\Deleted" in info.flags
        )
    return values
