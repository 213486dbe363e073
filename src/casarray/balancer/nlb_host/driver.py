"""One host's NLB driver for one cluster, asyncio, thin: it feeds the `Membership`
state machine with heartbeats from the other hosts and with its own probes, keeps the
host's nftables filter in step with `owned`, and sends its heartbeats.

`NlbHostDriver(config)` is the class a host's processes embed (`await start()`, then
`set_state`, `status`, `await stop()`); `python -m casarray.balancer.nlb_host
CONFIG.json` runs one as a process (see `__main__`). It must run as root inside the
host's network namespace.

Each step: take the heartbeats received, let time pass (`advance`), apply the filter
(one nftables transaction moving only the moved buckets, through libnftables in this
process), and only then send this host's heartbeat, so a bucket this host gives up is
gone from its filter before its heartbeat lets another host take it. Heartbeats are
UDP datagrams to the subnet broadcast on the cluster interface (`heartbeat_port`, 2504
by default). The transaction before each heartbeat also refreshes the filter's dead
man's switch (`nft_rules.render_alive`): a driver killed with SIGKILL, or stalled,
leaves a filter that stops taking new connections before the others take its buckets.

ARP: one host (`Membership.answers_arp`) answers ARP requests for the cluster IP with
the cluster MAC, from a packet socket on the cluster interface (`arp`); the kernel's
own answers are dropped by the filter.

`reconfigure(config)` takes a changed config live: load weights, priority, heartbeat
period and tolerance, probes, the admin state and the port rules themselves (the
hosts converge as NLB's do; established connections are kept). What the host *is*
(`NlbHostConfig.identity`: cluster IP, interface, address, HostID, operation mode,
heartbeat port) needs a new driver.

Service-aware, beyond Windows NLB: every period the driver connects to each TCP rule's
first port on this host (the cluster IP by default, not filtered on loopback); after
`probe_failures` failures in a row the rule's buckets go to the other hosts, and
return after one success.

Status: the host's own view (`Membership.status`, plus pid) is written to
`config.status_file` when it changes, for Get-NlbClusterNode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from casarray.balancer.libnftables import Nftables
from casarray.balancer.model import FilteringMode, HostState, RuleProtocol
from casarray.balancer.nft import NftError
from casarray.balancer.nlb_host import arp, host_setup
from casarray.balancer.nlb_host.config import NlbHostConfig, OperationMode
from casarray.balancer.nlb_host.heartbeat import HeartbeatError
from casarray.balancer.nlb_host.macs import cluster_mac, igmp_group, masked_mac
from casarray.balancer.nlb_host.membership import Membership
from casarray.balancer.nlb_host.nft_rules import (
    PlaneState,
    render_alive,
    render_full,
    render_remove,
    render_update,
)
from casarray.process.status import StatusFile

__all__ = ["NlbHostDriver"]

log = logging.getLogger("casarray.balancer.nlb_host")


class _Heartbeats(asyncio.DatagramProtocol):
    def __init__(self, inbox: list[bytes], wake: asyncio.Event) -> None:
        self.inbox = inbox
        self.wake = wake

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(self.inbox) < 1024:
            self.inbox.append(data)
        self.wake.set()


class NlbHostDriver:
    """The NLB driver of one host for one cluster."""

    def __init__(
        self,
        config: NlbHostConfig,
        *,
        nft: str = "nft",
        setup_host: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.membership = Membership(config, clock())
        self._nft = Nftables(nft=nft)
        self._setup_host = setup_host
        self._clock = clock
        self._inbox: list[bytes] = []
        self._wake = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._applied: PlaneState | None = None
        self._reload_table = False  # the rules changed: render the table whole
        self._failures = [0] * len(config.rules)
        self._status_file = StatusFile(Path(config.status_file)) if config.status_file else None
        self._last_status: dict[str, Any] | None = None
        self._arp_socket: socket.socket | None = None
        self._arp_source = b""  # the answers' Ethernet source
        self._arp_mac = b""  # the cluster MAC they name
        self.applies = 0  # nft transactions run
        self.arp_answers = 0

    # life cycle

    async def start(self) -> None:
        """Load the filter (owning nothing yet), then put the cluster IP on the
        interface, open the heartbeat socket and start the loops."""
        await self._apply(force=True)
        if self._setup_host:
            host_setup.prepare_conntrack()
            host_setup.prepare(self.config)
        loop = asyncio.get_running_loop()
        if self._setup_host:
            self._open_arp(loop)
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Heartbeats(self._inbox, self._wake), sock=self._socket()
        )
        self._tasks = [
            asyncio.create_task(self._run(), name="nlb-host-heartbeats"),
            asyncio.create_task(self._probe_loop(), name="nlb-host-probes"),
        ]
        log.info("NLB host %s joining cluster %s", self.config.name, self.config.cluster_ip)

    async def stop(self, *, teardown: bool = True) -> None:
        """Leave the cluster: a last heartbeat saying Stopped (the others converge at
        once instead of waiting for the tolerance), then, with `teardown`, the cluster
        IP off the interface and the filter removed."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._transport is not None:
            self.membership.set_state(HostState.STOPPED, self._clock())
            with contextlib.suppress(OSError):
                self._send(self.membership.heartbeat_now(self._clock()))
            self._transport.close()
            self._transport = None
        if self._arp_socket is not None:
            asyncio.get_running_loop().remove_reader(self._arp_socket.fileno())
            self._arp_socket.close()
            self._arp_socket = None
        if teardown:
            if self._setup_host:
                host_setup.undo(self.config)
            with contextlib.suppress(NftError):
                await self._nft_run(render_remove(self.config))
        if self._status_file is not None:
            self._status_file.remove()
        self._nft.close()

    def set_state(self, state: HostState) -> None:
        """Start-/Stop-/Suspend-/Resume-NlbClusterNode, Stop -Drain on this host."""
        self.membership.set_state(state, self._clock())
        self._wake.set()

    def reconfigure(self, config: NlbHostConfig) -> bool:
        """Take `config` live; False (and nothing changed) when its identity differs
        and the host needs a new driver."""
        if config.identity != self.config.identity:
            return False
        old = self.config
        self.config = config
        self.membership.reconfigure(config, self._clock())
        if len(config.rules) != len(old.rules) or config.rules != old.rules:
            self._failures = [0] * len(config.rules)
        empty = PlaneState(owned=tuple(frozenset() for _ in config.rules))
        before = PlaneState(owned=tuple(frozenset() for _ in old.rules))
        if render_full(config, empty) != render_full(old, before):
            self._reload_table = True
        self._wake.set()
        return True

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), **self.membership.status()}

    # the loops

    async def _run(self) -> None:
        while True:
            now = self._clock()
            timeout = max(0.0, self.membership.next_wakeup(now) - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._step()
            except Exception:  # keep the host in the cluster; the next step retries
                log.exception("NLB host step failed")
                await asyncio.sleep(self.config.heartbeat_period)

    async def _step(self) -> None:
        now = self._clock()
        inbox, self._inbox[:] = list(self._inbox), []
        for data in inbox:
            try:
                self.membership.receive(data, now)
            except HeartbeatError as exc:
                log.debug("dropped a datagram on the heartbeat port: %s", exc)
        self.membership.advance(now)
        beats = self.membership.poll(now)
        await self._apply(refresh=bool(beats))
        for beat in beats:
            self._send(beat)
        self._write_status()

    def _send(self, beat: bytes) -> None:
        if self._transport is not None:
            self._transport.sendto(beat, (self.config.broadcast, self.config.heartbeat_port))

    async def _probe_loop(self) -> None:
        if not self.config.probe:
            return
        while True:
            await asyncio.sleep(self.config.heartbeat_period)
            results = await asyncio.gather(*(self._probe(i) for i in range(len(self.config.rules))))
            now = self._clock()
            for index, ok in enumerate(results):
                if ok is None:
                    continue
                self._failures[index] = 0 if ok else self._failures[index] + 1
                healthy = self._failures[index] < self.config.probe_failures
                if healthy != self.membership.healthy(index):
                    log.warning(
                        "NLB host %s: rule %d %s",
                        self.config.name,
                        index,
                        "healthy again" if healthy else "failed its probe",
                    )
                    self.membership.set_health(index, healthy, now)
                    self._wake.set()

    async def _probe(self, index: int) -> bool | None:
        rule = self.config.rules[index]
        if rule.mode is FilteringMode.DISABLED or rule.protocol is RuleProtocol.UDP:
            return None
        address = self.config.probe_address or self.config.cluster_ip
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(address, rule.start_port), self.config.probe_timeout
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    # the data plane

    def _desired(self) -> PlaneState:
        return PlaneState(
            owned=self.membership.owned,
            drop_all=self.membership.drops_everything,
            default_host=self.membership.default_host,
        )

    async def _apply(self, *, force: bool = False, refresh: bool = False) -> None:
        """Bring the filter to `_desired()`; with `refresh`, in the same transaction,
        restart the dead man's switch's timeout."""
        desired = self._desired()
        whole = force or self._reload_table or self._applied is None
        if desired == self._applied and not whole:
            if refresh:
                await self._nft_run(render_alive(self.config))
            return
        alive = render_alive(self.config) if refresh else ""
        if whole:
            await self._nft_run(render_full(self.config, desired))
            self._reload_table = False
        else:
            assert self._applied is not None
            try:
                await self._nft_run(render_update(self.config, self._applied, desired) + alive)
            except NftError as exc:
                log.warning("NLB host filter update failed, reloading it whole: %s", exc)
                await self._nft_run(render_full(self.config, desired))
        self._applied = desired
        self.applies += 1

    async def _nft_run(self, script: str) -> None:
        self._nft.run(script)

    # ARP

    def _open_arp(self, loop: asyncio.AbstractEventLoop) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(arp.ETH_P_ARP))
        sock.bind((self.config.interface, arp.ETH_P_ARP))
        sock.setblocking(False)
        if self.config.mode is OperationMode.UNICAST:
            source = masked_mac(self.config.cluster_ip, self.config.host_id)
        else:
            source = host_setup.mac_of(self.config.interface)
        self._arp_source = arp.mac_bytes(source)
        self._arp_mac = arp.mac_bytes(cluster_mac(self.config.cluster_ip, self.config.mode))
        self._arp_socket = sock
        loop.add_reader(sock.fileno(), self._on_arp)

    def _on_arp(self) -> None:
        sock = self._arp_socket
        if sock is None:
            return
        for _ in range(64):
            try:
                frame, address = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("NLB host ARP socket: %s", exc)
                return
            if address[2] == socket.PACKET_OUTGOING or not self.membership.answers_arp:
                continue
            reply = arp.answer(frame, self.config.cluster_ip, self._arp_mac, self._arp_source)
            if reply is not None:
                with contextlib.suppress(OSError):
                    sock.send(reply)
                    self.arp_answers += 1

    # helpers

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.config.interface.encode()
            )
        if self.config.mode is OperationMode.IGMP_MULTICAST:
            group = socket.inet_aton(igmp_group(self.config.cluster_ip))
            local = socket.inet_aton(self.config.address)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + local)
        sock.bind(("0.0.0.0", self.config.heartbeat_port))
        sock.setblocking(False)
        return sock

    def _write_status(self) -> None:
        if self._status_file is None:
            return
        status = self.membership.status()
        if status != self._last_status:
            self._status_file.write({"pid": os.getpid(), **status})
            self._last_status = status
