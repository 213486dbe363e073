"""The *-Object cmdlets: Where-Object, ForEach-Object, Select-Object, Sort-Object and
Measure-Object, run through the real parser and runtime."""

from __future__ import annotations

from tests.shell.cmdlets.utility.utility_shell import ITEM_TYPE, GetUtilTestStream, Shell


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
