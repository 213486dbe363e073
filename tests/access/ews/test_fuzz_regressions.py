"""Inputs the fuzzers found (bench/fuzz.py, tests/fuzz_targets.py) in EWS, each the
smallest that broke it, kept as tests of what a client sees."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from tests.access.ews import EWS


@pytest.fixture
def backend() -> str:
    return "sqlite"


def test_an_envelope_in_an_unknown_encoding_gets_a_soap_fault(
    c: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    # expat's LookupError for the encoding came out of the envelope's parser: a 500
    # without a fault, and a traceback in the server's log
    body = b'<?xml version="1.0" encoding="ut-f8"?><s:Envelope/>'
    with caplog.at_level(logging.ERROR):
        r = c.post(EWS, content=body, headers={"Content-Type": "text/xml"})
    assert r.status_code == 500
    assert b"<faultcode>s:Client</faultcode>" in r.content
    assert b"The request is not well-formed XML: unknown encoding: ut-f8." in r.content
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
