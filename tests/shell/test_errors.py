"""Error records as the shell writes them: the command, the line, the marker, the
category."""

from __future__ import annotations

from tests.shell.runtime_shell import Run


def test_error_layout_points_at_the_command() -> None:
    run = Run()
    run("$x = 1\n  Set-TestThing boom -Confirm:$false")
    err = run.err.getvalue().splitlines()
    assert err[0].startswith('Set-TestThing : The thing "boom" couldn\'t be found.')
    assert err[1] == "At line:2 char:3"
    assert err[2] == "+   Set-TestThing boom -Confirm:$false"
    assert err[3].startswith("+   ~~~")
    assert "ObjectNotFound: (boom:String) [Set-TestThing], NotFoundError" in err[4]


def test_parse_error_is_reported_with_position() -> None:
    run = Run()
    run("Get-MailboxDatabase | | fl")
    assert not run.ok
    err = run.err.getvalue()
    assert "At line:1 char:22" in err
    assert "An empty pipe element is not allowed." in err
