"""What the hosts lab's tests share: a time limit on every test (SIGALRM; a module may
set its own TEST_TIMEOUT), and the
network under a test-only prefix with a random suffix, so nothing collides with a real
lab (`cas-`) or another test; always removed at the end."""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from casarray.lab.hosts.network import HostNetwork, missing
from casarray.lab.hosts.plan import HostPlan
from tests.lab import required

TEST_TIMEOUT = 60  # seconds, per test
PORT = 7007


class TimedOut(Exception):
    pass


@pytest.fixture(autouse=True)
def time_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    limit = int(getattr(request.module, "TEST_TIMEOUT", TEST_TIMEOUT))  # a module's own

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimedOut(f"the test took more than {limit} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fresh_prefix() -> str:
    return f"ct{secrets.token_hex(2)}-"


@contextlib.contextmanager
def hosts_network(servers: list[tuple[str, str, str]] | None = None) -> Iterator[HostNetwork]:
    """The hosts network under a fresh test prefix, taken down at the end."""
    required(missing())
    network = HostNetwork(HostPlan.build(servers, prefix=fresh_prefix()))
    try:
        network.up()
        yield network
    finally:
        network.down()


@pytest.fixture(scope="module")
def network() -> Iterator[HostNetwork]:
    with hosts_network() as made:
        yield made


LISTENER = (
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {PORT}))\n"
    "s.listen()\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    c.sendall(b'hi')\n"
    "    c.close()\n"
)
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    f"    c = socket.create_connection((sys.argv[1], {PORT}), timeout=float(sys.argv[2]))\n"
    "    assert c.recv(2) == b'hi'\n"
    "except OSError as exc:\n"
    "    sys.exit(f'{type(exc).__name__}: {exc}')\n"
)


@contextlib.contextmanager
def listening(network: HostNetwork, host: str) -> Iterator[subprocess.Popen[str]]:
    """A TCP server on PORT in `host` (started there by setns), stopped at the end."""
    process = subprocess.Popen(
        [sys.executable, "-c", LISTENER],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=network.preexec(host),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait(5)


def reaches(network: HostNetwork, source: str, address: str, timeout: float = 1.0) -> bool:
    """Whether a TCP connection from `source` to `address`:PORT succeeds."""
    done = network.exec(
        source,
        [sys.executable, "-c", CONNECT, address, str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    return done.returncode == 0


def reaches_host(network: HostNetwork, source: str, target: str, timeout: float = 1.0) -> bool:
    with listening(network, target):
        return reaches(network, source, network.plan.host(target).address, timeout)


def wait_until(condition: object, timeout: float = 5.0) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
