"""The EWS operations, one module per family, and the dispatch table.

A handler takes the request's `EwsContext` and the operation element (`m:GetFolder`,
...) and returns the whole response element (`m:GetFolderResponse`). It runs in a worker
thread and may call the store and the directory. A failure of the whole operation is an
`EwsError` raised (the dispatcher answers it as one error message); a failure of one
item of a batch is an error response message in its place (`soap.response_message`).

To add a family: a module here with `HANDLERS: dict[str, Handler]`, merged into
`OPERATIONS` below.
"""

from __future__ import annotations

from collections.abc import Callable
from xml.etree.ElementTree import Element

from casarray.access.ews.context import EwsContext
from casarray.access.ews.operations import (
    attachments,
    changes,
    create,
    folders,
    items,
    misc,
    sync,
)

Handler = Callable[[EwsContext, Element], Element]

OPERATIONS: dict[str, Handler] = {
    **folders.HANDLERS,
    **items.HANDLERS,
    **sync.HANDLERS,
    **misc.HANDLERS,
    **create.HANDLERS,
    **attachments.HANDLERS,
    **changes.HANDLERS,
}
