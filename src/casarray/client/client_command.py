"""`casarray client ...`: an Outlook-like client on the command line.

    casarray client profile new alice@lab.net        Autodiscover, then keep the profile
    casarray client profile show [alice@lab.net]
    casarray client mail [alice@lab.net] [--folder NAME] [--count N] [--watch]

The password comes from --password, else CASARRAY_PASSWORD, else the one saved with
`profile new --save-password`, else a prompt (`profile` module doc). The network
(DNS server, CA, port offset) from the options, else from the profile, else the
lab's, else the system's (`network` module doc).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from casarray.client.mailbox import Message
    from casarray.client.network import Network
    from casarray.client.profile import Profile, ProfileStore
    from casarray.client.watch import Event

PASSWORD_VARIABLE = "CASARRAY_PASSWORD"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text!r}")
    return int(text)


def _dns(text: str) -> str:
    from casarray.client.resolver import parse_server

    try:
        parse_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password", help=f"the password (default: ${PASSWORD_VARIABLE}, "
                        "the saved one, or a prompt)")  # fmt: skip
    parser.add_argument(
        "--dns", type=_dns, metavar="IP[:PORT]", help="ask this DNS server (default: the lab's)"
    )
    parser.add_argument(
        "--ca", metavar="FILE", help="trust this CA (PEM) (default: the lab CA's root)"
    )
    parser.add_argument(
        "--port-offset",
        type=int,
        metavar="N",
        help="the servers listen on the standard ports plus N (default: the lab's, else 0)",
    )


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `client` to the `casarray` command's sub-commands."""
    client = commands.add_parser(
        "client",
        help="an Outlook-like client: Autodiscover profiles, the mailbox over IMAP",
        description="Make a profile by Autodiscover, as Outlook does, and read the mailbox "
        "through the server name it gives, following referrals and reconnecting when the "
        "server goes away.",
    )
    client_commands = client.add_subparsers(dest="client_command", metavar="ACTION", required=True)
    profile = client_commands.add_parser("profile", help="make or show a profile")
    profile_commands = profile.add_subparsers(
        dest="profile_command", metavar="ACTION", required=True
    )
    new = profile_commands.add_parser(
        "new",
        help="run Autodiscover for an address and keep the profile",
        description="Find the Autodiscover service of the address's domain (the SRV record "
        "_autodiscover._tcp.<domain>, then autodiscover.<domain>), ask it for the account's "
        "settings over HTTPS, and keep them as the address's profile (the default one).",
    )
    new.add_argument("address", metavar="ADDRESS", help="the e-mail address, e.g. alice@lab.net")
    _network_options(new)
    new.add_argument(
        "--save-password",
        action="store_true",
        help="keep the password beside the profile (in clear, mode 0600)",
    )
    show = profile_commands.add_parser("show", help="print a profile")
    show.add_argument("address", nargs="?", metavar="ADDRESS", help="default: the default profile")
    show.add_argument(
        "--forget-password", action="store_true", help="remove the saved password too"
    )

    mail = client_commands.add_parser(
        "mail",
        help="list a folder's messages through the profile's server",
        description="Connect to the profile's server name (looked up in the lab's DNS, its "
        "certificate verified), follow a referral by updating the profile, and list the "
        "folder. With --watch, stay connected: print new messages, reconnect when the "
        "connection breaks (saying to which server and after how long), and follow a "
        "change of server that Autodiscover announces.",
    )
    mail.add_argument("address", nargs="?", metavar="ADDRESS", help="default: the default profile")
    mail.add_argument("--folder", default="INBOX", metavar="NAME", help="default INBOX")
    mail.add_argument("--count", type=_count, metavar="N", help="only the last N messages")
    mail.add_argument("--watch", action="store_true", help="stay connected until Ctrl-C")
    mail.add_argument(
        "--poll", type=_seconds, default=1.0, metavar="SECONDS",
        help="with --watch: ask for new messages this often (default 1)",
    )  # fmt: skip
    mail.add_argument(
        "--refresh", type=_seconds, default=10.0, metavar="SECONDS",
        help="with --watch: ask Autodiscover again this often (default 10; Outlook: 3600)",
    )  # fmt: skip
    _network_options(mail)


# -- output ------------------------------------------------------------------------------


def _say(text: str, out: TextIO) -> None:
    print(text, file=out, flush=True)


def _stamp() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


def profile_lines(profile: Profile, path: str | None = None) -> list[str]:
    """The profile as a list of "Name : value" lines (PowerShell's Format-List)."""
    network = [
        f"DNS {profile.dns}" if profile.dns else "",
        f"CA {profile.ca_file}" if profile.ca_file else "",
        f"port offset {profile.port_offset}" if profile.port_offset is not None else "",
    ]
    rows = [
        ("Address", profile.address),
        ("DisplayName", profile.display_name),
        ("Server", profile.server),
        ("ServerDN", profile.server_dn),
        ("MdbDN", profile.mdb_dn),
        ("IMAP", f"{profile.server} port {profile.imap_port}, {profile.imap_encryption}, "
                 f"login {profile.login_name}"),
        ("SMTP", f"{profile.smtp_server} port {profile.smtp_port}" if profile.smtp_server else ""),
        ("OWAUrl", profile.owa_url or ""),
        ("Autodiscover", profile.autodiscover_url),
        ("Network", ", ".join(n for n in network if n) or "the lab's, or the system's"),
        ("Updated", profile.updated),
        ("Path", path or ""),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return [f"{name.ljust(width)} : {value}" for name, value in rows if value]


def message_lines(messages: list[Message]) -> list[str]:
    """Messages as aligned columns: UID, date, sender, subject."""
    lines = [f"{'UID':>5}  {'Date':<16}  {'From':<30}  Subject"]
    for m in messages:
        date = m.date.strftime("%Y-%m-%d %H:%M") if m.date else ""
        sender = m.sender if len(m.sender) <= 30 else m.sender[:29] + "…"
        mark = " " if m.seen else "*"
        lines.append(f"{m.uid:>5}{mark} {date:<16}  {sender:<30}  {m.subject}")
    return lines


def change_lines(old: Profile, new: Profile, why: str) -> list[str]:
    """What the user is told when the server of the profile changed (Outlook says "The
    Microsoft Exchange administrator has made a change that requires you quit and
    restart Outlook")."""
    how = (
        f"{old.server} referred the login to {new.server}"
        if why == "referral"
        else f"Autodiscover now names {new.server}"
    )
    return [
        f"Your Exchange administrator moved the mailbox {new.address} to another server: {how}.",
        f"The profile now uses {new.server} (it used {old.server}); the client reconnects "
        "there by itself, there is nothing to restart.",
    ]


# -- commands ------------------------------------------------------------------------------


def _password(args: argparse.Namespace, store: ProfileStore, address: str) -> str:
    from casarray.client.errors import ClientError

    if args.password is not None:
        return str(args.password)
    if os.environ.get(PASSWORD_VARIABLE):
        return os.environ[PASSWORD_VARIABLE]
    saved = store.saved_password(address)
    if saved is not None:
        return saved
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"Password for {address}: ")
    raise ClientError(
        f"no password for {address}: give --password, set {PASSWORD_VARIABLE}, "
        "or keep it with 'profile new --save-password'"
    )


def _network(args: argparse.Namespace, profile: Profile | None = None) -> Network:
    """The options given, else what the profile was made with (else the lab's)."""
    from casarray.client.errors import ClientError
    from casarray.client.network import Network

    dns, ca, offset = args.dns, args.ca, args.port_offset
    if profile is not None:
        dns = dns if dns is not None else profile.dns
        ca = ca if ca is not None else profile.ca_file
        offset = offset if offset is not None else profile.port_offset
    try:
        return Network.configure(dns=dns, cafile=ca, port_offset=offset)
    except ValueError as exc:  # a DNS server saved in a profile edited by hand
        raise ClientError(f"the DNS server of the profile is not valid: {exc}") from None


def _profile_new(args: argparse.Namespace, out: TextIO) -> int:
    from casarray.client.autodiscover import autodiscover
    from casarray.client.profile import Profile, ProfileStore, check_address

    store = ProfileStore()
    address = check_address(args.address)
    network = _network(args)
    password = _password(args, store, address)
    ca = os.path.abspath(args.ca) if args.ca else None
    result = autodiscover(address, password, network=network)
    profile = Profile.from_autodiscover(
        result, address=address, dns=args.dns, ca_file=ca, port_offset=args.port_offset
    )
    for attempt in result.attempts[:-1]:
        _say(f"Autodiscover: {attempt.url} ({attempt.found_by}): {attempt.outcome}", out)
    last = result.attempts[-1]
    _say(f"Autodiscover: {result.url} ({result.found_by}) answered in {last.seconds:.2f} s.", out)
    path = store.save(profile, make_default=True)
    if args.save_password:
        saved = store.save_password(address, password)
        _say(f"The password is kept in {saved} (mode 0600).", out)
    _say(f"Profile of {address} saved.", out)
    _say("", out)
    for line in profile_lines(profile, str(path)):
        _say(line, out)
    return 0


def _profile_show(args: argparse.Namespace, out: TextIO) -> int:
    from casarray.client.profile import ProfileStore

    store = ProfileStore()
    profile = store.load(args.address)
    for line in profile_lines(profile, str(store.path(profile.address))):
        _say(line, out)
    if args.forget_password:
        if store.forget_password(profile.address):
            _say(f"The saved password of {profile.address} is removed.", out)
        else:
            _say(f"No password of {profile.address} was saved.", out)
    return 0


def _mail(args: argparse.Namespace, out: TextIO) -> int:
    from casarray.client.profile import ProfileStore
    from casarray.client.watch import connect

    store = ProfileStore()
    profile = store.load(args.address)
    network = _network(args, profile)
    password = _password(args, store, profile.address)
    if args.watch:
        return _watch(args, store, profile, password, network, out)
    session, change = connect(profile, password, network=network)
    with session:
        if change is not None:
            store.save(change.new)
            for line in change_lines(change.old, change.new, change.why):
                _say(line, out)
        messages = session.list(args.folder, args.count)
        _say(f"Connected to {session.name} ({session.address}): "
             f"{session.server or 'the server'} answered.", out)  # fmt: skip
        noun = "message" if session.exists == 1 else "messages"
        _say(f"{args.folder} of {profile.address}: {session.exists} {noun}", out)
        if messages:
            for line in message_lines(messages):
                _say(line, out)
    return 0


def _describe(event: Event) -> list[str]:
    from casarray.client.watch import Connected, Listed, Lost, NewMail, ProfileChanged, Retrying

    if isinstance(event, Connected):
        answered = f"{event.server or 'the server'} answered"
        if event.outage is None:
            return [f"Connected to {event.name} ({event.address}): {answered}; "
                    f"{event.folder} has {event.exists} messages."]  # fmt: skip
        return [f"Reconnected to {event.name} ({event.address}) after {event.outage:.2f} s: "
                f"{answered}."]  # fmt: skip
    if isinstance(event, Listed):
        return message_lines(event.messages) if event.messages else []
    if isinstance(event, NewMail):
        return [
            f"New message in {event.folder}: {m.uid}  {m.sender}  {m.subject}"
            for m in event.messages
        ]
    if isinstance(event, Lost):
        by = f" ({event.server})" if event.server else ""
        return [f"Lost the connection to {event.name}{by}: {event.reason}. Reconnecting."]
    if isinstance(event, Retrying):
        return [f"Can't connect to {event.name} (attempt {event.attempt}): {event.reason}; "
                f"trying again in {event.delay:.2f} s."]  # fmt: skip
    if isinstance(event, ProfileChanged):
        return change_lines(event.old, event.new, event.why)
    raise TypeError(event)


def _watch(
    args: argparse.Namespace,
    store: ProfileStore,
    profile: Profile,
    password: str,
    network: Network,
    out: TextIO,
) -> int:
    from casarray.client.watch import ProfileChanged, watch

    _say(f"Watching {args.folder} of {profile.address} through {profile.server}; "
         "Ctrl-C stops.", out)  # fmt: skip
    events = watch(
        profile, password, network=network, folder=args.folder, count=args.count,
        poll=args.poll, refresh=args.refresh,
    )  # fmt: skip
    try:
        for event in events:
            if isinstance(event, ProfileChanged):
                store.save(event.new)
            for line in _describe(event):
                _say(f"[{_stamp()}] {line}", out)
    finally:
        events.close()
    return 0


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a `casarray client` command; 1 (and a message on stderr) when it fails."""
    from casarray.client.errors import ClientError

    out = out or sys.stdout
    try:
        if args.client_command == "profile":
            if args.profile_command == "new":
                return _profile_new(args, out)
            return _profile_show(args, out)
        if args.client_command == "mail":
            return _mail(args, out)
    except ClientError as exc:
        print(f"casarray client: {exc.message}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.client_command)
