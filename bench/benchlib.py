"""What the benchmark scripts share: reading wrk's output, and a process's tree.

Kept free of any import beyond the standard library's `os`, `re` and `dataclasses`:
bench/http.py and bench/balancer.py import it before they take their own folder off
the import path (where bench/http.py would shadow the standard library's `http`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass
class WrkFigures:
    rate: float  # requests/s
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    failed: int  # non-2xx/3xx responses, socket errors (timeouts included)


def parse_wrk(output: str) -> WrkFigures:
    """requests/s, p50/p99 and failures from `wrk --latency` output."""
    found = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{output}")
    figures = WrkFigures(float(found.group(1)), None, None, 0, 0)
    for percent, attribute in (("50", "p50_ms"), ("99", "p99_ms")):
        found = re.search(rf"^\s*{percent}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
        if found is not None:
            setattr(figures, attribute, float(found.group(1)) * UNITS[found.group(2)])
    found = re.search(r"^\s*(\d+) requests in", output, re.M)
    figures.requests = int(found.group(1)) if found else 0
    found = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    figures.failed += int(found.group(1)) if found else 0
    found = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if found is not None:
        figures.failed += sum(int(n) for n in found.groups())
    return figures


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree
