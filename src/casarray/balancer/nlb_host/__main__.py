"""`python -m casarray.balancer.nlb_host CONFIG.json`: one host's NLB driver as a
process, as root inside the host's network namespace, until SIGTERM or SIGINT (then it
leaves the cluster: cluster IP off the interface, filter removed).

The config file is `NlbHostConfig.to_json`'s form. The driver re-reads it when it
changes and takes the change live (`NlbHostDriver.reconfigure`: admin state, weights,
priority, heartbeat timings, port rules); a change of what the host is (cluster IP,
address, HostID, operation mode, ...) makes the process leave the cluster and join it
again as the new host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from casarray.balancer.nlb_host.config import NlbHostConfig
from casarray.balancer.nlb_host.driver import NlbHostDriver
from casarray.errors import CasarrayError

log = logging.getLogger("casarray.balancer.nlb_host")


async def run(path: Path) -> None:
    """Run the driver of the host configured in `path` until SIGTERM or SIGINT."""
    config = NlbHostConfig.from_json(path.read_text())
    driver = NlbHostDriver(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    mtime = path.stat().st_mtime_ns
    await driver.start()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), driver.config.heartbeat_period)
            with contextlib.suppress(OSError):
                if path.stat().st_mtime_ns != mtime:
                    mtime = path.stat().st_mtime_ns
                    driver = await _reload(path, driver)
    finally:
        await driver.stop()


async def _reload(path: Path, driver: NlbHostDriver) -> NlbHostDriver:
    try:
        new = NlbHostConfig.from_json(path.read_text())
    except CasarrayError as exc:
        log.warning("ignoring %s: %s", path, exc)
        return driver
    if new == driver.config:
        return driver
    if driver.reconfigure(new):
        log.info("NLB host %s: config reloaded (%s)", new.name, new.state.value)
        return driver
    log.info("NLB host %s: a new identity; leaving the cluster and joining again", new.name)
    await driver.stop()
    driver = NlbHostDriver(new)
    await driver.start()
    return driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m casarray.balancer.nlb_host")
    parser.add_argument("config", type=Path, help="the host's NlbHostConfig as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        asyncio.run(run(args.config))
    except (CasarrayError, OSError) as exc:
        print(f"nlb_host: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
