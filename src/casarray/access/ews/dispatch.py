"""One EWS request from bytes to bytes: parse (`soap`), refuse what we don't do,
run the operation's handler (`operations.OPERATIONS`) and wrap its answer.

`answer(data, open_context)` is synchronous (call it in a worker thread): the
handler reads the store. `open_context(request)` makes the `EwsContext` (it opens
the user's mailbox) and may raise `EwsError` (the mailbox's database is dismounted,
say), which is answered like an operation's error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from casarray.access.ews.context import EwsContext, store_error
from casarray.access.ews.operations import OPERATIONS
from casarray.access.ews.soap import (
    NS_M,
    EwsError,
    SoapFault,
    SoapRequest,
    envelope,
    error_response,
    fault,
    parse_request,
)
from casarray.errors import CasarrayError
from casarray.mailstore.interface import MailstoreError

log = logging.getLogger("casarray.ews")


def answer(data: bytes, open_context: Callable[[SoapRequest], EwsContext]) -> tuple[int, bytes]:
    """(HTTP status, response body) for the request `data`."""
    try:
        request = parse_request(data)
    except SoapFault as exc:
        return exc.status, fault(exc)
    op = request.operation
    if request.namespace != NS_M:
        return 200, envelope(
            error_response(
                op,
                EwsError(
                    "ErrorInvalidRequest",
                    f"The operation '{op}' is not in the EWS messages namespace ({NS_M}).",
                ),
            )
        )
    handler = OPERATIONS.get(op)
    if handler is None:
        return 200, envelope(
            error_response(
                op,
                EwsError(
                    "ErrorInvalidOperation",
                    f"The operation '{op}' is not supported by this server.",
                ),
            )
        )
    if request.impersonation is not None:
        return 200, envelope(
            error_response(
                op,
                EwsError(
                    "ErrorImpersonationDenied",
                    f"Impersonation ({request.impersonation}) is not allowed on this server.",
                ),
            )
        )
    try:
        context = open_context(request)
        return 200, envelope(handler(context, request.body))
    except EwsError as exc:
        return 200, envelope(error_response(op, exc))
    except MailstoreError as exc:  # a store error no operation turned into its own
        log.warning("EWS %s: %s", op, exc.message)
        return 200, envelope(error_response(op, store_error(exc)))
    except CasarrayError as exc:
        log.warning("EWS %s: %s", op, exc.message)
        return 200, envelope(error_response(op, EwsError("ErrorInternalServerError", exc.message)))
    except Exception:
        # Never a 500 for an operation: Outlook would prompt for credentials again.
        log.exception("EWS %s failed", op)
        return 200, envelope(
            error_response(
                op, EwsError("ErrorInternalServerError", f"The server failed to run {op}.")
            )
        )
