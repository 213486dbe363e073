"""Private keys sealed at rest: the key-encryption key file (mode 0600 in a 0700
folder), sealed bytes that are not a PEM and open only with the same KEK and for the
same key, and no second KEK made while keys sealed with the first exist."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from casarray.pki.errors import PkiError
from casarray.pki.vault import KeyVault

ORG = "5b3f3c5e-0000-4000-8000-000000000001"
PEM = b"-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n"


def test_seal_and_open(casarray_home: Path) -> None:
    vault = KeyVault(ORG)
    sealed = vault.seal(PEM, "key-a", may_create=True)
    assert b"PRIVATE KEY" not in sealed and PEM not in sealed
    assert vault.open(sealed, "key-a") == PEM
    # a fresh nonce each time
    assert vault.seal(PEM, "key-a", may_create=False) != sealed
    # another process (a new vault on the same home) opens it too
    assert KeyVault(ORG).open(sealed, "key-a") == PEM
    kek = casarray_home / "pki" / f"{ORG}.kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    assert stat.S_IMODE(kek.parent.stat().st_mode) == 0o700


def test_bound_to_the_key_and_intact(casarray_home: Path) -> None:
    vault = KeyVault(ORG)
    sealed = vault.seal(PEM, "key-a", may_create=True)
    with pytest.raises(PkiError, match="belongs to another certificate"):
        vault.open(sealed, "key-b")
    damaged = bytearray(sealed)
    damaged[-1] ^= 1
    with pytest.raises(PkiError, match="damaged"):
        vault.open(bytes(damaged), "key-a")
    with pytest.raises(PkiError, match="unknown format"):
        vault.open(b"\x02" + sealed[1:], "key-a")


def test_another_kek_does_not_open_it(casarray_home: Path, tmp_path: Path) -> None:
    sealed = KeyVault(ORG).seal(PEM, "key-a", may_create=True)
    other = KeyVault(ORG, tmp_path / "other-host")
    other.seal(PEM, "key-x", may_create=True)  # that host made its own KEK
    with pytest.raises(PkiError, match="sealed with another key-encryption key"):
        other.open(sealed, "key-a")


def test_missing_kek_is_not_replaced_while_keys_exist(casarray_home: Path) -> None:
    sealed = KeyVault(ORG).seal(PEM, "key-a", may_create=True)
    (casarray_home / "pki" / f"{ORG}.kek").unlink()
    vault = KeyVault(ORG)
    with pytest.raises(PkiError, match="is missing on this host"):
        vault.open(sealed, "key-a")
    with pytest.raises(PkiError, match="Copy that file"):
        vault.seal(PEM, "key-b", may_create=False)
    assert not (casarray_home / "pki" / f"{ORG}.kek").exists()


def test_damaged_kek_file(casarray_home: Path) -> None:
    KeyVault(ORG).seal(PEM, "key-a", may_create=True)
    kek = casarray_home / "pki" / f"{ORG}.kek"
    kek.write_text("something else\n")
    with pytest.raises(PkiError, match="not one casarray made"):
        KeyVault(ORG).seal(PEM, "key-a", may_create=False)
