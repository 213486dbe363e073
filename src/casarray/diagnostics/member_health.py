"""What Test-ClientAccessArray knows live of the array's members: the running balancer's
word (its status file: Unhealthy with the failing probe) and, for a member whose
server runs here, its health pages and IMAP greeting, probed on the ports its status
file names."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from casarray.access.cas_process import read_status as server_status
from casarray.balancer.balancer_process import live_node
from casarray.balancer.balancer_process import read_status as balancer_status
from casarray.balancer.health_probes import ProbeTarget, run_probe
from casarray.balancer.model import Probe

if TYPE_CHECKING:
    from casarray.directory.nlb.objects import NlbCluster
    from casarray.directory.objects import ClientAccessArray, Server


HEALTHY, UNHEALTHY, UNKNOWN = "Healthy", "Unhealthy", "Unknown"
HEALTH_TIMEOUT = 1.0  # seconds per health probe


@dataclass(frozen=True)
class MemberHealth:
    """What is known live of one member: Healthy, Unhealthy or Unknown, and why."""

    server: str
    state: str
    detail: str = ""
    source: str = ""  # who said so: "balancer bj-cas.lab.net", "health page"


HealthProvider = Callable[
    ["ClientAccessArray", "NlbCluster | None", Sequence["Server"]], Mapping[str, MemberHealth]
]


def live_health(home: Path | None = None, timeout: float = HEALTH_TIMEOUT) -> HealthProvider:
    """The default health provider: for each member, the running balancer's word
    (`$CASARRAY_HOME/run/balancer-<cluster>.json`: Unhealthy with the failing probe),
    and, when the member's server runs here (`run/<server>.imap.json`), its health
    pages (/imap/, /owa/, /autodiscover/healthcheck.htm answering 200) and its IMAP
    greeting, probed on the ports that file names. Unknown when neither runs here."""

    def provide(
        array: ClientAccessArray, cluster: NlbCluster | None, members: Sequence[Server]
    ) -> Mapping[str, MemberHealth]:

        status = balancer_status(cluster.name, home) if cluster is not None else None
        result: dict[str, MemberHealth] = {}
        running: dict[str, dict[str, object]] = {}
        for member in members:
            node = live_node(status, member.name)
            if node is not None and node.get("state") == UNHEALTHY:
                detail = str(node.get("detail") or "failing its probes")
                source = f"balancer {cluster.name}" if cluster is not None else "balancer"
                result[member.name] = MemberHealth(member.name, UNHEALTHY, detail, source)
                continue
            own = server_status(member.name, home)
            if own is not None:
                running[member.name] = own
            elif node is not None:
                state = str(node.get("state", ""))
                result[member.name] = MemberHealth(member.name, HEALTHY, state, "balancer")
            else:
                result[member.name] = MemberHealth(member.name, UNKNOWN)
        if running:
            probed = asyncio.run(_probe_servers(running, timeout))
            result.update(probed)
        return result

    return provide


async def _probe_servers(
    running: Mapping[str, Mapping[str, object]], timeout: float
) -> dict[str, MemberHealth]:
    async def one(name: str, status: Mapping[str, object]) -> MemberHealth:

        host = str(status.get("host", ""))
        fqdn = str(status.get("fqdn") or host)
        targets = [
            ProbeTarget(name, 143, host, int(status["imap"]), Probe.IMAP, server_name=fqdn)  # type: ignore[call-overload]
        ] + [
            ProbeTarget(
                name,
                80,
                host,
                int(status["http"]),  # type: ignore[call-overload]
                Probe.HTTP,
                path=f"/{vdir}/healthcheck.htm",
                server_name=fqdn,
            )
            for vdir in ("imap", "owa", "autodiscover")
        ]
        results = await asyncio.gather(*(run_probe(t, timeout) for t in targets))
        failed = [
            f"{'IMAP greeting' if t.kind is Probe.IMAP else t.path}: {r.reason}"
            for t, r in zip(targets, results, strict=True)
            if not r.ok
        ]
        if failed:
            return MemberHealth(name, UNHEALTHY, "; ".join(failed), "health page")
        return MemberHealth(name, HEALTHY, "", "health page")

    names = list(running)
    found = await asyncio.gather(*(one(n, running[n]) for n in names))
    return dict(zip(names, found, strict=True))
