"""STARTTLS's certificates: the self-signed fallback, then the certificates enabled for
SMTP, chosen by SNI, with the one covering the server's FQDN as the default."""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from casarray.pki.certificates import pem, self_signed, thumbprint
from casarray.pki.keys import private_pem
from casarray.transport import tls
from casarray.transport.config import Connector, TransportConfig
from casarray.transport.receive import ReceiveContext, bind, serve
from tests.pki.test_server_tls import Enabled


def make(*names: str) -> Enabled:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = self_signed(key, subject, list(names), dt.datetime.now(dt.UTC))
    return Enabled(
        thumbprint(cert), tuple(names), pem(cert), private_pem(key), cert.not_valid_after_utc
    )


def served(context: ssl.SSLContext, port: int, server_name: str | None) -> x509.Certificate:
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        client.ehlo("c")
        client._host = server_name or ""  # type: ignore[attr-defined]
        client.starttls(context=context)
        der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        return x509.load_der_x509_certificate(der)
    finally:
        client.close()


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def test_fallback_then_enabled_certificates_by_sni(
    tmp_path: Path, casarray_home: Path
) -> None:
    files = tls.ensure_fallback("MBX01", ["mbx01.lab.net"])
    assert tls.ensure_fallback("MBX01", ["mbx01.lab.net"]) == files  # kept, not made again
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    smtp_tls = tls.SmtpTls("MBX01", "mbx01.lab.net", files)

    class NoQueue:
        pass

    context = ReceiveContext(
        config=TransportConfig(
            server="MBX01",
            fqdn="mbx01.lab.net",
            connectors=(Connector(name="Default MBX01", bindings=(("0.0.0.0", 25),)),),
        ),
        queue=NoQueue(),  # type: ignore[arg-type]
        recipients=NoQueue(),  # type: ignore[arg-type]
        authenticator=NoQueue(),  # type: ignore[arg-type]
        tls=smtp_tls.context,
    )
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = await serve(context, sock, 25)
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    try:
        first = await asyncio.to_thread(served, client_context, port, "mbx01.lab.net")
        assert common_name(first) == "mbx01.lab.net"
        assert smtp_tls.default is None

        mail = make("mail.lab.net", "smtp.lab.net")
        own = make("mbx01.lab.net")
        assert smtp_tls.update([mail, own])  # newest first
        assert not smtp_tls.update([mail, own])  # the same: no change
        assert smtp_tls.default == own.thumbprint  # it covers the FQDN
        by_name = await asyncio.to_thread(served, client_context, port, "smtp.lab.net")
        assert common_name(by_name) == "mail.lab.net"
        default = await asyncio.to_thread(served, client_context, port, "other.lab.net")
        assert common_name(default) == "mbx01.lab.net"
        assert thumbprint(default) == own.thumbprint
    finally:
        server.close()
