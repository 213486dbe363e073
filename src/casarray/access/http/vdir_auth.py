"""Which sign-in methods a virtual directory of this Client Access server takes, as IIS
reads them from the virtual directory's settings: `Set-WebServicesVirtualDirectory
CAS01 -BasicAuthentication $false` turns Basic off on CAS01's /EWS, and its 401s then
offer Negotiate and NTLM only; `Set-AutodiscoverVirtualDirectory` does the same for
/Autodiscover (POX and SOAP).

`authenticate_for(request, kind)` is `context.authenticate` with the flags of this
server's virtual directory of `kind`, read from the directory and kept in the
context's answer cache until the topology version changes (a Set-*VirtualDirectory
bumps it), so a request costs no directory read while nothing changed. A server
without such a virtual directory (none was made for it) takes both methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from casarray.access.http.context import AppContext, authenticate, context_of
from casarray.directory.virtual_directories import AUTODISCOVER, WEB_SERVICES, Kind

if TYPE_CHECKING:
    from casarray.directory import Mailbox

__all__ = ["AUTODISCOVER", "WEB_SERVICES", "auth_methods", "authenticate_for"]


def _read(context: AppContext, kind: Kind) -> tuple[bool, bool]:
    found = context.directory.virtual_directories.get(kind, server=context.server.guid)
    if not found:
        return True, True
    return found[0].basic_authentication, found[0].windows_authentication


async def auth_methods(context: AppContext, kind: Kind) -> tuple[bool, bool]:
    """(Basic, Windows) of this server's virtual directory of `kind`."""
    if not context.credentials.followed:
        now = await run_in_threadpool(context.directory.topology_version)
        context.credentials.topology_changed(now)
        context.answers.topology_changed(now)
    key = ("virtual directory authentication", kind.kind)
    cached = context.answers.get(key)
    if cached is not None and len(cached) == 2:
        return bool(cached[0]), bool(cached[1])
    version = context.answers.version
    basic, windows = await run_in_threadpool(_read, context, kind)
    context.answers.put(key, bytes((basic, windows)), version)
    return basic, windows


async def authenticate_for(request: Request, kind: Kind) -> Mailbox:
    """`authenticate` with what this server's virtual directory of `kind` allows."""
    basic, windows = await auth_methods(context_of(request), kind)
    return await authenticate(request, basic=basic, windows=windows)
