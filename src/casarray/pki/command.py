"""`casarray pki sign REQUEST [--out FILE]` and `casarray pki root`: the lab CA from
the command line, for requests made elsewhere (openssl req, another tool)."""

from __future__ import annotations

import sys
from pathlib import Path

from casarray.pki import certificates as certs
from casarray.pki.ca import LabCA
from casarray.pki.errors import PkiError
from casarray.pki.files import PUBLIC_FILE, write_file


def run(action: str, request: str | None = None, out: str | None = None) -> int:
    """Run a `casarray pki` action; errors go to stderr with exit status 1."""
    if action == "root":
        print(LabCA.open().root_path)
        return 0
    if action != "sign" or request is None:
        raise ValueError(f"unknown pki action {action}")
    try:
        data = Path(request).read_bytes()
    except OSError as exc:
        print(f"casarray: can't read the request {request}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        ca = LabCA.open()
        cert = ca.sign(certs.load_request(data))
    except PkiError as exc:
        print(f"casarray: {exc}", file=sys.stderr)
        return 1
    pem = certs.pem(cert)
    if out is None:
        sys.stdout.write(pem.decode())
    else:
        try:
            write_file(Path(out), pem, PUBLIC_FILE)
        except OSError as exc:
            print(f"casarray: can't write {out}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"Issued {certs.thumbprint(cert)} to {out}; the root clients trust: {ca.root_path}")
    return 0
