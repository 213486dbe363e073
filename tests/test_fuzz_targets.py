"""The fuzz targets of tests/fuzz_targets.py (every parser an attacker can reach), each
for a short while: its seeds (the tests' own inputs) as they are, then random bytes and
mutants of the seeds drawn by hypothesis (bytes flipped, the grammar's words inserted,
parts cut, repeated or spliced from another seed). Each input keeps the target's
contract or the test fails with what broke it; bench/fuzz.py runs the same targets for
a million inputs each under atheris."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import TARGETS, ContractBroken, Target

_MADE: dict[str, Callable[[bytes], None]] = {}
_SEEDS: dict[str, list[bytes]] = {}


def seeds_of(target: Target) -> list[bytes]:
    """The target's seeds, read once (some come from the tests' sources)."""
    if target.name not in _SEEDS:
        _SEEDS[target.name] = [seed[: target.max_len] for seed in target.seeds()]
    return _SEEDS[target.name]


def made(target: Target) -> Callable[[bytes], None]:
    """The target, set up once per test run."""
    if target.name not in _MADE:
        _MADE[target.name] = target.make()
    return _MADE[target.name]


@st.composite
def mutants(draw: st.DrawFn, target: Target) -> bytes:
    seeds = seeds_of(target)
    data = bytearray(draw(st.sampled_from(seeds)))
    tokens = target.tokens or (b"\x00", b"\xff", b"\r\n")
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 5))
        at = draw(st.integers(0, len(data)))
        if kind == 0 and data:  # flip a byte
            at = min(at, len(data) - 1)
            data[at] = draw(st.integers(0, 255))
        elif kind == 1:  # a word of the grammar
            data[at:at] = draw(st.sampled_from(tokens))
        elif kind == 2:  # cut a part
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == 3:  # repeat a part
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(2, 40))
        elif kind == 4:  # splice another seed's tail
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, len(other))) :]
        else:  # random bytes
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data[: target.max_len])


def check(target: Target, data: bytes) -> None:
    try:
        made(target)(data)
    except ContractBroken as exc:
        pytest.fail(f"{target.name}: {exc}\ninput: {data!r}")


@pytest.mark.parametrize("name", list(TARGETS))
def test_the_seeds_keep_the_contract(name: str) -> None:
    target = TARGETS[name]
    seeds = seeds_of(target)
    assert len(seeds) >= 5, "a target is seeded with the tests' own inputs"
    for seed in seeds[:: max(1, len(seeds) // 120)]:  # bench/fuzz.py runs them all
        check(target, seed)


@pytest.mark.parametrize("name", list(TARGETS))
def test_random_inputs_keep_the_contract(name: str) -> None:
    target = TARGETS[name]

    @settings(
        max_examples=target.examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.one_of(mutants(target), st.binary(max_size=min(target.max_len, 512))))
    def run(data: bytes) -> None:
        check(target, data)

    run()


def test_a_broken_contract_is_caught() -> None:
    """The harness itself: a session that fails (NO [SERVERBUG], an error logged) or
    a SOAP endpoint that answers 500 without a fault is a broken contract, not a pass."""
    from casarray.access.imap import session as imap_session

    target = TARGETS["imap-session"]
    one = made(target)
    original = imap_session.ImapSession._do_NOOP

    def failing(self: object, cmd: object, out: object) -> object:
        raise RuntimeError("the NOOP handler broke")

    imap_session.ImapSession._do_NOOP = failing  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(ContractBroken, match="the NOOP handler broke"):
            one(b"\x01a1 NOOP\r\n")
    finally:
        imap_session.ImapSession._do_NOOP = original  # type: ignore[method-assign]
    one(b"\x01a1 NOOP\r\n")
