"""Inputs the fuzzers found (bench/fuzz.py, tests/fuzz_targets.py), each the smallest
that broke the mail store, kept as tests of what a client sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.mailstore.mime import cached_parts, to_wire
from casarray.mailstore.store import SqlDatabaseStore

ALICE = "a11ce000-0000-4000-8000-000000000001"
# An 8-bit byte in a MIME parameter's value: BODY and BODYSTRUCTURE carry it as sent.
LATIN1_PARAMETER = b"Content-Type: text/plain; name=d\xe9tail\r\n\r\nx\r\n"


@pytest.fixture(params=["direct", "sqlalchemy"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabaseStore]:
    """A SQLite mailbox database, through sqlite3 (the hot path) or SQLAlchemy (the
    path PostgreSQL takes)."""
    db = SqlDatabaseStore(str(tmp_path / "DB01.db"))
    if request.param == "sqlalchemy":
        db.direct = None
    yield db
    db.engine.dispose()


def test_a_message_with_8bit_bytes_in_its_structure_is_stored_and_served(
    store: SqlDatabaseStore,
) -> None:
    # APPEND of it was NO [SERVERBUG]: the BODY structure went into a UTF-8 column as it
    # was, lone surrogates and all
    box = store.create_mailbox(ALICE)
    appended = box.append("INBOX", LATIN1_PARAMETER, [])
    [parts] = box.cached("INBOX", [appended.uid]).values()
    assert parts == cached_parts(LATIN1_PARAMETER)
    assert b'("name" {6}\r\nd\xe9tail ' in to_wire(parts.body)  # a literal, as sent
    assert box.bodies("INBOX", [appended.uid]) == {appended.uid: LATIN1_PARAMETER}
