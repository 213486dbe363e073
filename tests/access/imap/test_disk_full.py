"""IMAP on a mailbox database whose disk fills up (a 4 MB tmpfs, really filled; root):
the real server and session in this process, a real SQLite store, imaplib as the
client. APPEND, COPY, MOVE, STORE, EXPUNGE and CREATE answer `NO [OVERQUOTA] Not
enough disk space` (Dovecot's answer); the session goes on and reads keep working
(SELECT, FETCH of bodies, SEARCH, STATUS; CLOSE closes); once the filler is removed the
next APPEND works, with no restart; the file passes SQLite's integrity check, and
every message acknowledged before is served byte for byte."""

from __future__ import annotations

import asyncio
import imaplib
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from casarray.access.imap.server import ImapServer
from casarray.mailstore.store import SqlDatabaseStore
from tests.access.imap.fakes import FakeBackend
from tests.mailstore.test_store import ALICE, make_message
from tests.small_disk import SmallDisk, small_disk

pytestmark = pytest.mark.root

USER, PASSWORD = "alice@lab.net", "s3cret pw"
FULL = b"[OVERQUOTA] Not enough disk space"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", "4m") as mounted:
        yield mounted


def serve(store: Any, client: Callable[[int], None]) -> None:
    """The IMAP server on a free port of 127.0.0.1 for `client(port)` (run in a thread)."""

    async def main() -> None:
        backend = FakeBackend()
        backend.add_user(USER, PASSWORD, store)
        server = ImapServer(
            backend, name="T", host="127.0.0.1", ssl_context=None, allow_plaintext=True
        )
        (listener,) = await server.start(port=0, tls_port=None)
        try:
            await asyncio.to_thread(client, listener.port)
        finally:
            await server.shutdown(grace=1)

    asyncio.run(main())


def uid_of(response: list[Any], code: str) -> list[int]:
    """The UIDs of an APPENDUID response code."""
    found = re.search(rf"\[{code} \d+ ([\d:,]+)", response[0].decode())
    assert found, response
    uids = []
    for part in found.group(1).split(","):
        first, _, last = part.partition(":")
        uids += range(int(first), int(last or first) + 1)
    return uids


def bodies(imap: imaplib.IMAP4) -> dict[int, bytes]:
    """Every message of the selected folder by UID (BODY.PEEK[]: sets no flag)."""
    status, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
    assert status == "OK", data
    found = {}
    for item in data:
        if isinstance(item, tuple):
            uid = re.search(rb"UID (\d+)", item[0])
            assert uid
            found[int(uid.group(1))] = item[1]
    return found


def test_imap_on_a_full_disk(disk: SmallDisk) -> None:
    path = disk.path / "DB01.db"
    database = SqlDatabaseStore(str(path))
    store = database.create_mailbox(ALICE)

    def client(port: int) -> None:
        imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        assert imap.login(USER, PASSWORD)[0] == "OK"
        # acknowledged before the disk fills: the promise to keep
        acknowledged: dict[int, bytes] = {}
        for n in range(1, 6):
            message = make_message(n, size=4000 * n)
            status, data = imap.append("INBOX", "(\\Seen)" if n == 1 else None, None, message)
            assert status == "OK", data
            acknowledged[uid_of(data, "APPENDUID")[0]] = message
        assert imap.select("INBOX")[0] == "OK"
        assert imap.uid("STORE", "2", "+FLAGS", "(\\Deleted)")[0] == "OK"
        # delivered meanwhile (\Recent, which SELECT takes: a write)
        assert store.append("INBOX", make_message(6, size=3000)).uid == 6
        acknowledged[6] = make_message(6, size=3000)

        disk.fill()
        refused = {
            "APPEND": imap.append("INBOX", None, None, make_message(7, size=200_000)),
            "small APPEND": imap.append("INBOX", None, None, make_message(8, size=500)),
            "COPY": imap.uid("COPY", "1:3", "Archive"),
            "MOVE": imap.uid("MOVE", "4", "Archive"),
            "STORE": imap.uid("STORE", "1:5", "+FLAGS", "(\\Flagged)"),
            "EXPUNGE": imap.expunge(),
            "CREATE": imap.create("Projects"),
        }
        for name, (status, data) in refused.items():
            assert (status, data) == ("NO", [FULL]), name
        # the session goes on, and reads work: SELECT (\Recent can't be cleared: no
        # matter), FETCH of bodies (\Seen can't be set: served all the same), SEARCH,
        # STATUS, NOOP
        assert imap.select("INBOX")[0] == "OK"
        assert imap.response("RECENT") == ("RECENT", [b"1"])
        assert bodies(imap) == acknowledged
        status, data = imap.uid("FETCH", "3", "(BODY[])")
        assert status == "OK" and data[0][1] == acknowledged[3]
        assert imap.uid("SEARCH", "DELETED") == ("OK", [b"2"])
        assert imap.status("Archive", "(MESSAGES)")[0] == "OK"
        assert imap.noop()[0] == "OK"
        status, data = imap.close()  # CLOSE has no NO: closed, nothing expunged
        assert status == "OK" and b"no message was expunged" in data[0], data
        assert imap.select("INBOX")[0] == "OK"
        assert sorted(bodies(imap)) == [1, 2, 3, 4, 5, 6]

        disk.free_up()  # space is back: the next write works, no restart
        status, data = imap.append("INBOX", None, None, make_message(7, size=200_000))
        assert status == "OK", data
        acknowledged[uid_of(data, "APPENDUID")[0]] = make_message(7, size=200_000)
        assert imap.uid("COPY", "1:3", "Archive")[0] == "OK"
        assert imap.status("Archive", "(MESSAGES)")[1] == [b'"Archive" (MESSAGES 3)']
        assert imap.uid("STORE", "1:5", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert imap.expunge() == ("OK", [b"2"])
        del acknowledged[2]  # expunged now, as asked
        assert bodies(imap) == acknowledged
        assert imap.create("Projects")[0] == "OK"
        imap.logout()

    try:
        serve(store, client)
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        database.close()
