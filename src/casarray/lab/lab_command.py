"""The `casarray lab` sub-commands' arguments; `actions` does the work."""

from __future__ import annotations

import argparse
from typing import Any


def _home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home", metavar="DIR", help="the lab's folder (default: $CASARRAY_HOME, else ~/.casarray)"
    )


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `lab` and its actions to the `casarray` command's sub-parsers."""
    lab = commands.add_parser(
        "lab",
        help="run the whole lab organization on this machine",
        description="The lab: every role of the organization (DNS, the Client Access and "
        "Mailbox servers, the NLB clusters' balancers) as its own supervised process on "
        "its own loopback address, state in one folder. Standard ports and the Kernel data "
        "plane as root, else each port plus 10000 and the Proxy data plane.",
    )
    actions = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    up = actions.add_parser(
        "up",
        help="make the organization if needed, start it, show its status live",
        description="Make the lab organization (sites BJ and SH, their servers, "
        "databases and users, before any client access array) in the lab's folder when it has "
        "none (the users' passwords are printed this once), start every process and show "
        "the status live until Ctrl-C, which stops them all. With --detach, return once "
        "all is healthy and print how to reach the lab.",
    )
    _home(up)
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --detach: give up (and stop it) when not all healthy by then (60)",
    )
    up.add_argument(
        "--hosts",
        action="store_true",
        help="one Linux network namespace per server, bridges per site, a router and "
        "clients, addresses from 198.18.0.0/15 (root; a new lab only)",
    )

    status = actions.add_parser("status", help="print the lab's status once")
    _home(status)
    status.add_argument("--json", action="store_true", help="as JSON, for programs")

    down = actions.add_parser("down", help="stop the running lab cleanly")
    _home(down)

    reset = actions.add_parser("reset", help="stop the lab and delete its organization")
    _home(reset)
    reset.add_argument("--yes", action="store_true", help="don't ask for confirmation")

    logs = actions.add_parser("logs", help="print a process's log (the supervisor's by default)")
    _home(logs)
    logs.add_argument("name", nargs="?", metavar="NAME", help="DNS, CAS01, MBX01, a cluster...")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing what comes")
    logs.add_argument(
        "-n", "--lines", type=int, default=50, metavar="N", help="the last N lines (50)"
    )

    kill = actions.add_parser(
        "kill",
        help="kill -9 a process to simulate a failure (not restarted until `lab start`)",
    )
    _home(kill)
    kill.add_argument("name", metavar="NAME", help="CAS02, MBX01, DNS, bj-cas.lab.net...")

    start = actions.add_parser("start", help="start a killed process again")
    _home(start)
    start.add_argument("name", metavar="NAME")

    for action, text in (
        ("kill-host", "a lab on several hosts: SIGKILL every process of a host, link down"),
        ("start-host", "bring a killed host's link up; its processes start again"),
        ("partition", "take a host's link down; its processes run on"),
        ("heal", "bring a partitioned host's link up"),
    ):
        host = actions.add_parser(action, help=text)
        _home(host)
        host.add_argument("name", metavar="NAME", help="CAS01, MBX02, DC01, ROUTER, CLIENT-BJ...")

    run_in = actions.add_parser(
        "exec",
        help="run a command inside a host of a lab on several hosts",
        description="Run COMMAND inside host NAME's network namespace, e.g. "
        "`casarray lab exec CLIENT-BJ -- dig @198.18.1.5 bj-cas.lab.net`.",
    )
    _home(run_in)
    run_in.add_argument("name", metavar="NAME")
    run_in.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...")

    add = actions.add_parser(
        "add-server",
        help="install a server; the running lab starts it, and it joins its site's array",
    )
    _home(add)
    add.add_argument("name", metavar="NAME", help="e.g. CAS04")
    add.add_argument("--site", required=True, help="its Active Directory site, e.g. BJ")
    add.add_argument(
        "--roles", default="ClientAccess", help="ClientAccess, Mailbox, ... (ClientAccess)"
    )
    add.add_argument(
        "--ip-address", metavar="IP", help="its address (default: the site's next free one)"
    )

    walk = actions.add_parser(
        "walkthrough",
        help="replay Exchange 2010's CAS-array set-up procedure on a new lab "
        "(what `make demo` runs)",
        description="Make a new lab organization (before any client access array) in a new "
        "temporary folder, or in --home if it is empty, start it, and replay Exchange 2010's "
        "CAS-array set-up procedure (NLB, DNS, the array, certificates, the databases, a "
        "client) through the shell and the client, checking each step; exit 0 only if every "
        "step passed.",
    )
    walk.add_argument("--home", metavar="DIR", help="make the lab here (an empty folder)")
    walk.add_argument("--keep", action="store_true", help="leave the lab running at the end")
    walk.add_argument(
        "--hosts",
        action="store_true",
        help="on a lab on several hosts (as `lab up --hosts`; root), working from CLIENT-BJ",
    )

    supervise = actions.add_parser("supervise")  # what `up --detach` runs; no help: hidden
    _home(supervise)
    return lab


def run(args: argparse.Namespace) -> int:
    """Run a `casarray lab` action; its exit status."""
    import sys

    from casarray.lab import actions
    from casarray.lab.config import LabConfigError

    if args.lab_command == "walkthrough":
        from casarray.lab import walkthrough

        return walkthrough.run(args.home, keep=args.keep, hosts=args.hosts)
    try:
        home = actions.lab_home(args.home)
        action = args.lab_command
        if action == "up":
            return actions.up(home, args.detach, args.timeout, args.hosts)
        if action in ("kill-host", "start-host", "partition", "heal"):
            return actions.host_command(home, action, args.name)
        if action == "exec":
            argv = list(args.argv)
            if argv[:1] == ["--home"] and len(argv) > 1:  # NAME --home DIR -- ...
                home, argv = actions.lab_home(argv[1]), argv[2:]
            return actions.exec_in(home, args.name, argv[1:] if argv[:1] == ["--"] else argv)
        if action == "supervise":
            return actions.supervise(home)
        if action == "status":
            return actions.status(home, args.json)
        if action == "down":
            return actions.down(home)
        if action == "reset":
            return actions.reset(home, args.yes)
        if action == "logs":
            return actions.logs(home, args.name, args.follow, args.lines)
        if action == "kill":
            return actions.kill(home, args.name)
        if action == "start":
            return actions.start(home, args.name)
        if action == "add-server":
            return actions.add_server(home, args.name, args.site, args.roles, args.ip_address)
    except (actions.LabError, LabConfigError) as exc:
        print(f"casarray: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.lab_command)
