"""The wait between reconnection attempts: 0.1 s doubling up to 2 s, each wait
shortened by up to a fifth at random (jitter), so that clients cut off together do not
come back in step. The first attempt after a loss is made at once, without asking."""

from __future__ import annotations

import random as _random
from collections.abc import Callable

INITIAL = 0.1
FACTOR = 2.0
MAXIMUM = 2.0
JITTER = 0.2


class Backoff:
    """`next()` is the wait before the next retry; `reset()` after a success."""

    def __init__(
        self,
        initial: float = INITIAL,
        maximum: float = MAXIMUM,
        *,
        factor: float = FACTOR,
        jitter: float = JITTER,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"the first wait ({initial}) must be above 0 and at most {maximum}")
        if factor < 1 or not 0 <= jitter < 1:
            raise ValueError("the factor must be 1 or more and the jitter from 0 to below 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._random = random
        self.attempts = 0
        self._next = initial

    def next(self) -> float:
        """Seconds to wait before the next retry."""
        self.attempts += 1
        wait = self._next
        self._next = min(self.maximum, wait * self.factor)
        return wait * (1 - self.jitter * self._random())

    def reset(self) -> None:
        self.attempts = 0
        self._next = self.initial
