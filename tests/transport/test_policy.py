"""The receive connectors' decisions, replies and trace headers, without sockets."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from casarray.transport import policy, replies
from casarray.transport.config import (
    ANONYMOUS_USERS,
    AUTHORITATIVE,
    BASIC_AUTH,
    BASIC_AUTH_REQUIRE_TLS,
    EXCHANGE_USERS,
    INTERNAL_RELAY,
    TLS,
    Connector,
    Domain,
    TransportConfig,
)
from casarray.transport.headers import (
    crlf,
    hop_count,
    mentions_queue_id,
    received_header,
    return_path,
)
from casarray.transport.queue import LOCAL, RELAY

DEFAULT = Connector(
    name="Default MBX01",
    bindings=(("0.0.0.0", 25),),
    remote_ip_ranges=("0.0.0.0-255.255.255.255",),
    auth_mechanism=frozenset({TLS, BASIC_AUTH, BASIC_AUTH_REQUIRE_TLS}),
    permission_groups=frozenset({ANONYMOUS_USERS, EXCHANGE_USERS}),
    max_message_size=1000,
    max_recipients_per_message=3,
)
CLIENT = Connector(
    name="Client MBX01",
    bindings=(("0.0.0.0", 587),),
    auth_mechanism=frozenset({TLS, BASIC_AUTH, BASIC_AUTH_REQUIRE_TLS}),
    permission_groups=frozenset({EXCHANGE_USERS}),
)
RELAY_CONNECTOR = Connector(
    name="Relay MBX01",
    bindings=(("0.0.0.0", 25),),
    remote_ip_ranges=("10.1.2.0/24",),
    permission_groups=frozenset({ANONYMOUS_USERS}),
)
CONFIG = TransportConfig(
    server="MBX01",
    fqdn="mbx01.lab.net",
    domains=(Domain("lab.net", AUTHORITATIVE), Domain("partner.net", INTERNAL_RELAY)),
    connectors=(DEFAULT, CLIENT, RELAY_CONNECTOR),
)
MAILBOXES = {"alice@lab.net", "carol@partner.net"}


def exists(address: str) -> bool:
    return address.lower() in MAILBOXES


def rcpt(address: str, connector: Connector = DEFAULT, **kw: object) -> policy.RecipientDecision:
    options: dict[str, object] = {"authenticated": False, "accepted_so_far": 0, "exists": exists}
    options.update(kw)
    return policy.check_recipient(CONFIG, connector, address, **options)  # type: ignore[arg-type]


def test_connector_by_port_and_most_specific_range() -> None:
    connectors = CONFIG.connectors
    assert policy.choose_connector(connectors, "127.77.1.21", 25, "127.0.0.1") is DEFAULT
    assert policy.choose_connector(connectors, "127.77.1.21", 25, "10.1.2.7") is RELAY_CONNECTOR
    assert policy.choose_connector(connectors, "127.77.1.21", 587, "10.1.2.7") is CLIENT
    assert policy.choose_connector(connectors, "127.77.1.21", 2525, "10.1.2.7") is None
    assert policy.choose_connector(connectors, "127.77.1.21", 25, "::ffff:10.1.2.7") is (
        RELAY_CONNECTOR
    )
    disabled = Connector(name="x", bindings=(("0.0.0.0", 26),), enabled=False)
    assert policy.choose_connector((disabled,), "127.0.0.1", 26, "127.0.0.1") is None
    assert policy.listen_bindings(connectors) == [("0.0.0.0", 25), ("0.0.0.0", 587)]


def test_size_is_refused_at_mail_from() -> None:
    assert policy.check_mail(DEFAULT, 1001) == replies.MESSAGE_TOO_BIG
    assert str(replies.MESSAGE_TOO_BIG).startswith("552 5.3.4 ")
    assert policy.check_mail(DEFAULT, 1000) is None
    assert policy.check_mail(DEFAULT, None) is None


def test_anonymous_mail_to_an_authoritative_domain() -> None:
    ok = rcpt("Alice@LAB.net")
    assert ok.reply == replies.RECIPIENT_OK and ok.recipient is not None
    assert ok.recipient.route == LOCAL
    unknown = rcpt("nobody@lab.net")
    assert unknown.recipient is None and str(unknown.reply).startswith("550 5.1.1")


def test_internal_relay_domain_relays_unknown_recipients() -> None:
    assert rcpt("carol@partner.net").recipient.route == LOCAL  # type: ignore[union-attr]
    other = rcpt("dave@partner.net").recipient
    assert other is not None and other.route == RELAY and other.next_hop == "partner.net"


def test_relay_only_for_authenticated_users_or_listed_addresses() -> None:
    refused = rcpt("bob@far.net")
    assert refused.recipient is None and str(refused.reply).startswith("550 5.7.1")
    allowed = rcpt("bob@far.net", CLIENT, authenticated=True).recipient
    assert allowed is not None and allowed.route == RELAY and allowed.next_hop == "far.net"
    assert rcpt("bob@far.net", RELAY_CONNECTOR).recipient is not None


def test_wildcard_accepted_domains() -> None:
    config = TransportConfig(
        server="MBX01", fqdn="mbx01.lab.net", domains=(Domain("*.lab.net", AUTHORITATIVE),)
    )
    assert config.domain("lab.net") is not None
    assert config.domain("Sales.LAB.net.") is not None
    assert config.domain("xlab.net") is None


def test_exchange_servers_grant_no_anonymous_relay() -> None:
    default = Connector(
        name="Default MBX01",
        bindings=(("0.0.0.0", 25),),
        permission_groups=frozenset({ANONYMOUS_USERS, EXCHANGE_USERS, "ExchangeServers"}),
    )
    assert rcpt("bob@far.net", default).recipient is None


def test_recipient_limit_and_bad_addresses() -> None:
    over = rcpt("alice@lab.net", accepted_so_far=3)
    assert str(over.reply).startswith("452 4.5.3")
    assert str(rcpt("alice").reply).startswith("501 5.1.3")
    assert str(rcpt("a@b@").reply).startswith("501 5.1.3")
    unknown_now = rcpt("alice@lab.net", exists=lambda _a: None)
    assert str(unknown_now.reply).startswith("451 4.4.0")


def test_auth_rules_of_connectors() -> None:
    assert CLIENT.offers_auth and CLIENT.auth_requires_tls
    assert not RELAY_CONNECTOR.offers_auth
    clear = Connector(
        name="c",
        bindings=(("0.0.0.0", 2587),),
        auth_mechanism=frozenset({BASIC_AUTH}),
        permission_groups=frozenset({EXCHANGE_USERS}),
    )
    assert clear.offers_auth and not clear.auth_requires_tls
    assert DEFAULT.open_to_all and not RELAY_CONNECTOR.open_to_all


def test_session_guard_tarpits_then_closes() -> None:
    guard = policy.SessionGuard(free_failures=2, delay=0.5, auth_limit=4)
    assert [guard.auth_failed() for _ in range(3)] == [(0.0, None), (0.0, None), (0.5, None)]
    delay, closing = guard.auth_failed()
    assert delay == 0.5 and closing == replies.TOO_MANY_AUTH_FAILURES
    assert str(closing).startswith("421 4.7.0")


def test_loop_detection_by_hop_count() -> None:
    many = b"".join(b"Received: from x by y; date\r\n" for _ in range(30)) + b"\r\nbody\r\n"
    assert hop_count(many) == 30
    assert policy.check_message(many) == replies.LOOP
    assert policy.check_message(many[len(b"Received: from x by y; date\r\n") :]) is None
    # a "Received:" in the body is no hop
    body_only = b"Subject: x\r\n\r\n" + b"Received: x\r\n" * 40
    assert hop_count(body_only) == 0


@pytest.mark.parametrize(
    ("raw", "enhanced"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("500 Error: bad syntax", "500 5.5.2 Error: bad syntax"),
        ("501 Syntax: MAIL FROM: <address>", "501 5.5.4 Syntax: MAIL FROM: <address>"),
        ("503 Error: need RCPT command", "503 5.5.1 Error: need RCPT command"),
        (
            "552 Error: message size exceeds fixed maximum message size",
            "552 5.3.4 Error: message size exceeds fixed maximum message size",
        ),
        ("553 5.1.3 Error: malformed address", "553 5.1.3 Error: malformed address"),
        ("220 mbx01.lab.net ready", "220 mbx01.lab.net ready"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
        ("250-SIZE 10", "250-SIZE 10"),
        ("221 Bye", "221 2.0.0 Bye"),
    ],
)
def test_enhanced_status_codes(raw: str, enhanced: str) -> None:
    assert replies.enhance(raw) == enhanced


def test_trace_headers() -> None:
    when = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    header = received_header(
        helo="client (evil)\r\nX: y",
        client_address="127.0.0.1",
        by="mbx01.lab.net",
        queue_id="0123456789ABCDEF",
        recipient="alice@lab.net",
        protocol="ESMTPS",
        when=when,
    )
    text = header.decode()
    assert text.startswith("Received: from client__evil___X:_y (127.0.0.1)\r\n")
    assert "by mbx01.lab.net with ESMTPS id 0123456789ABCDEF" in text
    assert text.endswith("for <alice@lab.net>; Mon, 07 Dec 2026 10:00:00 +0000\r\n")
    assert mentions_queue_id(header + b"Subject: x\r\n\r\nbody", "0123456789ABCDEF")
    assert not mentions_queue_id(b"Subject: x\r\n\r\n id 0123456789ABCDEF", "0123456789ABCDEF")
    assert return_path("") == b"Return-Path: <>\r\n"
    assert return_path("a@x.net") == b"Return-Path: <a@x.net>\r\n"
    assert crlf(b"a\nb\r\nc\rd") == b"a\r\nb\r\nc\r\nd"


def test_relay_needs_a_send_connector_for_the_domain() -> None:
    """Relay to a domain no send connector covers is refused at RCPT (550 5.4.4);
    the most specific address space, then the lowest cost, routes a domain."""
    from dataclasses import replace

    from casarray.transport.config import SendConnector

    partners = SendConnector("Partners", (("*.partner.net", 1), ("contoso.com", 5)), ("10.0.0.9",))
    cheap = SendConnector("Cheap", (("contoso.com", 1),), ("10.0.0.8",))
    config = replace(CONFIG, send_connectors=(partners, cheap))

    def decide(address: str, connector: Connector = CLIENT) -> policy.RecipientDecision:
        return policy.check_recipient(
            config, connector, address, authenticated=True, accepted_so_far=0, exists=exists
        )

    refused = decide("bob@far.net")
    assert refused.recipient is None and str(refused.reply).startswith("550 5.4.4 Unable to route")
    assert decide("dave@partner.net", DEFAULT).recipient is not None  # InternalRelay
    assert decide("bob@contoso.com").recipient is not None
    assert config.route("contoso.com") is cheap  # same specificity: the lower cost
    assert config.route("sales.partner.net") is partners
    assert config.route("far.net") is None
    # a snapshot that doesn't know its send connectors refuses nothing for routing
    assert CONFIG.routable("far.net")


def test_server_logins_only_where_exchange_servers_are_taken() -> None:
    internal = Connector(
        name="Internal MBX01",
        bindings=(("0.0.0.0", 2525),),
        auth_mechanism=frozenset({TLS, "ExchangeServer"}),
        permission_groups=frozenset({"ExchangeServers"}),
    )
    default = dataclasses.replace(
        DEFAULT,
        auth_mechanism=DEFAULT.auth_mechanism | {"ExchangeServer"},
        permission_groups=DEFAULT.permission_groups | {"ExchangeServers"},
    )
    assert internal.offers_auth and internal.offers_server_auth
    assert not internal.offers_user_auth and internal.auth_requires_tls
    assert default.offers_user_auth and default.offers_server_auth
    assert not CLIENT.offers_server_auth and not DEFAULT.offers_server_auth
    assert policy.is_server_login("CAS01$") and policy.is_server_login("LAB\\CAS01$")
    assert not policy.is_server_login("alice") and not policy.is_server_login("$")

    check = policy.check_auth
    assert check(default, "CAS01$", tls_active=True) is None
    assert check(default, "CAS01$", tls_active=False) == replies.AUTH_REQUIRED_TLS
    assert check(CLIENT, "CAS01$", tls_active=True) == replies.AUTH_FAILED
    assert check(internal, "alice@lab.net", tls_active=True) == replies.AUTH_FAILED
    assert check(CLIENT, "alice@lab.net", tls_active=True) is None
    # a server that logged in relays where ExchangeServers is taken; anonymous never
    assert rcpt("bob@far.net", internal, authenticated=True).recipient is not None
    assert rcpt("bob@far.net", internal).recipient is None
