"""Client Access virtual directory cmdlets: Get-/Set-WebServicesVirtualDirectory and
Get-/Set-AutodiscoverVirtualDirectory.

    Set-WebServicesVirtualDirectory -Identity "CAS01\\EWS (Default Web Site)" `
        -ExternalUrl https://bj-cas.lab.net/EWS/Exchange.asmx

tells EWS clients outside (Autodiscover's ExternalEwsUrl, POX's EXPR) to reach CAS01's
EWS through the array's name. The rules (URLs, names, authentication) live in
`directory.virtual_directories`; Set-ClientAccessServer -AutoDiscoverServiceInternalUri
is in `topology`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from casarray.directory.objects import Server
from casarray.directory.virtual_directories import (
    AUTODISCOVER,
    KEEP,
    WEB_SERVICES,
    Kind,
    VirtualDirectory,
)
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import ObjectRef, identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

_CONFIGURATION = "Microsoft.Exchange.Data.Directory.SystemConfiguration"
TYPES = {
    WEB_SERVICES.kind: f"{_CONFIGURATION}.ADWebServicesVirtualDirectory",
    AUTODISCOVER.kind: f"{_CONFIGURATION}.ADAutodiscoverVirtualDirectory",
}
for _type in TYPES.values():
    # Exchange's default table: Name, Server.
    register_view(_type, ("Name", "Server"))


def virtual_directory_object(vdir: VirtualDirectory) -> PSObject:
    """Get-*VirtualDirectory's object."""
    return PSObject(
        {
            "Name": vdir.name,
            "Server": vdir.server,
            "InternalUrl": vdir.internal_url,
            "ExternalUrl": vdir.external_url,
            "BasicAuthentication": vdir.basic_authentication,
            "WindowsAuthentication": vdir.windows_authentication,
            "DigestAuthentication": False,
            "InternalAuthenticationMethods": _methods(vdir),
            "ExternalAuthenticationMethods": _methods(vdir),
            "MetabasePath": f"IIS://{vdir.server_fqdn}/W3SVC/1/ROOT/{vdir.kind.name}",
            "Path": f"C:\\Program Files\\Microsoft\\Exchange Server\\V14\\ClientAccess\\"
            f"{'exchweb' + chr(92) + 'EWS' if vdir.kind is WEB_SERVICES else 'Autodiscover'}",
            "WebSite": "Default Web Site",
            "Identity": vdir.identity,
            "Guid": vdir.guid,
            "WhenCreated": vdir.when_created,
            "WhenChanged": vdir.when_changed,
            "IsValid": True,
        },
        type_name=TYPES[vdir.kind.kind],
        base=vdir,
        display=vdir.identity,
    )


def _methods(vdir: VirtualDirectory) -> list[str]:
    methods = ["Basic"] if vdir.basic_authentication else []
    if vdir.windows_authentication:
        methods += ["Ntlm", "WindowsIntegrated"]
    return methods


def _identity(value: Any) -> Any:
    ident = identity_arg(value, (VirtualDirectory, Server))
    if isinstance(ident, ObjectRef):
        if isinstance(value, PSObject) and isinstance(value.base, Server):
            return value.base.name
        return ident.guid
    return ident


def _identity_help(kind: Kind) -> str:
    return (
        f"The virtual directory: 'CAS01\\{kind.full_name}', the server's name alone, or its GUID."
    )


class _GetVirtualDirectory(Cmdlet):
    kind: ClassVar[Kind]

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        server = params.get("Server")
        for vdir in self.directory.virtual_directories.get(
            self.kind,
            _identity(identity) if identity is not None else None,
            server=identity_arg(server, Server) if server is not None else None,
        ):
            yield virtual_directory_object(vdir)


class _SetVirtualDirectory(Cmdlet):
    kind: ClassVar[Kind]
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = _identity(params["Identity"])
        [vdir] = self.directory.virtual_directories.get(self.kind, identity)
        changes: dict[str, Any] = {
            "internal_url": params.get("InternalUrl", KEEP),
            "external_url": params.get("ExternalUrl", KEEP),
            "basic_authentication": params.get("BasicAuthentication"),
            "windows_authentication": params.get("WindowsAuthentication"),
        }
        if not self.should_process(vdir.identity):
            return ()
        self.directory.virtual_directories.set(self.kind, vdir.guid, **changes)
        return ()


def _get_parameters(kind: Kind) -> tuple[Parameter, ...]:
    return (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            help=_identity_help(kind),
        ),
        Parameter(
            "Server",
            kind="identity",
            identity_of="server",
            help="The Client Access server whose virtual directory to get.",
        ),
    )


def _set_parameters(kind: Kind) -> tuple[Parameter, ...]:
    return (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            help=_identity_help(kind),
        ),
        Parameter(
            "InternalUrl",
            help=f"The URL clients inside use, such as https://cas01.lab.net{kind.path}; "
            "$null clears it.",
        ),
        Parameter(
            "ExternalUrl",
            help=f"The URL clients outside use, such as https://mail.lab.net{kind.path}; "
            "$null clears it.",
        ),
        Parameter("BasicAuthentication", kind="bool", help="Offer HTTP Basic authentication."),
        Parameter(
            "WindowsAuthentication", kind="bool", help="Offer Windows authentication (NTLM)."
        ),
    )


@register
class GetWebServicesVirtualDirectory(_GetVirtualDirectory):
    name = "Get-WebServicesVirtualDirectory"
    kind = WEB_SERVICES
    parameters = _get_parameters(WEB_SERVICES)
    synopsis = "Gets the Exchange Web Services virtual directories."
    description = (
        "Gets the EWS virtual directory (EWS (Default Web Site)) of every Client Access "
        "server, or of one: its InternalUrl and ExternalUrl (what Autodiscover gives EWS "
        "clients inside and outside) and its authentication methods."
    )
    examples = (
        Example(
            "Get-WebServicesVirtualDirectory | Format-List Server,InternalUrl,ExternalUrl",
            "Shows every server's EWS URLs.",
        ),
        Example("Get-WebServicesVirtualDirectory -Server CAS01", "Shows CAS01's."),
    )


@register
class SetWebServicesVirtualDirectory(_SetVirtualDirectory):
    name = "Set-WebServicesVirtualDirectory"
    kind = WEB_SERVICES
    parameters = _set_parameters(WEB_SERVICES)
    synopsis = "Changes an Exchange Web Services virtual directory."
    description = (
        "Sets the URLs Autodiscover gives EWS clients for a Client Access server "
        "(InternalUrl: POX's EXCH and InternalEwsUrl; ExternalUrl: EXPR and "
        "ExternalEwsUrl, which exchangelib uses) and its authentication methods. A URL "
        "must be absolute and end in /EWS/Exchange.asmx."
    )
    examples = (
        Example(
            'Set-WebServicesVirtualDirectory -Identity "CAS01\\EWS (Default Web Site)" '
            "-ExternalUrl https://bj-cas.lab.net/EWS/Exchange.asmx",
            "Sends EWS clients outside to the array's name.",
        ),
        Example(
            "Get-WebServicesVirtualDirectory | Set-WebServicesVirtualDirectory "
            "-InternalUrl https://bj-cas.lab.net/EWS/Exchange.asmx",
            "Points every server's internal EWS URL at the array.",
        ),
    )


@register
class GetAutodiscoverVirtualDirectory(_GetVirtualDirectory):
    name = "Get-AutodiscoverVirtualDirectory"
    kind = AUTODISCOVER
    parameters = _get_parameters(AUTODISCOVER)
    synopsis = "Gets the Autodiscover virtual directories."
    description = (
        "Gets the Autodiscover virtual directory (Autodiscover (Default Web Site)) of every "
        "Client Access server, or of one, with its URLs and authentication methods."
    )
    examples = (Example("Get-AutodiscoverVirtualDirectory", "Lists them."),)


@register
class SetAutodiscoverVirtualDirectory(_SetVirtualDirectory):
    name = "Set-AutodiscoverVirtualDirectory"
    kind = AUTODISCOVER
    parameters = _set_parameters(AUTODISCOVER)
    synopsis = "Changes an Autodiscover virtual directory."
    description = (
        "Sets an Autodiscover virtual directory's URLs (ending in "
        "/Autodiscover/Autodiscover.xml) and authentication methods."
    )
    examples = (
        Example(
            "Set-AutodiscoverVirtualDirectory CAS01 -BasicAuthentication $true",
            "Offers Basic authentication on CAS01's Autodiscover.",
        ),
    )
