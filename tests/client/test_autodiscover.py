"""Autodiscover's request and response, with no network: the request is what the
server's own parser takes; responses as Exchange (and casarray's server) send them,
errors 500/600/601 and HTTP 401 included, and what is not a response refused."""

from __future__ import annotations

import pytest

from casarray.access.http.autodiscover import parse_request
from casarray.client.autodiscover import (
    AutodiscoverError,
    InvalidResponse,
    Redirect,
    Settings,
    interpret,
    parse_response,
    request_body,
)
from casarray.client.errors import AuthenticationFailed

OUTER = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
INNER = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

LEGACY = "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
SETTINGS = f"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{OUTER}">
  <Response xmlns="{INNER}">
    <User>
      <DisplayName>Alice Wang</DisplayName>
      <LegacyDN>{LEGACY}/cn=Recipients/cn=alice</LegacyDN>
      <AutoDiscoverSMTPAddress>alice@lab.net</AutoDiscoverSMTPAddress>
      <DeploymentId>5d7c1a8e-0000-4000-8000-000000000001</DeploymentId>
    </User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <MicrosoftOnline>False</MicrosoftOnline>
      <Protocol>
        <Type>EXCH</Type>
        <Server>bj-cas.lab.net</Server>
        <ServerDN>{LEGACY}/cn=Configuration/cn=Servers/cn=bj-cas.lab.net</ServerDN>
        <ServerVersion>738180DA</ServerVersion>
        <MdbDN>/o=Lab/cn=Servers/cn=MBX01/cn=Microsoft Private MDB</MdbDN>
      </Protocol>
      <Protocol>
        <Type>WEB</Type>
        <Internal><OWAUrl AuthenticationMethod="Basic, Fba">https://bj-cas.lab.net:10443/owa/</OWAUrl></Internal>
      </Protocol>
      <Protocol>
        <Type>IMAP</Type>
        <Server>bj-cas.lab.net</Server>
        <Port>10993</Port>
        <LoginName>alice@lab.net</LoginName>
        <SSL>on</SSL>
      </Protocol>
      <Protocol>
        <Type>SMTP</Type>
        <Server>bj-cas.lab.net</Server>
        <Port>10587</Port>
        <Encryption>TLS</Encryption>
      </Protocol>
    </Account>
  </Response>
</Autodiscover>""".encode()


def error_body(code: int, message: str, debug: str = "", *, provider: bool = True) -> bytes:
    response = f'<Response xmlns="{INNER}">' if provider else "<Response>"
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{OUTER}">{response}'
        f'<Error Time="10:00:00.0000000" Id="1"><ErrorCode>{code}</ErrorCode>'
        f"<Message>{message}</Message><DebugData>{debug}</DebugData></Error>"
        "</Response></Autodiscover>"
    ).encode()


def test_the_request_is_outlooks_as_the_server_reads_it() -> None:
    request = parse_request(request_body("alice@lab.net"))
    assert request.email_address == "alice@lab.net"
    assert request.legacy_dn is None


def test_settings_give_the_server_name_serverdn_and_imap() -> None:
    settings = parse_response(SETTINGS)
    assert isinstance(settings, Settings)
    assert settings.server == "bj-cas.lab.net"
    assert settings.server_dn.endswith("/cn=Servers/cn=bj-cas.lab.net")
    assert settings.mdb_dn.endswith("/cn=Microsoft Private MDB")
    assert settings.display_name == "Alice Wang"
    assert settings.address == "alice@lab.net"
    assert settings.imap is not None
    assert (settings.imap.server, settings.imap.port, settings.imap.encryption) == (
        "bj-cas.lab.net",
        10993,
        "SSL",
    )
    assert settings.imap.login_name == "alice@lab.net"
    assert settings.smtp is not None
    assert (settings.smtp.port, settings.smtp.encryption) == (10587, "TLS")
    assert settings.owa_url == "https://bj-cas.lab.net:10443/owa/"


@pytest.mark.parametrize(
    ("code", "message", "provider"),
    [
        (600, "Invalid Request", False),
        (601, "Provider is not available", False),
        (500, "The e-mail address cannot be found.", True),
        (602, "Bad Address", True),
    ],
)
def test_an_error_element_is_raised_with_its_code(code: int, message: str, provider: bool) -> None:
    with pytest.raises(AutodiscoverError) as caught:
        parse_response(error_body(code, message, "why it was", provider=provider))
    assert caught.value.code == code
    assert caught.value.error_message == message
    assert caught.value.debug == "why it was"
    assert str(caught.value) == f"Autodiscover error {code} ({message}): why it was"


def test_401_is_a_wrong_password() -> None:
    with pytest.raises(AuthenticationFailed, match="refused the address and password"):
        interpret(401, b"")


@pytest.mark.parametrize(("status", "text"), [(403, "HTTP 403 Forbidden"), (404, "HTTP 404")])
def test_other_statuses_are_not_answers(status: int, text: str) -> None:
    with pytest.raises(InvalidResponse, match=text):
        interpret(status, SETTINGS)


def test_200_is_parsed() -> None:
    assert isinstance(interpret(200, SETTINGS), Settings)


def account(action: str, extra: str) -> bytes:
    return (
        f'<Autodiscover xmlns="{OUTER}"><Response xmlns="{INNER}"><Account>'
        f"<Action>{action}</Action>{extra}</Account></Response></Autodiscover>"
    ).encode()


def test_redirects() -> None:
    assert parse_response(account("redirectAddr", "<RedirectAddr>a@b.net</RedirectAddr>")) == (
        Redirect("address", "a@b.net")
    )
    url = "https://autodiscover.b.net/autodiscover/autodiscover.xml"
    assert parse_response(account("redirectUrl", f"<RedirectUrl>{url}</RedirectUrl>")) == (
        Redirect("url", url)
    )
    with pytest.raises(InvalidResponse, match="not an HTTPS URL"):
        parse_response(account("redirectUrl", "<RedirectUrl>http://x/a.xml</RedirectUrl>"))
    with pytest.raises(InvalidResponse, match="not an address"):
        parse_response(account("redirectAddr", "<RedirectAddr>nobody</RedirectAddr>"))


BAD_PORT = (
    "<Protocol><Type>EXCH</Type><Server>x.lab.net</Server></Protocol>"
    "<Protocol><Type>IMAP</Type><Server>x.lab.net</Server><Port>99999</Port></Protocol>"
)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "not well-formed"),
        (b"<html><body>It works!</body></html>", "root element is html"),
        (f'<Autodiscover xmlns="{OUTER}"/>'.encode(), "no Response"),
        (account("settings", ""), "no EXCH protocol"),
        (account("logon", ""), "Action is 'logon'"),
        (
            b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Autodiscover><Response/></Autodiscover>',
            "DTD or entities",
        ),
        (account("settings", BAD_PORT), "IMAP protocol has no valid Server and Port"),
        (error_body(0, "x").replace(b">0<", b">ten<"), "ErrorCode 'ten' is not a number"),
    ],
)
def test_what_is_not_a_response_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(InvalidResponse, match=why):
        parse_response(body)
