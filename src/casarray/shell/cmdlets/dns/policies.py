"""The DNS server's views and settings. Views, as Microsoft's split-brain DNS policies
reduced to what casarray needs: clients in the inside networks (the sites' subnets,
the networks of every Add-DnsServerClientSubnet, and loopback) see every record;
other clients get NXDOMAIN for the server FQDNs, NLB cluster names and client access
array FQDNs, and for the names of every Add-DnsServerQueryResolutionPolicy.
Set-DnsServerSetting -ListeningIPAddress sets the address the server listens on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.dns.objects import DnsClientSubnet, DnsQueryPolicy
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.dns.common import CIM, COMPUTER, PASS_THRU, forced
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

SUBNET_TYPE = CIM + "DnsServerClientSubnet"
POLICY_TYPE = CIM + "DnsServerPolicy"
SETTING_TYPE = CIM + "DnsServerSetting"

register_view(SUBNET_TYPE, ("Name", "IPV4Subnet", "IPV6Subnet"))
register_view(POLICY_TYPE, ("Name", "ProcessingOrder", "IsEnabled", "Action", "Criteria"))
register_view(SETTING_TYPE, ("ComputerName", "ListeningIPAddress"))


# -- objects ---------------------------------------------------------------------------


def subnet_object(subnet: DnsClientSubnet) -> PSObject:
    return PSObject(
        {
            "Name": subnet.name,
            "IPV4Subnet": list(subnet.ipv4_subnets) or None,
            "IPV6Subnet": list(subnet.ipv6_subnets) or None,
        },
        type_name=SUBNET_TYPE,
        base=subnet,
        display=subnet.name,
    )


def policy_object(policy: DnsQueryPolicy) -> PSObject:
    return PSObject(
        {
            "Name": policy.name,
            "ProcessingOrder": policy.processing_order,
            "IsEnabled": policy.is_enabled,
            "Action": policy.action.capitalize(),
            "Criteria": "Fqdn EQ," + ",".join(policy.fqdn),
            "Level": "Server",
            "AppliesOnQueryResolution": True,
        },
        type_name=POLICY_TYPE,
        base=policy,
        display=policy.name,
    )


# -- views: client subnets and query resolution policies ------------------------------


@register
class AddDnsServerClientSubnet(Cmdlet):
    name = "Add-DnsServerClientSubnet"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The client subnet's name."),
        Parameter("IPv4Subnet", kind="strings", help="IPv4 networks (CIDR)."),
        Parameter("IPv6Subnet", kind="strings", help="IPv6 networks (CIDR)."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Adds client networks that see the inside view."
    description = (
        "Clients in these networks, as those in the sites' subnets and on loopback, see "
        "every record, the array FQDNs and server names included."
    )
    examples = (
        Example(
            "Add-DnsServerClientSubnet -Name VPN -IPv4Subnet 10.8.0.0/16",
            "VPN clients resolve the array's FQDN.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if not self.should_process(str(params["Name"])):
            return
        subnet = self.directory.dns.add_client_subnet(
            params["Name"], params.get("IPv4Subnet"), params.get("IPv6Subnet")
        )
        if params.get("PassThru"):
            yield subnet_object(subnet)


@register
class GetDnsServerClientSubnet(Cmdlet):
    name = "Get-DnsServerClientSubnet"
    parameters = (Parameter("Name", position=0, help="Only this client subnet."), COMPUTER)
    synopsis = "Gets the client subnets."
    description = "Lists the client subnets added by Add-DnsServerClientSubnet."
    examples = (Example("Get-DnsServerClientSubnet", "Lists the client subnets."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        for subnet in self.directory.dns.client_subnets(params.get("Name")):
            yield subnet_object(subnet)


@register
class RemoveDnsServerClientSubnet(Cmdlet):
    name = "Remove-DnsServerClientSubnet"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The client subnet."),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Removes a client subnet."
    description = "Its clients see the outside view again (unless a site subnet holds them)."
    examples = (Example("Remove-DnsServerClientSubnet VPN -Force", "Removes VPN."),)
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        subnet = self.directory.dns.client_subnets(params["Name"])[0]
        if not forced(self, params, subnet.name):
            return
        removed = self.directory.dns.remove_client_subnet(subnet.name)
        if params.get("PassThru"):
            yield subnet_object(removed)


@register
class AddDnsServerQueryResolutionPolicy(Cmdlet):
    name = "Add-DnsServerQueryResolutionPolicy"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The policy's name."),
        Parameter(
            "Action",
            position=1,
            help="DENY (the default here; the only action casarray has): outside clients "
            "get NXDOMAIN for the names.",
        ),
        Parameter(
            "Fqdn",
            mandatory=True,
            help='The names: "EQ,name[,name...]"; "*.name" is every name below name.',
        ),
        Parameter("ProcessingOrder", kind="int", help="1, 2, ...; default after the last."),
        Parameter("Disable", kind="switch", help="Add it disabled."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Hides names from clients outside the organization's networks."
    description = (
        "Reduced from Windows: the policy DENYs the -Fqdn names to every client outside "
        "the inside networks (sites' subnets, client subnets, loopback), who get "
        "NXDOMAIN; inside clients still resolve them. Server FQDNs, NLB cluster names "
        "and array FQDNs are hidden so without a policy."
    )
    examples = (
        Example(
            "Add-DnsServerQueryResolutionPolicy -Name Internal -Action DENY "
            '-Fqdn "EQ,*.int.lab.net"',
            "Hides every name under int.lab.net from outside clients.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if not self.should_process(str(params["Name"])):
            return
        policy = self.directory.dns.add_query_policy(
            params["Name"],
            params["Fqdn"],
            params.get("Action") or "DENY",
            params.get("ProcessingOrder"),
            not params.get("Disable"),
        )
        if params.get("PassThru"):
            yield policy_object(policy)


@register
class GetDnsServerQueryResolutionPolicy(Cmdlet):
    name = "Get-DnsServerQueryResolutionPolicy"
    parameters = (Parameter("Name", position=0, help="Only this policy."), COMPUTER)
    synopsis = "Gets the query resolution policies."
    description = "Lists the policies in processing order."
    examples = (Example("Get-DnsServerQueryResolutionPolicy", "Lists the policies."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        for policy in self.directory.dns.query_policies(params.get("Name")):
            yield policy_object(policy)


@register
class RemoveDnsServerQueryResolutionPolicy(Cmdlet):
    name = "Remove-DnsServerQueryResolutionPolicy"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The policy."),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Removes a query resolution policy."
    description = "Outside clients resolve its names again (unless hidden otherwise)."
    examples = (
        Example("Remove-DnsServerQueryResolutionPolicy Internal -Force", "Removes Internal."),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        policy = self.directory.dns.query_policies(params["Name"])[0]
        if not forced(self, params, policy.name):
            return
        removed = self.directory.dns.remove_query_policy(policy.name)
        if params.get("PassThru"):
            yield policy_object(removed)


# -- the server's settings ------------------------------------------------------------


def setting_object(address: str) -> PSObject:
    return PSObject(
        {"ComputerName": "casarray DNS", "ListeningIPAddress": [address]},
        type_name=SETTING_TYPE,
        display=address,
    )


@register
class GetDnsServerSetting(Cmdlet):
    name = "Get-DnsServerSetting"
    parameters = (Parameter("All", kind="switch", help="Accepted."), COMPUTER)
    synopsis = "Gets the DNS server's settings: the address it listens on."
    description = "Shows ListeningIPAddress (default 127.77.0.53)."
    examples = (Example("Get-DnsServerSetting -All", "Shows the listening address."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        yield setting_object(self.directory.dns.listening_address())


@register
class SetDnsServerSetting(Cmdlet):
    name = "Set-DnsServerSetting"
    parameters = (
        Parameter(
            "ListeningIPAddress",
            mandatory=True,
            help="The IPv4 address the DNS server listens on (Windows sets it through the "
            "settings object; here directly).",
        ),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Sets the address the DNS server listens on."
    description = "The DNS server listens there from its next start."
    examples = (
        Example("Set-DnsServerSetting -ListeningIPAddress 127.77.0.54", "Moves the server."),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if not self.should_process("DNS server"):
            return
        address = self.directory.dns.set_listening_address(params["ListeningIPAddress"])
        if params.get("PassThru"):
            yield setting_object(address)
