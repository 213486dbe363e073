"""The HTTP service of a Client Access server: Autodiscover (Outlook), autoconfig
(Thunderbird), the health check pages load balancers probe, web mail (`/owa`) and the
JSON API (`/api/v1`), in one Starlette application served by uvicorn on ports 80 and
443 (or each plus 10000); Exchange Web Services (`access.ews`) is mounted in it.

    from casarray.access.http import AppContext, create_app
    app = create_app(AppContext.for_server(directory, "CAS01"))

The names are loaded when first used (PEP 562): the application imports every service,
EWS included, and EWS's modules use this package's helpers (`message_view`), so an eager
import here would make importing any of them import them all, half-initialized.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casarray.access.http.app import create_app, default_services
    from casarray.access.http.context import AppContext, RouteFactory, ServicePorts

__all__ = ["AppContext", "RouteFactory", "ServicePorts", "create_app", "default_services"]

_WHERE = {
    "create_app": "casarray.access.http.app",
    "default_services": "casarray.access.http.app",
    "AppContext": "casarray.access.http.context",
    "RouteFactory": "casarray.access.http.context",
    "ServicePorts": "casarray.access.http.context",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
