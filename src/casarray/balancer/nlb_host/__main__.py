"""`python -m casarray.balancer.nlb_host CONFIG.json`: one host's NLB driver as a
process, as root inside the host's network namespace, until SIGTERM or SIGINT (then it
leaves the cluster: cluster IP off the interface, filter removed).

The config file is `NlbHostConfig.to_json`'s form. The driver re-reads it when it
changes: a new `state` (Started, Stopped, Suspended, Draining) applies at once; any
other change needs a restart (it is logged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
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
                await asyncio.wait_for(stop.wait(), config.heartbeat_period)
            with contextlib.suppress(OSError):
                if path.stat().st_mtime_ns != mtime:
                    mtime = path.stat().st_mtime_ns
                    config = _reload(path, driver, config)
    finally:
        await driver.stop()


def _reload(path: Path, driver: NlbHostDriver, config: NlbHostConfig) -> NlbHostConfig:
    try:
        new = NlbHostConfig.from_json(path.read_text())
    except CasarrayError as exc:
        log.warning("ignoring %s: %s", path, exc)
        return config
    if new.state is not config.state:
        log.info("NLB host %s: %s", new.name, new.state.value)
        driver.set_state(new.state)
    if dataclasses.replace(new, state=config.state) != config:
        log.warning("NLB host config changed beyond its state: restart the driver")
    return new


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
