"""The error the PKI raises on purpose: a certificate, request, key or file that is
not what it must be (category InvalidData, which the shell shows as it shows every
`CasarrayError`)."""

from __future__ import annotations

from casarray.errors import CasarrayError


class PkiError(CasarrayError, ValueError):
    """A certificate, request, private key or file that can't be used; the message
    says what is wrong with it and what to do."""

    category = "InvalidData"
