"""What every utility cmdlet shares: a parameter it does not have is an error."""

from __future__ import annotations

import pytest

from casarray.shell.cmdlet import COMMANDS, load_commands
from casarray.shell.cmdlets import utility
from tests.shell.cmdlets.utility.utility_shell import Shell

load_commands()
UTILITY_CMDLETS = sorted(
    {cls.name for cls in COMMANDS.values() if cls.__module__.startswith(utility.__name__ + ".")}
)


@pytest.mark.parametrize("name", UTILITY_CMDLETS)
def test_unknown_parameter_is_an_error(shell: Shell, name: str) -> None:
    assert shell.run(f"'x' | {name} -NoSuchParameter 1") == ""
    assert shell.messages == [
        "A parameter cannot be found that matches parameter name 'NoSuchParameter'."
    ]
    assert shell.session.errors[0].command == name
