"""The HTTP service of a Client Access server: Autodiscover (Outlook), autoconfig
(Thunderbird), the health check pages load balancers probe, web mail (`/owa`) and the
JSON API (`/api/v1`), in one Starlette application served by uvicorn on ports 80 and
443 (or each plus 10000).

    from casarray.access.http import AppContext, create_app
    app = create_app(AppContext.for_server(directory, "CAS01"))
"""

from casarray.access.http.app import create_app, default_services
from casarray.access.http.context import AppContext, RouteFactory, ServicePorts

__all__ = ["AppContext", "RouteFactory", "ServicePorts", "create_app", "default_services"]
