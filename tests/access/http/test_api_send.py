"""`POST /api/v1/send` end to end: the JSON API (in process) submits to a real Hub
Transport process; the answer names the queue id and the copy in Sent Items; an
attachment arrives byte for byte; bad input is a 400 naming the field and a refused
recipient a 400 naming it, and in both cases nothing is sent and nothing is kept."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.access.http.test_webmail_send import (  # noqa: F401 (fixtures)
    attachments_of,
    backend,
    cas_app,
    delivered,
    folder_messages,
    org,
    parsed,
    transport,
)
from tests.transport.harness import PASSWORD, Org, TransportProcess

pytestmark = pytest.mark.integration  # a real Hub Transport process
PAYLOAD = bytes(range(256)) * 100 + b"\r\n.\r\n"


@pytest.fixture
def api(org: Org, transport: TransportProcess) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(cas_app(org), base_url="https://cas01.lab.net") as client:
        client.auth = ("alice@lab.net", PASSWORD)
        yield client


def test_send_with_an_attachment(org: Org, api: TestClient) -> None:  # noqa: F811
    response = api.post(
        "/api/v1/send",
        json={
            "to": ["bob@lab.net"],
            "cc": ["carol@lab.net"],
            "subject": "From the API",
            "body": "Hello from a script.",
            "attachments": [
                {
                    "name": "data.bin",
                    "content_type": "application/octet-stream",
                    "content_base64": base64.b64encode(PAYLOAD).decode(),
                }
            ],
        },
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["queue_id"] and answer["hub"] == "MBX01"
    assert answer["sent"]["uid"] >= 1 and answer["sent"]["folder"] == "Sent"
    location = response.headers["location"]
    assert location == f"/api/v1/folders/Sent/messages/{answer['sent']['uid']}"
    copy = api.get(location).json()
    assert copy["subject"] == "From the API" and "\\Seen" in copy["flags"]
    assert copy["message_id"] == answer["message_id"]

    [message] = delivered(org, "bob")
    assert message["Message-ID"] == answer["message_id"]
    assert attachments_of(message) == {"data.bin": PAYLOAD}
    assert answer["queue_id"] in message["Received"]
    [to_carol] = delivered(org, "carol")
    assert to_carol["Subject"] == "From the API"
    # the Hub's message tracking log: a mailbox's submission through its CAS
    from casarray.transport.tracking import TrackingLog

    events = list(TrackingLog("MBX01", org.home).search(internal_message_id=answer["queue_id"]))
    kinds = [(e.event_id, e.source) for e in events]
    assert kinds[:2] == [("SUBMIT", "STOREDRIVER"), ("RECEIVE", "SMTP")], kinds
    assert events[0].sender == "alice@lab.net" and events[0].message_id == answer["message_id"]
    assert "CAS01$" in events[0].source_context


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "bob@lab.net"}, "to"),
        ({"to": ["bob at lab.net"]}, "to"),
        ({"to": ["bob@lab.net"], "cc": [1]}, "cc"),
        ({"subject": "no recipient"}, "to"),
        ({"to": ["bob@lab.net"], "subject": 5}, "subject"),
        ({"to": ["bob@lab.net"], "attachments": [{"name": "a", "content_base64": "!!"}]}, None),
        ({"to": ["bob@lab.net"], "attachments": [{"content_base64": ""}]}, None),
        ({"to": ["bob@lab.net"], "priority": "high"}, "priority"),
    ],
)
def test_bad_input_is_a_400_and_nothing_is_sent(
    org: Org,  # noqa: F811
    api: TestClient,
    body: dict[str, object],
    field: str | None,
) -> None:
    response = api.post("/api/v1/send", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_field"
    assert error["field"] == (field or "attachments")
    assert folder_messages(org, "alice", "\\Sent") == []
    assert folder_messages(org, "bob") == []


def test_a_refused_recipient_is_named(org: Org, api: TestClient) -> None:  # noqa: F811
    response = api.post(
        "/api/v1/send", json={"to": ["bob@lab.net", "nobody@lab.net"], "subject": "x"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "recipient_refused" and error["field"] == "to"
    assert "nobody@lab.net" in error["message"] and "bob@lab.net" not in error["message"]
    assert folder_messages(org, "alice", "\\Sent") == []
    assert folder_messages(org, "bob") == []


def test_no_transport_is_503(org: Org) -> None:  # noqa: F811
    with TestClient(cas_app(org), base_url="https://cas01.lab.net") as client:
        response = client.post(
            "/api/v1/send", json={"to": ["bob@lab.net"]}, auth=("alice@lab.net", PASSWORD)
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "transport_unavailable"
