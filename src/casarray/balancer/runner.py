"""`casarray balancer run bj-cas.lab.net`: run one NLB cluster's balancer.

It reads the cluster from the directory (`directory.nlb.cluster_view`), follows every
topology change within a second (a node added to the array's site, a port rule set,
`Stop-NlbClusterNode -Drain`), probes the nodes (`health`) and keeps the data plane in
step (`control`):

- the engine is the cluster's DataPlane (`Set-NlbCluster -DataPlane`), or `--engine`:
  Kernel (nftables; needs root and Debian's nft), Proxy (asyncio) or HAProxy. Auto, the
  default, is Kernel when the process is root and `nft` is there, else Proxy;
- without root, the Client Access servers listen on their ports plus 10000 (10143,
  10993, ...), and so does the Proxy plane on the cluster IP: `--listen-offset` and
  `--backend-offset` default to 10000 then, and to 0 as root.

`$CASARRAY_HOME/run/balancer-<cluster>.json` tells the state of every node (with the
failing probe when Unhealthy) and its connections while it runs. SIGTERM or SIGINT
stops it: the Proxy plane closes; the Kernel plane's table is removed (after a crash it
stays, and forwarding goes on with the last health known).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casarray.config import casarray_home, may_admin_network, may_bind_low_ports

log = logging.getLogger("casarray.balancer")

ENGINES = ("Kernel", "Proxy", "HAProxy")


class BalancerError(Exception):
    """The balancer can't start (unknown cluster, engine not available here)."""


@dataclass
class BalancerOptions:
    cluster: str
    directory: str | None = None
    engine: str | None = None  # None: the cluster's DataPlane
    listen_offset: int | None = None
    backend_offset: int | None = None
    log_file: str | None = None
    log_level: str = "INFO"


def status_path(cluster: str, home: Path | None = None) -> Path:
    return (home or casarray_home()) / "run" / f"balancer-{cluster.lower()}.json"


def read_status(cluster: str, home: Path | None = None) -> dict[str, Any] | None:
    """What a running balancer of `cluster` says of its nodes, or None when none runs."""
    try:
        status = json.loads(status_path(cluster, home).read_text())
        os.kill(int(status["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(status)


def live_node(status: dict[str, Any] | None, node: str) -> dict[str, Any] | None:
    """A node's entry in a balancer's status (state, detail, connections)."""
    for entry in (status or {}).get("nodes", ()):
        if str(entry.get("name", "")).lower() == node.lower():
            return dict(entry)
    return None


def engine_name(requested: str | None, data_plane: str) -> str:
    """The engine to run: the one asked for, else the cluster's data plane, Auto being
    Kernel as root with nft, else Proxy."""
    wanted = (requested or data_plane or "Auto").strip()
    for name in (*ENGINES, "Auto"):
        if wanted.lower() == name.lower():
            wanted = name
            break
    else:
        raise BalancerError(f"Unknown engine {wanted!r}: use Kernel, Proxy or HAProxy.")
    if wanted == "Auto":
        return "Kernel" if may_admin_network() and shutil.which("nft") else "Proxy"
    if wanted == "Kernel" and not may_admin_network():
        raise BalancerError(
            "The Kernel data plane needs root (CAP_NET_ADMIN); use -DataPlane Proxy."
        )
    if wanted == "Kernel" and not shutil.which("nft"):
        raise BalancerError("The Kernel data plane needs nft (Debian's nftables).")
    if wanted == "HAProxy" and not shutil.which("haproxy"):
        raise BalancerError("The HAProxy engine needs Debian's haproxy.")
    return wanted


def _engine(name: str, work: Path) -> object:
    from casarray.balancer import control

    if name == "Kernel":
        return control.KernelEngine()
    if name == "Proxy":
        return control.ProxyEngine()
    from casarray.balancer.haproxy_engine import HaproxyEngine

    return HaproxyEngine(work)


async def run_balancer(options: BalancerOptions) -> int:
    from casarray.access.runner import UNPRIVILEGED_OFFSET
    from casarray.balancer.control import Balancer
    from casarray.directory import Directory, DirectoryError

    try:
        directory = Directory.open(options.directory)
        record = directory.nlb.cluster(options.cluster)
        name = engine_name(options.engine, record.data_plane)
    except DirectoryError as exc:
        raise BalancerError(exc.message) from exc
    default = 0 if may_bind_low_ports() else UNPRIVILEGED_OFFSET
    listen = options.listen_offset if options.listen_offset is not None else default
    backend = options.backend_offset if options.backend_offset is not None else default
    if name == "Kernel":
        listen = 0  # DNAT keeps the cluster's ports

    def read_view():  # type: ignore[no-untyped-def]
        return directory.nlb.cluster_view(record.guid, backend_offset=backend, listen_offset=listen)

    work = casarray_home() / "run" / f"balancer-{record.name.lower()}"
    balancer = Balancer(
        read_view,
        _engine(name, work),
        status_path=status_path(record.name),  # type: ignore[arg-type]
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        await balancer.start()

        async def follow() -> None:
            async for _version in directory.watch(interval=0.2):
                try:
                    await balancer.view_changed()
                except DirectoryError as exc:  # the cluster was removed, say
                    log.error("%s: %s", record.name, exc.message)
                    stopping.set()
                    return

        tasks = [asyncio.ensure_future(balancer.loop()), asyncio.ensure_future(follow())]
        waiter = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task in done and task.exception() is not None:
                log.error("%s: %r", record.name, task.exception())
        waiter.cancel()
        log.info("%s: stopping", record.name)
    finally:
        balancer.stop()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await balancer.close()
        directory.close()
    return 0


def run(options: BalancerOptions) -> int:
    """Run until SIGTERM or SIGINT; the exit status."""
    from casarray.access.runner import RunOptions, logging_to, loop_factory

    with logging_to(RunOptions(server="", log_file=options.log_file, log_level=options.log_level)):
        try:
            with asyncio.Runner(loop_factory=loop_factory(True)) as runner:
                return runner.run(run_balancer(options))
        except BalancerError as exc:
            log.error("%s", exc)
            if options.log_file:  # the log is a file: say it on the terminal too
                print(f"casarray: {exc}", file=sys.stderr)
            return 1
