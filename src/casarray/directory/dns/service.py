"""`Directory.dns`: one entry point for the DnsServer cmdlets and the DNS server, with
the work done by one small service per seam: the server's settings, zones, resource
records, client subnets and query resolution policies; `contents` is what the DNS
server serves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from casarray.directory.dns.contents import read_contents
from casarray.directory.dns.objects import DnsContents
from casarray.directory.dns.policies import ClientSubnetService, QueryPolicyService
from casarray.directory.dns.resource_records import RecordService
from casarray.directory.dns.settings import SettingsService
from casarray.directory.dns.zones import ZoneService

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class DnsService:
    """The DNS operations under their cmdlet's name (`add_zone` is
    Add-DnsServerPrimaryZone, `records` Get-DnsServerResourceRecord, ...). Each is the
    bound method of the service that owns it, so its signature and docstring live in
    one place."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory
        settings = SettingsService(directory)
        zones = ZoneService(directory)
        records = RecordService(directory)
        subnets = ClientSubnetService(directory)
        policies = QueryPolicyService(directory)
        # Get-DnsServerSetting, Set-DnsServerSetting -ListeningIPAddress
        self.listening_address = settings.listening_address
        self.set_listening_address = settings.set_listening_address
        # Get-DnsServerZone, Add-DnsServerPrimaryZone, Remove-DnsServerZone
        self.zones = zones.get
        self.zone = zones.one
        self.add_zone = zones.add
        self.remove_zone = zones.remove
        # Get-, Add-, Remove-DnsServerResourceRecord
        self.records = records.get
        self.add_record = records.add
        self.remove_records = records.remove
        # Get-, Add-, Remove-DnsServerClientSubnet
        self.client_subnets = subnets.get
        self.add_client_subnet = subnets.add
        self.remove_client_subnet = subnets.remove
        # Get-, Add-, Remove-DnsServerQueryResolutionPolicy
        self.query_policies = policies.get
        self.add_query_policy = policies.add
        self.remove_query_policy = policies.remove

    def contents(self) -> DnsContents:
        """Every zone with its records, the hidden names and the inside networks, read
        in one transaction (the topology version first)."""
        with self.dir.store.read() as session:
            return read_contents(session)
