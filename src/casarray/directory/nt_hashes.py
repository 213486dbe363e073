"""NT hashes of mailbox passwords, for NTLM (EWS and Autodiscover clients).

What: the NT hash (NTOWFv1) of a password is MD4 of its UTF-16LE bytes, exactly what
Active Directory keeps in a user's unicodePwd. NTLM never sends a password: the client
proves it knows the NT hash by an HMAC over the server's challenge (NTLMv2), so the
server must hold the NT hash itself; an argon2 hash can't answer a challenge. Each
mailbox keeps it beside its argon2 hash (`mailbox.nt_hash`, revision 0011),
set wherever a password is set: New-Mailbox, Set-Mailbox -Password, the lab's users.
A mailbox whose password was set before this column existed (or imported with only an
argon2 hash) has none until its password is next set: NTLM then fails for it with a
log line saying so, and Basic still works.

What this means for security:
- An NT hash is a password-equivalent for NTLM ("pass the hash"): whoever holds it
  can log in over NTLM as that user without knowing the password, and MD4 is unsalted
  and fast, so a weak password falls quickly to a cracking rig. It is far weaker than
  the argon2 hash beside it.
- So it is never stored plain: it is sealed with AES-256-GCM under the organization's
  key-encryption key, the same one that seals the certificates' private keys
  (`casarray.pki.vault`: a file outside the database, mode 0600), bound to the
  mailbox's GUID (a sealed hash copied to another mailbox's row doesn't open). A copy
  of the directory database alone (a backup, a PostgreSQL dump) holds no usable NT
  hash; whoever can read both the database and the KEK file can read them all, as
  they can read every private key. Every Client Access host that accepts NTLM needs
  the KEK file, as it already does to serve TLS with a directory-held certificate.
- It is never logged, never returned by a cmdlet, and only opened in the Client Access
  process for the one handshake that needs it (`access.http.ntlm`).
- Exchange has the same exposure: its NTLM checks go to a domain controller, which
  keeps every user's NT hash in ntds.dit (encrypted with the boot key, the PEK);
  anyone who can read ntds.dit and the SYSTEM hive has them all. casarray's directory
  plays the domain controller's part, so it carries the domain controller's risk.
  Turning NTLM off (a virtual directory without WindowsAuthentication) doesn't remove
  the stored hashes; a deployment that wants none can clear them with SQL
  (`UPDATE mailbox SET nt_hash = NULL`).

MD4: Python's hashlib offers md4 only through OpenSSL's legacy provider, which
OpenSSL 3 leaves off by default, so it can't be relied on. pyspnego (the NTLM library
we use for the protocol) ships a pure-Python MD4 that every NTLM client built on it
(requests-ntlm, smbprotocol, exchangelib) uses to compute the same value, and which we
already depend on; `test_nt_hashes` checks it against RFC 1320's test vectors and a
known NT hash, so a change in that private module fails the suite rather than logins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spnego._ntlm_raw.md4 import md4

from casarray.directory.errors import DirectoryError, InvalidValueError
from casarray.pki.errors import PkiError
from casarray.pki.vault import ID_BYTES, NONCE_BYTES, VERSION

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from casarray.directory.service import Directory

NT_HASH_BYTES = 16
LABEL = b"casarray nt hash"  # what the sealed values are (pki.vault's label)


def nt_hash(password: str) -> bytes:
    """NTOWFv1: MD4 of the password's UTF-16LE bytes (a lone surrogate is kept as its
    code unit, as Windows encodes it)."""
    if not password:
        raise InvalidValueError("Password", "", "is empty.")
    return md4(password.encode("utf-16-le", "surrogatepass"))


class NtHashes:
    """Seals and opens mailboxes' NT hashes with the organization's KEK."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def seal(self, session: Session, mailbox_guid: str, password: str) -> bytes:
        """The password's NT hash, sealed for the mailbox `mailbox_guid` with the
        organization's KEK (`pki.vault`, as private keys are). `session` is the write
        transaction that stores it (it decides whether the KEK may be made now: only
        while nothing is sealed with one)."""
        from casarray.directory.certificates.sealing import nothing_sealed

        vault = self.dir.certificates.private_keys.vault
        return vault.seal_value(
            nt_hash(password), LABEL, mailbox_guid.lower(), may_create=nothing_sealed(session)
        )

    def open(self, mailbox_guid: str, blob: bytes) -> bytes:
        """The NT hash sealed in `blob` for `mailbox_guid`; a DirectoryError if it
        doesn't open (damaged, another mailbox's, another KEK's)."""
        blob = bytes(blob)
        if len(blob) != 1 + ID_BYTES + NONCE_BYTES + NT_HASH_BYTES + 16 or blob[0] != VERSION:
            raise DirectoryError("A stored NT hash is damaged (unknown format).")
        vault = self.dir.certificates.private_keys.vault
        vault.kek(may_create=False)  # no KEK here: its PkiError, as for private keys
        try:
            return vault.open_value(
                blob, LABEL, mailbox_guid.lower(), what="NT hash", owner="mailbox"
            )
        except PkiError as exc:
            raise DirectoryError(str(exc)) from None
