"""Default views: which properties `Out-Default` shows as a table for each object type
(as the Exchange Management Shell's format files do). `Format-List` shows every
property. Types without a view are shown by all their properties: as a table when
they have at most 4, else as a list (PowerShell's rule)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    type_name: str
    table: tuple[str, ...]


VIEWS: dict[str, View] = {}


def register_view(type_name: str, table: tuple[str, ...]) -> View:
    view = View(type_name, table)
    VIEWS[type_name] = view
    return view


def view_for(type_name: str) -> View | None:
    return VIEWS.get(type_name)
