"""Test- cmdlets: Test-ClientAccessArray (casarray's Best Practices Analyzer for the
client access arrays), and Exchange 2010's Test-OutlookConnectivity and
Test-MAPIConnectivity (a real client's round trip through DNS, the balancer, a Client
Access server and the mailbox store).

    Test-ClientAccessArray
    Test-ClientAccessArray bj-cas.lab.net | ? Severity -eq Error | fl

The checks live in `casarray.diagnostics.array_analyzer`; the cmdlet shows one object per
finding (Severity, Check, Site, Array, Target, Finding, Fix; shown as a list, so that
the Fix is whole) and, when there is no Error or Warning, one object that says so
("No issues found").

Test-OutlookConnectivity and Test-MAPIConnectivity are a client on this machine: the
Outlook-like client of `casarray.client` (Autodiscover, then IMAP over TLS through the
name it gives, referrals followed), reaching the lab through its DNS server, port
offset and CA ($CASARRAY_HOME/lab.json) or else the system's. Without a mailbox and its
password they log on to a database's test mailbox (`analyzer.connectivity_mailbox`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from casarray.diagnostics.array_analyzer import INFO, Finding, analyze, is_clean
from casarray.directory.objects import ClientAccessArray, Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.values import SecureString, ShellRuntimeError
from casarray.shell.views import register_view

FINDING_TYPE = "casarray.ClientAccessArrayFinding"
NONE = "None"
NO_ISSUES = "No issues found"


# -- Test-ClientAccessArray --------------------------------------------------------------


def finding_object(finding: Finding) -> PSObject:
    return PSObject(
        {
            "Severity": finding.severity,
            "Check": finding.check,
            "Site": finding.site,
            "Array": finding.array,
            "Target": finding.target,
            "Finding": finding.message,
            "Fix": finding.fix,
        },
        type_name=FINDING_TYPE,
        base=finding,
        display=f"{finding.severity} {finding.check}: {finding.target}",
    )


def clean_object(findings: list[Finding], sites: list[str], array: str | None) -> PSObject:
    """The object that says nothing is wrong (Info findings, if any, came before it)."""
    info = sum(1 for f in findings if f.severity == INFO)
    text = f"{NO_ISSUES} in site{'s' if len(sites) != 1 else ''} {', '.join(sites)}."
    if info:
        text += f" {info} recommendation{'s' if info != 1 else ''} (Info) above."
    return PSObject(
        {
            "Severity": NONE,
            "Check": NONE,
            "Site": ", ".join(sites),
            "Array": array,
            "Target": "",
            "Finding": text,
            "Fix": "",
        },
        type_name=FINDING_TYPE,
        display=NO_ISSUES,
    )


@register
class TestClientAccessArray(Cmdlet):
    name = "Test-ClientAccessArray"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="array",
            help="The array to check (name, FQDN, GUID or DN); by default every site.",
        ),
    )
    synopsis = "Checks the client access arrays against best practices."
    description = (
        "casarray's own, in the manner of the Exchange Best Practices Analyzer. For every "
        "site (or the site of -Identity) it reports, with a severity (Error, Warning, "
        "Info) and the command that fixes it: a site with Client Access servers but no "
        "array (recommended even with one server); an array FQDN with no DNS record, or "
        "one that doesn't point at an NLB cluster IP; balancer nodes that differ from the "
        "array's members; members in maintenance or unhealthy (the running balancer's "
        "word, the running servers' health pages); members with no enabled certificate "
        "covering the array FQDN; databases of the site whose RpcClientAccessServer is "
        "not the array; an array FQDN that resolves from outside, or that is a public "
        "name (autodiscover.<domain>, mail.<domain>). When nothing is wrong it says "
        '"No issues found" (Info items are recommendations, not issues).'
    )
    examples = (
        Example("Test-ClientAccessArray", "Checks every site."),
        Example(
            "Test-ClientAccessArray bj-cas.lab.net | fl",
            "Checks the site of bj-cas.lab.net and shows each finding in full.",
        ),
        Example(
            "Test-ClientAccessArray | ? Severity -eq Error | % Fix",
            "Lists the commands that fix the errors.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        array = identity_arg(identity, ClientAccessArray) if identity is not None else None
        findings = analyze(self.directory, array)
        for finding in findings:
            yield finding_object(finding)
        if is_clean(findings):
            if array is not None:
                record = self.directory.arrays.one(array)
                sites, fqdn = [record.site], record.fqdn
            else:
                sites, fqdn = [s.name for s in self.directory.sites.get()], None
            yield clean_object(findings, sites, fqdn)


# -- the client's round trip (Test-OutlookConnectivity, Test-MAPIConnectivity) -----------

SUCCESS, FAILURE, SKIPPED = "Success", "Failure", "Skipped"
AUTODISCOVER, DNS, CONNECT, TLS, LOGON, LIST_INBOX = (
    "Autodiscover",
    "DNS",
    "Connect",
    "TLS",
    "Logon",
    "ListInbox",
)
OUTLOOK_STEPS = (AUTODISCOVER, DNS, CONNECT, TLS, LOGON, LIST_INBOX)
STEP_TYPE = "casarray.OutlookConnectivityStep"
MAPI_TYPE = "casarray.MapiConnectivityResult"
IMAPS_PORT = 993

register_view(STEP_TYPE, ("Scenario", "Result", "Latency", "Server", "Error"))
register_view(MAPI_TYPE, ("MailboxServer", "Database", "Result", "Latency", "Error"))


@dataclass(frozen=True)
class Step:
    """One step of a client's round trip: how it went, how long it took (ms; None when
    it didn't run), who answered and what was asked for."""

    scenario: str
    result: str
    latency: float | None
    server: str = ""
    endpoint: str = ""
    detail: str = ""
    error: str = ""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _skipped(after: str, endpoint: str = "") -> list[Step]:
    rest = OUTLOOK_STEPS[OUTLOOK_STEPS.index(after) + 1 :]
    return [Step(s, SKIPPED, None, endpoint=endpoint) for s in rest]


def _failed_at(exc: Exception) -> str:
    """The step a failure of open_mailbox belongs to."""
    from casarray.client.errors import CertificateRejected, ConnectFailed, LookupFailed

    if isinstance(exc, LookupFailed):
        return DNS
    if isinstance(exc, CertificateRejected):
        return TLS
    if isinstance(exc, ConnectFailed):
        return TLS if "TLS failed" in str(exc) else CONNECT
    return LOGON


def mailbox_steps(profile: Any, password: str, network: Any) -> list[Step]:
    """DNS, TCP connect, TLS, log on and list the inbox, through the name `profile.server`
    on its IMAP port, as the client does (referrals followed)."""
    from casarray.client.errors import ClientError
    from casarray.client.mailbox import open_mailbox

    name = profile.server
    steps: list[Step] = []
    started = time.perf_counter()
    try:
        addresses = network.resolver.addresses(name)
    except ClientError as exc:
        steps.append(
            Step(
                DNS,
                FAILURE,
                _ms(time.perf_counter() - started),
                network.resolver.describe(),
                name,
                error=exc.message,
            )
        )
        return steps + _skipped(DNS, name)
    steps.append(
        Step(
            DNS,
            SUCCESS,
            _ms(time.perf_counter() - started),
            network.resolver.describe(),
            name,
            detail=", ".join(addresses),
        )
    )
    started = time.perf_counter()
    try:
        session = open_mailbox(profile, password, network=network)
    except ClientError as exc:
        failed = _failed_at(exc)
        done = OUTLOOK_STEPS[OUTLOOK_STEPS.index(DNS) + 1 : OUTLOOK_STEPS.index(failed)]
        steps += [Step(s, SUCCESS, None, endpoint=name) for s in done]
        steps.append(
            Step(failed, FAILURE, _ms(time.perf_counter() - started), "", name, error=exc.message)
        )
        return steps + _skipped(failed, name)
    try:
        timings = session.timings
        answered = session.server or session.address
        referred = " -> ".join(r.host for r in session.referrals)
        steps.append(
            Step(CONNECT, SUCCESS, _ms(timings.get("connect", 0.0)), session.address, session.name)
        )
        steps.append(
            Step(
                TLS,
                SUCCESS,
                _ms(timings.get("tls", 0.0)),
                session.name,
                session.name,
                detail=f"certificate verified for {session.name}",
            )
        )
        logon = timings.get("greeting", 0.0) + timings.get("login", 0.0)
        steps.append(
            Step(
                LOGON,
                SUCCESS,
                _ms(logon),
                answered,
                session.name,
                detail=f"referred to {referred}" if referred else "",
            )
        )
        try:
            messages = session.list("INBOX")
        except ClientError as exc:
            steps.append(
                Step(
                    LIST_INBOX,
                    FAILURE,
                    _ms(session.timings.get("list", 0.0)),
                    answered,
                    "INBOX",
                    error=exc.message,
                )
            )
            return steps
        steps.append(
            Step(
                LIST_INBOX,
                SUCCESS,
                _ms(session.timings["list"]),
                answered,
                "INBOX",
                detail=f"{len(messages)} message{'' if len(messages) == 1 else 's'}",
            )
        )
        return steps
    finally:
        session.close()


def outlook_steps(
    address: str, password: str, network: Any, server: str | None = None
) -> list[Step]:
    """Test-OutlookConnectivity's steps: Autodiscover for `address` (through the lab's
    DNS and CA), then `mailbox_steps` to the name Autodiscover gave, or to `server`."""
    from urllib.parse import urlsplit

    from casarray.client.autodiscover import autodiscover
    from casarray.client.errors import ClientError
    from casarray.client.profile import Profile

    domain = address.rpartition("@")[2]
    started = time.perf_counter()
    try:
        result = autodiscover(address, password, network=network)
        profile = Profile.from_autodiscover(result, address=address)
    except ClientError as exc:
        step = Step(
            AUTODISCOVER,
            FAILURE,
            _ms(time.perf_counter() - started),
            "",
            f"autodiscover.{domain}",
            error=exc.message,
        )
        return [step, *_skipped(AUTODISCOVER)]
    first = Step(
        AUTODISCOVER,
        SUCCESS,
        _ms(time.perf_counter() - started),
        urlsplit(result.url).hostname or "",
        result.url,
        detail=f"Server {result.server} (found by {result.found_by})",
    )
    if server is not None:
        profile = profile.moved_to(server)
    return [first, *mailbox_steps(profile, password, network)]


def step_object(step: Step, mailbox: str, test_type: str) -> PSObject:
    return PSObject(
        {
            "Scenario": step.scenario,
            "Result": step.result,
            "Latency": step.latency,
            "Server": step.server,
            "ServiceEndpoint": step.endpoint,
            "Detail": step.detail,
            "Error": step.error,
            "Mailbox": mailbox,
            "RpcTestType": test_type,
        },
        type_name=STEP_TYPE,
        base=step,
        display=f"{step.scenario}: {step.result}",
    )


def _password(params: Mapping[str, Any]) -> str | None:
    value = params.get("Password")
    return value.reveal() if isinstance(value, SecureString) else None


def _network() -> Any:
    """The client's network: the lab's DNS server, CA and port offset
    ($CASARRAY_HOME/lab.json), else the system's and offset 0."""
    from casarray.client.network import Network

    return Network.configure()


@register
class TestOutlookConnectivity(Cmdlet):
    name = "Test-OutlookConnectivity"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="mailbox",
            help="The mailbox to test (with -Password); by default the test mailbox of the "
            "first mounted database.",
        ),
        Parameter(
            "Protocol",
            kind="enum",
            choices=("TCP",),
            help="TCP: the mailbox over the name Autodiscover gives (IMAP here, MAPI over "
            "RPC/TCP in Exchange). Outlook Anywhere (HTTP) isn't served.",
        ),
        Parameter(
            "RpcTestType",
            kind="enum",
            choices=("Server", "Array"),
            help="Array (default): through the name Autodiscover gives (the array, so DNS "
            "and the balancer). Server: through each Client Access server of the "
            "mailbox's site by its own name (or -RpcClientAccessServer), bypassing the "
            "balancer.",
        ),
        Parameter(
            "RpcClientAccessServer",
            kind="identity",
            identity_of="server",
            help="With -RpcTestType Server: only this Client Access server.",
        ),
        Parameter(
            "Password",
            kind="securestring",
            help="The mailbox's password: (ConvertTo-SecureString '...' -AsPlainText -Force).",
        ),
    )
    synopsis = "Tests Outlook's round trip: Autodiscover, DNS, connect, log on, list the inbox."
    description = (
        "Does what Outlook does for the mailbox, as a client on this machine (through the "
        "lab's DNS server and trusting the lab CA when $CASARRAY_HOME holds a lab): "
        "Autodiscover by e-mail address, then DNS for the server name it gives, a TCP "
        "connection, TLS verified for that name, the logon (referrals followed) and the "
        "inbox listed. One row per step: Result (Success, Failure, Skipped after a "
        "failure), Latency in milliseconds, and the Server that answered (the "
        "Autodiscover host, the DNS server, the address connected to, the name "
        "verified, the Client Access server that greeted). Without -Identity the "
        "database's test mailbox (extest_<database>) is used, its password set anew."
    )
    examples = (
        Example(
            "Test-OutlookConnectivity -Protocol TCP -Identity alice@lab.net -Password "
            "(ConvertTo-SecureString 'P@ssw0rd' -AsPlainText -Force)",
            "Tests alice's round trip through the array.",
        ),
        Example(
            "Test-OutlookConnectivity -Protocol TCP -RpcTestType Server",
            "Tests the test mailbox through each Client Access server of its site.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        from casarray.diagnostics.connectivity import connectivity_mailbox
        from casarray.directory.endpoints import preferred_endpoint
        from casarray.directory.objects import Mailbox, ServerRole

        test_type = params.get("RpcTestType") or "Array"
        identity = params.get("Identity")
        password = _password(params)
        if identity is not None:
            if password is None:
                raise ShellRuntimeError(
                    "Give the mailbox's password with -Password (ConvertTo-SecureString "
                    "'...' -AsPlainText -Force), or leave out -Identity to use a test "
                    "mailbox.",
                    category="InvalidArgument",
                )
            mailbox = self.directory.mailboxes.one(identity_arg(identity, Mailbox))
        else:
            mounted = [db for db in self.directory.databases.get() if db.mounted]
            if not mounted:
                raise ShellRuntimeError(
                    "No mailbox database is mounted, so there is no test mailbox: mount one "
                    "(Mount-Database) or name a mailbox with -Identity.",
                    category="ResourceUnavailable",
                )
            mailbox, password = connectivity_mailbox(self.directory, mounted[0])
        assert password is not None
        servers: list[str | None] = [None]
        if test_type == "Server":
            if params.get("RpcClientAccessServer") is not None:
                chosen = self.directory.servers.one(
                    identity_arg(params["RpcClientAccessServer"], Server)
                )
                servers = [chosen.fqdn]
            else:
                site = preferred_endpoint(self.directory, mailbox.guid).site
                servers = [
                    s.fqdn
                    for s in self.directory.servers.get(site=site, role=ServerRole.ClientAccess)
                ]
        network = _network()
        for server in servers:
            for step in outlook_steps(mailbox.primary_smtp_address, password, network, server):
                yield step_object(step, mailbox.primary_smtp_address, test_type)


def mapi_object(database: Any, mailbox: str, steps: list[Step], endpoint: str) -> PSObject:
    failed = next((s for s in steps if s.result == FAILURE), None)
    answered = next((s.server for s in steps if s.scenario == LOGON and s.server), "")
    latency = round(sum(s.latency or 0.0 for s in steps), 1)
    return PSObject(
        {
            "MailboxServer": database.server,
            "Database": database.name,
            "Result": FAILURE if failed else SUCCESS,
            "Latency": latency,
            "Error": f"{failed.scenario}: {failed.error}" if failed else "",
            "Mailbox": mailbox,
            "Endpoint": endpoint,
            "Server": answered,
            "Steps": [f"{s.scenario} {s.result}" for s in steps],
        },
        type_name=MAPI_TYPE,
        base=database,
        display=f"{database.name}: {FAILURE if failed else SUCCESS}",
    )


@register
class TestMAPIConnectivity(Cmdlet):
    name = "Test-MAPIConnectivity"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            from_pipeline=True,
            identity_of="mailbox",
            help="A mailbox to log on to (with -Password).",
        ),
        Parameter(
            "Database",
            kind="identity",
            identity_of="database",
            help="A database: log on to its test mailbox.",
        ),
        Parameter(
            "Server",
            kind="identity",
            identity_of="server",
            help="A Mailbox server: every database on it.",
        ),
        Parameter(
            "Password",
            kind="securestring",
            help="With -Identity, the mailbox's password.",
        ),
    )
    synopsis = "Logs on to mailboxes through their endpoint and lists the inbox."
    description = (
        "Exchange's check of the store, through the way users reach it: for the mailbox "
        "(-Identity, with -Password), or the test mailbox (extest_<database>, made on "
        "first use, its password set anew each time) of a database (-Database), of each "
        "database on a Mailbox server (-Server) or of every database, it resolves the "
        "database's preferred endpoint (its RpcClientAccessServer, the array) through "
        "the lab's DNS, connects over IMAP with TLS, logs on (referrals followed) and "
        "lists the inbox. One object per database: MailboxServer, Database, Result, "
        "Latency (ms), Error (the step that failed and why)."
    )
    examples = (
        Example("Test-MAPIConnectivity", "Tests every database."),
        Example("Test-MAPIConnectivity -Database DB01", "Tests DB01 through its endpoint."),
        Example(
            "Test-MAPIConnectivity -Identity alice@lab.net -Password (ConvertTo-SecureString "
            "'P@ssw0rd' -AsPlainText -Force)",
            "Tests alice's mailbox.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        from casarray.diagnostics.connectivity import connectivity_mailbox
        from casarray.directory.endpoints import database_endpoint
        from casarray.directory.objects import Mailbox, MailboxDatabase

        given = [p for p in ("Identity", "Database", "Server") if params.get(p) is not None]
        if len(given) > 1:
            raise ShellRuntimeError(
                "Parameter set cannot be resolved: give one of -Identity, -Database and "
                f"-Server, not {' and '.join('-' + p for p in given)}.",
                category="InvalidArgument",
            )
        password = _password(params)
        if params.get("Identity") is not None:
            if password is None:
                raise ShellRuntimeError(
                    "Give the mailbox's password with -Password (ConvertTo-SecureString "
                    "'...' -AsPlainText -Force), or test its database (-Database).",
                    category="InvalidArgument",
                )
            mailbox = self.directory.mailboxes.one(identity_arg(params["Identity"], Mailbox))
            targets: list[tuple[Any, Any, str | None]] = [
                (self.directory.databases.one(mailbox.database), mailbox, password)
            ]
        else:
            if params.get("Database") is not None:
                databases = [
                    self.directory.databases.one(identity_arg(params["Database"], MailboxDatabase))
                ]
            elif params.get("Server") is not None:
                databases = self.directory.databases.get(
                    server=identity_arg(params["Server"], Server)
                )
            else:
                databases = self.directory.databases.get()
            targets = []
            for database in databases:
                if not database.mounted:
                    targets.append((database, None, None))
                    continue
                made, made_password = connectivity_mailbox(self.directory, database)
                targets.append((database, made, made_password))
        network = _network()
        for database, mailbox, secret in targets:
            if mailbox is None or secret is None:
                step = Step(
                    LOGON,
                    FAILURE,
                    None,
                    error=f"the database {database.name} is dismounted (Mount-Database)",
                )
                yield mapi_object(database, "", [step], "")
                continue
            endpoint = database_endpoint(self.directory, database.guid)
            profile = _imap_profile(mailbox, endpoint, network)
            steps = mailbox_steps(profile, secret, network)
            yield mapi_object(database, mailbox.primary_smtp_address, steps, endpoint.fqdn)


def _imap_profile(mailbox: Any, endpoint: Any, network: Any) -> Any:
    """The client profile Autodiscover would give `mailbox`: its endpoint's name, IMAP
    with TLS on 993 (plus the lab's port offset)."""
    from casarray.client.profile import Profile

    return Profile(
        address=mailbox.primary_smtp_address,
        display_name=mailbox.display_name,
        server=endpoint.fqdn,
        server_dn=endpoint.server_dn,
        mdb_dn=endpoint.mdb_dn,
        legacy_dn=mailbox.exchange_legacy_dn,
        imap_port=IMAPS_PORT + network.port_offset,
        imap_encryption="SSL",
        login_name=mailbox.primary_smtp_address,
        smtp_server=None,
        smtp_port=None,
        owa_url=None,
        autodiscover_url="",
    )
