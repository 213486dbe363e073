"""Private keys encrypted at rest.

The directory keeps each certificate's private key encrypted with the organization's
key-encryption key (KEK): 32 random bytes in `$CASARRAY_HOME/pki/<organization
GUID>.kek` (mode 0600, in a folder of mode 0700), never in the database. So a copy of
the directory database (a backup, a PostgreSQL dump, another DBA) holds no usable key;
whoever can read the KEK file and the database can.

Each key is sealed with AES-256-GCM under a fresh 96-bit nonce; the associated data
binds it to the organization and to the key's public half (SHA-256 of its
SubjectPublicKeyInfo), so a sealed key moved to another certificate's row does not
open. A sealed key is `01 | KEK id (8 bytes) | nonce (12) | ciphertext+tag`; the KEK
id (a hash of the KEK) tells a wrong KEK from a damaged key.

The limit, as with a Windows machine key: every host of a multi-host deployment that
reads keys (each Client Access server) needs the same KEK file. It is made by the
first host that stores a key; copy it to the others (same path, mode 0600). A host
without it is told so and where to copy it from, and does not make a second one while
the directory holds keys sealed with the first.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casarray.pki.errors import PkiError
from casarray.pki.files import PRIVATE_FILE, ensure_folder, pki_folder, write_file

VERSION = 1
KEK_BYTES = 32
NONCE_BYTES = 12
ID_BYTES = 8
PRIVATE_KEY = b"casarray private key"  # the label private keys are sealed with
HEADER = b"casarray key-encryption key v1\n"


def kek_id(kek: bytes) -> bytes:
    return hashlib.sha256(b"casarray kek id\0" + kek).digest()[:ID_BYTES]


class KeyVault:
    """Seals and opens private keys with the organization's KEK (see the module
    docstring)."""

    def __init__(self, organization_guid: str, home: Path | None = None) -> None:
        self.organization_guid = organization_guid
        self.path = pki_folder(home) / f"{organization_guid}.kek"
        self._kek: bytes | None = None

    # -- the KEK file -----------------------------------------------------------

    def _read(self) -> bytes | None:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not text.startswith(HEADER):
            raise PkiError(f"The key-encryption key file {self.path} is not one casarray made.")
        try:
            kek = base64.b64decode(text[len(HEADER) :].strip(), validate=True)
        except ValueError:
            kek = b""
        if len(kek) != KEK_BYTES:
            raise PkiError(f"The key-encryption key file {self.path} is damaged.")
        return kek

    def _missing(self) -> PkiError:
        return PkiError(
            f"The organization's key-encryption key {self.path} is missing on this host, "
            "but the directory holds private keys sealed with it. Copy that file (mode "
            "0600) from the host that made it; see casarray.pki.vault."
        )

    def kek(self, *, may_create: bool) -> bytes:
        """The KEK, made now when missing and `may_create` (no key sealed yet)."""
        if self._kek is not None:
            return self._kek
        kek = self._read()
        if kek is None:
            if not may_create:
                raise self._missing()
            ensure_folder(self.path.parent)
            fresh = os.urandom(KEK_BYTES)
            write_file(
                self.path,
                HEADER + base64.b64encode(fresh) + b"\n",
                PRIVATE_FILE,
                exclusive=True,
            )
            kek = self._read()  # ours, or the one another process made first
            assert kek is not None
        self._kek = kek
        return kek

    # -- sealing ------------------------------------------------------------------

    def _associated(self, label: bytes, binding: str) -> bytes:
        return label + b"\0" + self.organization_guid.encode() + b"\0" + binding.encode()

    def seal_value(self, value: bytes, label: bytes, binding: str, *, may_create: bool) -> bytes:
        """`value` encrypted with the KEK (AES-GCM), bound to `label` (what kind of
        secret), the organization and `binding` (whose): VERSION, the KEK's id, the
        nonce, the ciphertext."""
        kek = self.kek(may_create=may_create)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(kek).encrypt(nonce, value, self._associated(label, binding))
        return bytes([VERSION]) + kek_id(kek) + nonce + sealed

    def open_value(
        self, blob: bytes, label: bytes, binding: str, *, what: str, owner: str
    ) -> bytes:
        """The value `seal_value` sealed in `blob` for `label` and `binding`; PkiError
        naming `what` it is (and the `owner` kind it may belong to) when it doesn't open."""
        blob = bytes(blob)
        if len(blob) < 1 + ID_BYTES + NONCE_BYTES + 16 or blob[0] != VERSION:
            raise PkiError(f"A stored {what} is damaged (unknown format).")
        kek = self.kek(may_create=False)
        wanted = blob[1 : 1 + ID_BYTES]
        if wanted != kek_id(kek):
            raise PkiError(
                f"A stored {what} was sealed with another key-encryption key (id "
                f"{wanted.hex()}) than {self.path} (id {kek_id(kek).hex()}). Copy the "
                "organization's KEK file from the host that sealed it."
            )
        nonce = blob[1 + ID_BYTES : 1 + ID_BYTES + NONCE_BYTES]
        try:
            return AESGCM(kek).decrypt(
                nonce, blob[1 + ID_BYTES + NONCE_BYTES :], self._associated(label, binding)
            )
        except InvalidTag:
            raise PkiError(
                f"A stored {what} doesn't open: it is damaged or belongs to another {owner}."
            ) from None

    def seal(self, key_pem: bytes, binding: str, *, may_create: bool) -> bytes:
        """`key_pem` encrypted; `binding` is the key's id (`keys.key_id`)."""
        return self.seal_value(key_pem, PRIVATE_KEY, binding, may_create=may_create)

    def open(self, blob: bytes, binding: str) -> bytes:
        """The PEM key sealed in `blob` for `binding`."""
        return self.open_value(blob, PRIVATE_KEY, binding, what="private key", owner="certificate")
