"""Item operations of the read path: FindItem, GetItem."""

from __future__ import annotations

from collections.abc import Callable
from xml.etree.ElementTree import Element

from casarray.access.ews.context import EwsContext

HANDLERS: dict[str, Callable[[EwsContext, Element], Element]] = {}
