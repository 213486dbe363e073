"""Get-Member."""

from __future__ import annotations

from tests.shell.cmdlets.utility.utility_shell import Shell


def test_get_member(shell: Shell) -> None:
    out = shell.run("$dbs | Get-Member -MemberType NoteProperty")
    assert out == (
        "\n"
        "   TypeName: System.Management.Automation.PSCustomObject\n"
        "\n"
        "Name   MemberType   Definition\n"
        "----   ----------   ----------\n"
        "Name   NoteProperty string Name=DB01\n"
        "Server NoteProperty string Server=MBX01\n"
        "Site   NoteProperty string Site=BJ\n"
        "Size   NoteProperty int Size=30\n"
        "\n"
    )
    assert "Length     Property   int Length {get;}" in shell.run("'x' | gm")
    shell.run("Get-Member")
    assert shell.messages == ["You must specify an object for the Get-Member cmdlet."]
