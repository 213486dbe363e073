"""The Client Access virtual directories (EWS, Autodiscover) and the Autodiscover
service connection point: made with the server as setup makes them, their rules, and
which server's URLs Autodiscover hands out. On both back ends."""

from __future__ import annotations

import pytest

from casarray.directory import Directory, InvalidOperationError, InvalidValueError, NotFoundError
from casarray.directory.virtual_directories import AUTODISCOVER, WEB_SERVICES, url


def test_setup_makes_both_virtual_directories(bj: Directory) -> None:
    ews = bj.virtual_directories.get("WebServices")
    assert [v.server for v in ews] == ["CAS01", "CAS02", "CAS03"]
    cas01 = ews[0]
    assert cas01.identity == "CAS01\\EWS (Default Web Site)"
    assert cas01.internal_url == "https://CAS01.lab.net/EWS/Exchange.asmx"
    assert cas01.external_url is None
    assert (cas01.basic_authentication, cas01.windows_authentication) == (True, True)
    [autodiscover] = bj.virtual_directories.get("Autodiscover", server="cas02")
    assert autodiscover.identity == "CAS02\\Autodiscover (Default Web Site)"
    assert autodiscover.internal_url == "https://CAS02.lab.net/Autodiscover/Autodiscover.xml"
    server = bj.servers.one("CAS01")
    assert server.autodiscover_service_internal_uri == (
        "https://CAS01.lab.net/Autodiscover/Autodiscover.xml"
    )
    assert bj.servers.one("MBX01").autodiscover_service_internal_uri is None


def test_a_new_client_access_server_gets_them(bj: Directory) -> None:
    bj.servers.new("CAS04", "ClientAccess", "127.77.1.14")
    [ews] = bj.virtual_directories.get(WEB_SERVICES, "CAS04\\EWS (Default Web Site)")
    assert ews.internal_url == "https://CAS04.lab.net/EWS/Exchange.asmx"
    bj.servers.remove("CAS04")
    with pytest.raises(NotFoundError):
        bj.virtual_directories.get(WEB_SERVICES, "CAS04")


@pytest.mark.parametrize(
    "identity", ["CAS01", "cas01.lab.net", "CAS01\\EWS (Default Web Site)", "cas01\\ews"]
)
def test_identity_forms(bj: Directory, identity: str) -> None:
    [found] = bj.virtual_directories.get("WebServices", identity)
    assert found.server == "CAS01"
    [by_guid] = bj.virtual_directories.get("WebServices", found.guid)
    assert by_guid == found


def test_set_urls_and_authentication(bj: Directory) -> None:
    version = bj.topology_version()
    changed = bj.virtual_directories.set(
        "WebServices",
        "CAS01\\EWS (Default Web Site)",
        external_url="https://Mail.Lab.NET/ews/exchange.asmx",
        basic_authentication=False,
    )
    assert changed.external_url == "https://mail.lab.net/ews/exchange.asmx"
    assert changed.internal_url == "https://CAS01.lab.net/EWS/Exchange.asmx"  # kept
    assert (changed.basic_authentication, changed.windows_authentication) == (False, True)
    assert bj.topology_version() > version
    cleared = bj.virtual_directories.set("WebServices", "CAS01", external_url=None)
    assert cleared.external_url is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("cas01.lab.net/EWS/Exchange.asmx", "absolute http or https URL"),
        ("ftp://cas01.lab.net/EWS/Exchange.asmx", "absolute http or https URL"),
        ("https://cas01.lab.net/owa/", "has the path '/owa/'"),
        ("https://bob:pw@cas01.lab.net/EWS/Exchange.asmx", "user name"),
        ("https://cas01.lab.net/EWS/Exchange.asmx?x=1", "query"),
        ("https://cas01/EWS/Exchange.asmx", "fully qualified"),
        ("https://cas01.lab.net:99999/EWS/Exchange.asmx", "is not a URL"),
    ],
)
def test_bad_urls_are_refused_and_change_nothing(bj: Directory, value: str, says: str) -> None:
    version = bj.topology_version()
    with pytest.raises(InvalidValueError) as err:
        bj.virtual_directories.set("WebServices", "CAS01", internal_url=value)
    assert "InternalUrl" in str(err.value) and says in str(err.value)
    assert bj.topology_version() == version
    [ews] = bj.virtual_directories.get("WebServices", "CAS01")
    assert ews.internal_url == "https://CAS01.lab.net/EWS/Exchange.asmx"


def test_urls_keep_a_port_and_an_address() -> None:
    assert url("X", "https://127.0.0.1:8443/EWS/Exchange.asmx", WEB_SERVICES) == (
        "https://127.0.0.1:8443/EWS/Exchange.asmx"
    )
    assert url("X", "  ", AUTODISCOVER) is None


def test_no_authentication_left_is_refused(bj: Directory) -> None:
    bj.virtual_directories.set("Autodiscover", "CAS01", windows_authentication=False)
    with pytest.raises(InvalidValueError) as err:
        bj.virtual_directories.set("Autodiscover", "CAS01", basic_authentication=False)
    assert "no authentication method" in str(err.value)


def test_wrong_names_and_servers(bj: Directory) -> None:
    with pytest.raises(InvalidValueError) as bad_name:
        bj.virtual_directories.get("WebServices", "CAS01\\OWA (Default Web Site)")
    assert "EWS (Default Web Site)" in str(bad_name.value)
    with pytest.raises(InvalidOperationError) as not_cas:
        bj.virtual_directories.get("WebServices", server="MBX01")
    assert "isn't a Client Access server" in str(not_cas.value)
    with pytest.raises(NotFoundError):
        bj.virtual_directories.get("WebServices", "CAS09")


def test_autodiscover_service_internal_uri(bj: Directory) -> None:
    server = bj.virtual_directories.set_autodiscover_service_internal_uri(
        "CAS01", "https://bj-cas.lab.net/Autodiscover/Autodiscover.xml"
    )
    assert server.autodiscover_service_internal_uri == (
        "https://bj-cas.lab.net/Autodiscover/Autodiscover.xml"
    )
    with pytest.raises(InvalidValueError) as err:
        bj.virtual_directories.set_autodiscover_service_internal_uri(
            "CAS01", "https://bj-cas.lab.net/EWS/Exchange.asmx"
        )
    assert "AutoDiscoverServiceInternalUri" in str(err.value)
    with pytest.raises(InvalidOperationError):
        bj.virtual_directories.set_autodiscover_service_internal_uri("MBX01", None)


def test_urls_for_a_site(bj: Directory) -> None:
    # CAS02 answers for a BJ mailbox: its own URLs; for an SH mailbox: CAS03's
    mine = bj.virtual_directories.urls_for("CAS02", "BJ")
    assert mine is not None and mine.server == "CAS02"
    assert mine.internal_ews_url == "https://CAS02.lab.net/EWS/Exchange.asmx"
    other = bj.virtual_directories.urls_for("CAS02", "SH")
    assert other is not None and other.server == "CAS03"
    bj.sites.new("GZ")
    assert bj.virtual_directories.urls_for("CAS01", "GZ") is None
