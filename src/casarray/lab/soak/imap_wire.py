"""A small IMAP client for the soak, on a socket of its own so that it knows exactly
whether a command left: `NotSent` when the connection failed before the whole command
was handed to the kernel (the server can't have run it), `NoAnswer` when it failed
after (run or not: the outcome is unknown). Commands with a literal use LITERAL+ (one
write), which the Client Access server offers."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from dataclasses import dataclass, field

LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
CODE = re.compile(rb"\[([A-Z-]+)((?: [^\]]*)?)\]")


class NotSent(Exception):
    """The command never left whole: it was not run."""


class NoAnswer(Exception):
    """The command left, and its answer didn't come: run or not."""


@dataclass
class Answer:
    status: str  # OK, NO, BAD
    text: bytes  # the tagged line
    untagged: list[list[bytes]] = field(default_factory=list)  # each: line parts, literals

    def code(self, name: bytes) -> list[bytes] | None:
        """The arguments of response code `name` in the tagged line or an untagged one."""
        lines = [self.text] + [parts[0] for parts in self.untagged if parts]
        for line in lines:
            for found in CODE.finditer(line):
                if found.group(1) == name:
                    return found.group(2).split()
        return None


def unverified() -> ssl.SSLContext:
    """TLS without verification: the lab's servers serve self-signed certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Imap:
    def __init__(self, address: str, port: int = 143, timeout: float = 10.0) -> None:
        self.sock: socket.socket = socket.create_connection((address, port), timeout=timeout)
        self._buffer = b""
        self._tag = 0
        self.greeting = self._line()
        if not self.greeting.startswith(b"* OK"):
            self.close()
            raise NotSent(f"greeting {self.greeting!r}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- reading -------------------------------------------------------------------------

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._buffer += data

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line + b"\r\n"

    def _exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _response(self) -> list[bytes]:
        """One response: its first line, then each literal and the line that follows."""
        parts = [self._line()]
        while found := LITERAL.search(parts[-1]):
            parts.append(self._exact(int(found.group(1))))
            parts.append(self._line())
        return parts

    # -- commands ------------------------------------------------------------------------

    def command(self, text: str, literal: bytes | None = None) -> Answer:
        self._tag += 1
        tag = f"s{self._tag}".encode()
        data = tag + b" " + text.encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        data += b"\r\n"
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise NotSent(str(exc)) from exc
        untagged: list[list[bytes]] = []
        try:
            while True:
                parts = self._response()
                if parts[0].startswith(tag + b" "):
                    status = parts[0][len(tag) + 1 :].split(b" ", 1)[0].decode()
                    return Answer(status, parts[0], untagged)
                untagged.append(parts)
        except (OSError, ValueError) as exc:
            raise NoAnswer(str(exc)) from exc

    def starttls(self, server_name: str) -> None:
        answer = self.command("STARTTLS")
        if answer.status != "OK":
            raise NotSent(f"STARTTLS: {answer.text!r}")
        try:
            self.sock = unverified().wrap_socket(self.sock, server_hostname=server_name)
        except (OSError, ssl.SSLError) as exc:
            raise NotSent(f"TLS: {exc}") from exc

    def login(self, user: str, password: str) -> Answer:
        return self.command(f'LOGIN "{user}" "{password}"')
