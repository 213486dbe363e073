"""Parameter checks: whatever text comes in, the only error is InvalidValueError naming
the parameter, and what is accepted is clean."""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from casarray.directory import InvalidValueError, validate

ALIAS_CHARS = set(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~.")

_junk = st.text(alphabet=string.printable + "é\x00\u00a0\u2013", max_size=40)


@given(value=st.one_of(_junk, st.text(max_size=40)))
@example(value="10.0.0.0/8\n")
@example(value="10.0.0.1/8")
@example(value="10.0.0.0/ 8")
def test_cidr(value: str) -> None:
    try:
        cidr = validate.cidr("Subnets", value)
    except InvalidValueError as err:
        assert err.parameter == "Subnets"
        return
    network = ipaddress.IPv4Network(cidr, strict=True)
    assert str(network) == cidr


@given(
    value=st.one_of(
        st.tuples(_junk, st.sampled_from(["@", "@@", ""]), _junk).map("".join),
        st.text(max_size=40),
    )
)
@example(value="bob\n@lab.net")
@example(value="bob@lab.net\n.x")
@example(value="SMTP:Bob@Lab.Net")
def test_smtp_address(value: str) -> None:
    try:
        address, local, domain = validate.smtp_address("PrimarySmtpAddress", value)
    except InvalidValueError as err:
        assert err.parameter == "PrimarySmtpAddress"
        return
    assert address == f"{local}@{domain}"
    assert set(local) <= ALIAS_CHARS, repr(address)
    assert domain == validate.fqdn("Domain", domain).lower()


def test_smtp_address_prefix_and_case() -> None:
    assert validate.smtp_address("P", "SMTP:Bob@Lab.Net") == ("Bob@lab.net", "Bob", "lab.net")


@given(value=st.one_of(_junk, st.text(max_size=70)))
@example(value="bob\n")
@example(value="bo\nb")
def test_alias(value: str) -> None:
    try:
        alias = validate.alias("Alias", value)
    except InvalidValueError as err:
        assert err.parameter == "Alias"
        return
    assert 1 <= len(alias) <= 64
    assert set(alias) <= ALIAS_CHARS, repr(alias)
    assert not alias.startswith(".") and not alias.endswith(".") and ".." not in alias


@given(value=st.one_of(_junk, st.text(max_size=20)))
@example(value="CAS01\n")
@example(value="CAS\n01")
def test_server_name(value: str) -> None:
    try:
        name = validate.server_name("Name", value)
    except InvalidValueError as err:
        assert err.parameter == "Name"
        return
    assert 1 <= len(name) <= 15
    assert set(name) <= set(string.ascii_letters + string.digits + "-"), repr(name)
    assert not name.isdigit()


@given(value=st.one_of(_junk, st.ip_addresses(v=4).map(str)))
def test_ipv4(value: str) -> None:
    try:
        address = validate.ipv4("IPAddress", value)
    except InvalidValueError as err:
        assert err.parameter == "IPAddress"
        return
    assert str(ipaddress.IPv4Address(address)) == address


@given(value=st.text(max_size=300))
def test_display_name(value: str) -> None:
    try:
        name = validate.display_name("Name", value, 256)
    except InvalidValueError as err:
        assert err.parameter == "Name"
        return
    assert name == name.strip()
    assert 1 <= len(name) <= 256
    assert not any(ord(ch) < 32 or ch == "\x7f" for ch in name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("cas01.lab.net.", "cas01.lab.net"), ("  Bj-Cas.Lab.Net ", "Bj-Cas.Lab.Net")],
)
def test_fqdn_normalised(value: str, expected: str) -> None:
    assert validate.fqdn("Fqdn", value) == expected


def test_error_text_names_parameter_and_value() -> None:
    with pytest.raises(InvalidValueError) as err:
        validate.fqdn("Fqdn", "bjcas")
    assert str(err.value).startswith(
        "Cannot validate argument on parameter 'Fqdn'. The value 'bjcas' "
    )
    assert err.value.value == "bjcas"
    assert err.value.category == "InvalidArgument"
