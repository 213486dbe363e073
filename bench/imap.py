"""IMAP benchmark: casarray's IMAP server against Dovecot, same machine, same messages.

Both servers get the same MESSAGES messages (default 10,000; plain text, multipart with
attachments, encoded-word subjects; a third of them \\Seen) in one user's INBOX:
casarray in its SQLite mailbox database (`casarray server run CAS01`, uvloop, plain
IMAP with LOGIN allowed on loopback), Dovecot (Debian's /usr/sbin/dovecot, started by
this script in a temporary folder on 127.0.0.1, Maildir, default services) in a
Maildir. Passwords are checked by both, but cheaply (Dovecot: a PLAIN passwd-file;
casarray: an argon2id hash with minimal cost parameters), so the figures are about
IMAP, not about password hashing.

It prints, for 1 and CLIENTS (default 50) concurrent clients, each for SECONDS:
- NOOP per second (the cost of a command round trip itself),
- SELECT INBOX per second,
- FETCH 1:* (FLAGS ENVELOPE) per second (each one every message of the folder),
- UID SEARCH per second (UNSEEN, and FROM "bob": a header search),
- APPEND per second (a 3 KB message, LITERAL+, into a folder of its own),
then memory per idle connection with IDLE (default 2,000) connections open at once:
once only connected (greeted, not logged in) and once logged in; the server's RSS (all
Dovecot processes added up; PSS beside it, which counts shared pages once) before and
after, divided by the connections. Last, the ratios casarray/Dovecot. Goals: rates at
least 0.5x Dovecot's; at most 20 KB per idle plain-text connection.

    .venv/bin/python bench/imap.py
    .venv/bin/python bench/imap.py --messages 2000 --seconds 2 --idle 500   # quick

With --stress it runs Dovecot's imaptest in its stress mode instead (`../shared/imaptest`:
clients that log in, select, fetch, store, expunge and append at once while imaptest
checks that each sees a consistent mailbox), against casarray (one Client Access server,
--processes 2 workers, plaintext LOGIN allowed on loopback) and Dovecot in turn, four
loads of --seconds each (default 10; the 50-client loads twice that), messages taken
from an mbox of --mbox-messages (500) generated messages:

- 10 clients on one mailbox, sessions that stay logged in (`logout=0`);
- the same with logins churning (every client logs out and in again and again);
- 50 clients over 50 users (`user=test%d users=50`), `logout=0`, and churning;
- the 10-client churn again, casarray started anew without its login cache
  ($CASARRAY_LOGIN_CACHE_SECONDS=0, every login paying argon2id): figures only.

Every user's password is stored as an argon2id hash of casarray's own cost
(`directory.mailboxes.password_hasher`) by both servers (Dovecot: passwd-file,
{ARGON2ID} scheme, its auth cache on). With `logout=0` the rates are taken over the
seconds in which every client was logged in (the logins' ramp left out; LOGIN and
SELECT there count only clients that had to connect again, so they have no goal); with
churn, over the whole run. It prints per load every command's rate on both servers and the
ratio, imaptest's average ms per command, the median FETCH and STORE time of one more
client in the same mailbox (UID FETCH 1:* FLAGS, STORE 1 +/-FLAGS.SILENT), and every
error imaptest reports against either server (each one against casarray is a defect).

    .venv/bin/python bench/imap.py --stress
    .venv/bin/python bench/imap.py --stress --loads 0 --seconds 20   # one load

Needs /usr/sbin/dovecot (Debian package dovecot-imapd) and root (Dovecot runs its
mail processes as `nobody`); without them only casarray is measured (--no-dovecot).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import benchlib

USER, PASSWORD = "bench", "bench-password"
CAS_HOST, DOVECOT_HOST = "127.77.1.11", "127.0.0.1"
RATE_GOAL, IDLE_GOAL_KB = 0.5, 20.0


# -- the messages --------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    data: bytes
    seen: bool
    when: datetime


WORDS = (
    "array",
    "budget",
    "report",
    "lunch",
    "meeting",
    "server",
    "mailbox",
    "database",
    "site",
    "plan",
    "migration",
    "certificate",
    "balancer",
    "quarterly",
    "review",
    "update",
    "notes",
    "draft",
    "invoice",
    "travel",
)
NAMES = ("Alice Wang", "Bob Li", "Carol Zhang", "Zhāng Wěi", "Dmitri Ivanov", "Eve Müller")


def make_messages(count: int, seed: int = 2010) -> list[Message]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        msg = EmailMessage()
        subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
        if i % 10 == 0:
            subject = f"Grüße aus 北京: {subject}"
        sender = rng.choice(NAMES)
        local = sender.split()[0].lower().replace("ā", "a")
        msg["Subject"] = subject
        msg["From"] = f"{sender} <{local}@lab.net>"
        msg["To"] = "Bench User <bench@lab.net>"
        if i % 3 == 0:
            msg["Cc"] = "bob@lab.net, carol@lab.net"
        when = start + timedelta(minutes=17 * i)
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = f"<bench-{i}@lab.net>"
        body = "\n".join(
            " ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(rng.randint(5, 40))
        )
        msg.set_content(body + "\n")
        if i % 5 == 0:
            msg.add_attachment(
                rng.randbytes(rng.randint(2_000, 20_000)),
                maintype="application",
                subtype="pdf",
                filename=f"report-{i}.pdf",
            )
        data = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        out.append(Message(data, seen=i % 3 == 0, when=when))
    return out


def append_message(size: int = 3000) -> bytes:
    head = (
        b"From: Bob Li <bob@lab.net>\r\nTo: bench@lab.net\r\nSubject: appended\r\n"
        b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <appended@lab.net>\r\n\r\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    return head + line * ((size - len(head)) // len(line))


# -- processes and memory ------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


process_tree = benchlib.process_tree


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in KiB, added up over `pids`."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss, pss


@dataclass
class Server:
    name: str
    host: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    master_pid: int | None = None
    stop: Callable[[], None] = field(default=lambda: None)

    def pids(self) -> list[int]:
        root = self.master_pid or (self.proc.pid if self.proc else None)
        return process_tree(root) if root else []


def start_casarray(
    base: Path,
    messages: list[Message],
    processes: int | None = None,
    users: Sequence[tuple[str, str]] = (),
    threads: int | None = None,
) -> Server:
    """casarray with USER's INBOX holding `messages` (its password hashed cheaply), and
    `users`, (alias, password hash) pairs, with empty mailboxes."""
    import argon2

    from casarray.directory import Directory
    from casarray.lab.topology import build_seed_organization
    from casarray.mailstore.provisioning import database_store, open_mailbox

    home = base / "casarray"
    home.mkdir(parents=True)
    os.environ["CASARRAY_HOME"] = str(home)
    url = f"sqlite:///{home / 'directory.db'}"
    t0 = time.perf_counter()
    with Directory.open(url) as directory:
        build_seed_organization(directory)
        cheap = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
        mailbox = directory.mailboxes.new(
            name="Bench User", alias=USER, database="DB01", password_hash=cheap
        )
        database = directory.databases.one("DB01")
        box = open_mailbox(database, mailbox.guid)
        for message in messages:
            flags = ("\\Seen",) if message.seen else ()
            box.append("INBOX", message.data, flags, message.when)
        for alias, password_hash in users:
            user = directory.mailboxes.new(
                name=alias, alias=alias, database="DB01", password_hash=password_hash
            )
            open_mailbox(database, user.guid)
        database_store(database).close()
    print(f"  casarray: {len(messages)} messages stored in {time.perf_counter() - t0:.1f} s")
    port = free_port(CAS_HOST)
    log = open(home / "CAS01.log", "wb")  # noqa: SIM115 - kept open while it runs
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "casarray",
            "server",
            "run",
            "CAS01",
            "--directory",
            url,
            "--imap-port",
            str(port),
            "--imaps-port",
            "0",
            "--allow-plaintext-login",
            *(["--processes", str(processes)] if processes else []),
            *(["--threads", str(threads)] if threads else []),
        ],
        stdout=log,
        stderr=log,
        env=dict(os.environ),
    )
    wait_for_port(CAS_HOST, port, proc)
    wait_for_workers(home, proc)

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    return Server("casarray", CAS_HOST, port, proc=proc, stop=stop)


DOVECOT_CONF = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.info.log
listen = {host}
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
auth_cache_size = 10M
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 1 hour
default_internal_user = dovecot
default_login_user = dovenull
default_process_limit = 5000
default_client_limit = 12000
default_vsz_limit = 1G
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap {{
  process_limit = 5000
}}
service imap-login {{
  process_limit = 5000
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 10000
}}
"""


def start_dovecot(
    base: Path, messages: list[Message], users: Sequence[tuple[str, str]] = ()
) -> Server:
    """Dovecot with USER's Maildir holding `messages` (a PLAIN password), and `users`,
    (name, argon2 hash) pairs, with empty Maildirs and {ARGON2ID} passwords."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    base = base / "dovecot"
    for sub in ("run", "state", f"home/{USER}/Maildir/cur", f"home/{USER}/Maildir/new"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for name, _ in users:
        for sub in ("cur", "new", "tmp"):
            (base / f"home/{name}/Maildir/{sub}").mkdir(parents=True, exist_ok=True)
    (base / f"home/{USER}/Maildir/tmp").mkdir(exist_ok=True)
    home = base / "home" / USER
    t0 = time.perf_counter()
    for i, message in enumerate(messages):
        stamp = int(message.when.timestamp())
        name = f"{stamp}.M{i}P1.bench,S={len(message.data)}:2,{'S' if message.seen else ''}"
        path = home / "Maildir" / "cur" / name
        path.write_bytes(message.data)
        os.utime(path, (stamp, stamp))
    for root, dirs, files in os.walk(base / "home"):
        for item in dirs + files:
            os.chown(os.path.join(root, item), nobody.pw_uid, nobody.pw_gid)
    print(f"  Dovecot: {len(messages)} messages written in {time.perf_counter() - t0:.1f} s")
    port = free_port(DOVECOT_HOST)
    ids = f"{nobody.pw_uid}:{nobody.pw_gid}"
    (base / "passwd").write_text(
        f"{USER}:{{PLAIN}}{PASSWORD}:{ids}::{home}::\n"
        + "".join(
            f"{name}:{{ARGON2ID}}{hashed}:{ids}::{base / 'home' / name}::\n"
            for name, hashed in users
        )
    )
    conf = base / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(base=base, host=DOVECOT_HOST, port=port))
    subprocess.run(["/usr/sbin/dovecot", "-c", str(conf)], check=True)
    wait_for_port(DOVECOT_HOST, port, None)
    pid_file = base / "run" / "master.pid"
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    master = int(pid_file.read_text())

    def stop() -> None:
        subprocess.run(["/usr/sbin/dovecot", "-c", str(conf), "stop"], check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{master}").exists():
            time.sleep(0.1)

    return Server("Dovecot", DOVECOT_HOST, port, master_pid=master, stop=stop)


def wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def wait_for_workers(home: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the server's status file is written: its master writes it once every
    worker serves. (The port answers as soon as the first worker listens; a load
    started then lands wholly on that worker, the kernel choosing among the listeners
    there are when each connection arrives.)"""
    from casarray.access.cas_process import status_file

    deadline = time.monotonic() + 60
    while status_file("CAS01", home).read() is None:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("the server's workers did not all start within 60 s")
        time.sleep(0.05)


# -- a minimal IMAP client -------------------------------------------------------------


class ImapError(Exception):
    pass


class Client:
    """Just enough IMAP: one command at a time, the response read up to its tagged line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.counter = 0

    @classmethod
    async def connect(cls, server: Server) -> Client:
        reader, writer = await asyncio.open_connection(server.host, server.port, limit=1 << 26)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise ImapError(greeting)
        return cls(reader, writer)

    async def command(self, text: bytes, literal: bytes | None = None) -> int:
        """Run a command; the size of its response."""
        self.counter += 1
        tag = b"A%d" % self.counter
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        marker = tag + b" "
        size = 0
        while True:
            part = await self.reader.readuntil(marker)
            size += len(part)
            if len(part) == len(marker) or part[-len(marker) - 1] == 0x0A:
                break
        line = await self.reader.readline()
        if not line.startswith(b"OK"):
            raise ImapError(tag + b" " + line)
        return size + len(line)

    async def login(self) -> None:
        await self.command(b"LOGIN " + USER.encode() + b' "' + PASSWORD.encode() + b'"')

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()


async def connect_many(server: Server, count: int, login: bool, parallel: int = 50) -> list[Client]:
    clients: list[Client] = []
    limit = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with limit:
            client = await Client.connect(server)
            if login:
                await client.login()
            clients.append(client)

    await asyncio.gather(*(one() for _ in range(count)))
    return clients


# -- the measurements --------------------------------------------------------------------


@dataclass
class Op:
    name: str
    prepare: Callable[[Client], Awaitable[object]]
    run: Callable[[Client], Awaitable[int]]


def operations(message: bytes) -> list[Op]:
    async def nothing(client: Client) -> None:
        return None

    async def select(client: Client) -> None:
        await client.command(b"SELECT INBOX")

    async def bench_folder(client: Client) -> None:
        with contextlib.suppress(ImapError):
            await client.command(b"CREATE Bench")

    return [
        Op("NOOP", nothing, lambda c: c.command(b"NOOP")),
        Op("SELECT INBOX", nothing, lambda c: c.command(b"SELECT INBOX")),
        Op(
            "FETCH 1:* (FLAGS ENVELOPE)", select, lambda c: c.command(b"FETCH 1:* (FLAGS ENVELOPE)")
        ),
        Op("UID SEARCH UNSEEN", select, lambda c: c.command(b"UID SEARCH UNSEEN")),
        Op('UID SEARCH FROM "bob"', select, lambda c: c.command(b'UID SEARCH FROM "bob"')),
        Op("APPEND (3 KB)", bench_folder, lambda c: c.command(b"APPEND Bench", message)),
    ]


async def rate(server: Server, op: Op, clients: int, seconds: float) -> tuple[float, float]:
    """(operations per second, MB/s of responses) with `clients` concurrent clients."""
    pool = await connect_many(server, clients, login=True)
    for client in pool:
        await op.prepare(client)
    await op.run(pool[0])  # warm
    count = 0
    received = 0
    start = time.perf_counter()
    deadline = start + seconds

    errors: list[bytes] = []

    async def loop(client: Client) -> None:
        nonlocal count, received
        while time.perf_counter() < deadline:
            try:
                received += await op.run(client)
            except ImapError as exc:
                errors.append(exc.args[0])
            else:
                count += 1

    await asyncio.gather(*(loop(c) for c in pool))
    elapsed = time.perf_counter() - start
    for client in pool:
        await client.close()
    if errors:
        print(f"    {len(errors)} {op.name} failed, e.g. {errors[0][:100]!r}")
    return count / elapsed, received / elapsed / 1e6


async def idle_memory(server: Server, count: int, login: bool) -> tuple[float, float]:
    """(RSS, PSS) KiB per idle connection, `count` connections."""
    warm = await connect_many(server, 5, login=True)
    for client in warm:
        await client.close()
    await asyncio.sleep(1.0)
    before = memory_kb(server.pids())
    clients = await connect_many(server, count, login=login)
    await asyncio.sleep(2.0)
    after = memory_kb(server.pids())
    for client in clients:
        await client.close()
    await asyncio.sleep(1.0)
    return (after[0] - before[0]) / count, (after[1] - before[1]) / count


async def warm_up(server: Server) -> None:
    client = await Client.connect(server)
    await client.login()
    for _ in range(3):
        await client.command(b"SELECT INBOX")
        await client.command(b"FETCH 1:* (FLAGS ENVELOPE)")
        await client.command(b'UID SEARCH FROM "bob"')
        await client.command(b"UID SEARCH UNSEEN")
    await client.close()


async def measure(server: Server, args: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    # Idle memory first, on the fresh server: after big FETCHes the allocator keeps
    # freed memory that new connections would reuse unseen.
    for login in (False, True):
        what = "logged in" if login else "connected"
        rss, pss = await idle_memory(server, args.idle, login)
        results[f"idle {what} RSS"] = rss
        results[f"idle {what} PSS"] = pss
        print(
            f"  {server.name}: {args.idle} idle ({what}): {rss:.1f} KB RSS, {pss:.1f} KB PSS each"
        )
    for op in operations(append_message()):
        single = 0.0
        for clients in (1, args.clients):
            if clients > 1 and single * args.seconds < 5:
                # Each of the clients would wait for all the others' slow commands.
                print(f"  {server.name}: {op.name:28} {clients:3} clients: skipped (too slow)")
                continue
            ops, mbs = await rate(server, op, clients, args.seconds)
            single = single or ops
            results[f"{op.name} x{clients}"] = ops
            print(
                f"  {server.name}: {op.name:28} {clients:3} clients: {ops:9.1f}/s ({mbs:.1f} MB/s)"
            )
    return results


# -- imaptest's stress mode -------------------------------------------------------------

IMAPTEST = Path(__file__).resolve().parents[2] / "shared" / "imaptest" / "imaptest"
STRESS_USERS = 50
STRESS_PASSWORD = "Stress-Passw0rd"
# (label, imaptest arguments, the user the latency probe logs in as)
NO_CACHE_LOAD = "10 clients, 1 mailbox, churn, casarray without its login cache"
STRESS_LOADS = (
    ("10 clients, 1 mailbox, logout=0", ("clients=10", "user=test1", "logout=0")),
    ("10 clients, 1 mailbox, churn", ("clients=10", "user=test1")),
    (
        "50 clients, 50 users, logout=0",
        ("clients=50", "user=test%d", f"users={STRESS_USERS}", "logout=0"),
    ),
    ("50 clients, 50 users, churn", ("clients=50", "user=test%d", f"users={STRESS_USERS}")),
    # casarray started again with $CASARRAY_LOGIN_CACHE_SECONDS=0: figures, no goal
    (NO_CACHE_LOAD, ("clients=10", "user=test1")),
)


SET_UP_COMMANDS = frozenset({"Logi", "Sele"})


@dataclass
class StressResult:
    rates: dict[str, float]  # command -> per second
    errors: list[str]
    latency_ms: dict[str, float]  # command -> median, from the probe
    average_ms: dict[str, float] = field(default_factory=dict)  # imaptest's ms/cmd avg


def write_mbox(path: Path, messages: list[Message]) -> None:
    with path.open("wb") as out:
        for message in messages:
            stamp = message.when.strftime("%a %b %d %H:%M:%S %Y").encode()
            out.write(b"From bench@lab.net " + stamp + b"\n")
            body = message.data.replace(b"\r\n", b"\n")
            body = b"\n".join(
                b">" + line if line.lstrip(b">").startswith(b"From ") else line
                for line in body.split(b"\n")
            )
            out.write(body.rstrip(b"\n") + b"\n\n")


def parse_averages(output: str) -> dict[str, float]:
    """imaptest's last `ms/cmd avg` line, under the last header line of names."""
    lines = output.splitlines()
    names: list[str] = []
    averages: dict[str, float] = {}
    for line in lines:
        fields = line.split()
        if fields and fields[0] == "Logi":
            names = fields
        elif line.endswith("ms/cmd avg") and names:
            averages = dict(zip(names, (float(f) for f in fields[: len(names)]), strict=False))
    return averages


def parse_steady(output: str) -> dict[str, float] | None:
    """Per-second rates over the seconds in which every client was logged in (the
    per-second lines end `N/ N`), leaving out the logins' ramp; None when there were
    fewer than three such seconds."""
    names: list[str] = []
    sums: dict[str, int] = {}
    seconds = 0
    for line in output.splitlines():
        fields = line.split()
        if fields and fields[0] == "Logi" and not names:
            names = fields
            continue
        if line.startswith("Totals:"):
            break
        if len(fields) == len(names) + 2 and fields[-2].endswith("/"):
            connected, total = int(fields[-2][:-1]), int(fields[-1])
            if connected == total and all(f.isdigit() for f in fields[: len(names)]):
                seconds += 1
                for name, count in zip(names, fields, strict=False):
                    sums[name] = sums.get(name, 0) + int(count)
    if seconds < 3:
        return None
    return {name: count / seconds for name, count in sums.items()}


def parse_totals(output: str, seconds: float) -> dict[str, float]:
    """imaptest's Totals: a header line of 4-letter command names, then a line of
    counts over the whole run: per second."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Totals:"):
            names = lines[i + 1].split()
            # the counts are the last line of numbers in the block
            for follow in lines[i + 2 : i + 6]:
                fields = follow.split()
                if len(fields) >= len(names) and all(f.isdigit() for f in fields[: len(names)]):
                    return {n: int(c) / seconds for n, c in zip(names, fields, strict=False)}
    raise RuntimeError(f"imaptest printed no totals:\n{output[-2000:]}")


async def probe_latency(
    server: Server, user: str, stop: asyncio.Event, delay: float = 0.02
) -> dict[str, float]:
    """Median FETCH and STORE times (ms) of one more client in the load's mailbox."""
    samples: dict[str, list[float]] = {"FETCH": [], "STORE": []}
    await asyncio.sleep(1.0)  # imaptest's clients log in first
    client = await Client.connect(server)
    await client.command(b"LOGIN " + user.encode() + b' "' + STRESS_PASSWORD.encode() + b'"')
    await client.command(b"SELECT INBOX")
    add = True
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            await client.command(b"UID FETCH 1:* (FLAGS)")
            samples["FETCH"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with contextlib.suppress(ImapError):  # the message may be gone meanwhile
                sign = b"+" if add else b"-"
                await client.command(b"STORE 1 " + sign + b"FLAGS.SILENT ($Probe)")
                samples["STORE"].append(time.perf_counter() - t0)
            add = not add
            await asyncio.sleep(delay)
    finally:
        await client.close()
    return {
        name: 1000 * sorted(values)[len(values) // 2] for name, values in samples.items() if values
    }


async def stress_once(
    server: Server, args: tuple[str, ...], mbox: Path, seconds: float
) -> StressResult:
    stop = asyncio.Event()
    user = next(a.split("=", 1)[1] for a in args if a.startswith("user=")).replace("%d", "1")
    probe = asyncio.ensure_future(probe_latency(server, user, stop))
    proc = await asyncio.create_subprocess_exec(
        str(IMAPTEST),
        f"host={server.host}",
        f"port={server.port}",
        f"pass={STRESS_PASSWORD}",
        f"mbox={mbox}",
        f"secs={seconds:g}",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    stop.set()
    try:
        latency = await probe
    except (OSError, ImapError) as exc:
        print(f"    latency probe failed: {exc}")
        latency = {}
    output = out.decode(errors="replace")
    errors = [line for line in output.splitlines() if "rror" in line]
    rates = None
    if "logout=0" in args:
        rates = parse_steady(output)
    if rates is None:
        rates = parse_totals(output, seconds)
    return StressResult(rates, errors, latency, parse_averages(output))


def stress(server: Server, mbox: Path, seconds: float, wanted: set[int]) -> list[StressResult]:
    results = []
    for i, (label, load) in enumerate(STRESS_LOADS):
        if i not in wanted:
            results.append(StressResult({}, [], {}))
            continue
        # 50 argon2id logins take seconds of their own: the 50-user loads run longer.
        secs = seconds * 2 if "clients=50" in load else seconds
        result = asyncio.run(stress_once(server, load, mbox, secs))
        shown = " ".join(f"{k} {v:.0f}" for k, v in result.rates.items())
        print(f"  {server.name}: {label}: {shown}")
        for line in result.errors[:10]:
            print(f"    {line}")
        results.append(result)
    return results


def stress_report(results: dict[str, list[StressResult]]) -> int:
    cas, dovecot = results.get("casarray"), results.get("Dovecot")
    misses = 0
    for i, (label, args) in enumerate(STRESS_LOADS):
        # With logout=0 each client logs in and selects once: LOGIN and SELECT there
        # count reconnections (a client the server dropped), not the load's throughput.
        set_up_only = SET_UP_COMMANDS if "logout=0" in args else frozenset()
        mine = cas[i] if cas else None
        peer = dovecot[i] if dovecot else None
        if not (mine and mine.rates) and not (peer and peer.rates):
            continue
        print()
        print(f"{label}:")
        header = (
            f"  {'command':8} {'casarray/s':>11} {'Dovecot/s':>10} {'ratio':>6}"
            f" {'cas avg ms':>11} {'Dovecot avg':>12} {'cas p50 ms':>11} {'Dovecot p50':>12}"
        )
        print(header)
        names = list((mine or peer).rates) if (mine or peer) else []  # type: ignore[union-attr]
        for name in names:
            a = mine.rates.get(name) if mine else None
            b = peer.rates.get(name) if peer else None
            ratio = f"{a / b:6.2f}" if a is not None and b else "     -"
            mark = ""
            if name in set_up_only:
                mark = "  (set-up only: no goal)"
            elif a is not None and b and a / b < RATE_GOAL and label != NO_CACHE_LOAD:
                mark, misses = "  < goal", misses + 1
            lat_a = (mine.latency_ms.get(_PROBED.get(name, ""), -1.0)) if mine else -1.0
            lat_b = (peer.latency_ms.get(_PROBED.get(name, ""), -1.0)) if peer else -1.0
            if set_up_only and lat_a >= LATENCY_GOAL_MS:  # a logout=0 load
                mark, misses = f"{mark}  > {LATENCY_GOAL_MS:g} ms goal", misses + 1
            shown_a = f"{lat_a:11.1f}" if lat_a >= 0 else f"{'':11}"
            shown_b = f"{lat_b:12.1f}" if lat_b >= 0 else f"{'':12}"
            avg_a = mine.average_ms.get(name) if mine else None
            avg_b = peer.average_ms.get(name) if peer else None
            shown_avg = (f"{avg_a:11.0f}" if avg_a is not None else f"{'':11}") + (
                f" {avg_b:12.0f}" if avg_b is not None else f" {'':12}"
            )
            print(
                f"  {name:8} {a if a is not None else 0:11.1f} "
                f"{b if b is not None else 0:10.1f} {ratio} {shown_avg} {shown_a} {shown_b}{mark}"
            )
        for who, result in (("casarray", mine), ("Dovecot", peer)):
            if result and result.errors:
                print(f"  {who}: {len(result.errors)} imaptest errors, e.g. {result.errors[0]}")
                if who == "casarray":
                    misses += 1
    print()
    print(
        f"Goal: every command's rate >= {RATE_GOAL}x Dovecot's, no imaptest error against "
        f"casarray, and under logout=0 one more client's median (p50) UID FETCH 1:* FLAGS and "
        f"STORE < {LATENCY_GOAL_MS:g} ms. {misses} missed."
    )
    return 1 if misses else 0


_PROBED = {"Fetc": "FETCH", "Stor": "STORE"}
LATENCY_GOAL_MS = 10.0  # the probe's median FETCH and STORE under the logout=0 loads


def stress_main(args: argparse.Namespace, dovecot_ok: bool) -> int:
    import argon2

    from casarray.directory.mailboxes import password_hasher

    if not IMAPTEST.exists():
        print(f"imaptest is missing ({IMAPTEST})")
        return 2
    # One hash of casarray's own cost (its password_hasher), stored for every user by
    # both servers: the same argon2id work per uncached login.
    hashed = password_hasher().hash(STRESS_PASSWORD)
    params = argon2.extract_parameters(hashed)
    print(
        f"Passwords: argon2id t={params.time_cost} m={params.memory_cost} KiB "
        f"p={params.parallelism} on both servers"
    )
    users = [(f"test{i}", hashed) for i in range(1, STRESS_USERS + 1)]
    every = set(range(len(STRESS_LOADS)))
    wanted = {int(n) for n in args.loads.split(",")} if args.loads else every
    results: dict[str, list[StressResult]] = {}
    with benchlib.temporary(args.keep, "casarray-imap-stress-", 0o755) as base:
        mbox = base / "stress.mbox"
        write_mbox(mbox, make_messages(args.mbox_messages))
        os.chmod(mbox, 0o644)
        starters: list[tuple[str, Callable[[], Server]]] = []
        if not args.no_casarray:
            starters.append(
                (
                    "casarray",
                    lambda: start_casarray(base, [], args.processes or 2, users, args.threads),
                )
            )
        if dovecot_ok and not args.no_dovecot:
            starters.append(("Dovecot", lambda: start_dovecot(base, [], users)))
        no_cache = len(STRESS_LOADS) - 1
        for name, starter in starters:
            server = starter()
            try:
                # Dovecot runs the no-cache load as it is (its own cache on, to be fair)
                own = wanted - {no_cache} if name == "casarray" else wanted
                results[name] = stress(server, mbox, args.seconds, own)
            finally:
                server.stop()
            if name == "casarray" and no_cache in wanted:
                os.environ["CASARRAY_LOGIN_CACHE_SECONDS"] = "0"
                shutil.rmtree(base / "casarray")
                try:
                    server = starter()
                finally:
                    del os.environ["CASARRAY_LOGIN_CACHE_SECONDS"]
                try:
                    results[name][no_cache] = stress(server, mbox, args.seconds, {no_cache})[
                        no_cache
                    ]
                finally:
                    server.stop()
    return stress_report(results)


# -- main ------------------------------------------------------------------------------------


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> int:
    dovecot = results.get("Dovecot")
    cas = results.get("casarray") or {}
    print()
    header = f"{'measure':42} {'casarray':>12} {'Dovecot':>12} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    misses = 0
    for key, value in cas.items():
        other = dovecot.get(key) if dovecot else None
        idle = key.startswith("idle")
        unit = " KB" if idle else "/s"
        ratio = f"{value / other:7.2f}" if other else "      -"
        mark = ""
        if idle and "connected RSS" in key and value > IDLE_GOAL_KB:
            mark, misses = "  > goal", misses + 1
        if not idle and other and value / other < RATE_GOAL:
            mark, misses = "  < goal", misses + 1
        shown_other = f"{other:10.1f}{unit}" if other is not None else f"{'-':>12}"
        print(f"{key:42} {value:10.1f}{unit} {shown_other} {ratio}{mark}")
    print()
    print(
        f"Goals: rates >= {RATE_GOAL}x Dovecot's; <= {IDLE_GOAL_KB:.0f} KB RSS per idle "
        f"plain-text connection. {misses} missed."
    )
    return 1 if misses else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--seconds", type=float, help="per measurement (default 4; with --stress 10 per load)"
    )
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument(
        "--processes",
        type=int,
        help="casarray worker processes (default: casarray's own, one per CPU)",
    )
    parser.add_argument(
        "--threads", type=int, help="casarray's threads per worker (default: its own, 16)"
    )
    parser.add_argument("--no-dovecot", action="store_true", help="measure casarray only")
    parser.add_argument("--no-casarray", action="store_true", help="measure Dovecot only")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    parser.add_argument(
        "--stress", action="store_true", help="imaptest's stress loads instead (see above)"
    )
    parser.add_argument("--loads", help="with --stress: which loads, e.g. 0,2 (0-4, default all)")
    parser.add_argument(
        "--mbox-messages", type=int, default=500, help="with --stress: the mbox's messages"
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.idle + 1000)), hard))
    dovecot_ok = Path("/usr/sbin/dovecot").exists() and os.geteuid() == 0
    if not args.no_dovecot and not dovecot_ok:
        print("Dovecot is not measured: needs /usr/sbin/dovecot and root (or use --no-dovecot)")
    if args.stress:
        args.seconds = args.seconds or 10.0
        return stress_main(args, dovecot_ok)
    args.seconds = args.seconds or 4.0
    print(f"Making {args.messages} messages ...")
    messages = make_messages(args.messages)
    results: dict[str, dict[str, float]] = {}
    with benchlib.temporary(args.keep, "casarray-imap-bench-", 0o755) as base:
        starters: list[tuple[str, Callable[[Path, list[Message]], Server]]] = []
        if not args.no_casarray:
            starters.append(
                ("casarray", lambda b, m: start_casarray(b, m, processes=args.processes))
            )
        if dovecot_ok and not args.no_dovecot:
            starters.append(("Dovecot", start_dovecot))
        for name, starter in starters:
            server = starter(base, messages)
            try:
                results[name] = asyncio.run(measure(server, args))
            finally:
                server.stop()
    return report(results, args)


if __name__ == "__main__":
    raise SystemExit(main())
