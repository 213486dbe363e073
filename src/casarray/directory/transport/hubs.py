"""The Hub Transport servers the transport services read: a server by identity, refused
unless it holds the role."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from casarray.directory.errors import NotHubTransportServerError
from casarray.directory.objects import ServerRole
from casarray.directory.schema import ServerRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def roles_text(row: ServerRow) -> str:
    roles = ServerRole.NONE
    for flag, held in (
        (ServerRole.ClientAccess, row.client_access),
        (ServerRole.Mailbox, row.mailbox),
        (ServerRole.HubTransport, row.hub_transport),
    ):
        if held:
            roles |= flag
    return str(roles) or "none"


def hub_row(directory: Directory, session: Session, server: object) -> ServerRow:
    """The Hub Transport server `server` names; NotFoundError, or
    NotHubTransportServerError when it lacks the role."""
    row = directory.servers.resolve_row(session, server)
    if not row.hub_transport:
        raise NotHubTransportServerError(row.name, roles_text(row))
    return row
