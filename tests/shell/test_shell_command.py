"""`casarray shell`: -c, script files, standard input, exit status, the interactive
prompt (multi-line input, history) and tab completion."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.shell.runtime import Host, Session
from casarray.shell.shell_command import ShellCompleter, repl
from tests.conftest import build_bj


def casarray(*args: str, url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CASARRAY_DIRECTORY=url)
    return subprocess.run(
        [sys.executable, "-m", "casarray", *args],
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite directory with the BJ/SH topology and DB01 (the command line is the same
    on both back ends; the directory tests cover PostgreSQL)."""
    url = f"sqlite:///{tmp_path / 'directory.db'}"
    with Directory.open(url) as d:
        build_bj(d)
        d.databases.new("DB01", "MBX01")
    return url


def test_command_and_exit_status(url: str) -> None:
    done = casarray("shell", "-c", "Get-ExchangeServer CAS01 | Select-Object -Expand Fqdn", url=url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CAS01.lab.net"

    done = casarray("shell", "-c", "Get-MailboxDatabase NoSuchDb; 'still runs'", url=url)
    assert done.returncode == 1
    assert "still runs" in done.stdout
    assert 'The mailbox database "NoSuchDb" couldn\'t be found' in done.stderr


def test_script_file_with_bom_and_continuations(url: str, tmp_path: Path) -> None:
    script = tmp_path / "update.ps1"
    script.write_text(
        "\ufeff# point every database at the array\n"
        'New-ClientAccessArray -Name "BJ CAS Array" `\n'
        '  -Fqdn "bj-cas.lab.net" -Site "BJ"\n'
        "Get-MailboxDatabase |\n"
        "  Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net\n",
        encoding="utf-8",
    )
    done = casarray("shell", str(script), url=url)
    assert done.returncode == 0, done.stderr
    with Directory.open(url) as d:
        assert d.databases.one("DB01").rpc_client_access_server == "bj-cas.lab.net"


def test_missing_script_file(url: str, tmp_path: Path) -> None:
    done = casarray("shell", str(tmp_path / "nope.ps1"), url=url)
    assert done.returncode == 2
    assert "cannot read" in done.stderr


def test_commands_on_standard_input(url: str) -> None:
    done = casarray("shell", url=url, stdin='$n = (Get-ExchangeServer).Count\n"servers: $n"\n')
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "servers: 5"


def test_directory_option_beats_environment(url: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    done = casarray("shell", "--directory", other, "-c", "(Get-ExchangeServer).Count", url=url)
    assert done.stdout.strip() == "0"


# -- tab completion -----------------------------------------------------------------


@pytest.fixture
def completer(url: str) -> ShellCompleter:
    return ShellCompleter(Session(directory_url=url))


@pytest.mark.parametrize(
    ("line", "word", "expected", "absent"),
    [
        ("Get-Mailbox", "Get-Mailbox", ["Get-Mailbox", "Get-MailboxDatabase"], []),
        ("new-client", "new-client", ["New-ClientAccessArray"], ["Get-ClientAccessArray"]),
        ("Set-MailboxDatabase DB01 -Rp", "-Rp", ["-RpcClientAccessServer"], ["-Name"]),
        ("New-ClientAccessArray -Site ", "", ["BJ", "SH"], []),
        ("New-ClientAccessArray -Site s", "s", ["SH"], ["BJ"]),
        ("Get-MailboxDatabase | Set-MailboxDatabase ", "", ["DB01"], []),
        ("Get-ExchangeServer C", "C", ["CAS01", "CAS02", "CAS03"], ["MBX01"]),
        ("Get-ADReplicationSite | fl; Get-ClientAccessServer ", "", ["CAS01"], []),
        ("New-ExchangeServer -Roles ", "", ["ClientAccess", "Mailbox", "HubTransport"], []),
    ],
)
def test_completion(
    completer: ShellCompleter, line: str, word: str, expected: list[str], absent: list[str]
) -> None:
    got_word, options = completer.suggestions(line)
    assert got_word == word
    for option in expected:
        assert option in options
    for option in absent:
        assert option not in options


def test_completion_quotes_names_with_spaces(completer: ShellCompleter, url: str) -> None:
    with Directory.open(url) as d:
        d.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    _, options = completer.suggestions("Get-ClientAccessArray ")
    assert '"BJ CAS Array"' in options
    assert "bj-cas.lab.net" in options


# -- the interactive prompt --------------------------------------------------------------


def test_repl_runs_multi_line_input_and_keeps_history(url: str, casarray_home: Path) -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    out = io.StringIO()
    session = Session(directory_url=url, host=Host(out, io.StringIO(), terminal=False))
    with create_pipe_input() as pipe:
        pipe.send_text("Get-ADReplicationSite |\r  Select-Object -Expand Name\r")
        pipe.send_text('"unfinished\rstring"\r')
        pipe.send_text("exit\r")
        status = repl(session, input=pipe, output=DummyOutput())
    assert status == 0
    text = out.getvalue()
    assert "BJ\nSH\n" in text
    assert "unfinished\nstring" in text
    history = (casarray_home / "shell_history").read_text()
    assert "Select-Object -Expand Name" in history


def test_repl_exit_status_after_an_error(url: str) -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    err = io.StringIO()
    session = Session(directory_url=url, host=Host(io.StringIO(), err, terminal=False))
    with create_pipe_input() as pipe:
        pipe.send_text("Get-Nothing\r")
        pipe.close()
        status = repl(session, input=pipe, output=DummyOutput())
    assert status == 1
    assert "The term 'Get-Nothing' is not recognized" in err.getvalue()
