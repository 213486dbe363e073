"""Accepted domains: New-, Get-, Set-, Remove-AcceptedDomain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.transport import AcceptedDomain
from casarray.directory.transport.values import DOMAIN_TYPES
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.transport.common import (
    PASS_THRU,
    accepted_domain_object,
    identity_parameter,
    ref,
)

IDENTITY_HELP = "The accepted domain's name, domain name or GUID."


@register
class NewAcceptedDomain(Cmdlet):
    name = "New-AcceptedDomain"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The accepted domain's name."),
        Parameter(
            "DomainName",
            mandatory=True,
            help="The domain (contoso.com), or *.contoso.com for it and its subdomains.",
        ),
        Parameter(
            "DomainType",
            kind="enum",
            choices=DOMAIN_TYPES,
            help="Authoritative (default): the organization's mailboxes are there. "
            "InternalRelay: recipients not found here are relayed on.",
        ),
        Parameter("MakeDefault", kind="switch", help="Make it the default accepted domain."),
    )
    synopsis = "Creates an accepted domain: a domain the organization takes mail for."
    description = (
        "Creates an accepted domain. The Hub Transport servers take mail for its "
        "recipients from anywhere; mailboxes may have addresses in it."
    )
    examples = (
        Example(
            "New-AcceptedDomain -Name Contoso -DomainName contoso.com -DomainType Authoritative",
            "Takes mail for contoso.com.",
        ),
        Example(
            'New-AcceptedDomain "Lab subdomains" -DomainName *.lab.net -DomainType InternalRelay',
            "Takes mail for lab.net's subdomains and relays what isn't for a mailbox here.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if not self.should_process(params["Name"]):
            return
        yield accepted_domain_object(
            self.directory.transport.new_accepted_domain(
                params["Name"],
                params["DomainName"],
                params.get("DomainType") or "Authoritative",
                bool(params.get("MakeDefault")),
            )
        )


@register
class GetAcceptedDomain(Cmdlet):
    name = "Get-AcceptedDomain"
    parameters = (identity_parameter(IDENTITY_HELP, mandatory=False),)
    synopsis = "Gets accepted domains."
    description = "Gets one accepted domain, or every accepted domain of the organization."
    examples = (
        Example("Get-AcceptedDomain", "Lists the accepted domains."),
        Example("Get-AcceptedDomain lab.net | Format-List", "Shows lab.net's settings."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        transport = self.directory.transport
        if identity is None:
            domains = transport.accepted_domains()
        else:
            domains = [transport.accepted_domain(ref(identity, AcceptedDomain))]
        for domain in domains:
            yield accepted_domain_object(domain)


@register
class SetAcceptedDomain(Cmdlet):
    name = "Set-AcceptedDomain"
    parameters = (
        identity_parameter(IDENTITY_HELP),
        Parameter("Name", help="A new name."),
        Parameter("DomainType", kind="enum", choices=DOMAIN_TYPES, help="A new type."),
        Parameter("MakeDefault", kind="switch", help="Make it the default accepted domain."),
        PASS_THRU,
    )
    synopsis = "Changes an accepted domain."
    description = "Changes an accepted domain's name or type, or makes it the default."
    examples = (
        Example(
            "Set-AcceptedDomain Contoso -MakeDefault",
            "Makes contoso.com the default: new servers' FQDNs and addresses use it.",
        ),
        Example(
            "Set-AcceptedDomain Contoso -DomainType InternalRelay",
            "Relays mail for contoso.com recipients not found here.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = ref(params["Identity"], AcceptedDomain)
        if not self.should_process(str(identity)):
            return
        changes: dict[str, Any] = {}
        if "Name" in params:
            changes["name"] = params["Name"]
        if "DomainType" in params:
            changes["domain_type"] = params["DomainType"]
        if params.get("MakeDefault"):
            changes["make_default"] = True
        domain = self.directory.transport.set_accepted_domain(identity, **changes)
        if params.get("PassThru"):
            yield accepted_domain_object(domain)


@register
class RemoveAcceptedDomain(Cmdlet):
    name = "Remove-AcceptedDomain"
    parameters = (identity_parameter(IDENTITY_HELP),)
    synopsis = "Removes an accepted domain."
    description = (
        "Removes an accepted domain. Refused for the default domain and while mailboxes "
        "have addresses in it."
    )
    examples = (
        Example("Remove-AcceptedDomain Contoso", "Removes contoso.com after confirmation."),
        Example("Remove-AcceptedDomain Contoso -Confirm:$false", "Removes it without asking."),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = ref(params["Identity"], AcceptedDomain)
        if self.should_process(str(identity)):
            self.directory.transport.remove_accepted_domain(identity)
        return ()
