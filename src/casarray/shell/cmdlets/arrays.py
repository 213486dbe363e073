"""Client access array cmdlets: New-, Get-, Set- and Remove-ClientAccessArray.

New-ClientAccessArray is the seed's step III. Its warnings carry step V: creating an
array changes no existing database, so the databases of the site that don't name the
array yet are listed with the command that updates them. The rules (one array per
site, a unique FQDN that is no server's name, computed membership) live in
`Directory.arrays`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.objects import ClientAccessArray, Site
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import array_object, identity_arg, left_pointing_warning, name_list

IDENTITY_HELP = "The array's name, FQDN, GUID, distinguished name or legacyExchangeDN."


@register
class NewClientAccessArray(Cmdlet):
    name = "New-ClientAccessArray"
    parameters = (
        Parameter("Name", position=0, help="The array's name; by default the FQDN's first label."),
        Parameter(
            "Fqdn",
            mandatory=True,
            help="The virtual name clients connect to (its DNS record points at the load "
            "balancer's cluster IP).",
        ),
        Parameter(
            "Site",
            kind="identity",
            mandatory=True,
            identity_of="site",
            help="The Active Directory site whose Client Access servers form the array.",
        ),
    )
    synopsis = "Creates a client access array for an Active Directory site."
    description = (
        "Creates the site's client access array: one virtual name (the FQDN) in front of "
        "every Client Access server of the site, including those installed later. The "
        "array does no load balancing itself: put a load balancer (New-NlbCluster, "
        "HAProxy, F5, NetScaler) behind the FQDN. Mailbox databases created from now on "
        "in the site get the array's FQDN as their RpcClientAccessServer; existing "
        "databases keep theirs until Set-MailboxDatabase -RpcClientAccessServer changes it."
    )
    examples = (
        Example(
            'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"',
            "Creates the array BJ CAS Array in site BJ, reached as bj-cas.lab.net.",
        ),
        Example(
            "New-ClientAccessArray -Fqdn outlook.contoso.com -Site Default-First-Site-Name "
            "-Name outlook.contoso.com",
            "The example of Exchange's documentation: the array named after its FQDN.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        site = self.directory.sites.one(identity_arg(params["Site"], Site))
        name = params.get("Name") or None
        if not self.should_process(name or params["Fqdn"]):
            return
        array = self.directory.arrays.new(params["Fqdn"], site, name=name)
        if not array.members:
            self.write_warning(
                f"The site '{array.site}' has no Client Access servers yet, so the array "
                f"'{array.name}' has no members. Every Client Access server installed in the "
                "site joins it."
            )
        self._remind_databases(array, site)
        yield array_object(array)

    def _remind_databases(self, array: ClientAccessArray, site: Site) -> None:
        """The seed's step V: name the site's databases that don't use the array."""
        databases = self.directory.databases
        in_site = databases.get(site=site)
        stale = [db for db in in_site if db.rpc_client_access_server.lower() != array.fqdn.lower()]
        if not stale:
            return
        if databases.count() == len(in_site):
            commands = [
                f"Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer {array.fqdn}"
            ]
        else:  # other sites' databases must keep their own names
            servers = sorted({db.server for db in stale}, key=str.lower)
            commands = [
                f"Get-MailboxDatabase -Server {server} | Set-MailboxDatabase "
                f"-RpcClientAccessServer {array.fqdn}"
                for server in servers
            ]
        listed = name_list([f"{db.name} ({db.rpc_client_access_server})" for db in stale])
        self.write_warning(
            "Existing mailbox databases keep their RpcClientAccessServer: only databases "
            f"created from now on get {array.fqdn}. These databases of site '{array.site}' "
            f"don't use the array: {listed}. To point them at it, run: " + "; ".join(commands)
        )


@register
class GetClientAccessArray(Cmdlet):
    name = "Get-ClientAccessArray"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="array",
            help=IDENTITY_HELP,
        ),
        Parameter("Site", kind="identity", identity_of="site", help="Only this site's array."),
    )
    synopsis = "Gets client access arrays."
    description = (
        "Gets one client access array, the array of a site, or every array, with its "
        "members: the Client Access servers of its site."
    )
    examples = (
        Example("Get-ClientAccessArray", "Lists every array with its site, FQDN and members."),
        Example("Get-ClientAccessArray | fl", "Shows every property of every array."),
        Example("Get-ClientAccessArray -Site BJ", "Shows the array of site BJ."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        site = params.get("Site")
        site_arg = identity_arg(site, Site) if site is not None else None
        if identity is not None:
            array = self.directory.arrays.one(identity_arg(identity, ClientAccessArray))
            if site_arg is None or array.site == self.directory.sites.one(site_arg).name:
                yield array_object(array)
            return
        for array in self.directory.arrays.get(site=site_arg):
            yield array_object(array)


@register
class SetClientAccessArray(Cmdlet):
    name = "Set-ClientAccessArray"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="array",
            help=IDENTITY_HELP,
        ),
        Parameter("Name", help="A new name."),
        Parameter(
            "Fqdn",
            help="A new FQDN; databases that named the old one are carried along.",
        ),
        Parameter("Site", kind="identity", identity_of="site", help="Move the array to a site."),
    )
    synopsis = "Changes a client access array's name, FQDN or site."
    description = (
        "Changes a client access array. A new FQDN is also given to the databases that "
        "named the old one (they meant this array); its DNS record and certificate must "
        "then cover the new name."
    )
    examples = (
        Example(
            'Set-ClientAccessArray "BJ CAS Array" -Fqdn outlook.lab.net',
            "Gives the array a new virtual name.",
        ),
        Example(
            "Get-ClientAccessArray -Site BJ | Set-ClientAccessArray -Name BJ-Array",
            "Renames the array of site BJ.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        array = self.directory.arrays.one(identity_arg(params["Identity"], ClientAccessArray))
        name, fqdn, site = params.get("Name"), params.get("Fqdn"), params.get("Site")
        site_record = self.directory.sites.one(identity_arg(site, Site)) if site else None
        fqdn_text = str(fqdn).strip().rstrip(".") if fqdn is not None else None
        changes = (
            (name is not None and name.strip() != array.name)
            or (fqdn_text is not None and fqdn_text != array.fqdn)
            or (site_record is not None and site_record.name != array.site)
        )
        if not changes:
            self.write_warning(
                "The command completed successfully but no settings of "
                f"'{array.name}' have been modified."
            )
            return ()
        if not self.should_process(array.name):
            return ()
        updated = self.directory.arrays.set(array, name=name, fqdn=fqdn, site=site_record)
        if updated.fqdn.lower() != array.fqdn.lower():
            self.write_warning(
                f"Clients now reach the array as {updated.fqdn} (databases that named "
                f"{array.fqdn} were updated). Point the DNS record of {updated.fqdn} at the "
                "array's load balancer and make sure the Client Access certificate covers it."
            )
        return ()


@register
class RemoveClientAccessArray(Cmdlet):
    name = "Remove-ClientAccessArray"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="array",
            help=IDENTITY_HELP,
        ),
        Parameter(
            "Force",
            kind="switch",
            help="Remove it even while databases name it as their RpcClientAccessServer.",
        ),
    )
    synopsis = "Removes a client access array."
    description = (
        "Removes a client access array. Refused while mailbox databases name its FQDN as "
        "their RpcClientAccessServer (their users could no longer connect) unless -Force "
        "is given; then a warning lists those databases."
    )
    examples = (
        Example('Remove-ClientAccessArray "BJ CAS Array"', "Removes the array after asking."),
        Example(
            "Get-ClientAccessArray | Remove-ClientAccessArray -Force -Confirm:$false",
            "Removes every array without asking, even those databases still use.",
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        array = self.directory.arrays.one(identity_arg(params["Identity"], ClientAccessArray))
        if not self.should_process(array.name):
            return ()
        pointing = self.directory.arrays.remove(array, force=bool(params.get("Force")))
        if pointing:
            self.write_warning(left_pointing_warning(pointing, array.fqdn))
        return ()
