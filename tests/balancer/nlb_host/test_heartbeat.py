"""The heartbeat wire format: round trips, and hostile input always a HeartbeatError."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casarray.balancer.model import HostState
from casarray.balancer.nlb_host.heartbeat import HEADER, Heartbeat, HeartbeatError, encode, parse
from casarray.errors import CasarrayError

BEAT = Heartbeat(
    cluster_id=0xC613C864,
    host_id=2,
    priority=1,
    name="CAS02",
    state=HostState.DRAINING,
    sequence=7,
    period_ms=200,
    tolerance=5,
    config_digest=b"\x01" * 8,
    view_digest=b"\x02" * 8,
    health=(True, False),
    weights=(50, 0),
)

beats = st.builds(
    Heartbeat,
    cluster_id=st.integers(0, 2**32 - 1),
    host_id=st.integers(1, 32),
    priority=st.integers(1, 32),
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True),
    state=st.sampled_from(list(HostState)),
    sequence=st.integers(0, 2**32 - 1),
    period_ms=st.integers(1, 65535),
    tolerance=st.integers(1, 255),
    config_digest=st.binary(min_size=8, max_size=8),
    view_digest=st.binary(min_size=8, max_size=8),
    health=st.just(()),
    weights=st.just(()),
).flatmap(
    lambda b: st.lists(st.tuples(st.booleans(), st.integers(0, 100)), max_size=32).map(
        lambda rules: dataclasses.replace(
            b, health=tuple(h for h, _ in rules), weights=tuple(w for _, w in rules)
        )
    )
)


def test_round_trip_and_size() -> None:
    data = encode(BEAT)
    assert len(data) == HEADER.size + 5 + 4
    assert parse(data) == BEAT


@given(beats)
def test_any_heartbeat_round_trips(beat: Heartbeat) -> None:
    assert parse(encode(beat)) == beat


@given(st.binary(max_size=200))
def test_random_bytes_parse_or_raise_heartbeat_error(data: bytes) -> None:
    try:
        parse(data)
    except HeartbeatError as exc:
        assert isinstance(exc, CasarrayError) and str(exc)


@given(st.integers(0, 44), st.integers(0, 255))
def test_any_corrupted_byte_parses_or_raises_cleanly(index: int, value: int) -> None:
    data = bytearray(encode(BEAT))
    data[index % len(data)] = value
    with contextlib.suppress(HeartbeatError):
        parse(bytes(data))


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (b"", "too short"),
        (b"XNLB" + encode(BEAT)[4:], "magic"),
        (encode(BEAT)[:4] + b"\x09" + encode(BEAT)[5:], "version"),
        (encode(BEAT) + b"\x00", "header says"),
        (encode(BEAT)[:-1], "header says"),
        (encode(BEAT)[:-2] + b"\x02\x32", "health"),
        (encode(BEAT)[:-1] + b"\xff", "weight"),
        (encode(BEAT).replace(b"CAS02", b"CAS0\n"), "name"),
    ],
)
def test_malformed_heartbeats_say_what_is_wrong(data: bytes, fault: str) -> None:
    with pytest.raises(HeartbeatError, match=fault):
        parse(data)


def test_encode_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(HeartbeatError):
        encode(dataclasses.replace(BEAT, name="CAS 02"))
    with pytest.raises(HeartbeatError):
        encode(dataclasses.replace(BEAT, health=(True,)))
