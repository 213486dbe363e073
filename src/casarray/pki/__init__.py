"""Certificates for the Client Access servers: what Windows' certificate stores and an
Enterprise CA give Exchange 2010.

- `names`: subject names (-SubjectName) and DNS names with wildcards.
- `keys`: RSA keys (-KeySize), PEM PKCS#8, the key id that ties key, request and
  certificate together.
- `certificates`: PKCS#10 requests with every name as a subject alternative name,
  self-signed server certificates, thumbprints and domains.
- `ca`: the lab certificate authority in `$CASARRAY_HOME/pki/ca/`, its root exported
  to `$CASARRAY_HOME/pki/lab-root.pem`.
- `formats`: PEM, DER, PKCS #7 and PKCS #12 in (Import-) and PKCS #12 out (Export-).
- `trust`: Exchange's Status and RootCAType of a certificate.
- `vault`: private keys sealed with the organization's key-encryption key.
- `server_tls`: what the servers serve over TLS (IMAP, IIS and SMTP alike): the
  certificates enabled for a service chosen by SNI and followed live, and a server's
  self-signed fallback.

The certificates themselves live in the directory (`Directory.certificates`), per
server, so every host of a deployment sees them.
"""

from casarray.pki.errors import PkiError

__all__ = ["PkiError"]
