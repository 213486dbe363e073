"""NTLM for the HTTP services (EWS, Autodiscover): the server's side of the handshake.

Exchange's clients log in with Windows authentication: Outlook, exchangelib's default
(requests-ntlm), DavMail and Thunderbird send `Authorization: NTLM <token>` (or the
same raw NTLM tokens under `Negotiate`, as Windows does when it can't use Kerberos)
after a 401 offering it. The handshake is three messages (MS-NLMP, MS-NTHT):

1. the client's request carries NEGOTIATE; we answer 401 with CHALLENGE (8 random
   bytes and our names);
2. the client repeats the request with AUTHENTICATE: its user and domain names and
   an NTLMv2 response, an HMAC-MD5 keyed by the NT hash of its password over our
   challenge; we compute the same from the NT hash the directory keeps
   (`directory.nt_hashes`) and compare.

This module is the protocol core, sans-IO: `NtlmAcceptor` takes tokens and returns
tokens or a verdict; `Handshakes` keeps the acceptors between the two requests. The
HTTP flow (the 401s, the directory, the lockout) is `context.authenticate`.

Built on pyspnego's NTLM message codecs (`spnego._ntlm_raw`), not on its acceptor:
`spnego.server("ntlm")` looks every user up in one flat file named by the process-wide
environment variable NTLM_USER_FILE, read when AUTHENTICATE arrives; giving it one
user's hash per handshake would mean writing every user's NT hash to a file on each
Client Access server, or patching its private lookup functions for the whole process.
Here the NT hash is an argument of `verify`, looked up for the user AUTHENTICATE
names; the check is MS-NLMP 3.3.2's NTLMv2 computation with pyspnego's message codec,
compared in constant time, and the MIC over the three messages is checked when the
client says it sent one. pyspnego's own initiator is the client in the tests.

What is refused: NTLMv1 and LM responses (a 24-byte response; crackable, and off in
Exchange deployments hardened to LmCompatibilityLevel 5), anonymous NTLM, and a
Negotiate token that isn't raw NTLM (SPNEGO, i.e. Kerberos: casarray has no KDC; the
client falls back to NTLM or Basic, which the same 401 offers). Channel bindings
(Extended Protection) are not checked, as Exchange 2010's default (None) doesn't.

Where the state lives between the two requests: per TCP connection, in this process.
NTLM authenticates a connection: a client sends NEGOTIATE and AUTHENTICATE on the same
keep-alive connection (MS-NTHT 2.2), and uvicorn keeps a connection in the worker
process that accepted it, and the array's balancer (NLB's conntrack, or its proxy)
keeps a TCP connection on one member for its life. The key is the connection's
addresses and ports as the ASGI scope gives them; an entry lives `ttl` seconds (30)
and is taken by the first AUTHENTICATE (one try per challenge: a replay or a second
guess needs a new challenge). A cache keyed by the challenge would serve as well on
one process but not better: AUTHENTICATE doesn't carry the challenge in the clear, so
the connection would still be the key. A port reused by a new connection within the
ttl finds a stale challenge at worst and fails that one handshake: the entry holds no
authority, only a challenge. A login is not kept on the connection after the
handshake (IIS's authPersistSingleRequest=false would): ASGI gives no handle on the
connection itself, and a key of addresses and ports could be inherited by a stranger
behind the same NAT. A client repeats the handshake per request; the directory's
answer for the user is cached meanwhile (`credentials.CredentialCache`).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from spnego._ntlm_raw.crypto import rc4k
from spnego._ntlm_raw.messages import (
    Authenticate,
    AvFlags,
    AvId,
    Challenge,
    FileTime,
    Negotiate,
    NegotiateFlags,
    NTClientChallengeV2,
    TargetInfo,
    Version,
)

from casarray.errors import CasarrayError

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE_MESSAGE = 1
CHALLENGE_MESSAGE = 2
AUTHENTICATE_MESSAGE = 3
# Windows Server 2008 R2 SP1, where Exchange 2010 SP3 runs.
SERVER_VERSION = (6, 1, 7601)
MAX_TOKEN = 16 * 1024  # NEGOTIATE and AUTHENTICATE are a few hundred bytes


class NtlmError(CasarrayError):
    """A token we can't accept; the message says what was wrong with it."""


@dataclass(frozen=True)
class Target:
    """Who we say we are in CHALLENGE: the domain and this server, in NetBIOS and DNS
    form (`LAB`, `CAS01`, `lab.net`, `CAS01.lab.net`)."""

    netbios_domain: str
    netbios_computer: str
    dns_domain: str
    dns_computer: str

    @classmethod
    def of(cls, ad_domain: str, server_name: str, server_fqdn: str) -> Target:
        netbios = ad_domain.split(".", 1)[0].upper()[:15]
        return cls(netbios, server_name.upper()[:15], ad_domain.lower(), server_fqdn.lower())


@dataclass(frozen=True)
class NtlmLogin:
    """Who AUTHENTICATE says is logging in."""

    user: str  # "alice" or "alice@lab.net" (the directory's login)
    domain: str  # "LAB", "lab.net" or "" (with a user@domain user)
    workstation: str

    @property
    def display(self) -> str:
        return f"{self.domain}\\{self.user}" if self.domain else self.user


def decode_token(value: str) -> bytes:
    """The bytes of an `Authorization: NTLM <base64>` token; NtlmError if it isn't."""
    try:
        token = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise NtlmError("The NTLM token is not base64.") from None
    if len(token) > MAX_TOKEN:
        raise NtlmError(f"The NTLM token is longer than {MAX_TOKEN} bytes.")
    return token


def message_type(token: bytes) -> int | None:
    """1, 2 or 3 for an NTLM message, None for anything else (SPNEGO, say)."""
    if len(token) < 12 or not token.startswith(SIGNATURE):
        return None
    kind: int = struct.unpack_from("<I", token, 8)[0]
    return kind


def _hmac_md5(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.md5).digest()


class NtlmAcceptor:
    """One handshake, server side: `challenge(negotiate)` answers the first message,
    `login(authenticate)` reads the third, `verify(nt_hash)` checks it once."""

    def __init__(
        self,
        target: Target,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.target = target
        self.clock = clock
        self.random = random
        self._negotiate = b""
        self._challenge = b""
        self._server_challenge = b""
        self._authenticate: Authenticate | None = None
        self._raw_authenticate = b""
        self._verified = False

    def challenge(self, negotiate: bytes) -> bytes:
        """CHALLENGE for the client's NEGOTIATE."""
        if self._challenge:
            raise NtlmError("This NTLM handshake has already sent its challenge.")
        if message_type(negotiate) != NEGOTIATE_MESSAGE:
            raise NtlmError("The first NTLM message is not a NEGOTIATE message.")
        try:
            flags = Negotiate.unpack(negotiate).flags
        except (ValueError, struct.error) as exc:
            raise NtlmError(f"The NTLM NEGOTIATE message is malformed: {exc}") from None
        flags |= (
            NegotiateFlags.request_target
            | NegotiateFlags.ntlm
            | NegotiateFlags.always_sign
            | NegotiateFlags.target_info
            | NegotiateFlags.target_type_domain
        )
        flags &= ~NegotiateFlags.target_type_server
        if flags & NegotiateFlags.unicode:
            flags &= ~NegotiateFlags.oem
        elif not flags & NegotiateFlags.oem:
            raise NtlmError("The NTLM NEGOTIATE message asks for neither Unicode nor OEM text.")
        if flags & NegotiateFlags.extended_session_security:
            flags &= ~NegotiateFlags.lm_key
        info = TargetInfo()
        info[AvId.nb_domain_name] = self.target.netbios_domain
        info[AvId.nb_computer_name] = self.target.netbios_computer
        info[AvId.dns_domain_name] = self.target.dns_domain
        info[AvId.dns_computer_name] = self.target.dns_computer
        info[AvId.dns_tree_name] = self.target.dns_domain
        info[AvId.timestamp] = FileTime.fromtimestamp(self.clock(), tz=datetime.UTC)
        version = Version(*SERVER_VERSION) if flags & NegotiateFlags.version else None
        self._server_challenge = self.random(8)
        message = Challenge(
            flags,
            self._server_challenge,
            target_name=self.target.netbios_domain,
            target_info=info,
            version=version,
        )
        self._negotiate = negotiate
        self._challenge = message.pack()
        return self._challenge

    def login(self, authenticate: bytes) -> NtlmLogin:
        """Who the client's AUTHENTICATE names (before any check); NtlmError for a
        message we refuse whatever the password (malformed, anonymous, NTLMv1/LM)."""
        if not self._challenge:
            raise NtlmError("NTLM AUTHENTICATE came before a challenge.")
        if self._authenticate is not None:
            raise NtlmError("This NTLM handshake was already used.")
        if message_type(authenticate) != AUTHENTICATE_MESSAGE:
            raise NtlmError("The NTLM message is not an AUTHENTICATE message.")
        try:
            message = Authenticate.unpack(authenticate)
            user = message.user_name or ""
            domain = message.domain_name or ""
            workstation = message.workstation or ""
            response = message.nt_challenge_response or b""
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            raise NtlmError(f"The NTLM AUTHENTICATE message is malformed: {exc}") from None
        if not user:
            raise NtlmError("Anonymous NTLM logins are not accepted.")
        if len(response) <= 24:
            raise NtlmError("NTLMv1 and LM responses are not accepted; NTLMv2 is required.")
        if "\\" in user and not domain:  # DOMAIN\user typed into the user field
            domain, user = user.split("\\", 1)
        self._authenticate = message
        self._raw_authenticate = authenticate
        return NtlmLogin(user=user, domain=domain, workstation=workstation)

    def verify(self, nt_hash: bytes) -> bool:
        """Whether AUTHENTICATE proves knowledge of `nt_hash` (NTLMv2, and the MIC
        when the client sent one). Once per handshake."""
        message = self._authenticate
        if message is None or self._verified:
            raise NtlmError("This NTLM handshake has nothing (more) to verify.")
        self._verified = True
        response = message.nt_challenge_response or b""
        user = message.user_name or ""
        domain = message.domain_name or ""
        # NTOWFv2 with the names exactly as the client sent them (it keyed its HMAC so).
        response_key = _hmac_md5(nt_hash, (user.upper() + domain).encode("utf-16-le"))
        proof = _hmac_md5(response_key, self._server_challenge + response[16:])
        if not hmac.compare_digest(proof, response[:16]):
            return False
        try:
            pairs = NTClientChallengeV2.unpack(response[16:]).av_pairs
        except (ValueError, struct.error):
            return False
        if not int(pairs.get(AvId.flags, 0)) & AvFlags.mic:
            return True
        mic = message.mic
        if mic is None:
            return False
        message.mic = b"\x00" * 16
        signed = self._negotiate + self._challenge + message.pack()
        message.mic = mic
        # The session key the MIC is keyed with: KeyExchangeKey, or the random key the
        # client sent encrypted with it (KEY_EXCH; clients differ on when they send one).
        key_exchange_key = _hmac_md5(response_key, proof)
        keys = [key_exchange_key]
        sealed = message.encrypted_random_session_key or b""
        if message.flags & NegotiateFlags.key_exch and len(sealed) == 16:
            keys.insert(0, rc4k(key_exchange_key, sealed))
        return any(hmac.compare_digest(_hmac_md5(key, signed), mic) for key in keys)


Connection = tuple[object, ...]


class Handshakes:
    """The acceptors waiting for their AUTHENTICATE, by connection, for `ttl` seconds;
    at most `max_entries` (the oldest go). Thread-safe."""

    def __init__(
        self,
        ttl: float = 30.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Connection, tuple[float, str, NtlmAcceptor]] = OrderedDict()

    def put(self, connection: Connection, scheme: str, acceptor: NtlmAcceptor) -> None:
        with self._lock:
            self._entries.pop(connection, None)
            self._entries[connection] = (self.clock() + self.ttl, scheme, acceptor)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def take(self, connection: Connection, scheme: str) -> NtlmAcceptor | None:
        """The acceptor this connection's challenge came from (under the same
        scheme), removed: one AUTHENTICATE per challenge."""
        with self._lock:
            entry = self._entries.pop(connection, None)
        if entry is None or entry[0] <= self.clock() or entry[1] != scheme:
            return None
        return entry[2]

    def __len__(self) -> int:
        return len(self._entries)
