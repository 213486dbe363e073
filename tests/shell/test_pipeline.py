"""The pipeline: streaming and stopping upstream, command lookup (the seed's glued
parameter), cmdlet errors under -ErrorAction."""

from __future__ import annotations

from tests.shell.runtime_shell import PULLED, SEEN, Run, lines


def test_pipeline_streams_and_stops_upstream() -> None:
    assert lines("Test-Count | Test-Take 3") == ["1", "2", "3"]
    assert len(PULLED) <= 4


def test_seed_glued_parameter_is_read_as_cmdlet_and_parameter() -> None:
    run = Run()
    run("Set-TestThing-count 3 one -Confirm:$false")
    assert run.ok
    assert SEEN[0]["Count"] == 3


def test_error_action() -> None:
    run = Run()
    run("'boom','ok' | Set-TestThing -Confirm:$false")
    assert [s["Identity"] for s in SEEN] == ["ok"]  # non-terminating: the next item runs
    assert not run.ok

    run = Run()
    run("'boom','ok' | Set-TestThing -Confirm:$false -ErrorAction Stop")
    assert SEEN == []

    run = Run()
    run("'boom','ok' | Set-TestThing -Confirm:$false -ea SilentlyContinue; $Error.Count")
    assert run.err.getvalue() == ""
    assert run.out.getvalue().split() == ["1"]
