"""The error the PKI raises on purpose: a certificate, request, key or file that is
not what it must be. It is a directory error (category InvalidData), so the shell
shows it as it shows the directory's."""

from __future__ import annotations

from casarray.directory.errors import DirectoryError


class PkiError(DirectoryError, ValueError):
    """A certificate, request, private key or file that can't be used; the message
    says what is wrong with it and what to do."""

    category = "InvalidData"
