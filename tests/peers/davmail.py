"""DavMail as a test peer: Debian's `davmail-server` (headless) in EWS mode, in a folder
of its own, re-exporting one EWS endpoint as IMAP and SMTP on loopback.

`DavMailPeer(ews_url).start()` writes a `davmail.properties` (davmail.mode=EWS,
davmail.url=<ews_url>, the IMAP and SMTP listeners on free ports of 127.0.0.1 without
TLS, POP, CalDAV and LDAP off, no tray, no update check, its log in the folder), runs
`davmail-server <that file>` and waits until its IMAP port answers. A client then logs
in to DavMail's IMAP or SMTP with the mailbox's address and password; DavMail opens an
EWS session with them (Basic or NTLM, as the server offers) on the first login.

The EWS URL is plain http to a loopback test server: DavMail is Java, and trusting a
test's certificate would mean a truststore for the JVM; http on 127.0.0.1 keeps the
peer to the protocol under test. DavMail stops with SIGTERM; `stop()` kills it after
10 s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAVMAIL = "/usr/bin/davmail-server"
HOST = "127.0.0.1"


def missing() -> str | None:
    """Why a DavMail peer can't run here (None: it can)."""
    if not Path(DAVMAIL).exists():
        return "Debian's davmail-server is not installed (`make test` installs it)"
    if shutil.which("java") is None:
        return "no java on PATH for DavMail (Debian's davmail-server depends on one)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class DavMailPeer:
    ews_url: str
    imap_port: int = 0  # 0: a free port
    smtp_port: int = 0
    # DavMail's DEBUG log with the HTTP wire ($CASARRAY_DAVMAIL_DEBUG=1 for every peer)
    debug: bool = field(default_factory=lambda: bool(os.environ.get("CASARRAY_DAVMAIL_DEBUG")))
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="casarray-davmail-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.base / "davmail.log"

    def properties(self) -> str:
        level = "DEBUG" if self.debug else "INFO"
        settings = {
            "davmail.server": "true",
            "davmail.enableTray": "false",
            "davmail.mode": "EWS",
            "davmail.url": self.ews_url,
            "davmail.bindAddress": HOST,
            "davmail.allowRemote": "false",
            "davmail.imapPort": str(self.imap_port),
            "davmail.smtpPort": str(self.smtp_port),
            "davmail.popPort": "",
            "davmail.caldavPort": "",
            "davmail.ldapPort": "",
            "davmail.ssl.nosecureimap": "true",
            "davmail.ssl.nosecuresmtp": "true",
            "davmail.enableProxy": "false",
            "davmail.useSystemProxies": "false",
            "davmail.disableUpdateCheck": "true",
            "davmail.enableKerberos": "false",
            "davmail.imapAutoExpunge": "true",
            "davmail.smtpSaveInSent": "true",
            "davmail.folderSizeLimit": "0",
            "davmail.logFilePath": str(self.log),
            "davmail.logFileSize": "0",
            "log4j.rootLogger": level,
            "log4j.logger.davmail": level,
            "log4j.logger.httpclient.wire": level if self.debug else "WARN",
            "log4j.logger.org.apache.http": "WARN",
            "log4j.logger.org.apache.http.wire": level if self.debug else "WARN",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def start(self, timeout: float = 60.0) -> DavMailPeer:
        if self.imap_port == 0:
            self.imap_port = _free_port()
        if self.smtp_port == 0:
            self.smtp_port = _free_port()
        config = self.base / "davmail.properties"
        config.write_text(self.properties())
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["HOME"] = str(self.base)  # DavMail keeps nothing outside the folder
        out = open(self.base / "stdout.log", "wb")  # noqa: SIM115 - the child holds it
        with out:
            self.proc = subprocess.Popen(
                [DAVMAIL, str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.base,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"DavMail exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError):
                with socket.create_connection((HOST, self.imap_port), timeout=1):
                    pass
                with socket.create_connection((HOST, self.smtp_port), timeout=1):
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"DavMail didn't listen within {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        parts = []
        for path in (self.base / "stdout.log", self.log):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace")[-6000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> DavMailPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if not self.debug:  # a debugging run keeps the folder, its log and properties
            shutil.rmtree(self.base, ignore_errors=True)
