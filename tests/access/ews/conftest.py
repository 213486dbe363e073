"""The EWS tests' common fixtures: the organization (`org`), alice's seeded mailbox
(`store`) and an EWS client logged in as her through the ASGI app (`c`). A module that
needs something else defines its own, which pytest prefers; each module chooses its
`backend`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from casarray.mailstore.store import close_all
from tests.access.ews import ALICE, ews_client
from tests.access.http import build_org
from tests.access.http.test_api import PASSWORD, cheap_hash, seed_mailbox


@pytest.fixture
def org(bj: Directory) -> Iterator[Directory]:
    d = build_org(bj, cheap_hash(PASSWORD))
    yield d
    close_all()


@pytest.fixture
def store(org: Directory) -> MailboxStore:
    return seed_mailbox(org, "alice")


@pytest.fixture
def c(org: Directory, store: MailboxStore) -> Iterator[TestClient]:
    with ews_client(org, ALICE) as client:
        yield client
