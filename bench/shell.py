"""Shell benchmark: what an administrator waits for in the Exchange Management Shell.

1. Cold start: `casarray shell -c 'Get-ClientAccessArray'` wall time (a new process
   each run), against `python -c pass` in the same run as the floor every Python
   command pays. Goal: <= 0.4 s.
2. The seed's bulk update, end to end in a new process:
   `Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer <array>` over
   DATABASES databases (default 10,000). Goal: <= 3 s. Checked afterwards: every
   database names the array.

    .venv/bin/python bench/shell.py [--databases N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

COLD_GOAL_S = 0.4
PIPELINE_GOAL_S = 3.0
CASARRAY = [sys.executable, "-m", "casarray"]


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def build(url: str, databases: int) -> None:
    """A site with two CAS, an array, MBX servers, and `databases` databases pointing at
    CAS01 (created before the array, as in the seed)."""
    from casarray.directory import Directory

    with Directory.open(url) as d:
        d.sites.new("BJ", ["127.77.1.0/24"])
        d.servers.new("CAS01", "ClientAccess", "127.77.1.11")
        d.servers.new("CAS02", "ClientAccess", "127.77.1.12")
        servers = [f"MBX{i:02d}" for i in range(1, 11)]
        for i, name in enumerate(servers):
            d.servers.new(name, "Mailbox", f"127.77.1.{21 + i}")
        start = time.perf_counter()
        for i in range(databases):
            d.databases.new(f"DB{i:05d}", servers[i % len(servers)])
        print(f"built {databases} databases in {time.perf_counter() - start:.1f} s")
        d.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/shell.py", description=__doc__)
    parser.add_argument("--databases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10, help="cold-start runs (10)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="casarray-bench-shell-") as home:
        env = dict(os.environ, CASARRAY_HOME=home)
        env.pop("CASARRAY_DIRECTORY", None)
        url = f"sqlite:///{Path(home) / 'directory.db'}"
        os.environ["CASARRAY_HOME"] = home
        build(url, args.databases)

        floor = [timed([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]
        cold = [
            timed([*CASARRAY, "shell", "-c", "Get-ClientAccessArray"], env)
            for _ in range(args.runs)
        ]
        pipeline = timed(
            [
                *CASARRAY,
                "shell",
                "-c",
                "Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net",
            ],
            env,
        )
        from casarray.directory import Directory

        with Directory.open(url) as d:
            wrong = [
                db.name
                for db in d.databases.get()
                if db.rpc_client_access_server != "bj-cas.lab.net"
            ]

    cold_median = statistics.median(cold)
    floor_median = statistics.median(floor)
    rows = [
        (
            "cold start: shell -c Get-ClientAccessArray (median)",
            f"{cold_median:.3f} s",
            f"{cold_median / floor_median:.1f}x `python -c pass` ({floor_median:.3f} s)",
            f"<= {COLD_GOAL_S} s",
            cold_median <= COLD_GOAL_S,
        ),
        (
            f"Get-MailboxDatabase | Set-MailboxDatabase, {args.databases} databases",
            f"{pipeline:.3f} s",
            f"{args.databases / pipeline:,.0f} databases/s",
            f"<= {PIPELINE_GOAL_S} s",
            pipeline <= PIPELINE_GOAL_S and not wrong,
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, figure, ratio, goal, ok in rows:
        print(
            f"{name:<{width}}  {figure:>9}  {ratio:<40} goal {goal:<8} {'PASS' if ok else 'MISS'}"
        )
    if wrong:
        print(f"{len(wrong)} databases were not updated, e.g. {wrong[:5]}")
    print(f"cold start runs: {', '.join(f'{t:.3f}' for t in cold)}")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
