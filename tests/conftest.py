"""Shared fixtures: the directory on both back ends (a SQLite file and a throwaway
PostgreSQL server started once per session), and a small two-site topology."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from casarray.directory import Directory

# Property tests run the same examples every time (derandomized), and write no example
# database; HYPOTHESIS_PROFILE=explore searches afresh on each run.
settings.register_profile("casarray", derandomize=True, database=None)
settings.register_profile("explore", database=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "casarray"))

PG_PACKAGE_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found; install the Debian "
    "package `postgresql` (apt-get install postgresql) to run the PostgreSQL tests."
)
PG_SUPERUSER = "postgres"
PASSWORD = "P@ssw0rd-lab"


# -- every test: a private CASARRAY_HOME ----------------------------------------


@pytest.fixture(autouse=True)
def casarray_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $CASARRAY_HOME at a temporary folder so nothing touches ~/.casarray."""
    home = tmp_path / "casarray-home"
    monkeypatch.setenv("CASARRAY_HOME", str(home))
    monkeypatch.delenv("CASARRAY_DIRECTORY", raising=False)
    return home


# -- a throwaway PostgreSQL server ------------------------------------------------


def _version_key(bindir: str) -> tuple[int, str]:
    version = Path(bindir).parent.name
    return (int(version), version) if version.isdigit() else (-1, version)


def find_pg_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl): from `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin, else $PATH."""
    bindirs: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                bindirs.append(out)
    bindirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for bindir in bindirs:
        initdb, pg_ctl = Path(bindir, "initdb"), Path(bindir, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return str(initdb), str(pg_ctl)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scratch_folder() -> str | None:
    """A RAM-backed folder for the cluster when there is one (/dev/shm): creating and
    dropping a database per test is several times faster there than on a disk."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30:
            return str(shm)
    except OSError:
        pass
    return None  # the default temporary folder


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, but there is no 'postgres' or 'nobody' user to run as")


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, reachable on 127.0.0.1:port with
    trust authentication for the superuser."""

    pg_ctl: str
    base: Path
    port: int
    run_as: list[str]
    user: str = PG_SUPERUSER

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, template: str | None = None, name: str | None = None) -> str:
        name = name or f"t_{secrets.token_hex(6)}"
        sql = f'CREATE DATABASE "{name}"'
        with self._admin() as conn:
            if template:
                sql += f' TEMPLATE "{template}"'
                if conn.info.server_version >= 150000:
                    sql += " STRATEGY = FILE_COPY"  # quicker than WAL_LOG for small ones
            conn.execute(sql)
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception), self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            cwd=self.base,
            capture_output=True,
            timeout=60,
            check=False,
        )


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )


def _start_postgres(initdb: str, pg_ctl: str) -> PostgresServer:
    base = Path(tempfile.mkdtemp(prefix="casarray-pg-", dir=_scratch_folder()))
    try:
        return _start_postgres_in(base, initdb, pg_ctl)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def _start_postgres_in(base: Path, initdb: str, pg_ctl: str) -> PostgresServer:
    """initdb a cluster in `base` and start it on a free port (three tries)."""
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: hand the folder to an unprivileged user.
        user = _unprivileged_user()
        os.chown(base, user.pw_uid, user.pw_gid)
        if shutil.which("runuser"):
            run_as = ["runuser", "-u", user.pw_name, "--"]
        elif shutil.which("setpriv"):
            run_as = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
                "--",
            ]
        else:
            raise RuntimeError("running as root, but neither runuser nor setpriv is available")
    data = base / "data"
    _run(
        [
            *run_as,
            initdb,
            "-D",
            str(data),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        base,
        "initdb",
    )
    last_error: Exception | None = None
    for _attempt in range(3):
        port = _free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# casarray test suite\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{base}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "max_connections = 200\n"
                "autovacuum = off\n"
            )
        server = PostgresServer(pg_ctl=pg_ctl, base=base, port=port, run_as=run_as)
        try:
            log = str(base / "server.log")
            start = [*run_as, pg_ctl, "-D", str(data), "-l", log, "-w", "-t", "60", "start"]
            _run(start, base, "pg_ctl start")
            return server
        except RuntimeError as exc:  # most likely the port was taken meanwhile
            last_error = exc
            server.stop()
            time.sleep(0.2)
    log = base / "server.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"could not start PostgreSQL: {last_error}\n{text}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session; skipped (or, under CI, failed)
    when the Debian package is missing."""
    binaries = find_pg_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(PG_PACKAGE_HINT)
        pytest.skip(PG_PACKAGE_HINT)
    server = _start_postgres(*binaries)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


# -- the directory on both back ends ---------------------------------------------


def build_bj(d: Directory) -> Directory:
    """Sites BJ (127.77.1.0/24) and SH (127.77.2.0/24); CAS01 (ClientAccess,
    127.77.1.11), CAS02 (.12), MBX01 (Mailbox, .21) in BJ and CAS03 (127.77.2.11), MBX02
    (.21) in SH, installed in that order; each server's site follows from its address."""
    d.sites.new("BJ", ["127.77.1.0/24"])
    d.sites.new("SH", ["127.77.2.0/24"])
    d.servers.new("CAS01", "ClientAccess", "127.77.1.11")
    d.servers.new("CAS02", "ClientAccess", "127.77.1.12")
    d.servers.new("MBX01", "Mailbox", "127.77.1.21")
    d.servers.new("CAS03", "ClientAccess", "127.77.2.11")
    d.servers.new("MBX02", "Mailbox", "127.77.2.21")
    return d


def _prepare(url: str, topology: str) -> None:
    """Bring the empty database at `url` to the newest schema and, for "bj", open the
    directory and build the BJ/SH topology in it."""
    from casarray.directory import migrate
    from casarray.directory.store import Store

    if topology == "bj":
        with Directory.open(url) as d:
            build_bj(d)
        return
    store = Store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.dispose()


class Templates:
    """Template databases of one back end, each built on first use and then cloned for
    every test that needs it: "schema" (migrated, nothing in it) and "bj"."""

    def __init__(self, make: Callable[[str], str]) -> None:
        self._make = make
        self._built: dict[str, str] = {}

    def get(self, topology: str) -> str:
        if topology not in self._built:
            self._built[topology] = self._make(topology)
        return self._built[topology]


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    folder = tmp_path_factory.mktemp("templates")

    def make(topology: str) -> str:
        path = folder / f"{topology}.db"
        try:
            _prepare(f"sqlite:///{path}", topology)
        except BaseException:
            for leftover in folder.glob(f"{topology}.db*"):
                leftover.unlink()
            raise
        return str(path)

    return Templates(make)


@pytest.fixture(scope="session")
def postgres_templates(postgres_server: PostgresServer) -> Templates:
    def make(topology: str) -> str:
        name = f"template_{topology}"
        postgres_server.create_database(name=name)
        try:
            _prepare(postgres_server.url(name), topology)
        except BaseException:
            postgres_server.drop_database(name)
            raise
        return name

    return Templates(make)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The directory's back end: every directory test runs on SQLite and PostgreSQL."""
    return str(request.param)


@pytest.fixture
def empty_directory_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'directory.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def directory_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh directory database of the test's own: a SQLite file or a new
    PostgreSQL database.

    It is a copy of a template built once per session (a SQLite file copy, or CREATE
    DATABASE ... TEMPLATE): at the newest schema with nothing in it, as `casarray
    directory upgrade` leaves it, or, when the test uses the `bj` fixture, with the
    BJ/SH topology that `build_bj` made. Running the migrations and building the
    topology once keeps the suite fast; the migrations themselves are tested on empty
    databases (`empty_directory_url`)."""
    topology = "bj" if "bj" in request.fixturenames else "schema"
    if backend == "sqlite":
        templates: Templates = request.getfixturevalue("sqlite_templates")
        path = tmp_path / "directory.db"
        template = Path(templates.get(topology))
        shutil.copyfile(template, path)
        wal = template.with_name(template.name + "-wal")  # normally checkpointed away
        if wal.exists():
            shutil.copyfile(wal, path.with_name(path.name + "-wal"))
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    templates = request.getfixturevalue("postgres_templates")
    name = server.create_database(template=templates.get(topology))
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def directory(directory_url: str) -> Iterator[Directory]:
    d = Directory.open(directory_url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def second_directory(directory: Directory, directory_url: str) -> Iterator[Directory]:
    """Another Directory on the same database, as another process would open it."""
    d = Directory.open(directory_url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def bj(directory: Directory) -> Directory:
    """The directory holding the BJ/SH topology of `build_bj` (its database is cloned
    from a template that `build_bj` filled; see `directory_url`)."""
    return directory


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One argon2 hash of PASSWORD, computed once (hashing costs ~50 ms)."""
    from casarray.directory.mailboxes import hash_password

    return hash_password(PASSWORD)


@pytest.fixture(scope="session")
def password() -> str:
    return PASSWORD


# -- test tiers ----------------------------------------------------------------------
# The markers of each module that needs more than Python (pyproject.toml lists them):
# `pytest -m "not integration"` leaves out every module below and every PostgreSQL case.
TIERS: dict[str, tuple[str, ...]] = {
    "access/http/test_owa_browser.py": ("browser",),
    "access/http/test_api_schemathesis.py": (),
    "access/imap/test_server_cluster.py": (),
    "access/imap/test_server_imap.py": (),
    "access/imap/test_server_extensions.py": (),
    "access/imap/test_imaptest.py": ("dovecot",),
    "access/ews/test_davmail.py": (),  # and Debian's davmail-server, a transport process
    "access/ews/test_exchangelib_debian.py": (),  # Debian's python3-exchangelib
    "access/test_cas_master.py": (),
    "access/test_cas_process.py": (),
    "access/test_server_http.py": (),
    "access/test_tls_reload.py": (),
    "balancer/test_balancer_process.py": ("root",),
    "balancer/test_conntrack.py": ("root",),
    "balancer/test_control_plane.py": (),
    "balancer/test_haproxy.py": ("haproxy",),
    "balancer/test_haproxy_engine.py": ("haproxy",),
    "balancer/test_keepalived.py": ("root", "netns", "haproxy"),
    "balancer/nlb_host/test_netns.py": ("root", "netns"),
    "balancer/test_nft.py": ("root",),
    "balancer/test_proxy.py": (),
    "balancer/test_udp_proxy.py": (),
    "client/test_client_lab.py": ("lab",),
    "directory/test_migrations.py": (),
    "dns/test_export.py": ("nsd",),
    "dns/test_nsd_diff.py": ("nsd",),
    "dns/test_server.py": (),
    "lab/test_*.py": ("lab",),  # the loopback labs; not lab/hosts/ (test_plan.py is pure)
    "lab/hosts/test_network.py": ("root", "netns"),
    "lab/hosts/test_commands.py": ("root", "netns"),
    "lab/hosts/test_nlb_on_hosts.py": ("root", "netns"),
    "lab/hosts/test_postgres.py": ("root", "netns", "postgres"),
    "lab/hosts/test_walkthrough_hosts.py": ("root", "netns", "postgres"),
    "lab/test_lab_mail.py": ("root",),  # and two Postfix peers, as root
    "lab/test_lab_ews.py": ("root",),  # and exchangelib under unshare, as root
    "mailstore/test_dovecot_differential.py": ("dovecot",),
    "mailstore/test_mailbox_process.py": (),
    "mailstore/test_store_durability.py": (),
    "peers/test_postfix_peer.py": ("root",),
    "process/test_lifecycle.py": (),
    "shell/cmdlets/test_testing.py": (),
    "transport/test_real_clients.py": (),
    "transport/test_transport_process.py": (),
    "transport/test_tracking_process.py": (),
    "shell/test_shell_command.py": (),
    "shell/test_seed_lines.py": (),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests).as_posix()
        for prefix, markers in TIERS.items():
            if (
                relative == prefix
                or (prefix.endswith("/") and relative.startswith(prefix))
                or ("*" in prefix and fnmatch.fnmatchcase(relative, prefix))
            ):
                for marker in ("integration", *markers):
                    item.add_marker(marker)
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgres"
        if on_postgres or "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker("postgres")
        if item.get_closest_marker("postgres") is not None:
            item.add_marker("integration")
