"""Dovecot's imaptest against a real `casarray server run`: every scripted compliance
group (`../shared/imaptest/tests`, one file per group, each naming the capabilities it
needs) and a short stress run whose state checking must find nothing.

imaptest skips a group silently when the server lacks a capability the group names, so
a group counts as executed only when imaptest ran at least one of its commands; every
group must be executed and passed, except those in NOT_EXECUTED (each with its reason)
and the commands listed in AGAINST_RFC (expectations that contradict the RFC tested,
each with its reason: exactly those fail). The stress run asserts no error, never a
rate: rates are `bench/imap.py`'s.

Needs `../shared/imaptest` beside the checkout and Debian's dovecot-core (imaptest runs
against its libdovecot); without them the tests skip saying which is missing (in CI
they fail instead).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.access.imap.server_harness import PASSWORD, Lab, ServerProcess, make_lab, running

IMAPTEST = Path(__file__).resolve().parents[4] / "shared" / "imaptest"
GROUPS = IMAPTEST / "tests"
USER = "alice@lab.net"

# Groups imaptest does not run against casarray, and why.
NOT_EXECUTED: dict[str, str] = {
    "urlauth2": (
        "needs a second user (imaptest's user2=) and, given one, can pass on no server: "
        "the group names no `messages:`, so "
        "imaptest empties the mailbox before its first command, `fetch 1:2`, expects two "
        "messages. URLFETCH by another user is tested in test_urlauth.py (transcripts) "
        "and test_urlauth_server.py (two users on a real two-process server)."
    ),
}

# Groups some of whose expectations contradict the RFC they test: the server follows
# the RFC, and exactly these commands (imaptest's numbering) fail; every other passes.
AGAINST_RFC: dict[str, tuple[str, frozenset[int]]] = {
    "urlauth-binary": (
        "expects URLFETCH's BODYPARTSTRUCTURE and BINARY items in one list, "
        "`(BODYPARTSTRUCTURE (...) BINARY {n}...)`; RFC 5524 section 5 has "
        '`url-metadata = 1*(SP "(" url-metadata-el ")")`, each item in its own '
        "parentheses, `(BODYPARTSTRUCTURE (...)) (BINARY {n}...)`, which is also what "
        "Dovecot's own URLFETCH sends",
        frozenset({13, 15}),
    ),
}

# Groups that do not pass yet (none now): each is an expected failure (strict: one that
# passes fails the test until it is taken off this list).
NOT_YET_PASSING: set[str] = set()


def missing() -> str | None:
    if not (IMAPTEST / "imaptest").exists():
        return f"imaptest is not there ({IMAPTEST}: the shared folder beside the checkout)"
    if not Path("/usr/lib/dovecot/libdovecot.so.0").exists() and not shutil.which("dovecot"):
        return "Debian's dovecot-core is not installed (imaptest runs against its libdovecot)"
    return None


def group_names() -> list[str]:
    if not GROUPS.is_dir():
        return []
    return sorted(p.name for p in GROUPS.iterdir() if p.is_file() and not p.name.endswith(".mbox"))


@dataclass(frozen=True)
class GroupResult:
    failed_groups: int
    commands: int  # the commands imaptest ran (0: the group was skipped)
    failed_commands: int
    output: str


SUMMARY = re.compile(r"(\d+) test groups: (\d+) failed")
COUNTS = re.compile(r"(base protocol|extensions): (\d+)/(\d+) individual commands failed")
FAILED_COMMAND = re.compile(r"\*\*\* Test \S+ command (\d+)/\d+")


def run_imaptest(server: ServerProcess, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        [
            str(IMAPTEST / "imaptest"),
            f"host={server.host}",
            f"port={server.imap_port}",
            f"user={USER}",
            f"pass={PASSWORD}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.stdout + proc.stderr


def run_group(server: ServerProcess, name: str) -> GroupResult:
    output = run_imaptest(server, f"test={GROUPS / name}")
    summary = SUMMARY.search(output)
    assert summary, f"imaptest said nothing of group {name}:\n{output}"
    failed_commands = commands = 0
    for match in COUNTS.finditer(output):
        failed_commands += int(match.group(2))
        commands += int(match.group(3))
    return GroupResult(int(summary.group(2)), commands, failed_commands, output)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[ServerProcess]:
    if reason := missing():
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    lab: Lab = make_lab(tmp_path_factory.mktemp("imaptest"), password_hash)
    lab.add_user("alice")
    with running(lab, "CAS01", "--allow-plaintext-login") as process:
        yield process
    lab.directory.close()


def test_every_group_is_there() -> None:
    """The shared imaptest carries its 71 groups (a smaller set would pass too easily)."""
    if reason := missing():
        pytest.skip(reason)
    assert len(group_names()) == 71


@pytest.mark.parametrize(
    "group",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="not yet passing"))
        if name in NOT_YET_PASSING
        else name
        for name in group_names()
    ],
)
def test_compliance_group(server: ServerProcess, group: str) -> None:
    result = run_group(server, group)
    if group in NOT_EXECUTED:
        assert result.commands == 0, f"{group} runs now: take it off NOT_EXECUTED"
        return
    assert result.commands > 0, f"imaptest skipped {group} (a capability missing?)"
    if group in AGAINST_RFC:
        failing = {int(n) for n in FAILED_COMMAND.findall(result.output)}
        assert failing == AGAINST_RFC[group][1], result.output
        return
    assert result.failed_groups == 0 and result.failed_commands == 0, result.output


def test_stress_finds_no_inconsistency(server: ServerProcess) -> None:
    """A few seconds of imaptest's stress load (10 clients on one mailbox, sessions that
    stay logged in, the same with QRESYNC (VANISHED, SELECT ... QRESYNC on reconnects),
    and then clients logging in and out): imaptest checks that every client sees a
    consistent mailbox (EXISTS, EXPUNGE, FETCH, flags) and says `Error:` for each
    inconsistency; there must be none."""
    mbox = GROUPS / "default.mbox"
    for churn in (("logout=0",), ("logout=0", "qresync"), ("clients=10",)):
        output = run_imaptest(server, f"mbox={mbox}", "clients=10", "secs=4", *churn)
        errors = [line for line in output.splitlines() if "Error" in line or "error" in line]
        assert errors == [], "\n".join(errors[:20])
        assert "Totals:" in output, output
