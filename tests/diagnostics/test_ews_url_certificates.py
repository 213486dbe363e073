"""Test-ClientAccessArray's EwsUrlNotCovered: a member's EWS virtual directory URL
(internal or external) whose host no certificate enabled for IIS there covers."""

from __future__ import annotations

from casarray.diagnostics.array_analyzer import ERROR, EWS_URL_NOT_COVERED
from casarray.directory import Directory
from tests.diagnostics.test_array_analyzer import good, of, only, run

__all__ = ["good"]


def test_an_external_url_no_certificate_covers(good: Directory) -> None:
    assert of(run(good), EWS_URL_NOT_COVERED) == []
    good.virtual_directories.set(
        "WebServices", "CAS02", external_url="https://mail.contoso.com/EWS/Exchange.asmx"
    )
    finding = only(run(good), EWS_URL_NOT_COVERED)
    assert finding.severity == ERROR
    assert finding.target == "CAS02\\EWS (Default Web Site) ExternalUrl"
    assert "names mail.contoso.com, which no usable certificate enabled for IIS on CAS02" in (
        finding.message
    )
    assert "-DomainName mail.contoso.com," in finding.fix
    assert finding.fix.endswith("Enable-ExchangeCertificate -Services IIS -Force")
    # An IMAP-only certificate doesn't count; one enabled for IIS does.
    good.certificates.new_self_signed("CAS02", domain_names=["mail.contoso.com"], services="IMAP")
    assert len(of(run(good), EWS_URL_NOT_COVERED)) == 1
    good.certificates.new_self_signed(
        "CAS02",
        domain_names=["mail.contoso.com", "CAS02.lab.net", "bj-cas.lab.net"],
        services="IIS",
    )
    assert of(run(good), EWS_URL_NOT_COVERED) == []


def test_an_internal_url_no_certificate_covers(good: Directory) -> None:
    good.virtual_directories.set(
        "WebServices", "CAS01", internal_url="https://ews.lab.net/EWS/Exchange.asmx"
    )
    finding = only(run(good), EWS_URL_NOT_COVERED)
    assert finding.target == "CAS01\\EWS (Default Web Site) InternalUrl"
    assert "ews.lab.net" in finding.message
    good.certificates.new_self_signed("CAS01", domain_names=["*.lab.net"], services="IIS")
    assert of(run(good), EWS_URL_NOT_COVERED) == []
