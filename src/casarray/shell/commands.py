"""Where the cmdlets live: importing these modules registers every cmdlet (see
`cmdlet.register`). Loaded on the first command, once."""

from __future__ import annotations

import importlib

CMDLET_MODULES = (
    "casarray.shell.cmdlets.utility",
    "casarray.shell.cmdlets.help",
    "casarray.shell.cmdlets.topology",
    "casarray.shell.cmdlets.arrays",
    "casarray.shell.cmdlets.databases",
    "casarray.shell.cmdlets.mailboxes",
    "casarray.shell.cmdlets.messages",
    "casarray.shell.cmdlets.components",
    "casarray.shell.cmdlets.nlb",
    "casarray.shell.cmdlets.dns",
    "casarray.shell.cmdlets.certificates",
    "casarray.shell.cmdlets.testing",
)

_loaded = False


def load_commands() -> None:
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
