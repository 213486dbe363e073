"""The certificate cmdlets through the shell, as an administrator types them: the
seed's step 4 (one request with every name clients use, signed by the lab CA,
imported, enabled), Get-ExchangeCertificate's table and list, PKCS #12 imports and
exports checked with OpenSSL, and errors that change nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from casarray.directory import Directory
from tests.pki import openssl
from tests.shell.cmdlet_shell import Shell, what_if

SEED_REQUEST = (
    'New-ExchangeCertificate -GenerateRequest -SubjectName "C=CN, O=Lab, CN=mail.lab.net" '
    "-DomainName bj-cas.lab.net,mail.lab.net,autodiscover.lab.net -Server CAS01 "
    "-PrivateKeyExportable $true"
)
PASSWORD = '(ConvertTo-SecureString "P@ssw0rd" -AsPlainText -Force)'


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def table(text: str) -> list[list[str]]:
    return [line.split() for line in lines(text)[2:]]


def fields(text: str) -> dict[str, str]:
    """The `Name : value` lines of Format-List output (first object)."""
    found: dict[str, str] = {}
    for line in lines(text):
        name, sep, value = line.partition(" : ")
        if sep and name.strip() and not name.startswith(" "):
            found.setdefault(name.strip(), value.strip())
    return found


def request_and_sign(shell: Shell, tmp_path: Path) -> tuple[str, Path]:
    """The seed's request for CAS01, signed by the lab CA: (thumbprint, cert.cer)."""
    req, cer = tmp_path / "req.csr", tmp_path / "cert.cer"
    shell.ok(f"{SEED_REQUEST} -RequestFile '{req}'")
    out = shell.ok(f"(Get-LabCertificate -RequestFile '{req}' -Path '{cer}').Thumbprint").out
    return out.strip(), cer


def test_seed_step_four(shell: Shell, bj: Directory, tmp_path: Path, casarray_home: Path) -> None:
    req = tmp_path / "req.csr"
    out = shell.ok(f"{SEED_REQUEST} -RequestFile '{req}'").out
    assert out.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert out.strip() == req.read_text().strip()
    text = openssl("req", "-in", str(req), "-noout", "-verify", "-text")
    assert "verify OK" in text
    assert "DNS:bj-cas.lab.net, DNS:mail.lab.net, DNS:autodiscover.lab.net" in text

    out = shell.ok("Get-ExchangeCertificate -Server CAS01").out
    assert lines(out)[0].split() == ["Thumbprint", "Services", "Subject"]
    [[pending, services, *subject]] = table(out)
    assert (services, " ".join(subject)) == ("None", "CN=mail.lab.net, O=Lab, C=CN")
    listed = fields(shell.ok("Get-ExchangeCertificate -Server CAS01 | fl").out)
    assert listed["Status"] == "PendingRequest"
    assert listed["HasPrivateKey"] == "True"
    assert listed["CertificateDomains"] == "{bj-cas.lab.net, mail.lab.net, autodiscover.lab.net}"

    cer = tmp_path / "cert.cer"
    out = shell.ok(f"Get-LabCertificate -RequestFile '{req}' -Path '{cer}' | fl").out
    issued = fields(out)
    root = casarray_home / "pki" / "lab-root.pem"
    assert issued["RootCertificate"] == str(root)
    assert issued["Path"] == str(cer)
    assert issued["Issuer"] == "CN=casarray Lab Root CA, O=casarray"
    assert f"{cer}: OK" in openssl("verify", "-CAfile", str(root), str(cer))

    out = shell.ok(f"Import-ExchangeCertificate -FileName '{cer}'").out
    [[thumb, services, *_]] = table(out)
    assert thumb == issued["Thumbprint"] and thumb != pending
    shell.ok(f"Enable-ExchangeCertificate -Thumbprint {thumb} -Services IMAP")
    shell.ok(f"Enable-ExchangeCertificate {thumb} -Services IIS")
    out = shell.ok(f"Get-ExchangeCertificate -Thumbprint {thumb} | Format-List").out
    names = [line.split(" : ")[0].strip() for line in lines(out)]
    assert names[:14] == [
        "CertificateDomains",
        "FriendlyName",
        "HasPrivateKey",
        "IsSelfSigned",
        "Issuer",
        "NotAfter",
        "NotBefore",
        "PublicKeySize",
        "RootCAType",
        "SerialNumber",
        "Services",
        "Status",
        "Subject",
        "Thumbprint",
    ]
    shown = fields(out)
    assert shown["Services"] == "IMAP, IIS"  # additive, in Exchange's order
    assert shown["Status"] == "Valid"
    assert shown["RootCAType"] == "Enterprise"
    assert shown["Identity"] == f"CAS01\\{thumb}"
    assert "PRIVATE KEY" not in out
    assert [s.thumbprint for s in bj.certificates.serving("CAS01", "IIS")] == [thumb]


def test_test_exchange_certificate_before_and_after(
    shell: Shell, bj: Directory, tmp_path: Path
) -> None:
    shell.ok('New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ')
    out = shell.ok("Test-ExchangeCertificate CAS01 -DomainName mail.lab.net").out
    assert lines(out)[0].split() == ["Server", "Service", "Result", "MissingNames"]
    assert table(out) == [
        ["CAS01", "IMAP", "Failure", "{bj-cas.lab.net,", "mail.lab.net}"],
        ["CAS01", "IIS", "Failure", "{bj-cas.lab.net,", "autodiscover.lab.net,", "mail.lab.net}"],
    ]
    _, cer = request_and_sign(shell, tmp_path)
    shell.ok(
        f"Import-ExchangeCertificate -FileName '{cer}' | "
        "Enable-ExchangeCertificate -Services IMAP,IIS"
    )
    out = shell.ok("Test-ExchangeCertificate CAS01 -DomainName mail.lab.net").out
    assert table(out) == [["CAS01", "IMAP", "Success", "{}"], ["CAS01", "IIS", "Success", "{}"]]
    out = shell.ok("Test-ExchangeCertificate CAS02 -Service IIS | fl").out
    assert fields(out)["Message"].startswith("No usable certificate is enabled for IIS on CAS02")


def test_import_pkcs12_from_openssl(shell: Shell, bj: Directory, tmp_path: Path) -> None:
    thumb, cer = request_and_sign(shell, tmp_path)
    shell.ok(f"Import-ExchangeCertificate -FileName '{cer}'")
    pfx = tmp_path / "mail.pfx"
    shell.ok(
        f"Export-ExchangeCertificate {thumb} -BinaryEncoded -Password {PASSWORD} "
        f"-FileName '{pfx}' | Out-Null"
    )
    assert stat.S_IMODE(pfx.stat().st_mode) == 0o600
    key_text = openssl("pkcs12", "-in", str(pfx), "-passin", "pass:P@ssw0rd", "-nodes")
    assert "BEGIN PRIVATE KEY" in key_text
    # a PKCS #12 file made by OpenSSL from that export, imported on CAS02
    (tmp_path / "both.pem").write_text(key_text)
    remade = tmp_path / "remade.pfx"
    openssl(
        "pkcs12", "-export", "-in", str(tmp_path / "both.pem"), "-out", str(remade),
        "-passout", "pass:other",
    )  # fmt: skip
    before = bj.certificates.get()
    error = shell.run(
        f"Import-ExchangeCertificate -FileName '{remade}' -Server CAS02 -Password {PASSWORD}"
    ).error()
    assert error.message == "The password is incorrect, or the PKCS #12 file is damaged."
    assert error.category == "InvalidData"
    assert bj.certificates.get() == before
    out = shell.ok(
        f"Import-ExchangeCertificate -FileName '{remade}' -Server CAS02 -Password "
        '(ConvertTo-SecureString "other" -AsPlainText -Force) | fl'
    ).out
    assert fields(out)["Thumbprint"] == thumb
    assert fields(out)["HasPrivateKey"] == "True"
    assert fields(out)["ServerName"] == "CAS02"


def test_import_errors_change_nothing(shell: Shell, bj: Directory, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.cer"
    garbage.write_bytes(b"\x00\x01 not a certificate")
    thumb, cer = request_and_sign(shell, tmp_path)
    before = bj.certificates.get()
    cases = [
        (f"Import-ExchangeCertificate -FileName '{garbage}'", "isn't a certificate"),
        (f"Import-ExchangeCertificate -FileName '{tmp_path / 'none.cer'}'", "names no file"),
        (f"Import-ExchangeCertificate -FileName '{cer}' -Server CAS02", "completes no pending"),
        ("Import-ExchangeCertificate", "one of them"),
        (f"Import-ExchangeCertificate -FileName '{tmp_path / 'req.csr'}'", "certificate request"),
    ]
    for command, reason in cases:
        assert reason in shell.run(command).error().message, command
    assert bj.certificates.get() == before
    # -FileData takes the file's text
    text = cer.read_text().replace('"', "")
    out = shell.ok(f'Import-ExchangeCertificate -FileData "{text}"').out
    assert table(out)[0][0] == thumb


def test_default_server_and_pipelines(shell: Shell, bj: Directory) -> None:
    error = shell.run("New-ExchangeCertificate -GenerateRequest -DomainName x.lab.net").error()
    assert error.message == (
        "Name the server with -Server: the organization has 3 Client Access servers "
        "(CAS01, CAS02, CAS03), so there is no default one."
    )
    assert error.category == "InvalidArgument"
    shell.ok("New-ExchangeCertificate -Server CAS01 -Services None")
    shell.ok("New-ExchangeCertificate -Server CAS02 -DomainName bj-cas.lab.net -Services None")
    out = shell.ok("Get-ExchangeCertificate").out  # every server's
    assert [row[1:] for row in table(out)] == [["None", "CN=CAS01"], ["None", "CN=CAS02"]]
    shell.ok(
        "Get-ExchangeCertificate -DomainName bj-cas.lab.net | "
        "Enable-ExchangeCertificate -Services IIS"
    )
    out = shell.ok("Get-ExchangeCertificate -Server CAS02").out
    assert table(out)[0][1:] == ["IIS", "CN=CAS02"]
    out = shell.run("Enable-ExchangeCertificate -Services IMAP")
    assert "Name the certificate" in out.error().message


def test_iis_moves_with_a_warning(shell: Shell, bj: Directory) -> None:
    shell.ok("New-ExchangeCertificate -Server CAS01 -Services IIS")
    result = shell.ok("(New-ExchangeCertificate -Server CAS01 -Services IMAP,IIS).Thumbprint")
    second = lines(result.out)[-1]
    [warning] = result.warnings
    assert warning.startswith("IIS is bound to one certificate per server")
    assert warning.endswith(f"{second} is.")
    out = shell.ok("Get-ExchangeCertificate -Server CAS01 | Sort-Object Services").out
    assert [row[1:] for row in table(out)] == [["IMAP,", "IIS", "CN=CAS01"], ["None", "CN=CAS01"]]


def test_whatif_confirm_and_remove(shell: Shell, bj: Directory) -> None:
    out = shell.ok("New-ExchangeCertificate -Server CAS01 -Services None").out
    thumb = table(out)[0][0]
    result = shell.ok(f"Enable-ExchangeCertificate {thumb} -Services IMAP -WhatIf")
    assert result.out.strip() == what_if("Enable-ExchangeCertificate", thumb)
    assert bj.certificates.one(thumb).services == ()
    # Remove asks first (ConfirmImpact High); No keeps it
    result = shell.run(f"Remove-ExchangeCertificate -Thumbprint {thumb}", stdin="n\n")
    assert result.prompts == 1
    assert bj.certificates.one(thumb).thumbprint == thumb
    shell.ok(f"Enable-ExchangeCertificate {thumb} -Services IMAP")
    result = shell.ok(f"Remove-ExchangeCertificate {thumb} -Server CAS01 -Confirm:$false")
    assert result.warnings == [
        f"The certificate {thumb} was enabled for IMAP on CAS01; those services now use "
        "the server's other enabled certificates, if any."
    ]
    assert bj.certificates.get("CAS01") == []
    error = shell.run(f"Remove-ExchangeCertificate {thumb} -Confirm:$false").error()
    assert error.category == "ObjectNotFound"


def test_export_refused_for_a_key_not_exportable(shell: Shell, bj: Directory) -> None:
    out = shell.ok("New-ExchangeCertificate -Server CAS01 -Services None").out
    thumb = table(out)[0][0]
    error = shell.run(f"Export-ExchangeCertificate {thumb} -BinaryEncoded -Password {PASSWORD}")
    assert error.error().message == (
        "The private key couldn't be exported as PKCS-12. It either couldn't be accessed "
        "or isn't exportable."
    )
    # a pending request exports as its request
    out = shell.ok(
        f"{SEED_REQUEST} | Out-Null; Get-ExchangeCertificate -Server CAS01 | "
        "? Status -eq PendingRequest | Export-ExchangeCertificate"
    ).out
    assert out.startswith("-----BEGIN CERTIFICATE REQUEST-----")


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("New-ExchangeCertificate -Server CAS01 -KeySize 1024", "use 2048, 3072, 4096"),
        ("New-ExchangeCertificate -Server CAS01 -Services Web", "is not a service casarray runs"),
        (
            'New-ExchangeCertificate -GenerateRequest -Server CAS01 -SubjectName "O=Lab"',
            "has no common name",
        ),
        (
            "New-ExchangeCertificate -GenerateRequest -Server CAS01 -DomainName 'bad name'",
            "is not a valid domain name",
        ),
        ("New-ExchangeCertificate -Server CAS01 -RequestFile x.csr", "go with -GenerateRequest"),
        ("Get-ExchangeCertificate -Thumbprint 1234", "40 hexadecimal digits"),
    ],
)
def test_parameter_errors(shell: Shell, bj: Directory, command: str, reason: str) -> None:
    assert reason in shell.run(command).error().message
    assert bj.certificates.get() == []
