"""`Directory.certificates`: one entry point for the certificate cmdlets and the
servers' TLS layer, with the work done by one small service per seam: reading,
making (requests and self-signed), import/export/remove, services, and
Test-ExchangeCertificate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from casarray.directory.certificates.checks import CheckService
from casarray.directory.certificates.reading import QueryService
from casarray.directory.certificates.requests import RequestService
from casarray.directory.certificates.sealing import PrivateKeys
from casarray.directory.certificates.services import EnableService
from casarray.directory.certificates.transfer import TransferService
from casarray.pki.vault import KeyVault

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class Certificates:
    """The certificate operations under their cmdlet's name (`new_request` is
    New-ExchangeCertificate -GenerateRequest, `get` Get-ExchangeCertificate, ...). Each
    is the bound method of the service that owns it, so its signature and docstring
    live in one place; the services share the organization's key vault."""

    def __init__(self, directory: Directory) -> None:
        self.private_keys = PrivateKeys(directory)
        queries = QueryService(directory)
        requests = RequestService(directory, self.private_keys)
        transfer = TransferService(directory, self.private_keys)
        services = EnableService(directory, self.private_keys)
        checks = CheckService(directory)
        # Get-ExchangeCertificate
        self.get = queries.get
        self.one = queries.one
        # New-ExchangeCertificate (-GenerateRequest)
        self.new_request = requests.new_request
        self.new_self_signed = requests.new_self_signed
        # Import-, Export-, Remove-ExchangeCertificate
        self.import_certificate = transfer.import_certificate
        self.export = transfer.export
        self.remove = transfer.remove
        # Enable-ExchangeCertificate; what a server's TLS layer serves
        self.enable = services.enable
        self.serving = services.serving
        # Test-ExchangeCertificate
        self.test = checks.test

    @property
    def vault(self) -> KeyVault:
        """The organization's key vault (private keys are sealed with its KEK)."""
        return self.private_keys.vault
