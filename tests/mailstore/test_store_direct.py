"""SQLite's direct connections (`mailstore.store.sqlite_direct`): one connection per
thread, closed when its thread has ended; a write rolled back when its block raises;
writers of two stores on one file (as two processes) queue on the lock file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from casarray.mailstore.store import SqlDatabaseStore
from tests.mailstore.test_store import ALICE, make_message


def test_a_thread_that_ended_leaves_no_open_connection(tmp_path: Path) -> None:
    store = SqlDatabaseStore(str(tmp_path / "db.sqlite"))
    direct = store.direct
    assert direct is not None
    box = store.mailbox(ALICE)
    seen: list[sqlite3.Connection] = []

    def work() -> None:
        box.append("INBOX", make_message(1))
        seen.append(direct.connection())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    direct.connection()  # a new thread's connection: the ended one's is closed
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")
    assert [m.uid for m in box.messages("INBOX")] == [1]
    store.close()


def test_a_write_that_raises_is_rolled_back(tmp_path: Path) -> None:
    store = SqlDatabaseStore(str(tmp_path / "db.sqlite"))
    direct = store.direct
    assert direct is not None
    box = store.mailbox(ALICE)
    before = box.folder("INBOX").highest_modseq
    with pytest.raises(RuntimeError), direct.write() as conn:
        conn.execute("UPDATE ms_folder SET highest_modseq = highest_modseq + 5")
        raise RuntimeError("no")
    assert box.folder("INBOX").highest_modseq == before
    box.append("INBOX", make_message(1))  # the lock and the connection are free again
    store.close()


def test_writers_of_two_stores_on_one_file_take_turns(tmp_path: Path) -> None:
    location = str(tmp_path / "db.sqlite")
    stores = [SqlDatabaseStore(location), SqlDatabaseStore(location)]
    boxes = [store.mailbox(ALICE) for store in stores]
    uids: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(25):
            uid = boxes[n % 2].append("INBOX", make_message(i)).uid
            boxes[n % 2].store_flags("INBOX", [uid], "add", ["\\Seen"])
            with lock:
                uids.append(uid)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(uids) == list(range(1, 101))
    assert all("\\Seen" in m.flags for m in boxes[0].messages("INBOX"))
    assert Path(location + "-writelock").exists()
    for store in stores:
        store.close()
