"""The session: -WhatIf and -Confirm (ShouldProcess) and its answers."""

from __future__ import annotations

import pytest

from tests.shell.runtime_shell import SEEN, Run


def test_what_if_changes_nothing() -> None:
    run = Run()
    out = run("Set-TestThing DB01 -WhatIf")
    assert out.strip() == 'What if: Performing the operation "Set-TestThing" on target "DB01".'
    assert SEEN == []
    assert run.ok


@pytest.mark.parametrize(
    ("answers", "done"),
    [("y\ny\n", ["a", "b"]), ("n\ny\n", ["b"]), ("a\n", ["a", "b"]), ("l\n", []), ("", [])],
)
def test_confirm_impact_high_prompts(answers: str, done: list[str]) -> None:
    run = Run(stdin=answers)
    out = run("'a','b' | Set-TestThing")
    assert "Are you sure you want to perform this action?" in out
    assert '[Y] Yes [A] Yes to All [N] No [L] No to All [?] Help (default is "Y"): ' in out
    assert [s["Identity"] for s in SEEN] == done


def test_confirm_false_never_prompts() -> None:
    run = Run()
    out = run("'a' | Set-TestThing -Confirm:$false")
    assert "Confirm" not in out
    assert [s["Identity"] for s in SEEN] == ["a"]
