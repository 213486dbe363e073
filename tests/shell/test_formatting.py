"""Out-Default, Format-Table and Format-List: what a user sees, through the real parser
and runtime. Objects come from test-only cmdlets and [pscustomobject] literals."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pytest

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.formatting import (
    FormattedOutput,
    Formatter,
    fit_widths,
    format_list,
    format_table,
)
from casarray.shell.psobject import PSObject
from casarray.shell.runtime import Host, Session
from casarray.shell.views import register_view

ITEM_TYPE = "Casarray.Test.FormatItem"
register_view(ITEM_TYPE, ("Name", "Count", "Members"))


def item(i: int, name: str | None = None) -> PSObject:
    return PSObject(
        {
            "Name": name or f"DB{i + 1:02d}",
            "Count": i * 10,
            "Members": [f"CAS{j + 1:02d}" for j in range(i)],
            "Enabled": i % 2 == 0,
            "Note": None,
        },
        type_name=ITEM_TYPE,
    )


@register
class GetFmtTestItem(Cmdlet):
    name = "Get-FmtTestItem"
    parameters = (Parameter("Count", kind="int", position=0),)
    synopsis = "Test only: outputs items with a default view."
    examples = (Example("Get-FmtTestItem 3", "Three items."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        for i in range(params.get("Count", 3)):
            yield item(i)


@register
class GetFmtTestStream(Cmdlet):
    """Yields items, noting before each one whether the table header is out yet."""

    name = "Get-FmtTestStream"
    parameters = (Parameter("Count", kind="int", position=0),)
    synopsis = "Test only: a stream of items that watches the output."
    examples = (Example("Get-FmtTestStream 100", "A hundred items."),)
    header_seen: ClassVar[list[bool]] = []

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        out = self.session.host.out
        for i in range(params.get("Count", 100)):
            self.header_seen.append("----" in out.getvalue())
            yield item(i % 5, name=f"DB{i + 1:03d}" if i != 99 else "DB100-LONG-NAME")


class Shell:
    def __init__(self, width: int = 120, terminal: bool = False) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.session = Session(
            host=Host(
                out=self.out, err=self.err, stdin=io.StringIO(), terminal=terminal, width=width
            )
        )

    def run(self, source: str) -> str:
        start = len(self.out.getvalue())
        self.session.run(source)
        return self.out.getvalue()[start:]


@pytest.fixture
def shell() -> Shell:
    return Shell()


def lines(text: str) -> list[str]:
    return text.split("\n")


# -- Out-Default --------------------------------------------------------------------------


def test_default_view_is_a_table(shell: Shell) -> None:
    assert shell.run("Get-FmtTestItem 3") == (
        "\n"
        "Name Count Members\n"
        "---- ----- -------\n"
        "DB01     0 {}\n"
        "DB02    10 {CAS01}\n"
        "DB03    20 {CAS01, CAS02}\n"
        "\n"
    )
    assert shell.session.errors == []


def test_few_properties_table_many_properties_list(shell: Shell) -> None:
    assert shell.run("[pscustomobject]@{Name='DB01'; Server='MBX01'}") == (
        "\nName Server\n---- ------\nDB01 MBX01\n\n"
    )
    out = shell.run(
        "[pscustomobject]@{Name='DB01'; Server='MBX01'; Recovery=$false; "
        "Members=@('a','b'); Quota=$null}"
    )
    assert out == (
        "\nName     : DB01\nServer   : MBX01\nRecovery : False\nMembers  : {a, b}\nQuota    :\n\n"
    )


def test_list_puts_a_blank_line_between_objects(shell: Shell) -> None:
    shell.run("$o = [pscustomobject]@{A=1; B=2; C=3; D=4; E='x'}")
    assert shell.run("$o, $o") == (
        "\nA : 1\nB : 2\nC : 3\nD : 4\nE : x\n\nA : 1\nB : 2\nC : 3\nD : 4\nE : x\n\n"
    )


def test_scalars_print_one_per_line(shell: Shell) -> None:
    assert (
        shell.run("'text'; 42; 1.5; $true; $null; @(1, 'two')") == "text\n42\n1.5\nTrue\n1\ntwo\n"
    )


def test_a_change_of_type_starts_a_new_block(shell: Shell) -> None:
    shell.run("$a = [pscustomobject]@{A=1}; $b = [pscustomobject]@{A=2}; $d = Get-FmtTestItem 1")
    assert shell.run("@($a, $b, 'text', $d, $a)") == (
        "\nA\n-\n1\n2\n\n"
        "text\n"
        "\nName Count Members\n---- ----- -------\nDB01     0 {}\n\n"
        "\nA\n-\n1\n\n"
    )


def test_selected_objects_show_their_own_properties(shell: Shell) -> None:
    assert shell.run("Get-FmtTestItem 2 | Select-Object Name, Enabled") == (
        "\nName Enabled\n---- -------\nDB01    True\nDB02   False\n\n"
    )


def test_collections_show_at_most_four_items(shell: Shell) -> None:
    shell.run("$o = [pscustomobject]@{Name='x'; Members=@(1,2,3,4,5,6)}")
    assert "x    {1, 2, 3, 4...}" in shell.run("$o")
    shell.run("$FormatEnumerationLimit = -1")
    assert "x    {1, 2, 3, 4, 5, 6}" in shell.run("$o")


def test_hashtable_is_a_name_value_table(shell: Shell) -> None:
    assert shell.run("@{Site='BJ'}") == "\nName Value\n---- -----\nSite BJ\n\n"


def test_long_values_are_cut_to_the_width() -> None:
    shell = Shell(width=40)
    out = shell.run("[pscustomobject]@{Name='a' * 30; Fqdn='b' * 30}")
    assert out == (
        "\n"
        "Name                Fqdn\n"
        "----                ----\n" + "a" * 16 + "... " + "b" * 16 + "...\n"
        "\n"
    )
    assert all(len(line) < 40 for line in lines(out))


def test_plain_text_off_a_terminal_colours_on_one() -> None:
    plain = Shell().run("Get-FmtTestItem 1")
    assert "\x1b[" not in plain
    coloured = Shell(terminal=True).run("Get-FmtTestItem 1")
    assert "\x1b[1;32mName Count Members\x1b[0m" in coloured  # styled by rich
    assert "DB01     0 {}" in coloured


def test_a_table_streams_after_its_first_rows(shell: Shell) -> None:
    GetFmtTestStream.header_seen.clear()
    out = shell.run("Get-FmtTestStream 120")
    seen = GetFmtTestStream.header_seen
    assert len(seen) == 120
    assert not seen[0]
    assert seen[50], "the header is printed once 50 objects were buffered"
    # Widths come from the first rows: a longer name later is cut.
    assert "DB... " in lines(out)[102]
    assert lines(out)[:4] == ["", "Name  Count Members", "----  ----- -------", "DB001     0 {}"]


def test_the_delay_also_ends_the_buffering() -> None:
    now = [0.0]
    formatter = Formatter(width=80, clock=lambda: now[0])
    assert formatter.feed(item(0)) == []
    now[0] = 0.5
    assert formatter.feed(item(1)) == [
        "",
        "Name Count Members",
        "---- ----- -------",
        "DB01     0 {}",
        "DB02    10 {CAS01}",
    ]
    assert formatter.feed(item(2)) == ["DB03    20 {CAS01, CAS02}"]
    assert formatter.finish() == [""]


def test_formatted_output_prints_as_is(shell: Shell) -> None:
    formatter = Formatter()
    assert formatter.feed(FormattedOutput(("a", "b"))) == ["a", "b"]


# -- Format-Table ------------------------------------------------------------------------------


def test_format_table_properties_and_calculated(shell: Shell) -> None:
    out = shell.run(
        "Get-FmtTestItem 3 | Format-Table Name, @{Label='Twice'; Expression={$_.Count * 2}}, "
        "@{n='Site'; e={'BJ'}; Alignment='Right'; Width=6}"
    )
    assert out == (
        "\n"
        "Name Twice   Site\n"
        "---- -----   ----\n"
        "DB01     0     BJ\n"
        "DB02    20     BJ\n"
        "DB03    40     BJ\n"
        "\n"
    )


def test_format_table_wildcards_and_hide_headers(shell: Shell) -> None:
    out = shell.run("Get-FmtTestItem 2 | ft N* -HideTableHeaders")
    assert out == "\nDB01\nDB02\n\n"
    out = shell.run("Get-FmtTestItem 2 | ft *e* -AutoSize")
    assert lines(out)[1] == "Name Members Enabled Note"


def test_format_table_group_by(shell: Shell) -> None:
    out = shell.run("Get-FmtTestItem 3 | ft Name -GroupBy Enabled")
    assert out == (
        "\n   Enabled: True\n\nName\n----\nDB01\n\n"
        "\n   Enabled: False\n\nName\n----\nDB02\n\n"
        "\n   Enabled: True\n\nName\n----\nDB03\n\n"
    )


def test_format_table_wrap_and_autosize() -> None:
    shell = Shell(width=30)
    shell.run("$o = [pscustomobject]@{Name='DB01'; Path='x' * 40}")
    assert shell.run("$o | ft") == ("\nName Path\n---- ----\nDB01 " + "x" * 21 + "...\n\n")
    assert shell.run("$o | ft -Wrap") == (
        "\nName Path\n---- ----\nDB01 " + "x" * 24 + "\n     " + "x" * 16 + "\n\n"
    )
    shell.run("$o = [pscustomobject]@{Name='N' * 20; Path='x' * 40}")
    assert shell.run("$o | ft -AutoSize") == (
        "\nName                 Path\n----                 ----\n" + "N" * 20 + " " + "xxxxx...\n\n"
    )


def test_format_table_bad_key_is_an_error(shell: Shell) -> None:
    shell.run("Get-FmtTestItem 1 | ft @{Foo='x'; e={1}}")
    assert [e.message for e in shell.session.errors] == ["The Foo key is not valid."]


# -- Format-List -----------------------------------------------------------------------------


def test_format_list_every_property(shell: Shell) -> None:
    out = shell.run("Get-FmtTestItem 2 | Format-List")
    assert out == (
        "\n"
        "Name    : DB01\n"
        "Count   : 0\n"
        "Members : {}\n"
        "Enabled : True\n"
        "Note    :\n"
        "\n"
        "Name    : DB02\n"
        "Count   : 10\n"
        "Members : {CAS01}\n"
        "Enabled : False\n"
        "Note    :\n"
        "\n"
    )


def test_format_list_chosen_properties(shell: Shell) -> None:
    out = shell.run("Get-FmtTestItem 1 | fl Name, @{n='Size'; e={'1 GB'}}, Co*")
    assert out == "\nName  : DB01\nSize  : 1 GB\nCount : 0\n\n"


def test_format_list_wraps_long_values() -> None:
    shell = Shell(width=30)
    out = shell.run("[pscustomobject]@{Name='DB01'; Path='y' * 40} | fl")
    assert out == "\nName : DB01\nPath : " + "y" * 22 + "\n       " + "y" * 18 + "\n\n"


def test_out_string_matches_the_display(shell: Shell) -> None:
    shown = shell.run("Get-FmtTestItem 2")
    assert shell.run("Get-FmtTestItem 2 | Out-String") == shown


# -- the pieces -------------------------------------------------------------------------------


def test_fit_widths() -> None:
    assert fit_widths([4, 5, 10], 40) == [4, 5, 10]
    assert fit_widths([30, 30], 39) == [19, 19]
    assert fit_widths([4, 50, 50], 39) == [4, 16, 16]
    assert fit_widths([20, 40], 30, autosize=True) == [20, 9]
    assert fit_widths([28, 40], 30, autosize=True) == [28]


def test_format_functions_directly() -> None:
    objects = [item(0), item(1)]
    assert format_table(objects, ["Name", "Count"]) == [
        "",
        "Name Count",
        "---- -----",
        "DB01     0",
        "DB02    10",
        "",
    ]
    assert format_list([item(0)], ["Name"]) == ["", "Name : DB01", ""]
