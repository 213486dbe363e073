"""Subject names as -SubjectName takes them and Windows shows them, DNS names for
certificates, and which host a certificate name covers (RFC 6125 wildcards)."""

from __future__ import annotations

import pytest
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from casarray.pki.names import common_name, covers, dns_name, matches, parse_subject, subject_text


def test_subject_in_typed_order_shown_reversed() -> None:
    name = parse_subject("C=CN, O=Lab, CN=mail.lab.net")
    # in the certificate: the order typed, most significant first
    assert [a.oid for a in name] == [
        NameOID.COUNTRY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.COMMON_NAME,
    ]
    # as Windows and Exchange show it
    assert subject_text(name) == "CN=mail.lab.net, O=Lab, C=CN"
    assert common_name(name) == "mail.lab.net"


def test_subject_attributes_and_quoting() -> None:
    name = parse_subject('c=us, s=NY, l=New York, o="Contoso, Inc", ou=IT, cn=mail1.contoso.com')
    assert subject_text(name) == (
        'CN=mail1.contoso.com, OU=IT, O="Contoso, Inc", L=New York, S=NY, C=US'
    )
    assert parse_subject(r"O=A\, B, CN=x").get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[
        0
    ].value == ("A, B")
    assert subject_text(parse_subject("CN=cas01; DC=lab; DC=net")) == "DC=net, DC=lab, CN=cas01"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is empty"),
        ("O=Lab", "has no common name"),
        ("C=China, CN=x", "a country is two letters"),
        ("X=1, CN=x", "unknown attribute 'X'"),
        ("CN=x,, O=y", "empty part"),
        ("CN", "is not ATTRIBUTE=value"),
        ('CN="x', "unterminated quotation mark"),
        ("CN=" + "a" * 65, "CN of 65 characters; the most is 64"),
    ],
)
def test_bad_subjects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_subject(text)


def test_dns_names() -> None:
    assert dns_name("Mail.Lab.NET.") == "mail.lab.net"
    assert dns_name("*.lab.net") == "*.lab.net"
    assert dns_name("CAS01") == "cas01"  # a server's NetBIOS name, as Exchange allows
    for bad, reason in [
        ("127.0.0.1", "is an IP address"),
        ("*.net", "wildcard over a whole top-level domain"),
        ("a.*.lab.net", "label '\\*'"),
        ("-x.lab.net", "label '-x'"),
        ("host.123", "last label is a number"),
        ("", "is empty"),
    ]:
        with pytest.raises(ValueError, match=reason):
            dns_name(bad)


def test_wildcards_cover_exactly_one_label() -> None:
    assert matches("*.lab.net", "mail.lab.net")
    assert matches("*.lab.net", "MAIL.LAB.NET.")
    assert not matches("*.lab.net", "lab.net")
    assert not matches("*.lab.net", "a.b.lab.net")
    assert matches("bj-cas.lab.net", "BJ-CAS.lab.net")
    assert not matches("bj-cas.lab.net", "sh-cas.lab.net")
    assert covers(["mail.lab.net", "*.lab.net"], "autodiscover.lab.net")
    assert not covers([], "mail.lab.net")


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
top_level = st.from_regex(r"[a-z]{2,6}", fullmatch=True)


@given(st.lists(labels, min_size=1, max_size=4), top_level)
def test_a_name_covers_itself_and_its_wildcard_covers_it(head: list[str], tld: str) -> None:
    parts = [*head, tld]
    host = ".".join(parts)
    assert matches(dns_name(host), host.upper())
    if len(parts) >= 3:
        assert matches("*." + ".".join(parts[1:]), host)
    assert not matches("*." + host, host)
