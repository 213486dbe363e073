"""`casarray balancer run bj-cas.lab.net`: the process of one NLB cluster's balancer.

It reads the cluster from the directory (`directory_view.cluster_view`), follows every
topology change within a second (a node added to the array's site, a port rule set,
`Stop-NlbClusterNode -Drain`), probes the nodes (`health`) and keeps the data plane in
step (`control`):

- the engine is the cluster's DataPlane (`Set-NlbCluster -DataPlane`), or `--engine`:
  Kernel (nftables; needs root and Debian's nft), Proxy (asyncio) or HAProxy. Auto, the
  default, is Kernel when the process is root and `nft` is there, else Proxy;
- without root, the Client Access servers listen on their ports plus 10000 (10143,
  10993, ...), and so does the Proxy plane on the cluster IP: `--listen-offset` and
  `--backend-offset` default to 10000 then, and to 0 as root.

With `--vrrp-rank N` (HAProxy only) the process is one host of the separate load
balancer on several hosts: HAProxy bound to the cluster IP (`ip_nonlocal_bind`, so it
is up before the address comes) and keepalived holding that address with the pair's
other host (`keepalived`); the preferred host (rank 0) has it while alive and its
haproxy runs, the other takes it within three advert intervals of its loss.

Its status file, `$CASARRAY_HOME/run/balancer-<cluster>.json` (a pair's hosts:
`balancer-<cluster>-vrrp<rank>.json`, and their work directories likewise, so both
can share one home as in the lab), tells the state of every
node (with the failing probe when Unhealthy) and its connections while it runs. SIGTERM
or SIGINT stops it: the Proxy plane closes; the Kernel plane's table is removed (after a
crash it stays, and forwarding goes on with the last health known).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.config import casarray_home, may_admin_network, may_bind_low_ports
from casarray.process import status
from casarray.process.errors import StartupError
from casarray.process.lifecycle import Job, ServiceProcess, run_process
from casarray.process.ports import UNPRIVILEGED_OFFSET

if TYPE_CHECKING:
    from casarray.balancer.control_plane import Balancer, Engine
    from casarray.balancer.keepalived import Keepalived
    from casarray.balancer.model import ClusterView
    from casarray.directory import Directory

log = logging.getLogger("casarray.balancer")

ENGINES = ("Kernel", "Proxy", "HAProxy")


@dataclass
class BalancerOptions:
    cluster: str
    directory: str | None = None
    engine: str | None = None  # None: the cluster's DataPlane
    listen_offset: int | None = None
    backend_offset: int | None = None
    log_file: str | None = None
    log_level: str = "INFO"
    # One host of an HAProxy pair sharing the cluster IP with keepalived (`keepalived`):
    # its rank (0: the preferred master), the interface the address goes on, the other
    # host's address (unicast adverts), this host's, and the advert interval.
    vrrp_rank: int | None = None
    vrrp_interface: str = "eth0"
    vrrp_peers: tuple[str, ...] = ()
    vrrp_source: str | None = None
    vrrp_advert: float = 1.0


VRRP_RANKS = (0, 1)  # the hosts of a keepalived pair


def instance_name(cluster: str, vrrp_rank: int | None = None) -> str:
    """The name a balancer process of `cluster` keeps its status and files under: the
    cluster's, or with `-vrrp<rank>` for one host of a keepalived pair."""
    return cluster if vrrp_rank is None else f"{cluster}-vrrp{vrrp_rank}"


def status_file(
    cluster: str, home: Path | None = None, vrrp_rank: int | None = None
) -> status.StatusFile:
    return status.status_file(status.BALANCER, instance_name(cluster, vrrp_rank), home)


def read_status(cluster: str, home: Path | None = None) -> dict[str, Any] | None:
    """What a running balancer of `cluster` says of its nodes (the central one, else a
    live host of its keepalived pair, the preferred first), or None when none runs."""
    for rank in (None, *VRRP_RANKS):
        said = status_file(cluster, home, rank).read()
        if said is not None:
            return said
    return None


def host_status_file(cluster: str, server: str, home: Path | None = None) -> status.StatusFile:
    """Where the NLB driver of `server` for `cluster` (the Hosts plane) says what the
    host itself sees: its state, the members it hears, the buckets it owns."""
    return status.status_file(status.NLB_HOST, f"{cluster}-{server}", home)


def read_host_status(cluster: str, server: str, home: Path | None = None) -> dict[str, Any] | None:
    return host_status_file(cluster, server, home).read()


def live_node(status: dict[str, Any] | None, node: str) -> dict[str, Any] | None:
    """A node's entry in a balancer's status (state, detail, connections)."""
    for entry in (status or {}).get("nodes", ()):
        if str(entry.get("name", "")).lower() == node.lower():
            return dict(entry)
    return None


def engine_name(requested: str | None, data_plane: str) -> str:
    """The engine to run: the one asked for, else the cluster's data plane, Auto being
    Kernel as root with nft, else Proxy. A central balancer is started for a cluster of
    the Hosts plane only where its members share one network stack (the single-machine
    lab), which can't filter per host: there it is Auto's choice."""
    wanted = (requested or data_plane or "Auto").strip()
    if wanted.lower() == "hosts":
        wanted = "Auto"
    for name in (*ENGINES, "Auto"):
        if wanted.lower() == name.lower():
            wanted = name
            break
    else:
        raise StartupError(f"Unknown engine {wanted!r}: use Kernel, Proxy or HAProxy.")
    if wanted == "Auto":
        return "Kernel" if may_admin_network() and shutil.which("nft") else "Proxy"
    if wanted == "Kernel" and not may_admin_network():
        raise StartupError(
            "The Kernel data plane needs root (CAP_NET_ADMIN); use -DataPlane Proxy."
        )
    if wanted == "Kernel" and not shutil.which("nft"):
        raise StartupError("The Kernel data plane needs nft (Debian's nftables).")
    if wanted == "HAProxy" and not shutil.which("haproxy"):
        raise StartupError("The HAProxy engine needs Debian's haproxy.")
    return wanted


def _engine(name: str, work: Path) -> Engine:
    from casarray.balancer import control_plane

    if name == "Kernel":
        return control_plane.KernelEngine()
    if name == "Proxy":
        return control_plane.ProxyEngine()
    from casarray.balancer.haproxy_engine import HaproxyEngine

    return HaproxyEngine(work)


class BalancerProcess(ServiceProcess):
    """One NLB cluster's balancer: its engine kept in step with the directory."""

    log = log

    def __init__(self, options: BalancerOptions) -> None:
        super().__init__()
        self.label = options.cluster
        self.options = options
        self.directory: Directory | None = None
        self.balancer: Balancer | None = None
        self.keepalived: Keepalived | None = None

    async def start(self) -> None:
        from casarray.balancer.control_plane import Balancer
        from casarray.balancer.directory_view import cluster_view
        from casarray.directory import Directory, DirectoryError

        options = self.options
        try:
            self.directory = directory = Directory.open(options.directory)
            record = directory.nlb.cluster(options.cluster)
            name = engine_name(options.engine, record.data_plane)
        except DirectoryError as exc:
            raise StartupError(exc.message) from exc
        self.label = record.name
        default = 0 if may_bind_low_ports() else UNPRIVILEGED_OFFSET
        listen = options.listen_offset if options.listen_offset is not None else default
        backend = options.backend_offset if options.backend_offset is not None else default
        if name == "Kernel":
            listen = 0  # DNAT keeps the cluster's ports

        def read_view() -> ClusterView:
            return cluster_view(
                directory, record.guid, backend_offset=backend, listen_offset=listen
            )

        own_name = instance_name(record.name, options.vrrp_rank)
        work = casarray_home() / "run" / f"balancer-{own_name.lower()}"
        if options.vrrp_rank is not None and name != "HAProxy":
            raise StartupError(
                f"A keepalived pair runs the HAProxy engine; this cluster's is {name} "
                "(use --engine HAProxy)."
            )
        if options.vrrp_rank is not None:
            _allow_nonlocal_bind()
        engine = _engine(name, work)
        self.balancer = Balancer(
            read_view, engine, status_path=status_file(record.name, None, options.vrrp_rank).path
        )
        await self.balancer.start()
        if options.vrrp_rank is not None:
            from casarray.balancer.haproxy_engine import HaproxyEngine
            from casarray.balancer.keepalived import (
                Keepalived,
                KeepalivedError,
                VrrpInstance,
                vrrp_priority,
            )

            assert isinstance(engine, HaproxyEngine)
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{record.subnet_mask}").prefixlen
            try:
                instance = VrrpInstance(
                    cluster=record.name,
                    interface=options.vrrp_interface,
                    address=f"{record.ip_address}/{prefix}",
                    priority=vrrp_priority(options.vrrp_rank),
                    advert_interval=options.vrrp_advert,
                    peers=options.vrrp_peers,
                    source=options.vrrp_source,
                    haproxy_pid_file=engine.pid_file,
                )
                self.keepalived = Keepalived(instance, work / "keepalived")
                await asyncio.to_thread(self.keepalived.start)
            except (KeepalivedError, ValueError) as exc:
                raise StartupError(f"{record.name}: {exc}") from exc

    def jobs(self) -> list[Job]:
        assert self.balancer is not None
        return [self.balancer.loop(), self.follow()]

    async def follow(self) -> None:
        from casarray.directory import DirectoryError

        assert self.directory is not None and self.balancer is not None
        async for _version in self.directory.watch(interval=0.2):
            try:
                await self.balancer.view_changed()
            except DirectoryError as exc:  # the cluster was removed, say
                log.error("%s: %s", self.label, exc.message)
                self.stopping.set()
                return

    async def stop(self) -> None:
        if self.keepalived is not None:  # the address goes to the other host first
            await asyncio.to_thread(self.keepalived.stop)
        if self.balancer is not None:
            self.balancer.stop()
            await self.balancer.close()
        if self.directory is not None:
            self.directory.close()


def _allow_nonlocal_bind() -> None:
    """HAProxy binds the cluster IP before keepalived gives it to this host (this
    network namespace's setting)."""
    try:
        Path("/proc/sys/net/ipv4/ip_nonlocal_bind").write_text("1\n")
    except OSError as exc:
        raise StartupError(f"A keepalived pair needs net.ipv4.ip_nonlocal_bind: {exc}") from exc


def run(options: BalancerOptions) -> int:
    """Run until SIGTERM or SIGINT; the exit status."""
    make: Callable[[], ServiceProcess] = lambda: BalancerProcess(options)  # noqa: E731
    return run_process(make, log_file=options.log_file, log_level=options.log_level)
