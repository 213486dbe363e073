"""The separate load balancer on several hosts: two HAProxy hosts sharing the cluster IP
with keepalived (VRRP, Debian's package), the seed's other option beside NLB on the
Client Access hosts.

Each balancer host runs the HAProxy engine of the cluster (`haproxy_engine`, the same
haproxy.cfg rendered from the directory's view, bound to the cluster IP with
`net.ipv4.ip_nonlocal_bind` so the backup's haproxy is up before the address comes to
it) and one keepalived in VRRP mode holding the cluster IP: the host with the highest
priority that is alive and whose haproxy answers is MASTER and owns the address (with
a gratuitous ARP when it takes it over); the other is BACKUP. When the master's host
dies (or its haproxy: `vrrp_script` checks haproxy's pid every advert interval, and
two failures lower it), the backup stops hearing adverts and takes the address after
three advert intervals plus its skew time (RFC 5798's Master_Down_Interval).

`render_config(instance)` writes keepalived.conf for one host; `virtual_router_id`
derives VRRP's router id (1..255) from the cluster's name, the same on both hosts;
`Keepalived` runs keepalived for one host (in the current network namespace: the
caller starts it inside the host's) and stops it. Priorities: NLB's HostPriority
order (1 is the highest) becomes VRRP priority 250 - 10 * (rank), so the first
balancer host is the preferred master and takes the address back when it returns
(keepalived's default preemption).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from casarray.errors import CasarrayError

KEEPALIVED = "keepalived"
DEFAULT_ADVERT = 1.0  # seconds: VRRP's default
_NAME = re.compile(r"[^A-Za-z0-9_]")


class KeepalivedError(CasarrayError):
    """keepalived is missing, refused its configuration, or didn't start."""


def virtual_router_id(cluster: str) -> int:
    """VRRP's virtual router id for the cluster (1..255), from its name."""
    digest = hashlib.sha256(cluster.lower().encode()).digest()
    return digest[0] % 255 + 1


def vrrp_priority(rank: int) -> int:
    """The VRRP priority of the balancer host of `rank` (0: the preferred master)."""
    if not 0 <= rank < 24:
        raise ValueError(f"rank {rank} is not from 0 to 23")
    return 250 - 10 * rank


@dataclass(frozen=True)
class VrrpInstance:
    """One balancer host's share of the cluster IP."""

    cluster: str  # the cluster's FQDN, bj-cas.lab.net
    interface: str  # where the cluster IP goes, eth0
    address: str  # the cluster IP with its prefix, 198.18.1.10/24
    priority: int  # 1..254, the highest is master
    advert_interval: float = DEFAULT_ADVERT  # seconds
    # the other balancer hosts' addresses: adverts go to them by unicast (no multicast
    # needed from the network); empty: VRRP's multicast group 224.0.0.18
    peers: tuple[str, ...] = ()
    source: str | None = None  # this host's own address, for unicast adverts
    haproxy_pid_file: Path | None = None  # checked each interval when given
    extra_addresses: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return "casarray_" + _NAME.sub("_", self.cluster)


def check_command(pid_file: Path) -> str:
    """The vrrp_script command that says haproxy of this host is alive: a shell from a
    root-owned path (keepalived's script security refuses a script in a directory
    others may write to), its argument the pid file."""
    return f"/bin/sh -c 'kill -0 $(head -n 1 {pid_file})'"


def render_config(instance: VrrpInstance) -> str:
    """keepalived.conf for one balancer host (VRRP only)."""
    ipaddress.ip_interface(instance.address)  # refuses a bad one
    if not 1 <= instance.priority <= 254:
        raise KeepalivedError(f"VRRP priority {instance.priority} is not from 1 to 254.")
    if instance.advert_interval <= 0:
        raise KeepalivedError("The VRRP advert interval must be positive.")
    lines = [
        f"# casarray: NLB cluster {instance.cluster}, the HAProxy pair's shared address",
        "global_defs {",
        f"    router_id {instance.name}",
        "    script_user root",
        "    enable_script_security",
        # VRRP version 3 (RFC 5798) carries advert intervals below a second
        *(["    vrrp_version 3"] if instance.advert_interval < 1 else []),
        "    vrrp_garp_master_delay 1",
        "    vrrp_garp_master_refresh 10",
        "}",
    ]
    track: list[str] = []
    if instance.haproxy_pid_file is not None:
        lines += [
            "vrrp_script casarray_haproxy {",
            f'    script "{check_command(instance.haproxy_pid_file)}"',
            # whole seconds only; the adverts themselves may be faster
            f"    interval {max(1, math.ceil(instance.advert_interval))}",
            "    fall 2",
            "    rise 2",
            "    weight -100",
            "}",
        ]
        track = ["    track_script {", "        casarray_haproxy", "    }"]
    lines += [
        f"vrrp_instance {instance.name} {{",
        "    state BACKUP",  # the priorities decide: the higher one becomes MASTER
        f"    interface {instance.interface}",
        f"    virtual_router_id {virtual_router_id(instance.cluster)}",
        f"    priority {instance.priority}",
        f"    advert_int {instance.advert_interval:g}",
    ]
    if instance.peers:
        if instance.source:
            lines.append(f"    unicast_src_ip {instance.source}")
        lines += ["    unicast_peer {", *[f"        {p}" for p in instance.peers], "    }"]
    addresses = (instance.address, *instance.extra_addresses)
    lines += [
        "    virtual_ipaddress {",
        *[f"        {a} dev {instance.interface}" for a in addresses],
        "    }",
        *track,
        "}",
    ]
    return "\n".join(lines) + "\n"


class Keepalived:
    """keepalived for one balancer host, its files under `work`."""

    def __init__(
        self, instance: VrrpInstance, work: Path, *, wrapper: tuple[str, ...] = ()
    ) -> None:
        """`wrapper`: what runs keepalived where it belongs (`ip netns exec HOST`)."""
        self.instance = instance
        self.work = work
        self.wrapper = wrapper
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.work / "keepalived.conf"

    def start(self, timeout: float = 10.0) -> None:
        """Writes the configuration, checks it (`keepalived -t`) and starts keepalived
        in the foreground of a child process."""
        binary = shutil.which(KEEPALIVED)
        if binary is None:
            raise KeepalivedError("The HAProxy pair needs keepalived (Debian's keepalived).")
        self.work.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.instance))
        checked = subprocess.run(
            [binary, "-t", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if checked.returncode != 0:
            raise KeepalivedError(
                f"keepalived refused {self.config_path}: "
                f"{(checked.stderr or checked.stdout).strip()[-400:]}"
            )
        # a keepalived killed with -9 leaves its pid files: the next one would say
        # "daemon is already running" and this would take the old file for its start
        for stale in ("keepalived.pid", "vrrp.pid"):
            (self.work / stale).unlink(missing_ok=True)
        log = (self.work / "keepalived.log").open("ab")
        self.process = subprocess.Popen(
            [
                *self.wrapper,
                binary,
                "--dont-fork",
                "--log-console",
                "--vrrp",
                "-f",
                str(self.config_path),
                "-p",
                str(self.work / "keepalived.pid"),
                "-r",
                str(self.work / "vrrp.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not (self.work / "vrrp.pid").exists():
            if self.process.poll() is not None:
                raise KeepalivedError(
                    f"keepalived exited with {self.process.returncode}: see "
                    f"{self.work / 'keepalived.log'}"
                )
            if time.monotonic() > deadline:
                raise KeepalivedError(f"keepalived did not start within {timeout:g} s.")
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (keepalived removes the address it holds), SIGKILL after `grace`."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
