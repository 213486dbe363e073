"""How a cmdlet is declared, and the registry of cmdlets. A cmdlet is a class with its
name, its parameters (as Exchange documents them), help text and examples; the runtime
binds parameters and calls `begin`, then `process` once per pipeline input (once with
no input), then `end`. Cmdlets stay thin: they call the directory (or other services)
and yield objects. `@register` makes a cmdlet callable by name; `load_commands`
imports the modules of `CMDLET_MODULES`, whose cmdlets register themselves.

    @register
    class GetClientAccessArray(Cmdlet):
        name = "Get-ClientAccessArray"
        parameters = (Parameter("Identity", position=0, from_pipeline=True,
                                identity_of="array"),
                      Parameter("Site", identity_of="site"))
        def process(self, params):
            yield from ...
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.shell.binding import Invocation
    from casarray.shell.runtime import Session

# Parameter kinds the binder converts to:
#   "string", "int", "bool", "switch", "strings" (string[]), "enum" (one of `choices`),
#   "enums" (several of `choices`), "identity" (a name/FQDN/GUID/DN string or the
#   object itself), "identities", "securestring", "scriptblock", "object", "objects",
#   "hashtable", "datetime", "ipaddress", "bytes" (number with KB/MB/GB suffixes)
KINDS = frozenset(
    {
        "string",
        "int",
        "bool",
        "switch",
        "strings",
        "enum",
        "enums",
        "identity",
        "identities",
        "securestring",
        "scriptblock",
        "object",
        "objects",
        "hashtable",
        "datetime",
        "ipaddress",
        "bytes",
    }
)


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str = "string"
    mandatory: bool = False
    position: int | None = None
    from_pipeline: bool = False
    from_pipeline_by_name: bool = False
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    identity_of: str | None = None  # site, subnet, server, array, database, mailbox
    help: str = ""
    remaining: bool = False  # ValueFromRemainingArguments: extra positionals collect here

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class Example:
    code: str
    remarks: str


class StopUpstream(Exception):
    """Raised by a cmdlet's process() when it needs no more input (Select-Object
    -First): the runtime stops the commands before it, then runs this one's end()."""


class Cmdlet:
    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    synopsis: ClassVar[str] = ""
    description: ClassVar[str] = ""
    examples: ClassVar[tuple[Example, ...]] = ()
    supports_should_process: ClassVar[bool] = False
    confirm_impact: ClassVar[str] = "Medium"  # "High": asks for confirmation by default
    noun_for_what_if: ClassVar[str] = ""

    def __init__(self, session: Session, invocation: Invocation | None = None) -> None:
        self.session = session
        self.invocation = invocation

    # -- the three blocks; each may yield output objects ---------------------

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        return ()

    def end(self) -> Iterable[Any]:
        return ()

    # -- services the runtime provides ----------------------------------------

    @property
    def directory(self) -> Directory:
        return self.session.directory

    def should_process(self, target: str, operation: str | None = None) -> bool:
        """True when the change may go ahead: False under -WhatIf (after printing the
        What if: line) or when the user answers No at the -Confirm prompt."""
        return self.session.should_process(self, target, operation or self.name)

    def write_warning(self, message: str) -> None:
        self.session.write_warning(message)

    def write_verbose(self, message: str) -> None:
        self.session.write_verbose(message)

    def write_error(self, exc: Exception) -> None:
        """Report a non-terminating error (as an exception raised from process() is):
        -ErrorAction and -ErrorVariable apply; under -ErrorAction Stop it terminates."""
        self.session.cmdlet_error(self, exc, terminating=False)

    def terminate(self, exc: Exception) -> Exception:
        """An exception that stops the whole command with `exc`'s error: `raise
        self.terminate(exc)`."""
        return self.session.terminating_error(self, exc)

    def stopped(self) -> None:
        """Called instead of end() when the pipeline stops early (a terminating error
        elsewhere, Ctrl+C): finish what was acknowledged, write nothing new."""


COMMANDS: dict[str, type[Cmdlet]] = {}


def register(cls: type[Cmdlet]) -> type[Cmdlet]:
    """Class decorator: make the cmdlet (and its aliases) callable by name."""
    for name in (cls.name, *cls.aliases):
        key = name.lower()
        if key in COMMANDS and COMMANDS[key] is not cls:
            raise ValueError(f"two cmdlets are named {name}")
        COMMANDS[key] = cls
    return cls


# -- where the cmdlets live -------------------------------------------------------------

# Importing these modules registers every cmdlet; loaded on the first command, once. A
# module's cmdlets may live in a package of modules (cmdlets/utility/): Get-Command shows
# the package as their module.
CMDLET_MODULES = (
    "casarray.shell.cmdlets.utility.object_cmdlets",
    "casarray.shell.cmdlets.utility.members",
    "casarray.shell.cmdlets.utility.output",
    "casarray.shell.cmdlets.utility.conversion",
    "casarray.shell.cmdlets.help",
    "casarray.shell.cmdlets.topology",
    "casarray.shell.cmdlets.arrays",
    "casarray.shell.cmdlets.databases",
    "casarray.shell.cmdlets.mailboxes",
    "casarray.shell.cmdlets.messages",
    "casarray.shell.cmdlets.components",
    "casarray.shell.cmdlets.nlb.features",
    "casarray.shell.cmdlets.nlb.clusters",
    "casarray.shell.cmdlets.nlb.nodes",
    "casarray.shell.cmdlets.nlb.port_rules",
    "casarray.shell.cmdlets.dns.zones",
    "casarray.shell.cmdlets.dns.records",
    "casarray.shell.cmdlets.dns.policies",
    "casarray.shell.cmdlets.certificates",
    "casarray.shell.cmdlets.transport.accepted_domains",
    "casarray.shell.cmdlets.transport.receive_connectors",
    "casarray.shell.cmdlets.transport.send_connectors",
    "casarray.shell.cmdlets.transport.transport_servers",
    "casarray.shell.cmdlets.transport.queues",
    "casarray.shell.cmdlets.transport.tracking",
    "casarray.shell.cmdlets.virtual_directories",
    "casarray.shell.cmdlets.web_services_testing",
    "casarray.shell.cmdlets.testing",
)

_loaded = False


def load_commands() -> None:
    """Import every cmdlet module (once), so that COMMANDS holds every cmdlet."""
    global _loaded
    if _loaded:
        return
    for module in CMDLET_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    _loaded = True
