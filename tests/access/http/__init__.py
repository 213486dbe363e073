"""Tests of the HTTP service (Autodiscover, autoconfig), and what they share: the
organization they run against and an in-process client."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from starlette.testclient import TestClient

from casarray.access.http import AppContext, ServicePorts, create_app
from casarray.access.http.app import http_server
from casarray.directory import Directory


def build_org(d: Directory, password_hash: str) -> Directory:
    """The BJ/SH topology plus: the BJ array bj-cas.lab.net; DB01 (MBX01, BJ; names
    the array) with alice, DB03 (MBX02, SH; names CAS03) with bob; and site GZ with
    only a Mailbox server, MBX03, whose DB04 holds carol (no Client Access endpoint)."""
    d.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    d.databases.new("DB01", "MBX01", mounted=True)
    d.databases.new("DB03", "MBX02", mounted=True)
    d.sites.new("GZ", ["127.77.3.0/24"])
    d.servers.new("MBX03", "Mailbox", "127.77.3.21")
    d.databases.new("DB04", "MBX03", mounted=True)
    for alias, name, database in (
        ("alice", "Alice Wang", "DB01"),
        ("bob", "Bob Li", "DB03"),
        ("carol", "Carol Zhou", "DB04"),
    ):
        d.mailboxes.new(name=name, alias=alias, database=database, password_hash=password_hash)
    return d


def client(
    d: Directory,
    server: str = "CAS01",
    *,
    base_url: str = "https://autodiscover.lab.net",
    ports: ServicePorts | None = None,
    **context: object,
) -> TestClient:
    """An in-process client of the HTTP service of `server`."""
    app = create_app(AppContext.for_server(d, server, ports=ports, **context))
    return TestClient(app, base_url=base_url, follow_redirects=False)


class Served:
    """uvicorn (`app.http_server`, as the runner serves it) serving `app` on a socket
    of 127.0.0.1 that we bind (with TLS when `ssl_context` is given), in a thread
    with its own event loop."""

    def __init__(self, app: Any, ssl_context: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.server = http_server(app, ssl_context=ssl_context)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn didn't start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
