"""HTTP benchmark: a Client Access server's health check and Autodiscover against nginx.

casarray (`casarray server run CAS01 --port-offset N`, from a lab organization built in
a temporary folder) and nginx (Debian's /usr/sbin/nginx, started by this script in the
same folder, on 127.0.0.1) are asked the same requests by wrk (Debian's /usr/bin/wrk,
`wrk -t2 -c CONNECTIONS -d SECONDS --latency`, HTTP/1.1 keep-alive) on loopback, one
after the other, in the same run:

- `GET /owa/healthcheck.htm` over HTTPS, over plain HTTP, and over HTTPS with
  `Connection: close` (a TCP connection and a full TLS handshake per request, as a
  balancer's probe makes them);
- `POST /autodiscover/autodiscover.xml` over HTTPS with an Outlook 2010 request body and
  HTTP Basic authentication, checked against an argon2 hash of casarray's default cost
  (what `hash_password` stores: argon2id, 64 MiB, t=3, p=4; tens of milliseconds of
  CPU by design): once as alice again and again (casarray remembers a verified login
  for a while, per process: this is the path after the first verification), and once
  as a new user each request (`--users` mailboxes, cold0000..., sharing one hash; the
  Lua script walks through them, and the script never gives casarray a user twice), so
  that every request costs a verification, as when many Outlook clients start at once.
  That run has only `--slow-connections` (4) connections: with more, each would wait
  seconds for the hashes of all the others, for the same rate.

nginx is the peer: it serves the same bytes casarray answered (saved from casarray's
answers, checked byte for byte) as static files, with the same certificate and key
(the ones casarray made under $CASARRAY_HOME/certs), `access_log off`, and as many
worker processes as casarray has processes (`--processes`; SO_REUSEPORT on both
sides). It checks the Basic credentials only by comparing the header with strings (a
map), and picks the user's answer by it. The cold users' answers are one user's answer
with the alias replaced (checked against casarray's own answers for two more).

Before measuring, every target is asked once with urllib and must answer 200 and the
expected body (the health page's `200 OK<br/>CAS01.lab.net`; a settings response for
the user, the same bytes from both servers), and each measurement is preceded by a
short warm-up (`--warmup`, 1 s). After each run the script waits until the server is
idle again: a server may go on verifying passwords for connections wrk has closed, and
that would be counted against the next run. It prints, per request and server:
requests/s, latency p50 and p99 (from wrk's `--latency`), failed requests (non-2xx,
socket errors, timeouts), the server's CPU use (all its processes, user + system time,
100% = one core) and peak RSS; then the ratios casarray/nginx of requests/s and of
requests per CPU second. wrk, the servers and this script share the machine's CPUs:
their number is printed, and the ratio per CPU second is the fairer one when the CPUs
are few (with 2 CPUs, wrk itself is the limit for nginx, and for both servers in the
row with a TLS handshake per request). A warning is printed when other processes keep
the CPUs busy at the start.

    .venv/bin/python bench/http.py
    .venv/bin/python bench/http.py --seconds 3 --connections 20      # quick
    .venv/bin/python bench/http.py --processes 2

Options: `--seconds S` (10) per measurement, `--connections N` (50), `--processes N`
(1: casarray's processes and nginx's workers), `--users N` (1000), `--slow-connections
N` (4), `--warmup S` (1), `--timeout S` (wrk's, 30), `--no-nginx`, `--inprocess`,
`--keep DIR`. The exit
status is 1 when a measured request failed, 2 when a tool is missing.

`--inprocess` measures the same Starlette application served by this script's own
launcher (uvicorn on sockets it binds, one process per `--processes`, SO_REUSEPORT)
instead of `casarray server run`: for comparison, or with a runner that serves no HTTP.
Every process started here is stopped on exit, also on Ctrl-C. `--keep DIR` keeps the
folder (logs, nginx.conf, the wrk scripts, the saved answers).
"""

from __future__ import annotations

import os
import sys

import benchlib  # before the folder leaves the path (see below)

# This file is bench/http.py: run as a script, its folder is sys.path[0], and the
# standard library's `http` package (urllib, uvicorn, Starlette import it) would be
# this file. Only benchlib comes from its own folder (imported above), so the folder goes.
if sys.path and os.path.realpath(sys.path[0] or os.curdir) == os.path.dirname(
    os.path.realpath(__file__)
):
    del sys.path[0]

import argparse
import base64
import contextlib
import json
import random
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER = "CAS01"
USER = "alice"  # the lab's user, asking again and again
COLD_PREFIX, COLD_PASSWORD = "cold", "cold-password"  # users asking once each
NGINX_HOST = "127.0.0.1"
# Debian's packages nginx-light and wrk; /usr/sbin is not on every user's PATH.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin") or "nginx"
WRK = shutil.which("wrk") or "wrk"
HEALTH_PATH = "/owa/healthcheck.htm"
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"
OUTLOOK_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_RESPONSE_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)
USER_AGENT = "Microsoft Office/14.0 (Windows NT 6.1; Microsoft Outlook 14.0)"
START_TIMEOUT = 60.0
WRK_THREADS = 2
NOISE_PERCENT = 30  # other processes' CPU use (% of one CPU) that makes a run noisy


# -- processes ----------------------------------------------------------------------------


process_tree = benchlib.process_tree
spawn = benchlib.spawn
stop_process = benchlib.stop_process


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` (each with all its threads)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_offset(host: str, rng: random.Random) -> int:
    """An offset N such that 80+N, 443+N, 143+N and 993+N are all free on `host`."""
    for _ in range(200):
        offset = rng.randrange(20_000, 60_000)
        if all(port_free(host, base + offset) for base in (80, 443, 143, 993)):
            return offset
    raise RuntimeError(f"no free port offset found on {host}")


def wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what}: nothing listens on {host}:{port}")


# -- the organization -------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    home: Path  # CASARRAY_HOME
    url: str  # the directory
    server_fqdn: str
    host: str  # CAS01's address
    users: dict[str, str]  # alias -> "login:password": alice and the cold users
    cold: list[str]  # the cold users' aliases, in the order the requests use them
    hash_cost: str  # of every password hash here (casarray's default)
    cache_ttl: float | None  # how long casarray remembers verified credentials

    def login(self, alias: str) -> str:
        return self.users[alias].split(":", 1)[0]


def build_lab(base: Path, cold_users: int) -> Lab:
    """The lab organization (`build_seed_organization`: alice, with a password hashed
    at casarray's default cost) plus `cold_users` mailboxes in alice's database
    (cold0000, ...: their alias is also their display name), imported in one go with
    one password and one hash of that same cost, so that each costs a full argon2
    verification the first time it logs in."""
    from casarray.directory import Directory
    from casarray.directory.mailboxes import MailboxSpec, hash_password, password_hasher
    from casarray.lab.topology import build_seed_organization

    home = base / "casarray"
    home.mkdir(parents=True)
    os.environ["CASARRAY_HOME"] = str(home)
    url = f"sqlite:///{home / 'directory.db'}"
    with Directory.open(url) as directory:
        passwords = build_seed_organization(directory)
        domain = directory.organization().default_domain
        alice = directory.mailboxes.one(USER)
        users = {USER: f"{alice.primary_smtp_address}:{passwords[alice.primary_smtp_address]}"}
        width = max(4, len(str(cold_users - 1)))
        cold = [f"{COLD_PREFIX}{i:0{width}d}" for i in range(cold_users)]
        specs = [
            MailboxSpec(
                alias=alias,
                display_name=alias,
                primary_smtp_address=f"{alias}@{domain}",
                database=alice.database,
            )
            for alias in cold
        ]
        if specs:
            directory.mailboxes.new_many(specs, hash_password(COLD_PASSWORD))
        users.update({alias: f"{alias}@{domain}:{COLD_PASSWORD}" for alias in cold})
        record = directory.servers.one(SERVER)
        return Lab(
            home,
            url,
            record.fqdn,
            record.ip_address,
            users,
            cold,
            _cost(password_hasher()),
            credential_cache_ttl(),
        )


def credential_cache_ttl() -> float | None:
    """How long the HTTP service remembers a verified login (casarray's
    `CredentialCache`, per process), or None when it remembers none."""
    import dataclasses

    from casarray.access.http import AppContext

    for item in dataclasses.fields(AppContext):
        if item.name == "credentials" and item.default_factory is not dataclasses.MISSING:
            ttl = getattr(item.default_factory(), "ttl", None)
            return float(ttl) if ttl else None
    return None


def _cost(hasher: Any) -> str:
    """An argon2 hasher's cost, as `argon2id m=64 MiB t=3 p=4`."""
    memory = hasher.memory_cost  # KiB
    size = f"{memory // 1024} MiB" if memory >= 1024 else f"{memory} KiB"
    return f"argon2id m={size} t={hasher.time_cost} p={hasher.parallelism}"


def outlook_request(address: str) -> bytes:
    """An Autodiscover request as Outlook 2010 sends it."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Autodiscover xmlns="{OUTLOOK_REQUEST_NS}">\n  <Request>\n'
        f"    <EMailAddress>{address}</EMailAddress>\n"
        f"    <AcceptableResponseSchema>{OUTLOOK_RESPONSE_NS}</AcceptableResponseSchema>\n"
        f"  </Request>\n</Autodiscover>\n"
    ).encode()


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# -- the servers --------------------------------------------------------------------------


@dataclass
class Target:
    """A running server: where it listens and how to stop it."""

    name: str  # as shown in the table
    host: str
    http: int
    https: int
    certificate: Path
    key: Path
    proc: subprocess.Popen[bytes]
    processes: int
    note: str = ""
    stop: Callable[[], None] = field(default=lambda: None)

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)


class NotServingHttp(Exception):
    """`casarray server run` here serves no HTTP (yet): no "https" in its status."""


def _casarray_cli() -> list[str]:
    return [sys.executable, "-m", "casarray"]


def start_runner(lab: Lab, base: Path, processes: int, offset: int) -> Target:
    """`casarray server run CAS01 --port-offset N [--processes P]`; its ports and
    certificate from its status file."""
    from casarray.access.cas_process import status_file

    usage = subprocess.run(
        [*_casarray_cli(), "server", "run", "--help"], capture_output=True, text=True, check=False
    ).stdout
    has_processes = "--processes" in usage
    if processes > 1 and not has_processes:
        raise NotServingHttp("`casarray server run` has no --processes option here")
    argv = [
        *_casarray_cli(),
        "server",
        "run",
        SERVER,
        "--directory",
        lab.url,
        "--port-offset",
        str(offset),
    ]
    if has_processes:  # always: its default is one process per CPU
        argv += ["--processes", str(processes)]
    proc = spawn(argv, base / "casarray.log", env=dict(os.environ, CASARRAY_HOME=str(lab.home)))
    path = status_file(SERVER, lab.home).path
    deadline = time.monotonic() + START_TIMEOUT
    status: dict[str, Any] = {}
    seen_at: float | None = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"casarray server run exited with {proc.returncode}; see "
                    f"{base / 'casarray.log'}"
                )
            with contextlib.suppress(OSError, ValueError):
                status = json.loads(path.read_text())
            if status.get("pid") is not None and "https" in status:
                break
            if status.get("pid") is not None:
                # Up, but with no HTTP ports: give a status written in two steps a moment.
                seen_at = seen_at or time.monotonic()
                if time.monotonic() - seen_at > 5:
                    raise NotServingHttp(
                        f'`casarray server run` serves no HTTP here (no "https" in {path})'
                    )
            time.sleep(0.05)
        else:
            raise RuntimeError(f"casarray server run did not start; see {base / 'casarray.log'}")
        host = str(status.get("host", lab.host))
        http, https = int(status["http"]), int(status["https"])
        wait_for_port(host, https, proc, "casarray server run")
        wait_for_port(host, http, proc, "casarray server run")
    except BaseException:
        stop_process(proc)
        raise
    pids = status.get("processes")
    if isinstance(pids, list) and len(pids) != processes:
        stop_process(proc)
        raise RuntimeError(f"casarray server run: {len(pids)} processes, not {processes}")
    certificate = Path(status.get("certificate") or lab.home / "certs" / f"{SERVER}.pem")
    target = Target(
        "casarray",
        host,
        http,
        https,
        certificate,
        certificate.with_suffix(".key"),
        proc,
        processes,
        note=f"`casarray server run`, {processes} process{'es' if processes > 1 else ''}",
    )
    target.stop = lambda: stop_process(proc)
    return target


def start_launcher(lab: Lab, base: Path, processes: int, offset: int) -> Target:
    """This script's own launcher (`_launcher`, below) in a process of its own."""
    ready = base / "launcher-ready"
    ready.mkdir()
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "_launcher",
        "--directory",
        lab.url,
        "--port-offset",
        str(offset),
        "--processes",
        str(processes),
        "--ready",
        str(ready),
        "--log-file",
        str(base / "casarray.log"),
    ]
    proc = spawn(argv, base / "casarray.log", env=dict(os.environ, CASARRAY_HOME=str(lab.home)))
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while len(list(ready.iterdir())) < processes:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the launcher exited with {proc.returncode}; see {base / 'casarray.log'}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the launcher did not start; see {base / 'casarray.log'}")
            time.sleep(0.05)
    except BaseException:
        stop_process(proc)
        raise
    certificate = lab.home / "certs" / f"{SERVER}.pem"
    target = Target(
        "casarray",
        lab.host,
        80 + offset,
        443 + offset,
        certificate,
        certificate.with_suffix(".key"),
        proc,
        processes,
        note=f"in-process launcher (--inprocess), {processes} process"
        f"{'es' if processes > 1 else ''}",
    )
    target.stop = lambda: stop_process(proc)
    return target


# nginx serves what casarray answered, as static files under www/. The health page is
# a file at its own path. Autodiscover is a POST, which nginx's static module refuses
# with 405 once it has found the file; `error_page 405 =200 $uri` answers that 405 with
# an internal redirect to the same URI, which nginx turns into a GET, so the file is
# sent with status 200 (and the request body is read and discarded first). This needs
# only the core, rewrite and map modules, all in nginx-light (`return 200 "..."` would
# need the XML quoted into the configuration instead). The user's answer is chosen by
# the exact Authorization header (a map: nginx's whole "password check"); an unknown one
# gets 401.
NGINX_CONF = """\
# Written by bench/http.py: the static peer of casarray's HTTP service.
daemon off;
master_process on;
worker_processes {processes};
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {base}/tmp/body;
    proxy_temp_path {base}/tmp/proxy;
    fastcgi_temp_path {base}/tmp/fastcgi;
    uwsgi_temp_path {base}/tmp/uwsgi;
    scgi_temp_path {base}/tmp/scgi;
    types {{
        text/html htm;
        text/xml xml;
    }}
    default_type application/octet-stream;
    charset utf-8;  # text/html; charset=utf-8 and text/xml; charset=utf-8, as casarray
    sendfile on;
    # uvicorn keeps a connection for any number of requests; nginx's default is 1000.
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    map_hash_max_size {map_size};
    map_hash_bucket_size 128;
    map $http_authorization $autodiscover_user {{
        default "";
{users}
    }}
    server {{
        # reuseport: a listening socket per worker, as casarray's processes share the
        # ports with SO_REUSEPORT.
        listen {host}:{http} reuseport;
        listen {host}:{https} ssl reuseport;
        root {base}/www;
        location = {health} {{
            add_header Cache-Control no-cache;
        }}
        location = {autodiscover} {{
            if ($autodiscover_user = "") {{
                return 401;
            }}
            rewrite ^ /autodiscover/$autodiscover_user.xml last;
        }}
        location ^~ /autodiscover/ {{
            internal;
            error_page 405 =200 $uri;
        }}
    }}
}}
"""


def start_nginx(
    base: Path, casarray: Target, processes: int, answers: dict[str, bytes], lab: Lab
) -> Target:
    """nginx on 127.0.0.1 serving `answers` (path under www/ -> bytes) with casarray's
    certificate and key."""
    base = base / "nginx"
    for sub in ("www", "tmp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for path, body in answers.items():
        file = base / "www" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(body)
    # nginx's workers run as `nobody` when it is started as root: let them in.
    for folder in (base, *base.rglob("*")):
        with contextlib.suppress(OSError):
            folder.chmod(0o755 if folder.is_dir() else 0o644)
    with contextlib.suppress(OSError):
        base.parent.chmod(0o755)
    http, https = free_port(NGINX_HOST), free_port(NGINX_HOST)
    users = "\n".join(
        f'        "{basic(credentials)}" {alias};' for alias, credentials in lab.users.items()
    )
    conf = base / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            processes=processes,
            base=base,
            host=NGINX_HOST,
            http=http,
            https=https,
            certificate=casarray.certificate,
            key=casarray.key,
            users=users,
            map_size=max(2048, 2 * len(lab.users)),
            health=HEALTH_PATH,
            autodiscover=AUTODISCOVER_PATH,
        )
    )
    check = subprocess.run(
        [NGINX, "-t", "-q", "-p", str(base), "-e", str(base / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t: {check.stderr.strip()}")
    proc = spawn(
        [NGINX, "-p", str(base), "-e", str(base / "error.log"), "-c", str(conf)],
        base / "nginx.out",
    )
    try:
        wait_for_port(NGINX_HOST, https, proc, "nginx")
        wait_for_port(NGINX_HOST, http, proc, "nginx")
    except BaseException:
        stop_process(proc, signal.SIGQUIT)
        raise
    target = Target(
        "nginx",
        NGINX_HOST,
        http,
        https,
        casarray.certificate,
        casarray.key,
        proc,
        processes,
        note=f"nginx {_nginx_version()}, {processes} worker process"
        f"{'es' if processes > 1 else ''}, static files",
    )
    target.stop = lambda: stop_process(proc, signal.SIGQUIT)  # graceful: workers finish
    return target


def _nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False).stderr
    return out.strip().rsplit("/", 1)[-1]


# -- the requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    label: str
    scheme: str
    path: str
    method: str = "GET"
    user: str | None = None  # alias: POST an Outlook request as this user
    cold: bool = False  # POST an Outlook request as the next cold user each time
    close: bool = False  # Connection: close (a connection per request)
    connections: int | None = None  # wrk's -c, if not --connections

    @property
    def is_autodiscover(self) -> bool:
        return self.user is not None or self.cold


@dataclass
class ColdUsers:
    """Hands out the cold users in order, each once: casarray remembers a verified
    login, so a user asking again within the cache's TTL would not cost a hash."""

    aliases: list[str]
    next: int = 0

    def take(self, count: int = 1) -> int:
        """The index of the first of `count` users not used yet."""
        first = self.next
        self.next += count
        return first

    def alias(self, index: int) -> str:
        return self.aliases[index % len(self.aliases)]

    @property
    def ran_out(self) -> bool:
        return self.next > len(self.aliases)


def requests_to_measure(lab: Lab, slow_connections: int) -> list[Request]:
    slow = f"{slow_connections} connection{'s' if slow_connections > 1 else ''}"
    if lab.cache_ttl:
        again = f"remembered {lab.cache_ttl:g} s after the first"
    else:
        again = f"{lab.hash_cost} every time, {slow}"
    requests = [
        Request(f"GET {HEALTH_PATH} https", "https", HEALTH_PATH),
        Request(f"GET {HEALTH_PATH} http", "http", HEALTH_PATH),
        Request(f"GET {HEALTH_PATH} https, a connection each", "https", HEALTH_PATH, close=True),
        Request(
            f"POST Autodiscover https, {USER} again and again ({again})",
            "https",
            AUTODISCOVER_PATH,
            "POST",
            user=USER,
            connections=None if lab.cache_ttl else slow_connections,
        ),
    ]
    if lab.cold:
        requests.append(
            Request(
                f"POST Autodiscover https, a new user each time ({lab.hash_cost} each), {slow}",
                "https",
                AUTODISCOVER_PATH,
                "POST",
                cold=True,
                connections=slow_connections,
            )
        )
    return requests


def url_of(target: Target, request: Request) -> str:
    port = target.https if request.scheme == "https" else target.http
    return f"{request.scheme}://{target.host}:{port}{request.path}"


def ask(
    target: Target, request: Request, lab: Lab, user: str | None = None
) -> tuple[int, bytes, str]:
    """One request with urllib (as `user` for Autodiscover, else `request.user`):
    (status, body, Content-Type). The TLS certificate must be casarray's own (it is
    self-signed: the only one it trusts); the host name is not checked (nginx listens
    on an address it doesn't name)."""
    context = ssl.create_default_context(cafile=str(target.certificate))
    context.check_hostname = False
    headers = {"User-Agent": USER_AGENT}
    data = None
    user = user or request.user
    if user is not None:
        data = outlook_request(lab.login(user))
        headers |= {
            "Content-Type": "text/xml; charset=utf-8",
            "Authorization": basic(lab.users[user]),
        }
    req = urllib.request.Request(
        url_of(target, request), data=data, headers=headers, method=request.method
    )
    try:
        with urllib.request.urlopen(req, timeout=60, context=context) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def check_settings(body: bytes, address: str) -> str | None:
    """Why `body` is not a settings response for `address`, or None."""
    ns = f"{{{OUTLOOK_RESPONSE_NS}}}"
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        return f"not XML ({exc})"
    if root.find(f".//{ns}Error") is not None or root.find(".//{*}Error") is not None:
        return "an Autodiscover error response"
    smtp = root.findtext(f"{ns}Response/{ns}User/{ns}AutoDiscoverSMTPAddress")
    if smtp is None or smtp.lower() != address.lower():
        return f"AutoDiscoverSMTPAddress is {smtp!r}, not {address}"
    types = [
        p.findtext(f"{ns}Type") for p in root.iterfind(f"{ns}Response/{ns}Account/{ns}Protocol")
    ]
    if "EXCH" not in types:
        return f"no EXCH protocol (protocols: {types})"
    return None


AUTODISCOVER = Request("Autodiscover", "https", AUTODISCOVER_PATH, "POST")


def _settings(casarray: Target, lab: Lab, user: str) -> bytes:
    """casarray's settings response for `user`, checked."""
    status, body, content_type = ask(casarray, AUTODISCOVER, lab, user)
    why = check_settings(body, lab.login(user)) if status == 200 else f"status {status}"
    if why is not None:
        raise RuntimeError(f"casarray Autodiscover for {lab.login(user)}: {why}: {body[:300]!r}")
    if not content_type.startswith("text/xml"):
        raise RuntimeError(f"casarray Autodiscover: Content-Type {content_type!r}")
    return body


def casarray_answers(casarray: Target, lab: Lab, cold: ColdUsers) -> dict[str, bytes]:
    """What casarray answers (checked), as files for nginx: path under www/ -> bytes.
    The cold users' answers are one user's with the alias replaced (they differ in
    nothing else: checked on two more of them), not a hash verification for each."""
    expected = f"200 OK<br/>{lab.server_fqdn}".encode()
    for scheme in ("https", "http"):
        status, body, _ = ask(casarray, Request("health", scheme, HEALTH_PATH), lab)
        if status != 200 or body != expected:
            raise RuntimeError(
                f"casarray {scheme} {HEALTH_PATH}: {status} {body[:200]!r}, "
                f"expected 200 {expected!r}"
            )
    answers = {HEALTH_PATH.lstrip("/"): expected}
    mine = _settings(casarray, lab, USER)
    if _settings(casarray, lab, USER) != mine:
        raise RuntimeError(f"casarray Autodiscover for {USER}: two different answers")
    answers[f"autodiscover/{USER}.xml"] = mine
    if cold.aliases:
        first = cold.alias(cold.take())
        template = _settings(casarray, lab, first)
        for _ in range(2):
            other = cold.alias(cold.take())
            if _settings(casarray, lab, other) != template.replace(first.encode(), other.encode()):
                raise RuntimeError(
                    f"casarray's answers for {first} and {other} differ in more than the "
                    "alias: the cold users' answers can't be made from one of them"
                )
        for alias in cold.aliases:
            answers[f"autodiscover/{alias}.xml"] = template.replace(first.encode(), alias.encode())
    return answers


def check_target(
    target: Target, requests: list[Request], answers: dict[str, bytes], lab: Lab, cold: ColdUsers
) -> None:
    """Each request to `target` answers 200 with the expected bytes."""
    for request in requests:
        user = cold.alias(cold.take()) if request.cold else request.user
        if user is not None:
            expected = answers[f"autodiscover/{user}.xml"]
            want_type = "text/xml; charset=utf-8"
        else:
            expected = answers[request.path.lstrip("/")]
            want_type = "text/html; charset=utf-8"
        status, body, content_type = ask(target, request, lab, user)
        if status != 200 or body != expected:
            raise RuntimeError(
                f"{target.name}: {request.label}: {status} {body[:200]!r}, "
                f"expected 200 and the {len(expected)} bytes casarray answered"
            )
        if content_type.replace(" ", "").lower() != want_type.replace(" ", ""):
            raise RuntimeError(
                f"{target.name}: {request.label}: Content-Type {content_type!r}, not {want_type!r}"
            )


# -- wrk ----------------------------------------------------------------------------------


LUA_POST = """\
-- Written by bench/http.py: an Outlook 2010 Autodiscover request with Basic auth.
local file = assert(io.open({body}, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["Authorization"] = {authorization}
wrk.headers["User-Agent"] = {agent}
"""

# Each request as another user: wrk calls request() for every request; the first
# user's index is the script's argument, and each of wrk's threads takes every
# THREADS-th user from it on, so no two requests of a run share a user.
LUA_COLD = """\
-- Written by bench/http.py: Autodiscover as a new user every request.
local users = {{}}
for line in io.lines({users}) do
  local login, authorization = line:match("^(.-)\\t(.*)$")
  users[#users + 1] = {{login = login, authorization = authorization}}
end
local prefix, suffix = {prefix}, {suffix}
local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end
function init(args)
  first = tonumber(args[1]) or 0
  step = tonumber(args[2]) or 1
  sent = 0
end
function request()
  local user = users[(first + index + sent * step) % #users + 1]
  sent = sent + 1
  return wrk.format("POST", nil, {{
    ["Content-Type"] = "text/xml; charset=utf-8",
    ["Authorization"] = user.authorization,
    ["User-Agent"] = {agent},
  }}, prefix .. user.login .. suffix)
end
"""

LUA_CLOSE = """\
-- Written by bench/http.py: a new connection (and TLS handshake) for every request.
wrk.headers["Connection"] = "close"
"""


def lua_string(text: str) -> str:
    """A Lua string literal (JSON's escapes for ASCII text are Lua's)."""
    return json.dumps(text, ensure_ascii=True)


def wrk_script(base: Path, request: Request, lab: Lab) -> Path | None:
    """The Lua script for `request` (written once), or None when wrk needs none."""
    if request.cold:
        users = base / "cold-users.txt"
        users.write_text(
            "".join(f"{lab.login(alias)}\t{basic(lab.users[alias])}\n" for alias in lab.cold)
        )
        marker = "\0"
        prefix, suffix = outlook_request(marker).decode().split(marker)
        script = base / "autodiscover-cold.lua"
        script.write_text(
            LUA_COLD.format(
                users=lua_string(str(users)),
                prefix=lua_string(prefix),
                suffix=lua_string(suffix),
                agent=lua_string(USER_AGENT),
            )
        )
        return script
    if request.user is not None:
        body = base / f"request-{request.user}.xml"
        body.write_bytes(outlook_request(lab.login(request.user)))
        script = base / f"autodiscover-{request.user}.lua"
        script.write_text(
            LUA_POST.format(
                body=lua_string(str(body)),
                authorization=lua_string(basic(lab.users[request.user])),
                agent=lua_string(USER_AGENT),
            )
        )
        return script
    if request.close:
        script = base / "close.lua"
        script.write_text(LUA_CLOSE)
        return script
    return None


@dataclass
class Result:
    requests_per_second: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    failed: int = 0  # non-2xx/3xx responses, socket errors (timeouts included)
    cpu_percent: float = 0.0  # the server's, 100 = one core
    wrk_cpu_percent: float = 0.0
    other_cpu_percent: float = 0.0  # the rest of the machine (not server, wrk, this script)
    peak_rss_mb: float = 0.0
    output: str = ""

    @property
    def per_cpu_second(self) -> float:
        if self.cpu_percent <= 0:
            return 0.0
        return self.requests_per_second / (self.cpu_percent / 100)


def parse_wrk(output: str) -> Result:
    """requests/s, p50/p99 and failures from `wrk --latency` output."""
    figures = benchlib.parse_wrk(output)
    return Result(
        requests_per_second=figures.rate,
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        requests=figures.requests,
        failed=figures.failed,
        output=output,
    )


def run_wrk(
    target: Target,
    request: Request,
    script: Path | None,
    *,
    seconds: float,
    connections: int,
    timeout: float,
    measure: bool = True,
    script_args: tuple[str, ...] = (),
) -> Result:
    """wrk against `target` (`script_args` to the Lua script's init); with `measure`,
    also the server's CPU time and peak RSS."""
    argv = [
        WRK,
        f"-t{WRK_THREADS}",
        f"-c{max(2, connections)}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "--latency",
    ]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url_of(target, request))
    if script_args:
        argv += ["--", *script_args]
    pids = target.pids()
    cpu_before = cpu_seconds(pids)
    machine_before = machine_busy_seconds()
    children_before = _rusage_seconds(resource.RUSAGE_CHILDREN)
    self_before = _rusage_seconds(resource.RUSAGE_SELF)
    started = time.perf_counter()
    peak = 0
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=benchlib.die_with_parent
    )
    try:
        while proc.poll() is None:
            benchlib.check_stop()
            if measure:
                peak = max(peak, rss_kb(target.pids()))
            time.sleep(0.2)
        output = proc.communicate()[0].decode(errors="replace")
        benchlib.check_stop()  # wrk, in this script's process group, may have had the Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {' '.join(argv)}\n{output}")
    result = parse_wrk(output)
    server = cpu_seconds(pids) - cpu_before
    wrk = _rusage_seconds(resource.RUSAGE_CHILDREN) - children_before
    mine = _rusage_seconds(resource.RUSAGE_SELF) - self_before
    others = machine_busy_seconds() - machine_before - server - wrk - mine
    result.cpu_percent = 100 * server / elapsed
    result.wrk_cpu_percent = 100 * wrk / elapsed
    result.other_cpu_percent = max(0.0, 100 * others / elapsed)
    result.peak_rss_mb = peak / 1024
    return result


def _rusage_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all CPUs added up)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS  # less idle and iowait


def busy_cpus(interval: float = 1.0) -> float:
    """How many CPUs' worth of time the whole machine spent busy over `interval`."""
    before = machine_busy_seconds()
    time.sleep(interval)
    return (machine_busy_seconds() - before) / interval


def wait_idle(target: Target, limit: float = 120.0) -> float:
    """Wait until `target` uses less than 5% of a CPU (it may still be answering
    requests of connections wrk has closed); the seconds waited."""
    started = time.perf_counter()
    pids = target.pids()
    before = cpu_seconds(pids)
    while time.perf_counter() - started < limit:
        benchlib.check_stop()
        time.sleep(0.25)
        after = cpu_seconds(pids)
        if after - before < 0.05 * 0.25:
            break
        before = after
    return time.perf_counter() - started


def verify_ms(rounds: int = 5) -> float:
    """The median time one verification of a hash of casarray's default cost takes."""
    from casarray.directory.mailboxes import password_hasher

    hasher = password_hasher()
    stored = hasher.hash("a password")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        hasher.verify(stored, "a password")
        times.append(time.perf_counter() - started)
    return sorted(times)[rounds // 2] * 1000


# -- the report ---------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f}s"
    if value >= 100:
        return f"{value:.0f}ms"
    return f"{value:.2f}ms"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(value: float) -> str:
    """0.123, or 1/8,000 for a ratio too small for three decimals."""
    if value >= 0.001 or value <= 0:
        return f"{value:.3f}"
    return f"1/{1 / value:,.0f}"


def report(
    requests: list[Request], targets: list[Target], results: dict[tuple[str, str], Result]
) -> None:
    names = [t.name for t in targets]
    print()
    for target in targets:
        print(f"  {target.name}: {target.note}")
    label_width = max(len(r.label) for r in requests)
    cols = f"{'req/s':>9} {'p50':>8} {'p99':>8} {'fail':>5} {'CPU':>5} {'wrk':>5} "
    head = f"{'request':{label_width}}  " + "  ".join(f"{n:^{len(cols)}}" for n in names)
    if len(targets) == 2:
        head += f"  {'casarray/nginx':^17}"
    print()
    print(head)
    sub = f"{'':{label_width}}  " + "  ".join(cols for _ in names)
    if len(targets) == 2:
        sub += f"  {'req/s':>8} {'per CPU':>8}"
    print(sub)
    print("-" * len(sub))
    noisy_runs = 0
    for request in requests:
        line = f"{request.label:{label_width}}  "
        cells = []
        for name in names:
            r = results.get((name, request.label))
            if r is None:
                cells.append(f"{'-':>{len(cols)}}")
                continue
            noisy = "!" if r.other_cpu_percent > NOISE_PERCENT else " "
            noisy_runs += noisy == "!"
            cells.append(
                f"{_rate(r.requests_per_second):>9} {_ms(r.p50_ms):>8} {_ms(r.p99_ms):>8} "
                f"{r.failed:>5} {r.cpu_percent:>4.0f}% {r.wrk_cpu_percent:>4.0f}%{noisy}"
            )
        line += "  ".join(cells)
        if len(targets) == 2:
            mine = results.get((names[0], request.label))
            peer = results.get((names[1], request.label))
            if mine and peer and peer.requests_per_second and peer.per_cpu_second:
                line += (
                    f"  {_ratio(mine.requests_per_second / peer.requests_per_second):>8}"
                    f" {_ratio(mine.per_cpu_second / peer.per_cpu_second):>8}"
                )
        print(line)
    print()
    print(
        "CPU: the server's processes, user + system time over the run (100% = one core); "
        "wrk: wrk's; per CPU: requests per CPU second of the server."
    )
    if noisy_runs:
        print(
            f"!: during {noisy_runs} run{'s' if noisy_runs > 1 else ''} other processes used "
            f"more than {NOISE_PERCENT}% of a CPU; those figures are low and noisy."
        )


# -- the in-process launcher --------------------------------------------------------------


def _reuseport_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _launcher_serve(args: argparse.Namespace, host: str, index: int) -> None:
    """One launcher process: the HTTP app (Autodiscover, autoconfig, health pages) on
    80+N (plain) and 443+N (TLS) of the server's address, until SIGTERM."""
    import asyncio

    from casarray.access import tls
    from casarray.access.http import AppContext, ServicePorts, create_app, default_services
    from casarray.access.http.app import http_server
    from casarray.access.http.context import RouteFactory
    from casarray.access.http.health_pages import HealthContext, health_routes
    from casarray.directory import Directory

    ports = ServicePorts.offset(args.port_offset)
    directory = await asyncio.to_thread(Directory.open, args.directory)
    context = await asyncio.to_thread(AppContext.for_server, directory, SERVER, ports=ports)
    health = HealthContext.of(context)
    services: list[RouteFactory] = [*default_services(), lambda _context: health_routes(health)]
    app = create_app(context, services)
    files = tls.certificate_files(context.server_name)
    servers = [http_server(app), http_server(app, ssl_context=tls.server_context(files))]
    sockets = [_reuseport_socket(host, ports.http), _reuseport_socket(host, ports.https)]
    tasks = [
        asyncio.ensure_future(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets, strict=True)
    ]
    credentials = getattr(context, "credentials", None)  # the verified-login cache
    if credentials is not None:
        credentials.followed = True

    async def follow() -> None:  # what the runner's directory watcher does
        async for version in directory.watch(interval=0.2):
            health.topology_changed(version)
            if credentials is not None:
                credentials.topology_changed(version)

    follow_task = asyncio.ensure_future(follow())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.02)
    else:
        (Path(args.ready) / str(index)).touch()
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    follow_task.cancel()
    with contextlib.suppress(BaseException):
        await follow_task
    for sock in sockets:
        sock.close()
    await asyncio.to_thread(directory.close)


def launcher_main(argv: list[str]) -> int:
    """`bench/http.py _launcher ...`: serve casarray's HTTP app in PROCESSES forked
    processes sharing the ports (SO_REUSEPORT), as `casarray server run` is to."""
    import asyncio
    import logging

    parser = argparse.ArgumentParser(prog="http.py _launcher")
    parser.add_argument("--directory", required=True)
    parser.add_argument("--port-offset", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--ready", required=True, help="each process writes a file here")
    parser.add_argument("--log-file", required=True)
    args = parser.parse_args(argv)

    from casarray.access import tls
    from casarray.access.cas_process import certificate_names
    from casarray.directory import Directory
    from casarray.process.logs import LOG_DATE_FORMAT, LOG_FORMAT

    with Directory.open(args.directory) as directory:
        host = directory.servers.one(SERVER).ip_address
        tls.ensure_certificate(SERVER, certificate_names(directory, SERVER))

    children: list[int] = []
    for index in range(args.processes):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                handler = logging.FileHandler(args.log_file)
                handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
                logging.getLogger("casarray").addHandler(handler)
                logging.getLogger("casarray").setLevel(logging.INFO)  # as the runner
                try:
                    import uvloop

                    factory: Any = uvloop.new_event_loop
                except ImportError:
                    factory = None
                with asyncio.Runner(loop_factory=factory) as runner:
                    runner.run(_launcher_serve(args, host, index))
                code = 0
            except BaseException as exc:
                print(f"launcher process {index}: {exc!r}", file=sys.stderr)
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_launcher":
        return launcher_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (10)")
    parser.add_argument("--connections", type=int, default=50, help="wrk's -c (50)")
    parser.add_argument(
        "--processes", type=int, default=1, help="casarray processes = nginx workers (1)"
    )
    parser.add_argument(
        "--slow-connections",
        type=int,
        default=4,
        metavar="N",
        help="wrk's -c for Autodiscover with the default argon2 cost (4): each request "
        "costs the server a 64 MiB hash, so --connections of them would queue for seconds",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=1000,
        metavar="N",
        help="mailboxes for the new-user-each-time Autodiscover (1000; 0: no such run)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each (1)")
    parser.add_argument("--timeout", type=float, default=30.0, help="wrk's --timeout (30 s)")
    parser.add_argument(
        "--inprocess",
        action="store_true",
        help="serve casarray's app from this script's launcher, not `casarray server run`",
    )
    parser.add_argument("--no-nginx", action="store_true", help="measure casarray only")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs, configs)")
    args = parser.parse_args()
    if args.seconds < 1 or min(args.connections, args.processes, args.slow_connections) < 1:
        parser.error("--seconds, --connections, --processes and --slow-connections must be >= 1")
    if args.users < 0:
        parser.error("--users must be >= 0")
    if not os.path.isabs(WRK):
        print("wrk is missing (Debian package wrk)", file=sys.stderr)
        return 2
    use_nginx = not args.no_nginx
    if use_nginx and not os.path.isabs(NGINX):
        print("nginx is missing (Debian package nginx-light); use --no-nginx", file=sys.stderr)
        return 2
    # Ctrl-C, SIGTERM and SIGHUP all end in the clean-up below (SIGINT also when the
    # shell started this in the background with SIGINT ignored).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, benchlib.on_signal)

    cpus = len(os.sched_getaffinity(0))
    print(
        f"{cpus} CPUs, shared by wrk (2 threads), the server under test ({args.processes} "
        f"process{'es' if args.processes > 1 else ''}) and this script; "
        f"{args.connections} connections, {args.seconds:g} s each."
    )
    busy = busy_cpus()
    if busy > 0.2:
        print(
            f"  warning: other processes keep {busy:.1f} CPUs busy right now; the figures "
            "will be lower and noisier than on a quiet machine"
        )
    results: dict[tuple[str, str], Result] = {}
    targets: list[Target] = []
    with (
        benchlib.temporary(args.keep, "casarray-http-bench-") as base,
        contextlib.ExitStack() as cleanup,
    ):
        print("Building the lab organization ...")
        lab = build_lab(base, args.users)
        offset = free_offset(lab.host, random.Random())
        starter = start_launcher if args.inprocess else start_runner
        try:
            casarray = starter(lab, base, args.processes, offset)
        except NotServingHttp as exc:
            print(
                f"{exc}. Run with --inprocess to measure the same application served by "
                "this script's launcher.",
                file=sys.stderr,
            )
            return 2
        cleanup.callback(casarray.stop)
        targets.append(casarray)
        print(f"  casarray: {casarray.note}, https://{casarray.host}:{casarray.https}")
        cold = ColdUsers(lab.cold)
        answers = casarray_answers(casarray, lab, cold)
        requests = requests_to_measure(lab, args.slow_connections)
        check_target(casarray, requests, answers, lab, cold)
        if use_nginx:
            nginx = start_nginx(base, casarray, args.processes, answers, lab)
            cleanup.callback(nginx.stop)
            targets.append(nginx)
            print(f"  nginx: {nginx.note}, https://{nginx.host}:{nginx.https}")
            check_target(nginx, requests, answers, lab, cold)
        print("  every target answered 200 and the expected bytes")
        print(
            f"  Autodiscover checks the Basic credentials against an argon2 hash "
            f"({lab.hash_cost}); one verification takes {verify_ms():.0f} ms in this process."
        )
        if lab.cache_ttl:
            print(
                f"  casarray remembers a verified login for {lab.cache_ttl:g} s per process "
                f"(casarray.access.http.credentials): {USER}'s repeated requests cost one "
                "verification per process, each of the cold users' requests one."
            )
        else:
            print("  casarray remembers no verified login: every request costs a verification.")
        print()
        for request in requests:
            script = wrk_script(base, request, lab)
            connections = request.connections or args.connections
            for target in targets:
                for seconds, measure in ((args.warmup, False), (args.seconds, True)):
                    if seconds <= 0:
                        continue
                    benchlib.check_stop()
                    script_args: tuple[str, ...] = ()
                    if request.cold:  # from the first user casarray hasn't seen yet
                        script_args = (str(cold.next), str(WRK_THREADS))
                    result = run_wrk(
                        target,
                        request,
                        script,
                        seconds=seconds,
                        connections=connections,
                        timeout=args.timeout,
                        measure=measure,
                        script_args=script_args,
                    )
                    if request.cold and target is casarray:
                        # At most `connections` requests were still on their way.
                        cold.take(result.requests + connections)
                    drained = wait_idle(target)
                if request.cold and target is casarray and cold.ran_out:
                    print(
                        f"    the {len(cold.aliases)} cold users ran out: some asked twice, "
                        "and may have been remembered; use more --users"
                    )
                results[(target.name, request.label)] = result
                print(
                    f"  {target.name:8} {request.label}: {_rate(result.requests_per_second)}/s, "
                    f"p50 {_ms(result.p50_ms)}, p99 {_ms(result.p99_ms)}, "
                    f"{result.failed} failed, CPU {result.cpu_percent:.0f}% "
                    f"(wrk {result.wrk_cpu_percent:.0f}%, other processes "
                    f"{result.other_cpu_percent:.0f}%), peak RSS {result.peak_rss_mb:.0f} MB"
                )
                if result.requests < 50:
                    print(
                        f"    only {result.requests} requests completed: p99 means little; "
                        "use more --seconds"
                    )
                if drained > 1:
                    print(
                        f"    {target.name} went on working {drained:.1f} s after wrk had "
                        "stopped (requests of connections wrk had closed)"
                    )
                with (base / "wrk.log").open("a") as log:
                    log.write(f"== {target.name} {request.label}\n{result.output}\n")
    report(requests, targets, results)
    failed = sum(r.failed for r in results.values())
    if failed:
        print(f"{failed} requests failed (non-2xx, socket errors or timeouts).")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; every process this script started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
