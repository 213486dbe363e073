"""Transcripts of the sans-IO cores: `soap` (requests read, responses written,
hostile and malformed input refused) and `ids` (round trips, forgery, another
mailbox), then the same hostile input through the HTTP layer."""

from __future__ import annotations

import base64
import uuid

import defusedxml.ElementTree as SafeET
import pytest

from casarray.access.ews import soap
from casarray.access.ews.dispatch import answer
from casarray.access.ews.ids import FolderRef, IdCodec, ItemRef
from casarray.access.ews.soap import EwsError, SoapFault, parse_request
from tests.access.ews import NS, envelope

ALICE = str(uuid.uuid4())
BOB = str(uuid.uuid4())
CODEC = IdCodec.for_secret(b"k" * 32)

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol3;</s:Body></s:Envelope>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&xxe;</s:Body></s:Envelope>"""


def test_a_request_is_read() -> None:
    req = parse_request(
        envelope(
            "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
            "</m:GetFolder>",
            header='<t:RequestServerVersion Version="Exchange2010_SP2"/>'
            '<t:TimeZoneContext><t:TimeZoneDefinition Id="China Standard Time"/>'
            "</t:TimeZoneContext>",
        )
    )
    assert (req.operation, req.namespace) == ("GetFolder", soap.NS_M)
    assert req.requested_version == "Exchange2010_SP2"
    assert req.time_zone == "China Standard Time"
    assert req.impersonation is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"<s:Envelope", "well-formed"),
        (b"\xff\xfe<x/>", "well-formed"),
        (b"<Foo/>", "not a SOAP Envelope"),
        (b"<Envelope/>", "SOAP 1.1"),
        (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"/>', "SOAP 1.1"),
        (envelope("")[:-1] + b">", "empty"),
        (BOMB, "DTD"),
        (XXE, "DTD"),
    ],
)
def test_what_is_not_a_request_is_a_fault_naming_it(data: bytes, words: str) -> None:
    with pytest.raises(SoapFault) as caught:
        parse_request(data)
    assert words in caught.value.message
    assert caught.value.status == 500
    status, body = answer(data, lambda _: pytest.fail("no context for a fault"))
    assert status == 500
    fault = SafeET.fromstring(body).find("s:Body/s:Fault", NS)
    assert fault is not None and fault.findtext("faultcode") == "s:Client"
    assert words in (fault.findtext("faultstring") or "")
    assert fault.findtext(f"detail/{{{soap.NS_E}}}ResponseCode") == "ErrorSchemaValidation"


def test_a_huge_body_is_413() -> None:
    with pytest.raises(SoapFault) as caught:
        parse_request(b" " * (soap.MAX_BODY + 1))
    assert caught.value.status == 413 and str(soap.MAX_BODY) in caught.value.message


def test_an_unknown_version_and_impersonation() -> None:
    with pytest.raises(SoapFault, match="Exchange2099"):
        parse_request(
            envelope("<m:GetFolder/>", header='<t:RequestServerVersion Version="Exchange2099"/>')
        )
    data = envelope(
        "<m:GetFolder/>",
        header="<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>"
        "bob@lab.net</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>",
    )
    status, body = answer(data, lambda _: pytest.fail("impersonation must not open a mailbox"))
    assert status == 200
    msg = SafeET.fromstring(body).find("s:Body/m:GetFolderResponse/m:ResponseMessages/*", NS)
    assert msg is not None and msg.get("ResponseClass") == "Error"
    assert msg.findtext("m:ResponseCode", namespaces=NS) == "ErrorImpersonationDenied"


def test_responses_carry_the_version_and_survive_control_characters() -> None:
    body = soap.operation_response("GetItem", [soap.response_message("GetItem")])
    soap.sub(body, soap.t("Subject"), "bad \x00\x07 chars & <tags>")
    root = SafeET.fromstring(soap.envelope(body))
    info = root.find("s:Header/t:ServerVersionInfo", NS)
    assert info is not None and info.attrib == {
        "MajorVersion": "14",
        "MinorVersion": "3",
        "MajorBuildNumber": "123",
        "MinorBuildNumber": "4",
        "Version": "Exchange2010_SP2",
    }
    assert root.findtext("s:Body/m:GetItemResponse/t:Subject", namespaces=NS) == (
        "bad \ufffd\ufffd chars & <tags>"
    )


# -- ids ------------------------------------------------------------------------------------


def test_ids_round_trip_and_are_stable() -> None:
    folder = FolderRef(ALICE, "INBOX/Work", 1234)
    item = ItemRef(ALICE, "INBOX/Work", 1234, 77)
    assert CODEC.folder(CODEC.folder_id(folder), ALICE) == folder
    assert CODEC.item(CODEC.item_id(item), ALICE) == item
    assert CODEC.item_id(item) == IdCodec.for_secret(b"k" * 32).item_id(item)  # any member
    assert CODEC.folder(CODEC.folder_id(FolderRef(ALICE, virtual="root")), ALICE).virtual == "root"
    assert CODEC.decode_change_key(CODEC.change_key(99)) == 99


def test_a_forged_or_altered_id_is_refused() -> None:
    good = CODEC.item_id(ItemRef(ALICE, "INBOX", 1, 5))
    raw = bytearray(base64.b64decode(good))
    raw[-14] ^= 1  # the UID's octets
    for forged in (
        base64.b64encode(bytes(raw)).decode(),
        IdCodec.for_secret(b"other org").item_id(ItemRef(ALICE, "INBOX", 1, 5)),
        "AAAA",
        "not base64!",
        "",
    ):
        with pytest.raises(EwsError) as caught:
            CODEC.item(forged, ALICE)
        assert caught.value.code in ("ErrorInvalidIdMalformed", "ErrorInvalidIdEmpty")
    with pytest.raises(EwsError, match="something else"):
        CODEC.item(CODEC.folder_id(FolderRef(ALICE, "INBOX", 1)), ALICE)


def test_another_mailboxs_id_is_refused() -> None:
    bobs = CODEC.item_id(ItemRef(BOB, "INBOX", 1, 5))
    with pytest.raises(EwsError) as caught:
        CODEC.item(bobs, ALICE)
    assert caught.value.code == "ErrorAccessDenied"
    with pytest.raises(EwsError) as caught:
        CODEC.folder(CODEC.folder_id(FolderRef(BOB, "INBOX", 1)), ALICE)
    assert caught.value.code == "ErrorAccessDenied"
