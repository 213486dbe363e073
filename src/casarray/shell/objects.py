"""Directory records as the Exchange Management Shell shows them: each record becomes a
PSObject with Exchange's (or the AD module's) type name and property names, wrapping
the record (`base`) and printing as its name (`display`), plus the default table view
of every type, as Exchange's format files define them.

Also the one helper every cmdlet uses to pass an identity parameter to the directory:
an object from the pipeline goes by its GUID (no name lookup), a string as written.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from casarray.directory.objects import (
    ClientAccessArray,
    Mailbox,
    MailboxDatabase,
    Server,
    ServerRole,
    Site,
    Subnet,
)
from casarray.directory.quotas import Quotas, format_size
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

SITE_TYPE = "Microsoft.ActiveDirectory.Management.ADReplicationSite"
SUBNET_TYPE = "Microsoft.ActiveDirectory.Management.ADReplicationSubnet"
SERVER_TYPE = "Microsoft.Exchange.Data.Directory.Management.ExchangeServer"
CAS_TYPE = "Microsoft.Exchange.Data.Directory.Management.ClientAccessServer"
ARRAY_TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.ClientAccessArray"
DATABASE_TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.MailboxDatabase"
MAILBOX_TYPE = "Microsoft.Exchange.Data.Directory.Management.Mailbox"

# The default table of each type: what Exchange 2010's format files (and the AD
# module's) show when the output is not formatted explicitly.
register_view(SITE_TYPE, ("Name", "Subnets"))
register_view(SUBNET_TYPE, ("Name", "Site"))
register_view(SERVER_TYPE, ("Name", "Site", "ServerRole", "Edition", "AdminDisplayVersion"))
# Exchange 2010 shows Name and OutlookAnywhereEnabled; the array and site say more here.
register_view(CAS_TYPE, ("Name", "Site", "Fqdn", "ClientAccessArray"))
register_view(ARRAY_TYPE, ("Name", "Site", "Fqdn", "Members"))
register_view(DATABASE_TYPE, ("Name", "Server", "Recovery", "ReplicationType"))
register_view(MAILBOX_TYPE, ("Name", "Alias", "ServerName", "ProhibitSendQuota"))

EDITION = "Enterprise"
# The ExchangeVersion of Exchange 2010 objects (the version of the object's schema).
OBJECT_VERSION = "0.10 (14.0.100.0)"
UNLIMITED = "Unlimited"


def admin_display_version(version: str) -> str:
    """Exchange's AdminDisplayVersion text: '14.3.123.4' -> 'Version 14.3 (Build 123.4)'."""
    parts = version.split(".")
    if len(parts) != 4:
        return f"Version {version}"
    return f"Version {parts[0]}.{parts[1]} (Build {parts[2]}.{parts[3]})"


def site_object(site: Site) -> PSObject:
    return PSObject(
        {
            "Name": site.name,
            "Description": None,
            "Subnets": list(site.subnets),
            "DistinguishedName": site.distinguished_name,
            "ObjectClass": "site",
            "ObjectGUID": site.guid,
            "Guid": site.guid,
            "WhenCreated": site.when_created,
        },
        type_name=SITE_TYPE,
        base=site,
        display=site.name,
    )


def subnet_object(subnet: Subnet) -> PSObject:
    return PSObject(
        {
            "Name": subnet.name,
            "Site": subnet.site,
            "Location": None,
            "Description": None,
            "DistinguishedName": subnet.distinguished_name,
            "ObjectClass": "subnet",
            "ObjectGUID": subnet.guid,
            "Guid": subnet.guid,
        },
        type_name=SUBNET_TYPE,
        base=subnet,
        display=subnet.name,
    )


def _domain(fqdn: str) -> str:
    return fqdn.partition(".")[2]


def server_object(server: Server) -> PSObject:
    roles = server.roles
    return PSObject(
        {
            "Name": server.name,
            "Site": server.site,
            "ServerRole": str(roles),
            "Edition": EDITION,
            "AdminDisplayVersion": admin_display_version(server.admin_display_version),
            "Fqdn": server.fqdn,
            "Domain": _domain(server.fqdn),
            "IPAddress": server.ip_address,
            "IsClientAccessServer": ServerRole.ClientAccess in roles,
            "IsMailboxServer": ServerRole.Mailbox in roles,
            "IsHubTransportServer": ServerRole.HubTransport in roles,
            "IsExchange2007OrLater": True,
            "ExchangeLegacyDN": server.exchange_legacy_dn,
            "ExchangeVersion": OBJECT_VERSION,
            "Identity": server.name,
            "Guid": server.guid,
            "DistinguishedName": server.distinguished_name,
            "WhenCreated": server.when_created,
            "IsValid": True,
            "ObjectCategory": "msExchExchangeServer",
        },
        type_name=SERVER_TYPE,
        base=server,
        display=server.name,
    )


def client_access_server_object(server: Server, array: str | None) -> PSObject:
    """Get-ClientAccessServer's view of a server; `array` is the name of its site's
    client access array, if the site has one."""
    return PSObject(
        {
            "Name": server.name,
            "Fqdn": server.fqdn,
            "Site": server.site,
            "ClientAccessArray": array,
            "AllowCrossSiteRpcClientAccess": server.allow_cross_site_rpc_client_access,
            "OutlookAnywhereEnabled": False,
            "AutoDiscoverServiceInternalUri": server.autodiscover_service_internal_uri,
            "AutoDiscoverSiteScope": [server.site],
            "IPAddress": server.ip_address,
            "ExchangeLegacyDN": server.exchange_legacy_dn,
            "Identity": server.name,
            "Guid": server.guid,
            "DistinguishedName": server.distinguished_name,
            "WhenCreated": server.when_created,
            "IsValid": True,
        },
        type_name=CAS_TYPE,
        base=server,
        display=server.name,
    )


def array_object(array: ClientAccessArray) -> PSObject:
    return PSObject(
        {
            "Name": array.name,
            "Site": array.site,
            "Fqdn": array.fqdn,
            "Members": list(array.members),
            "ExchangeLegacyDN": array.exchange_legacy_dn,
            "ExchangeVersion": OBJECT_VERSION,
            "Identity": array.name,
            "Guid": array.guid,
            "DistinguishedName": array.distinguished_name,
            "ObjectCategory": "msExchClientAccessArray",
            "ObjectClass": ["top", "server", "msExchExchangeServer", "msExchClientAccessArray"],
            "WhenCreated": array.when_created,
            "WhenChanged": array.when_changed,
            "IsValid": True,
        },
        type_name=ARRAY_TYPE,
        base=array,
        display=array.name,
    )


def database_object(database: MailboxDatabase, *, status: bool = False) -> PSObject:
    """Get-MailboxDatabase's object. Like Exchange, `Mounted` is known only when the
    status was asked for (-Status); otherwise it is $null."""
    return PSObject(
        {
            "Name": database.name,
            "Server": database.server,
            "Recovery": False,
            "ReplicationType": "None",
            "RpcClientAccessServer": database.rpc_client_access_server,
            "MasterServerOrAvailabilityGroup": database.server,
            "Servers": [database.server],
            "EdbFilePath": database.store_location,
            **_quota_properties(database.quotas),
            "LogFolderPath": _folder(database.store_location),
            "Mounted": database.mounted if status else None,
            "IsMailboxDatabase": True,
            "IsPublicFolderDatabase": False,
            "ExchangeLegacyDN": database.exchange_legacy_dn,
            "ExchangeVersion": OBJECT_VERSION,
            "Identity": database.name,
            "Guid": database.guid,
            "DistinguishedName": database.distinguished_name,
            "WhenCreated": database.when_created,
            "IsValid": True,
        },
        type_name=DATABASE_TYPE,
        base=database,
        display=database.name,
    )


def _quota_properties(quotas: Quotas) -> dict[str, str]:
    """The quotas as Get-Mailbox and Get-MailboxDatabase show them: "2 GB (2,147,483,648
    bytes)" or "Unlimited"."""
    return {
        "ProhibitSendQuota": format_size(quotas.prohibit_send),
        "ProhibitSendReceiveQuota": format_size(quotas.prohibit_send_receive),
        "IssueWarningQuota": format_size(quotas.issue_warning),
    }


def _folder(location: str) -> str | None:
    if "://" in location:
        return None
    return posixpath.dirname(location.replace("\\", "/")) or None


def mailbox_object(mailbox: Mailbox) -> PSObject:
    return PSObject(
        {
            "Name": mailbox.display_name,
            "Alias": mailbox.alias,
            "ServerName": mailbox.server.lower(),
            **_quota_properties(mailbox.quotas),
            "UseDatabaseQuotaDefaults": mailbox.use_database_quota_defaults,
            "DisplayName": mailbox.display_name,
            "PrimarySmtpAddress": mailbox.primary_smtp_address,
            "EmailAddresses": [f"SMTP:{mailbox.primary_smtp_address}"],
            "UserPrincipalName": mailbox.primary_smtp_address,
            "WindowsEmailAddress": mailbox.primary_smtp_address,
            "Database": mailbox.database,
            "RecipientType": "UserMailbox",
            "RecipientTypeDetails": "UserMailbox",
            "LegacyExchangeDN": mailbox.exchange_legacy_dn,
            "Identity": mailbox.alias,
            "Guid": mailbox.guid,
            "DistinguishedName": mailbox.distinguished_name,
            "WhenCreated": mailbox.when_created,
            "IsValid": True,
        },
        type_name=MAILBOX_TYPE,
        base=mailbox,
        display=mailbox.display_name,
    )


# -- identity parameters -----------------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """An object given as an identity: the directory finds it by `guid`, and names it
    by `name` in an error (for example when it was removed meanwhile)."""

    guid: str
    name: str

    def __str__(self) -> str:
        return self.name


def identity_arg(value: Any, record_type: type | tuple[type, ...]) -> Any:
    """What to pass the directory for an identity parameter's `value`: a piped object
    of the expected kind by its GUID, any other object by its name (as Exchange turns
    an object into its identity string), a string as it is."""
    if isinstance(value, PSObject):
        if isinstance(value.base, record_type):
            return ObjectRef(str(getattr(value.base, "guid")), str(value))  # noqa: B009
        return str(value)
    if isinstance(value, record_type):
        guid = getattr(value, "guid")  # noqa: B009 (every record type has one)
        return ObjectRef(str(guid), str(getattr(value, "name", guid)))
    return value


def left_pointing_warning(databases: list[str], fqdn: str) -> str:
    """The warning after a forced removal left databases naming a gone `fqdn`."""
    return (
        f"The mailbox databases {name_list(databases)} still name {fqdn} as their "
        "RpcClientAccessServer; their users can't connect until they are pointed at a "
        "Client Access server or array that exists: Get-MailboxDatabase "
        f"{databases[0]} | Set-MailboxDatabase -RpcClientAccessServer <FQDN>"
    )


def name_list(names: list[str] | tuple[str, ...], limit: int = 10) -> str:
    """'DB01, DB02 and 3 more': names for a message, at most `limit` of them."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"
