"""Get-Command and Get-Help, built from what each cmdlet declares about itself: its
name and aliases, its parameters (kind, position, mandatory, pipeline input, help
text), its synopsis, description and examples. Nothing is written twice: the syntax
line is generated from the parameters, as PowerShell generates it from the cmdlet's
metadata.

A cmdlet may override two things for help: `syntax` (the syntax lines, for cmdlets
with several parameter sets, such as Where-Object) and `parameter_types` (the type
name shown for a parameter whose declared kind is looser than what it takes).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from casarray.shell.cmdlet import COMMANDS, Cmdlet, Example, Parameter, load_commands, register
from casarray.shell.formatting import FormattedOutput
from casarray.shell.properties import has_wildcard, wildcard_match
from casarray.shell.psobject import PSObject
from casarray.shell.values import ShellRuntimeError
from casarray.shell.views import register_view

CMDLET_TYPE = "System.Management.Automation.CmdletInfo"
ALIAS_TYPE = "System.Management.Automation.AliasInfo"
HELP_SUMMARY_TYPE = "HelpInfoShort"
register_view(CMDLET_TYPE, ("CommandType", "Name", "Definition"))
register_view(ALIAS_TYPE, ("CommandType", "Name", "Definition"))
register_view(HELP_SUMMARY_TYPE, ("Name", "Category", "Synopsis"))

_KIND_TYPES = {
    "string": "String",
    "int": "Int32",
    "bool": "Boolean",
    "switch": "SwitchParameter",
    "strings": "String[]",
    "enum": "String",
    "enums": "String[]",
    "securestring": "SecureString",
    "scriptblock": "ScriptBlock",
    "object": "Object",
    "objects": "Object[]",
    "hashtable": "Hashtable",
    "datetime": "DateTime",
    "ipaddress": "IPAddress",
    "bytes": "ByteQuantifiedSize",
}
# Exchange's (and the AD module's) identity parameter types.
_IDENTITY_TYPES = {
    "site": "AdSiteIdParameter",
    "subnet": "ADReplicationSubnet",
    "server": "ServerIdParameter",
    "array": "ClientAccessArrayIdParameter",
    "database": "DatabaseIdParameter",
    "mailbox": "MailboxIdParameter",
}
_SHOULD_PROCESS_HELP = {
    "WhatIf": "The WhatIf switch instructs the command to simulate the actions that it would "
    "take on the object. By using the WhatIf switch, you can view what changes would occur "
    "without having to apply any of those changes. You don't have to specify a value with "
    "the WhatIf switch.",
    "Confirm": "The Confirm switch causes the command to pause processing and requires you "
    "to acknowledge what the command will do before processing continues. You don't have to "
    "specify a value with the Confirm switch.",
}
_COMMON_HELP = (
    "This cmdlet supports the common parameters: Verbose, Debug, ErrorAction, "
    "ErrorVariable, WarningAction, WarningVariable, OutBuffer and OutVariable. For more "
    'information, type, "get-help about_commonparameters".'
)
_TEXT_WIDTH = 100
_CMDLETS_PACKAGE = "casarray.shell.cmdlets."


# -- the cmdlets, their parameters and their syntax ---------------------------------------


def all_cmdlets() -> list[type[Cmdlet]]:
    """Every registered cmdlet, once, by name."""
    load_commands()
    unique = {id(cls): cls for cls in COMMANDS.values()}
    return sorted(unique.values(), key=lambda cls: cls.name.lower())


def find_cmdlet(name: str) -> type[Cmdlet] | None:
    """A cmdlet by its name or one of its aliases (case-insensitive)."""
    load_commands()
    return COMMANDS.get(name.lower())


def _should_process_parameters(cls: type[Cmdlet]) -> tuple[Parameter, ...]:
    if not cls.supports_should_process:
        return ()
    return tuple(
        Parameter(name, kind="switch", help=text) for name, text in _SHOULD_PROCESS_HELP.items()
    )


def parameter_type(cls: type[Cmdlet], param: Parameter) -> str:
    """The type name help shows for a parameter: String, Int32, ServerIdParameter, ..."""
    overrides: Mapping[str, str] = getattr(cls, "parameter_types", {}) or {}
    if param.name in overrides:
        return overrides[param.name]
    if param.name == "InputObject" and param.kind == "object":
        return "PSObject"
    if param.kind in ("identity", "identities"):
        base = _IDENTITY_TYPES.get(param.identity_of or "", "String")
        return base + ("[]" if param.kind == "identities" else "")
    return _KIND_TYPES.get(param.kind, "Object")


def _syntax_part(cls: type[Cmdlet], param: Parameter) -> str:
    if param.kind == "switch":
        text = f"-{param.name}"
        return text if param.mandatory else f"[{text}]"
    if param.kind in ("enum", "enums") and param.choices:
        value = "{" + " | ".join(param.choices) + "}"
    else:
        value = f"<{parameter_type(cls, param)}>"
    name = f"[-{param.name}]" if param.position is not None else f"-{param.name}"
    text = f"{name} {value}"
    return text if param.mandatory else f"[{text}]"


def syntax_lines(cls: type[Cmdlet]) -> list[str]:
    """The cmdlet's syntax, PowerShell style: positional parameters first (by position),
    then mandatory named ones, then the rest, then -WhatIf/-Confirm and
    [<CommonParameters>]."""
    override = getattr(cls, "syntax", None)
    if override:
        return list(override)
    params = list(cls.parameters)
    positional = sorted(
        (p for p in params if p.position is not None), key=lambda p: p.position or 0
    )
    named_mandatory = [p for p in params if p.position is None and p.mandatory]
    named_optional = [p for p in params if p.position is None and not p.mandatory]
    parts = [cls.name]
    parts += [_syntax_part(cls, p) for p in (*positional, *named_mandatory, *named_optional)]
    parts += [_syntax_part(cls, p) for p in _should_process_parameters(cls)]
    parts.append("[<CommonParameters>]")
    return [" ".join(parts)]


def _verb_noun(name: str) -> tuple[str, str]:
    verb, _, noun = name.partition("-")
    return (verb, noun) if noun else ("", name)


def module_name(cls: type[Cmdlet]) -> str:
    """The module Get-Command names for a cmdlet: its module under `cmdlets`, or the
    package when the module is split into several (`nlb` for `cmdlets/nlb/port_rules.py`)."""
    module = cls.__module__
    if module.startswith(_CMDLETS_PACKAGE):
        return module[len(_CMDLETS_PACKAGE) :].split(".", 1)[0]
    return module.rsplit(".", 1)[-1]


def cmdlet_object(cls: type[Cmdlet]) -> PSObject:
    verb, noun = _verb_noun(cls.name)
    return PSObject(
        {
            "CommandType": "Cmdlet",
            "Name": cls.name,
            "Definition": "\n".join(syntax_lines(cls)),
            "Verb": verb,
            "Noun": noun,
            "ModuleName": module_name(cls),
            "Parameters": [p.name for p in cls.parameters],
            "Synopsis": cls.synopsis,
        },
        type_name=CMDLET_TYPE,
        display=cls.name,
    )


def alias_object(alias: str, cls: type[Cmdlet]) -> PSObject:
    return PSObject(
        {
            "CommandType": "Alias",
            "Name": alias,
            "Definition": cls.name,
            "ReferencedCommand": cls.name,
            "ModuleName": module_name(cls),
        },
        type_name=ALIAS_TYPE,
        display=alias,
    )


# -- Get-Command ---------------------------------------------------------------------------


def _not_recognized(name: str) -> ShellRuntimeError:
    return ShellRuntimeError(
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script "
        "file, or operable program. Check the spelling of the name, or if a path was "
        "included, verify that the path is correct and try again.",
        category="ObjectNotFound",
    )


def _matches(patterns: list[str] | None, text: str) -> bool:
    return not patterns or any(wildcard_match(p, text) for p in patterns)


@register
class GetCommand(Cmdlet):
    name = "Get-Command"
    aliases = ("gcm",)
    parameters = (
        Parameter(
            "Name",
            kind="strings",
            position=0,
            from_pipeline=True,
            help="Only the commands with these names (wildcards allowed); aliases too.",
        ),
        Parameter("Verb", kind="strings", help="Only the cmdlets with these verbs (Get, Set)."),
        Parameter(
            "Noun",
            kind="strings",
            help="Only the cmdlets with these nouns (ClientAccessArray, Mailbox*).",
        ),
        Parameter(
            "CommandType",
            kind="enums",
            choices=("Alias", "Cmdlet", "All"),
            help="Only commands of these types.",
        ),
        Parameter("Syntax", kind="switch", help="Outputs the syntax of the commands."),
    )
    synopsis = "Gets all commands."
    description = (
        "Lists the cmdlets of the shell (and, by name, their aliases), with their syntax. "
        "Get-Help shows a cmdlet's help."
    )
    examples = (
        Example("Get-Command", "Every cmdlet."),
        Example("Get-Command -Noun ClientAccessArray", "The cmdlets that manage CAS arrays."),
        Example("gcm *Database* -Syntax", "The syntax of the database cmdlets."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        names: list[str] | None = params.get("Name")
        verbs, nouns = params.get("Verb"), params.get("Noun")
        types = set(params.get("CommandType") or [])
        want_cmdlets = not types or bool(types & {"Cmdlet", "All"})
        want_aliases = bool(types & {"Alias", "All"}) or (
            not types and names is not None and not verbs and not nouns
        )
        found: list[tuple[str, PSObject]] = []
        matched: set[str] = set()
        for cls in all_cmdlets():
            verb, noun = _verb_noun(cls.name)
            if verbs and not _matches(verbs, verb):
                continue
            if nouns and not _matches(nouns, noun):
                continue
            if want_cmdlets and _matches(names, cls.name):
                found.append((cls.name, cmdlet_object(cls)))
                matched.update(n.lower() for n in names or () if wildcard_match(n, cls.name))
            if want_aliases and not verbs and not nouns:
                for alias in cls.aliases:
                    if names is not None and _matches(names, alias):
                        found.append((alias, alias_object(alias, cls)))
                        matched.update(n.lower() for n in names if wildcard_match(n, alias))
                    elif names is None:
                        found.append((alias, alias_object(alias, cls)))
        found.sort(key=lambda pair: pair[0].lower())
        for _, obj in found:
            if params.get("Syntax"):
                yield obj.get("Definition")
            else:
                yield obj
        for name in names or ():
            if not has_wildcard(name) and name.lower() not in matched:
                raise _not_recognized(name)


# -- Get-Help --------------------------------------------------------------------------------


def _wrap(text: str, indent: int, width: int = _TEXT_WIDTH) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if not paragraph.strip():
            lines.append("")
            continue
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=width,
                initial_indent=" " * indent,
                subsequent_indent=" " * indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return lines


_NBSP = "\u00a0"


def _wrap_syntax(line: str, indent: int, width: int = _TEXT_WIDTH) -> list[str]:
    """A syntax line wrapped between parameters, never inside `[-Name <Type>]`
    (except around the `|` of a list of alternatives)."""
    out: list[str] = []
    stack: list[str] = []
    for i, ch in enumerate(line):
        if ch in "[<{":
            stack.append(ch)
        elif ch in "]>}" and stack:
            stack.pop()
        near_bar = line[i - 1 : i] == "|" or line[i + 1 : i + 2] == "|"
        breakable = not stack or (near_bar and stack[-1] == "[")
        out.append(_NBSP if ch == " " and not breakable else ch)
    return [piece.replace(_NBSP, " ") for piece in _wrap("".join(out), indent, width)]


def _position(param: Parameter) -> str:
    return str(param.position + 1) if param.position is not None else "named"


def _pipeline(param: Parameter) -> str:
    kinds = []
    if param.from_pipeline:
        kinds.append("ByValue")
    if param.from_pipeline_by_name:
        kinds.append("ByPropertyName")
    return f"true ({', '.join(kinds)})" if kinds else "false"


def _parameter_heading(cls: type[Cmdlet], param: Parameter) -> str:
    if param.kind == "switch":
        return f"    -{param.name} [<SwitchParameter>]"
    return f"    -{param.name} <{parameter_type(cls, param)}>"


def parameter_lines(cls: type[Cmdlet], param: Parameter, *, full: bool) -> list[str]:
    """One parameter's block of the PARAMETERS section."""
    lines = [_parameter_heading(cls, param)]
    text = param.help or "(No description.)"
    if param.choices:
        text += "\nAccepted values: " + ", ".join(param.choices)
    if param.aliases:
        text += "\nAliases: " + ", ".join(param.aliases)
    lines.extend(_wrap(text, 8))
    if full:
        lines += [
            "",
            f"        Required?                    {str(param.mandatory).lower()}",
            f"        Position?                    {_position(param)}",
            "        Default value",
            f"        Accept pipeline input?       {_pipeline(param)}",
            "        Accept wildcard characters?  false",
        ]
    lines.append("")
    return lines


def _parameters_section(cls: type[Cmdlet], *, full: bool) -> list[str]:
    lines = ["PARAMETERS"]
    for param in (*cls.parameters, *_should_process_parameters(cls)):
        lines.extend(parameter_lines(cls, param, full=full))
    lines.append("    <CommonParameters>")
    lines.extend(_wrap(_COMMON_HELP, 8))
    lines += ["", ""]
    return lines


def _examples_section(cls: type[Cmdlet]) -> list[str]:
    lines: list[str] = []
    examples: tuple[Example, ...] = cls.examples
    for number, example in enumerate(examples, start=1):
        lines += [
            f"    -------------------------- EXAMPLE {number} --------------------------",
            "",
            f"    C:\\PS>{example.code}",
            "",
            "",
        ]
        lines.extend(_wrap(example.remarks, 4))
        lines += ["", ""]
    if not examples:
        lines += ["    (No examples.)", ""]
    return lines


def help_lines(cls: type[Cmdlet], mode: str = "default") -> list[str]:
    """The help of a cmdlet as Get-Help shows it; `mode` is "default", "detailed",
    "full" or "examples"."""
    name = cls.name
    lines = ["", "NAME", f"    {name}", "", "SYNOPSIS"]
    lines.extend(_wrap(cls.synopsis or "(No synopsis.)", 4))
    lines += ["", ""]
    if mode == "examples":
        lines.extend(_examples_section(cls))
        return lines
    lines.append("SYNTAX")
    for syntax in syntax_lines(cls):
        lines.extend(_wrap_syntax(syntax, 4))
        lines.append("")
    lines += ["", "DESCRIPTION"]
    lines.extend(_wrap(cls.description or cls.synopsis or "(No description.)", 4))
    lines += ["", ""]
    if mode in ("detailed", "full"):
        lines.extend(_parameters_section(cls, full=mode == "full"))
        if mode == "full":
            lines += ["INPUTS"]
            piped = [p for p in cls.parameters if p.from_pipeline or p.from_pipeline_by_name]
            if piped:
                for p in piped:
                    lines.append(f"    {parameter_type(cls, p)} (-{p.name})")
            else:
                lines.append("    None")
            lines += ["", ""]
        lines.append("EXAMPLES")
        lines.extend(_examples_section(cls))
    lines.append("REMARKS")
    if mode == "default":
        lines += [
            f'    To see the examples, type: "get-help {name} -examples".',
            f'    For more information, type: "get-help {name} -detailed".',
        ]
    if mode != "full":
        lines.append(f'    For technical information, type: "get-help {name} -full".')
    else:
        lines.append(f'    To see only the examples, type: "get-help {name} -examples".')
    lines.append("")
    return lines


_OVERVIEW = """
TOPIC
    casarray Exchange Management Shell help

SHORT DESCRIPTION
    Displays help about the cmdlets of the shell.

LONG DESCRIPTION
    Get-Help shows the help of a cmdlet: what it does, its syntax, its parameters
    and examples.

        Get-Help New-ClientAccessArray            the help
        Get-Help New-ClientAccessArray -Examples  only the examples
        Get-Help New-ClientAccessArray -Detailed  with each parameter
        Get-Help New-ClientAccessArray -Full      with each parameter's attributes
        Get-Help Set-MailboxDatabase -Parameter RpcClientAccessServer

    Get-Command lists the cmdlets:

        Get-Command                               every cmdlet
        Get-Command -Noun ClientAccessArray       the cmdlets of one noun
        Get-Command *Database*                    by name, with wildcards

    Get-Help *Array* lists the help topics whose names match.
"""


@register
class GetHelp(Cmdlet):
    name = "Get-Help"
    aliases = ("help", "man")
    parameters = (
        Parameter(
            "Name",
            position=0,
            help="The cmdlet (or alias) to describe; wildcards list the matching cmdlets.",
        ),
        Parameter("Full", kind="switch", help="Shows the whole help, with parameter details."),
        Parameter("Detailed", kind="switch", help="Adds the parameters and the examples."),
        Parameter("Examples", kind="switch", help="Shows only the examples."),
        Parameter(
            "Parameter",
            help="Shows only the help of this parameter (wildcards allowed).",
        ),
    )
    synopsis = "Displays information about cmdlets and concepts."
    description = (
        "Shows the help of a cmdlet: its synopsis, syntax, description and, with "
        "-Detailed or -Full, its parameters and examples. With wildcards, lists the "
        "matching cmdlets."
    )
    examples = (
        Example("Get-Help New-ClientAccessArray", "The help of New-ClientAccessArray."),
        Example("Get-Help Set-MailboxDatabase -Examples", "Only its examples."),
        Example("help *Array*", "The cmdlets whose names contain Array."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        modes = [m for m in ("Full", "Detailed", "Examples", "Parameter") if params.get(m)]
        if len(modes) > 1:
            raise ShellRuntimeError(
                "Parameter set cannot be resolved using the specified named parameters.",
                category="InvalidArgument",
            )
        name = params.get("Name")
        if not name:
            return [FormattedOutput(tuple(_OVERVIEW.split("\n")))]
        if has_wildcard(name):
            matches = [cls for cls in all_cmdlets() if wildcard_match(name, cls.name)]
            if len(matches) != 1:
                if not matches:
                    raise _help_not_found(name)
                return [
                    PSObject(
                        {"Name": cls.name, "Category": "Cmdlet", "Synopsis": cls.synopsis},
                        type_name=HELP_SUMMARY_TYPE,
                        display=cls.name,
                    )
                    for cls in matches
                ]
            cls = matches[0]
        else:
            found = find_cmdlet(name)
            if found is None:
                raise _help_not_found(name)
            cls = found
        if params.get("Parameter"):
            return [FormattedOutput(tuple(self._parameter_help(cls, params["Parameter"])))]
        mode = modes[0].lower() if modes else "default"
        return [FormattedOutput(tuple(help_lines(cls, mode)))]

    @staticmethod
    def _parameter_help(cls: type[Cmdlet], pattern: str) -> list[str]:
        candidates = (*cls.parameters, *_should_process_parameters(cls))
        chosen = [p for p in candidates if wildcard_match(pattern, p.name)]
        if not chosen:
            raise ShellRuntimeError(
                f'No parameter matches criteria "{pattern}".', category="InvalidArgument"
            )
        lines = [""]
        for param in chosen:
            lines.extend(parameter_lines(cls, param, full=True))
        return lines


def _help_not_found(name: str) -> ShellRuntimeError:
    return ShellRuntimeError(
        f"Get-Help could not find {name} in a help file in this session. To list the "
        'cmdlets, type "Get-Command"; to search the help, type "Get-Help *word*".',
        category="ResourceUnavailable",
    )
