"""The reconnection waits: 0.1 s doubling to 2 s, jitter shortening each by up to a
fifth, back to 0.1 s after a success."""

from __future__ import annotations

import pytest

from casarray.client.backoff import Backoff


def test_waits_double_up_to_two_seconds() -> None:
    backoff = Backoff(random=lambda: 0.0)
    assert [backoff.next() for _ in range(8)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    )
    assert backoff.attempts == 8


def test_jitter_shortens_each_wait_by_at_most_a_fifth() -> None:
    backoff = Backoff(random=lambda: 1.0)
    assert [backoff.next() for _ in range(6)] == pytest.approx([0.08, 0.16, 0.32, 0.64, 1.28, 1.6])
    real = Backoff()
    for expected in (0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0):
        assert 0.8 * expected <= real.next() <= expected


def test_reset_starts_again() -> None:
    backoff = Backoff(random=lambda: 0.0)
    for _ in range(4):
        backoff.next()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"initial": 0}, "first wait"),
        ({"initial": 3, "maximum": 2}, "first wait"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 1.0}, "jitter"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Backoff(**kwargs)  # type: ignore[arg-type]
