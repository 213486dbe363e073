"""The short soak (issue 17): a lab of its own under the mixed load of
`casarray.lab.soak` (IMAP, SMTP on 25 and 587, EWS, web mail, cmdlets, all through the
lab's names) while a few dozen faults kill its processes at random (kill -9 of Client
Access workers and masters, Mailbox servers, Hub Transports, the DNS server, the NLB
balancer). Afterwards nothing acknowledged is lost, duplicated, resurrected or changed,
every process came back by itself, and the queues are empty. `bench/soak.py` is the
long version (1,000 faults); the report printed here has the same figures."""

from __future__ import annotations

import time
from pathlib import Path

from casarray.lab.soak.run import SoakOptions, run_soak

FAULTS = 24


def test_nothing_acknowledged_is_lost_while_processes_die(tmp_path: Path) -> None:
    started = time.monotonic()
    report = run_soak(
        SoakOptions(
            faults=FAULTS,
            minutes=1.5,
            seed=17,
            keep=tmp_path / "soak",
            gap=(1.0, 2.4),
            pace=0.6,
            clients={"imap": 3, "smtp25": 1, "smtp587": 1, "ews": 1, "web": 1},
            quiet_timeout=60.0,
            say=lambda text: print(f"[{time.monotonic() - started:5.1f} s] {text}"),
        )
    )
    text = report.to_text()
    print("\n" + text)
    assert sum(report.faults.values()) == FAULTS, text
    assert set(report.faults) >= {"cas-worker", "cas-master", "mailbox", "transport"}, text
    for op in ("imap.append", "imap.move", "smtp.send", "web.send"):
        assert report.operations[op]["ok"] > 0, (op, text)
    assert report.lost == 0, text
    assert report.passed, text
