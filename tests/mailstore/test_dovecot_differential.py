"""Differential test of `casarray.mailstore.mime` against Dovecot.

Starts Debian's Dovecot (package dovecot-imapd) as this test's own process, in a
temporary folder, listening on 127.0.0.1 on a free port; APPENDs every sample message
of tests/mailstore/messages/ and compares, for each, Dovecot's ENVELOPE, BODYSTRUCTURE,
BODY, RFC822.SIZE and BODY[...] answers (whole message, HEADER, TEXT, HEADER.FIELDS,
HEADER.FIELDS.NOT, every part number with its .MIME, and .HEADER/.TEXT of encapsulated
messages) with ours. Both sides are parsed into nested Python values with a small IMAP
parser, so quoted-versus-literal choices do not matter; MIME tokens that IMAP compares
without regard to case (type, subtype, parameter names, encoding, disposition,
language) are compared in lower case.

Dovecot stores messages with CRLF line ends, so a bare-LF sample is compared with
`normalize_newlines(raw)` (the module counts octets of the bytes it is given).

The differences we accept are listed in KNOWN_DIFFERENCES (and test_part_of_a_leaf),
each with the reason; a listed difference that disappears fails the test, so the list
stays true. Dovecot is stopped at the end; nothing is left running.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from casarray.mailstore.mime import cached_parts, fetch_section, normalize_newlines, to_wire

MESSAGES = Path(__file__).parent / "messages"
SAMPLES = sorted(p.name for p in MESSAGES.glob("*.eml"))
PACKAGE_HINT = (
    "Dovecot (/usr/sbin/dovecot) was not found: install the Debian package "
    "dovecot-imapd (apt-get install dovecot-imapd) to run the Dovecot differential test."
)
PASSWORD = "differential"
FIELDS = "DATE FROM TO CC SUBJECT MESSAGE-ID CONTENT-TYPE X-NOT-THERE"
FIELDS_NOT = "RECEIVED SUBJECT CONTENT-TYPE"

# (sample, item) -> why Dovecot's answer differs and ours is the one we keep.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("25_invalid_content_type.eml", "BODYSTRUCTURE"): (
        'Dovecot reports "Content-Type: text" as ("text" "") and ";;;" as ("" ""); '
        "RFC 2045 section 5.2 recommends text/plain; charset=us-ascii for a "
        "syntactically invalid Content-Type, and an empty subtype confuses clients."
    ),
    ("25_invalid_content_type.eml", "BODY"): "as BODYSTRUCTURE (invalid Content-Type)",
    ("21_rfc822_base64_and_qp.eml", "BODYSTRUCTURE"): (
        "part 1 is a message/rfc822 whose encapsulated message is a header without a "
        "blank line, ended by the next delimiter. Dovecot gives the CRLF before that "
        "delimiter to the delimiter when it reports the encapsulated header (1.HEADER) "
        "but still counts it in the part (30 octets, 1 line, and BODY[1] ends with "
        "it). RFC 2046 gives that CRLF to the delimiter, as Dovecot does everywhere "
        "else: 28 octets, 0 lines."
    ),
    ("21_rfc822_base64_and_qp.eml", "BODY"): "as BODYSTRUCTURE (CRLF before a delimiter)",
    ("21_rfc822_base64_and_qp.eml", "BODY[1]"): "as BODYSTRUCTURE (CRLF before a delimiter)",
}


# -- a small IMAP response parser --------------------------------------------------


class _Reader:
    """Parses IMAP data (atoms, numbers, NIL, quoted strings, literals, lists) into
    None / int / bytes / list; atoms with [...] (BODY[HEADER.FIELDS (A B)]) stay whole."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def values(self) -> list:
        out = []
        while True:
            self.skip()
            if self.i >= len(self.data):
                return out
            out.append(self.value())

    def skip(self) -> None:
        while self.i < len(self.data) and self.data[self.i] in b" \r\n":
            self.i += 1

    def value(self) -> object:
        self.skip()
        data = self.data
        c = data[self.i : self.i + 1]
        if c == b"(":
            self.i += 1
            items = []
            while True:
                self.skip()
                if data[self.i : self.i + 1] == b")":
                    self.i += 1
                    return items
                if self.i >= len(data):
                    raise ValueError("unbalanced list")
                items.append(self.value())
        if c == b'"':
            out = bytearray()
            self.i += 1
            while data[self.i : self.i + 1] != b'"':
                if self.i >= len(data):
                    raise ValueError("unterminated quoted string")
                if data[self.i] == 0x5C:
                    self.i += 1
                out.append(data[self.i])
                self.i += 1
            self.i += 1
            return bytes(out)
        if c == b"{":
            close = data.index(b"}", self.i)
            n = int(data[self.i + 1 : close].rstrip(b"+"))
            start = close + 1
            if data[start : start + 2] != b"\r\n":
                raise ValueError("literal without CRLF")
            self.i = start + 2 + n
            return data[start + 2 : self.i]
        start = self.i
        depth = 0
        while self.i < len(data):
            ch = data[self.i]
            if ch == 0x5B:
                depth += 1
            elif ch == 0x5D:
                depth -= 1
            elif depth == 0 and ch in b" ()\r\n":
                break
            self.i += 1
        atom = data[start : self.i]
        if not atom:
            raise ValueError(f"unexpected {c!r} at {start}")
        if atom == b"NIL":
            return None
        return int(atom) if atom.isdigit() else atom


def parse_imap(data: bytes) -> object:
    values = _Reader(data).values()
    assert len(values) == 1, values
    return values[0]


def _low(value: object) -> object:
    return value.lower() if isinstance(value, bytes) else value


def _params(params: object) -> object:
    """Names in lower case; charset values too (RFC 2046: charset names ignore case;
    Dovecot answers a plain us-ascii 7bit text part from a cache flag, in lower case)."""
    if not isinstance(params, list):
        return params
    out = [_low(v) if k % 2 == 0 else v for k, v in enumerate(params)]
    for k in range(0, len(out) - 1, 2):
        if out[k] == b"charset":
            out[k + 1] = _low(out[k + 1])
    return out


def _disposition(dsp: object) -> object:
    if not isinstance(dsp, list):
        return dsp
    return [_low(dsp[0]), _params(dsp[1]), *dsp[2:]]


def _language(lang: object) -> object:
    return [_low(x) for x in lang] if isinstance(lang, list) else _low(lang)


def _extension(ext: list) -> list:
    """body-fld-dsp, body-fld-lang, body-fld-loc (what follows is left alone)."""
    out = list(ext)
    if out:
        out[0] = _disposition(out[0])
    if len(out) > 1:
        out[1] = _language(out[1])
    return out


def normalise_body(body: list) -> list:
    """A parsed BODY / BODYSTRUCTURE with case-insensitive tokens lowered."""
    if isinstance(body[0], list):
        k = 0
        children = []
        while k < len(body) and isinstance(body[k], list):
            children.append(normalise_body(body[k]))
            k += 1
        rest = body[k:]
        out = [*children, _low(rest[0])]
        if len(rest) > 1:
            out += [_params(rest[1]), *_extension(rest[2:])]
        return out
    kind, subtype = _low(body[0]), _low(body[1])
    out = [kind, subtype, _params(body[2]), body[3], body[4], _low(body[5]), body[6]]
    k = 7
    if kind == b"text":
        out.append(body[7])
        k = 8
    elif (kind, subtype) == (b"message", b"rfc822"):
        out += [body[7], normalise_body(body[8]), body[9]]
        k = 10
    if len(body) > k:
        out += [body[k], *_extension(body[k + 1 :])]
    return out


# -- part numbers from a BODYSTRUCTURE ------------------------------------------------


def _is_multipart(body: list) -> bool:
    return isinstance(body[0], list)


def _is_message(body: list) -> bool:
    return not _is_multipart(body) and (_low(body[0]), _low(body[1])) == (b"message", b"rfc822")


def _children(body: list) -> list[list]:
    """The parts of a multipart body: its leading lists."""
    children = []
    for b in body:
        if not isinstance(b, list):
            break
        children.append(b)
    return children


def message_paths(body: list, prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(part number, is message/rfc822) of every part of a message with this body."""
    if _is_multipart(body):
        for k, child in enumerate(_children(body), 1):
            yield from _entity_paths(child, f"{prefix}{k}")
    else:
        yield from _entity_paths(body, f"{prefix}1")


def _entity_paths(body: list, path: str) -> Iterator[tuple[str, bool]]:
    yield path, _is_message(body)
    if _is_multipart(body):
        for k, child in enumerate(_children(body), 1):
            yield from _entity_paths(child, f"{path}.{k}")
    elif _is_message(body):
        yield from message_paths(body[8], f"{path}.")


# -- Dovecot ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dovecot:
    process: subprocess.Popen
    folder: Path
    port: int

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _live_group_members(pgid: int) -> list[int]:
    """The processes of a process group that are not zombies (Linux /proc; elsewhere:
    whether the group still exists at all)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _config(folder: Path, port: int, version: str) -> str:
    home = folder / "home"
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("nobody")
        login_user, internal_user, internal_group = "dovenull", "dovecot", "dovecot"
    else:  # everything runs as the user running the tests
        mail_user = pwd.getpwuid(os.geteuid())
        login_user = internal_user = mail_user.pw_name
        internal_group = grp.getgrgid(mail_user.pw_gid).gr_name
    # without root, no chroot() for the login and anvil processes
    chroot = "" if os.geteuid() == 0 else "  chroot =\n"
    home.mkdir()
    os.chown(home, mail_user.pw_uid, mail_user.pw_gid)
    uid, gid = mail_user.pw_uid, mail_user.pw_gid
    common = f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
ssl = no
listen = 127.0.0.1
protocols = imap
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {min(uid, 500)}
"""
    if version.startswith("2.3") or version.startswith("2.2"):
        return (
            common
            + f"""
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{home}/Maildir
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}
}}
service anvil {{
{chroot}}}
service imap-login {{
{chroot}  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )
    # Dovecot 2.4 renamed much of the configuration (untested here: Debian 12 has 2.3).
    return (
        "dovecot_config_version = 2.4.0\ndovecot_storage_version = 2.4.0\n"
        + common
        + f"""
auth_allow_cleartext = yes
auth_mechanisms = plain
mail_driver = maildir
mail_path = {home}/Maildir
passdb static {{
  password = {PASSWORD}
}}
userdb static {{
  fields {{
    uid = {uid}
    gid = {gid}
    home = {home}
  }}
}}
service anvil {{
{chroot}}}
service imap-login {{
{chroot}  inet_listener imap {{
    port = {port}
  }}
}}
"""
    )


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(binary):
        if os.environ.get("CI"):
            pytest.fail(PACKAGE_HINT)
        pytest.skip(PACKAGE_HINT)
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="casarray-dovecot-"))
    folder.chmod(0o755)  # the login and mail processes run as other users
    port = _free_port()
    conf = folder / "dovecot.conf"
    conf.write_text(_config(folder, port, version))
    process = subprocess.Popen(
        [binary, "-F", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: stopped as a whole below
    )
    server = Dovecot(process, folder, port)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                pytest.fail(f"Dovecot {version} did not start: {err}\n{server.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Dovecot {version} did not listen on {port}\n{server.log()}")
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        # anything of its process group that outlived the master
        for _ in range(100):
            if not _live_group_members(process.pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.05)
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


def _raw(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


@pytest.fixture(scope="module")
def imap(dovecot: Dovecot) -> Iterator[tuple[imaplib.IMAP4, dict[str, bytes]]]:
    """A logged-in session with every sample appended: (session, name -> sequence)."""
    client = imaplib.IMAP4("127.0.0.1", dovecot.port)
    try:
        client.login("tester", PASSWORD)
        client.select("INBOX")
        numbers: dict[str, bytes] = {}
        for name in SAMPLES:
            typ, data = client.append("INBOX", None, None, _raw(name))
            assert typ == "OK", (name, data, dovecot.log())
            numbers[name] = str(len(numbers) + 1).encode()
        yield client, numbers
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def fetch(client: imaplib.IMAP4, number: bytes, items: str) -> dict[str, object]:
    """FETCH `items` of one message: {item name as Dovecot echoes it: value}."""
    typ, data = client.fetch(number.decode(), items)
    assert typ == "OK", data
    response = b""
    for piece in data:
        if isinstance(piece, tuple):
            response += piece[0] + b"\r\n" + piece[1]
        else:
            response += piece
    parsed = _Reader(response).values()
    assert parsed[0] == int(number), parsed
    pairs = parsed[1]
    assert isinstance(pairs, list)
    return {pairs[k].decode().upper(): pairs[k + 1] for k in range(0, len(pairs), 2)}


def _sections(structure: list) -> list[str]:
    sections = [
        "",
        "HEADER",
        "TEXT",
        f"HEADER.FIELDS ({FIELDS})",
        f"HEADER.FIELDS.NOT ({FIELDS_NOT})",
    ]
    for path, is_message in message_paths(structure):
        sections += [path, f"{path}.MIME"]
        if is_message:
            sections += [f"{path}.HEADER", f"{path}.TEXT", f"{path}.HEADER.FIELDS (SUBJECT FROM)"]
    sections += ["99", "1.99"]
    return sections


@pytest.mark.parametrize("name", SAMPLES)
def test_same_answers_as_dovecot(imap: tuple[imaplib.IMAP4, dict[str, bytes]], name: str) -> None:
    client, numbers = imap
    raw = normalize_newlines(_raw(name))
    theirs = fetch(client, numbers[name], "(RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)")
    ours = cached_parts(raw)
    compared = {
        "RFC822.SIZE": (theirs["RFC822.SIZE"], len(raw)),
        "ENVELOPE": (theirs["ENVELOPE"], parse_imap(to_wire(ours.envelope))),
        "BODYSTRUCTURE": (
            normalise_body(theirs["BODYSTRUCTURE"]),  # type: ignore[arg-type]
            normalise_body(parse_imap(to_wire(ours.bodystructure))),  # type: ignore[arg-type]
        ),
        "BODY": (
            normalise_body(theirs["BODY"]),  # type: ignore[arg-type]
            normalise_body(parse_imap(to_wire(ours.body))),  # type: ignore[arg-type]
        ),
    }
    sections = _sections(theirs["BODYSTRUCTURE"])  # type: ignore[arg-type]
    items = " ".join(f"BODY.PEEK[{s}]" for s in sections)
    answers = fetch(client, numbers[name], f"({items})")
    for section in sections:
        key = f"BODY[{section}]".upper()
        value = answers[key]
        compared[key] = (b"" if value is None else value, fetch_section(raw, section))
    problems = []
    for item, (dovecot_value, our_value) in compared.items():
        known = KNOWN_DIFFERENCES.get((name, item))
        if known:
            if dovecot_value == our_value:
                problems.append(f"{item}: listed as a known difference but now equal")
            continue
        if dovecot_value != our_value:
            problems.append(f"{item}:\n  dovecot: {dovecot_value!r}\n  ours:    {our_value!r}")
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_part_of_a_leaf(imap: tuple[imaplib.IMAP4, dict[str, bytes]]) -> None:
    """Accepted difference: Dovecot answers BODY[1.1] of a multipart whose part 1 is a
    text part with that part's body, as if a leaf were its own part 1. RFC 3501 gives
    a non-multipart *message* a part 1, not a body part inside a multipart, and Dovecot
    itself answers "" for 1.1 of a single-part message; we answer "" in both cases."""
    client, numbers = imap
    name = "04_alternative.eml"
    raw = _raw(name)
    theirs = fetch(client, numbers[name], "(BODY.PEEK[1.1] BODY.PEEK[1])")
    assert theirs["BODY[1.1]"] == theirs["BODY[1]"] == fetch_section(raw, "1") != b""
    assert fetch_section(raw, "1.1") == b""


def test_bare_lf_is_stored_with_crlf(imap: tuple[imaplib.IMAP4, dict[str, bytes]]) -> None:
    """Why the bare-LF sample is compared after normalize_newlines: Dovecot hands out
    (and counts) CRLF line ends for a message APPENDed with bare LF."""
    client, numbers = imap
    name = "11_bare_lf.eml"
    raw = _raw(name)
    assert b"\r\n" not in raw
    theirs = fetch(client, numbers[name], "(RFC822.SIZE BODY.PEEK[])")
    assert theirs["BODY[]"] == normalize_newlines(raw)
    assert theirs["RFC822.SIZE"] == len(raw) + raw.count(b"\n")
