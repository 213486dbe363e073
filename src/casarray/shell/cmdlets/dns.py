"""DNS server cmdlets, with the names, parameters and output of Windows' DnsServer
module:

    Add-DnsServerResourceRecordA -ZoneName lab.net -Name bj-cas -IPv4Address 127.77.1.10
    Get-DnsServerResourceRecord -ZoneName lab.net -RRType A
    Export-DnsServerZone -Name lab.net -FileName lab.net.dns

Zones: every accepted domain is a zone with no command; Add-DnsServerPrimaryZone adds
others (Get-DnsServerZone lists both; only added ones can be removed). Each zone holds
records made from the directory (servers, NLB clusters, arrays, autodiscover, MX,
SRV: Get-DnsServerResourceRecord shows them with Source "Directory") and records added
by cmdlet (Source "Cmdlet"); a cmdlet record replaces the automatic ones of its type
at its name. Like Windows, the Add- cmdlets write nothing unless -PassThru, and
-TimeToLive takes a TimeSpan (01:00:00; plain seconds work too; default 1 hour).

Views, as Microsoft's split-brain DNS policies but reduced to what casarray needs:
clients in the inside networks (the sites' subnets, the networks of every
Add-DnsServerClientSubnet, and loopback) see every record; other clients get NXDOMAIN
for the server FQDNs, NLB cluster names and client access array FQDNs, and for the
names of every Add-DnsServerQueryResolutionPolicy. A policy here takes only -Action
DENY (the default) and -Fqdn "EQ,name[,name...]" (a name may start with "*."), and
always applies to the clients outside the inside networks (no -ClientSubnet, zone
scopes or other criteria).

Set-DnsServerSetting -ListeningIPAddress sets the address the DNS server listens on
(default 127.77.0.53); Windows sets it through a settings object. The rules live in
`Directory.dns`; Export-DnsServerZone writes with `casarray.dns.export`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.dns.objects import DnsClientSubnet, DnsQueryPolicy, DnsRecord, DnsZone
from casarray.directory.dns.values import timespan
from casarray.dns.export import ExportedZone, export_zone
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.psobject import PSObject
from casarray.shell.values import ShellRuntimeError
from casarray.shell.views import register_view

CIM = "Microsoft.Management.Infrastructure.CimInstance#root/Microsoft/Windows/DNS/"
ZONE_TYPE = CIM + "DnsServerPrimaryZone"
RECORD_TYPE = CIM + "DnsServerResourceRecord"
SUBNET_TYPE = CIM + "DnsServerClientSubnet"
POLICY_TYPE = CIM + "DnsServerPolicy"
SETTING_TYPE = CIM + "DnsServerSetting"
EXPORT_TYPE = "casarray.DnsServerZoneExport"

register_view(
    ZONE_TYPE,
    ("ZoneName", "ZoneType", "IsAutoCreated", "IsDsIntegrated", "IsReverseLookupZone", "IsSigned"),
)
register_view(
    RECORD_TYPE,
    ("HostName", "RecordType", "Type", "Timestamp", "TimeToLive", "RecordData", "Source"),
)
register_view(SUBNET_TYPE, ("Name", "IPV4Subnet", "IPV6Subnet"))
register_view(POLICY_TYPE, ("Name", "ProcessingOrder", "IsEnabled", "Action", "Criteria"))
register_view(SETTING_TYPE, ("ComputerName", "ListeningIPAddress"))
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


def _record_data(record: DnsRecord) -> PSObject:
    """RecordData as Windows shows it, with its type's properties."""
    parts = record.data.split()
    kind = record.record_type
    props: dict[str, Any]
    if kind == "A":
        props, shown = {"IPv4Address": record.data}, record.data
    elif kind == "AAAA":
        props, shown = {"IPv6Address": record.data}, record.data
    elif kind == "CNAME":
        props, shown = {"HostNameAlias": record.data}, record.data
    elif kind == "NS":
        props, shown = {"NameServer": record.data}, record.data
    elif kind == "MX":
        props = {"Preference": int(parts[0]), "MailExchange": parts[1]}
        shown = f"[{parts[0]}][{parts[1]}]"
    elif kind == "SRV":
        props = {
            "Priority": int(parts[0]),
            "Weight": int(parts[1]),
            "Port": int(parts[2]),
            "DomainName": parts[3],
        }
        shown = "".join(f"[{p}]" for p in parts)
    elif kind == "SOA":
        props = {
            "PrimaryServer": parts[0],
            "ResponsiblePerson": parts[1],
            "SerialNumber": int(parts[2]),
            "RefreshInterval": timespan(int(parts[3])),
            "RetryDelay": timespan(int(parts[4])),
            "ExpireLimit": timespan(int(parts[5])),
            "MinimumTimeToLive": timespan(int(parts[6])),
        }
        shown = f"[{parts[2]}][{parts[0]}][{parts[1]}]"
    else:  # TXT: the text, unquoted
        text = _txt_text(record.data)
        props, shown = {"DescriptiveText": text}, text
    return PSObject(props, base=record.data, display=shown)


def _txt_text(data: str) -> str:
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, data)
    return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]


def record_object(record: DnsRecord) -> PSObject:
    return PSObject(
        {
            "HostName": record.host_name,
            "RecordType": record.record_type,
            "Type": record.type_code,
            "Timestamp": "0",
            "TimeToLive": timespan(record.ttl),
            "RecordData": _record_data(record),
            "Source": "Directory" if record.automatic else "Cmdlet",
            "Origin": record.origin,
            "RecordClass": "IN",
            "ZoneName": record.zone_name,
            "DistinguishedName": f"DC={record.host_name},DC={record.zone_name},cn=MicrosoftDNS",
        },
        type_name=RECORD_TYPE,
        base=record,
        display=record.host_name,
    )


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


# -- parameters and helpers ------------------------------------------------------------


def _zone(position: int | None = None, mandatory: bool = True) -> Parameter:
    return Parameter(
        "ZoneName",
        mandatory=mandatory,
        position=position,
        help="The zone: an accepted domain, or a zone added by Add-DnsServerPrimaryZone.",
    )


def _name(position: int | None = 0, mandatory: bool = True) -> Parameter:
    return Parameter(
        "Name",
        mandatory=mandatory,
        position=position,
        help='The record\'s name, relative to the zone ("@" for the zone itself); a name '
        "ending in the zone's name or in a dot is taken as the full name.",
    )


TTL = Parameter(
    "TimeToLive",
    help="How long resolvers may cache the record: a TimeSpan (01:00:00) or seconds; "
    "default 1 hour.",
)
PASS_THRU = Parameter("PassThru", kind="switch", help="Write the record (or zone) added.")
ALLOW_UPDATE_ANY = Parameter(
    "AllowUpdateAny", kind="switch", help="Accepted, as Windows'; there are no dynamic updates."
)
COMPUTER = Parameter("ComputerName", help="Accepted; the DNS server is the directory's.")


def _forced(cmdlet: Cmdlet, params: Mapping[str, Any], target: str) -> bool:
    """-Force skips the confirmation (not -WhatIf)."""
    common = cmdlet.invocation.common if cmdlet.invocation is not None else {}
    if params.get("Force") and not common.get("WhatIf"):
        return True
    return cmdlet.should_process(target)


def _usage(message: str) -> ShellRuntimeError:
    """An error in how the cmdlet was called (shown without a Python exception name)."""
    return ShellRuntimeError(message, category="InvalidArgument")


def _base(value: Any) -> Any:
    return value.base if isinstance(value, PSObject) else value


def _windows_data(text: str) -> str:
    """RecordData as Windows shows it ("[10][mail.lab.net.]") or as a master file
    writes it ("10 mail.lab.net."): the master-file form."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return " ".join(text[1:-1].split("]["))
    return text


class _AddRecord(Cmdlet):
    supports_should_process = True
    rr_type = ""

    def data(self, params: Mapping[str, Any]) -> list[str]:
        raise NotImplementedError

    def add(self, params: Mapping[str, Any], rr_type: str, values: list[str]) -> Iterable[Any]:
        zone, name = params["ZoneName"], params.get("Name")
        if not self.should_process(f"{name}.{zone}" if name not in (None, "@") else zone):
            return
        for value in values:
            record = self.directory.dns.add_record(
                zone, name, rr_type, value, params.get("TimeToLive")
            )
            if params.get("PassThru"):
                yield record_object(record)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        yield from self.add(params, self.rr_type, self.data(params))


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
        if not _forced(self, params, zone.zone_name):
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


# -- records -----------------------------------------------------------------------------


@register
class AddDnsServerResourceRecordA(_AddRecord):
    name = "Add-DnsServerResourceRecordA"
    rr_type = "A"
    parameters = (
        _name(0),
        _zone(2),
        Parameter(
            "IPv4Address",
            kind="strings",
            mandatory=True,
            position=1,
            help="The host's IPv4 address (several make several records).",
        ),
        TTL,
        ALLOW_UPDATE_ANY,
        Parameter("CreatePtr", kind="switch", help="Accepted; there are no reverse zones."),
        Parameter("AgeRecord", kind="switch", help="Accepted; records don't age."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Adds a host (A) record to a zone."
    description = (
        "Adds an A record. If the zone already holds the same record from the directory "
        "(an NLB cluster's name, say), the zone still holds it once; the record added "
        "stays if the directory object goes."
    )
    examples = (
        Example(
            "Add-DnsServerResourceRecordA -ZoneName lab.net -Name bj-cas -IPv4Address 127.77.1.10",
            "Points bj-cas.lab.net at the BJ array's cluster IP (the seed's step 3).",
        ),
        Example(
            "Add-DnsServerResourceRecordA owa 127.77.1.10 lab.net -TimeToLive 00:05:00",
            "Adds owa.lab.net with a TTL of 5 minutes.",
        ),
    )

    def data(self, params: Mapping[str, Any]) -> list[str]:
        return list(params["IPv4Address"])


@register
class AddDnsServerResourceRecordAAAA(_AddRecord):
    name = "Add-DnsServerResourceRecordAAAA"
    rr_type = "AAAA"
    parameters = (
        _name(0),
        _zone(2),
        Parameter(
            "IPv6Address", kind="strings", mandatory=True, position=1, help="The IPv6 address."
        ),
        TTL,
        ALLOW_UPDATE_ANY,
        Parameter("CreatePtr", kind="switch", help="Accepted; there are no reverse zones."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Adds an IPv6 host (AAAA) record to a zone."
    description = "Adds an AAAA record."
    examples = (
        Example(
            "Add-DnsServerResourceRecordAAAA -ZoneName lab.net -Name web -IPv6Address 2001:db8::10",
            "Adds web.lab.net AAAA 2001:db8::10.",
        ),
    )

    def data(self, params: Mapping[str, Any]) -> list[str]:
        return list(params["IPv6Address"])


@register
class AddDnsServerResourceRecordCName(_AddRecord):
    name = "Add-DnsServerResourceRecordCName"
    rr_type = "CNAME"
    parameters = (
        _name(0),
        Parameter(
            "HostNameAlias",
            mandatory=True,
            position=1,
            help="The canonical name the alias points at (an FQDN).",
        ),
        _zone(2),
        TTL,
        ALLOW_UPDATE_ANY,
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Adds an alias (CNAME) record to a zone."
    description = (
        "Adds a CNAME. Its name can hold nothing else (RFC 1034): not the zone's apex, "
        "not a name with other records (added or from the directory), not a second CNAME."
    )
    examples = (
        Example(
            "Add-DnsServerResourceRecordCName -ZoneName lab.net -Name owa -HostNameAlias "
            "bj-cas.lab.net",
            "Makes owa.lab.net an alias of bj-cas.lab.net.",
        ),
    )

    def data(self, params: Mapping[str, Any]) -> list[str]:
        return [params["HostNameAlias"]]


@register
class AddDnsServerResourceRecordMX(_AddRecord):
    name = "Add-DnsServerResourceRecordMX"
    rr_type = "MX"
    parameters = (
        _name(0),
        Parameter("MailExchange", mandatory=True, position=1, help="The mail server's FQDN."),
        Parameter(
            "Preference", kind="int", mandatory=True, position=2, help="0..65535, lowest first."
        ),
        _zone(3),
        TTL,
        ALLOW_UPDATE_ANY,
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Adds a mail exchanger (MX) record to a zone."
    description = "Adds an MX record; it replaces the zone's automatic MX (10 mail.<zone>)."
    examples = (
        Example(
            'Add-DnsServerResourceRecordMX -ZoneName lab.net -Name "." -MailExchange '
            "mx.lab.net -Preference 5",
            "Makes mx.lab.net the mail server of lab.net.",
        ),
    )

    def data(self, params: Mapping[str, Any]) -> list[str]:
        return [f"{params['Preference']} {params['MailExchange']}"]


@register
class AddDnsServerResourceRecord(_AddRecord):
    name = "Add-DnsServerResourceRecord"
    parameters = (
        _zone(0),
        _name(1),
        Parameter("A", kind="switch", help="An A record (-IPv4Address)."),
        Parameter("AAAA", kind="switch", help="An AAAA record (-IPv6Address)."),
        Parameter("CName", kind="switch", help="A CNAME record (-HostNameAlias)."),
        Parameter("MX", kind="switch", help="An MX record (-MailExchange, -Preference)."),
        Parameter("Srv", kind="switch", help="An SRV record (-DomainName, -Port, ...)."),
        Parameter("Txt", kind="switch", help="A TXT record (-DescriptiveText)."),
        Parameter("IPv4Address", kind="strings", help="The IPv4 address (-A)."),
        Parameter("IPv6Address", kind="strings", help="The IPv6 address (-AAAA)."),
        Parameter("HostNameAlias", help="The canonical name (-CName)."),
        Parameter("MailExchange", help="The mail server (-MX)."),
        Parameter("Preference", kind="int", help="The MX preference (-MX)."),
        Parameter("DomainName", help="The target host (-Srv)."),
        Parameter("Priority", kind="int", help="The SRV priority (-Srv)."),
        Parameter("Weight", kind="int", help="The SRV weight (-Srv)."),
        Parameter("Port", kind="int", help="The SRV port (-Srv)."),
        Parameter("DescriptiveText", help="The text (-Txt)."),
        TTL,
        ALLOW_UPDATE_ANY,
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Adds a resource record of the type given by a switch to a zone."
    description = (
        "One switch says the type: -A, -AAAA, -CName, -MX, -Srv or -Txt, with that "
        "type's parameters."
    )
    examples = (
        Example(
            "Add-DnsServerResourceRecord -ZoneName lab.net -A -Name owa -IPv4Address 127.77.1.10",
            "Adds owa.lab.net A 127.77.1.10.",
        ),
        Example(
            "Add-DnsServerResourceRecord -Srv -ZoneName lab.net -Name _pop3s._tcp "
            "-DomainName mail.lab.net -Priority 0 -Weight 1 -Port 995",
            "Adds an SRV record for POP3 over TLS.",
        ),
    )

    def _need(self, params: Mapping[str, Any], switch: str, *names: str) -> list[Any]:
        missing = [n for n in names if params.get(n) in (None, "", [])]
        if missing:
            raise _usage(
                f"-{switch} needs {', '.join('-' + n for n in missing)}: give "
                f"{'it' if len(missing) == 1 else 'them'} the record's data."
            )
        return [params[n] for n in names]

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        switches = [s for s in ("A", "AAAA", "CName", "MX", "Srv", "Txt") if params.get(s)]
        if len(switches) != 1:
            raise _usage(
                "Say the record's type with one switch: -A, -AAAA, -CName, -MX, -Srv or -Txt."
            )
        switch = switches[0]
        if switch == "A":
            values = list(self._need(params, switch, "IPv4Address")[0])
        elif switch == "AAAA":
            values = list(self._need(params, switch, "IPv6Address")[0])
        elif switch == "CName":
            values = self._need(params, switch, "HostNameAlias")
        elif switch == "MX":
            mail, preference = self._need(params, switch, "MailExchange", "Preference")
            values = [f"{preference} {mail}"]
        elif switch == "Srv":
            values = [
                " ".join(
                    str(v)
                    for v in self._need(params, switch, "Priority", "Weight", "Port", "DomainName")
                )
            ]
        else:
            values = self._need(params, switch, "DescriptiveText")
        yield from self.add(params, switch.upper(), values)


@register
class GetDnsServerResourceRecord(Cmdlet):
    name = "Get-DnsServerResourceRecord"
    parameters = (
        _zone(0),
        _name(1, mandatory=False),
        Parameter(
            "RRType",
            position=2,
            help="Only records of this type: A, AAAA, CName, MX, NS, SOA, Srv, Txt.",
        ),
        Parameter("Node", kind="switch", help="Accepted (only the records at -Name are shown)."),
        COMPUTER,
    )
    synopsis = "Gets the resource records of a zone."
    description = (
        "Shows the zone's records as the DNS server serves them to inside clients: those "
        "made from the directory (Source Directory; Format-List shows the Origin, the "
        "objects they come from) and those added by cmdlet (Source Cmdlet)."
    )
    examples = (
        Example("Get-DnsServerResourceRecord -ZoneName lab.net", "Lists the zone's records."),
        Example(
            "Get-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas -RRType A",
            "Shows the A records of bj-cas.lab.net.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        for record in self.directory.dns.records(
            params["ZoneName"], params.get("Name"), params.get("RRType")
        ):
            yield record_object(record)


@register
class RemoveDnsServerResourceRecord(Cmdlet):
    name = "Remove-DnsServerResourceRecord"
    parameters = (
        _zone(0),
        Parameter("RRType", position=1, help="The record's type: A, AAAA, CName, MX, Srv, Txt."),
        _name(2, mandatory=False),
        Parameter(
            "RecordData",
            help="Only the record with this data (e.g. 127.77.1.10, or [10][mail.lab.net.]); "
            "without it, every record of the type at the name.",
        ),
        Parameter(
            "InputObject",
            kind="object",
            from_pipeline=True,
            help="A record from Get-DnsServerResourceRecord.",
        ),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
        PASS_THRU,
        COMPUTER,
    )
    synopsis = "Removes resource records added by cmdlet from a zone."
    description = (
        "Removes records added by cmdlet. A record made from the directory can't be "
        "removed here: the error names the object it comes from (a server, an NLB "
        "cluster, an array), which is what to change."
    )
    examples = (
        Example(
            "Remove-DnsServerResourceRecord -ZoneName lab.net -RRType A -Name owa -Force",
            "Removes the A records of owa.lab.net.",
        ),
        Example(
            "Get-DnsServerResourceRecord lab.net -Name owa | Remove-DnsServerResourceRecord "
            "-ZoneName lab.net -Force",
            "The same, piped.",
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        zone = params["ZoneName"]
        piped = _base(params.get("InputObject"))
        name: str | None
        rr_type: str | None
        data: str | None
        if isinstance(piped, DnsRecord):
            name, rr_type, data = piped.host_name, piped.record_type, piped.data
        elif piped is not None:
            raise _usage(
                "-InputObject takes a record from Get-DnsServerResourceRecord, not "
                f"'{params['InputObject']}'."
            )
        else:
            rr_type, name = params.get("RRType"), params.get("Name")
            missing = [p for p, v in (("RRType", rr_type), ("Name", name)) if v is None]
            if missing:
                raise _usage(
                    f"Name the record: -{' and -'.join(missing)} (or pipe it in from "
                    "Get-DnsServerResourceRecord)."
                )
            given = params.get("RecordData")
            data = _windows_data(str(given)) if given is not None else None
        target = f"{name} {rr_type}" + (f" {data}" if data else "")
        if not _forced(self, params, target):
            return
        for record in self.directory.dns.remove_records(zone, name, rr_type, data):
            if params.get("PassThru"):
                yield record_object(record)


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
        if not _forced(self, params, subnet.name):
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
        if not _forced(self, params, policy.name):
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
