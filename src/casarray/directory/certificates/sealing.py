"""Private keys at rest: sealed with the organization's key-encryption key, which is
kept outside the database (`casarray.pki.vault`). The first key sealed creates the KEK;
once any sealed key exists, a missing KEK is an error, not a new one. Mailboxes' NT
hashes are sealed with the same KEK (`directory.nt_hashes`) and count as sealed keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.schema import ExchangeCertificateRow, MailboxRow
from casarray.pki.vault import KeyVault

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def nothing_sealed(session: Session) -> bool:
    """Whether nothing in the directory is sealed with the KEK yet (then it may be
    made): no certificate's private key, no mailbox's NT hash."""
    for column in (ExchangeCertificateRow.private_key, MailboxRow.nt_hash):
        if session.scalar(select(column).where(column.is_not(None)).limit(1)) is not None:
            return False
    return True


class PrivateKeys:
    """The organization's key vault, opened on first use."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory
        self.home: Path | None = None  # $CASARRAY_HOME unless set (the KEK, the lab CA)
        self._vault: KeyVault | None = None

    @property
    def vault(self) -> KeyVault:
        if self._vault is None:
            self._vault = KeyVault(self.dir.organization().guid, self.home)
        return self._vault

    def seal(self, session: Session, key_pem: bytes, key_id: str) -> bytes:
        return self.vault.seal(key_pem, key_id, may_create=nothing_sealed(session))
