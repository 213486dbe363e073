"""`casarray dns run` queried by real clients (dig, dnspython) over UDP and TCP.

A server runs from a directory with the BJ/SH topology, the BJ array behind an NLB
cluster and a few records added by cmdlet; every case of the issue is asked of it:
AA without RA, the question's case, NODATA and NXDOMAIN with the SOA, an empty
non-terminal, CNAME chasing, additional addresses for MX and SRV, REFUSED, FORMERR,
NOTIMP, EDNS and BADVERS, truncation and the retry over TCP, several queries on one
TCP connection, the directory followed at once (serial up), the status file,
worker processes, and the port when 53 can't be bound. The views are asked of a server
in this process whose inside networks leave most of 127/8 outside (the directory's
always hold loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from casarray.directory import Directory
from casarray.dns.dns_process import bind_pair, read_status, status_file
from casarray.dns.handler import Responder
from casarray.dns.server import DnsServer
from casarray.dns.zones import build_zones
from tests.conftest import build_bj

DIG = shutil.which("dig")
ADDRESS = "127.77.53.1"  # the server of this module (the lab's 127.77.0.53 stays free)
LONG_TEXT = "casarray " * 24  # 216 characters: 8 of them don't fit 1232 bytes


def need_dig() -> str:
    """dig's path; the test is skipped without it (failed under CI)."""
    if DIG is None:
        missing = "dig is not installed (Debian package bind9-dnsutils)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return DIG


def make_directory(url: str) -> None:
    with Directory.open(url) as d:
        build_bj(d)
        d.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
        d.nlb.new_cluster("bj-cas.lab.net", "127.77.1.10", array="BJ CAS Array")
        d.dns.add_record("lab.net", "owa", "CNAME", "bj-cas.lab.net.")
        d.dns.add_record("lab.net", "webmail", "CNAME", "owa.lab.net.")
        d.dns.add_record("lab.net", "x.deep", "A", "192.0.2.1")
        for i in range(8):
            d.dns.add_record("lab.net", "big", "TXT", f"{i} {LONG_TEXT}")


@dataclass
class Running:
    proc: subprocess.Popen[str]
    home: Path
    url: str
    address: str
    port: int
    status: dict[str, Any]
    env: dict[str, str]


def start(
    home: Path,
    url: str,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> subprocess.Popen[str]:
    env = env or {**os.environ, "CASARRAY_HOME": str(home)}
    return subprocess.Popen(
        [
            *(prefix or []),
            sys.executable,
            "-m",
            "casarray",
            "dns",
            "run",
            "--directory",
            url,
            *args,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_status(home: Path, proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(home)
        if status is not None and status.get("pid") == proc.pid:
            return status
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError("the server didn't start")


def finish(proc: subprocess.Popen[str]) -> str:
    """Wait for a server that must fail to start; its stderr."""
    _, err = proc.communicate(timeout=60)
    return err


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("dns-home")
    url = f"sqlite:///{home / 'directory.db'}"
    make_directory(url)
    env = {**os.environ, "CASARRAY_HOME": str(home)}
    proc = start(home, url, "--address", ADDRESS, "--port", "0", env=env)
    try:
        status = wait_status(home, proc)
        yield Running(proc, home, url, ADDRESS, int(status["port"]), status, env)
    finally:
        err = stop(proc)
        assert proc.returncode == 0, err


def dig(server: Running, *args: str) -> str:
    result = subprocess.run(
        [need_dig(), f"@{server.address}", "-p", str(server.port), "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr


def header(output: str) -> tuple[str, set[str]]:
    """(status, flags) of dig's (last) answer."""
    statuses = re.findall(r"status: (\w+)", output)
    flags = re.findall(r";; flags: ([a-z ]*);", output)
    assert statuses and flags, output
    return statuses[-1], set(flags[-1].split())


def section(output: str, name: str) -> list[str]:
    """The records of one section of dig's output, whitespace folded."""
    match = re.search(rf";; {name} SECTION:\n(.*?)(?:\n\n|\Z)", output, re.S)
    if match is None:
        return []
    return [" ".join(line.split()) for line in match.group(1).splitlines() if line]


def ask(
    server: Running, name: str, rdtype: str = "A", *, tcp: bool = False, **kw: Any
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)
    if tcp:
        return dns.query.tcp(query, server.address, port=server.port, timeout=5)
    return dns.query.udp(query, server.address, port=server.port, timeout=5)


# -- the answers, as dig shows them ----------------------------------------------------


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_positive_answer(server: Running, transport: str) -> None:
    out = dig(server, transport, "cas01.lab.net", "A")
    status, flags = header(out)
    assert status == "NOERROR"
    assert flags == {"qr", "aa", "rd"}  # no ra: recursion is not offered
    assert section(out, "ANSWER") == ["cas01.lab.net. 1200 IN A 127.77.1.11"]
    assert section(out, "AUTHORITY") == ["lab.net. 3600 IN NS ns1.lab.net."]
    assert section(out, "ADDITIONAL") == ["ns1.lab.net. 1200 IN A 127.77.0.53"]
    assert ("(TCP)" in out) == (transport == "+tcp")


def test_question_case_is_preserved(server: Running) -> None:
    out = dig(server, "+norec", "CaS02.LaB.NeT", "A")
    assert header(out) == ("NOERROR", {"qr", "aa"})
    assert ";CaS02.LaB.NeT.\t" in out
    assert section(out, "ANSWER") == ["CaS02.LaB.NeT. 1200 IN A 127.77.1.12"]


def test_nodata_and_nxdomain_carry_the_soa(server: Running) -> None:
    nodata = dig(server, "cas01.lab.net", "AAAA")
    assert header(nodata)[0] == "NOERROR"
    assert section(nodata, "ANSWER") == []
    soa = section(nodata, "AUTHORITY")
    assert len(soa) == 1 and soa[0].startswith(
        "lab.net. 3600 IN SOA ns1.lab.net. hostmaster.lab.net."
    )
    nx = dig(server, "nothere.lab.net", "A")
    assert header(nx) == ("NXDOMAIN", {"qr", "aa", "rd"})
    assert section(nx, "AUTHORITY") == soa


@pytest.mark.parametrize("name", ["deep.lab.net", "_tcp.lab.net"])
def test_empty_non_terminal_is_nodata(server: Running, name: str) -> None:
    out = dig(server, name, "A")
    assert header(out)[0] == "NOERROR"
    assert section(out, "ANSWER") == [] and "SOA" in section(out, "AUTHORITY")[0]


def test_cname_is_chased_in_the_zone(server: Running) -> None:
    out = dig(server, "webmail.lab.net", "A")
    assert header(out)[0] == "NOERROR"
    assert section(out, "ANSWER") == [
        "webmail.lab.net. 3600 IN CNAME owa.lab.net.",
        "owa.lab.net. 3600 IN CNAME bj-cas.lab.net.",
        "bj-cas.lab.net. 1200 IN A 127.77.1.10",
    ]


def test_mx_and_srv_targets_in_additional(server: Running) -> None:
    mx = dig(server, "lab.net", "MX")
    assert section(mx, "ANSWER") == ["lab.net. 1200 IN MX 10 mail.lab.net."]
    assert "mail.lab.net. 1200 IN A 127.77.1.10" in section(mx, "ADDITIONAL")
    srv = dig(server, "_autodiscover._tcp.lab.net", "SRV")
    assert section(srv, "ANSWER") == [
        "_autodiscover._tcp.lab.net. 1200 IN SRV 0 1 443 autodiscover.lab.net."
    ]
    assert "autodiscover.lab.net. 1200 IN A 127.77.1.10" in section(srv, "ADDITIONAL")


def test_out_of_zone_is_refused(server: Running) -> None:
    out = dig(server, "www.example.com", "A")
    assert header(out) == ("REFUSED", {"qr", "rd"})
    assert "EDE: 20 (Not Authoritative)" in out


def test_other_opcode_is_notimp(server: Running) -> None:
    out = dig(server, "+opcode=status", "lab.net", "SOA")
    assert header(out)[0] == "NOTIMP"


def test_edns_payload_and_badvers(server: Running) -> None:
    out = dig(server, "+bufsize=4096", "cas01.lab.net")
    assert "; EDNS: version: 0, flags:; udp: 1232" in out
    assert "; EDNS: version: 0, flags: do; udp: 1232" in dig(server, "+dnssec", "cas01.lab.net")
    bad = dig(server, "+edns=1", "+noednsneg", "cas01.lab.net")
    assert header(bad)[0] == "BADVERS"
    assert "OPT PSEUDOSECTION" not in dig(server, "+noedns", "cas01.lab.net")


def test_truncated_then_tcp(server: Running) -> None:
    out = dig(server, "big.lab.net", "TXT")  # dig retries over TCP by itself
    assert ";; Truncated, retrying in TCP mode." in out
    assert header(out) == ("NOERROR", {"qr", "aa", "rd"})
    assert len(section(out, "ANSWER")) == 8
    assert "(TCP)" in out
    ignored = dig(server, "+ignore", "big.lab.net", "TXT")
    assert header(ignored) == ("NOERROR", {"qr", "aa", "tc", "rd"})
    assert section(ignored, "ANSWER") == []
    # dnspython: TC over UDP, all of it over TCP
    udp = ask(server, "big.lab.net", "TXT", use_edns=0, payload=1232)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(server, "big.lab.net", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 8
    query = dns.message.make_query("big.lab.net", "TXT")
    answer, used_tcp = dns.query.udp_with_fallback(
        query, server.address, port=server.port, timeout=5
    )
    assert used_tcp and len(answer.answer[0]) == 8


# -- raw packets and TCP framing ---------------------------------------------------------


def raw_udp(server: Running, packet: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(packet, (server.address, server.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def test_formerr_and_silence(server: Running) -> None:
    query = dns.message.make_query("cas01.lab.net", "A").to_wire()
    two_questions = query[:4] + b"\x00\x02" + query[6:] + query[12:]
    reply = raw_udp(server, two_questions)
    assert reply is not None and reply[:2] == query[:2]
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    garbage = raw_udp(server, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xffgarbage")
    assert garbage is not None and garbage[3] & 0xF == dns.rcode.FORMERR
    response = bytearray(query)
    response[2] |= 0x80
    assert raw_udp(server, bytes(response)) is None  # a response is not answered
    # ... and the server still answers afterwards
    assert ask(server, "cas01.lab.net").answer


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_several_queries_on_one_tcp_connection(server: Running) -> None:
    names = ["cas01.lab.net", "nothere.lab.net", "lab.net", "big.lab.net"]
    queries = [dns.message.make_query(n, "TXT" if n.startswith("big") else "A") for n in names]
    with socket.create_connection((server.address, server.port), timeout=5) as sock:
        # all written at once (pipelined), then each answer read in turn
        sock.sendall(
            b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries))
        )
        answers = []
        for _ in queries:
            (length,) = struct.unpack("!H", read_exactly(sock, 2))
            answers.append(dns.message.from_wire(read_exactly(sock, length)))
        # and one more after a pause, on the same connection
        time.sleep(0.2)
        late = dns.message.make_query("cas02.lab.net", "A").to_wire()
        sock.sendall(struct.pack("!H", len(late)) + late)
        (length,) = struct.unpack("!H", read_exactly(sock, 2))
        answers.append(dns.message.from_wire(read_exactly(sock, length)))
    assert [a.id for a in answers[:4]] == [q.id for q in queries]
    assert [a.rcode() for a in answers] == [0, dns.rcode.NXDOMAIN, 0, 0, 0]
    assert len(answers[3].answer[0]) == 8
    out = dig(server, "+tcp", "+keepopen", "cas01.lab.net", "cas02.lab.net", "cas03.lab.net")
    assert len(re.findall(r"status: NOERROR", out)) == 3


# -- following the directory, status, processes ---------------------------------------------


def serial(server: Running) -> int:
    return int(ask(server, "lab.net", "SOA").answer[0][0].serial)


def test_a_directory_change_is_served_at_once(server: Running) -> None:
    before = serial(server)
    with Directory.open(server.url) as d:
        started = time.monotonic()
        d.dns.add_record("lab.net", "newhost", "A", "192.0.2.99")
        while not ask(server, "newhost.lab.net").answer:
            assert time.monotonic() - started < 5, "not served within 5 s"
            time.sleep(0.02)
        after = serial(server)
        assert after > before
        assert read_status(server.home)["serial"] == after  # type: ignore[index]
        started = time.monotonic()
        d.dns.remove_records("lab.net", "newhost", "A")
        while ask(server, "newhost.lab.net").rcode() != dns.rcode.NXDOMAIN:
            assert time.monotonic() - started < 5, "removal not served within 5 s"
            time.sleep(0.02)
    assert serial(server) > after


def test_status_file(server: Running) -> None:
    status = read_status(server.home)
    assert status is not None
    assert status["pid"] == server.proc.pid
    assert (status["address"], status["port"]) == (server.address, server.port)
    assert status["zones"] == ["lab.net"]
    assert status["processes"] == [server.proc.pid]


def test_workers_share_the_port_and_come_back(tmp_path: Path, server: Running) -> None:
    home = tmp_path / "home"
    proc = start(home, server.url, "--address", "127.77.53.2", "--port", "0", "--processes", "3")
    try:
        status = wait_status(home, proc)
        assert len(status["processes"]) == 3 and status["processes"][0] == proc.pid
        port = int(status["port"])
        peer = dataclasses.replace(server, address="127.77.53.2", port=port)
        for i in range(30):  # from many source ports: the kernel spreads them
            assert ask(peer, f"cas0{1 + i % 3}.lab.net", tcp=i % 2 == 0).answer
        worker = status["processes"][1]
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = read_status(home)
            if now is not None and worker not in now["processes"] and len(now["processes"]) == 3:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the killed worker wasn't started again")
        for _ in range(10):
            assert ask(peer, "cas01.lab.net").answer
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err
    assert "worker 1" in err and "exited with status -9; restarting it" in err
    assert status_file(home).path.exists() is False


def test_without_low_ports_it_is_10053_said_once(tmp_path: Path, server: Running) -> None:
    """Run without the right to bind ports below 1024: as root, with CAP_NET_BIND_SERVICE
    dropped from the bounding set (`setpriv`), so the code stays readable wherever the
    checkout is (a user such as nobody may not reach a checkout in /root)."""
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="casarray-dns-"))
    try:
        shutil.copy(server.url.removeprefix("sqlite:///"), folder / "directory.db")
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                missing = "setpriv (util-linux) is needed to drop CAP_NET_BIND_SERVICE"
                if os.environ.get("CI"):
                    pytest.fail(missing)
                pytest.skip(missing)
            prefix = [setpriv, "--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service"]
        home = folder / "home"
        url = f"sqlite:///{folder / 'directory.db'}"
        env = {**os.environ, "CASARRAY_HOME": str(home)}
        proc = start(home, url, "--address", "127.77.53.3", env=env, prefix=prefix)
        try:
            status = wait_status(home, proc)
            assert status["port"] == 10053
            peer = dataclasses.replace(server, address="127.77.53.3", port=10053)
            assert ask(peer, "cas01.lab.net").answer
        finally:
            err = stop(proc)
        assert proc.returncode == 0, err
        said = [line for line in err.splitlines() if "may not bind ports below 1024" in line]
        assert len(said) == 1 and "port 10053" in said[0]
        # an explicit low port that can't be bound is an error, not a fallback
        proc = start(
            home, url, "--address", "127.77.53.3", "--port-offset", "0", env=env, prefix=prefix
        )
        err = finish(proc)
        assert proc.returncode == 1
        assert "may not bind port 53 on 127.77.53.3" in err
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_address_not_local_is_a_clear_error(server: Running) -> None:
    proc = start(server.home, server.url, "--address", "192.0.2.53", "--port", "0", env=server.env)
    err = finish(proc)
    assert proc.returncode == 1
    assert "can't listen on 192.0.2.53" in err


# -- views and TCP limits, on a server in this process -----------------------------------------


@contextlib.asynccontextmanager
async def in_process(server: Running, address: str, **kw: Any):  # type: ignore[no-untyped-def]
    """A DnsServer on `address` whose inside view is for 127.77.1.0/24 only."""
    with Directory.open(server.url) as d:
        zones = await asyncio.to_thread(build_zones, d)
    zones = dataclasses.replace(zones, inside_networks=(ipaddress.ip_network("127.77.1.0/24"),))
    udp, tcp = bind_pair(address, 0, reuse_port=False)
    dns_server = DnsServer(Responder(zones), **kw)
    await dns_server.start(udp, tcp)
    try:
        yield dns_server, int(tcp.getsockname()[1])
    finally:
        await dns_server.close()


async def adig(address: str, port: int, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        need_dig(),
        f"@{address}",
        "-p",
        str(port),
        "+time=2",
        "+tries=1",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return out.decode()


async def test_views_by_client_address(server: Running) -> None:
    async with in_process(server, "127.77.53.4") as (_, port):
        for transport in ("+notcp", "+tcp"):
            inside = await adig(
                "127.77.53.4", port, "-b", "127.77.1.50", transport, "bj-cas.lab.net"
            )
            assert header(inside)[0] == "NOERROR"
            assert section(inside, "ANSWER") == ["bj-cas.lab.net. 1200 IN A 127.77.1.10"]
            outside = await adig(
                "127.77.53.4", port, "-b", "127.99.0.1", transport, "bj-cas.lab.net"
            )
            assert header(outside) == ("NXDOMAIN", {"qr", "aa", "rd"})
            for name in ("cas01.lab.net", "mbx01.lab.net"):
                hidden = await adig("127.77.53.4", port, "-b", "127.99.0.1", transport, name)
                assert header(hidden)[0] == "NXDOMAIN"
            public = await adig(
                "127.77.53.4", port, "-b", "127.99.0.1", transport, "autodiscover.lab.net"
            )
            assert section(public, "ANSWER") == ["autodiscover.lab.net. 1200 IN A 127.77.1.10"]
            mx = await adig("127.77.53.4", port, "-b", "127.99.0.1", transport, "lab.net", "MX")
            assert "mail.lab.net. 1200 IN A 127.77.1.10" in section(mx, "ADDITIONAL")


async def test_idle_tcp_connections_are_closed(server: Running) -> None:
    async with in_process(server, "127.77.53.5", idle_timeout=0.3) as (dns_server, port):
        reader, writer = await asyncio.open_connection("127.77.53.5", port)
        query = dns.message.make_query("autodiscover.lab.net", "A").to_wire()
        writer.write(struct.pack("!H", len(query)) + query)
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        assert dns.message.from_wire(await reader.readexactly(length)).answer
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the server
        assert 0.2 < time.monotonic() - started < 2
        writer.close()
        assert not dns_server.connections


async def test_tcp_connections_are_bounded(server: Running) -> None:
    async with in_process(server, "127.77.53.6", max_connections=2) as (dns_server, port):
        held = [await asyncio.open_connection("127.77.53.6", port) for _ in range(2)]
        while len(dns_server.connections) < 2:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.77.53.6", port)
        assert await asyncio.wait_for(reader.read(), 3) == b""  # the third: closed at once
        writer.close()
        query = dns.message.make_query("autodiscover.lab.net", "A").to_wire()
        first_reader, first_writer = held[0]
        first_writer.write(struct.pack("!H", len(query)) + query)
        (length,) = struct.unpack("!H", await first_reader.readexactly(2))
        assert dns.message.from_wire(await first_reader.readexactly(length)).answer
        for _, w in held:
            w.close()
