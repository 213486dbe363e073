"""Test support for the DNS cmdlet tests: the seed's step 3 and readers of the output.

Not a conftest: the test modules import what they use."""

from __future__ import annotations

VIP = "127.77.1.10"

SEED_STEP_3 = "Add-DnsServerResourceRecordA -ZoneName lab.net -Name bj-cas -IPv4Address 127.77.1.10"


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def table(text: str) -> list[list[str]]:
    return [line.split() for line in lines(text)[2:]]
