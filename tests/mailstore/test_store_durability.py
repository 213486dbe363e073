"""Several store objects and processes on one mailbox database (as the Client Access
servers open it): each sees the others' commits at once, UIDs stay unique under
concurrent appends, and an APPEND that returned survives kill -9 of its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.mailstore.store import SqlDatabaseStore
from tests.mailstore.test_store import ALICE, make_message, new_location

ROOT = Path(__file__).resolve().parents[2]

# A child that appends numbered messages forever, printing "OK <uid> <n>" once each
# append has returned (the acknowledgement a client would get).
APPENDER = """
import sys
from casarray.mailstore.store import SqlDatabaseStore
from tests.mailstore.test_store import ALICE, make_message

box = SqlDatabaseStore(sys.argv[1]).mailbox(ALICE)
limit = int(sys.argv[2])
n = 0
while n < limit:
    n += 1
    appended = box.append("INBOX", make_message(n, size=2000 + n % 5000), [f"n{n}"])
    print(f"OK {appended.uid} {n}", flush=True)
"""


@pytest.fixture
def location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from new_location(backend, request, tmp_path)


@pytest.fixture
def stores(location: str) -> Iterator[tuple[SqlDatabaseStore, SqlDatabaseStore]]:
    """Two store objects on one location: two engines, two connection pools."""
    first, second = SqlDatabaseStore(location), SqlDatabaseStore(location)
    yield first, second
    first.engine.dispose()
    second.engine.dispose()


def test_two_stores_see_each_others_changes(
    stores: tuple[SqlDatabaseStore, SqlDatabaseStore],
) -> None:
    one = stores[0].create_mailbox(ALICE)
    two = stores[1].mailbox(ALICE)
    assert two.id == one.id
    start = two.folder("INBOX").highest_modseq
    one.append("INBOX", make_message(1))
    one.append("INBOX", make_message(2))
    seen = two.changes_since("INBOX", start)
    assert [m.uid for m in seen.changed] == [1, 2]
    assert two.body("INBOX", 2) == make_message(2)
    two.store_flags("INBOX", [1], "add", ["\\Deleted"])
    flagged = one.changes_since("INBOX", seen.highest_modseq)
    assert [(m.uid, m.flags) for m in flagged.changed] == [(1, frozenset({"\\Deleted"}))]
    assert one.expunge("INBOX") == [1]
    gone = two.changes_since("INBOX", flagged.highest_modseq)
    assert gone.expunged == (1,) and gone.changed == ()
    assert [m.uid for m in two.messages("INBOX")] == [2]
    assert two.take_recent("INBOX") == [2]
    assert one.take_recent("INBOX") == []
    two.create_folder("Shared/Work")
    assert "Shared/Work" in [f.name for f in one.folders()]
    one.rename_folder("Shared", "Team")
    assert two.folder("Team/Work").name == "Team/Work"


def test_concurrent_appends_get_unique_uids(
    stores: tuple[SqlDatabaseStore, SqlDatabaseStore],
) -> None:
    boxes = [stores[0].create_mailbox(ALICE), stores[1].mailbox(ALICE)]
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        box = boxes[worker % 2]
        try:
            for n in range(20):
                uid = box.append("INBOX", make_message(worker * 100 + n)).uid
                if n % 5 == 0:
                    box.store_flags("INBOX", [uid], "add", ["\\Seen"])
                with lock:
                    results.append(uid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == list(range(1, 81))
    folder = boxes[1].folder("INBOX")
    assert (folder.exists, folder.uid_next, folder.unseen) == (80, 81, 64)
    modseqs = [m.modseq for m in boxes[0].messages("INBOX")]
    assert max(modseqs) == folder.highest_modseq


def _appender(location: str, limit: int) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.Popen(
        [sys.executable, "-c", APPENDER, location, str(limit)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def test_concurrent_processes_get_unique_uids(location: str) -> None:
    SqlDatabaseStore(location).create_mailbox(ALICE)
    children = [_appender(location, 40) for _ in range(3)]
    acknowledged: list[int] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        acknowledged += [int(line.split()[1]) for line in out.splitlines()]
    assert sorted(acknowledged) == list(range(1, 121))
    store = SqlDatabaseStore(location)
    try:
        assert [m.uid for m in store.mailbox(ALICE).messages("INBOX")] == list(range(1, 121))
    finally:
        store.engine.dispose()


def test_acknowledged_appends_survive_kill_9(location: str) -> None:
    """The child appends in a loop; it is killed with SIGKILL while appending. Every
    message it acknowledged must be there, byte for byte, with its flags."""
    SqlDatabaseStore(location).create_mailbox(ALICE)
    child = _appender(location, 1_000_000)
    assert child.stdout is not None
    acknowledged: dict[int, int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            _, uid, n = line.split()
            acknowledged[int(uid)] = int(n)
    finally:
        child.send_signal(signal.SIGKILL)
        rest, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    for line in rest.splitlines():  # printed before the kill: acknowledged as well
        _, uid, n = line.split()
        acknowledged[int(uid)] = int(n)
    assert len(acknowledged) >= 150, err

    store = SqlDatabaseStore(location)
    try:
        if store.dialect == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        box = store.mailbox(ALICE)
        stored = {m.uid: m for m in box.messages("INBOX")}
        for uid, n in acknowledged.items():
            assert uid in stored, f"acknowledged message {n} (UID {uid}) was lost"
            assert stored[uid].flags == frozenset({f"n{n}"})
            assert box.body("INBOX", uid) == make_message(n, size=2000 + n % 5000)
        # The store is usable at once: no lock left behind by the killed writer.
        after = box.append("INBOX", make_message(0))
        assert after.uid > max(stored)
    finally:
        store.engine.dispose()
