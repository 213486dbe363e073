"""SMTP replies with enhanced status codes (RFC 3463, RFC 2034).

Every reply the service sends after the greeting and EHLO carries an enhanced status
code. aiosmtpd's own replies (syntax errors, sequence errors) carry none, so
`enhance` adds the code their meaning calls for; replies that already have one are
left as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    status: str  # the enhanced status code, "5.1.1"
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def permanent(self) -> bool:
        return self.code >= 500


OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
USER_UNKNOWN = Reply(550, "5.1.1", "User unknown")
BAD_ADDRESS = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
RELAY_DENIED = Reply(550, "5.7.1", "Unable to relay")
UNROUTABLE = Reply(550, "5.4.4", "Unable to route: no send connector serves the domain")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
LOOP = Reply(554, "5.4.6", "Routing loop detected: too many Received headers")
LOOKUP_FAILED = Reply(451, "4.4.0", "The recipient can't be looked up now; try again later")
QUEUE_FAILED = Reply(451, "4.3.0", "The message can't be queued now; try again later")
INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage")  # the queue's disk
AUTH_THROTTLED = Reply(454, "4.7.0", "Too many failed logins; try again later")
TOO_MANY_AUTH_FAILURES = Reply(421, "4.7.0", "Too many failed authentication attempts")
TOO_MANY_BAD_RECIPIENTS = Reply(421, "4.7.0", "Too many invalid recipients")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_REQUIRED_TLS = Reply(538, "5.7.11", "Encryption required for requested authentication")
AUTH_NOT_OFFERED = Reply(503, "5.5.1", "Authentication is not offered on this connector")
NO_CONNECTOR = Reply(421, "4.3.2", "Service not available: no receive connector serves you")


def queued(queue_id: str) -> Reply:
    return Reply(250, "2.6.0", f"<{queue_id}> Queued mail for delivery")


_HAS_STATUS = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?:\s|$)")

# aiosmtpd's own replies: (code, the start of its text) -> enhanced code.
_BY_TEXT: tuple[tuple[str, str, str], ...] = (
    ("552", "Error: message size", "5.3.4"),
    ("552", "Error: Too much mail data", "5.3.4"),
    ("503", "Error: need", "5.5.1"),
    ("503", "Error: nested", "5.5.1"),
    ("503", "Error: send", "5.5.1"),
    ("503", "Already authenticated", "5.5.1"),
    ("500", "Line too long", "5.5.6"),
    ("500", "Command line too long", "5.5.6"),
    ("500", "Error: command", "5.5.1"),
    ("501", "Error: SMTPUTF8", "5.5.4"),
    ("501", "Error: BODY", "5.5.4"),
    ("555", "", "5.5.4"),
)
_BY_CODE = {
    "221": "2.0.0",
    "250": "2.0.0",
    "235": "2.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.5.0",
}


def enhance(reply: str) -> str:
    """`reply` (one line, without CRLF) with an enhanced status code after its code when
    it has none; 220, 334 and 354 replies are left alone (RFC 2034 gives them none)."""
    if len(reply) < 3 or not reply[:3].isdigit() or _HAS_STATUS.match(reply):
        return reply
    code, rest = reply[:3], reply[4:]
    separator = reply[3:4] or " "
    if code in {"220", "334", "354"} or separator == "-":
        return reply
    for known_code, start, status in _BY_TEXT:
        if code == known_code and rest.startswith(start):
            return f"{code}{separator}{status} {rest}".rstrip()
    fallback = _BY_CODE.get(code)
    if fallback is None:
        return reply
    return f"{code}{separator}{fallback} {rest}".rstrip()
