"""Limits under load: a normal client's latency while one address floods a server with
idle connections and a slowloris, casarray against Dovecot (IMAP) and Postfix (SMTP),
same machine, same run. Loopback only.

For each server: --idle (5,000) connections from 127.0.0.1 that send nothing, and
--slow (500) from 127.0.0.1 that send an unfinished command or request header a byte
every second; then a normal client at 127.0.0.2 times --samples whole operations:

- IMAP: connect, LOGIN, SELECT INBOX, FETCH 1 BODY[], LOGOUT (casarray's CAS01, one
  process; Dovecot as bench/imap.py runs it);
- SMTP: connect, EHLO, MAIL, RCPT, DATA of 1 KB, QUIT (casarray's Hub Transport as
  bench/smtp.py runs it; Postfix's smtpd with the discard transport);
- HTTP: connect, GET /owa/healthcheck.htm (casarray's CAS01);
- DNS over TCP: connect, lab.net SOA (`casarray dns run`).

It prints per server the connections the flood holds when the measure starts (the rest
were refused or cut by the server's limits), and the normal client's p50/p99/max in ms,
with casarray/peer ratios. Goal: every casarray p99 under 100 ms.

    .venv/bin/python bench/limits.py
    .venv/bin/python bench/limits.py --idle 1000 --slow 100 --samples 50

Needs root and /usr/sbin/dovecot and postfix for the peers (else casarray only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import benchlib
import imap as imap_bench
import smtp as smtp_bench

FLOOD_SOURCE, CLIENT_SOURCE = "127.0.0.1", "127.0.0.2"
DNS_ADDRESS = "127.77.0.53"
GOAL_MS = 100.0
SLOW_BYTES = {
    "IMAP": b"a1 LOGIN someone-typing-very-slowly " * 10,
    "SMTP": b"EHLO a-client-typing-very-slowly.example " * 10,
    "HTTP": b"GET /owa/ HTTP/1.1\r\nHost: cas01\r\nX-Slow: " + b"s" * 400,
    "DNS": struct.pack("!H", 400) + b"\x00" * 400,
}


@dataclass
class Result:
    protocol: str
    server: str
    held: int
    latencies_ms: list[float]
    errors: int
    first_error: str = ""

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


# -- the flood ---------------------------------------------------------------------------


class Flood:
    """--idle connections that send nothing and --slow that send a byte a second, from
    FLOOD_SOURCE; `held` counts those the server has not closed."""

    def __init__(self, host: str, port: int, idle: int, slow: int, slow_bytes: bytes) -> None:
        self.host, self.port = host, port
        self.idle, self.slow, self.slow_bytes = idle, slow, slow_bytes
        self.open = 0
        self.failed = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def _one(self, slow: bool) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, local_addr=(FLOOD_SOURCE, 0)), 10
            )
        except (OSError, TimeoutError):
            self.failed += 1
            return
        self.open += 1
        try:
            if slow:
                for byte in self.slow_bytes:
                    writer.write(bytes([byte]))
                    with contextlib.suppress(TimeoutError):
                        if await asyncio.wait_for(reader.read(4096), 1.0) == b"":
                            return  # closed by the server
                await reader.read()
            else:
                while await reader.read(4096):
                    pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def start(self) -> None:
        gate = asyncio.Semaphore(200)

        async def paced(slow: bool) -> None:
            async with gate:
                task = asyncio.ensure_future(self._one(slow))
                self.tasks.append(task)
                await asyncio.sleep(0)

        await asyncio.gather(*(paced(False) for _ in range(self.idle)))
        await asyncio.gather(*(paced(True) for _ in range(self.slow)))
        await asyncio.sleep(2.0)  # the server's refusals arrive

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# -- the normal client (blocking sockets, in a thread) -----------------------------------


def connect(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=10, source_address=(CLIENT_SOURCE, 0))


def imap_once(host: str, port: int) -> None:
    with connect(host, port) as sock:
        stream = sock.makefile("rb")
        if not stream.readline().startswith(b"* OK"):
            raise RuntimeError("no IMAP greeting")
        for tag, command in (
            (b"a1", b"LOGIN " + imap_bench.USER.encode() + b" " + imap_bench.PASSWORD.encode()),
            (b"a2", b"SELECT INBOX"),
            (b"a3", b"FETCH 1 BODY[]"),
            (b"a4", b"LOGOUT"),
        ):
            sock.sendall(tag + b" " + command + b"\r\n")
            while True:
                line = stream.readline()
                if not line:
                    raise RuntimeError("IMAP connection closed")
                if line.startswith(tag + b" "):
                    if not line.startswith(tag + b" OK"):
                        raise RuntimeError(line.decode(errors="replace"))
                    break
                if line.rstrip().endswith(b"}"):  # a literal
                    size = int(line.rstrip()[:-1].rsplit(b"{", 1)[1])
                    stream.read(size)


def smtp_once(host: str, port: int) -> None:
    with smtplib.SMTP(host, port, timeout=10, source_address=(CLIENT_SOURCE, 0)) as client:
        client.sendmail(
            smtp_bench.SENDER,
            [smtp_bench.RECIPIENT],
            b"Subject: limits\r\n\r\n" + (b"x" * 76 + b"\r\n") * 13,
        )


def http_once(host: str, port: int) -> None:
    with connect(host, port) as sock:
        sock.sendall(
            b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: cas01\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(answer[:100].decode(errors="replace"))


def dns_once(host: str, port: int) -> None:
    question = b"\x03lab\x03net\x00" + struct.pack("!HH", 6, 1)  # lab.net SOA IN
    query = struct.pack("!HHHHHH", 0x4C49, 0, 1, 0, 0, 0) + question
    with connect(host, port) as sock:
        sock.sendall(struct.pack("!H", len(query)) + query)
        stream = sock.makefile("rb")
        (length,) = struct.unpack("!H", stream.read(2))
        answer = stream.read(length)
        if len(answer) != length or answer[:2] != query[:2]:
            raise RuntimeError("no DNS answer")


ONCE: dict[str, Callable[[str, int], None]] = {
    "IMAP": imap_once,
    "SMTP": smtp_once,
    "HTTP": http_once,
    "DNS": dns_once,
}


def time_client(
    protocol: str, host: str, port: int, samples: int, budget: float
) -> tuple[list[float], int, str]:
    """The times of `samples` operations (ms), the failures, the first failure's text;
    stops after `budget` seconds (a server that makes each fail by a time-out)."""
    once = ONCE[protocol]
    with contextlib.suppress(OSError, RuntimeError, smtplib.SMTPException):
        once(host, port)  # warm
    times: list[float] = []
    errors, first = 0, ""
    stop = time.monotonic() + budget
    for _ in range(samples):
        if time.monotonic() > stop:
            break
        started = time.perf_counter()
        try:
            once(host, port)
        except (OSError, RuntimeError, smtplib.SMTPException) as exc:
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"[:120]
            continue
        times.append(1000 * (time.perf_counter() - started))
    return times, errors, first


async def measure(
    protocol: str, server: str, host: str, port: int, args: argparse.Namespace
) -> Result:
    flood = Flood(host, port, args.idle, args.slow, SLOW_BYTES[protocol])
    await flood.start()
    held = flood.open
    try:
        times, errors, first = await asyncio.to_thread(
            time_client, protocol, host, port, args.samples, args.budget
        )
    finally:
        await flood.stop()
    result = Result(protocol, server, held, times, errors, first)
    print(
        f"  {protocol:4} {server:9} held {held:5} of {args.idle + args.slow} "
        f"(connect failures {flood.failed}); p50 {result.percentile(0.5):7.1f} ms, "
        f"p99 {result.percentile(0.99):7.1f} ms, max {max(times, default=float('nan')):7.1f} ms, "
        f"{errors} errors{f' (first: {first})' if first else ''}",
        flush=True,
    )
    await asyncio.sleep(1.0)  # the server closes what was left
    return result


# -- the servers -------------------------------------------------------------------------


@contextlib.contextmanager
def casarray_cas(base: Path) -> Iterator[tuple[str, int, int, Path]]:
    """CAS01 (one process) with the bench user's INBOX: (host, IMAP port, HTTP port,
    its home)."""
    from casarray.access.cas_process import status_file

    server = imap_bench.start_casarray(base, imap_bench.make_messages(20), processes=1)
    try:
        home = base / "casarray"
        status = status_file("CAS01", home).read() or {}
        yield server.host, server.port, int(status["http"]), home
    finally:
        server.stop()


@contextlib.contextmanager
def casarray_dns(home: Path) -> Iterator[int]:
    url = f"sqlite:///{home / 'directory.db'}"
    port = imap_bench.free_port(DNS_ADDRESS)
    env = {**os.environ, "CASARRAY_HOME": str(home), "CASARRAY_DIRECTORY": url}
    argv = [sys.executable, "-m", "casarray", "dns", "run", "--address", DNS_ADDRESS]
    argv += ["--port", str(port), "--processes", "1", "--log-level", "WARNING"]
    proc = benchlib.spawn(argv, home / "dns.log", env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                dns_once(DNS_ADDRESS, port)
                break
            except (OSError, RuntimeError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("casarray dns run did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        benchlib.stop_process(proc)


async def run(args: argparse.Namespace, peers: bool) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="casarray-limits-") as tmp:
        base = Path(tmp)
        (base / "cas").mkdir()
        with casarray_cas(base / "cas") as (host, imap_port, http_port, home):
            results.append(await measure("IMAP", "casarray", host, imap_port, args))
            results.append(await measure("HTTP", "casarray", host, http_port, args))
            with casarray_dns(home) as dns_port:
                results.append(await measure("DNS", "casarray", DNS_ADDRESS, dns_port, args))
        if peers:
            (base / "dovecot").mkdir()
            dovecot = imap_bench.start_dovecot(base / "dovecot", imap_bench.make_messages(20))
            try:
                results.append(await measure("IMAP", "Dovecot", dovecot.host, dovecot.port, args))
            finally:
                dovecot.stop()
        (base / "smtp").mkdir()
        proc, host, port, _ = smtp_bench.start_transport(base / "smtp")
        try:
            results.append(await measure("SMTP", "casarray", host, port, args))
        finally:
            smtp_bench.stop(proc)
        if peers:
            from tests.peers.postfix import PostfixPeer

            with PostfixPeer(hostname="bench.postfix.test", discard=True) as peer:
                results.append(await measure("SMTP", "Postfix", peer.host, peer.port, args))
    return results


def report(results: list[Result], args: argparse.Namespace) -> int:
    print()
    print(
        f"  {args.idle} idle + {args.slow} slowloris connections from {FLOOD_SOURCE}; "
        f"{args.samples} operations of a client at {CLIENT_SOURCE}"
    )
    print(
        f"  {'protocol':8} {'server':9} {'held':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>6} {'p99 vs peer':>12}"
    )
    misses = 0
    peers = {r.protocol: r for r in results if r.server != "casarray"}
    for r in results:
        ratio = ""
        peer = peers.get(r.protocol)
        if r.server == "casarray" and peer is not None and peer.latencies_ms:
            ratio = f"{r.percentile(0.99) / peer.percentile(0.99):11.2f}x"
        mark = ""
        if r.server == "casarray" and not (r.percentile(0.99) < GOAL_MS and r.errors == 0):
            mark, misses = "  > goal", misses + 1
        print(
            f"  {r.protocol:8} {r.server:9} {r.held:6d} {r.percentile(0.5):8.1f} "
            f"{r.percentile(0.99):8.1f} {max(r.latencies_ms, default=float('nan')):8.1f} "
            f"{r.errors:6d} {ratio:>12}{mark}"
        )
    print(f"\nGoal: casarray's p99 under {GOAL_MS:g} ms, no error. {misses} missed.")
    return 1 if misses else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=5000, help="idle connections (5000)")
    parser.add_argument("--slow", type=int, default=500, help="slowloris connections (500)")
    parser.add_argument("--samples", type=int, default=100, help="timed operations (100)")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds of timed operations per server"
    )
    parser.add_argument("--no-peers", action="store_true", help="casarray only")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 2 * (args.idle + args.slow) + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    signal.signal(signal.SIGTERM, benchlib.on_signal)
    peers = not args.no_peers
    if peers and (os.geteuid() != 0 or not Path("/usr/sbin/dovecot").exists()):
        print("Dovecot and Postfix are not measured: they need root and their packages")
        peers = False
    if peers:
        from tests.peers.postfix import missing

        why = missing()
        if why is not None:
            print(f"Postfix is not measured: {why}")
            peers = False
    with contextlib.suppress(subprocess.SubprocessError):
        results = asyncio.run(run(args, peers))
        return report(results, args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
