"""The utility cmdlets (Where-Object, ForEach-Object, Select-Object, Sort-Object,
Measure-Object, ConvertTo-Json, Export-Csv, Write-*, Out-*, Get-Date,
ConvertTo-SecureString, Get-Member), run through the real parser and runtime."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from casarray.shell.cmdlet import COMMANDS, Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets import utility
from casarray.shell.psobject import PSObject
from casarray.shell.runtime import Host, Session

ITEM_TYPE = "Casarray.Test.UtilItem"


@register
class GetUtilTestStream(Cmdlet):
    """Yields numbered objects, logging each one it produces (and its end)."""

    name = "Get-UtilTestStream"
    parameters = (Parameter("Count", kind="int", position=0),)
    synopsis = "Test only: a stream of numbered objects."
    examples = (Example("Get-UtilTestStream 10", "Ten objects."),)
    events: ClassVar[list[tuple[str, Any]]] = []

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        try:
            for i in range(params.get("Count", 10)):
                self.events.append(("produce", i))
                yield PSObject({"N": i, "Name": f"item{i}"}, type_name=ITEM_TYPE)
        finally:
            self.events.append(("closed", None))


@register
class AddUtilTestEvent(Cmdlet):
    name = "Add-UtilTestEvent"
    parameters = (Parameter("InputObject", kind="object", from_pipeline=True),)
    synopsis = "Test only: logs each object it receives."
    examples = (Example("1 | Add-UtilTestEvent", "Logs 1."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        value = params["InputObject"]
        GetUtilTestStream.events.append(("consume", value.get("N")))
        return ()


class Shell:
    def __init__(self, width: int = 120) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.session = Session(
            host=Host(out=self.out, err=self.err, stdin=io.StringIO(), terminal=False, width=width)
        )

    def run(self, source: str) -> str:
        start = len(self.out.getvalue())
        self.session.run(source)
        return self.out.getvalue()[start:]

    def lines(self, source: str) -> list[str]:
        return self.run(source).splitlines()

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.session.errors]


@pytest.fixture
def shell() -> Shell:
    s = Shell()
    s.run(
        "$dbs = @("
        "[pscustomobject]@{Name='DB01'; Server='MBX01'; Size=30; Site='BJ'}, "
        "[pscustomobject]@{Name='db02'; Server='MBX01'; Size=5; Site='BJ'}, "
        "[pscustomobject]@{Name='DB10'; Server='MBX02'; Size=100; Site='SH'})"
    )
    return s


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    GetUtilTestStream.events.clear()


# -- Where-Object ---------------------------------------------------------------------------


def test_where_object_script_block(shell: Shell) -> None:
    assert shell.lines("$dbs | Where-Object { $_.Size -gt 10 } | % Name") == ["DB01", "DB10"]
    assert shell.lines("$dbs | ? { $_.Site -eq 'sh' } | % Name") == ["DB10"]
    assert shell.lines("1..6 | where { $_ % 2 }") == ["1", "3", "5"]


def test_where_object_simplified_syntax(shell: Shell) -> None:
    assert shell.lines("$dbs | ? Server -eq mbx02 | % Name") == ["DB10"]
    assert shell.lines("$dbs | Where-Object Name -Like 'db0*' | % Name") == ["DB01", "db02"]
    assert shell.lines("$dbs | Where-Object Name -CLike 'DB*' | % Name") == ["DB01", "DB10"]
    assert shell.lines("$dbs | ? Size -lt 50 | % Name") == ["DB01", "db02"]
    assert shell.lines("$dbs | ? -Property Size -GT -Value 50 | % Name") == ["DB10"]
    assert shell.lines("$dbs | ? Name -Match '^db\\d0$' | % Name") == ["DB10"]
    assert shell.lines("$dbs | ? Site -In SH, LA | % Name") == ["DB10"]
    shell.run("$flags = @([pscustomobject]@{N=1; On=$true}, [pscustomobject]@{N=2; On=$false})")
    assert shell.lines("$flags | ? On | % N") == ["1"]
    assert shell.lines("$flags | ? On -Not | % N") == ["2"]
    assert shell.messages == []


def test_where_object_errors(shell: Shell) -> None:
    shell.run("$dbs | Where-Object -Foo")
    shell.run("$dbs | Where-Object Name -EQ -Like DB01")
    shell.run("$dbs | Where-Object")
    assert shell.messages == [
        "A parameter cannot be found that matches parameter name 'Foo'.",
        "Parameter set cannot be resolved using the specified named parameters.",
        "Cannot process command because of one or more missing mandatory parameters: FilterScript.",
    ]


def test_where_object_streams(shell: Shell) -> None:
    shell.run("Get-UtilTestStream 4 | Where-Object { $_.N % 2 -eq 0 } | Add-UtilTestEvent")
    assert GetUtilTestStream.events == [
        ("produce", 0),
        ("consume", 0),
        ("produce", 1),
        ("produce", 2),
        ("consume", 2),
        ("produce", 3),
        ("closed", None),
    ]


# -- ForEach-Object --------------------------------------------------------------------------


def test_foreach_object(shell: Shell) -> None:
    assert shell.lines("1..3 | ForEach-Object { $_ * 10 }") == ["10", "20", "30"]
    assert shell.lines("1..3 | % -Begin { 'start' } -Process { $_ } -End { 'end' }") == [
        "start",
        "1",
        "2",
        "3",
        "end",
    ]
    assert shell.lines("$dbs | % Name") == ["DB01", "db02", "DB10"]
    assert shell.lines("$dbs | foreach -MemberName Server") == ["MBX01", "MBX01", "MBX02"]
    assert shell.lines("'ab', 'cd' | % ToUpper") == ["AB", "CD"]
    assert shell.lines("'a-b' | % Replace -ArgumentList '-', '+'") == ["a+b"]
    assert shell.lines("ForEach-Object { 'once' }") == ["once"]
    assert shell.messages == []


def test_foreach_object_streams() -> None:
    shell = Shell()
    shell.run("Get-UtilTestStream 2 | % { $_ } | Add-UtilTestEvent")
    assert [e[0] for e in GetUtilTestStream.events] == [
        "produce",
        "consume",
        "produce",
        "consume",
        "closed",
    ]


# -- Select-Object --------------------------------------------------------------------------


def test_select_object_properties(shell: Shell) -> None:
    assert shell.run("$dbs | Select-Object Name, Size") == (
        "\nName Size\n---- ----\nDB01   30\ndb02    5\nDB10  100\n\n"
    )
    assert shell.run("$dbs | select -First 1 S*") == (
        "\nServer Size Site\n------ ---- ----\nMBX01    30 BJ\n\n"
    )
    assert shell.run("$dbs | select -First 1 * -ExcludeProperty Si*") == (
        "\nName Server\n---- ------\nDB01 MBX01\n\n"
    )


def test_select_object_calculated_properties(shell: Shell) -> None:
    out = shell.run(
        "$dbs | select Name, @{n='GB'; e={$_.Size * 2}}, @{Label='Where'; Expression='Site'}"
    )
    assert out == ("\nName  GB Where\n----  -- -----\nDB01  60 BJ\ndb02  10 BJ\nDB10 200 SH\n\n")
    shell.run("$dbs | select @{Foo='x'}")
    assert shell.messages == ["The Foo key is not valid."]


def test_select_object_type_name(shell: Shell) -> None:
    shell.run("$t = Get-UtilTestStream 1 | select Name | Get-Member | select -First 1")
    assert shell.lines("$t.TypeName") == ["Selected." + ITEM_TYPE]


def test_select_object_first_last_skip_index_unique(shell: Shell) -> None:
    assert shell.lines("1..10 | select -First 3") == ["1", "2", "3"]
    assert shell.lines("1..10 | select -Last 2") == ["9", "10"]
    assert shell.lines("1..10 | select -Skip 7") == ["8", "9", "10"]
    assert shell.lines("1..10 | select -Skip 2 -First 2") == ["3", "4"]
    assert shell.lines("1..10 | select -Last 2 -Skip 1") == ["8", "9"]
    assert shell.lines("1..10 | select -Index 0, 4") == ["1", "5"]
    assert shell.lines("1, 2, 2, 'a', 'a', 'A' | select -Unique") == ["1", "2", "a", "A"]
    assert shell.lines("$dbs | select Server -Unique | % Server") == ["MBX01", "MBX02"]
    assert shell.lines("1..10 | select -First 0") == []
    shell.run("1..3 | select -First -1")
    assert "less than the minimum allowed range of 0" in shell.messages[0]


def test_select_object_expand_property(shell: Shell) -> None:
    shell.run("$a = [pscustomobject]@{Name='BJ'; Members=@('CAS01','CAS02')}")
    assert shell.lines("$a | Select-Object -ExpandProperty Members") == ["CAS01", "CAS02"]
    assert shell.lines("$dbs | select -ExpandProperty Size") == ["30", "5", "100"]
    shell.run("$dbs | select -ExpandProperty Nope")
    assert shell.messages == ['Property "Nope" cannot be found.'] * 3


def test_select_first_stops_the_stream(shell: Shell) -> None:
    out = shell.run("Get-UtilTestStream 10000 | Select-Object -First 3")
    assert out == "\nN Name\n- ----\n0 item0\n1 item1\n2 item2\n\n"
    produced = [e for e in GetUtilTestStream.events if e[0] == "produce"]
    assert len(produced) == 3
    assert GetUtilTestStream.events[-1] == ("closed", None)
    assert shell.session.errors == []
    # The commands after Select-Object still run their end.
    assert shell.lines("(Get-UtilTestStream 10000 | select -First 4 | Measure-Object).Count") == [
        "4"
    ]


def test_select_first_stops_after_index(shell: Shell) -> None:
    shell.run("Get-UtilTestStream 10000 | select -Index 1 | Out-Null")
    assert len([e for e in GetUtilTestStream.events if e[0] == "produce"]) == 2


# -- Sort-Object -------------------------------------------------------------------------------


def test_sort_object(shell: Shell) -> None:
    assert shell.lines("10, 9, 100, 1 | Sort-Object") == ["1", "9", "10", "100"]
    assert shell.lines("'b', 'C', 'a' | sort") == ["a", "b", "C"]
    assert shell.lines("'b', 'C', 'a' | sort -Descending") == ["C", "b", "a"]
    assert shell.lines("$dbs | sort Size | % Name") == ["db02", "DB01", "DB10"]
    assert shell.lines("$dbs | sort Name | % Name") == ["DB01", "db02", "DB10"]
    assert shell.lines("$dbs | sort Server, @{e='Size'; Descending=$true} | % Name") == [
        "DB01",
        "db02",
        "DB10",
    ]
    assert shell.lines("$dbs | sort { -$_.Size } | % Name") == ["DB10", "DB01", "db02"]
    assert shell.lines("'a', 'A', 'b', 'a' | sort -Unique") == ["a", "b"]
    assert shell.lines("'a', 'A', 'b', 'a' | sort -Unique -CaseSensitive") == ["a", "A", "b"]
    assert shell.lines("$dbs | sort Server -Unique | % Server") == ["MBX01", "MBX02"]
    shell.run("$dbs | sort -Bogus")
    assert shell.messages == ["A parameter cannot be found that matches parameter name 'Bogus'."]


# -- Measure-Object ----------------------------------------------------------------------------


def test_measure_object(shell: Shell) -> None:
    assert shell.run("$dbs | Measure-Object") == (
        "\nCount    : 3\nAverage  :\nSum      :\nMaximum  :\nMinimum  :\nProperty :\n\n"
    )
    assert shell.run("$dbs | measure Size -Sum -Average -Maximum -Minimum") == (
        "\nCount    : 3\nAverage  : 45\nSum      : 135\nMaximum  : 100\nMinimum  : 5\n"
        "Property : Size\n\n"
    )
    assert shell.lines("(1, 2 | measure -Average).Average") == ["1.5"]
    assert shell.run("'one two', 'three' | measure -Line -Word -Character") == (
        "\nLines Words Characters Property\n----- ----- ---------- --------\n"
        "    2     3         12\n\n"
    )


def test_measure_object_errors(shell: Shell) -> None:
    shell.run("'x' | measure -Sum")
    shell.run("$dbs | measure Nope -Sum")
    assert shell.messages == [
        'Input object "x" is not numeric.',
        'The property "Nope" cannot be found in the input for any objects.',
    ]


# -- ConvertTo-Json ------------------------------------------------------------------------------


def test_convertto_json(shell: Shell) -> None:
    assert shell.run("$dbs[0] | ConvertTo-Json") == (
        '{\n  "Name": "DB01",\n  "Server": "MBX01",\n  "Size": 30,\n  "Site": "BJ"\n}\n'
    )
    data = json.loads(shell.run("$dbs | ConvertTo-Json"))
    assert [d["Name"] for d in data] == ["DB01", "db02", "DB10"]
    assert shell.lines("$dbs | select Name -First 2 | ConvertTo-Json -Compress") == [
        '[{"Name":"DB01"},{"Name":"db02"}]'
    ]
    assert shell.lines("ConvertTo-Json @(1, 'a', $true, $null) -Compress") == ['[1,"a",true,null]']


def test_convertto_json_depth_and_values(shell: Shell) -> None:
    shell.run("$deep = @{a=@{b=@{c=@{d=1}}}}")
    assert shell.lines("$deep | ConvertTo-Json -Compress") == [
        '{"a":{"b":{"c":"System.Collections.Hashtable"}}}'
    ]
    assert shell.lines("$deep | ConvertTo-Json -Compress -Depth 5") == ['{"a":{"b":{"c":{"d":1}}}}']
    shell.run("$p = ConvertTo-SecureString 'pw' -AsPlainText -Force")
    assert shell.lines("[pscustomobject]@{P=$p} | ConvertTo-Json -Compress") == [
        '{"P":"System.Security.SecureString"}'
    ]
    out = shell.run("Get-Date -Year 2010 -Month 1 -Day 2 | ConvertTo-Json")
    assert out.startswith('"2010-01-02T')
    shell.run("1 | ConvertTo-Json -Depth -1")
    assert "Depth" in shell.messages[0]


# -- Export-Csv ----------------------------------------------------------------------------------


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


# -- Write-*, Out-* -------------------------------------------------------------------------------


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


# -- Get-Date, ConvertTo-SecureString, Get-Member -----------------------------------------------


def test_get_date(shell: Shell) -> None:
    assert shell.lines("Get-Date -Year 2010 -Month 11 -Day 9 -Format 'yyyy-MM-dd'") == [
        "2010-11-09"
    ]
    assert shell.lines("(Get-Date -Year 2010).Year") == ["2010"]
    assert shell.lines("Get-Date -Year 2010 -Month 1 -Day 5 -UFormat '%Y/%m/%d'") == ["2010/01/05"]
    shell.run("Get-Date -Month 13")
    assert shell.messages[0].startswith("Cannot make a date")


def test_convertto_securestring(shell: Shell) -> None:
    assert shell.lines("ConvertTo-SecureString 'P@ss' -AsPlainText -Force") == [
        "System.Security.SecureString"
    ]
    shell.run("ConvertTo-SecureString 'P@ss' -AsPlainText")
    shell.run("ConvertTo-SecureString 'P@ss'")
    assert shell.messages[0].startswith("The system cannot protect plain text input.")
    assert shell.messages[1].startswith("Input string was not in a correct format.")


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


UTILITY_CMDLETS = sorted(
    {cls.name for cls in COMMANDS.values() if cls.__module__ == utility.__name__}
)


@pytest.mark.parametrize("name", UTILITY_CMDLETS)
def test_unknown_parameter_is_an_error(shell: Shell, name: str) -> None:
    assert shell.run(f"'x' | {name} -NoSuchParameter 1") == ""
    assert shell.messages == [
        "A parameter cannot be found that matches parameter name 'NoSuchParameter'."
    ]
    assert shell.session.errors[0].command == name
