"""The PROXY protocol header parser: versions 1 and 2, byte by byte, and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casarray.access.proxy_protocol import ProxyHeader, ProxyHeaderError, parse
from casarray.balancer.proxy import proxy_v2_header


def test_v2_tcp4_and_tcp6_byte_by_byte() -> None:
    for source, destination in (
        (("198.51.100.7", 40000), ("127.77.1.10", 143)),
        (("2001:db8::7", 40000), ("2001:db8::10", 993)),
    ):
        data = proxy_v2_header(source, destination) + b"a NOOP\r\n"
        header_length = len(data) - len(b"a NOOP\r\n")
        for cut in range(header_length):
            assert parse(data[:cut]) is None
        assert parse(data) == (ProxyHeader(source, destination, 2), header_length)


def test_v2_local_and_v1() -> None:
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0x00, 0x00])
    assert parse(local) == (ProxyHeader(None, None, 2), 16)
    line = b"PROXY TCP4 203.0.113.9 127.77.1.10 5555 143\r\n"
    assert parse(line + b"x") == (
        ProxyHeader(("203.0.113.9", 5555), ("127.77.1.10", 143), 1),
        len(line),
    )
    assert parse(line[:20]) is None
    assert parse(b"PROXY UNKNOWN\r\n") == (ProxyHeader(None, None, 1), 15)


@pytest.mark.parametrize(
    "data",
    [
        b"a NOOP\r\n",
        b"PROXY TCP4 1.2.3.4\r\n",
        b"PROXY TCP4 ::1 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
        b"PROXY TCP4 " + b"1" * 120,
        b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x30, 0x11, 0x00, 0x0C]) + bytes(12),
        b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11, 0xFF, 0xFF]),
        b"\r\n\r\nX",
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(data)


@given(st.binary(max_size=300))
def test_never_crashes(data: bytes) -> None:
    try:
        result = parse(data)
    except ProxyHeaderError:
        return
    if result is not None:
        assert 0 < result[1] <= len(data)
