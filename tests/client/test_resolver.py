"""The `--dns IP[:PORT]` option, and SRV targets in the order a client tries them."""

from __future__ import annotations

import pytest

from casarray.client.resolver import SrvTarget, parse_server


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.77.0.53", ("127.77.0.53", 53)),
        ("127.77.0.53:10053", ("127.77.0.53", 10053)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        (" 10.0.0.1:53 ", ("10.0.0.1", 53)),
    ],
)
def test_servers(text: str, parsed: tuple[str, int]) -> None:
    assert parse_server(text) == parsed


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("dns.lab.net", "'dns.lab.net' in 'dns.lab.net' is not an IP address"),
        ("127.77.0.53:0", "the port in '127.77.0.53:0' is not a number from 1 to 65535"),
        ("127.77.0.53:dns", "is not a number"),
        ("[::1", r"is not IP, IP:PORT or \[IPv6\]:PORT"),
        ("300.1.1.1", "is not an IP address"),
    ],
)
def test_bad_servers(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_server(text)


def test_srv_order_is_priority_then_heaviest_weight() -> None:
    targets = [
        SrvTarget(10, -100, "c.lab.net", 443),
        SrvTarget(0, -1, "b.lab.net", 443),
        SrvTarget(0, -50, "a.lab.net", 443),
    ]
    assert [t.host for t in sorted(targets)] == ["a.lab.net", "b.lab.net", "c.lab.net"]
    assert sorted(targets)[0].weight == 50
