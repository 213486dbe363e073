"""The soak's load: concurrent clients at bounded rates, each reaching the lab by its
names (resolved through the lab's DNS: the array's name for IMAP, EWS and web mail,
lab.net's MX for SMTP) and writing what it was told to its history as it happens.

- `ImapClient`: APPEND (the exact bytes and the APPENDUID kept), UID STORE FLAGS, UID
  COPY and UID MOVE (COPYUID), UID EXPUNGE, UID FETCH (the bytes compared), in three
  folders of its own (`Soak-<client>-A`, `-B` for copies, `-C` for moves);
- `SmtpClient`: a message from outside on port 25 (as another domain's MTA), or a
  user's submission on 587 (STARTTLS, AUTH), to one or two of the lab's users; the
  250's queue id kept;
- `EwsClient`: exchangelib's CreateItem (a draft), UpdateItem (IsRead), MoveItem (to a
  folder of its own) and DeleteItem (HardDelete);
- `WebClient`: web mail's compose form posted as a browser does (OWA's sign-in, the
  CSRF token), "sent" being the redirect to /owa?sent=1;
- `DnsClient`: the array's name and the MX resolved twice a second (DNS's own
  availability).

Clients touch only their own folders (the INBOX deliveries are read by nobody), so
each client's history replays alone into what must be found (`checker`). A client
after a fault reconnects and goes on; an operation whose answer never came is
`unknown` and the client leaves that message alone from then on.

`python -m casarray.lab.soak.load CONFIG.json` runs the clients of `LoadConfig` until
its stop file exists (or its time is up), so that the load can run inside a host's
network namespace in a lab on several hosts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import signal
import smtplib
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, ClassVar

from casarray.directory.quotas import DATABASE_DEFAULTS
from casarray.lab.soak.history import FAILED, OK, UNKNOWN, History, encode
from casarray.lab.soak.imap_wire import Imap, NoAnswer, NotSent, unverified

log = logging.getLogger("casarray.lab.soak")

IMAP_FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "$Soak")
EWS_FOLDER = "SoakEWS"
DEFAULT_WARNING_QUOTA = DATABASE_DEFAULTS.issue_warning  # of a new database
TIMEOUT = 10.0
WORDS = (
    "array",
    "client",
    "access",
    "mailbox",
    "database",
    "transport",
    "queue",
    "balancer",
    "cluster",
    "node",
    "failover",
    "soak",
    "chaos",
    "history",
    "message",
    "delivery",
    "receive",
    "connector",
    "site",
)


@dataclass
class LoadConfig:
    run: str  # this run's token, in every soak id
    folder: str  # where the histories go (one file per process)
    dns: tuple[str, int]  # the lab's DNS server
    array: str  # the array's name (IMAP, EWS, web mail)
    domain: str  # the lab's mail domain (its MX for SMTP)
    users: dict[str, str]  # address -> password
    imap_names: dict[str, str]  # address -> the name its IMAP client connects to
    port_offset: int = 0
    clients: dict[str, int] = field(default_factory=dict)  # kind -> how many
    stop_file: str = ""
    seconds: float = 3600.0
    seed: int = 0
    pace: float = 0.4  # the mean pause (s) between a client's operations
    web_users: list[str] = field(default_factory=list)  # who sends from web mail
    ews_users: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> LoadConfig:
        data = json.loads(path.read_text())
        data["dns"] = tuple(data["dns"])
        return cls(**data)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


class Names:
    """The lab's names through its DNS (dnspython); the last good answer is used while
    the DNS server is down, as a caching resolver would."""

    def __init__(self, server: tuple[str, int]) -> None:
        import dns.resolver

        self.resolver = dns.resolver.Resolver(configure=False)
        self.resolver.nameservers = [server[0]]
        self.resolver.port = server[1]
        self.resolver.timeout = 1.0
        self.resolver.lifetime = 2.0
        self._cache: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()

    def lookup(self, name: str, kind: str = "A", fresh: bool = False) -> list[str]:
        try:
            answer = self.resolver.resolve(name, kind)
            if kind == "MX":
                found = [
                    str(r.exchange).rstrip(".") for r in sorted(answer, key=lambda r: r.preference)
                ]
            else:
                found = [r.to_text() for r in answer]
        except Exception:
            if fresh:
                raise
            with self._lock:
                cached = self._cache.get((name, kind))
            if cached:
                return cached
            raise
        with self._lock:
            self._cache[(name, kind)] = found
        return found

    def address(self, name: str) -> str:
        return random.choice(self.lookup(name))

    def mail_hosts(self, domain: str) -> list[tuple[str, str]]:
        """The domain's MX hosts and their addresses, best first."""
        out: list[tuple[str, str]] = []
        for host in self.lookup(domain, "MX"):
            with contextlib.suppress(Exception):
                out.extend((host, address) for address in self.lookup(host))
        return out


def soak_subject(soak_id: str, kind: str) -> str:
    return f"soak [soak:{soak_id}] {kind}"


def message_bytes(rng: random.Random, soak_id: str, sender: str, to: list[str], kind: str) -> bytes:
    """A message of the soak: its id in the Subject and X-Soak-Id, a body of some
    hundreds of bytes to a few kilobytes (no line starts with a dot)."""
    lines = []
    for _ in range(rng.randint(3, 60)):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))))
    body = "\r\n".join(lines) + f"\r\n-- {soak_id}\r\n"
    head = (
        f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {soak_subject(soak_id, kind)}\r\n"
        f"Date: {formatdate(localtime=False)}\r\nMessage-ID: <{soak_id}@soak.lab.net>\r\n"
        f"X-Soak-Id: {soak_id}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    return (head + body).encode()


class Client(threading.Thread):
    """One client: `step` again and again, a pause between, until `stop`."""

    kind = "client"

    def __init__(
        self, name: str, config: LoadConfig, history: History, names: Names, stop: threading.Event
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.config = config
        self.history = history
        self.names = names
        self.stop = stop
        self.rng = random.Random(f"{config.seed}-{name}")
        self.counter = 0

    def soak_id(self) -> str:
        self.counter += 1
        return f"{self.config.run}-{self.name}-{self.counter:06d}"

    def record(self, op: str, outcome: str, t0: float, **fields: Any) -> None:
        self.history.record(self.name, op, outcome, t0, **fields)

    def pause(self, factor: float = 1.0) -> None:
        self.stop.wait(self.rng.uniform(0.5, 1.5) * self.config.pace * factor)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as exc:
                log.exception("%s: %s", self.name, exc)
                self.record("client.error", FAILED, time.time(), error=repr(exc)[:300])
                self.reset()
                self.pause(3)
            self.pause()
        self.reset()

    def step(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Drop the connection (after a failure, and at the end)."""


@dataclass
class Owned:
    uid: int
    flags: frozenset[str]
    raw: bytes


class ImapClient(Client):
    kind = "imap"

    def __init__(self, name: str, user: str, *args: Any) -> None:
        super().__init__(name, *args)
        self.user = user
        self.host = self.config.imap_names[user]
        self.a, self.b, self.c = (f"Soak-{name}-{part}" for part in "ABC")
        self.owned: dict[str, Owned] = {}
        self.copied: set[str] = set()
        self.conn: Imap | None = None
        self.made_folders = False
        self.uidvalidity: int | None = None

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def connect(self) -> Imap | None:
        t0 = time.time()
        try:
            conn = Imap(self.names.address(self.host), 143 + self.config.port_offset, TIMEOUT)
        except Exception as exc:
            self.record("imap.login", FAILED, t0, user=self.user, error=repr(exc)[:200])
            return None
        try:
            conn.starttls(self.host)
            answer = conn.login(self.user, self.config.users[self.user])
            if answer.status != "OK":
                raise NotSent(answer.text.decode(errors="replace"))
            if not self.made_folders:
                for folder in (self.a, self.b, self.c):
                    conn.command(f'CREATE "{folder}"')
                self.made_folders = True
            answer = conn.command(f'SELECT "{self.a}"')
            if answer.status != "OK":
                raise NotSent(answer.text.decode(errors="replace"))
            validity = answer.code(b"UIDVALIDITY")
            if validity:
                value = int(validity[0])
                if self.uidvalidity is not None and value != self.uidvalidity:
                    self.record("imap.uidvalidity", FAILED, t0, user=self.user, folder=self.a)
                    self.owned.clear()
                self.uidvalidity = value
        except Exception as exc:
            conn.close()
            self.record("imap.login", FAILED, t0, user=self.user, error=repr(exc)[:200])
            return None
        self.record("imap.login", OK, t0, user=self.user)
        return conn

    def step(self) -> None:
        if self.conn is None:
            self.conn = self.connect()
            if self.conn is None:
                return
        choices: list[tuple[Callable[[Imap], object], float]] = [(self.append, 4.0)]
        if self.owned:
            many = len(self.owned) > 25
            choices += [
                (self.store, 2.0),
                (self.copy, 1.0),
                (self.move, 3.0 if many else 1.0),
                (self.expunge, 3.0 if many else 1.0),
                (self.fetch, 2.0),
            ]
        actions, weights = zip(*choices, strict=True)
        action = self.rng.choices(actions, weights)[0]
        action(self.conn)

    def _pick(self, exclude: set[str] | None = None) -> str | None:
        ids = [i for i in self.owned if not exclude or i not in exclude]
        return self.rng.choice(ids) if ids else None

    def _failed(self, exc: Exception, op: str, t0: float, **fields: Any) -> None:
        outcome = UNKNOWN if isinstance(exc, NoAnswer) else FAILED
        self.record(op, outcome, t0, user=self.user, error=str(exc)[:200], **fields)
        self.reset()

    def append(self, conn: Imap) -> None:
        soak_id = self.soak_id()
        raw = message_bytes(self.rng, soak_id, self.user, [self.user], "imap")
        flags = frozenset(f for f in IMAP_FLAGS if self.rng.random() < 0.3)
        fields = {"folder": self.a, "soak_id": soak_id, "raw": encode(raw), "flags": sorted(flags)}
        t0 = time.time()
        try:
            answer = conn.command(f'APPEND "{self.a}" ({" ".join(sorted(flags))})', raw)
        except (NotSent, NoAnswer) as exc:
            self._failed(exc, "imap.append", t0, **fields)
            return
        code = answer.code(b"APPENDUID")
        if answer.status != "OK" or not code:
            self.record(
                "imap.append",
                FAILED,
                t0,
                user=self.user,
                error=answer.text.decode(errors="replace")[:200],
                **fields,
            )
            return
        uid = int(code[1])
        self.record(
            "imap.append", OK, t0, user=self.user, uid=uid, uidvalidity=int(code[0]), **fields
        )
        self.owned[soak_id] = Owned(uid, flags, raw)

    def store(
        self, conn: Imap, flags: frozenset[str] | None = None, soak_id: str | None = None
    ) -> bool:
        soak_id = soak_id or self._pick()
        if soak_id is None:
            return False
        owned = self.owned[soak_id]
        if flags is None:
            flags = frozenset(f for f in IMAP_FLAGS if self.rng.random() < 0.5)
            flags |= owned.flags & {"\\Deleted"}
        fields = {"folder": self.a, "soak_id": soak_id, "uid": owned.uid, "flags": sorted(flags)}
        t0 = time.time()
        try:
            answer = conn.command(f"UID STORE {owned.uid} FLAGS.SILENT ({' '.join(sorted(flags))})")
        except (NotSent, NoAnswer) as exc:
            self._failed(exc, "imap.store", t0, **fields)
            if isinstance(exc, NoAnswer):
                self.owned.pop(soak_id, None)
            return False
        if answer.status != "OK":
            self.record(
                "imap.store",
                FAILED,
                t0,
                user=self.user,
                error=answer.text.decode(errors="replace")[:200],
                **fields,
            )
            return False
        self.record("imap.store", OK, t0, user=self.user, **fields)
        owned.flags = flags
        return True

    def _transfer(self, conn: Imap, move: bool) -> None:
        soak_id = self._pick(None if move else self.copied)
        if soak_id is None:
            return
        owned = self.owned[soak_id]
        op, dest = ("imap.move", self.c) if move else ("imap.copy", self.b)
        fields = {"folder": self.a, "soak_id": soak_id, "uid": owned.uid, "dest": dest}
        t0 = time.time()
        try:
            answer = conn.command(f'UID {"MOVE" if move else "COPY"} {owned.uid} "{dest}"')
        except (NotSent, NoAnswer) as exc:
            self._failed(exc, op, t0, **fields)
            if isinstance(exc, NoAnswer):
                self.owned.pop(soak_id, None)
                self.copied.add(soak_id)
            return
        if answer.status != "OK":
            self.record(
                op,
                FAILED,
                t0,
                user=self.user,
                error=answer.text.decode(errors="replace")[:200],
                **fields,
            )
            return
        code = answer.code(b"COPYUID")
        dest_uid = int(code[2]) if code and len(code) >= 3 else None
        self.record(op, OK, t0, user=self.user, dest_uid=dest_uid, empty=dest_uid is None, **fields)
        self.copied.add(soak_id)
        if move:
            self.owned.pop(soak_id, None)

    def copy(self, conn: Imap) -> None:
        self._transfer(conn, move=False)

    def move(self, conn: Imap) -> None:
        self._transfer(conn, move=True)

    def expunge(self, conn: Imap) -> None:
        soak_id = self._pick()
        if soak_id is None:
            return
        owned = self.owned[soak_id]
        if "\\Deleted" not in owned.flags and not self.store(
            conn, owned.flags | {"\\Deleted"}, soak_id
        ):
            return
        fields = {"folder": self.a, "soak_id": soak_id, "uid": owned.uid}
        t0 = time.time()
        try:
            answer = conn.command(f"UID EXPUNGE {owned.uid}")
        except (NotSent, NoAnswer) as exc:
            self._failed(exc, "imap.expunge", t0, **fields)
            if isinstance(exc, NoAnswer):
                self.owned.pop(soak_id, None)
            return
        if answer.status != "OK":
            self.record(
                "imap.expunge",
                FAILED,
                t0,
                user=self.user,
                error=answer.text.decode(errors="replace")[:200],
                **fields,
            )
            return
        self.record("imap.expunge", OK, t0, user=self.user, **fields)
        self.owned.pop(soak_id, None)

    def fetch(self, conn: Imap) -> None:
        soak_id = self._pick()
        if soak_id is None:
            return
        owned = self.owned[soak_id]
        fields = {"folder": self.a, "soak_id": soak_id, "uid": owned.uid}
        t0 = time.time()
        try:
            answer = conn.command(f"UID FETCH {owned.uid} (FLAGS BODY.PEEK[])")
        except (NotSent, NoAnswer) as exc:
            self.record("imap.fetch", FAILED, t0, user=self.user, error=str(exc)[:200], **fields)
            self.reset()
            return
        if answer.status != "OK":
            self.record("imap.fetch", FAILED, t0, user=self.user, **fields)
            return
        bodies = [parts[1] for parts in answer.untagged if len(parts) > 1 and b"FETCH" in parts[0]]
        found = bool(bodies)
        self.record(
            "imap.fetch",
            OK,
            t0,
            user=self.user,
            found=found,
            match=found and bodies[0] == owned.raw,
            **fields,
        )


QUEUE_ID = re.compile(r"<([0-9A-F]{8,})>")


class SmtpClient(Client):
    """Port 25 (`submission` False: from another domain, unauthenticated) or 587 (a
    user, STARTTLS and AUTH)."""

    kind = "smtp"

    def __init__(self, name: str, submission: bool, *args: Any) -> None:
        super().__init__(name, *args)
        self.submission = submission

    def step(self) -> None:
        users = sorted(self.config.users)
        sender = self.rng.choice(users) if self.submission else "partner@example.net"
        recipients = self.rng.sample(users, self.rng.choice((1, 1, 2)))
        soak_id = self.soak_id()
        raw = message_bytes(self.rng, soak_id, sender, recipients, "smtp")
        port = (587 if self.submission else 25) + self.config.port_offset
        fields: dict[str, Any] = {
            "user": sender,
            "soak_id": soak_id,
            "recipients": recipients,
            "raw": encode(raw),
            "port": port,
        }
        t0 = time.time()
        sent = False
        client = smtplib.SMTP(timeout=TIMEOUT)
        try:
            hosts = self.names.mail_hosts(self.config.domain)
            self.rng.shuffle(hosts)  # equal preference: any order; the next when refused
            code, text = 0, b"no MX host"
            for host, address in hosts:
                fields["server"] = address
                try:
                    code, text = client.connect(address, port)
                except OSError:
                    client.close()
                    continue
                client._host = host  # type: ignore[attr-defined]  # the name STARTTLS sends
                break
            if code != 220:
                raise smtplib.SMTPResponseException(code, text)
            client.ehlo("soak.example.net")
            if self.submission:
                client.starttls(context=unverified())
                client.ehlo("soak.example.net")
                client.login(sender, self.config.users[sender])
            client.mail(sender)
            for recipient in recipients:
                code, text = client.rcpt(recipient)
                if code != 250:
                    raise smtplib.SMTPResponseException(code, text)
            code, text = client.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPResponseException(code, text)
            client.send(raw + b".\r\n")
            sent = True
            code, text = client.getreply()
        except smtplib.SMTPResponseException as exc:
            self.record(
                "smtp.send", FAILED, t0, error=f"{exc.smtp_code} {exc.smtp_error!r}"[:200], **fields
            )
            return
        except (OSError, smtplib.SMTPException, Exception) as exc:
            outcome = UNKNOWN if sent else FAILED
            self.record("smtp.send", outcome, t0, error=repr(exc)[:200], **fields)
            return
        finally:
            with contextlib.suppress(Exception):
                client.close()
        reply = text.decode(errors="replace")
        if code == 250:
            found = QUEUE_ID.search(reply)
            self.record("smtp.send", OK, t0, queue_id=found.group(1) if found else reply, **fields)
        else:
            self.record("smtp.send", FAILED, t0, error=f"{code} {reply}"[:200], **fields)


class DnsClient(Client):
    kind = "dns"

    def step(self) -> None:
        for name, kind in ((self.config.array, "A"), (self.config.domain, "MX")):
            t0 = time.time()
            try:
                self.names.lookup(name, kind, fresh=True)
            except Exception as exc:
                self.record("dns.resolve", FAILED, t0, name=name, error=repr(exc)[:200])
            else:
                self.record("dns.resolve", OK, t0, name=name)

    def pause(self, factor: float = 1.0) -> None:
        self.stop.wait(0.5)


class WebClient(Client):
    """Web mail (OWA) through the array over HTTPS: signs in, then posts the compose
    form as a browser does."""

    kind = "web"
    TOKEN = re.compile(r'name="csrf" value="([^"]+)"')
    FIELD = re.compile(
        r'<input type="(?:hidden|text)"(?: id="[a-z]+")? name="([a-z_]+)" value="([^"]*)"'
    )

    def __init__(self, name: str, user: str, *args: Any) -> None:
        super().__init__(name, *args)
        self.user = user
        self.http: Any = None

    def reset(self) -> None:
        if self.http is not None:
            with contextlib.suppress(Exception):
                self.http.close()
            self.http = None

    def sign_in(self) -> bool:
        import httpx

        t0 = time.time()
        try:
            address = self.names.address(self.config.array)
            http = httpx.Client(
                base_url=f"https://{address}:{443 + self.config.port_offset}",
                verify=False,
                timeout=TIMEOUT,
                follow_redirects=False,
                headers={"Host": self.config.array},
            )
            form = http.get("/owa/login")
            token = self.TOKEN.search(form.text)
            if form.status_code != 200 or token is None:
                raise RuntimeError(f"login form: {form.status_code}")
            signed = http.post(
                "/owa/login",
                data={
                    "csrf": token.group(1),
                    "username": self.user,
                    "password": self.config.users[self.user],
                },
            )
            if signed.status_code != 303 or "login" in signed.headers.get("location", ""):
                raise RuntimeError(f"sign-in: {signed.status_code}")
        except Exception as exc:
            self.record("web.login", FAILED, t0, user=self.user, error=repr(exc)[:200])
            return False
        self.record("web.login", OK, t0, user=self.user)
        self.http = http
        return True

    def step(self) -> None:
        import html

        import httpx

        if self.http is None and not self.sign_in():
            return
        others = [u for u in sorted(self.config.users) if u != self.user]
        recipients = self.rng.sample(others, 1)
        soak_id = self.soak_id()
        body = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(5, 80)))
        fields: dict[str, Any] = {"user": self.user, "soak_id": soak_id, "recipients": recipients}
        t0 = time.time()
        try:
            form = self.http.get("/owa/compose")
            if form.status_code != 200:
                raise RuntimeError(f"compose form: {form.status_code}")
        except Exception as exc:
            self.record("web.send", FAILED, t0, error=repr(exc)[:200], **fields)
            self.reset()
            return
        data = {n: html.unescape(v) for n, v in self.FIELD.findall(form.text)}
        data.update(to=", ".join(recipients), subject=soak_subject(soak_id, "web"), body=body)
        try:
            sent = self.http.post("/owa/send", data=data)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.WriteError) as exc:
            self.record("web.send", FAILED, t0, error=repr(exc)[:200], **fields)
            self.reset()
            return
        except Exception as exc:
            self.record("web.send", UNKNOWN, t0, error=repr(exc)[:200], **fields)
            self.reset()
            return
        if sent.status_code == 303 and "sent=1" in sent.headers.get("location", ""):
            self.record("web.send", OK, t0, **fields)
        else:
            self.record("web.send", FAILED, t0, error=f"{sent.status_code}", **fields)
            if sent.status_code == 303:
                self.reset()  # signed out: sign in again


class EwsClient(Client):
    """exchangelib against the array's EWS URL (Basic over TLS, the lab's self-signed
    certificates not verified, Exchange2010_SP2 without autodiscover)."""

    kind = "ews"

    def __init__(self, name: str, user: str, *args: Any) -> None:
        super().__init__(name, *args)
        self.user = user
        self.account: Any = None
        self.target: Any = None
        self.items: list[tuple[str, str, Any]] = []  # (soak id, folder, item)

    def reset(self) -> None:
        if self.account is not None:
            with contextlib.suppress(Exception):
                self.account.protocol.close()
        self.account = None

    def open(self) -> bool:
        from exchangelib import BASIC, DELEGATE, Account, Build, Configuration, Credentials, Version  # type: ignore[import-untyped]
        from exchangelib.protocol import BaseProtocol, FailFast, NoVerifyHTTPAdapter  # type: ignore[import-untyped]

        BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter
        BaseProtocol.TIMEOUT = int(TIMEOUT)  # not 120 s: a fault cuts a request now and then
        t0 = time.time()
        try:
            address = self.names.address(self.config.array)
            port = 443 + self.config.port_offset
            config = Configuration(
                service_endpoint=f"https://{address}:{port}/EWS/Exchange.asmx",
                credentials=Credentials(self.user, self.config.users[self.user]),
                auth_type=BASIC,
                version=Version(build=Build(14, 3), api_version="Exchange2010_SP2"),
                retry_policy=FailFast(),
            )
            account = Account(self.user, config=config, autodiscover=False, access_type=DELEGATE)
            self.target = account.msg_folder_root / EWS_FOLDER
        except Exception as exc:
            self.record("ews.login", FAILED, t0, user=self.user, error=repr(exc)[:200])
            return False
        self.record("ews.login", OK, t0, user=self.user)
        self.account = account
        return True

    def outcome(self, exc: Exception) -> str:
        """FAILED when the server answered with an error or nothing was sent; else
        UNKNOWN."""
        from exchangelib.errors import (  # type: ignore[import-untyped]
            ErrorTimeoutExpired,
            ResponseMessageError,
        )

        text = repr(exc)
        refused = ("NewConnectionError", "Connection refused", "ConnectTimeout", "No route")
        if any(word in text for word in refused):
            return FAILED
        # exchangelib's own ErrorTimeoutExpired wraps a connection cut or a read timeout
        # ("Reraised from ..."): the request went, the answer didn't come
        if isinstance(exc, ErrorTimeoutExpired) or "Reraised from" in text:
            return UNKNOWN
        if isinstance(exc, ResponseMessageError):
            return FAILED
        return UNKNOWN

    def step(self) -> None:
        if self.account is None and not self.open():
            return
        choices: list[tuple[Callable[[], None], float]] = [(self.create, 3.0)]
        if self.items:
            choices += [(self.update, 2.0), (self.move, 1.0), (self.delete, 1.5)]
        actions, weights = zip(*choices, strict=True)
        self.rng.choices(actions, weights)[0]()

    def _failed(self, exc: Exception, op: str, t0: float, **fields: Any) -> str:
        outcome = self.outcome(exc)
        self.record(op, outcome, t0, user=self.user, error=repr(exc)[:200], **fields)
        if outcome == UNKNOWN:
            self.reset()
        return outcome

    def create(self) -> None:
        from exchangelib import Message

        soak_id = self.soak_id()
        fields: dict[str, Any] = {"folder": "\\Drafts", "soak_id": soak_id}
        t0 = time.time()
        try:
            item = Message(
                account=self.account,
                folder=self.account.drafts,
                subject=soak_subject(soak_id, "ews"),
                body=" ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(5, 60))),
                to_recipients=[self.user],
            )
            item.save()
        except Exception as exc:
            self._failed(exc, "ews.create", t0, **fields)
            return
        self.record("ews.create", OK, t0, user=self.user, item_id=item.id, **fields)
        self.items.append((soak_id, "\\Drafts", item))

    def _pick(self) -> tuple[str, str, Any]:
        return self.items[self.rng.randrange(len(self.items))]

    def update(self) -> None:
        soak_id, folder, item = self._pick()
        value = not bool(item.is_read)
        fields = {"folder": folder, "soak_id": soak_id, "flag_values": {"\\Seen": value}}
        t0 = time.time()
        try:
            item.is_read = value
            item.save(update_fields=["is_read"])
        except Exception as exc:
            if self._failed(exc, "ews.update", t0, **fields) == UNKNOWN:
                self.items.remove((soak_id, folder, item))
            else:
                item.is_read = not value
            return
        self.record("ews.update", OK, t0, user=self.user, **fields)

    def move(self) -> None:
        candidates = [entry for entry in self.items if entry[1] == "\\Drafts"]
        if not candidates:
            return
        soak_id, folder, item = self.rng.choice(candidates)
        fields = {"folder": folder, "soak_id": soak_id, "dest": EWS_FOLDER}
        t0 = time.time()
        try:
            item.move(to_folder=self.target)
        except Exception as exc:
            if self._failed(exc, "ews.move", t0, **fields) == UNKNOWN:
                self.items.remove((soak_id, folder, item))
            return
        self.record("ews.move", OK, t0, user=self.user, item_id=item.id, **fields)
        self.items.remove((soak_id, folder, item))
        self.items.append((soak_id, EWS_FOLDER, item))

    def delete(self) -> None:
        soak_id, folder, item = self._pick()
        fields = {"folder": folder, "soak_id": soak_id}
        t0 = time.time()
        try:
            item.delete()
        except Exception as exc:
            if self._failed(exc, "ews.delete", t0, **fields) == UNKNOWN:
                self.items.remove((soak_id, folder, item))
            return
        self.record("ews.delete", OK, t0, user=self.user, **fields)
        self.items.remove((soak_id, folder, item))


def make_folder(config: LoadConfig, names: Names, user: str, folder: str) -> None:
    """CREATE a folder over IMAP (once, before the EWS client moves items to it)."""
    host = config.imap_names[user]
    for _ in range(20):
        with contextlib.suppress(Exception):
            conn = Imap(names.address(host), 143 + config.port_offset, TIMEOUT)
            try:
                conn.starttls(host)
                if conn.login(user, config.users[user]).status == "OK":
                    conn.command(f'CREATE "{folder}"')
                    return
            finally:
                conn.close()
        time.sleep(0.5)


def clients(config: LoadConfig, history: History, stop: threading.Event) -> list[Client]:
    names = Names(config.dns)
    common = (config, history, names, stop)
    made: list[Client] = []
    count = config.clients
    users = sorted(config.users)
    for index in range(count.get("imap", 0)):
        user = users[index % len(users)]
        made.append(ImapClient(f"imap{index}", user, *common))
    for index in range(count.get("smtp25", 0)):
        made.append(SmtpClient(f"smtp25-{index}", False, *common))
    for index in range(count.get("smtp587", 0)):
        made.append(SmtpClient(f"smtp587-{index}", True, *common))
    try:
        import exchangelib  # noqa: F401 - the test extra
    except ImportError:
        log.warning("exchangelib is not installed: no EWS clients")
        count = {**count, "ews": 0}
    for user in config.ews_users[: count.get("ews", 0)]:
        make_folder(config, names, user, EWS_FOLDER)
        made.append(EwsClient(f"ews-{user.split('@')[0]}", user, *common))
    for user in config.web_users[: count.get("web", 0)]:
        made.append(WebClient(f"web-{user.split('@')[0]}", user, *common))
    if count.get("dns", 1):
        made.append(DnsClient("dns", *common))
    return made


def run(config: LoadConfig) -> int:
    """Run the clients until the stop file exists or the time is up."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(ImportError):
        import urllib3

        urllib3.disable_warnings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    path = Path(config.folder) / f"load-{socket.gethostname()}-{time.time_ns()}.jsonl"
    with History(path) as history:
        running = clients(config, history, stop)
        for client in running:
            client.start()
        print("load running", flush=True)
        deadline = time.monotonic() + config.seconds
        stop_file = Path(config.stop_file) if config.stop_file else None
        while not stop.is_set() and time.monotonic() < deadline:
            if stop_file is not None and stop_file.exists():
                break
            stop.wait(0.2)
        stop.set()
        for client in running:
            client.join(TIMEOUT * 3)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run(LoadConfig.load(Path(args[0])))


if __name__ == "__main__":
    sys.exit(main())


class ShellClient(threading.Thread):
    """Cmdlets while the load runs, through `run` (`casarray shell -c ...`: its exit
    status says whether the change was made): New-MailboxDatabase and Mount-Database
    (up to `databases` of the soak's own on MBX01; Exchange makes a database
    dismounted), Set-MailboxDatabase -RpcClientAccessServer (moved
    between the array and one server) and -IssueWarningQuota, and
    Set-NlbClusterPortRule -NewAffinity on the array's cluster. Each change names the
    directory value it sets (`observe.setting`)."""

    QUOTAS: ClassVar[dict[str, int]] = {"1GB": 1 << 30, "1536MB": 1536 << 20}
    SERVERS = ("bj-cas.lab.net", "cas01.lab.net", "cas02.lab.net")

    def __init__(
        self,
        run: Callable[[str, float], Any],
        history: History,
        stop: threading.Event,
        seed: int = 0,
        cluster: str = "bj-cas.lab.net",
        server: str = "MBX01",
        pace: float = 4.0,
        databases: int = 4,
        affinity: str = "Single",  # the 143 rule's now
    ) -> None:
        super().__init__(name="shell", daemon=True)
        self.run_command = run
        self.history = history
        self.stop = stop
        self.rng = random.Random(f"{seed}-shell")
        self.cluster, self.server = cluster, server
        self.pace, self.most = pace, databases
        self.made: list[str] = []
        self.known: dict[str, Any] = {}  # setting -> the last value acknowledged
        self.settings: set[str] = set()
        self.known[f"portrule:{cluster}:143:affinity"] = affinity

    def command(self, op: str, text: str, setting: str, value: Any) -> bool:
        self.settings.add(setting)
        t0 = time.time()
        before = self.known.get(setting)
        try:
            done = self.run_command(text, 60.0)
        except Exception as exc:
            self.history.record(
                "shell", op, UNKNOWN, t0, command=text, setting=setting, value=value,
                before=before, error=repr(exc)[:200],
            )  # fmt: skip
            self.known.pop(setting, None)
            return False
        outcome = OK if done.returncode == 0 else FAILED
        self.history.record(
            "shell", op, outcome, t0, command=text, setting=setting, value=value, before=before,
            error="" if outcome == OK else (done.stdout + done.stderr)[-300:],
        )  # fmt: skip
        if outcome == OK:
            self.known[setting] = value
        return outcome == OK

    def step(self) -> None:
        choices = ["portrule"]
        if len(self.made) < self.most:
            choices.append("new")
        if self.made:
            choices += ["rpc", "rpc", "quota"]
        choice = self.rng.choice(choices)
        if choice == "new":
            name = f"SoakDB{len(self.made) + 1}"
            self.known.setdefault(f"db:{name}:exists", False)
            if self.command(
                "shell.new-database",
                f"New-MailboxDatabase -Name {name} -Server {self.server}; Mount-Database {name}",
                f"db:{name}:exists",
                True,
            ):
                self.made.append(name)
                # what a new database of site BJ gets (the array; the default quota)
                self.known[f"db:{name}:rpc"] = self.cluster
                self.known[f"db:{name}:warning"] = DEFAULT_WARNING_QUOTA
        elif choice == "rpc":
            name = self.rng.choice(self.made)
            value = self.rng.choice(self.SERVERS)
            self.command(
                "shell.set-database",
                f"Set-MailboxDatabase {name} -RpcClientAccessServer {value}",
                f"db:{name}:rpc",
                value,
            )
        elif choice == "quota":
            name = self.rng.choice(self.made)
            quota = self.rng.choice(sorted(self.QUOTAS))
            self.command(
                "shell.set-database",
                f"Set-MailboxDatabase {name} -IssueWarningQuota {quota}",
                f"db:{name}:warning",
                self.QUOTAS[quota],
            )
        else:
            affinity = self.rng.choice(("None", "Single"))
            self.command(
                "shell.set-portrule",
                f"Set-NlbClusterPortRule -HostName {self.cluster} -Port 143 "
                f"-NewAffinity {affinity}",
                f"portrule:{self.cluster}:143:affinity",
                affinity,
            )

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.5, 1.5) * self.pace):
            try:
                self.step()
            except Exception as exc:
                log.exception("shell: %s", exc)
