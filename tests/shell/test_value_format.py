"""How one value reads as text: table cells and .NET date formats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from casarray.shell.value_format import cell_text, format_datetime


def test_cell_text() -> None:
    assert cell_text(None) == ""
    assert cell_text(True) == "True"
    assert cell_text(["a", "b"]) == "{a, b}"
    assert cell_text([1, 2, 3, 4, 5]) == "{1, 2, 3, 4...}"
    assert cell_text([]) == "{}"


def test_format_datetime() -> None:
    value = datetime(2010, 3, 7, 14, 5, 9, 120000, tzinfo=timezone(timedelta(hours=8)))
    assert format_datetime(value, "yyyy-MM-dd HH:mm:ss") == "2010-03-07 14:05:09"
    assert format_datetime(value, "d") == "3/7/2010"
    assert format_datetime(value, "dddd, MMMM d") == "Sunday, March 7"
    assert format_datetime(value, "h:mm tt") == "2:05 PM"
    assert format_datetime(value, "s") == "2010-03-07T14:05:09"
    assert format_datetime(value, "o") == "2010-03-07T14:05:09.1200000+08:00"
    assert format_datetime(value, "'Day' d") == "Day 7"
