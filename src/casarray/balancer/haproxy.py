"""HAProxy as the balancer engine for several hosts: render an haproxy.cfg for a
cluster, and drive a running haproxy through its runtime API socket.

`render_config(view, socket_path=...)` writes, per port rule:

- a `frontend` binding the cluster IP (or the rule's IP) on the rule's ports plus
  `view.listen_offset` (a range binds `ip:start-end`);
- a `backend` of the cluster's nodes on the port plus `view.backend_offset`. A
  single-port rule names the node port; a range uses HAProxy's relative port
  (`addr:+N`, or no port at all when the offsets are equal) with the checks on the
  range's first port.

Balancing: Affinity None -> `balance roundrobin` (or `leastconn`, by argument);
Affinity Single -> `balance source` with `hash-type consistent`; Affinity Network ->
`balance hash src,ipmask(24)` with `hash-type consistent` (the client /24). With an
NLB Timeout (minutes) > 0 the affinity is also kept in a stick table (`stick-table
type ip size 100k expire <timeout>m` + `stick on src`, or `src,ipmask(24)`).
Filtering mode Single puts the highest-priority node first and the others as
`backup` in priority order; Disabled binds the ports and rejects every connection;
UDP-only rules are left out (HAProxy does not balance UDP), Both keeps the TCP part.

Servers: `check inter 500 fall 2 rise 2 slowstart 10s` (checks jittered by
`spread-checks`), passive detection with `observe layer4 error-limit 1 on-error
mark-down` (a refused connection marks the node down at once; `option redispatch`
and `retries` send the connection to another node). Weights are NLB's LoadWeight
kept as is, 0..100 (HAProxy accepts 0..256; only the ratios matter; 50 is NLB's
Equal). A Draining node renders `weight 0` (no new connections, open ones stay),
a Stopped or Suspended one `disabled` (maintenance).

Health checks, by the rule's (first) port, as the built-in probes do: IMAP (143,
993) `option tcp-check` + `tcp-check expect string "* OK"`; HTTP (80, 443) `option
httpchk GET <health_path>` + `http-check expect status 200`; TLS ports (993, 443) add
`check-ssl verify none` to the servers; any other port a plain TCP connect.

`RuntimeApi` talks to the `stats socket` (level admin) to change a server's state or
weight without a reload, and reads `show servers state`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from casarray.balancer.model import (
    Affinity,
    ClusterView,
    FilteringMode,
    HostState,
    Node,
    PortRule,
    Probe,
    RuleProtocol,
)
from casarray.errors import CasarrayError

__all__ = [
    "HEALTH_PATH",
    "RuntimeApi",
    "RuntimeApiError",
    "ServerState",
    "backend_name",
    "frontend_name",
    "render_config",
    "server_name",
]

HEALTH_PATH = "/owa/healthcheck.htm"
SERVER_CHECK = "check inter 500 fall 2 rise 2 slowstart 10s observe layer4 error-limit 1"
SERVER_CHECK += " on-error mark-down"


def _ident(text: str) -> str:
    """An HAProxy identifier: letters, digits, `-`, `_`, `.`, `:` kept, others `_`."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)


def _ports(rule: PortRule, offset: int) -> str:
    start, end = rule.start_port + offset, rule.end_port + offset
    return str(start) if start == end else f"{start}-{end}"


def frontend_name(view: ClusterView, rule: PortRule) -> str:
    """`<cluster>_<ports>` for the frontend, e.g. `bj-cas.lab.net_143`."""
    return _ident(f"{view.name}_{_ports(rule, 0)}")


def backend_name(view: ClusterView, rule: PortRule) -> str:
    """The backend serving a rule (`be_` + the frontend name): what RuntimeApi takes."""
    return "be_" + frontend_name(view, rule)


def server_name(node: Node) -> str:
    """The server name of a node in every backend: its name, e.g. `CAS01`."""
    return _ident(node.name)


def _balance(rule: PortRule, balance_none: str) -> list[str]:
    if rule.affinity is Affinity.SINGLE:
        return ["balance source", "hash-type consistent"]
    if rule.affinity is Affinity.NETWORK:
        return ["balance hash src,ipmask(24)", "hash-type consistent"]
    return [f"balance {balance_none}"]


def _stickiness(rule: PortRule) -> list[str]:
    if rule.timeout_minutes <= 0 or rule.affinity is Affinity.NONE:
        return []
    key = "src" if rule.affinity is Affinity.SINGLE else "src,ipmask(24)"
    return [f"stick-table type ip size 100k expire {rule.timeout_minutes}m", f"stick on {key}"]


def _checks(probe: Probe, health_path: str) -> list[str]:
    if probe is Probe.IMAP:
        return ["option tcp-check", 'tcp-check expect string "* OK"']
    if probe is Probe.HTTP:
        return [f"option httpchk GET {health_path}", "http-check expect status 200"]
    return []


def _server_address(view: ClusterView, rule: PortRule, node: Node) -> tuple[str, str]:
    """The server's `addr[:port]` and the extra `port N` for the checks of a range."""
    if rule.start_port == rule.end_port:
        return f"{node.address}:{rule.start_port + view.backend_offset}", ""
    shift = view.backend_offset - view.listen_offset
    address = node.address if shift == 0 else f"{node.address}:{shift:+d}"
    return address, f" port {rule.start_port + view.backend_offset}"


def _servers(view: ClusterView, rule: PortRule, tls_check: bool) -> list[str]:
    ordered = sorted(view.nodes, key=lambda node: node.priority)
    lines = []
    for position, node in enumerate(ordered):
        address, check_port = _server_address(view, rule, node)
        weight = 0 if node.state is HostState.DRAINING else rule.weight(node.name)
        line = f"server {server_name(node)} {address} {SERVER_CHECK}{check_port} weight {weight}"
        if tls_check:
            line += " check-ssl verify none"
        if rule.proxy_protocol:  # the client named in a PROXY v2 header, checks too
            line += " send-proxy-v2 check-send-proxy"
        if rule.mode is FilteringMode.SINGLE and position > 0:
            line += " backup"
        if node.state in (HostState.STOPPED, HostState.SUSPENDED):
            line += " disabled"
        lines.append(line)
    return lines


def _section(header: str, lines: list[str]) -> str:
    return header + "\n" + "".join(f"    {line}\n" for line in lines)


def render_config(
    view: ClusterView,
    *,
    socket_path: str | Path,
    health_path: str = HEALTH_PATH,
    balance_none: Literal["roundrobin", "leastconn"] = "roundrobin",
    timeout_connect: str = "2s",
    timeout_session: str = "30m",
    maxconn: int | None = None,
) -> str:
    """The complete haproxy.cfg for a cluster.

    `socket_path` is the runtime API socket (`stats socket ... level admin`).
    `timeout_session` is the client and server inactivity timeout (30 minutes keeps
    an IMAP IDLE of up to 29 minutes, RFC 2177). `maxconn` is left to HAProxy (derived
    from the file descriptor limit) unless given.
    """
    tuning = [f"maxconn {maxconn}"] if maxconn else []
    parts = [
        f"# casarray: NLB cluster {view.name} ({view.ip}), rendered for HAProxy\n",
        _section(
            "global",
            [
                f"stats socket {socket_path} mode 600 level admin",
                "stats timeout 2m",
                *tuning,
                "spread-checks 20",
            ],
        ),
        _section(
            "defaults",
            [
                "mode tcp",
                "option redispatch",
                "retries 2",
                f"timeout connect {timeout_connect}",
                f"timeout client {timeout_session}",
                f"timeout server {timeout_session}",
                "timeout check 2s",
            ],
        ),
    ]
    ordered = sorted(view.rules, key=lambda rule: rule.end_port - rule.start_port)
    for rule in ordered:
        if rule.protocol is RuleProtocol.UDP:
            parts.append(
                f"# port rule {_ports(rule, 0)}/udp left out: HAProxy does not balance UDP\n"
            )
            continue
        bind = f"bind {rule.ip or view.ip}:{_ports(rule, view.listen_offset)}"
        frontend = f"frontend {frontend_name(view, rule)}"
        if rule.mode is FilteringMode.DISABLED:
            parts.append(_section(frontend, [bind, "tcp-request connection reject"]))
            continue
        backend = backend_name(view, rule)
        parts.append(_section(frontend, [bind, f"default_backend {backend}"]))
        probe, tls = rule.probe(rule.start_port)
        lines = [
            *_balance(rule, balance_none),
            # a node trusts PROXY headers from the cluster IP: connect from there
            *([f"source {view.ip}"] if rule.proxy_protocol else []),
            *_stickiness(rule),
            *_checks(probe, health_path),
            *_servers(view, rule, tls),
        ]
        parts.append(_section(f"backend {backend}", lines))
    return "\n".join(parts)


# -- the runtime API -----------------------------------------------------------------


class RuntimeApiError(CasarrayError, RuntimeError):
    """HAProxy answered a command with an error (or could not be reached)."""


ServerAdminState = Literal["ready", "drain", "maint"]


@dataclass(frozen=True)
class ServerState:
    """One line of `show servers state`."""

    backend: str
    server: str
    address: str
    operational: int  # srv_op_state: 0 stopped (down), 1 starting, 2 running, 3 stopping
    admin: int  # srv_admin_state bits: maintenance (0x01 0x02 0x04 0x20), drain (0x08 0x10)
    weight: int  # srv_uweight, the weight set by config or `set server ... weight`
    fields: dict[str, str]

    @property
    def up(self) -> bool:
        return self.operational == 2

    @property
    def maintenance(self) -> bool:
        return bool(self.admin & 0x27)

    @property
    def draining(self) -> bool:
        return bool(self.admin & 0x18)


class RuntimeApi:
    """A client for HAProxy's runtime API on a unix socket (one connection per command,
    HAProxy's non-interactive mode: send a line, read the answer until it closes)."""

    def __init__(self, path: str | Path, *, timeout: float = 2.0) -> None:
        self.path = str(path)
        self.timeout = timeout

    async def command(self, line: str) -> str:
        """Send one command and return HAProxy's whole answer."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.path), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise RuntimeApiError(f"cannot reach the HAProxy socket {self.path}: {exc}") from exc
        try:
            writer.write(line.rstrip("\n").encode() + b"\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), self.timeout)
        finally:
            writer.close()
        return data.decode(errors="replace")

    async def _set(self, line: str) -> None:
        answer = (await self.command(line)).strip()
        if answer:
            raise RuntimeApiError(f"{line!r}: {answer}")

    async def set_state(self, backend: str, server: str, state: ServerAdminState) -> None:
        """`set server <backend>/<server> state ready|drain|maint`."""
        if state not in ("ready", "drain", "maint"):
            raise ValueError(f"state must be ready, drain or maint, not {state!r}")
        await self._set(f"set server {backend}/{server} state {state}")

    async def set_weight(self, backend: str, server: str, weight: int) -> None:
        """`set server <backend>/<server> weight N` (0..256; casarray uses 0..100)."""
        if not 0 <= weight <= 256:
            raise ValueError(f"weight must be 0..256, not {weight}")
        await self._set(f"set server {backend}/{server} weight {weight}")

    async def servers_state(self, backend: str | None = None) -> list[ServerState]:
        """`show servers state [<backend>]`, parsed."""
        answer = await self.command("show servers state" + (f" {backend}" if backend else ""))
        header: list[str] = []
        states = []
        for line in answer.splitlines():
            if line.startswith("# "):
                header = line[2:].split()
                continue
            values = line.split()
            if not header or len(values) < len(header) - 4:
                continue  # the format version line, blank lines
            fields = dict(zip(header, values, strict=False))
            states.append(
                ServerState(
                    backend=fields["be_name"],
                    server=fields["srv_name"],
                    address=fields["srv_addr"],
                    operational=int(fields["srv_op_state"]),
                    admin=int(fields["srv_admin_state"]),
                    weight=int(fields["srv_uweight"]),
                    fields=fields,
                )
            )
        if not header and answer.strip():
            raise RuntimeApiError(f"show servers state: {answer.strip()}")
        return states
