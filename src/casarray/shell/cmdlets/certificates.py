"""Certificate cmdlets, with Exchange 2010's names and parameters (and the -FileName
and -RequestFile of later versions), plus the lab CA's Get-LabCertificate:

    New-ExchangeCertificate -GenerateRequest -SubjectName "C=CN, O=Lab, CN=mail.lab.net" `
        -DomainName bj-cas.lab.net,mail.lab.net,autodiscover.lab.net -RequestFile req.csr
    Get-LabCertificate -RequestFile req.csr -Path cert.cer
    Import-ExchangeCertificate -FileName cert.cer
    Enable-ExchangeCertificate -Thumbprint <thumbprint> -Services IMAP,IIS
    Test-ExchangeCertificate

A certificate is named by -Thumbprint (or -Identity SERVER\\THUMBPRINT, or piped in)
and -Server; without -Server, the organization's only Client Access server, or the
one server that holds the thumbprint. The rules live in `Directory.certificates`,
the lab CA in `casarray.pki.ca`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from casarray.directory.certificates.objects import (
    CertificateChange,
    CertificateTest,
    ExchangeCertificate,
)
from casarray.directory.certificates.values import SELF_SIGNED_SERVICES, SERVICES
from casarray.directory.errors import InvalidValueError
from casarray.directory.objects import Server
from casarray.pki import certificates as certs
from casarray.pki import names as pki_names
from casarray.pki.ca import LabCA
from casarray.pki.files import PRIVATE_FILE, PUBLIC_FILE
from casarray.pki.keys import DEFAULT_KEY_SIZE, KEY_SIZES
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.values import SecureString, ShellRuntimeError, is_collection, to_string
from casarray.shell.views import register_view

CERTIFICATE_TYPE = "Microsoft.Exchange.Management.SystemConfigurationTasks.ExchangeCertificate"
BINARY_FILE_TYPE = "Microsoft.Exchange.Management.SystemConfigurationTasks.BinaryFileDataObject"
TEST_TYPE = "casarray.CertificateTestResult"
LAB_CERTIFICATE_TYPE = "casarray.LabCertificate"

register_view(CERTIFICATE_TYPE, ("Thumbprint", "Services", "Subject"))
register_view(BINARY_FILE_TYPE, ("FileData",))
register_view(TEST_TYPE, ("Server", "Service", "Result", "MissingNames"))
register_view(LAB_CERTIFICATE_TYPE, ("Thumbprint", "NotAfter", "Subject"))

SERVER_HELP = (
    "The server whose certificate store to use (name, FQDN, GUID or DN). By default the "
    "organization's only Client Access server, or the one server holding the thumbprint."
)
SERVICES_TEXT = ", ".join(SERVICES)


# -- objects ---------------------------------------------------------------------------


def certificate_object(cert: ExchangeCertificate) -> PSObject:
    """Get-ExchangeCertificate's object, Exchange 2010's properties (never the key)."""
    return PSObject(
        {
            "CertificateDomains": list(cert.certificate_domains),
            "FriendlyName": cert.friendly_name,
            "HasPrivateKey": cert.has_private_key,
            "IsSelfSigned": cert.is_self_signed,
            "Issuer": cert.issuer,
            "NotAfter": cert.not_after,
            "NotBefore": cert.not_before,
            "PublicKeySize": cert.public_key_size,
            "RootCAType": cert.root_ca_type,
            "SerialNumber": cert.serial_number,
            "Services": cert.services_text,
            "Status": cert.status,
            "Subject": cert.subject,
            "Thumbprint": cert.thumbprint,
            "PrivateKeyExportable": cert.private_key_exportable,
            "Identity": cert.identity,
            "ServerName": cert.server,
        },
        type_name=CERTIFICATE_TYPE,
        base=cert,
        display=cert.thumbprint,
    )


def binary_file_object(data: bytes) -> PSObject:
    return PSObject({"FileData": data}, type_name=BINARY_FILE_TYPE, display="FileData")


def test_object(test: CertificateTest) -> PSObject:
    return PSObject(
        {
            "Server": test.server,
            "Service": test.service,
            "Result": test.result,
            "MissingNames": list(test.missing_names),
            "RequiredNames": list(test.required_names),
            "Thumbprints": list(test.thumbprints),
            "Message": test.message,
        },
        type_name=TEST_TYPE,
        base=test,
        display=f"{test.server} {test.service}: {test.result}",
    )


# -- parameters and helpers ---------------------------------------------------------------


def _server_parameter() -> Parameter:
    return Parameter("Server", kind="identity", identity_of="server", help=SERVER_HELP)


def _identity_parameters() -> tuple[Parameter, ...]:
    return (
        Parameter(
            "Identity",
            kind="object",
            position=0,
            from_pipeline=True,
            help="The certificate: SERVER\\THUMBPRINT, a thumbprint, or piped in from "
            "Get-ExchangeCertificate.",
        ),
        Parameter("Thumbprint", help="The certificate's thumbprint (40 hexadecimal digits)."),
        _server_parameter(),
    )


def _server(params: Mapping[str, Any]) -> Any:
    value = params.get("Server")
    return identity_arg(value, Server) if value is not None else None


def _certificate(params: Mapping[str, Any], required: bool = True) -> Any:
    """The certificate a cmdlet is about: the piped object's SERVER\\THUMBPRINT, else
    -Identity or -Thumbprint."""
    value = params.get("Identity")
    if isinstance(value, PSObject) and isinstance(value.base, ExchangeCertificate):
        return value.base.identity
    if isinstance(value, ExchangeCertificate):
        return value.identity
    if value is not None and params.get("Thumbprint") is not None:
        raise ShellRuntimeError(
            "Parameter set cannot be resolved using the specified named parameters: give "
            "-Identity or -Thumbprint, not both.",
            category="InvalidArgument",
        )
    if value is not None:
        return to_string(value)
    if params.get("Thumbprint") is not None:
        return params["Thumbprint"]
    if required:
        raise ShellRuntimeError(
            "Name the certificate: -Thumbprint <thumbprint>, or pipe it in "
            "(Get-ExchangeCertificate ... | ...).",
            category="InvalidArgument",
        )
    return None


def _path(raw: str) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(raw))))


def _read(parameter: str, raw: str) -> bytes:
    path = _path(raw)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidValueError(parameter, raw, f"names no file ({path}).") from None
    except IsADirectoryError:
        raise InvalidValueError(parameter, raw, f"is a folder ({path}), not a file.") from None
    except OSError as exc:
        raise InvalidValueError(parameter, raw, f"can't be read: {exc.strerror}.") from None


def _write(parameter: str, raw: str, data: bytes, mode: int = PUBLIC_FILE) -> Path:
    path = _path(raw)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    except FileNotFoundError:
        raise InvalidValueError(
            parameter, raw, f"is in a folder that doesn't exist ({path.parent})."
        ) from None
    except OSError as exc:
        raise InvalidValueError(parameter, raw, f"can't be written: {exc.strerror}.") from None
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def _file_data(value: Any) -> bytes:
    """-FileData as bytes: a byte array (bytes, or numbers 0-255), text (PEM or
    Base64), lines of text, or an object with FileData (Export-ExchangeCertificate's)."""
    if isinstance(value, PSObject) and value.has("FileData"):
        value = value.get("FileData")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if is_collection(value):
        items = list(value)
        if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            if any(not 0 <= i <= 255 for i in items):
                raise InvalidValueError("FileData", "...", "holds numbers that aren't bytes.")
            return bytes(items)
        return "\n".join(to_string(i) for i in items).encode()
    raise InvalidValueError(
        "FileData", to_string(value), "is not file data (a byte array or the file's text)."
    )


def _password(params: Mapping[str, Any]) -> str | None:
    value = params.get("Password")
    return value.reveal() if isinstance(value, SecureString) else None


def _iis_warning(cmdlet: Cmdlet, change: CertificateChange) -> None:
    for thumb in change.iis_taken_from:
        cmdlet.write_warning(
            f"IIS is bound to one certificate per server: the certificate {thumb} is no "
            f"longer enabled for IIS on {change.certificate.server}; "
            f"{change.certificate.thumbprint} is."
        )


# -- New-ExchangeCertificate -------------------------------------------------------------


@register
class NewExchangeCertificate(Cmdlet):
    name = "New-ExchangeCertificate"
    parameters = (
        Parameter(
            "GenerateRequest",
            kind="switch",
            help="Make a certificate request (PKCS #10) for a CA instead of a self-signed "
            "certificate; it waits in the server's store with Status PendingRequest.",
        ),
        Parameter(
            "RequestFile",
            help="Also write the request to this file (PEM; DER with -BinaryEncoded).",
        ),
        Parameter("BinaryEncoded", kind="switch", help="The request as DER bytes (FileData)."),
        Parameter(
            "SubjectName",
            help='The subject, e.g. "C=CN, O=Lab, CN=mail.lab.net" (default CN=<server name>).',
        ),
        Parameter(
            "DomainName",
            kind="strings",
            help="The subject alternative names: every name clients use (the array FQDN, "
            "the public OWA name, autodiscover.<domain>); the subject's CN is added.",
        ),
        Parameter(
            "KeySize",
            kind="int",
            help=f"The RSA key size: {', '.join(map(str, KEY_SIZES))} (default "
            f"{DEFAULT_KEY_SIZE}).",
        ),
        Parameter(
            "PrivateKeyExportable",
            kind="bool",
            help="Whether Export-ExchangeCertificate may export the key (default $false).",
        ),
        Parameter(
            "FriendlyName", help='A name for the certificate (default "Microsoft Exchange").'
        ),
        Parameter(
            "Services",
            kind="strings",
            help=f"Self-signed only: the services to enable it for: {SERVICES_TEXT} or None "
            f"(default {', '.join(SELF_SIGNED_SERVICES)}).",
        ),
        Parameter("IncludeAcceptedDomains", kind="switch", help="Add every accepted domain."),
        Parameter("IncludeAutoDiscover", kind="switch", help="Add autodiscover.<accepted domain>."),
        Parameter("IncludeServerFQDN", kind="switch", help="Add the server's FQDN."),
        Parameter("IncludeServerNetBIOSName", kind="switch", help="Add the server's name."),
        _server_parameter(),
        Parameter("Force", kind="switch", help="Accepted, as Exchange's."),
    )
    supports_should_process = True
    synopsis = "Creates a self-signed certificate or a certificate request."
    description = (
        "With -GenerateRequest, makes an RSA key and a PKCS #10 request whose subject "
        "alternative names are every -DomainName (write more names at once: the CAS "
        "array's FQDN, the public OWA name, autodiscover), outputs the request and "
        "keeps it in the server's store (Status PendingRequest) until "
        "Import-ExchangeCertificate brings the certificate a CA issued for it "
        "(Get-LabCertificate for the lab CA). Without it, makes a self-signed "
        "certificate (CN=<server name>, domains the server's name and FQDN unless "
        "given) enabled for IMAP, POP and SMTP unless -Services says otherwise. The "
        "private key is stored encrypted and never shown."
    )
    examples = (
        Example(
            'New-ExchangeCertificate -GenerateRequest -SubjectName "C=CN, O=Lab, '
            'CN=mail.lab.net" -DomainName bj-cas.lab.net,mail.lab.net,autodiscover.lab.net '
            "-RequestFile req.csr -Server CAS01",
            "Requests one certificate for every name the BJ site's clients use.",
        ),
        Example(
            "New-ExchangeCertificate -Server CAS01 -Services IMAP,IIS",
            "Makes a self-signed certificate for CAS01 and enables it for IMAP and IIS.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = _server(params)
        request = bool(params.get("GenerateRequest"))
        if not request and (params.get("RequestFile") or params.get("BinaryEncoded")):
            raise ShellRuntimeError(
                "-RequestFile and -BinaryEncoded go with -GenerateRequest.",
                category="InvalidArgument",
            )
        if request and params.get("Services") is not None:
            raise ShellRuntimeError(
                "-Services can't be used with -GenerateRequest: enable the certificate "
                "once it is imported (Enable-ExchangeCertificate).",
                category="InvalidArgument",
            )
        options: dict[str, Any] = {
            "subject_name": params.get("SubjectName"),
            "domain_names": params.get("DomainName") or (),
            "key_size": params.get("KeySize", DEFAULT_KEY_SIZE),
            "private_key_exportable": bool(params.get("PrivateKeyExportable", False)),
            "friendly_name": params.get("FriendlyName"),
            "include_accepted_domains": bool(params.get("IncludeAcceptedDomains")),
            "include_autodiscover": bool(params.get("IncludeAutoDiscover")),
            "include_server_fqdn": bool(params.get("IncludeServerFQDN")),
            "include_server_netbios_name": bool(params.get("IncludeServerNetBIOSName")),
        }
        target = str(server) if server is not None else "the local server"
        if not self.should_process(target):
            return
        certificates = self.directory.certificates
        if not request:
            services = params.get("Services")
            change = certificates.new_self_signed(
                server,
                services=SELF_SIGNED_SERVICES if services is None else services,
                **options,
            )
            _iis_warning(self, change)
            yield certificate_object(change.certificate)
            return
        made = certificates.new_request(server, **options)
        pem = made.request_pem.encode()
        binary = bool(params.get("BinaryEncoded"))
        data = _der_request(pem) if binary else pem
        if params.get("RequestFile"):
            _write("RequestFile", params["RequestFile"], data)
        yield binary_file_object(data) if binary else made.request_pem


def _der_request(pem: bytes) -> bytes:
    return certs.load_request(pem).public_bytes(Encoding.DER)


# -- Get-ExchangeCertificate ---------------------------------------------------------------


@register
class GetExchangeCertificate(Cmdlet):
    name = "Get-ExchangeCertificate"
    parameters = (
        *_identity_parameters(),
        Parameter("DomainName", help="Only certificates that cover this name."),
    )
    synopsis = "Gets the certificates and pending requests of Exchange servers."
    description = (
        "Lists a server's certificates and pending certificate requests: its "
        "Thumbprint, the Services it is enabled for, its Subject; Format-List shows "
        "CertificateDomains, NotBefore, NotAfter, Status (Valid, PendingRequest, "
        "Untrusted, DateInvalid), HasPrivateKey and more. Without -Server, every "
        "server's (Identity says whose: SERVER\\THUMBPRINT). Private keys are never "
        "shown."
    )
    examples = (
        Example("Get-ExchangeCertificate -Server CAS01", "Lists CAS01's certificates."),
        Example(
            "Get-ExchangeCertificate -Thumbprint 5113AE0233A72FCCB75D1D8F7D4B38E6D58D1D05 | fl",
            "Shows every property of one certificate.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = _certificate(params, required=False)
        for cert in self.directory.certificates.get(
            _server(params), identity, params.get("DomainName")
        ):
            yield certificate_object(cert)


# -- Import-ExchangeCertificate ------------------------------------------------------------


@register
class ImportExchangeCertificate(Cmdlet):
    name = "Import-ExchangeCertificate"
    parameters = (
        Parameter(
            "FileData",
            kind="object",
            position=0,
            help="The file's contents: a byte array, or its text (PEM or Base64).",
        ),
        Parameter("FileName", help="The file: PEM, DER (.cer), PKCS #7 (.p7b) or PKCS #12 (.pfx)."),
        Parameter(
            "Password",
            kind="securestring",
            help="The password of a PKCS #12 file or an encrypted key.",
        ),
        Parameter(
            "PrivateKeyExportable",
            kind="bool",
            help="Whether Export-ExchangeCertificate may export the imported key "
            "(default $false; a completed request keeps its own setting).",
        ),
        Parameter("FriendlyName", help="A name for the certificate."),
        _server_parameter(),
    )
    supports_should_process = True
    synopsis = "Imports a certificate, or completes a pending certificate request."
    description = (
        "Imports a certificate with its private key (a PKCS #12 .pfx with -Password, or "
        "PEM with the key), or the certificate a CA issued for a pending request of the "
        "server (New-ExchangeCertificate -GenerateRequest), which it completes: same key, "
        "Status Valid. A certificate that has no key and completes no request is "
        "refused. The certificate is enabled for no service until "
        "Enable-ExchangeCertificate."
    )
    examples = (
        Example(
            "Import-ExchangeCertificate -FileName cert.cer",
            "Completes the pending request the lab CA's certificate cert.cer was issued for.",
        ),
        Example(
            "Import-ExchangeCertificate -FileName mail.pfx -Password (ConvertTo-SecureString "
            '"P@ssw0rd" -AsPlainText -Force) -Server CAS02',
            "Imports a certificate with its key into CAS02's store.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        has_data, has_name = params.get("FileData") is not None, bool(params.get("FileName"))
        if has_data == has_name:
            raise ShellRuntimeError(
                "Give the certificate with -FileData <bytes or text> or -FileName <file>, "
                "one of them.",
                category="InvalidArgument",
            )
        if has_name:
            data = _read("FileName", params["FileName"])
            target = str(params["FileName"])
        else:
            data = _file_data(params["FileData"])
            target = "FileData"
        if not self.should_process(target):
            return
        change = self.directory.certificates.import_certificate(
            data,
            _server(params),
            password=_password(params),
            private_key_exportable=params.get("PrivateKeyExportable"),
            friendly_name=params.get("FriendlyName"),
        )
        yield certificate_object(change.certificate)


# -- Enable-ExchangeCertificate ------------------------------------------------------------


@register
class EnableExchangeCertificate(Cmdlet):
    name = "Enable-ExchangeCertificate"
    parameters = (
        *_identity_parameters(),
        Parameter(
            "Services",
            kind="strings",
            mandatory=True,
            help=f"The services to add: {SERVICES_TEXT}.",
        ),
        Parameter("Force", kind="switch", help="Accepted, as Exchange's."),
        Parameter("DoNotRequireSsl", kind="switch", help="Accepted, as Exchange's."),
    )
    supports_should_process = True
    synopsis = "Enables a certificate for Exchange services."
    description = (
        "Adds services to those the certificate is enabled for (IMAP then IIS gives "
        "IMAP, IIS). The servers use it within a second: for IMAP, a server presents the "
        "enabled certificate that covers the name the client asked for (SNI). IIS is "
        "bound to one certificate per server: enabling IIS on one takes it from the "
        "other. Pending requests, certificates without a private key, expired or "
        "untrusted ones can't be enabled."
    )
    examples = (
        Example(
            "Enable-ExchangeCertificate -Thumbprint 5113AE0233A72FCCB75D1D8F7D4B38E6D58D1D05 "
            "-Services IMAP,IIS -Server CAS01",
            "Uses the certificate for IMAP and HTTPS on CAS01.",
        ),
        Example(
            "Get-ExchangeCertificate -DomainName bj-cas.lab.net | Enable-ExchangeCertificate "
            "-Services IIS",
            "Enables for IIS the certificate that covers the array's name.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = _certificate(params)
        if not self.should_process(str(identity)):
            return ()
        change = self.directory.certificates.enable(identity, params["Services"], _server(params))
        _iis_warning(self, change)
        return ()


# -- Remove-ExchangeCertificate ------------------------------------------------------------


@register
class RemoveExchangeCertificate(Cmdlet):
    name = "Remove-ExchangeCertificate"
    parameters = _identity_parameters()
    supports_should_process = True
    confirm_impact = "High"
    synopsis = "Removes a certificate or a pending request from a server's store."
    description = (
        "Deletes the certificate (or pending request) and its private key. A "
        "certificate enabled for services stops being served within a second."
    )
    examples = (
        Example(
            "Remove-ExchangeCertificate -Thumbprint 5113AE0233A72FCCB75D1D8F7D4B38E6D58D1D05 "
            "-Server CAS01 -Confirm:$false",
            "Removes the certificate without asking.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = _certificate(params)
        certificates = self.directory.certificates
        cert = certificates.one(identity, _server(params))
        if not self.should_process(cert.identity):
            return ()
        removed = certificates.remove(cert.identity)
        if removed.services:
            self.write_warning(
                f"The certificate {removed.thumbprint} was enabled for "
                f"{removed.services_text} on {removed.server}; those services now use "
                "the server's other enabled certificates, if any."
            )
        return ()


# -- Export-ExchangeCertificate ------------------------------------------------------------


@register
class ExportExchangeCertificate(Cmdlet):
    name = "Export-ExchangeCertificate"
    parameters = (
        *_identity_parameters(),
        Parameter("BinaryEncoded", kind="switch", help="Output the bytes (FileData)."),
        Parameter(
            "Password",
            kind="securestring",
            help="The password that protects the PKCS #12 file.",
        ),
        Parameter("FileName", help="Also write the file here."),
    )
    supports_should_process = True
    synopsis = "Exports a certificate with its private key (PKCS #12), or a pending request."
    description = (
        "Makes a PKCS #12 file of the certificate, its issuers and its private key, "
        "protected by -Password; only certificates made or imported with "
        "-PrivateKeyExportable $true can be exported. A pending request exports as its "
        "PKCS #10 request. Without -BinaryEncoded the output is Base64 text."
    )
    examples = (
        Example(
            "Export-ExchangeCertificate -Thumbprint 5113AE0233A72FCCB75D1D8F7D4B38E6D58D1D05 "
            "-BinaryEncoded -Password (ConvertTo-SecureString 'P@ssw0rd' -AsPlainText -Force) "
            "-FileName mail.pfx",
            "Writes mail.pfx, ready for Import-ExchangeCertificate on another server.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = _certificate(params)
        if not self.should_process(str(identity)):
            return
        exported = self.directory.certificates.export(identity, _server(params), _password(params))
        binary = bool(params.get("BinaryEncoded"))
        if exported.is_request:
            data = _der_request(exported.data) if binary else exported.data
        else:
            data = exported.data if binary else base64.encodebytes(exported.data)
        if params.get("FileName"):
            mode = PUBLIC_FILE if exported.is_request else PRIVATE_FILE
            _write("FileName", params["FileName"], data, mode)
        yield binary_file_object(data) if binary else data.decode()


# -- Test-ExchangeCertificate ---------------------------------------------------------------


@register
class TestExchangeCertificate(Cmdlet):
    name = "Test-ExchangeCertificate"
    parameters = (
        Parameter(
            "Server",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="server",
            help="The Client Access server to test (default: every one).",
        ),
        Parameter(
            "Service",
            kind="strings",
            help=f"The services to test ({SERVICES_TEXT}; default IIS, IMAP and every "
            "service a certificate is enabled for).",
        ),
        Parameter(
            "DomainName",
            kind="strings",
            help="More names clients use, e.g. the public OWA name mail.lab.net.",
        ),
    )
    synopsis = "Tests that the enabled certificates cover every name clients use."
    description = (
        "casarray's own. For each Client Access server and service, lists the names "
        "its clients use that no certificate enabled for the service covers: the site's "
        "client access array FQDN (or the server's FQDN when the site has no array, or "
        "while a database of the site still names the server), autodiscover.<accepted "
        "domain> for IIS, the server's FQDN for SMTP, and -DomainName. Result is "
        "Success when every name is covered."
    )
    examples = (
        Example(
            "Test-ExchangeCertificate -DomainName mail.lab.net",
            "Checks every Client Access server, with the public OWA name too.",
        ),
        Example(
            "Test-ExchangeCertificate CAS01 -Service IIS | fl",
            "Shows the names IIS on CAS01 must cover and which are missing.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        for test in self.directory.certificates.test(
            _server(params), params.get("Service"), params.get("DomainName") or ()
        ):
            yield test_object(test)


# -- Get-LabCertificate ---------------------------------------------------------------------


@register
class GetLabCertificate(Cmdlet):
    name = "Get-LabCertificate"
    parameters = (
        Parameter("RequestFile", position=0, help="The request (PKCS #10, PEM or DER)."),
        Parameter(
            "Request",
            kind="object",
            from_pipeline=True,
            help="The request itself, e.g. piped from New-ExchangeCertificate -GenerateRequest.",
        ),
        Parameter(
            "Path", help="Write the certificate to this file (PEM; DER with -BinaryEncoded)."
        ),
        Parameter("BinaryEncoded", kind="switch", help="Write DER instead of PEM."),
    )
    supports_should_process = True
    synopsis = "Issues a certificate for a request from the lab certificate authority."
    description = (
        "casarray's own; the Enterprise CA of a Windows lab (certreq -submit). Signs "
        "the request with the lab CA, made on first use in $CASARRAY_HOME/pki/ca: the "
        "request's subject and subject alternative names, serverAuth, one year. Clients "
        "trust the CA through its root certificate, $CASARRAY_HOME/pki/lab-root.pem "
        "(the output's RootCertificate). Import the certificate with "
        "Import-ExchangeCertificate to complete the request."
    )
    examples = (
        Example(
            "Get-LabCertificate -RequestFile req.csr -Path cert.cer",
            "Issues cert.cer for the request in req.csr.",
        ),
        Example(
            'New-ExchangeCertificate -GenerateRequest -SubjectName "CN=mail.lab.net" '
            "-DomainName bj-cas.lab.net -Server CAS01 | Get-LabCertificate -Path cert.cer",
            "Requests and issues in one pipeline.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if params.get("RequestFile"):
            data = _read("RequestFile", params["RequestFile"])
        elif params.get("Request") is not None:
            data = _file_data(params["Request"])
        else:
            raise ShellRuntimeError(
                "Give the request with -RequestFile <file>, or pipe it in.",
                category="InvalidArgument",
            )
        csr = certs.load_request(data)
        if not self.should_process(pki_names.subject_text(csr.subject)):
            return
        ca = LabCA.open()
        cert = ca.sign(csr)
        path = None
        if params.get("Path"):
            binary = bool(params.get("BinaryEncoded"))
            data = cert.public_bytes(Encoding.DER) if binary else certs.pem(cert)
            path = _write("Path", params["Path"], data)
        yield PSObject(
            {
                "Thumbprint": certs.thumbprint(cert),
                "Subject": pki_names.subject_text(cert.subject),
                "CertificateDomains": certs.domains(cert),
                "Issuer": pki_names.subject_text(cert.issuer),
                "NotBefore": cert.not_valid_before_utc,
                "NotAfter": cert.not_valid_after_utc,
                "SerialNumber": certs.serial_text(cert),
                "Path": str(path) if path is not None else None,
                "RootCertificate": str(ca.root_path),
            },
            type_name=LAB_CERTIFICATE_TYPE,
            display=certs.thumbprint(cert),
        )
