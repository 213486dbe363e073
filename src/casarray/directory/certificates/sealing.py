"""Private keys at rest: sealed with the organization's key-encryption key, which is
kept outside the database (`casarray.pki.vault`). The first key sealed creates the KEK;
once any sealed key exists, a missing KEK is an error, not a new one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casarray.directory.schema import ExchangeCertificateRow
from casarray.pki.vault import KeyVault

if TYPE_CHECKING:
    from casarray.directory.service import Directory


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

    @staticmethod
    def _may_create_kek(session: Session) -> bool:
        sealed = session.scalar(
            select(func.count())
            .select_from(ExchangeCertificateRow)
            .where(ExchangeCertificateRow.private_key.is_not(None))
        )
        return not sealed

    def seal(self, session: Session, key_pem: bytes, key_id: str) -> bytes:
        return self.vault.seal(key_pem, key_id, may_create=self._may_create_kek(session))
