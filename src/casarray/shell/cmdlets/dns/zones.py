"""DNS zones: every accepted domain is a zone with no command; Add-DnsServerPrimaryZone
adds others (Get-DnsServerZone lists both; only added ones can be removed).
Export-DnsServerZone writes a zone as a master file (`casarray.dns.export`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.dns.objects import DnsZone
from casarray.dns.export import ExportedZone, export_zone
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.dns.common import CIM, COMPUTER, PASS_THRU, forced
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

ZONE_TYPE = CIM + "DnsServerPrimaryZone"
EXPORT_TYPE = "casarray.DnsServerZoneExport"

register_view(
    ZONE_TYPE,
    ("ZoneName", "ZoneType", "IsAutoCreated", "IsDsIntegrated", "IsReverseLookupZone", "IsSigned"),
)
register_view(EXPORT_TYPE, ("ZoneName", "Serial", "Records", "FileName"))


# -- objects ---------------------------------------------------------------------------


def zone_object(zone: DnsZone) -> PSObject:
    return PSObject(
        {
            "ZoneName": zone.zone_name,
            "ZoneType": zone.zone_type,
            "IsAutoCreated": False,
            "IsDsIntegrated": zone.is_ds_integrated,
            "IsReverseLookupZone": False,
            "IsSigned": False,
            "ZoneFile": zone.zone_file,
            "DynamicUpdate": "None",
            "IsAcceptedDomain": zone.from_accepted_domain,
        },
        type_name=ZONE_TYPE,
        base=zone,
        display=zone.zone_name,
    )


def export_object(exported: ExportedZone) -> PSObject:
    return PSObject(
        {
            "ZoneName": exported.zone_name,
            "Serial": exported.serial,
            "Records": exported.records,
            "FileName": exported.file_name,
        },
        type_name=EXPORT_TYPE,
        base=exported,
        display=exported.file_name,
    )


# -- zones -------------------------------------------------------------------------------


@register
class AddDnsServerPrimaryZone(Cmdlet):
    name = "Add-DnsServerPrimaryZone"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The zone's name (a domain)."),
        Parameter(
            "ZoneFile",
            position=1,
            help="A zone file name (kept and shown; the zone lives in the directory).",
        ),
        Parameter(
            "ReplicationScope",
            kind="enum",
            choices=("Forest", "Domain", "Legacy", "Custom"),
            help="Accepted: the zone is kept in the directory, as an AD-integrated one.",
        ),
        Parameter("DynamicUpdate", help="Accepted; there are no dynamic updates."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Adds a primary zone to the DNS server."
    description = (
        "Adds a zone beside the accepted domains' zones (which exist without a command). "
        "It holds its SOA and NS records, the A records of servers, clusters and arrays "
        "whose names fall in it, and the records added to it."
    )
    examples = (
        Example(
            "Add-DnsServerPrimaryZone -Name contoso.com -ReplicationScope Forest",
            "Adds the zone contoso.com.",
        ),
        Example(
            'Add-DnsServerPrimaryZone -Name "int.lab.net" -ZoneFile "int.lab.net.dns"',
            "Adds int.lab.net, delegated from lab.net.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if not self.should_process(str(params["Name"])):
            return
        zone = self.directory.dns.add_zone(params["Name"], params.get("ZoneFile"))
        if params.get("PassThru"):
            yield zone_object(zone)


@register
class GetDnsServerZone(Cmdlet):
    name = "Get-DnsServerZone"
    parameters = (
        Parameter("Name", position=0, aliases=("ZoneName",), help="Only this zone."),
        COMPUTER,
    )
    synopsis = "Gets the DNS server's zones."
    description = "Lists the accepted domains' zones, then the zones added by cmdlet."
    examples = (
        Example("Get-DnsServerZone", "Lists every zone."),
        Example("Get-DnsServerZone lab.net | Format-List", "Shows the zone lab.net in full."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        for zone in self.directory.dns.zones(params.get("Name")):
            yield zone_object(zone)


@register
class RemoveDnsServerZone(Cmdlet):
    name = "Remove-DnsServerZone"
    parameters = (
        Parameter("Name", mandatory=True, position=0, aliases=("ZoneName",), help="The zone."),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Removes a zone added by Add-DnsServerPrimaryZone."
    description = (
        "Removes the zone and the records added to it. An accepted domain's zone can't "
        "be removed (it exists as long as the accepted domain does)."
    )
    examples = (Example("Remove-DnsServerZone contoso.com -Force", "Removes contoso.com."),)
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        zone = self.directory.dns.zone(params["Name"])
        if not forced(self, params, zone.zone_name):
            return
        removed = self.directory.dns.remove_zone(zone.zone_name)
        if params.get("PassThru"):
            yield zone_object(removed)


@register
class ExportDnsServerZone(Cmdlet):
    name = "Export-DnsServerZone"
    parameters = (
        Parameter("Name", mandatory=True, position=0, aliases=("ZoneName",), help="The zone."),
        Parameter(
            "FileName",
            mandatory=True,
            position=1,
            help="The file to write, relative to the current directory or absolute; it "
            "must not exist yet.",
        ),
        COMPUTER,
    )
    synopsis = "Writes a zone to an RFC 1035 master file."
    description = (
        "Writes the zone, every record (as inside clients see it), to a master file that "
        "BIND and NSD load. Windows writes under %windir%\\System32\\dns; here the file "
        "is FileName, and the output says where it is."
    )
    examples = (
        Example(
            "Export-DnsServerZone -Name lab.net -FileName lab.net.dns",
            "Writes lab.net.dns in the current directory.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        yield export_object(export_zone(self.directory, params["Name"], params["FileName"]))
