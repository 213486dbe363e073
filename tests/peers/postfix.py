"""Postfix as a test and benchmark peer: an instance of Debian's Postfix in a folder of
its own, listening on one address, started and stopped by the test.

Two shapes, both from `PostfixPeer`:

- a **sink** (the default): every message it accepts is delivered by a `pipe` transport
  into `sink/` as one file (a first Return-Path line gives the envelope sender, `<>`
  for a null one; Postfix hands the message over with LF line ends), so a
  test can assert what a casarray server sent it, headers included; it is the smart
  host a send connector names;
- a **relay** (`relay_to=(host, port)`): it accepts mail from the loopback networks for
  any domain and sends it all on to that address (the outside world's MTA sending to
  casarray's port 25).

`discard=True` makes it throw away what it accepts (Postfix's `discard` transport): the
peer `bench/smtp.py` measures smtpd against.

`reject={"bob@far.net": "550 5.1.1 No such user"}` makes its smtpd refuse those
recipients at RCPT with that reply (`check_recipient_access`), a 4xx reply for a
temporary refusal; others are taken as usual. `tls=True` makes its smtpd offer
STARTTLS with a self-signed certificate for its hostname (made with openssl).

`resolver="127.77.0.53"` (without `relay_to`) makes it an MTA of the outside world that
routes by DNS: it sends what it accepts to each domain's MX hosts, looked up at that
name server. Its master runs in a mount namespace of its own (`unshare --mount`) in which
/etc/resolv.conf is a file of the peer's naming that server; every service runs
unchrooted (master.cf's chroot column is n), so the libc resolver of its smtp client
reads that file, and the machine's own resolver is left alone. `source=` is the address
its smtp client connects from (`smtp_bind_address`; the default: the kernel's choice).

Postfix must be started as root (its master drops to the `postfix` user); Debian's
package is installed by `make test` with "No configuration", so no system instance
holds port 25. Its own log goes to `maillog` in the folder (there is no syslog here).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"

_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
sink      unix  - n n - - pipe null_sender= user=nobody
  argv={base}/sink.sh ${{queue_id}} ${{sender}}
"""

_SINK_SH = """\
#!/bin/sh
{{ printf 'Return-Path: <%s>\\n' "$2"; cat; }} > "{base}/sink/$1.eml"
"""


def missing() -> str | None:
    """Why a Postfix peer can't run here (None: it can)."""
    if not Path(POSTFIX).exists():
        return "Debian's postfix is not installed (`make test` installs it)"
    if os.geteuid() != 0:
        return "Postfix runs only as root (its master drops privileges itself)"
    return None


@dataclass
class PostfixPeer:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    hostname: str = "smarthost.example.test"
    relay_to: tuple[str, int] | None = None
    discard: bool = False
    reject: dict[str, str] = field(default_factory=dict)  # recipient -> RCPT reply
    tls: bool = False
    resolver: str | None = None  # a name server: route by MX through it (see above)
    source: str | None = None  # the address its smtp client sends from
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="casarray-postfix-")))
    _started: bool = False

    @property
    def config(self) -> Path:
        return self.base / "conf"

    def start(self, timeout: float = 20.0) -> PostfixPeer:
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self.port = probe.getsockname()[1]
        base = self.base
        # every folder on the way must be open to the postfix and nobody users
        base.chmod(0o755)
        for name in ("conf", "queue", "data", "sink"):
            (base / name).mkdir(exist_ok=True)
        shutil.chown(base / "data", "postfix")
        shutil.chown(base / "sink", "nobody")
        (base / "sink.sh").write_text(_SINK_SH.format(base=base))
        (base / "sink.sh").chmod(0o755)
        if self.relay_to is not None:
            target = f"smtp:[{self.relay_to[0]}]:{self.relay_to[1]}"
        elif self.resolver is not None:
            target = "smtp:"  # each domain's MX hosts
        else:
            target = "discard:" if self.discard else "sink:"
        main = [
            "compatibility_level = 3.6",
            f"queue_directory = {base}/queue",
            f"data_directory = {base}/data",
            f"maillog_file = {base}/maillog",
            f"maillog_file_prefixes = {base}",
            f"myhostname = {self.hostname}",
            "inet_protocols = ipv4",
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            "relay_domains = *",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "smtputf8_enable = yes",
            "smtp_tls_security_level = may",
            "smtp_tls_loglevel = 1",
            # DNS only for an MTA with a resolver of its own (the others never look up)
            f"smtp_dns_support_level = {'enabled' if self.resolver else 'disabled'}",
            f"smtp_host_lookup = {'dns' if self.resolver else 'native'}",
            f"default_transport = {target}",
            f"relay_transport = {target}",
            f"local_transport = {target}",
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
            "default_process_limit = 100",
        ]
        if self.source is not None:
            main.append(f"smtp_bind_address = {self.source}")
        if self.tls:
            key, cert = base / "tls.key", base / "tls.crt"
            request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
            subprocess.run(
                [*request, "-subj", f"/CN={self.hostname}", "-keyout", str(key), "-out", str(cert)],
                check=True,
                capture_output=True,
            )
            key.chmod(0o644)
            main += [
                "smtpd_tls_security_level = may",
                f"smtpd_tls_cert_file = {cert}",
                f"smtpd_tls_key_file = {key}",
                "smtpd_tls_received_header = yes",
                "smtpd_tls_loglevel = 1",
            ]
        if self.reject:
            entries = ", ".join(
                f"{{ {address} = {reply} }}" for address, reply in self.reject.items()
            )
            main.append(
                f"smtpd_recipient_restrictions = check_recipient_access inline:{{ {entries} }}"
            )
        (self.config / "main.cf").write_text("\n".join(main) + "\n")
        listen = f"{self.host}:{self.port}"
        services = _MASTER_CF.format(listen=listen, base=base)
        if self.tls or self.resolver is not None:  # (its smtp client's TLS needs it too)
            services += "tlsmgr    unix  - - n 1000? 1 tlsmgr\n"
        (self.config / "master.cf").write_text(services)
        if self.resolver is not None:
            self._start_with_resolver()
        else:
            self._postfix("start")
        self._started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Postfix did not listen on {listen}: {self.log()[-2000:]}")

    def stop(self) -> None:
        if self._started:
            self._started = False
            subprocess.run([POSTFIX, "-c", str(self.config), "stop"], check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostfixPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _postfix(self, *args: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config), *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} failed: {done.stderr}{self.log()}")

    def _start_with_resolver(self) -> None:
        """`postfix start` in a mount namespace of its own whose /etc/resolv.conf names
        `resolver`: the master and every service it forks later live in it (the
        namespace goes with its last process, so `stop` leaves nothing behind); the
        machine's mounts are untouched (private propagation)."""
        unshare = shutil.which("unshare")
        if unshare is None:
            raise RuntimeError("unshare (util-linux) is needed for a Postfix with a resolver")
        resolv = self.base / "resolv.conf"
        resolv.write_text(f"nameserver {self.resolver}\noptions timeout:2 attempts:2\n")
        resolv.chmod(0o644)  # read by the smtp client, as the postfix user
        script = 'mount --bind "$1" /etc/resolv.conf && exec "$2" -c "$3" start'
        done = subprocess.run(
            [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh",
             str(resolv), POSTFIX, str(self.config)],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"postfix start (resolver) failed: {done.stderr}{self.log()}")

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def received(self) -> list[bytes]:
        """The messages the sink holds, oldest first."""
        files = sorted((self.base / "sink").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        return [p.read_bytes() for p in files]

    def wait_received(self, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.received()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def queue(self) -> str:
        """`postqueue -p`: what it still holds."""
        done = subprocess.run(
            ["postqueue", "-c", str(self.config), "-p"], capture_output=True, text=True
        )
        return done.stdout
