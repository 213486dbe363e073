"""Fixtures of the balancer tests: `run`, which runs a coroutine to completion (within
20 s) on each event loop the data planes meet, asyncio's and uvloop's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest


def _loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return factories
    factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    def runner(coro: Awaitable[Any]) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(coro, 20)

        with asyncio.Runner(loop_factory=request.param) as r:
            return r.run(bounded())

    yield runner
