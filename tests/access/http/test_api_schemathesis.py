"""The JSON API against its own OpenAPI document: schemathesis generates requests for
every operation (from the documented examples, the coverage scenarios and random
fuzzing, valid and invalid) and checks every answer: the status is documented, the
body matches its schema, the content type is the declared one, nothing is a 5xx,
invalid input is refused and unsupported methods get 405 with `Allow`.

The requests run in process against the ASGI app, over "https" with real HTTP Basic
credentials of alice, whose mailbox holds the messages `seed_mailbox` puts there, so
the documented examples (INBOX, UID 1, part 2) reach real resources. Each operation's
generated examples are capped (hypothesis settings) to keep the run well under a
minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import BaseSchema, Case

from casarray.directory import Directory
from casarray.mailstore.store import close_all
from tests.access.http import build_org
from tests.access.http.test_api import PASSWORD, api_app, cheap_hash, seed_mailbox

BASE_URL = "https://testserver/api/v1"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def api_schema(bj: Directory) -> Iterator[BaseSchema]:
    """The document as the app serves it, bound to the app (in process)."""
    org = build_org(bj, cheap_hash(PASSWORD))
    seed_mailbox(org, "alice")
    # Failed logins that schemathesis provokes must not lock alice out mid-run.
    app = api_app(org, max_failures=1_000_000)
    config = schemathesis.Config.from_dict(
        {
            "auth": {"basic": {"username": "alice@lab.net", "password": PASSWORD}},
            "base-url": BASE_URL,
        }
    )
    yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config)
    close_all()


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's `from_fixture` reads and rewrites `node._nodeid`, which
    pytest 9 no longer has: give the node one (reporting names each operation)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")
# Operations that remove what the documented examples point at (INBOX UID 1, ...) get a
# mailbox of their own, so that every other operation meets the seeded messages.
DESTRUCTIVE = ["deleteMessage", "moveMessage", "deleteFolder", "renameFolder"]
# Sending needs a Hub Transport process (test_api_send runs one): here it would be 503.
UNFUZZED = ["sendMessage"]
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@schema.exclude(operation_id=[*DESTRUCTIVE, *UNFUZZED]).parametrize()
@SETTINGS
def test_reading_and_flags_conform(case: Case) -> None:
    case.call_and_validate()


@schema.include(operation_id=DESTRUCTIVE).parametrize()
@SETTINGS
def test_moving_and_deleting_conform(case: Case) -> None:
    case.call_and_validate()
