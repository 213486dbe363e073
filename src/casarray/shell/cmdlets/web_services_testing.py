"""Test-WebServicesConnectivity: a real EWS client's GetFolder and FindItem against
each Client Access server's EWS URL (`diagnostics.ews_connectivity`).

    Test-WebServicesConnectivity
    Test-WebServicesConnectivity -ClientAccessServer CAS01 -Identity alice@lab.net `
        -Password (ConvertTo-SecureString '...' -AsPlainText -Force)

Credentials are given as the shell's other Test- cmdlets take them (-Identity and
-Password; this shell has no PSCredential for Exchange's -MailboxCredential); without
them the test mailbox of the first mounted database is used (extest_<database>).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.values import SecureString, ShellRuntimeError
from casarray.shell.views import register_view

RESULT_TYPE = "casarray.WebServicesConnectivityResult"
register_view(RESULT_TYPE, ("Source", "ServiceEndpoint", "Scenario", "Result", "Latency(MS)"))


@register
class TestWebServicesConnectivity(Cmdlet):
    name = "Test-WebServicesConnectivity"
    parameters = (
        Parameter(
            "ClientAccessServer",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="server",
            help="The Client Access server to test; by default every one.",
        ),
        Parameter(
            "Identity",
            kind="identity",
            identity_of="mailbox",
            help="The mailbox to sign in as (with -Password); by default a test mailbox.",
        ),
        Parameter(
            "Password",
            kind="securestring",
            help="The mailbox's password: (ConvertTo-SecureString '...' -AsPlainText -Force).",
        ),
    )
    synopsis = "Tests Exchange Web Services on Client Access servers with a real EWS call."
    description = (
        "For each Client Access server (-ClientAccessServer, or every one), signs in to "
        "its EWS URL (the EWS virtual directory's InternalUrl) with Basic authentication "
        "over TLS, as a client on this machine (the lab's DNS, port offset and CA), and "
        "runs GetFolder of the inbox, then FindItem of a page of it. One object per "
        "scenario: Source (this machine's view), ServiceEndpoint, Scenario, Result "
        "(Success, Failure, Skipped), Latency(MS), Error (a name that doesn't resolve, "
        "a certificate not trusted, /EWS answering 404 or 401, an EWS error)."
    )
    examples = (
        Example("Test-WebServicesConnectivity", "Tests every Client Access server."),
        Example(
            "Test-WebServicesConnectivity CAS01 -Identity alice@lab.net -Password "
            "(ConvertTo-SecureString 'P@ssw0rd' -AsPlainText -Force)",
            "Tests CAS01's EWS as alice.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        import socket

        from casarray.client.network import Network
        from casarray.diagnostics.connectivity import connectivity_mailbox
        from casarray.diagnostics.ews_connectivity import FAILURE, ews_scenarios
        from casarray.directory.objects import Mailbox, Server, ServerRole

        value = params.get("Password")
        password = value.reveal() if isinstance(value, SecureString) else None
        if params.get("Identity") is not None:
            if password is None:
                raise ShellRuntimeError(
                    "Give the mailbox's password with -Password (ConvertTo-SecureString "
                    "'...' -AsPlainText -Force), or leave out -Identity to use a test mailbox.",
                    category="InvalidArgument",
                )
            mailbox = self.directory.mailboxes.one(identity_arg(params["Identity"], Mailbox))
        else:
            mounted = [db for db in self.directory.databases.get() if db.mounted]
            if not mounted:
                raise ShellRuntimeError(
                    "No mailbox database is mounted, so there is no test mailbox: mount one "
                    "(Mount-Database) or name a mailbox with -Identity and -Password.",
                    category="ResourceUnavailable",
                )
            mailbox, password = connectivity_mailbox(self.directory, mounted[0])
        assert password is not None
        if params.get("ClientAccessServer") is not None:
            chosen = self.directory.servers.one(identity_arg(params["ClientAccessServer"], Server))
            if not chosen.is_client_access_server:
                raise ShellRuntimeError(
                    f"The server '{chosen.name}' isn't a Client Access server.",
                    category="InvalidArgument",
                )
            servers = [chosen]
        else:
            servers = self.directory.servers.get(role=ServerRole.ClientAccess)
        network = Network.configure()
        source = socket.gethostname()
        login = mailbox.primary_smtp_address
        for server in servers:
            found = self.directory.virtual_directories.get("WebServices", server=server.guid)
            url = found[0].internal_url if found else None
            if not url:
                yield _result(
                    server.name,
                    source,
                    "",
                    "GetFolder",
                    FAILURE,
                    None,
                    f"{server.name} has no EWS InternalUrl: Set-WebServicesVirtualDirectory "
                    f"'{server.name}\\EWS (Default Web Site)' -InternalUrl https://"
                    f"{server.fqdn}/EWS/Exchange.asmx",
                    login,
                )
                continue
            for s in ews_scenarios(network, url, login, password):
                yield _result(
                    server.name, source, url, s.scenario, s.result, s.latency, s.error, login,
                    s.detail,
                )  # fmt: skip


def _result(
    server: str,
    source: str,
    endpoint: str,
    scenario: str,
    result: str,
    latency: float | None,
    error: str,
    mailbox: str,
    detail: str = "",
) -> PSObject:
    return PSObject(
        {
            "Source": source,
            "ServiceEndpoint": endpoint,
            "ClientAccessServer": server,
            "Scenario": scenario,
            "Result": result,
            "Latency(MS)": latency,
            "Error": error,
            "Detail": detail,
            "Mailbox": mailbox,
        },
        type_name=RESULT_TYPE,
        display=f"{server} {scenario}: {result}",
    )
