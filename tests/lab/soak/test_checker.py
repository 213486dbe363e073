"""The soak's checker, history and report on hand-made histories and mailboxes (no
lab): what each acknowledged, refused or unknown operation allows to be found at the
end, and what it calls each difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from casarray.lab.soak import history, report
from casarray.lab.soak.checker import Finding, Found, Observed, check, failures, subject_id, tally
from casarray.lab.soak.history import FAILED, OK, UNKNOWN, History, encode

ALICE, BOB = "alice@lab.net", "bob@lab.net"
A, B, C = "Soak-imap0-A", "Soak-imap0-B", "Soak-imap0-C"


def raw(soak_id: str, body: str = "hello") -> bytes:
    return f"Subject: soak [soak:{soak_id}] imap\r\nX-Soak-Id: {soak_id}\r\n\r\n{body}\r\n".encode()


def rec(
    op: str, outcome: str = OK, client: str = "imap0", t0: float = 0.0, **fields: Any
) -> dict[str, Any]:
    return {
        "client": client,
        "op": op,
        "outcome": outcome,
        "t0": t0,
        "t1": t0,
        "user": ALICE,
        **fields,
    }


def append(
    soak_id: str, outcome: str = OK, uid: int | None = 1, flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "folder": A,
        "soak_id": soak_id,
        "raw": encode(raw(soak_id)),
        "flags": list(flags),
    }
    if outcome == OK:
        fields["uid"] = uid
    return rec("imap.append", outcome, **fields)


def box(*messages: tuple[str, str, Found]) -> Observed:
    observed = Observed()
    for user, folder, found in messages:
        observed.folders.setdefault((user, folder), []).append(found)
    return observed


def kinds(findings: list[Finding]) -> list[str]:
    return sorted(f.kind for f in findings)


def test_an_acknowledged_append_found_as_told_is_fine_and_missing_is_lost() -> None:
    records = [append("m1", uid=7, flags=("\\Seen",))]
    there = box((ALICE, A, Found(7, frozenset({"\\Seen", "\\Recent"}), raw("m1"))))
    assert check(records, there) == []
    [lost] = check(records, Observed())
    assert lost.kind == "lost" and "m1" in lost.what and A in lost.what


def test_an_append_found_with_other_bytes_uid_or_flags() -> None:
    records = [append("m1", uid=7)]
    changed = box((ALICE, A, Found(7, frozenset(), raw("m1", "changed"))))
    assert kinds(check(records, changed)) == ["corrupt"]
    moved = box((ALICE, A, Found(8, frozenset({"\\Flagged"}), raw("m1"))))
    assert kinds(check(records, moved)) == ["flags", "uid"]


def test_an_unknown_append_may_be_there_once_or_not_never_twice() -> None:
    records = [append("m1", UNKNOWN)]
    once = Found(3, frozenset(), raw("m1"))
    assert check(records, Observed()) == []
    assert check(records, box((ALICE, A, once))) == []
    twice = box((ALICE, A, once), (ALICE, A, Found(4, frozenset(), raw("m1"))))
    assert kinds(check(records, twice)) == ["duplicated"]


def test_a_refused_append_found_is_a_phantom() -> None:
    records = [append("m1", FAILED)]
    assert check(records, Observed()) == []
    assert kinds(check(records, box((ALICE, A, Found(1, frozenset(), raw("m1")))))) == ["phantom"]


def test_flags_are_the_last_acknowledged_store_or_an_unknown_one_after_it() -> None:
    stored = [
        append("m1", uid=1),
        rec("imap.store", folder=A, soak_id="m1", uid=1, flags=["\\Seen", "$Soak"]),
    ]
    seen_soak = Found(1, frozenset({"\\Seen", "$Soak"}), raw("m1"))
    assert check(stored, box((ALICE, A, seen_soak))) == []
    old = Found(1, frozenset(), raw("m1"))
    assert kinds(check(stored, box((ALICE, A, old)))) == ["flags"]
    unknown = [
        *stored,
        rec("imap.store", UNKNOWN, folder=A, soak_id="m1", uid=1, flags=["\\Flagged"]),
    ]
    assert check(unknown, box((ALICE, A, seen_soak))) == []
    assert check(unknown, box((ALICE, A, Found(1, frozenset({"\\Flagged"}), raw("m1"))))) == []
    assert kinds(check(unknown, box((ALICE, A, old)))) == ["flags"]
    refused = [*stored, rec("imap.store", FAILED, folder=A, soak_id="m1", uid=1, flags=[])]
    assert check(refused, box((ALICE, A, seen_soak))) == []


def test_an_acknowledged_expunge_must_be_gone_an_unknown_one_may_not() -> None:
    gone = [append("m1"), rec("imap.expunge", folder=A, soak_id="m1", uid=1)]
    still = box((ALICE, A, Found(1, frozenset({"\\Deleted"}), raw("m1"))))
    assert check(gone, Observed()) == []
    [back] = check(gone, still)
    assert back.kind == "resurrected" and "imap.expunge" in back.what
    deleted = rec("imap.store", folder=A, soak_id="m1", uid=1, flags=["\\Deleted"])
    maybe = [append("m1"), deleted, rec("imap.expunge", UNKNOWN, folder=A, soak_id="m1", uid=1)]
    assert check(maybe, Observed()) == [] and check(maybe, still) == []


def test_copy_and_move_are_checked_in_both_folders() -> None:
    records = [
        append("m1", uid=1),
        rec("imap.copy", folder=A, soak_id="m1", uid=1, dest=B, dest_uid=5),
        append("m2", uid=2),
        rec("imap.move", folder=A, soak_id="m2", uid=2, dest=C, dest_uid=9),
    ]
    right = box(
        (ALICE, A, Found(1, frozenset(), raw("m1"))),
        (ALICE, B, Found(5, frozenset(), raw("m1"))),
        (ALICE, C, Found(9, frozenset(), raw("m2"))),
    )
    assert check(records, right) == []
    wrong = box(
        (ALICE, A, Found(1, frozenset(), raw("m1"))),
        (ALICE, A, Found(2, frozenset(), raw("m2"))),  # MOVE's source left behind
        (ALICE, B, Found(6, frozenset(), raw("m1"))),  # not the COPYUID
    )
    assert kinds(check(records, wrong)) == ["lost", "resurrected", "uid"]


def test_a_move_of_unknown_outcome_leaves_the_message_in_one_folder_exactly() -> None:
    records = [
        append("m1", uid=1),
        rec("imap.move", UNKNOWN, folder=A, soak_id="m1", uid=1, dest=C),
    ]
    source, dest = (
        (ALICE, A, Found(1, frozenset(), raw("m1"))),
        (ALICE, C, Found(4, frozenset(), raw("m1"))),
    )
    assert check(records, box(source)) == []
    assert check(records, box(dest)) == []
    assert kinds(check(records, box(source, dest))) == ["atomic"]
    assert kinds(check(records, Observed())) == ["atomic"]


def test_a_delivery_is_in_every_recipients_inbox_under_the_headers_added() -> None:
    sent = raw("d1")
    records = [
        rec(
            "smtp.send",
            client="smtp25-0",
            soak_id="d1",
            recipients=[ALICE, BOB],
            raw=encode(sent),
            queue_id="Q1",
        )
    ]
    delivered = b"Return-Path: <partner@example.net>\r\nReceived: from x by MBX01 id Q1\r\n" + sent
    assert (
        check(
            records,
            box(
                (ALICE, "INBOX", Found(1, frozenset(), delivered)),
                (BOB, "INBOX", Found(1, frozenset(), delivered)),
            ),
        )
        == []
    )
    [lost] = check(records, box((ALICE, "INBOX", Found(1, frozenset(), delivered))))
    assert lost.kind == "lost" and BOB in lost.what
    cut = b"Received: x\r\n" + sent[:-8] + b"\r\n"
    findings = check(
        records,
        box(
            (ALICE, "INBOX", Found(1, frozenset(), cut)),
            (BOB, "INBOX", Found(1, frozenset(), delivered)),
        ),
    )
    assert kinds(findings) == ["corrupt"]


def test_a_documented_duplicate_is_reported_apart_and_does_not_fail() -> None:
    records = [
        rec("smtp.send", soak_id="d1", recipients=[BOB], raw=encode(raw("d1")), relayed=True)
    ]
    twice = box(
        (BOB, "INBOX", Found(1, frozenset(), raw("d1"))),
        (BOB, "INBOX", Found(2, frozenset(), raw("d1"))),
    )
    findings = check(records, twice)
    assert kinds(findings) == ["documented"] and failures(findings) == []
    assert tally(findings)["documented"] == 1 and tally(findings)["duplicated"] == 0


def test_web_mail_sends_are_in_the_inbox_and_the_senders_sent_folder() -> None:
    records = [rec("web.send", client="web-alice", soak_id="w1", recipients=[BOB])]
    copy = Found(1, frozenset({"\\Seen"}), raw("w1"))
    observed = box((BOB, "INBOX", copy), (ALICE, "Sent Items", copy))
    observed.special_use[(ALICE, "\\sent")] = "Sent Items"
    assert check(records, observed) == []
    del observed.folders[(ALICE, "Sent Items")]
    [lost] = check(records, observed)
    assert lost.kind == "lost" and "Sent Items" in lost.what


def test_ews_items_created_updated_moved_and_deleted() -> None:
    def ews(op: str, outcome: str = OK, **fields: Any) -> dict[str, Any]:
        return rec(op, outcome, client="ews-alice", **fields)

    records = [
        ews("ews.create", folder="\\Drafts", soak_id="e1", item_id="X1"),
        ews("ews.update", folder="\\Drafts", soak_id="e1", flag_values={"\\Seen": False}),
        ews("ews.create", folder="\\Drafts", soak_id="e2", item_id="X2"),
        ews("ews.move", folder="\\Drafts", soak_id="e2", dest="SoakEWS"),
        ews("ews.create", folder="\\Drafts", soak_id="e3", item_id="X3"),
        ews("ews.delete", folder="\\Drafts", soak_id="e3"),
    ]
    observed = box(
        (ALICE, "Drafts", Found(1, frozenset({"\\Draft"}), raw("e1"))),
        (ALICE, "SoakEWS", Found(1, frozenset({"\\Seen"}), raw("e2"))),
    )
    observed.special_use[(ALICE, "\\drafts")] = "Drafts"
    assert check(records, observed) == []
    observed.folders[(ALICE, "Drafts")] = [
        Found(1, frozenset({"\\Seen"}), raw("e1")),
        Found(3, frozenset(), raw("e3")),
    ]
    assert kinds(check(records, observed)) == ["flags", "resurrected"]


def test_cmdlets_their_last_acknowledged_value_or_an_unknown_one() -> None:
    def shell(outcome: str, value: str, before: str = "bj-cas.lab.net") -> dict[str, Any]:
        return rec(
            "shell.set-database",
            outcome,
            client="shell",
            setting="db:SoakDB1:rpc",
            value=value,
            before=before,
        )

    acknowledged = [shell(OK, "cas01.lab.net"), shell(FAILED, "cas02.lab.net", "cas01.lab.net")]
    observed = Observed(directory={"db:SoakDB1:rpc": "cas01.lab.net"})
    assert check(acknowledged, observed) == []
    observed.directory["db:SoakDB1:rpc"] = "cas02.lab.net"
    [wrong] = check(acknowledged, observed)
    assert wrong.kind == "directory" and "cas02.lab.net" in wrong.what
    unknown = [shell(OK, "cas01.lab.net"), shell(UNKNOWN, "cas02.lab.net", "cas01.lab.net")]
    for value in ("cas01.lab.net", "cas02.lab.net"):
        assert check(unknown, Observed(directory={"db:SoakDB1:rpc": value})) == []


def test_each_clients_records_replay_in_its_own_order() -> None:
    """Two clients' records interleaved: each one's expunge applies to its own append."""
    records = [
        append("m1", uid=1),
        {**append("n1", uid=1), "client": "imap1", "user": BOB},
        rec("imap.expunge", folder=A, soak_id="m1", uid=1),
    ]
    observed = box((BOB, A, Found(1, frozenset(), raw("n1"))))
    assert check(records, observed) == []


def test_stuck_recipients_and_processes_not_back_are_findings() -> None:
    observed = Observed(
        queued=[{"what": "MBX01 Q1 to bob@lab.net", "why": "Retry, 3 attempts"}],
        process_problems=["MBX02-transport is Restarting"],
    )
    assert kinds(check([], observed)) == ["process", "stuck"]


def test_the_soak_id_is_read_from_the_subject_only() -> None:
    assert subject_id(raw("r1-imap0-000001")) == "r1-imap0-000001"
    folded = b"Subject: soak\r\n [soak:x-1] web\r\n\r\nbody"
    assert subject_id(folded) == "x-1"
    report_of_it = b"Subject: Undeliverable: soak [soak:x-1] web\r\n\r\n[soak:x-1]"
    assert subject_id(report_of_it) is None


def test_history_lines_are_on_file_at_once_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "load.jsonl"
    with History(path) as h:
        h.record("imap0", "imap.append", OK, 1.0, soak_id="m1", uid=3)
        assert json.loads(path.read_text())["uid"] == 3  # before close
        h.record("imap0", "imap.append", UNKNOWN, 2.0, soak_id="m2")
    with path.open("a") as file:
        file.write('{"client": "imap0", "op": "imap.app')  # the writer killed mid-line
    records = history.read(history.files(tmp_path))
    assert [(r["soak_id"], r["outcome"]) for r in records] == [("m1", OK), ("m2", UNKNOWN)]


def test_the_report_counts_and_the_unavailable_time_per_fault_kind() -> None:
    records = [
        rec("fault.transport", client="chaos", t0=100.0, victim="MBX01-transport"),
        rec("recovery.transport", client="chaos", t0=101.0, after=2.5),
        rec("smtp.send", FAILED, client="smtp25-0", t0=100.5),
        rec("smtp.send", FAILED, client="smtp25-0", t0=101.0),
        rec("smtp.send", OK, client="smtp25-0", t0=103.2),
        rec("imap.append", OK, t0=100.2, soak_id="m", folder=A, raw=encode(raw("m"))),
        rec("fault.dns", client="chaos", t0=200.0),
        rec("recovery.dns", FAILED, client="chaos", t0=290.0, victim="DNS", after=90),
        rec("dns.resolve", OK, client="dns", t0=200.5),
        rec("imap.append", UNKNOWN, t0=201.0, soak_id="u", folder=A, raw=encode(raw("u"))),
    ]
    soak = report.build(records, [Finding("lost", "imap.append x")])
    assert soak.faults == {"transport": 1, "dns": 1}
    assert soak.recovered == {"transport": [2.5]} and soak.not_recovered == [
        "dns DNS (not back after 90 s)"
    ]
    assert soak.operations["smtp.send"] == {OK: 1, FAILED: 2}
    assert (soak.acknowledged, soak.unknown, soak.lost) == (2, 1, 1)
    [transport] = soak.outages["transport"]
    assert (transport.seconds, transport.family) == (3.2, "smtp")
    assert soak.outages["dns"][0].seconds == 0.0
    assert not soak.passed
    text = soak.to_text()
    assert "Lost: 1 (goal 0)" in text and text.endswith("FAILED")
    assert json.loads(json.dumps(soak.to_json()))["unavailable"]["transport"]["longest"] == 3.2
