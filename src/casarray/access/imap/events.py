"""What the IMAP session asks of its transport, as frozen dataclasses (as in h11): bytes
to send, a TLS upgrade or compression to start, IDLE beginning or ending (so the
transport polls), and closing the connection. The session never touches a socket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes for the client, complete response lines (CRLF included)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Upgrade the connection to TLS now; the tagged OK went out in a preceding Send.
    When the handshake is done the transport calls `ImapSession.tls_started()`."""


@dataclass(frozen=True, slots=True)
class Compress:
    """COMPRESS=DEFLATE (RFC 4978) starts now: the tagged OK went out uncompressed in a
    preceding Send; every byte after it, both ways, is a raw deflate stream. `pending`
    is what the client sent after the COMPRESS command in the same read, already
    compressed: the transport inflates it first."""

    pending: bytes = b""


@dataclass(frozen=True, slots=True)
class Idling:
    """The client entered (True) or left (False) IDLE, or set NOTIFY or ended it (RFC
    5465): while active, the transport calls `ImapSession.poll()` every ~200 ms when no
    command is running."""

    active: bool


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once everything sent before it is written."""


Event = Send | StartTLS | Compress | Idling | Close
