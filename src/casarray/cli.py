"""The `casarray` command. Sub-commands import only what they need, so that a short
command starts fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from casarray import __version__


def _add_directory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--directory",
        metavar="URL",
        help="directory database: sqlite:///FILE, a file path, or postgresql+psycopg://... "
        "(default: $CASARRAY_DIRECTORY, else $CASARRAY_HOME/directory.db)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casarray",
        description="The Exchange 2010 client access tier: CAS arrays behind one name.",
    )
    parser.add_argument("--version", action="version", version=f"casarray {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    directory = commands.add_parser("directory", help="the topology store (Active Directory)")
    dir_commands = directory.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = dir_commands.add_parser("upgrade", help="bring the schema to the newest revision")
    _add_directory_option(upgrade)
    init = dir_commands.add_parser("init", help="create an empty organization")
    _add_directory_option(init)
    init.add_argument("--organization", default="Lab", help="organization name (default Lab)")
    init.add_argument("--domain", default="lab.net", help="first accepted domain (lab.net)")
    show = dir_commands.add_parser("show", help="print the organization's topology")
    _add_directory_option(show)

    shell = commands.add_parser(
        "shell",
        help="the Exchange Management Shell (PowerShell syntax)",
        description="Run cmdlets: interactively, with -c, from a script file, or from "
        "standard input. Exits 1 when any command wrote an error.",
    )
    _add_directory_option(shell)
    shell.add_argument(
        "-c", "--command", dest="command_text", metavar="COMMANDS", help="run COMMANDS and exit"
    )
    shell.add_argument("file", nargs="?", metavar="FILE.ps1", help="run a script file")

    server = commands.add_parser("server", help="run the access services of a Client Access server")
    server_commands = server.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = server_commands.add_parser(
        "run",
        help="serve IMAP (143, 993) and HTTP (80, 443) on the server's address until SIGTERM",
        description="Serve IMAP on the server's address from the directory: 143 (STARTTLS) "
        "and 993 (TLS), and HTTP on 80 and 443 (Autodiscover, autoconfig, health checks, "
        "web mail, the JSON API); each plus 10000 when the process may not bind ports "
        "below 1024.",
    )
    run.add_argument("name", metavar="SERVER", help="the Client Access server, e.g. CAS01")
    _add_directory_option(run)
    run.add_argument(
        "--port-offset",
        type=int,
        metavar="N",
        help="listen on 143+N, 993+N, 80+N and 443+N (default: 0, or 10000 when ports "
        "below 1024 can't be bound)",
    )
    run.add_argument("--imap-port", type=int, metavar="PORT", help="IMAP STARTTLS port (0: any)")
    run.add_argument("--imaps-port", type=int, metavar="PORT", help="IMAP TLS port (0: any)")
    run.add_argument("--http-port", type=int, metavar="PORT", help="HTTP port (0: any)")
    run.add_argument("--https-port", type=int, metavar="PORT", help="HTTPS port (0: any)")
    run.add_argument(
        "--processes",
        type=_positive_int,
        metavar="N",
        help="worker processes sharing the ports (default: one per CPU; 1: no supervisor)",
    )
    run.add_argument(
        "--threads",
        "--workers",  # its name before 0.2, still accepted
        dest="threads",
        type=int,
        default=16,
        metavar="N",
        help="threads per process for the mailbox databases (default 16)",
    )
    run.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    run.add_argument("--log-file", metavar="FILE", help="log here instead of to stderr")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    run.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")
    run.add_argument(
        "--allow-plaintext-login",
        action="store_true",
        help="allow LOGIN before STARTTLS (for benchmarks on loopback; never in production)",
    )

    transport = commands.add_parser("transport", help="run the Hub Transport role of a server")
    transport_commands = transport.add_subparsers(
        dest="transport_command", metavar="ACTION", required=True
    )
    trun = transport_commands.add_parser(
        "run",
        help="receive SMTP (25, 587) and deliver into the mailbox databases until SIGTERM",
        description="Serve the server's enabled receive connectors (Default SERVER on 25, "
        "Client SERVER on 587) on its address, queue what they accept durably and deliver "
        "it into the recipients' mailboxes. Ports are the connectors' own, or each plus "
        "10000 when the process may not bind ports below 1024.",
    )
    trun.add_argument("name", metavar="SERVER", help="the Hub Transport server, e.g. MBX01")
    _add_directory_option(trun)
    trun.add_argument(
        "--port-offset", type=int, metavar="N", help="listen on each connector's port plus N"
    )
    trun.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="PORT=ACTUAL",
        help="listen for the connectors of PORT on ACTUAL (0: any free port); repeatable",
    )
    trun.add_argument("--queue", metavar="URL", help="the queue store (default: a SQLite file)")
    trun.add_argument("--log-file", metavar="FILE", help="log here instead of to stderr")
    trun.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    trun.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")

    balancer = commands.add_parser("balancer", help="run an NLB cluster's load balancer")
    balancer_commands = balancer.add_subparsers(dest="balancer_command", required=True)
    brun = balancer_commands.add_parser(
        "run",
        help="balance a cluster's port rules over its nodes until SIGTERM",
        description="Run the load balancer of an NLB cluster from the directory (New-NlbCluster): "
        "health probes per node and port rule, and the data plane (Kernel: nftables, "
        "Proxy: asyncio, HAProxy), kept in step with the directory within a second.",
    )
    brun.add_argument("cluster", metavar="CLUSTER", help="the cluster's name, e.g. bj-cas.lab.net")
    _add_directory_option(brun)
    brun.add_argument(
        "--engine",
        choices=("Kernel", "Proxy", "HAProxy"),
        type=lambda v: {"kernel": "Kernel", "proxy": "Proxy", "haproxy": "HAProxy"}.get(
            v.lower(), v
        ),
        help="the data plane (default: the cluster's -DataPlane; Auto is Kernel as root)",
    )
    brun.add_argument("--listen-offset", type=int, metavar="N", help="cluster ports + N")
    brun.add_argument("--backend-offset", type=int, metavar="N", help="node ports + N")
    brun.add_argument("--log-file", metavar="FILE", help="log here instead of to stderr")
    brun.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    brun.add_argument(
        "--vrrp-rank",
        type=int,
        metavar="N",
        help="one host of an HAProxy pair sharing the cluster IP with keepalived "
        "(0: the preferred one)",
    )
    brun.add_argument("--vrrp-interface", default="eth0", metavar="IF", help="the address's")
    brun.add_argument(
        "--vrrp-peer", action="append", default=[], metavar="IP", help="the pair's other host"
    )
    brun.add_argument("--vrrp-source", metavar="IP", help="this host's own address")
    brun.add_argument("--vrrp-advert", type=float, default=1.0, metavar="S", help="seconds")

    dns_parser = commands.add_parser("dns", help="run the authoritative DNS server")
    dns_commands = dns_parser.add_subparsers(dest="dns_command", metavar="ACTION", required=True)
    drun = dns_commands.add_parser(
        "run",
        help="serve the directory's zones over UDP and TCP until SIGTERM",
        description="Serve the zones of the directory (two views: inside the site subnets "
        "and outside) on the DNS server's address, port 53, or 10053 when the process may "
        "not bind ports below 1024; kept in step with the directory within a second.",
    )
    _add_directory_option(drun)
    drun.add_argument(
        "--address", metavar="IP", help="listen here (default: the directory's, 127.77.0.53)"
    )
    drun.add_argument(
        "--port-offset",
        type=int,
        metavar="N",
        help="listen on 53+N (default: 0, or 10000 when port 53 can't be bound)",
    )
    drun.add_argument("--port", type=int, metavar="PORT", help="listen on PORT (0: any free one)")
    drun.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="processes sharing the port with SO_REUSEPORT (default 1)",
    )
    drun.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set for the workers
    drun.add_argument("--log-file", metavar="FILE", help="log here instead of to stderr")
    drun.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    drun.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop")

    mailbox = commands.add_parser("mailbox", help="run the Mailbox role of a server")
    mailbox_commands = mailbox.add_subparsers(
        dest="mailbox_command", metavar="ACTION", required=True
    )
    mrun = mailbox_commands.add_parser(
        "run",
        help="hold the server's mailbox databases mounted until SIGTERM",
        description="Mount the Mailbox server's databases, check their stores, checkpoint "
        "them now and then, and dismount them at a clean stop (SIGTERM); kill -9 leaves them "
        "mounted, as a crashed store would.",
    )
    mrun.add_argument("name", metavar="SERVER", help="the Mailbox server, e.g. MBX01")
    _add_directory_option(mrun)
    mrun.add_argument("--log-file", metavar="FILE", help="log here instead of to stderr")
    mrun.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    pki = commands.add_parser("pki", help="the lab certificate authority")
    pki_commands = pki.add_subparsers(dest="pki_command", metavar="ACTION", required=True)
    sign = pki_commands.add_parser(
        "sign",
        help="issue a certificate for a PKCS #10 request (as Get-LabCertificate)",
        description="Sign REQUEST (PEM or DER, e.g. from New-ExchangeCertificate "
        "-GenerateRequest -RequestFile) with the lab CA, made on first use in "
        "$CASARRAY_HOME/pki/ca; print the certificate (PEM) or write it to FILE.",
    )
    sign.add_argument("request", metavar="REQUEST", help="the request file")
    sign.add_argument("--out", metavar="FILE", help="write the certificate here")
    pki_commands.add_parser(
        "root",
        help="print the path of the lab CA's root certificate (made on first use)",
    )

    from casarray.client.client_command import add_parser as add_client_parser

    add_client_parser(commands)

    from casarray.lab.lab_command import add_parser as add_lab_parser

    add_lab_parser(commands)
    return parser


def _directory_command(args: argparse.Namespace) -> int:
    from casarray.config import directory_url
    from casarray.directory import Directory, migrate
    from casarray.directory.store import Store

    url = directory_url(args.directory)
    if args.action == "upgrade":
        store = Store(url)
        before = migrate.current_revision(store)
        migrate.upgrade(store)
        after = migrate.current_revision(store)
        store.dispose()
        if before == after:
            print(f"The directory is at the newest schema revision ({after}).")
        else:
            print(f"Upgraded the directory schema from {before or 'empty'} to {after}.")
        with Directory.open(url):
            pass
        return 0
    if args.action == "init":
        with Directory.open(url, organization=args.organization, domain=args.domain) as d:
            org = d.organization()
            print(f"Organization '{org.name}' ({org.default_domain}) at {url}")
        return 0
    if args.action == "show":
        from casarray.report import print_topology

        with Directory.open(url) as d:
            print_topology(d)
        return 0
    raise AssertionError(args.action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from casarray.errors import CasarrayError

    try:
        if args.command == "directory":
            return _directory_command(args)
        if args.command == "shell":
            from casarray.shell.shell_command import run

            return run(args.directory, args.command_text, args.file)
        if args.command == "server":
            from casarray.access.cas_master import default_processes
            from casarray.access.cas_master import run as run_server
            from casarray.access.cas_process import RunOptions

            return run_server(
                RunOptions(
                    server=args.name,
                    directory=args.directory,
                    port_offset=args.port_offset,
                    imap_port=args.imap_port,
                    imaps_port=args.imaps_port,
                    http_port=args.http_port,
                    https_port=args.https_port,
                    processes=args.processes or default_processes(),
                    worker_index=args.worker,
                    threads=args.threads,
                    use_uvloop=not args.no_uvloop,
                    allow_plaintext_login=args.allow_plaintext_login,
                    log_file=args.log_file,
                    log_level=args.log_level,
                )
            )
        if args.command == "transport":
            from casarray.transport.transport_process import (
                TransportOptions,
                parse_port_map,
            )
            from casarray.transport.transport_process import run as run_transport

            try:
                ports = parse_port_map(args.port)
            except ValueError as exc:
                parser.error(str(exc))
            return run_transport(
                TransportOptions(
                    server=args.name,
                    directory=args.directory,
                    port_offset=args.port_offset,
                    ports=ports,
                    queue=args.queue,
                    use_uvloop=not args.no_uvloop,
                    log_file=args.log_file,
                    log_level=args.log_level,
                )
            )
        if args.command == "balancer":
            from casarray.balancer.balancer_process import BalancerOptions
            from casarray.balancer.balancer_process import run as run_balancer

            return run_balancer(
                BalancerOptions(
                    cluster=args.cluster,
                    directory=args.directory,
                    engine=args.engine,
                    listen_offset=args.listen_offset,
                    backend_offset=args.backend_offset,
                    log_file=args.log_file,
                    log_level=args.log_level,
                    vrrp_rank=args.vrrp_rank,
                    vrrp_interface=args.vrrp_interface,
                    vrrp_peers=tuple(args.vrrp_peer),
                    vrrp_source=args.vrrp_source,
                    vrrp_advert=args.vrrp_advert,
                )
            )
        if args.command == "dns":
            from casarray.dns.dns_process import DnsOptions
            from casarray.dns.dns_process import run as run_dns

            return run_dns(
                DnsOptions(
                    directory=args.directory,
                    address=args.address,
                    port_offset=args.port_offset,
                    port=args.port,
                    processes=args.processes,
                    worker_index=args.worker,
                    use_uvloop=not args.no_uvloop,
                    log_file=args.log_file,
                    log_level=args.log_level,
                )
            )
        if args.command == "pki":
            from casarray.pki.command import run as run_pki

            return run_pki(
                args.pki_command, getattr(args, "request", None), getattr(args, "out", None)
            )
        if args.command == "client":
            from casarray.client.client_command import run as run_client

            return run_client(args)
        if args.command == "lab":
            from casarray.lab.lab_command import run as run_lab

            return run_lab(args)
        if args.command == "mailbox":
            from casarray.mailstore.mailbox_process import MailboxOptions
            from casarray.mailstore.mailbox_process import run as run_mailbox

            return run_mailbox(
                MailboxOptions(
                    server=args.name,
                    directory=args.directory,
                    log_file=args.log_file,
                    log_level=args.log_level,
                )
            )
    except CasarrayError as exc:
        print(f"casarray: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2
