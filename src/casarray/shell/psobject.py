"""PSObject: what flows through a pipeline when it is not a plain value. An ordered
bag of properties with case-insensitive names, a type name (used to pick the default
view) and the object it wraps (a directory record, so that an identity parameter can
take the object itself)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

CUSTOM_OBJECT = "System.Management.Automation.PSCustomObject"


class PSObject:
    __slots__ = ("_keys", "_props", "base", "display", "type_name")

    def __init__(
        self,
        properties: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        *,
        type_name: str = CUSTOM_OBJECT,
        base: Any = None,
        display: str | None = None,
    ) -> None:
        items = properties.items() if isinstance(properties, Mapping) else properties
        self._props: dict[str, Any] = {}
        self._keys: dict[str, str] = {}
        for name, value in items:
            self.set(name, value)
        self.type_name = type_name
        self.base = base
        self.display = display

    def set(self, name: str, value: Any) -> None:
        key = name.lower()
        canonical = self._keys.setdefault(key, name)
        self._props[canonical] = value

    def has(self, name: str) -> bool:
        return name.lower() in self._keys

    def get(self, name: str, default: Any = None) -> Any:
        canonical = self._keys.get(name.lower())
        return self._props[canonical] if canonical is not None else default

    def property_names(self) -> list[str]:
        return list(self._props)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._props.items())

    @property
    def guid(self) -> Any:
        """Lets an identity lookup take the object itself (by its GUID)."""
        if self.base is not None and hasattr(self.base, "guid"):
            return self.base.guid
        return self.get("Guid")

    def __str__(self) -> str:
        if self.display is not None:
            return self.display
        for key in ("Identity", "Name"):
            if self.has(key):
                return str(self.get(key))
        inner = "; ".join(f"{k}={v}" for k, v in self._props.items())
        return "@{" + inner + "}"

    def __repr__(self) -> str:
        return f"PSObject({self.type_name}, {self._props!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PSObject):
            return NotImplemented
        return self.type_name == other.type_name and self._props == other._props

    __hash__ = None  # type: ignore[assignment]
