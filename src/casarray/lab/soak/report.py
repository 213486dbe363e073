"""The soak's figures: faults injected by kind and how long each kind took to come
back, operations by kind and outcome, the checker's findings (lost: the goal is 0),
and the unavailable time per fault kind.

Unavailable time, for one fault at time t and one family of operations (imap, smtp,
ews, web, dns, shell): 0 when the first operation of the family started after t
succeeded; else from t to the start of the first one that succeeded after the
failures. Per fault kind the report gives the longest (the fault and the family that
made it) and the median over its faults of the longest family.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from casarray.lab.soak.checker import KINDS, Finding, failures, tally
from casarray.lab.soak.history import FAILED, OK, UNKNOWN

WRITES = (
    "imap.append",
    "imap.store",
    "imap.copy",
    "imap.move",
    "imap.expunge",
    "smtp.send",
    "ews.create",
    "ews.update",
    "ews.move",
    "ews.delete",
    "web.send",
    "shell.new-database",
    "shell.set-database",
    "shell.set-portrule",
)


OTHER_KINDS = KINDS[KINDS.index("resurrected") :]  # beyond lost and duplicated


def family(op: str) -> str:
    return op.split(".", 1)[0]


@dataclass
class Outage:
    seconds: float
    family: str
    at: float


def unavailable(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Outage]]:
    """Per fault kind, each fault's longest outage over the families of operations."""
    ops: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for r in records:
        op = str(r.get("op", ""))
        if op.startswith(("fault.", "recovery.", "client.")) or op == "imap.uidvalidity":
            continue
        ops[family(op)].append((float(r["t0"]), r.get("outcome") == OK))
    for entries in ops.values():
        entries.sort()
    out: dict[str, list[Outage]] = defaultdict(list)
    for r in records:
        op = str(r.get("op", ""))
        if not op.startswith("fault.") or op == "fault.undo" or r.get("outcome") != OK:
            continue
        at = float(r["t0"])
        worst = Outage(0.0, "", at)
        for name, entries in ops.items():
            failed_since = None
            for t0, ok in entries:
                if t0 < at:
                    continue
                if ok:
                    if failed_since is not None and t0 - at > worst.seconds:
                        worst = Outage(round(t0 - at, 2), name, at)
                    break
                failed_since = failed_since or t0
        out[op.removeprefix("fault.")].append(worst)
    return out


@dataclass
class SoakReport:
    faults: Counter[str] = field(default_factory=Counter)
    faults_failed: Counter[str] = field(default_factory=Counter)
    recovered: dict[str, list[float]] = field(default_factory=dict)
    not_recovered: list[str] = field(default_factory=list)
    operations: dict[str, Counter[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    outages: dict[str, list[Outage]] = field(default_factory=dict)
    read_mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    mode: str = "single machine (SQLite)"
    seed: int = 0

    @property
    def counts(self) -> Counter[str]:
        return tally(self.findings)

    @property
    def lost(self) -> int:
        return self.counts["lost"]

    @property
    def unknown(self) -> int:
        return sum(self.operations.get(op, Counter())[UNKNOWN] for op in WRITES)

    @property
    def acknowledged(self) -> int:
        return sum(self.operations.get(op, Counter())[OK] for op in WRITES)

    @property
    def passed(self) -> bool:
        return not failures(self.findings) and not self.not_recovered and not self.read_mismatches

    def to_text(self) -> str:
        lines = [
            f"Soak on the {self.mode}, seed {self.seed}: {sum(self.faults.values())} faults "
            f"in {self.seconds / 60:.1f} min",
            "",
            "Faults injected (kind: count, back after median/max s, not back)",
        ]
        for kind in sorted(self.faults):
            back = self.recovered.get(kind, [])
            figures = f"{statistics.median(back):.1f}/{max(back):.1f}" if back else "-"
            lines.append(
                f"  {kind:<11} {self.faults[kind]:>5}   {figures:>11}   "
                f"{sum(1 for n in self.not_recovered if n.startswith(kind + ' '))}"
            )
        lines += ["", "Operations (kind: acknowledged, failed, unknown)"]
        for op in sorted(self.operations):
            counts = self.operations[op]
            lines.append(f"  {op:<19} {counts[OK]:>7} {counts[FAILED]:>7} {counts[UNKNOWN]:>7}")
        counts = self.counts
        lines += [
            "",
            f"Acknowledged writes: {self.acknowledged}; unknown outcomes: {self.unknown}",
            f"Lost: {counts['lost']} (goal 0); duplicated: {counts['duplicated']}; "
            f"documented duplicates: {counts['documented']}",
            "Other findings: " + ", ".join(f"{kind} {counts[kind]}" for kind in OTHER_KINDS),
            f"Reads that didn't match what was acknowledged: {len(self.read_mismatches)}",
            "",
            "Unavailable time per fault kind (longest, the family, median of each fault's "
            "longest; s)",
        ]
        for kind in sorted(self.outages):
            outages = self.outages[kind]
            worst = max(outages, key=lambda o: o.seconds)
            median = statistics.median(o.seconds for o in outages)
            lines.append(
                f"  {kind:<11} {worst.seconds:>7.1f} {worst.family or '-':<6} {median:>7.1f}"
            )
        shown = failures(self.findings)
        if shown or self.not_recovered or self.read_mismatches:
            lines += ["", "Findings:"]
            lines += [f"  {finding}" for finding in shown[:50]]
            lines += [f"  not back: {name}" for name in self.not_recovered[:50]]
            lines += [f"  read mismatch: {what}" for what in self.read_mismatches[:50]]
        lines.append("")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "seconds": round(self.seconds, 1),
            "faults": dict(self.faults),
            "faults_failed": dict(self.faults_failed),
            "recovered": {k: sorted(v) for k, v in self.recovered.items()},
            "not_recovered": self.not_recovered,
            "operations": {op: dict(c) for op, c in self.operations.items()},
            "acknowledged": self.acknowledged,
            "unknown": self.unknown,
            "findings": dict(self.counts),
            "failures": [str(f) for f in failures(self.findings)],
            "documented": [str(f) for f in self.findings if f.kind == "documented"],
            "read_mismatches": self.read_mismatches,
            "unavailable": {
                kind: {
                    "longest": max(o.seconds for o in outages),
                    "family": max(outages, key=lambda o: o.seconds).family,
                    "median": statistics.median(o.seconds for o in outages),
                }
                for kind, outages in self.outages.items()
            },
            "passed": self.passed,
        }


def build(
    records: Sequence[Mapping[str, Any]],
    findings: list[Finding],
    *,
    seconds: float = 0.0,
    mode: str = "single machine (SQLite)",
    seed: int = 0,
) -> SoakReport:
    report = SoakReport(findings=findings, seconds=seconds, mode=mode, seed=seed)
    operations: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        op, outcome = str(r.get("op", "")), str(r.get("outcome", ""))
        if op.startswith("fault."):
            if op == "fault.undo":
                if outcome != OK:
                    report.not_recovered.append(f"undo {r.get('what')}: {r.get('error')}")
                continue
            kind = op.removeprefix("fault.")
            if outcome == OK:
                report.faults[kind] += 1
            else:
                report.faults_failed[kind] += 1
        elif op.startswith("recovery."):
            kind = op.removeprefix("recovery.")
            if outcome == OK:
                report.recovered.setdefault(kind, []).append(float(r.get("after", 0)))
            else:
                report.not_recovered.append(
                    f"{kind} {r.get('victim')} (not back after {r.get('after')} s)"
                )
        else:
            operations[op][outcome] += 1
            if op == "imap.fetch" and outcome == OK and not (r.get("found") and r.get("match")):
                report.read_mismatches.append(
                    f"{r.get('soak_id')} uid {r.get('uid')} in {r.get('user')}'s "
                    f"{r.get('folder')}: found {r.get('found')}, same bytes {r.get('match')}"
                )
    report.operations = dict(operations)
    report.outages = dict(unavailable(records))
    return report
