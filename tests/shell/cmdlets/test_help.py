"""Get-Command and Get-Help, built from the cmdlets' own declarations, run through the
real parser and runtime."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from casarray.shell.cmdlet import COMMANDS, Cmdlet, Example, Parameter, load_commands, register
from casarray.shell.cmdlets import help as help_module
from casarray.shell.cmdlets import utility
from casarray.shell.runtime import Host, Session


@register
class NewHelpTestArray(Cmdlet):
    name = "New-HelpTestArray"
    aliases = ("nhta",)
    parameters = (
        Parameter("Name", position=0, mandatory=True, help="The array's name."),
        Parameter("Fqdn", mandatory=True, help="The name clients use."),
        Parameter("Site", kind="identity", mandatory=True, identity_of="site", help="Its site."),
        Parameter("Mode", kind="enum", choices=("Fast", "Safe"), help="How."),
        Parameter("Force", kind="switch", help="No questions."),
        Parameter(
            "Identity",
            kind="identity",
            identity_of="server",
            from_pipeline=True,
            help="A server.",
        ),
    )
    synopsis = "Test only: creates nothing."
    description = "A cmdlet that exists to have help."
    examples = (
        Example("New-HelpTestArray A -Fqdn a.lab.net -Site BJ", "Creates nothing named A."),
        Example("nhta B -Fqdn b.lab.net -Site SH -Force", "Creates nothing named B."),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        return ()


class Shell:
    def __init__(self) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.session = Session(
            host=Host(out=self.out, err=self.err, stdin=io.StringIO(), terminal=False, width=120)
        )

    def run(self, source: str) -> str:
        start = len(self.out.getvalue())
        self.session.run(source)
        return self.out.getvalue()[start:]

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.session.errors]


@pytest.fixture
def shell() -> Shell:
    return Shell()


SYNTAX = (
    "New-HelpTestArray [-Name] <String> -Fqdn <String> -Site <AdSiteIdParameter> "
    "[-Mode {Fast | Safe}] [-Force] [-Identity <ServerIdParameter>] [-WhatIf] [-Confirm] "
    "[<CommonParameters>]"
)


# -- Get-Command --------------------------------------------------------------------------------


def test_get_command_lists_every_cmdlet(shell: Shell) -> None:
    load_commands()
    names = shell.run("Get-Command | % Name").splitlines()
    expected = sorted({cls.name for cls in COMMANDS.values()}, key=str.lower)
    assert names == expected
    assert "Where-Object" in names and "Get-Help" in names
    assert shell.messages == []


def test_get_command_table(shell: Shell) -> None:
    out = shell.run("Get-Command New-HelpTestArray")
    assert out.splitlines()[:4] == [
        "",
        "CommandType Name              Definition",
        "----------- ----              ----------",
        ("Cmdlet      New-HelpTestArray " + SYNTAX)[:116] + "...",
    ]


def test_get_command_filters(shell: Shell) -> None:
    assert shell.run("gcm -Verb Measure | % Name").splitlines() == ["Measure-Object"]
    assert shell.run("gcm -Noun *-Object -Verb S* | % Name").splitlines() == []
    assert shell.run("gcm -Noun Object -Verb S* | % Name").splitlines() == [
        "Select-Object",
        "Sort-Object",
    ]
    assert shell.run("gcm *-Csv | % Name").splitlines() == ["Export-Csv"]
    assert shell.run("Get-Command New-HelpTestArray -Syntax") == SYNTAX + "\n"


def test_get_command_aliases(shell: Shell) -> None:
    out = shell.run("Get-Command sort, gcm")
    assert out == (
        "\nCommandType Name Definition\n----------- ---- ----------\n"
        "Alias       gcm  Get-Command\nAlias       sort Sort-Object\n\n"
    )
    # ? is a wildcard: every one-letter command.
    assert shell.run("Get-Command ? | % Name").splitlines() == ["%", "?"]


def test_get_command_module_name(shell: Shell) -> None:
    # A module split into a package of modules is still one module to Get-Command.
    out = shell.run(
        "Get-Command Where-Object, Format-Table, Get-Help, Get-NlbCluster | % ModuleName"
    )
    assert out.splitlines() == ["utility", "help", "nlb", "utility"]  # by name


def test_get_command_unknown_name(shell: Shell) -> None:
    shell.run("Get-Command Get-Nothing")
    assert shell.messages == [
        "The term 'Get-Nothing' is not recognized as the name of a cmdlet, function, script "
        "file, or operable program. Check the spelling of the name, or if a path was included, "
        "verify that the path is correct and try again."
    ]
    assert shell.session.errors[0].category == "ObjectNotFound"
    assert shell.run("Get-Command Get-Nothing*") == ""


# -- Get-Help ----------------------------------------------------------------------------------


def test_syntax_line_from_parameters() -> None:
    assert help_module.syntax_lines(NewHelpTestArray) == [SYNTAX]


def test_get_help_default(shell: Shell) -> None:
    out = shell.run("Get-Help New-HelpTestArray")
    assert out == (
        "\n"
        "NAME\n"
        "    New-HelpTestArray\n"
        "\n"
        "SYNOPSIS\n"
        "    Test only: creates nothing.\n"
        "\n"
        "\n"
        "SYNTAX\n"
        "    New-HelpTestArray [-Name] <String> -Fqdn <String> -Site <AdSiteIdParameter>\n"
        "    [-Mode {Fast | Safe}] [-Force] [-Identity <ServerIdParameter>] [-WhatIf] [-Confirm]\n"
        "    [<CommonParameters>]\n"
        "\n"
        "\n"
        "DESCRIPTION\n"
        "    A cmdlet that exists to have help.\n"
        "\n"
        "\n"
        "REMARKS\n"
        '    To see the examples, type: "get-help New-HelpTestArray -examples".\n'
        '    For more information, type: "get-help New-HelpTestArray -detailed".\n'
        '    For technical information, type: "get-help New-HelpTestArray -full".\n'
        "\n"
    )


def test_get_help_full(shell: Shell) -> None:
    out = shell.run("help nhta -Full")
    assert "PARAMETERS\n    -Name <String>\n        The array's name.\n" in out
    assert (
        "    -Identity <ServerIdParameter>\n"
        "        A server.\n"
        "\n"
        "        Required?                    false\n"
        "        Position?                    named\n"
        "        Default value\n"
        "        Accept pipeline input?       true (ByValue)\n"
        "        Accept wildcard characters?  false\n"
    ) in out
    assert (
        "        Required?                    true\n        Position?                    1\n" in out
    )
    assert "    -Mode <String>\n        How.\n        Accepted values: Fast, Safe\n" in out
    assert "    -WhatIf [<SwitchParameter>]\n        The WhatIf switch" in out
    assert "    <CommonParameters>\n" in out
    assert "INPUTS\n    ServerIdParameter (-Identity)\n" in out
    assert "-------------------------- EXAMPLE 2 --------------------------" in out
    assert "    C:\\PS>nhta B -Fqdn b.lab.net -Site SH -Force\n" in out


def test_get_help_detailed_has_no_attributes(shell: Shell) -> None:
    out = shell.run("Get-Help New-HelpTestArray -Detailed")
    assert "PARAMETERS" in out and "EXAMPLES" in out
    assert "Required?" not in out


def test_get_help_examples(shell: Shell) -> None:
    out = shell.run("Get-Help New-HelpTestArray -Examples")
    assert out.startswith("\nNAME\n    New-HelpTestArray\n\nSYNOPSIS\n")
    assert "SYNTAX" not in out
    assert (
        "    -------------------------- EXAMPLE 1 --------------------------\n"
        "\n"
        "    C:\\PS>New-HelpTestArray A -Fqdn a.lab.net -Site BJ\n"
        "\n"
        "\n"
        "    Creates nothing named A.\n"
    ) in out


def test_get_help_parameter(shell: Shell) -> None:
    out = shell.run("Get-Help New-HelpTestArray -Parameter F*")
    assert out.splitlines()[1:3] == ["    -Fqdn <String>", "        The name clients use."]
    assert "    -Force [<SwitchParameter>]" in out
    assert "-Name" not in out
    shell.run("Get-Help New-HelpTestArray -Parameter Nope")
    assert shell.messages == ['No parameter matches criteria "Nope".']


def test_get_help_wildcards_list_the_matches(shell: Shell) -> None:
    out = shell.run("Get-Help *-Object")
    assert "Name           Category Synopsis" in out
    assert "Where-Object   Cmdlet   Selects objects from a collection" in out
    assert "NAME" in shell.run("Get-Help Where-Obj*")


def test_get_help_unknown_and_overview(shell: Shell) -> None:
    shell.run("Get-Help Get-Nothing")
    assert shell.messages == [
        "Get-Help could not find Get-Nothing in a help file in this session. To list the "
        'cmdlets, type "Get-Command"; to search the help, type "Get-Help *word*".'
    ]
    assert "Get-Help shows the help of a cmdlet" in shell.run("Get-Help")


def _own_cmdlets() -> list[type[Cmdlet]]:
    load_commands()
    own = {
        cls
        for cls in COMMANDS.values()
        if cls.__module__ == help_module.__name__
        or cls.__module__.startswith(utility.__name__ + ".")
    }
    return sorted(own, key=lambda c: c.name)


def test_every_utility_cmdlet_has_help(shell: Shell) -> None:
    cmdlets = _own_cmdlets()
    assert len(cmdlets) >= 22
    for cls in cmdlets:
        assert cls.synopsis, cls.name
        assert cls.examples, cls.name
        out = shell.run(f"Get-Help {cls.name} -Full")
        assert out.startswith(f"\nNAME\n    {cls.name}\n"), cls.name
        assert "SYNTAX\n    " + cls.name in out
    assert shell.messages == []


def test_get_help_works_on_every_registered_cmdlet(shell: Shell) -> None:
    load_commands()
    for cls in set(COMMANDS.values()):
        for mode in ("", " -Full", " -Examples"):
            out = shell.run(f"Get-Help {cls.name}{mode}")
            assert out.startswith(f"\nNAME\n    {cls.name}\n"), (cls.name, mode)
    assert shell.messages == []
