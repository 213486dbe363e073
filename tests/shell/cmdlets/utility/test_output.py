"""The output cmdlets: Export-Csv, Write-*, Out-* (the Format- cmdlets' layouts are
tested with `shell.formatting`)."""

from __future__ import annotations

from pathlib import Path

from tests.shell.cmdlets.utility.utility_shell import Shell


def test_export_csv(shell: Shell, tmp_path: Path) -> None:
    path = tmp_path / "dbs.csv"
    shell.run(f"$dbs | Export-Csv '{path}'")
    assert path.read_text() == (
        "#TYPE System.Management.Automation.PSCustomObject\n"
        '"Name","Server","Size","Site"\n'
        '"DB01","MBX01","30","BJ"\n'
        '"db02","MBX01","5","BJ"\n'
        '"DB10","MBX02","100","SH"\n'
    )
    shell.run(
        f"$dbs | select Name, @{{n='M'; e={{'a', 'b'}}}} -First 1 | "
        f"Export-Csv -Path '{path}' -NoTypeInformation -Delimiter ';' -Encoding weird"
    )
    assert path.read_text() == '"Name";"M"\n"DB01";"a b"\n'
    shell.run(
        f"$dbs | select Name, @{{n='M'; e={{$_.Size}}}} -Last 1 | "
        f"Export-Csv '{path}' -NoTypeInformation -Append -Delimiter ';'"
    )
    assert path.read_text() == '"Name";"M"\n"DB01";"a b"\n"DB10";"100"\n'
    assert shell.messages == []


def test_export_csv_what_if_writes_nothing(shell: Shell, tmp_path: Path) -> None:
    path = tmp_path / "none.csv"
    out = shell.run(f"$dbs | Export-Csv '{path}' -WhatIf")
    assert out == f'What if: Performing the operation "Export-Csv" on target "{path}".\n'
    assert not path.exists()


def test_export_csv_errors(shell: Shell, tmp_path: Path) -> None:
    shell.run("$dbs | Export-Csv")
    shell.run(f"$dbs | Export-Csv '{tmp_path}/no/such/dir/x.csv'")
    shell.run(f"$dbs | Export-Csv '{tmp_path}/x.csv' -Delimiter ';;'")
    assert shell.messages[0] == (
        "Cannot process command because of one or more missing mandatory parameters: Path."
    )
    assert shell.messages[1].startswith("Could not find a part of the path")
    assert "System.Char" in shell.messages[2]


def test_write_output(shell: Shell) -> None:
    assert shell.lines("Write-Output 'a'; echo 1, 2; 'x' | write") == ["a", "1", "2", "x"]
    assert shell.lines("(Write-Output 1, 2, 3 | Measure-Object).Count") == ["3"]


def test_write_host_goes_to_the_host_not_the_pipeline(shell: Shell) -> None:
    assert shell.run("Write-Host 'hello' | Measure-Object | % Count") == "hello\n0\n"
    assert shell.run("Write-Host 'a' -NoNewline; Write-Host 'b' -ForegroundColor Red") == "ab\n"
    assert shell.run("Write-Host @(1, 2) -Separator ', '") == "1, 2\n"
    shell.run("Write-Host x -ForegroundColor Chartreuse")
    assert "does not belong to the set" in shell.messages[0]


def test_write_warning_and_error(shell: Shell) -> None:
    assert shell.run("Write-Warning 'careful'") == "WARNING: careful\n"
    assert shell.run("Write-Warning 'hush' -WarningAction SilentlyContinue") == ""
    assert shell.run("Write-Error 'bad thing'; 'after'") == "after\n"
    assert shell.messages == ["bad thing"]
    assert shell.session.errors[0].command == "Write-Error"
    assert "bad thing" in shell.err.getvalue()


def test_out_null_and_out_string(shell: Shell) -> None:
    assert shell.run("$dbs | Out-Null") == ""
    assert shell.lines("($dbs | select -First 1 Name | Out-String).Length") == ["17"]
    assert shell.lines("$dbs | select -First 1 Name | Out-String -Stream") == [
        "",
        "Name",
        "----",
        "DB01",
        "",
    ]
