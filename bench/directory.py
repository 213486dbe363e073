"""Directory benchmark: build a large organization and time what the CAS tier leans on.

Builds SITES sites (each with a subnet, CAS Client Access servers and SERVERS Mailbox
servers), DATABASES mailbox databases spread over the Mailbox servers (one
`databases.new` each, as New-MailboxDatabase does) and MAILBOXES mailboxes (one
`mailboxes.new_many` import, one argon2 hash), then one client access array per site,
and times:

1. the bulk update of RpcClientAccessServer on every database, both as
   `set_rpc_client_access_server(None, fqdn)` and as the shell pipeline does it
   (`Get-MailboxDatabase | Set-MailboxDatabase`: get every record, then set the list);
2. identity lookup: `one()` (lookup plus record) and the bare `identity.resolve` inside
   one read session, by name, GUID, DN, legacyExchangeDN, SMTP address, alias, FQDN;
3. array member computation (`arrays.one`, `arrays.get`);
4. listing (`databases.get()` of every database, `mailboxes.get(database=...)`).

It prints the figures and exits 1 when a goal is missed (bulk update <= 2 s on SQLite,
lookup median <= 1 ms) or a check fails.

    .venv/bin/python bench/directory.py
    .venv/bin/python bench/directory.py --backend postgres \\
        --url postgresql+psycopg://user@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url

from casarray.directory import Directory, MailboxDatabase, Server
from casarray.directory import identity as identity_mod
from casarray.directory.arrays import ARRAY
from casarray.directory.databases import DATABASE
from casarray.directory.mailboxes import MAILBOX, MailboxSpec, hash_password
from casarray.directory.servers import SERVER

T = TypeVar("T")

BULK_UPDATE_GOAL_S = 2.0
LOOKUP_MEDIAN_GOAL_S = 0.001
WARMUP = 20

console = Console(width=None if sys.stdout.isatty() else 110)


# -- options ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/directory.py",
        description="Build a large directory and time bulk update, identity lookup, array "
        "member computation and listing.",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--url",
        help="directory URL for --backend postgres (postgresql+psycopg://...); the "
        "database must be empty. With sqlite: default is a file in a temporary folder.",
    )
    parser.add_argument("--databases", type=int, default=10_000, metavar="N")
    parser.add_argument("--mailboxes", type=int, default=100_000, metavar="N")
    parser.add_argument("--sites", type=int, default=2, metavar="N", help="sites (default 2)")
    parser.add_argument(
        "--cas", type=int, default=4, metavar="N", help="Client Access servers per site (4)"
    )
    parser.add_argument(
        "--servers", type=int, default=10, metavar="N", help="Mailbox servers per site (10)"
    )
    parser.add_argument(
        "--lookups",
        type=int,
        default=2_000,
        metavar="N",
        help="random lookups per identity kind (2000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="runs of each whole-table figure (databases.get() of all) (5)",
    )
    parser.add_argument("--seed", type=int, default=2010, help="random seed (2010)")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        help="use DIR as CASARRAY_HOME (and, on sqlite, DIR/directory.db) and keep it",
    )
    args = parser.parse_args(argv)
    if args.backend == "postgres" and not args.url:
        parser.error("--backend postgres needs --url postgresql+psycopg://...")
    if args.backend == "sqlite" and args.url and not args.url.startswith("sqlite"):
        parser.error("--backend sqlite takes a sqlite:/// URL (or none)")
    if args.backend == "postgres" and not args.url.startswith("postgresql"):
        parser.error("--backend postgres takes a postgresql+psycopg:// URL")
    for name in ("databases", "sites", "cas", "servers", "lookups", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.mailboxes < 0:
        parser.error("--mailboxes must not be negative")
    if args.sites > 250 or args.cas > 1000 or args.servers > 1000:
        parser.error("at most 250 sites, 1000 CAS and 1000 Mailbox servers per site")
    return args


# -- measuring ----------------------------------------------------------------------


@dataclass
class Timing:
    """Samples of one operation, in seconds."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def percentile(self, p: int) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=100, method="inclusive")[p - 1]

    @property
    def total(self) -> float:
        return sum(self.samples)


def timed_each(fn: Callable[[T], object], items: Sequence[T]) -> Timing:
    """Call `fn` on every item, timing each call; a few untimed calls first."""
    for item in items[:WARMUP]:
        fn(item)
    timing = Timing()
    clock = time.perf_counter
    for item in items:
        start = clock()
        fn(item)
        timing.samples.append(clock() - start)
    return timing


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as t: ...` then t[0] is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s"


@dataclass
class Verdicts:
    """Goals met and missed, and failed checks."""

    missed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def judge(self, label: str, value: float, goal: float, *, counts: bool = True) -> str:
        ok = value <= goal
        if not ok and counts:
            self.missed.append(label)
        word = "[green]PASS[/]" if ok else "[red]MISS[/]"
        return word if counts else f"[dim]{'pass' if ok else 'miss'} (ref)[/]"


# -- building -----------------------------------------------------------------------


@dataclass
class Plan:
    """The names the build uses, made before any timing."""

    sites: list[str]
    database_names: list[str]
    mailbox_specs: list[MailboxSpec]
    arrays: list[tuple[str, str, str]]  # (name, fqdn, site)


def plan(args: argparse.Namespace, domain: str) -> Plan:
    sites = [f"Site{s:02d}" for s in range(1, args.sites + 1)]
    width = max(5, len(str(args.databases)))
    database_names = [f"DB{n:0{width}d}" for n in range(1, args.databases + 1)]
    mwidth = max(6, len(str(args.mailboxes)))
    mailbox_specs = [
        MailboxSpec(
            alias=f"user{n:0{mwidth}d}",
            display_name=f"User {n:0{mwidth}d}",
            primary_smtp_address=f"user{n:0{mwidth}d}@{domain}",
            database=database_names[(n - 1) % len(database_names)],
        )
        for n in range(1, args.mailboxes + 1)
    ]
    arrays = [(f"{site} CAS Array", f"{site.lower()}-cas.{domain}", site) for site in sites]
    return Plan(sites, database_names, mailbox_specs, arrays)


def build_topology(
    d: Directory, args: argparse.Namespace, sites: list[str]
) -> tuple[list[Server], list[Server]]:
    """Sites with subnets, then their servers (CAS first, as Exchange setup would):
    returns (Client Access servers, Mailbox servers), each in install order."""
    cas: list[Server] = []
    mailbox_servers: list[Server] = []
    for s, site in enumerate(sites, start=1):
        d.sites.new(site, [f"10.{s}.0.0/16"])
        for j in range(args.cas):
            address = f"10.{s}.{1 + j // 250}.{1 + j % 250}"
            cas.append(d.servers.new(f"S{s:02d}CAS{j + 1:03d}", "ClientAccess", address))
        for j in range(args.servers):
            address = f"10.{s}.{100 + j // 250}.{1 + j % 250}"
            mailbox_servers.append(d.servers.new(f"S{s:02d}MBX{j + 1:03d}", "Mailbox", address))
    return cas, mailbox_servers


def build_databases(d: Directory, names: list[str], mailbox_servers: list[Server]) -> float:
    """One `databases.new` per database (New-MailboxDatabase), round robin over the
    Mailbox servers of every site. Returns the seconds taken."""
    servers = [s.name for s in mailbox_servers]
    with (
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
        stopwatch() as elapsed,
    ):
        task = progress.add_task("databases.new", total=len(names))
        for n, name in enumerate(names):
            d.databases.new(name, servers[n % len(servers)], mounted=True)
            if n % 100 == 99:
                progress.update(task, completed=n + 1)
    return elapsed[0]


# -- the benchmark ------------------------------------------------------------------


def run(d: Directory, args: argparse.Namespace, label: str) -> int:
    rng = random.Random(args.seed)
    verdicts = Verdicts()
    is_sqlite = not d.store.is_postgres
    if d.sites.count() or d.databases.count() or d.mailboxes.count():
        console.print(
            f"[red]The directory at {label} is not empty; the benchmark needs an empty one."
        )
        return 2
    domain = d.organization().default_domain

    # -- build ---------------------------------------------------------------------
    build = Table(title="Build", title_justify="left")
    for column in ("step", "objects", "time", "rate"):
        build.add_column(column, justify="left" if column == "step" else "right")

    built = plan(args, domain)
    with stopwatch() as t_topology:
        cas, mailbox_servers = build_topology(d, args, built.sites)
    n_servers = len(cas) + len(mailbox_servers)
    build.add_row(
        "sites.new + servers.new",
        f"{len(built.sites)} sites, {n_servers} servers",
        secs(t_topology[0]),
        "",
    )

    t_db = build_databases(d, built.database_names, mailbox_servers)
    build.add_row(
        "databases.new (one by one)",
        f"{args.databases:,}",
        secs(t_db),
        f"{args.databases / t_db:,.0f} databases/s",
    )

    with stopwatch() as t_hash:
        password_hash = hash_password("Bench-Passw0rd!")
    build.add_row("hash_password (argon2, once)", "1", secs(t_hash[0]), "")

    if built.mailbox_specs:
        with console.status(f"mailboxes.new_many ({args.mailboxes:,})"), stopwatch() as t_mbx:
            created = d.mailboxes.new_many(built.mailbox_specs, password_hash)
        build.add_row(
            "mailboxes.new_many (one import)",
            f"{created:,}",
            secs(t_mbx[0]),
            f"{created / t_mbx[0]:,.0f} mailboxes/s",
        )

    before = {db.name: db.rpc_client_access_server for db in d.databases.get()}
    with stopwatch() as t_arrays:
        arrays = [d.arrays.new(fqdn, site, name=name) for name, fqdn, site in built.arrays]
    after_records = d.databases.get()
    after = {db.name: db.rpc_client_access_server for db in after_records}
    changed = sum(1 for name, rpc in after.items() if before.get(name) != rpc)
    build.add_row(
        "arrays.new (one per site)",
        f"{len(arrays)}",
        secs(t_arrays[0]),
        f"changed {changed} of {len(after):,} databases",
    )
    if changed:
        verdicts.failed.append(f"arrays.new changed {changed} databases (it must change none)")
    console.print(build)
    first_cas: dict[str, str] = {}
    for server in cas:  # in install order
        first_cas.setdefault(server.site, server.fqdn)
    off = [db.name for db in after_records if db.rpc_client_access_server != first_cas[db.site]]
    if off:
        verdicts.failed.append(
            f"{len(off)} new databases don't name their site's first CAS (e.g. {off[0]})"
        )
    else:
        console.print(
            "Every database names its site's first Client Access server "
            f"({', '.join(sorted(first_cas.values()))}), as a database created before its "
            "site's array should; arrays.new left them so."
        )
    del before, after, after_records

    # -- 1. bulk update ------------------------------------------------------------
    array_fqdn = arrays[0].fqdn
    cas_fqdn = cas[0].fqdn
    bulk = Table(title="1. Bulk update of RpcClientAccessServer", title_justify="left")
    for column in ("figure", "databases", "time", "goal", "result"):
        bulk.add_column(column, justify="left" if column == "figure" else "right")
    goal_text = f"<= {BULK_UPDATE_GOAL_S:g} s" + ("" if is_sqlite else " (SQLite goal)")

    failed_before = len(verdicts.failed)

    def check_all(fqdn: str, what: str) -> None:
        wrong = [db.name for db in d.databases.get() if db.rpc_client_access_server != fqdn]
        if wrong:
            verdicts.failed.append(
                f"after {what}: {len(wrong)} databases don't name {fqdn} (e.g. {wrong[0]})"
            )

    with stopwatch() as t_all:
        n_all = d.databases.set_rpc_client_access_server(None, array_fqdn)
    check_all(array_fqdn, "set_rpc_client_access_server(None)")
    bulk.add_row(
        "all: set_rpc_client_access_server(None, array)",
        f"{n_all:,}",
        secs(t_all[0]),
        goal_text,
        verdicts.judge("bulk update (all)", t_all[0], BULK_UPDATE_GOAL_S, counts=is_sqlite),
    )

    # Back to a server name (untimed), then the pipeline path.
    d.databases.set_rpc_client_access_server(None, cas_fqdn)
    with stopwatch() as t_get:
        records: list[MailboxDatabase] = d.databases.get()
    with stopwatch() as t_set:
        n_set = d.databases.set_rpc_client_access_server(records, array_fqdn)
    check_all(array_fqdn, "set_rpc_client_access_server(records)")
    pipeline = t_get[0] + t_set[0]
    bulk.add_row("pipeline: databases.get()", f"{len(records):,}", secs(t_get[0]), "", "")
    bulk.add_row(
        "pipeline: set_rpc_client_access_server(records, array)",
        f"{n_set:,}",
        secs(t_set[0]),
        goal_text,
        verdicts.judge(
            "bulk update (pipeline set)", t_set[0], BULK_UPDATE_GOAL_S, counts=is_sqlite
        ),
    )
    bulk.add_row(
        "pipeline: get + set",
        f"{n_set:,}",
        secs(pipeline),
        goal_text,
        verdicts.judge(
            "bulk update (pipeline get+set)", pipeline, BULK_UPDATE_GOAL_S, counts=is_sqlite
        ),
    )
    console.print(bulk)
    if len(verdicts.failed) == failed_before:
        console.print(f"Checked: every one of the {len(records):,} databases names {array_fqdn}.")

    # -- 2. identity lookup --------------------------------------------------------
    with stopwatch() as t_all_mbx:
        mailboxes = d.mailboxes.get()  # a listing figure too, shown in table 4
    n_mbx = len(mailboxes)
    servers = d.servers.get()
    k = args.lookups

    def pick(items: Sequence[T]) -> list[T]:
        return [rng.choice(items) for _ in range(k)]

    dbs = pick(records)
    mbxs = pick(mailboxes)
    srvs = pick(servers)
    arrs = pick(arrays)
    sample_dbs = [r.name for r in pick(records)[: min(k, 500)]]
    # Keep only the samples: a server process holds no 100,000 records, and their
    # garbage-collector traversals would be timed with the lookups.
    del records, mailboxes
    gc.collect()
    gc.freeze()
    cases: list[tuple[str, Any, Callable[[Any], object], list[Any]]] = [
        ("database by name", DATABASE, d.databases.one, [r.name for r in dbs]),
        ("database by GUID", DATABASE, d.databases.one, [r.guid for r in dbs]),
        ("database by DN", DATABASE, d.databases.one, [r.distinguished_name for r in dbs]),
        (
            "database by legacyExchangeDN",
            DATABASE,
            d.databases.one,
            [r.exchange_legacy_dn for r in dbs],
        ),
        (
            "mailbox by SMTP address",
            MAILBOX,
            d.mailboxes.one,
            [m.primary_smtp_address for m in mbxs],
        ),
        ("mailbox by alias", MAILBOX, d.mailboxes.one, [m.alias for m in mbxs]),
        ("mailbox by GUID", MAILBOX, d.mailboxes.one, [m.guid for m in mbxs]),
        ("server by FQDN", SERVER, d.servers.one, [s.fqdn for s in srvs]),
        ("array by name", ARRAY, d.arrays.one, [a.name for a in arrs]),
    ]
    lookups = Table(title=f"2. Identity lookup ({k:,} random lookups each)", title_justify="left")
    for column in ("figure", "median", "p95", "p99", "goal", "result"):
        lookups.add_column(column, justify="left" if column == "figure" else "right")
    lookup_goal = f"median <= {LOOKUP_MEDIAN_GOAL_S * 1000:g} ms"
    names = d.names
    for section, bare in (
        ("one(): lookup + record", False),
        ("identity.resolve in one session", True),
    ):
        lookups.add_section()
        lookups.add_row(f"[bold]{section}[/]", "", "", "", "", "")
        for what, kind, one, idents in cases:
            if bare:
                with d.store.read() as session:

                    def resolve(ident: object, _s: Any = session, _k: Any = kind) -> object:
                        return identity_mod.resolve(_s, names, _k, ident)

                    timing = timed_each(resolve, idents)
            else:
                timing = timed_each(one, idents)
            label = f"{'resolve' if bare else 'one'}: {what}"
            lookups.add_row(
                f"  {what}",
                ms(timing.median),
                ms(timing.percentile(95)),
                ms(timing.percentile(99)),
                lookup_goal,
                verdicts.judge(label, timing.median, LOOKUP_MEDIAN_GOAL_S),
            )
    console.print(lookups)

    # -- 3. array member computation -------------------------------------------------
    members = Table(title="3. Array member computation", title_justify="left")
    for column in ("figure", "members", "calls", "median", "p95", "p99"):
        members.add_column(column, justify="left" if column == "figure" else "right")
    for array in arrays:
        ids = [array.name] * min(k, 500)
        timing = timed_each(d.arrays.one, ids)
        shown = d.arrays.one(array.name).members
        members.add_row(
            f"arrays.one({array.name!r})",
            f"{len(shown)}",
            f"{len(ids):,}",
            ms(timing.median),
            ms(timing.percentile(95)),
            ms(timing.percentile(99)),
        )
    calls = list(range(min(k, 500)))
    timing = timed_each(lambda _: d.arrays.get(), calls)
    total_members = sum(len(a.members) for a in d.arrays.get())
    members.add_row(
        f"arrays.get() — {len(arrays)} arrays",
        f"{total_members}",
        f"{len(calls):,}",
        ms(timing.median),
        ms(timing.percentile(95)),
        ms(timing.percentile(99)),
    )
    with d.store.read() as session:
        site_ids = [identity_mod.resolve(session, names, ARRAY, a.name).site_id for a in arrays]
        timing = timed_each(
            lambda i: d.servers.client_access_rows(session, site_ids[i % len(site_ids)]), calls
        )
    members.add_row(
        "servers.client_access_rows in one session",
        f"{total_members // len(arrays)}",
        f"{len(calls):,}",
        ms(timing.median),
        ms(timing.percentile(95)),
        ms(timing.percentile(99)),
    )
    console.print(members)

    # -- 4. listing ----------------------------------------------------------------
    listing = Table(title="4. Listing", title_justify="left")
    for column in ("figure", "rows", "calls", "median", "p95", "min"):
        listing.add_column(column, justify="left" if column == "figure" else "right")
    runs = list(range(args.repeat))
    rows_seen: list[int] = []
    timing = timed_each(lambda _: rows_seen.append(len(d.databases.get())), runs)
    listing.add_row(
        "databases.get() — all",
        f"{rows_seen[-1]:,}",
        f"{len(runs)}",
        secs(timing.median),
        secs(timing.percentile(95)),
        secs(min(timing.samples)),
    )
    counts: list[int] = []
    timing = timed_each(lambda name: counts.append(len(d.mailboxes.get(database=name))), sample_dbs)
    listing.add_row(
        "mailboxes.get(database=...)",
        f"~{statistics.mean(counts):.0f} each",
        f"{len(sample_dbs):,}",
        ms(timing.median),
        ms(timing.percentile(95)),
        ms(min(timing.samples)),
    )
    listing.add_row("mailboxes.get() — all", f"{n_mbx:,}", "1", secs(t_all_mbx[0]), "", "")
    console.print(listing)

    # -- verdict -------------------------------------------------------------------
    for problem in verdicts.failed:
        console.print(f"[red]check failed:[/] {problem}")
    for label_missed in verdicts.missed:
        console.print(f"[red]goal missed:[/] {label_missed}")
    if verdicts.failed or verdicts.missed:
        return 1
    console.print("[green]All goals met.[/]")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="casarray-bench-") as scratch:
        home = args.keep.resolve() if args.keep else Path(scratch)
        home.mkdir(parents=True, exist_ok=True)
        os.environ["CASARRAY_HOME"] = str(home)
        if args.url:
            url = args.url
        else:
            db_file = home / "directory.db"
            if db_file.exists():
                console.print(f"[red]{db_file} exists; --keep needs a folder without a directory.")
                return 2
            url = f"sqlite:///{db_file}"
        label = make_url(url).render_as_string(hide_password=True)
        console.print(
            f"[bold]casarray directory benchmark[/]: {args.backend} {label}\n"
            f"{args.sites} sites x ({args.cas} CAS + {args.servers} Mailbox servers), "
            f"{args.databases:,} databases, {args.mailboxes:,} mailboxes, "
            f"{args.lookups:,} lookups per kind, seed {args.seed}\n"
            f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}"
        )
        with Directory.open(url) as d:
            code = run(d, args, label)
        if args.keep:
            console.print(f"Kept: CASARRAY_HOME={home}" + ("" if args.url else f", {url}"))
    return code


if __name__ == "__main__":
    sys.exit(main())
