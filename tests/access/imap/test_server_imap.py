"""`casarray server run CAS01` as a real process, driven by real clients (imaplib,
IMAPClient, mutt): STARTTLS on the IMAP port and implicit TLS on the IMAPS port (the
generated certificate trusted through its PEM), LOGIN refused before STARTTLS, folders,
APPEND, SELECT, FETCH (BODYSTRUCTURE, ENVELOPE), SEARCH, STORE, COPY, MOVE, EXPUNGE,
IDLE, malformed commands, throttling and the connection log.

One server process for the module; each test has users of its own."""

from __future__ import annotations

import email.header
import imaplib
import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.access.imap.server_harness import PASSWORD, Lab, ServerProcess, make_lab

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path_factory.mktemp("imap-lab"), password_hash)
    yield lab
    lab.directory.close()


@pytest.fixture(scope="module")
def cas01(lab: Lab) -> Iterator[ServerProcess]:
    server = ServerProcess(lab, "CAS01").start()
    yield server
    assert server.stop() == 0
    server.close()


@pytest.fixture
def user(lab: Lab) -> str:
    """A new user on DB01 (whose RpcClientAccessServer is CAS01): their address."""
    return lab.add_user(f"user{next(_ids)}")


def multipart_message() -> bytes:
    """multipart/mixed: a multipart/alternative (text, HTML), a PDF and a PNG; the
    subject and the sender's name need encoded words."""
    msg = EmailMessage()
    msg["Subject"] = "Grüße aus 北京: the Q3 report"
    msg["From"] = "Zhāng Wěi <zhang.wei@lab.net>"
    msg["To"] = "Alice Wang <alice@lab.net>"
    msg["Cc"] = "bob@lab.net"
    msg["Date"] = format_datetime(datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    msg["Message-ID"] = "<q3-report@lab.net>"
    msg.set_content("Hello Alice,\n\nthe report is attached.\n")
    msg.add_alternative("<p>Hello Alice,</p><p>the report is attached.</p>", subtype="html")
    msg.add_attachment(
        b"%PDF-1.4\n" + bytes(range(256)) * 8,
        maintype="application",
        subtype="pdf",
        filename="report-Q3.pdf",
    )
    msg.add_attachment(
        b"\x89PNG\r\n\x1a\n" + b"\0" * 100, maintype="image", subtype="png", filename="chart.png"
    )
    return msg.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


def simple_message(subject: str, sender: str = "carol@lab.net", body: str = "hi") -> bytes:
    return (
        f"From: {sender}\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n"
        f"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


def decode(value: bytes | None) -> str:
    return str(email.header.make_header(email.header.decode_header((value or b"").decode())))


# -- TLS and login ---------------------------------------------------------------------


def test_starttls_then_login(cas01: ServerProcess, user: str) -> None:
    client = cas01.imap(starttls=False)
    assert b"STARTTLS" in client.welcome and b"LOGINDISABLED" in client.welcome
    assert b"CAS01.lab.net" in client.welcome
    client.starttls(ssl_context=cas01.tls_context())
    typ, data = client.capability()
    assert typ == "OK" and b"LOGINDISABLED" not in data[0] and b"STARTTLS" not in data[0]
    assert client.login(user, PASSWORD)[0] == "OK"
    assert client.logout()[0] == "BYE"


def test_login_refused_before_starttls(cas01: ServerProcess, user: str) -> None:
    client = cas01.imap(starttls=False)
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        client.login(user, PASSWORD)
    with pytest.raises(imaplib.IMAP4.error):
        client.authenticate("PLAIN", lambda _: f"\0{user}\0{PASSWORD}".encode())
    # the same connection may still upgrade and log in
    client.starttls(ssl_context=cas01.tls_context())
    assert client.login(user, PASSWORD)[0] == "OK"
    client.logout()


def test_implicit_tls_and_folders(cas01: ServerProcess, user: str) -> None:
    with cas01.imapclient(implicit=True) as client:
        client.login(user, PASSWORD)
        folders = {name: flags for flags, _delim, name in client.list_folders()}
        assert set(folders) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
        assert b"\\Sent" in folders["Sent"] and b"\\Trash" in folders["Trash"]
        client.create_folder("Projects/2026")
        assert "Projects/2026" in {name for _, _, name in client.list_folders()}
        assert client.folder_status("INBOX", ["MESSAGES", "UIDNEXT"])[b"MESSAGES"] == 0


def test_wrong_password(cas01: ServerProcess, user: str) -> None:
    client = cas01.imap()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(user, "not the password")
    assert client.login(user, PASSWORD)[0] == "OK"  # the session goes on
    client.logout()


# -- messages ------------------------------------------------------------------------


def test_append_select_fetch_structure_and_envelope(cas01: ServerProcess, user: str) -> None:
    raw = multipart_message()
    with cas01.imapclient() as client:
        client.login(user, PASSWORD)
        result = client.append("INBOX", raw, flags=[b"$Important"])
        assert b"APPENDUID" in result
        selected = client.select_folder("INBOX")
        assert selected[b"EXISTS"] == 1
        uid = client.search(["ALL"])[0]
        data = client.fetch([uid], ["BODYSTRUCTURE", "ENVELOPE", "RFC822.SIZE", "BODY.PEEK[]"])
        fetched = data[uid]
        assert fetched[b"BODY[]"] == raw
        assert fetched[b"RFC822.SIZE"] == len(raw)

        envelope = fetched[b"ENVELOPE"]
        assert decode(envelope.subject) == "Grüße aus 北京: the Q3 report"
        assert b"=?" in envelope.subject  # encoded words, as sent
        sender = envelope.from_[0]
        assert decode(sender.name) == "Zhāng Wěi"
        assert (sender.mailbox, sender.host) == (b"zhang.wei", b"lab.net")
        assert [(a.mailbox, a.host) for a in envelope.cc] == [(b"bob", b"lab.net")]
        assert envelope.message_id == b"<q3-report@lab.net>"
        assert envelope.date == datetime(2026, 11, 24, 9, 30, tzinfo=UTC).replace(tzinfo=None) or (
            envelope.date.utctimetuple()[:5] == (2026, 11, 24, 9, 30)
        )

        structure = fetched[b"BODYSTRUCTURE"]
        assert structure.is_multipart
        parts, subtype = structure[0], structure[1]
        assert subtype == b"mixed" and len(parts) == 3
        alternative = parts[0]
        assert alternative.is_multipart and alternative[1] == b"alternative"
        assert [(p[0], p[1]) for p in alternative[0]] == [(b"text", b"plain"), (b"text", b"html")]
        pdf, png = parts[1], parts[2]
        assert (pdf[0], pdf[1]) == (b"application", b"pdf")
        assert pdf[5] == b"base64"
        disposition = pdf[8]
        assert disposition[0].lower() == b"attachment"
        assert b"report-Q3.pdf" in disposition[1]
        assert (png[0], png[1]) == (b"image", b"png")
        # a part by its section number
        text = client.fetch([uid], ["BODY.PEEK[1.1]"])[uid][b"BODY[1.1]"]
        assert b"the report is attached" in text
        assert set(client.get_flags([uid])[uid]) - {b"\\Recent"} == {b"$Important"}


def test_search(cas01: ServerProcess, user: str) -> None:
    with cas01.imapclient() as client:
        client.login(user, PASSWORD)
        client.append("INBOX", simple_message("lunch on friday", "bob@lab.net"))
        client.append("INBOX", simple_message("budget 2027", "carol@lab.net", "numbers inside"))
        client.append("INBOX", multipart_message(), flags=[b"\\Seen"])
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        assert len(uids) == 3
        assert client.search(["FROM", "bob"]) == uids[:1]
        assert client.search(["SUBJECT", "budget"]) == uids[1:2]
        assert client.search(["BODY", "numbers"]) == uids[1:2]
        assert client.search(["UNSEEN"]) == uids[:2]
        assert client.search(["SEEN"]) == uids[2:]
        assert client.search(["LARGER", "1000"]) == uids[2:]
        assert client.search(["SUBJECT", "北京"], charset="UTF-8") == uids[2:]
        assert client.search(["NOT", "FROM", "bob", "UID", f"{uids[0]}:*"]) == uids[1:]


def test_store_copy_move_expunge(cas01: ServerProcess, user: str) -> None:
    with cas01.imapclient() as client:
        client.login(user, PASSWORD)
        for i in range(4):
            client.append("INBOX", simple_message(f"message {i}"))
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        client.add_flags(uids[:2], [b"\\Flagged", b"project"])
        assert client.search(["FLAGGED"]) == uids[:2]
        client.remove_flags(uids[:1], [b"\\Flagged"])
        flags = {uid: set(f) - {b"\\Recent"} for uid, f in client.get_flags(uids[:2]).items()}
        assert flags == {uids[0]: {b"project"}, uids[1]: {b"\\Flagged", b"project"}}
        client.copy(uids[:2], "Archive")
        client.move(uids[2:3], "Trash")
        assert client.folder_status("Archive", ["MESSAGES"])[b"MESSAGES"] == 2
        assert client.folder_status("Trash", ["MESSAGES"])[b"MESSAGES"] == 1
        client.delete_messages(uids[3:])
        expunged = client.expunge()
        assert client.search(["ALL"]) == uids[:2]
        assert expunged is not None
        assert client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 2
        client.select_folder("Archive")
        archived = client.fetch(
            client.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
        )
        subjects = sorted(d[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() for d in archived.values())
        assert subjects == [b"Subject: message 0", b"Subject: message 1"]


def test_idle_sees_a_message_appended_by_another_session(cas01: ServerProcess, user: str) -> None:
    with cas01.imapclient() as watcher, cas01.imapclient(implicit=False) as writer:
        watcher.login(user, PASSWORD)
        writer.login(user, PASSWORD)
        watcher.select_folder("INBOX")
        watcher.idle()
        time.sleep(0.3)
        writer.append("INBOX", simple_message("while you were idling"))
        responses = watcher.idle_check(timeout=5)  # pushed at once; 5 s only bounds the wait
        watcher.idle_done()
        assert (1, b"EXISTS") in responses


def test_notify_pushes_status_of_another_mailbox_between_commands(
    cas01: ServerProcess, user: str
) -> None:
    """NOTIFY (RFC 5465): no IDLE, no command; the change still arrives."""
    sock, reader = _raw_tls(cas01)
    reader.readline()  # type: ignore[attr-defined]
    sock.sendall(f'n0 LOGIN {user} "{PASSWORD}"\r\n'.encode())
    assert reader.readline().startswith(b"n0 OK")  # type: ignore[attr-defined]
    sock.sendall(b"n1 NOTIFY SET (mailboxes Archive (MessageNew MessageExpunge))\r\n")
    assert reader.readline() == b"n1 OK NOTIFY completed\r\n"  # type: ignore[attr-defined]
    with cas01.imapclient() as writer:
        writer.login(user, PASSWORD)
        writer.append("Archive", simple_message("for the archive"))
    line = reader.readline()  # type: ignore[attr-defined]
    assert line.startswith(b'* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY '), line
    sock.close()


def test_condstore_and_qresync_with_imapclient(cas01: ServerProcess, user: str) -> None:
    with cas01.imapclient() as client, cas01.imapclient() as other:
        client.login(user, PASSWORD)
        other.login(user, PASSWORD)
        assert client.enable("QRESYNC") == [b"QRESYNC"]
        for n in range(3):
            client.append("INBOX", simple_message(f"m{n}"))
        selected = client.select_folder("INBOX")
        modseq = selected[b"HIGHESTMODSEQ"]
        other.select_folder("INBOX")
        other.add_flags([2], [b"\\Flagged"])
        changed = client.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"])
        assert list(changed) == [2] and changed[2][b"MODSEQ"][0] > modseq
        assert b"\\Flagged" in changed[2][b"FLAGS"]


# -- robustness ----------------------------------------------------------------------


def _raw_tls(cas01: ServerProcess) -> tuple[socket.socket, object]:
    sock = cas01.tls_context().wrap_socket(
        socket.create_connection((cas01.host, cas01.imaps_port), timeout=10),
        server_hostname=cas01.host,
    )
    return sock, sock.makefile("rb")


def test_malformed_commands_get_bad_and_the_session_goes_on(
    cas01: ServerProcess, user: str
) -> None:
    sock, reader = _raw_tls(cas01)
    assert reader.readline().startswith(b"* OK")  # type: ignore[attr-defined]
    for line in (
        b"a1 FROBNICATE\r\n",
        b"a2 LOGIN\r\n",
        b"a3 FETCH 1:* (FLAGS\r\n",
        b"\r\n",
        b"* NOOP\r\n",
        b"a4 SELECT \x00\x01\xff\r\n",
    ):
        sock.sendall(line)
        answer = reader.readline()  # type: ignore[attr-defined]
        assert b"BAD" in answer.split(b" ", 2)[1], (line, answer)
    sock.sendall(f'a5 LOGIN "{user}" "{PASSWORD}"\r\n'.encode())
    assert reader.readline().startswith(b"a5 OK")  # type: ignore[attr-defined]
    sock.sendall(b"a6 FETCH x:y FLAGS\r\na7 NOOP\r\n")
    assert reader.readline().startswith(b"a6 BAD")  # type: ignore[attr-defined]
    assert reader.readline().startswith(b"a7 OK")  # type: ignore[attr-defined]
    sock.close()


def test_throttled_after_repeated_failures(cas01: ServerProcess, lab: Lab) -> None:
    victim = lab.add_user(f"victim{next(_ids)}")
    attacker = "127.0.0.77"
    for _ in range(5):
        client = cas01.imap(source=attacker)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(victim, "guess")
        client.logout()
    # the right password no longer helps, from anywhere: the user is throttled
    client = cas01.imap(source="127.0.0.78")
    with pytest.raises(imaplib.IMAP4.error, match=r"UNAVAILABLE.*try again in \d+ seconds"):
        client.login(victim, PASSWORD)
    client.logout()
    # nor does another account from the attacker's address
    other = lab.add_user(f"other{next(_ids)}")
    client = cas01.imap(source=attacker)
    with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
        client.login(other, PASSWORD)
    client.logout()
    # others elsewhere are not affected
    client = cas01.imap(source="127.0.0.79")
    assert client.login(other, PASSWORD)[0] == "OK"
    client.logout()


def test_connection_log(cas01: ServerProcess, user: str) -> None:
    client = cas01.imap(source="127.0.0.5")
    client.login(user, PASSWORD)
    client.logout()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        lines = [line for line in cas01.logs().splitlines() if " 127.0.0.5:" in line]
        if any(" close " in line for line in lines):
            break
        time.sleep(0.05)
    # "<time> INFO [w1] CAS01 #3 127.0.0.5:port <what> ...": the worker's mark, then
    # the connection's number; the connect itself is logged only at DEBUG
    words = [line.split()[3:] for line in lines if line.split()[2].startswith("[w")]
    kinds = [w[3] for w in words if w[1].startswith("#")]
    assert kinds == ["starttls", "close"], lines
    assert any(f"login '{user}' from 127.0.0.5: ok" in line for line in cas01.logs().splitlines())


# -- mutt ------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("mutt") is None or shutil.which("tmux") is None, reason="needs mutt and tmux"
)
def test_mutt_reads_the_inbox(cas01: ServerProcess, lab: Lab, tmp_path: Path) -> None:
    """mutt (Debian's, GnuTLS) opens the INBOX over imaps, trusting the server's PEM,
    and shows the subjects in its index (read off the tmux screen)."""
    address = lab.add_user(f"mutt{next(_ids)}")
    store = lab.mailbox_store(address)
    for subject in ("Quarterly numbers", "Lunch on Friday", "CAS array plan"):
        store.append("INBOX", simple_message(subject, "bob@lab.net"))
    rc = tmp_path / "muttrc"
    rc.write_text(
        f'set imap_user="{address}"\n'
        f'set imap_pass="{PASSWORD}"\n'
        f'set folder="imaps://{cas01.host}:{cas01.imaps_port}/"\n'
        'set spoolfile="+INBOX"\n'
        f'set ssl_ca_certificates_file="{cas01.certificate}"\n'
        f'set certificate_file="{tmp_path / "mutt-certs"}"\n'
        "set ssl_verify_host=yes\n"
        "set imap_passive=no\n"
        "set mail_check=60\n"
        "set timeout=60\n"
        "set sort=date\n"
        "set header_cache=\n"
        "set message_cachedir=\n"
        "set move=no\n"
        "set confirmappend=no\n"
    )
    session = f"casarray-mutt-{next(_ids)}-{int(time.time())}"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "160",
            "-y",
            "40",
            f"mutt -n -F {rc}",
        ],
        check=True,
        env={"TERM": "xterm", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    try:
        screen = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if "CAS array plan" in screen and "Quarterly numbers" in screen:
                break
            time.sleep(0.2)
        assert "Quarterly numbers" in screen, screen
        assert "Lunch on Friday" in screen and "CAS array plan" in screen, screen
        assert "INBOX" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    # mutt really talked to the server: its login is in the log
    assert f"login '{address}'" in cas01.logs()
