"""The fault-injection soak (issue 17): nothing acknowledged is ever lost.

The script starts a lab of its own (one machine on SQLite, or `--hosts`: one network
namespace per server, PostgreSQL in DC01, under a namespace prefix of its own), puts a
mixed load on it through the array's names (IMAP APPEND/STORE/COPY/MOVE/EXPUNGE/FETCH,
SMTP on 25 and 587, exchangelib's CreateItem/UpdateItem/MoveItem/DeleteItem, web mail
sends, cmdlets), and meanwhile kills processes with SIGKILL at random moments (a Client
Access worker or master, a Mailbox server, a Hub Transport, the DNS server, the NLB
balancer or a host's NLB driver; with `--hosts` also PostgreSQL, whole hosts and
partitions), one every 2-4 s with bursts, from a schedule the seed makes. Every client
writes what it was told as it happens (JSON lines under the folder). Once everything
is back and the queues are drained, the checker reads every mailbox from the stores,
the queues and the directory and compares them with the histories.

It prints faults injected by kind (and how long each kind took to come back),
operations by kind (acknowledged, failed, unknown), what was lost (the goal: 0),
duplicated (and documented duplicates apart), the other findings, and the unavailable
time per fault kind; the same is in report.txt and report.json under `--keep DIR`
(with the histories, the load's log and the lab's logs). Exit status 0 when nothing
was lost or wrong, 1 otherwise (or on an error).

The whole soak (1,000 faults) takes about an hour; run it with `nice`, in the
background, on a machine where no other lab runs at the lab's addresses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from casarray.lab.soak.run import SoakOptions, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--faults", type=int, default=1000, help="faults to inject (1000)")
    parser.add_argument("--minutes", type=float, default=90.0, help="at most this long (90)")
    parser.add_argument("--hosts", action="store_true", help="a lab on several hosts (root)")
    parser.add_argument("--seed", type=int, default=1, help="the fault schedule's seed (1)")
    parser.add_argument("--keep", metavar="DIR", help="keep the histories, logs and report here")
    parser.add_argument(
        "--gap",
        type=float,
        nargs=2,
        default=(2.0, 4.0),
        metavar=("MIN", "MAX"),
        help="seconds between faults (2 4)",
    )
    args = parser.parse_args()
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {text}", flush=True)

    report = run_soak(
        SoakOptions(
            faults=args.faults,
            minutes=args.minutes,
            hosts=args.hosts,
            seed=args.seed,
            keep=Path(args.keep) if args.keep else None,
            gap=(args.gap[0], args.gap[1]),
            say=say,
        )
    )
    print()
    print(report.to_text())
    return 0 if report.passed else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; the lab is stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
