"""Inputs the fuzzers found (bench/fuzz.py, tests/fuzz_targets.py) in Autodiscover's
request parsers, each the smallest that broke them, kept as tests of what a client sees."""

from __future__ import annotations

import pytest

from casarray.access.http import autodiscover, autodiscover_soap

# An XML declaration naming an encoding Python doesn't know: expat asks for the codec
# and the LookupError came out of the parser (a 500 and a logged traceback).
UNKNOWN_ENCODING = b'<?xml version="1.0" encoding="ut-f8"?><Autodiscover/>'


def test_pox_autodiscover_refuses_an_unknown_encoding_as_an_invalid_request() -> None:
    with pytest.raises(autodiscover.AutodiscoverError) as caught:
        autodiscover.parse_request(UNKNOWN_ENCODING)
    assert caught.value.code == autodiscover.INVALID_REQUEST
    assert "unknown encoding: ut-f8" in caught.value.debug


def test_soap_autodiscover_refuses_an_unknown_encoding_with_a_fault() -> None:
    with pytest.raises(autodiscover_soap.SoapFault, match="unknown encoding: ut-f8"):
        autodiscover_soap.parse_request(UNKNOWN_ENCODING)
