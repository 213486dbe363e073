"""SMTP benchmark: a Hub Transport server's receive against Postfix's smtpd, same
machine, same load.

Postfix's own load generator, `smtp-source` (Debian's postfix package), sends
--messages messages per load over 1 and 20 sessions, 5 KB and 100 KB each, to:

- casarray: `casarray transport run MBX01` of a small organization (one Hub Transport
  and Mailbox server, one database, the recipient's mailbox in it), on its Default
  receive connector; every message is queued durably (fsync'd) before `250`, then
  delivered into the recipient's mailbox database;
- Postfix: an instance in its own folder (`tests/peers/postfix.py`) whose smtpd queues
  each message (Postfix fsyncs its queue file before `250` too) and hands it to the
  `discard` transport.

It prints messages/s accepted by each, the ratio (goal: >= 0.5x Postfix), and for
casarray the time from `250` to the message being visible over IMAP in the recipient's
INBOX (median and p99 of --probes probes sent while 20 other sessions send
--probe-load (100) 5 KB messages a second; goal: median under 100 ms).

    .venv/bin/python bench/smtp.py
    .venv/bin/python bench/smtp.py --messages 300 --no-casarray   # Postfix only

Needs root (Postfix) and /usr/sbin/smtp-source.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Postfix peer lives with the tests

from tests.peers.postfix import PostfixPeer, missing  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
RATE_GOAL = 0.5
DELIVERY_GOAL_MS = 100.0
LOADS = ((1, 5), (20, 5), (1, 100), (20, 100))  # (sessions, KB)
SENDER = "bench@example.net"
RECIPIENT = "alice@lab.net"


@dataclass
class LoadResult:
    sessions: int
    kilobytes: int
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def smtp_source(host: str, port: int, sessions: int, kilobytes: int, messages: int) -> float:
    """Seconds smtp-source takes to send `messages` of `kilobytes` KB over `sessions`
    parallel sessions (one message per session at a time, as smtp-source does)."""
    argv = [
        SMTP_SOURCE,
        "-c",  # count, so that a failure shows
        "-s",
        str(sessions),
        "-m",
        str(messages),
        "-l",
        str(kilobytes * 1024),
        "-f",
        SENDER,
        "-t",
        RECIPIENT,
        "-M",
        "bench.example.net",
        f"{host}:{port}",
    ]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "error" in done.stderr.lower():
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr[-2000:]}")
    sent = re.findall(r"^(\d+)\s*$", done.stdout, re.M)
    if sent and int(sent[-1]) != messages:
        raise RuntimeError(f"smtp-source sent {sent[-1]} of {messages}")
    return elapsed


def measure(name: str, host: str, port: int, messages: int) -> list[LoadResult]:
    results = []
    for sessions, kilobytes in LOADS:
        count = messages if kilobytes <= 5 else max(50, messages // 5)
        seconds = smtp_source(host, port, sessions, kilobytes, count)
        result = LoadResult(sessions, kilobytes, count, seconds)
        print(
            f"  {name}: {sessions:2d} sessions, {kilobytes:3d} KB: {count} messages in "
            f"{seconds:.2f} s = {result.rate:.0f}/s",
            flush=True,
        )
        results.append(result)
    return results


def measure_postfix(messages: int) -> list[LoadResult]:
    with PostfixPeer(hostname="bench.postfix.test", discard=True) as peer:
        return measure("Postfix", peer.host, peer.port, messages)


def start_transport(base: Path) -> tuple[subprocess.Popen[bytes], str, int, dict[str, str]]:
    """The lab's organization in a directory of its own and `casarray transport run
    MBX01` on a free port for its Default connector: (process, host, port, passwords)."""
    from casarray.directory import Directory
    from casarray.lab.topology import build_seed_organization
    from casarray.transport.transport_process import read_status

    home = base / "casarray"
    home.mkdir(parents=True)
    os.environ["CASARRAY_HOME"] = str(home)
    url = f"sqlite:///{home / 'directory.db'}"
    with Directory.open(url) as directory:
        passwords = build_seed_organization(directory)
        host = directory.servers.one("MBX01").ip_address
    log = open(home / "MBX01-transport.log", "wb")  # noqa: SIM115 - open while it runs
    argv = [sys.executable, "-m", "casarray", "transport", "run", "MBX01", "--directory", url]
    proc = subprocess.Popen(
        [*argv, "--port", "25=0", "--port", "587=0"], stdout=log, stderr=log, env=dict(os.environ)
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = read_status("MBX01", home)
        if found and found.get("ports", {}).get("25"):
            return proc, host, int(found["ports"]["25"]), passwords
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"casarray transport run did not start: {(home / 'MBX01-transport.log')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure_casarray(
    messages: int, probes: int, probe_load: float
) -> tuple[list[LoadResult], list[float]]:
    """casarray's Hub Transport on its Default receive connector; and the time from
    `250` to the message being in alice's INBOX (read from her mailbox database, as an
    IMAP session's change check reads it), for `probes` messages sent while 20 sessions
    send `probe_load` 5 KB messages a second."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="casarray-smtp-") as base:
        proc, host, port, _ = start_transport(Path(base))
        try:
            results = measure("casarray", host, port, messages)
            with paced_load(host, port, 20, probe_load):
                delays = probe_delivery(host, port, probes)
        finally:
            stop(proc)
    return results, delays


@contextlib.contextmanager
def paced_load(host: str, port: int, sessions: int, rate: float) -> Iterator[None]:
    """`sessions` SMTP sessions sending 5 KB messages at `rate` a second in all."""
    import smtplib
    import threading

    body = b"Subject: load\r\n\r\n" + (b"x" * 76 + b"\r\n") * 66
    stop_load = threading.Event()

    def session() -> None:
        with smtplib.SMTP(host, port, timeout=60) as client:
            while not stop_load.is_set():
                started = time.monotonic()
                client.sendmail(SENDER, [RECIPIENT], body)
                stop_load.wait(max(0.0, sessions / rate - (time.monotonic() - started)))

    threads = [threading.Thread(target=session, daemon=True) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop_load.set()
        for thread in threads:
            thread.join(60)


def probe_delivery(host: str, port: int, probes: int) -> list[float]:
    """Seconds from each probe's `250` to its message in alice's INBOX."""
    import smtplib

    from casarray.directory import Directory
    from casarray.mailstore.provisioning import open_mailbox

    with Directory.open(None) as directory:
        alice = directory.mailboxes.one("alice")
        box = open_mailbox(directory.databases.one(alice.database), alice.guid)
    delays = []
    for n in range(probes):
        subject = f"probe {n} {time.time_ns()}"
        # the INBOX's state before the probe is sent: read after its 250, it could
        # already hold the probe (delivered while a long INBOX was being read)
        seen = box.changes_since("INBOX", 0).highest_modseq
        with smtplib.SMTP(host, port, timeout=30) as client:
            client.sendmail(
                "probe@example.net", [RECIPIENT], f"Subject: {subject}\r\n\r\nx\r\n".encode()
            )
            accepted = time.perf_counter()
        while True:
            changes = box.changes_since("INBOX", seen)
            if changes.changed:
                uids = [info.uid for info in changes.changed]
                envelopes = box.envelopes("INBOX", uids)
                if any(subject in text for text in envelopes.values()):
                    delays.append(time.perf_counter() - accepted)
                    break
                seen = changes.highest_modseq
            if time.perf_counter() - accepted > 30:
                raise RuntimeError(f"probe {n} not delivered in 30 s")
            time.sleep(0.002)
    return delays


def report(
    cas: list[LoadResult] | None,
    peer: list[LoadResult] | None,
    delays: list[float],
    probe_load: float,
) -> int:
    print()
    print(f"  {'load':26} {'casarray/s':>11} {'Postfix/s':>10} {'ratio':>6}")
    misses = 0
    for i, (sessions, kilobytes) in enumerate(LOADS):
        a = cas[i].rate if cas else None
        b = peer[i].rate if peer else None
        ratio = f"{a / b:6.2f}" if a is not None and b else "     -"
        mark = ""
        if a is not None and b and a / b < RATE_GOAL:
            mark, misses = "  < goal", misses + 1
        label = f"{sessions} session{'s' if sessions > 1 else ''}, {kilobytes} KB"
        shown_a = f"{a:11.0f}" if a is not None else f"{'-':>11}"
        shown_b = f"{b:10.0f}" if b is not None else f"{'-':>10}"
        print(f"  {label:26} {shown_a} {shown_b} {ratio}{mark}")
    if delays:
        ordered = sorted(delays)
        median = 1000 * ordered[len(ordered) // 2]
        p99 = 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        mark = ""
        if median >= DELIVERY_GOAL_MS:
            mark, misses = "  > goal", misses + 1
        print(
            f"\n  250 -> in the INBOX, {len(delays)} probes while 20 sessions send "
            f"{probe_load:g} messages/s: "
            f"median {median:.0f} ms, p99 {p99:.0f} ms{mark}"
        )
    print()
    print(
        f"Goal: messages/s accepted >= {RATE_GOAL}x Postfix's; 250 -> INBOX median under "
        f"{DELIVERY_GOAL_MS:g} ms. {misses} missed."
    )
    return 1 if misses else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="per 5 KB load (100 KB: /5)")
    parser.add_argument("--probes", type=int, default=50, help="250 -> INBOX probes")
    parser.add_argument(
        "--probe-load", type=float, default=100.0, help="messages/s sent during the probes"
    )
    parser.add_argument("--no-casarray", action="store_true")
    parser.add_argument("--no-postfix", action="store_true")
    args = parser.parse_args()
    why = missing()
    if why is None and not os.path.exists(SMTP_SOURCE):
        why = "smtp-source is not installed (Debian's postfix package)"
    if why is not None:
        print(f"bench/smtp.py: {why}", file=sys.stderr)
        return 2
    peer = None if args.no_postfix else measure_postfix(args.messages)
    cas: list[LoadResult] | None = None
    delays: list[float] = []
    if not args.no_casarray:
        cas, delays = measure_casarray(args.messages, args.probes, args.probe_load)
    return report(cas, peer, delays, args.probe_load)


if __name__ == "__main__":
    sys.exit(main())
