"""The hosts lab's PostgreSQL server: Debian's server binaries run inside DC01's
namespace, holding the directory and the mailbox databases of every host (DESIGN.md,
"Scaling past one machine": nothing home-made replicates data).

- The cluster is `$CASARRAY_HOME/postgres/data`, made once with `initdb` (C locale,
  UTF-8). The server runs as the `postgres` user (it refuses root) with the ambient
  capability CAP_DAC_READ_SEARCH, so it reaches a home below a folder only root may
  enter (`/root/.casarray`, a test's temporary folder) without that folder's mode being
  changed; `postgres/` itself is the postgres user's, mode 0700.
- It listens on DC01's address, port 5432, and on a Unix socket in
  `postgres/run` (0700). The lab's processes, inside their hosts, use TCP:
  `postgresql+psycopg://casarray@198.18.1.5:5432/casarray` (`tcp_url`); the
  supervisor and the `casarray lab` commands, in the machine's own namespace where no
  route leads to the lab, use the socket (`local_url`), which is a file and so is
  reached from any namespace.
- Authentication (`pg_hba.conf`): `trust` for the socket and for 198.18.0.0/15, and
  nothing else (no other address is listened on). Trust rather than scram because a
  password would add nothing here: the lab's network is reachable only from inside the
  lab's namespaces, which only root can enter, and root can read the cluster's files
  anyway; a password would sit in lab.json and on every lab process's command line
  (`--directory`). A lab whose hosts were real machines would use scram-sha-256.
- Role `casarray` (LOGIN) owns database `casarray`; the directory's tables are in its
  `public` schema and each mailbox database in a schema of its own
  (`mailstore.store.postgres_location`).

`start` (inside DC01, idempotent: a running server is left alone) comes before
anything else of `lab up --hosts` and `stop` last; `lab kill-host DC01` kills the
server with everything in DC01, and `start-host DC01` starts it again.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from casarray.lab.hosts.plan import DC_ADDRESS, HostsError

PORT = 5432
USER = DATABASE = "casarray"
SUPERUSER = "postgres"  # initdb's superuser, and the system user the server runs as
LAB_NETWORK = "198.18.0.0/15"
FOLDER = "postgres"  # under the lab's home
START_TIMEOUT = 60


class PostgresError(HostsError):
    """The lab's PostgreSQL server can't be made, started or stopped."""


def find_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl) of Debian's postgresql package: `pg_config --bindir`, the newest
    /usr/lib/postgresql/*/bin, or $PATH; None when not installed."""
    bindirs: list[str] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            bindirs.append(done.stdout.strip())

    def version(path: str) -> int:
        name = Path(path).parent.name
        return int(name) if name.isdigit() else -1

    bindirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for bindir in filter(None, bindirs):
        initdb, pg_ctl = Path(bindir, "initdb"), Path(bindir, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return str(initdb), str(pg_ctl)
    found_initdb, found_pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return (found_initdb, found_pg_ctl) if found_initdb and found_pg_ctl else None


def tcp_url(address: str = DC_ADDRESS) -> str:
    """The URL the lab's processes use, inside their hosts."""
    return f"postgresql+psycopg://{USER}@{address}:{PORT}/{DATABASE}"


@dataclass(frozen=True)
class LabPostgres:
    """The PostgreSQL server of the lab in `home`, run inside `namespace` (DC01's)."""

    home: Path
    namespace: str
    address: str = DC_ADDRESS

    @property
    def folder(self) -> Path:
        return self.home / FOLDER

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def sockets(self) -> Path:
        return self.folder / "run"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def local_url(self) -> str:
        """The URL for this machine's own namespace: the Unix socket."""
        return f"postgresql+psycopg://{USER}@/{DATABASE}?host={self.sockets}&port={PORT}"

    def _binaries(self) -> tuple[str, str]:
        found = find_binaries()
        if found is None:
            raise PostgresError(
                "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
                "apt-get install postgresql."
            )
        return found

    def _as_postgres(self) -> list[str]:
        """The command prefix that runs a program as the postgres user, able to reach
        a home below folders only root may enter."""
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresError(
                f"There is no '{SUPERUSER}' user to run PostgreSQL as (Debian's postgresql "
                "package makes it)."
            ) from None
        if shutil.which("setpriv") is None:
            raise PostgresError("setpriv is not installed (Debian package util-linux).")
        return [
            "setpriv",
            f"--reuid={SUPERUSER}",
            f"--regid={SUPERUSER}",
            "--init-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            "--",
        ]

    def _run(self, argv: list[str], what: str, timeout: float = START_TIMEOUT) -> str:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, cwd=self.folder
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"PostgreSQL's {what} took more than {timeout:.0f} s.") from exc
        if done.returncode != 0:
            tail = ""
            if self.log.exists():
                tail = "\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-10:])
            raise PostgresError(
                f"PostgreSQL's {what} failed: {(done.stderr or done.stdout).strip()}{tail}"
            )
        return done.stdout

    def made(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def make(self) -> None:
        """initdb the cluster and write its settings (once)."""
        if self.made():
            return
        initdb, _ = self._binaries()
        user = pwd.getpwnam(SUPERUSER)
        for folder in (self.folder, self.sockets):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, user.pw_uid, user.pw_gid)
            folder.chmod(0o700)
        self._run(
            [
                *self._as_postgres(),
                initdb,
                *("-D", str(self.data), "-U", SUPERUSER),
                *("--auth-local=trust", "--auth-host=reject"),
                *("--encoding=UTF8", "--locale=C", "--no-sync"),
            ],
            "initdb",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# casarray hosts lab: DC01's address only, and the socket\n"
                f"listen_addresses = '{self.address}'\n"
                f"port = {PORT}\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                "max_connections = 300\n"
            )
        (self.data / "pg_hba.conf").write_text(
            "# casarray hosts lab (see casarray.lab.hosts.postgres): the socket (a folder\n"
            "# only root and postgres enter) and the lab's hosts, whose network only the\n"
            "# lab's namespaces reach; nothing else.\n"
            "local   all  all                trust\n"
            f"host    all  all  {LAB_NETWORK}  trust\n"
        )
        os.chown(self.data / "pg_hba.conf", user.pw_uid, user.pw_gid)

    def running(self) -> bool:
        if not self.made():
            return False
        _, pg_ctl = self._binaries()
        argv = [*self._as_postgres(), pg_ctl, "-D", str(self.data), "status"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=self.folder)
        return done.returncode == 0

    def start(self) -> bool:
        """Make the cluster if needed and start the server inside the namespace (the
        namespace must exist), then make the role and database; False when it was
        running already."""
        self.make()
        if self.running():
            self.ensure_database()
            return False
        _, pg_ctl = self._binaries()
        self._run(
            [
                *("ip", "netns", "exec", self.namespace),
                *self._as_postgres(),
                pg_ctl,
                *("-D", str(self.data), "-l", str(self.log)),
                *("-w", "-t", str(START_TIMEOUT), "start"),
            ],
            "start",
            timeout=START_TIMEOUT + 10,
        )
        self.ensure_database()
        return True

    def ensure_database(self) -> None:
        """Role `casarray` and its database (over the socket)."""
        import psycopg

        try:
            with psycopg.connect(
                host=str(self.sockets),
                port=PORT,
                user=SUPERUSER,
                dbname="postgres",
                autocommit=True,
                connect_timeout=10,
            ) as conn:
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone():
                    pass
                else:
                    conn.execute(f'CREATE ROLE "{USER}" LOGIN')
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if found.fetchone() is None:
                    conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{USER}"')
        except psycopg.Error as exc:
            raise PostgresError(f"Can't make the lab's database: {exc}") from exc

    def stop(self) -> bool:
        """Stop the server (fast shutdown); False when none ran."""
        if not self.running():
            return False
        _, pg_ctl = self._binaries()
        self._run(
            [*self._as_postgres(), pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"],
            "stop",
        )
        return True
