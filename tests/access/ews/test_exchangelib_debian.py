"""Debian's python3-exchangelib (4.9) under the system Python, finding alice's account
by POX Autodiscover (its default) and listing her inbox, against a Client Access
server served by uvicorn on a loopback port.

exchangelib 4.9 starts POX Autodiscover from its autodiscover cache when the cache
holds an endpoint for the address's domain (a cache hit posts the Outlook request
there, authenticated, and takes the answer's EXCH EwsUrl); the script puts the served
server's /Autodiscover/Autodiscover.xml there, as exchangelib's documentation shows
for a known endpoint, instead of reaching lab.net through DNS. The EWS virtual
directory's InternalUrl is the served address, so the EwsUrl Autodiscover hands out is
one the script can reach. The authentication is whatever exchangelib picks from the
401's offers (NTLM here, so alice's password is set again to keep its NT hash)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from casarray.access.http import AppContext, create_app
from casarray.access.imap.directory_backend import LoginThrottle
from casarray.directory import Directory
from casarray.mailstore.store import close_all
from tests.access.http import Served, build_org
from tests.access.http.test_api import PASSWORD, cheap_hash, mailbox_store

SYSTEM_PYTHON = "/usr/bin/python3"
COUNT = 105
START = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


def missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"no system Python at {SYSTEM_PYTHON}"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", "import exchangelib; print(exchangelib.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return "Debian's python3-exchangelib is not installed (`make test` installs it)"
    return None


pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

SCRIPT = r"""
import json, sys
from exchangelib import Account, Configuration, Credentials, FailFast, __version__
from exchangelib.autodiscover import AutodiscoverProtocol, autodiscover_cache

address, password, endpoint = sys.argv[1:4]
credentials = Credentials(address, password)
with autodiscover_cache:
    autodiscover_cache[(address.split("@")[1], credentials)] = AutodiscoverProtocol(
        config=Configuration(
            service_endpoint=endpoint, credentials=credentials, retry_policy=FailFast()
        )
    )
account = Account(address, credentials=credentials, autodiscover=True)
ad = account.ad_response
inbox = account.inbox
items = list(inbox.all().only("subject", "is_read"))
print(json.dumps({
    "version": __version__,
    "discovery": type(ad).__module__ + "." + type(ad).__name__,
    "address": ad.autodiscover_smtp_address,
    "display_name": ad.user.display_name,
    "ews_url": account.protocol.service_endpoint,
    "auth_type": account.protocol.auth_type,
    "server_version": str(account.version.build),
    "inbox": inbox.name,
    "total": inbox.total_count,
    "unread": inbox.unread_count,
    "subjects": [m.subject for m in items],
    "ids": len({m.id for m in items}),
}))
"""


def numbered(n: int) -> bytes:
    return (
        b"From: Bob Li <bob@lab.net>\r\nTo: Alice Wang <alice@lab.net>\r\n"
        b"Subject: Debian " + str(n).encode() + b"\r\n"
        b"Date: "
        + (START + timedelta(minutes=n)).strftime("%a, %d %b %Y %H:%M:%S +0000").encode()
        + b"\r\nMessage-ID: <deb"
        + str(n).encode()
        + b"@lab.net>\r\n\r\nBody "
        + str(n).encode()
        + b"\r\n"
    )


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(bj: Directory) -> Iterator[Directory]:
    d = build_org(bj, cheap_hash(PASSWORD))
    d.mailboxes.set("alice", password=PASSWORD)  # the NT hash, for NTLM
    store = mailbox_store(d, "alice")
    store.append_many(
        "INBOX",
        [
            (numbered(n), ["\\Seen"] if n % 3 == 0 else [], START + timedelta(minutes=n))
            for n in range(1, COUNT + 1)
        ],
    )
    yield d
    close_all()


@pytest.fixture
def cas01(org: Directory) -> Iterator[Served]:
    throttle = LoginThrottle(max_failures=50)
    ctx = AppContext.for_server(org, "CAS01", throttle=throttle, require_tls=False)
    served = Served(create_app(ctx), None)
    for server in ("CAS01", "CAS02"):  # the BJ site's servers: one of them is handed out
        org.virtual_directories.set(
            "WebServices",
            server,
            internal_url=f"http://127.0.0.1:{served.port}/EWS/Exchange.asmx",
        )
    with served:
        yield served


def run_exchangelib(tmp_path: Path, served: Served, address: str) -> dict[str, Any]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),  # exchangelib's autodiscover cache file goes there
        "NO_PROXY": "*",
    }
    if "LANG" in os.environ:
        env["LANG"] = os.environ["LANG"]
    endpoint = f"http://127.0.0.1:{served.port}/Autodiscover/Autodiscover.xml"
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", SCRIPT, address, PASSWORD, endpoint],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_pox_autodiscover_finds_the_account_and_lists_the_inbox(
    tmp_path: Path, cas01: Served
) -> None:
    found = run_exchangelib(tmp_path, cas01, "alice@lab.net")
    assert found["version"].startswith("4.9")
    # the POX flavour's response (SOAP's would be exchangelib.properties.UserResponse)
    assert found["discovery"] == "exchangelib.autodiscover.properties.Response"
    assert found["address"] == "alice@lab.net"
    assert found["display_name"] == "Alice Wang"
    assert found["ews_url"] == f"http://127.0.0.1:{cas01.port}/EWS/Exchange.asmx"
    assert found["server_version"].startswith("14.3")
    assert found["auth_type"] == "NTLM", found["auth_type"]  # its pick of the 401 offers
    assert found["inbox"] == "Inbox"
    assert found["total"] == COUNT
    assert found["unread"] == COUNT - COUNT // 3
    assert found["ids"] == COUNT
    assert found["subjects"][:3] == [f"Debian {n}" for n in (COUNT, COUNT - 1, COUNT - 2)]
    assert sorted(found["subjects"]) == sorted(f"Debian {n}" for n in range(1, COUNT + 1))
