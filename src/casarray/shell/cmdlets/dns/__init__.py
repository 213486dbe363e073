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

One module per object: `zones`, `records`, `policies` (client subnets, query
resolution policies and the server's settings); `common` holds what they share.
Get-Command shows them all as the module `dns`.
"""
