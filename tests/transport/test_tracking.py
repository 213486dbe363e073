"""The message tracking log: Exchange's MSGTRK files (directives, CSV lines), read back
with filters; rotation by day and by size, retention by age and folder size; a torn last
line skipped; whole lines from concurrent threads and processes; the header fields of a
message read from its header section only."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casarray.transport.queue import NewMessage, NewRecipient
from casarray.transport.tracking import (
    DELIVER,
    FIELDS,
    RECEIVE,
    TrackingLog,
    message_fields,
    track_receive,
    tracking_path,
)

T0 = datetime(2010, 3, 28, 9, 15, 22, 123456, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def event(log: TrackingLog, n: int, event_id: str = RECEIVE, **more: object) -> None:
    log.record(
        event_id,
        internal_message_id=f"{n:016X}",
        message_id=f"<{n}@lab.net>",
        sender="bob@lab.net",
        recipients=["alice@lab.net", "carol@lab.net"],
        total_bytes=100 + n,
        message_subject=f"Message {n}",
        **more,  # type: ignore[arg-type]
    )


def test_files_are_exchanges_format(tmp_path: Path) -> None:
    log = TrackingLog("MBX01", tmp_path, clock=Clock())
    log.record(
        RECEIVE,
        internal_message_id="018F2A3B4C5D6E7F",
        message_id="<1@lab.net>",
        sender="bob@lab.net",
        recipients=["alice@lab.net", "carol@lab.net"],
        client_ip="198.51.100.7",
        server_ip="127.77.1.21",
        server_hostname="MBX01.lab.net",
        connector_id="MBX01\\Default MBX01",
        total_bytes=1234,
        message_subject='Lunch, "today"\r\nor not',
        return_path="bob@lab.net",
        client_hostname="mta.far.net",
    )
    log.close()
    path = tracking_path("MBX01", tmp_path) / "MSGTRK20100328-1.LOG"
    assert path.parent == tmp_path / "transport" / "mbx01" / "MessageTracking"
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    assert lines[0] == "#Software: casarray"
    assert lines[2] == "#Log-type: Message Tracking Log"
    assert lines[3] == "#Date: 2010-03-28T09:15:22.123Z"
    assert lines[4] == "#Fields: " + ",".join(FIELDS)
    assert lines[5].startswith(
        "2010-03-28T09:15:22.123Z,198.51.100.7,mta.far.net,127.77.1.21,MBX01.lab.net,,"
        "MBX01\\Default MBX01,SMTP,RECEIVE,018F2A3B4C5D6E7F,<1@lab.net>,"
        "alice@lab.net;carol@lab.net,,1234,2,,,"
        '"Lunch, ""today""  or not",bob@lab.net,bob@lab.net,'
    )
    assert lines[6:] == [""]
    [found] = log.search()
    assert found.timestamp == datetime(2010, 3, 28, 9, 15, 22, 123000, tzinfo=UTC)
    assert found.recipients == ("alice@lab.net", "carol@lab.net")
    assert found.recipient_count == 2 and found.total_bytes == 1234
    assert found.message_subject == 'Lunch, "today"  or not'
    assert found.connector_id == "MBX01\\Default MBX01"
    assert found.client_hostname == "mta.far.net"


def test_search_filters(tmp_path: Path) -> None:
    clock = Clock()
    log = TrackingLog("MBX01", tmp_path, clock=clock)
    for n in range(10):
        clock.now = T0 + timedelta(minutes=n)
        event(log, n, RECEIVE if n % 2 == 0 else DELIVER)
    log.record(
        "FAIL",
        internal_message_id="F",
        sender="eve@lab.net",
        recipients=["dan@far.net"],
        recipient_status=["550 5.1.1 unknown; really"],
    )

    def ids(**filters: object) -> list[str]:
        return [e.internal_message_id[-1] for e in log.search(**filters)]  # type: ignore[arg-type]

    assert ids() == [*"0123456789", "F"]
    assert ids(event_ids=["deliver"]) == list("13579")
    assert ids(message_id="<3@LAB.net>") == ["3"]
    assert ids(internal_message_id="0000000000000004") == ["4"]
    assert ids(sender="EVE@lab.net") == ["F"]
    assert ids(recipients=["dan@far.net", "nobody@lab.net"]) == ["F"]
    assert ids(message_subject="sage 7") == ["7"]
    start = T0.replace(microsecond=0) + timedelta(minutes=2)  # the log keeps milliseconds
    assert ids(start=start, end=start + timedelta(minutes=2, seconds=1)) == list("234")
    assert ids(limit=3) == list("012")
    [fail] = log.search(event_ids=["FAIL"])
    assert fail.recipient_status == ("550 5.1.1 unknown, really",)
    # a naive date is local time
    local = (start + timedelta(minutes=6)).astimezone().replace(tzinfo=None)
    assert ids(start=local, event_ids=["RECEIVE", "DELIVER"]) == ["8", "9"]


def test_rotation_by_day_and_by_size(tmp_path: Path) -> None:
    clock = Clock()
    log = TrackingLog("MBX01", tmp_path, clock=clock, max_file_size=2000)
    for n in range(30):
        event(log, n)
    clock.now = T0 + timedelta(days=1)
    event(log, 30)
    names = [f.path.name for f in log.files()]
    assert names[0] == "MSGTRK20100328-1.LOG" and len(names) > 3
    assert names[-1] == "MSGTRK20100329-1.LOG"
    for one in log.files()[:-2]:
        assert 2000 <= one.path.stat().st_size < 2400  # full: the next line went on
    assert [int(e.internal_message_id, 16) for e in log.search()] == list(range(31))
    # a second writer (another process) goes on in the last file, not the first
    other = TrackingLog("MBX01", tmp_path, clock=clock, max_file_size=2000)
    event(other, 31)
    assert len(log.files()) == len(names)
    # a day's files are skipped by a search that starts later
    later = list(log.search(start=T0.replace(microsecond=0) + timedelta(days=1)))
    assert [e.internal_message_id[-2:] for e in later] == ["1E", "1F"]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    log = TrackingLog("MBX01", tmp_path, clock=Clock())
    event(log, 1)
    event(log, 2)
    log.close()
    [one] = log.files()
    data = one.path.read_bytes()
    one.path.write_bytes(data[:-20])  # the last line cut short, as by a power loss
    assert [e.internal_message_id[-1] for e in log.search()] == ["1"]
    # a garbage line in the middle is skipped too, and writing goes on after it
    with one.path.open("ab") as handle:
        handle.write(b"\r\nnot,a,line\r\n")
    event(log, 3)
    assert [e.internal_message_id[-1] for e in log.search()] == ["1", "3"]


def test_concurrent_threads_write_whole_lines(tmp_path: Path) -> None:
    log = TrackingLog("MBX01", tmp_path, max_file_size=50_000)

    def write(base: int) -> None:
        for n in range(200):
            event(log, base + n)

    threads = [threading.Thread(target=write, args=(1000 * k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = sorted(int(e.internal_message_id, 16) for e in log.search())
    assert found == sorted(1000 * k + n for k in range(4) for n in range(200))
    assert len(log.files()) > 1


def _writer(home: str, base: int, count: int) -> None:
    log = TrackingLog("MBX01", Path(home), max_file_size=40_000)
    for n in range(count):
        event(log, base + n)
    os._exit(0)  # as a kill would: no close


def test_concurrent_processes_write_whole_lines(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_writer, args=(str(tmp_path), 10_000 * k, 300)) for k in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    log = TrackingLog("MBX01", tmp_path)
    found = sorted(int(e.internal_message_id, 16) for e in log.search())
    assert found == sorted(10_000 * k + n for k in range(3) for n in range(300))
    for one in log.files():  # every file starts with its directives
        assert one.path.read_bytes().startswith(b"#Software: casarray\r\n")
    assert not [p for p in log.path.iterdir() if p.name.startswith(".")]


def test_retention_by_age_and_folder_size(tmp_path: Path) -> None:
    clock = Clock()
    log = TrackingLog("MBX01", tmp_path, clock=clock)
    for day in range(5):
        clock.now = T0 + timedelta(days=day)
        event(log, day)
    log.close()
    files = log.files()
    for age, one in zip((40, 31, 29, 2, 0), files, strict=True):
        stamp = (T0 + timedelta(days=4) - timedelta(days=age)).timestamp()
        os.utime(one.path, (stamp, stamp))
    # applied when a writer opens
    writer = TrackingLog("MBX01", tmp_path, clock=clock)
    writer.open()
    assert [f.path.name[6:14] for f in writer.files()] == ["20100330", "20100331", "20100401"]
    writer.close()
    # and the oldest go while the folder is over its size
    small = TrackingLog("MBX01", tmp_path, clock=clock, max_directory_size=1)
    small.open()
    assert [f.path.name[6:14] for f in small.files()] == ["20100401"]


def test_a_write_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "transport").write_text("not a folder")
    log = TrackingLog("MBX01", tmp_path)
    event(log, 1)
    event(log, 2)
    assert caplog.text.count("can't be written") == 1
    assert list(log.search()) == []


def test_message_fields_read_the_header_section_only() -> None:
    data = (
        b"Received: from x\r\n\tby y\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n  and more\r\n"
        b"message-id:\r\n <abc@lab.net>\r\n\r\nMessage-ID: <body@lab.net>\r\nSubject: no\r\n"
    )
    assert message_fields(data) == ("<abc@lab.net>", "Café and more")
    assert message_fields(b"From: a\r\n\r\nSubject: body\r\n") == ("", "")
    assert message_fields(b"") == ("", "")


def test_track_receive(tmp_path: Path) -> None:
    log = TrackingLog("MBX01", tmp_path)
    message = NewMessage(
        sender="x@far.net",
        recipients=(NewRecipient("alice@lab.net"), NewRecipient("bob@lab.net")),
        data=b"Message-ID: <m1@far.net>\r\nSubject: hi\r\n\r\nbody\r\n",
        client_address="198.51.100.7",
        client_helo="mta.far.net",
        queue_id="018F2A3B4C5D6E7F",
    )
    started = time.perf_counter()
    track_receive(log, message, connector_id="MBX01\\Default MBX01", server_ip="127.77.1.21")
    assert time.perf_counter() - started < 1
    [found] = log.search(message_id="<m1@far.net>")
    assert (found.event_id, found.source, found.internal_message_id) == (
        RECEIVE,
        "SMTP",
        "018F2A3B4C5D6E7F",
    )
    assert found.recipients == ("alice@lab.net", "bob@lab.net")
    assert found.client_ip == "198.51.100.7" and found.client_hostname == "mta.far.net"
    assert found.message_subject == "hi" and found.total_bytes == len(message.data)
    assert found.sender == found.return_path == "x@far.net"


@given(st.lists(st.text(max_size=20), min_size=2, max_size=6))
def test_a_line_is_what_the_csv_module_writes(values: list[str]) -> None:
    """The writer builds its lines itself; the csv module reads them back as written
    (line breaks and NULs made spaces) and would have written the same."""
    import csv
    import io

    from casarray.transport.tracking import _clean, _csv_line

    cleaned = [_clean(v) for v in values]
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerow(cleaned)
    line = _csv_line(values)
    assert line == expected.getvalue()
    assert next(csv.reader([line.rstrip("\r\n")])) == cleaned
