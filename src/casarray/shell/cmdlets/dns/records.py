"""DNS resource records: the Add-DnsServerResourceRecord* cmdlets, Get- and
Remove-DnsServerResourceRecord. A zone holds records made from the directory (Source
"Directory") and records added by cmdlet (Source "Cmdlet"); a cmdlet record replaces
the automatic ones of its type at its name. The Add- cmdlets write nothing unless
-PassThru; -TimeToLive takes a TimeSpan (01:00:00) or seconds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.dns.objects import DnsRecord
from casarray.directory.dns.values import timespan
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.dns.common import CIM, COMPUTER, PASS_THRU, forced
from casarray.shell.psobject import PSObject
from casarray.shell.values import ShellRuntimeError
from casarray.shell.views import register_view

RECORD_TYPE = CIM + "DnsServerResourceRecord"

register_view(
    RECORD_TYPE,
    ("HostName", "RecordType", "Type", "Timestamp", "TimeToLive", "RecordData", "Source"),
)


# -- objects ---------------------------------------------------------------------------


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
ALLOW_UPDATE_ANY = Parameter(
    "AllowUpdateAny", kind="switch", help="Accepted, as Windows'; there are no dynamic updates."
)


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
            "Points bj-cas.lab.net at the BJ array's cluster IP (step 3 of the CAS-array set-up).",
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
        assert name is not None and rr_type is not None  # given, or the record's
        target = f"{name} {rr_type}" + (f" {data}" if data else "")
        if not forced(self, params, target):
            return
        for record in self.directory.dns.remove_records(zone, name, rr_type, data):
            if params.get("PassThru"):
                yield record_object(record)
