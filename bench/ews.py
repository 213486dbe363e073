"""EWS benchmark: Exchange Web Services against IMAP on the same Client Access server,
the same mailbox, in the same run.

One organization (the lab's seed topology), one user's INBOX of --messages messages
(bench/imap.py's generator: plain text, multipart with attachments, encoded words; a
third \\Seen), served by one `casarray server run CAS01 --processes 1` (HTTPS and IMAP
with STARTTLS: Basic and LOGIN both need TLS on a real server), and
`casarray transport run MBX01` for sending. Each path is a client with one connection
that it keeps, written with the standard library only and reading answers as bytes (no
XML parsing beyond the ItemIds), so the figures are the server's:

- EWS read, shaped as exchangelib's `inbox.all()`: FindItem (IdOnly,
  IndexedPageItemView of 100 at the next offset) and GetItem of those 100 ids (IdOnly
  plus the envelope's properties, IsRead and Body as text), raw SOAP over one keep-alive
  HTTPS connection with Basic;
- IMAP read, its equivalent: UID FETCH of the next 100 UIDs (ENVELOPE FLAGS
  BODY.PEEK[TEXT]) in one selected session.

Both first read the folder once through (the first reading of each message by this
server process: EWS parses a message then and keeps what it read, `access.ews.summaries`,
as Dovecot keeps its index cache), then walk it page by page, wrapping around, for
--seconds, --rounds times in turn; the median round's messages/s is the figure the
goal is about: EWS >= 0.5x IMAP's messages/s. The first reading is shown beside it.
(IMAP's BODY[TEXT] carries the attachments too; EWS's Body is the text part only.)

Then sending, requests/s over one connection each: CreateItem (SendAndSaveCopy into
sentitems, a 2 KB text message to another mailbox, by properties as exchangelib sends
it) against SMTP submission (port 587, STARTTLS and AUTH as the same user, the same
message) in one session, and in a session per message (STARTTLS and AUTH each time:
the cost of the session set-up, which the Client Access server's submission to the Hub
Transport saves by keeping its sessions, `access.submission`). CreateItem is measured
only when casarray's EWS registers it.

    .venv/bin/python bench/ews.py
    .venv/bin/python bench/ews.py --messages 500 --seconds 3 --rounds 1   # quick

The exit status is 0 whether or not the goal is met (1 on an error).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import signal
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

# bench/http.py (the HTTP benchmark) would stand for the standard library's http here
_BENCH = (
    sys.path.pop(0)
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve()
    else None
)
import http.client  # noqa: E402

if _BENCH is not None:
    sys.path.insert(0, _BENCH)

import benchlib  # noqa: E402
from imap import make_messages  # noqa: E402

USER, PEER = "bench", "peer"
PASSWORD = "bench-password"
SERVER, HUB = "CAS01", "MBX01"
PAGE = 100
GOAL = 0.5
SOAP_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"'
    ' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">'
    '<soap:Header><t:RequestServerVersion Version="Exchange2010_SP2"/></soap:Header>'
    "<soap:Body>"
)
SOAP_TAIL = "</soap:Body></soap:Envelope>"
FIND = (
    '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
    "</m:ItemShape>"
    '<m:IndexedPageItemView MaxEntriesReturned="{count}" Offset="{offset}"'
    ' BasePoint="Beginning"/>'
    '<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>'
    "</m:FindItem>"
)
PROPERTIES = (
    "item:Subject",
    "message:From",
    "message:Sender",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:ReplyTo",
    "item:DateTimeSent",
    "item:DateTimeReceived",
    "message:InternetMessageId",
    "item:InReplyTo",
    "message:IsRead",
    "item:HasAttachments",
    "item:Size",
    "item:Body",
)
GET = (
    "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:BodyType>Text</t:BodyType>"
    "<t:AdditionalProperties>"
    + "".join(f'<t:FieldURI FieldURI="{uri}"/>' for uri in PROPERTIES)
    + "</t:AdditionalProperties></m:ItemShape><m:ItemIds>{ids}</m:ItemIds></m:GetItem>"
)
CREATE = (
    '<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:SavedItemFolderId>'
    '<t:DistinguishedFolderId Id="sentitems"/></m:SavedItemFolderId><m:Items><t:Message>'
    '<t:Subject>Bench {n}</t:Subject><t:Body BodyType="Text">{body}</t:Body>'
    "<t:ToRecipients><t:Mailbox><t:EmailAddress>{to}</t:EmailAddress></t:Mailbox>"
    "</t:ToRecipients></t:Message></m:Items></m:CreateItem>"
)
ITEM_ID = re.compile(rb'<t:ItemId Id="([^"]+)" ChangeKey="([^"]+)"')
BODY_TEXT = ("The quick brown fox jumps over the lazy dog, again and again. " * 32)[:2000]


def insecure_tls() -> ssl.SSLContext:
    """Loopback only: the server's own certificate, not checked."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# -- the servers ------------------------------------------------------------------------


@dataclass
class Org:
    home: Path
    url: str
    host: str
    https: int
    imap: int
    hub: str
    submission: int
    domain: str


def build(base: Path, messages: int) -> tuple[str, str, Path]:
    """The seed organization with USER's INBOX of `messages` and PEER's mailbox (cheap
    argon2 hashes: the figures are about the protocols); (url, domain, home)."""
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
        domain = directory.organization().default_domain
        cheap = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
        database = directory.databases.one("DB01")
        for alias, display in ((USER, "Bench User"), (PEER, "Peer User")):
            mailbox = directory.mailboxes.new(
                name=display, alias=alias, database="DB01", password_hash=cheap
            )
            box = open_mailbox(database, mailbox.guid)
            if alias == USER:
                for message in make_messages(messages):
                    flags = ("\\Seen",) if message.seen else ()
                    box.append("INBOX", message.data, flags, message.when)
        database_store(database).close()
    print(f"  {messages} messages stored in {time.perf_counter() - t0:.1f} s")
    return url, domain, home


def wait_status(
    read: Callable[[], dict[str, Any] | None],
    proc: subprocess.Popen[bytes],
    what: str,
    ready: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = read()
        if found and ready(found):
            return found
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within 60 s")


@contextlib.contextmanager
def servers(base: Path, messages: int) -> Iterator[Org]:
    from casarray.access.cas_process import read_status as cas_status
    from casarray.transport.transport_process import read_status as hub_status

    url, domain, home = build(base, messages)
    cli = [sys.executable, "-m", "casarray"]
    env = dict(os.environ, CASARRAY_HOME=str(home))
    hub = benchlib.spawn(
        [*cli, "transport", "run", HUB, "--directory", url, "--port", "25=0", "--port", "587=0"],
        base / "transport.log",
        env=env,
    )
    cas: subprocess.Popen[bytes] | None = None
    try:
        found = wait_status(
            lambda: hub_status(HUB, home),
            hub,
            "casarray transport run",
            lambda s: bool(s.get("ports", {}).get("587")),
        )
        submission = int(found["ports"]["587"])
        hub_host = str(found["address"])
        cas = benchlib.spawn(
            [
                *cli,
                "server",
                "run",
                SERVER,
                "--directory",
                url,
                "--processes",
                "1",
                "--imap-port",
                "0",
                "--imaps-port",
                "0",
                "--http-port",
                "0",
                "--https-port",
                "0",
            ],
            base / "cas.log",
            env=env,
        )
        status = wait_status(
            lambda: cas_status(SERVER, home), cas, "casarray server run", lambda s: "https" in s
        )
        host = str(status["host"])
        https, imap = int(str(status["https"])), int(str(status["imap"]))
        print(
            f"  {SERVER} on {host} (HTTPS {https}, IMAP {imap}); {HUB} on {hub_host}:{submission}"
        )
        yield Org(home, url, host, https, imap, hub_host, submission, domain)
    finally:
        if cas is not None:
            benchlib.stop_process(cas)
        benchlib.stop_process(hub)


# -- the clients ------------------------------------------------------------------------


class Ews:
    """One keep-alive HTTPS connection, Basic on every request."""

    def __init__(self, org: Org, login: str) -> None:
        self.conn = http.client.HTTPSConnection(org.host, org.https, context=insecure_tls())
        token = base64.b64encode(f"{login}:{PASSWORD}".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {token}",
            "Content-Type": "text/xml; charset=utf-8",
            "X-AnchorMailbox": login,
        }
        self.spent = {"FindItem": 0.0, "GetItem": 0.0}

    def call(self, body: str) -> bytes:
        payload = SOAP_HEAD + body + SOAP_TAIL
        try:
            self.conn.request("POST", "/EWS/Exchange.asmx", payload, self.headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed the idle connection (its keep-alive timeout) while the
            # other path ran: connect again, as a client does
            self.conn.close()
            self.conn.request("POST", "/EWS/Exchange.asmx", payload, self.headers)
            response = self.conn.getresponse()
        data = response.read()
        if response.status != 200 or b'ResponseClass="Error"' in data:
            raise RuntimeError(f"EWS answered {response.status}: {data[:600]!r}")
        return data

    def page(self, offset: int) -> int:
        t0 = time.perf_counter()
        found = self.call(FIND.format(count=PAGE, offset=offset))
        t1 = time.perf_counter()
        self.spent["FindItem"] += t1 - t0
        ids = ITEM_ID.findall(found)
        if not ids:
            return 0
        items = "".join(f'<t:ItemId Id="{i.decode()}" ChangeKey="{k.decode()}"/>' for i, k in ids)
        got = self.call(GET.format(ids=items))
        self.spent["GetItem"] += time.perf_counter() - t1
        count = got.count(b"<t:Message>") + got.count(b"<t:Message ")
        if count != len(ids):
            raise RuntimeError(f"GetItem answered {count} messages for {len(ids)} ids")
        return count

    def close(self) -> None:
        self.conn.close()


class Imap:
    """One IMAP session: STARTTLS, LOGIN, SELECT INBOX; reads answers as bytes up to the
    tagged one (literals counted, so their content can't end it early)."""

    def __init__(self, org: Org, login: str) -> None:
        raw = socket.create_connection((org.host, org.imap))
        self.file = raw.makefile("rwb")
        self.tag = 0
        self.file.readline()  # greeting
        self.command(b"STARTTLS")
        self.sock = insecure_tls().wrap_socket(raw, server_hostname=org.host)
        self.file = self.sock.makefile("rwb")
        self.command(f'LOGIN "{login}" "{PASSWORD}"'.encode())
        self.command(b"SELECT INBOX")
        uids = self.command(b"UID SEARCH ALL")
        line = next(x for x in uids.split(b"\r\n") if x.startswith(b"* SEARCH"))
        self.uids = [int(u) for u in line.split()[2:]]

    def command(self, text: bytes) -> bytes:
        self.tag += 1
        tag = b"b%d" % self.tag
        self.file.write(tag + b" " + text + b"\r\n")
        self.file.flush()
        out = []
        while True:
            line = self.file.readline()
            if not line:
                raise RuntimeError("the IMAP server closed the connection")
            out.append(line)
            literal = re.search(rb"\{(\d+)\}\r\n$", line)
            if literal:
                out.append(self.file.read(int(literal.group(1))))
                continue
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"IMAP answered {line!r}")
                return b"".join(out)

    def page(self, offset: int) -> int:
        chunk = self.uids[offset : offset + PAGE]
        if not chunk:
            return 0
        answer = self.command(
            b"UID FETCH %d:%d (ENVELOPE FLAGS BODY.PEEK[TEXT])" % (chunk[0], chunk[-1])
        )
        count = answer.count(b" FETCH (")
        if count != len(chunk):
            raise RuntimeError(f"UID FETCH answered {count} messages for {len(chunk)} UIDs")
        return count

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.command(b"LOGOUT")
        self.sock.close()


def read_rate(client: Ews | Imap, total: int, seconds: float) -> float:
    """Messages/s reading the folder a page at a time, wrapping around."""
    offset = done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        benchlib.check_stop()
        got = client.page(offset)
        done += got
        offset = offset + PAGE if offset + PAGE < total else 0
    return done / elapsed


def first_read(client: Ews | Imap, total: int) -> float:
    """Messages/s reading the whole folder once, a page at a time."""
    done = 0
    start = time.perf_counter()
    for offset in range(0, total, PAGE):
        benchlib.check_stop()
        done += client.page(offset)
    return done / (time.perf_counter() - start)


def submission_message(n: int, to: str, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Bench {n}"
    message.set_content(BODY_TEXT)
    return message


def send_rate(send: Callable[[int], None], seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        benchlib.check_stop()
        send(n)
        n += 1
    return n / elapsed


def create_item_registered() -> bool:
    import casarray.access.http  # noqa: F401 - the operations' table imports it first
    from casarray.access.ews.operations import OPERATIONS

    return "CreateItem" in OPERATIONS


# -- the run ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, benchlib.on_signal)

    with (
        benchlib.temporary(args.keep, "casarray-ews-bench-") as base,
        servers(base, args.messages) as org,
    ):
        login = f"{USER}@{org.domain}"
        peer = f"{PEER}@{org.domain}"
        ews, imap = Ews(org, login), Imap(org, login)
        total = len(imap.uids)
        # the first reading of every message by this server process: EWS parses it
        # then (`access.ews.summaries`), later readings write what it kept
        first = {name: first_read(client, total) for name, client in (("EWS", ews), ("IMAP", imap))}
        for name, rate in first.items():
            print(f"  first read: {name:4} {rate:8.0f} messages/s")
        ews.spent = dict.fromkeys(ews.spent, 0.0)
        rates: dict[str, list[float]] = {"EWS": [], "IMAP": []}
        for round_ in range(args.rounds):
            for name, client in (("EWS", ews), ("IMAP", imap)):
                rate = read_rate(client, total, args.seconds)
                rates[name].append(rate)
                print(f"  round {round_ + 1}: {name:4} read {rate:8.0f} messages/s")
        spent = dict(ews.spent)
        ews.close()
        imap.close()
        ews_read, imap_read = (statistics.median(rates[k]) for k in ("EWS", "IMAP"))

        sends: dict[str, float] = {}
        smtp = smtplib.SMTP(org.hub, org.submission, timeout=30)
        smtp.starttls(context=insecure_tls())
        smtp.login(login, PASSWORD)

        def submit(n: int) -> None:
            refused = smtp.send_message(submission_message(n, peer, login))
            if refused:
                raise RuntimeError(f"SMTP refused {refused}")

        sends["SMTP submission"] = send_rate(submit, args.seconds)
        smtp.quit()

        def submit_anew(n: int) -> None:  # what the CAS does for each CreateItem now
            with smtplib.SMTP(org.hub, org.submission, timeout=30) as one:
                one.starttls(context=insecure_tls())
                one.login(login, PASSWORD)
                one.send_message(submission_message(n, peer, login))

        sends["SMTP, a session per message"] = send_rate(submit_anew, args.seconds)
        create_note = ""
        if create_item_registered():
            client = Ews(org, login)
            body = BODY_TEXT

            def create(n: int) -> None:
                client.call(CREATE.format(n=n, body=body, to=peer))

            sends["EWS CreateItem"] = send_rate(create, args.seconds)
            client.close()
        else:
            create_note = "CreateItem is not registered in casarray's EWS yet: not measured"

    print()
    print(f"Reading {args.messages} messages, {PAGE} a page (median of {args.rounds} rounds)")
    print(f"  EWS  FindItem + GetItem        {ews_read:8.0f} messages/s")
    print(f"  IMAP UID FETCH (ENVELOPE ...)  {imap_read:8.0f} messages/s")
    ratio = ews_read / imap_read if imap_read else 0.0
    verdict = "met" if ratio >= GOAL else "MISSED"
    print(f"  ratio EWS/IMAP {ratio:.2f}x (goal >= {GOAL}x: {verdict})")
    cold = first["EWS"] / first["IMAP"] if first["IMAP"] else 0.0
    print(
        f"  first read of each message: EWS {first['EWS']:.0f}, IMAP {first['IMAP']:.0f} "
        f"messages/s, ratio {cold:.2f}x (no goal: EWS parses a message the first time)"
    )
    both = sum(spent.values()) or 1.0
    print(
        "  EWS time: "
        + ", ".join(f"{name} {100 * value / both:.0f}%" for name, value in spent.items())
    )
    print("Sending a 2 KB message to another mailbox, one client")
    for name, rate in sends.items():
        print(f"  {name:28} {rate:8.1f} requests/s")
    if "EWS CreateItem" in sends and sends["SMTP submission"]:
        ratio_send = sends["EWS CreateItem"] / sends["SMTP submission"]
        print(f"  ratio CreateItem/SMTP {ratio_send:.2f}x (no goal)")
    if create_note:
        print(f"  {create_note}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(1)
    except RuntimeError as exc:
        print(f"ews bench: {exc}", file=sys.stderr)
        sys.exit(1)
