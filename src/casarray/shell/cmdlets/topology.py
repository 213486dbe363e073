"""Topology cmdlets: Active Directory sites and subnets (the AD module's
*-ADReplicationSite and *-ADReplicationSubnet), and Exchange servers
(New-ExchangeServer, our stand-in for `setup /mode:install`; Get-ExchangeServer,
Get-ClientAccessServer, Set-ClientAccessServer, Remove-ExchangeServer).

The cmdlets bind parameters and call `Directory.sites` and `Directory.servers`; the
rules (unique names, a server's site from its address, what may be removed) live there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.errors import InvalidOperationError, InvalidValueError
from casarray.directory.objects import Server, ServerRole, Site, Subnet
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import (
    client_access_server_object,
    identity_arg,
    left_pointing_warning,
    server_object,
    site_object,
    subnet_object,
)

ROLES = ("ClientAccess", "Mailbox", "HubTransport")


def _check_filter(params: Mapping[str, Any]) -> None:
    """The AD cmdlets' -Filter: only `*` (every object) is understood."""
    value = params.get("Filter")
    if value is not None and str(value).strip() != "*":
        raise InvalidValueError(
            "Filter", value, "is not supported: only -Filter * (every object) is understood."
        )


# -- sites ---------------------------------------------------------------------------


@register
class NewADReplicationSite(Cmdlet):
    name = "New-ADReplicationSite"
    parameters = (Parameter("Name", mandatory=True, position=0, help="The site's name, e.g. BJ."),)
    synopsis = "Creates an Active Directory site."
    description = (
        "Creates an Active Directory replication site. Servers whose IP addresses fall in "
        "the site's subnets (New-ADReplicationSubnet) belong to it; each site can have one "
        "client access array."
    )
    examples = (Example('New-ADReplicationSite -Name "BJ"', "Creates the site BJ."),)
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        name = params["Name"]
        if not self.should_process(name):
            return
        yield site_object(self.directory.sites.new(name))


@register
class GetADReplicationSite(Cmdlet):
    name = "Get-ADReplicationSite"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="site",
            help="The site's name, GUID or distinguished name.",
        ),
        Parameter("Filter", help="Only * (every site) is supported."),
    )
    synopsis = "Gets Active Directory sites."
    description = (
        "Gets one site by its identity, or every site (also with -Filter *), with its subnets."
    )
    examples = (
        Example("Get-ADReplicationSite -Filter *", "Lists every site."),
        Example("Get-ADReplicationSite BJ | Format-List", "Shows every property of site BJ."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        _check_filter(params)
        identity = params.get("Identity")
        sites = self.directory.sites.get(identity_arg(identity, Site) if identity else None)
        for site in sites:
            yield site_object(site)


@register
class RemoveADReplicationSite(Cmdlet):
    name = "Remove-ADReplicationSite"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="site",
            help="The site to remove.",
        ),
    )
    synopsis = "Removes an Active Directory site."
    description = (
        "Removes a site and its subnets. A site that still holds servers or a client "
        "access array can't be removed."
    )
    examples = (
        Example("Remove-ADReplicationSite SH", "Removes the site SH (after confirmation)."),
        Example(
            "Remove-ADReplicationSite SH -Confirm:$false", "Removes the site SH without asking."
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        site = self.directory.sites.one(identity_arg(params["Identity"], Site))
        if self.should_process(site.name):
            self.directory.sites.remove(site)
        return ()


# -- subnets -------------------------------------------------------------------------


@register
class NewADReplicationSubnet(Cmdlet):
    name = "New-ADReplicationSubnet"
    parameters = (
        Parameter(
            "Name", mandatory=True, position=0, help="The subnet in CIDR form, e.g. 10.1.0.0/16."
        ),
        Parameter("Site", kind="identity", mandatory=True, identity_of="site", help="Its site."),
    )
    synopsis = "Creates an Active Directory subnet in a site."
    description = (
        "Adds a subnet (in CIDR form) to a site. A server belongs to the site whose subnet "
        "holds its address (the longest matching prefix wins)."
    )
    examples = (
        Example(
            'New-ADReplicationSubnet -Name "127.77.1.0/24" -Site BJ',
            "Adds the subnet 127.77.1.0/24 to site BJ.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        site = self.directory.sites.one(identity_arg(params["Site"], Site))
        if not self.should_process(params["Name"]):
            return
        yield subnet_object(self.directory.sites.add_subnet(params["Name"], site))


@register
class GetADReplicationSubnet(Cmdlet):
    name = "Get-ADReplicationSubnet"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="subnet",
            help="The subnet (its CIDR, GUID or distinguished name).",
        ),
        Parameter("Site", kind="identity", identity_of="site", help="Only this site's subnets."),
        Parameter("Filter", help="Only * (every subnet) is supported."),
    )
    synopsis = "Gets Active Directory subnets."
    description = "Gets one subnet, the subnets of a site, or every subnet."
    examples = (
        Example("Get-ADReplicationSubnet -Filter *", "Lists every subnet and its site."),
        Example("Get-ADReplicationSubnet -Site BJ", "Lists the subnets of site BJ."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        _check_filter(params)
        identity = params.get("Identity")
        site = params.get("Site")
        site_arg = identity_arg(site, Site) if site is not None else None
        if identity is not None:
            subnet = self.directory.sites.subnet(identity_arg(identity, Subnet))
            if site_arg is None or subnet.site == self.directory.sites.one(site_arg).name:
                yield subnet_object(subnet)
            return
        for subnet in self.directory.sites.subnets(site_arg):
            yield subnet_object(subnet)


@register
class RemoveADReplicationSubnet(Cmdlet):
    name = "Remove-ADReplicationSubnet"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="subnet",
            help="The subnet to remove.",
        ),
    )
    synopsis = "Removes an Active Directory subnet."
    description = "Removes a subnet from its site. Servers keep the site they were installed in."
    examples = (
        Example(
            'Remove-ADReplicationSubnet "127.77.2.0/24" -Confirm:$false',
            "Removes the subnet without asking.",
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        subnet = self.directory.sites.subnet(identity_arg(params["Identity"], Subnet))
        if self.should_process(subnet.name):
            self.directory.sites.remove_subnet(subnet)
        return ()


# -- servers -------------------------------------------------------------------------


@register
class NewExchangeServer(Cmdlet):
    name = "New-ExchangeServer"
    parameters = (
        Parameter(
            "Name", mandatory=True, position=0, help="The server's NetBIOS name, e.g. CAS01."
        ),
        Parameter(
            "Roles",
            kind="enums",
            mandatory=True,
            choices=ROLES,
            help="The roles installed: ClientAccess, Mailbox, HubTransport (several allowed).",
        ),
        Parameter("IPAddress", mandatory=True, help="The server's IPv4 address."),
        Parameter(
            "Site",
            kind="identity",
            identity_of="site",
            help="The server's site; by default the site whose subnet holds the address.",
        ),
        Parameter("Fqdn", help="The server's FQDN; by default Name.<default domain>."),
    )
    synopsis = "Installs an Exchange server (the stand-in for setup /mode:install)."
    description = (
        "Records a new Exchange 2010 server with its roles, address and site, as Exchange "
        "setup does. A new Client Access server joins its site's client access array at "
        "once. The first Client Access server of a site becomes the RpcClientAccessServer "
        "of new databases there while the site has no array."
    )
    examples = (
        Example(
            "New-ExchangeServer -Name CAS01 -Roles ClientAccess -IPAddress 127.77.1.11",
            "Installs CAS01 as a Client Access server in the site whose subnet holds 127.77.1.11.",
        ),
        Example(
            "New-ExchangeServer EX01 -Roles ClientAccess,Mailbox,HubTransport "
            "-IPAddress 10.0.0.5 -Site BJ -Fqdn ex01.lab.net",
            "Installs a server with three roles in site BJ.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        site = params.get("Site")
        site_arg = identity_arg(site, Site) if site is not None else None
        if site_arg is not None:
            site_arg = self.directory.sites.one(site_arg)
        if not self.should_process(params["Name"]):
            return
        server = self.directory.servers.new(
            params["Name"],
            params["Roles"],
            params["IPAddress"],
            site=site_arg,
            fqdn=params.get("Fqdn"),
        )
        yield server_object(server)


@register
class GetExchangeServer(Cmdlet):
    name = "Get-ExchangeServer"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="server",
            help="The server's name, FQDN, GUID, distinguished name or legacyExchangeDN.",
        ),
    )
    synopsis = "Gets Exchange servers."
    description = "Gets one Exchange server, or every server in install order."
    examples = (
        Example("Get-ExchangeServer", "Lists every server with its site, roles and version."),
        Example("Get-ExchangeServer CAS01 | Format-List", "Shows every property of CAS01."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        servers = self.directory.servers.get(identity_arg(identity, Server) if identity else None)
        for server in servers:
            yield server_object(server)


@register
class GetClientAccessServer(Cmdlet):
    name = "Get-ClientAccessServer"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="server",
            help="The Client Access server's name, FQDN or GUID.",
        ),
    )
    synopsis = "Gets Client Access servers."
    description = (
        "Gets the servers with the Client Access role, with their site and the client "
        "access array they belong to (every Client Access server of a site is a member "
        "of the site's array)."
    )
    examples = (
        Example("Get-ClientAccessServer", "Lists every Client Access server."),
        Example(
            "Get-ClientAccessServer | Where-Object {$_.Site -eq 'BJ'}",
            "Lists the Client Access servers of site BJ: the members of its array.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        if identity is not None:
            servers = self.directory.servers.get(identity_arg(identity, Server))
            for server in servers:
                if not server.is_client_access_server:
                    raise InvalidOperationError(
                        f"The server '{server.name}' isn't a Client Access server (its roles: "
                        f"{server.roles}). Use Get-ExchangeServer for servers of any role.",
                        target=server.name,
                    )
        else:
            servers = self.directory.servers.get(role=ServerRole.ClientAccess)
        arrays = {a.site.lower(): a.name for a in self.directory.arrays.get()}
        for server in servers:
            yield client_access_server_object(server, arrays.get(server.site.lower()))


@register
class SetClientAccessServer(Cmdlet):
    name = "Set-ClientAccessServer"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="server",
            help="The Client Access server's name, FQDN or GUID.",
        ),
        Parameter(
            "AllowCrossSiteRpcClientAccess",
            kind="bool",
            help="$true: serve users whose database names a Client Access server or array "
            "of another site, instead of referring them there. Default $false.",
        ),
        Parameter(
            "AutoDiscoverServiceInternalUri",
            help="The Autodiscover URL domain-joined clients find for this server (its "
            "service connection point), such as "
            "https://bj-cas.lab.net/Autodiscover/Autodiscover.xml; $null clears it.",
        ),
    )
    synopsis = "Changes the settings of a Client Access server."
    description = (
        "Changes a Client Access server. -AllowCrossSiteRpcClientAccess $true lets it "
        "serve users whose database's RpcClientAccessServer is a Client Access server or "
        "array of another site; with $false (the default) it refers them to that name. "
        "Users whose database names another server of its own site are always referred. "
        "(In Exchange 2010 SP2 RU3 this is a property of a database availability group, "
        "Set-DatabaseAvailabilityGroup -AllowCrossSiteRpcClientAccess; casarray has no "
        "DAGs, so it is set per Client Access server.) Running servers apply it at once."
    )
    examples = (
        Example(
            "Set-ClientAccessServer -Identity CAS01 -AllowCrossSiteRpcClientAccess $true",
            "Lets CAS01 serve users whose databases name another site's array or server.",
        ),
        Example(
            "Get-ClientAccessServer | Set-ClientAccessServer -AllowCrossSiteRpcClientAccess $false",
            "Turns cross-site access off on every Client Access server.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = self.directory.servers.one(identity_arg(params["Identity"], Server))
        if not server.is_client_access_server:
            raise InvalidOperationError(
                f"The server '{server.name}' isn't a Client Access server (its roles: "
                f"{server.roles}).",
                target=server.name,
            )
        allow = params.get("AllowCrossSiteRpcClientAccess")
        uri_given = "AutoDiscoverServiceInternalUri" in params
        if (allow is None and not uri_given) or not self.should_process(server.name):
            return ()
        if uri_given:  # checked (and refused) before anything is written
            self.directory.virtual_directories.set_autodiscover_service_internal_uri(
                server, params["AutoDiscoverServiceInternalUri"]
            )
        if allow is not None:
            self.directory.servers.set_client_access(
                server, allow_cross_site_rpc_client_access=bool(allow)
            )
        return ()


@register
class RemoveExchangeServer(Cmdlet):
    name = "Remove-ExchangeServer"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="server",
            help="The server to uninstall.",
        ),
        Parameter(
            "Force",
            kind="switch",
            help="Remove it even while databases name it as their RpcClientAccessServer.",
        ),
    )
    synopsis = "Uninstalls an Exchange server (setup /mode:uninstall)."
    description = (
        "Removes a server from the organization. Refused while it holds mailbox databases, "
        "and while databases name it as their RpcClientAccessServer (their users could no "
        "longer connect) unless -Force is given; then a warning lists those databases."
    )
    examples = (
        Example("Remove-ExchangeServer CAS02", "Uninstalls CAS02 after confirmation."),
        Example(
            "Remove-ExchangeServer CAS01 -Force -Confirm:$false",
            "Uninstalls CAS01 without asking, even if databases still point at it.",
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = self.directory.servers.one(identity_arg(params["Identity"], Server))
        if not self.should_process(server.name):
            return ()
        pointing = self.directory.servers.remove(server, force=bool(params.get("Force")))
        if pointing:
            self.write_warning(left_pointing_warning(pointing, server.fqdn))
        return ()
