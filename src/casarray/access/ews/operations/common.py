"""What the operation families share: reading shapes and paging views, writing
folders, the usual shape of a batch operation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from xml.etree.ElementTree import Element

from casarray.access.ews.context import EwsContext, FolderView
from casarray.access.ews.properties import (
    EXTENDED,
    ExtendedValue,
    extended_id,
    extended_property,
    field_path,
)
from casarray.access.ews.soap import (
    EwsError,
    element,
    fill_status,
    m,
    operation_response,
    response_message,
    sub,
    t,
)

X = TypeVar("X")

# -- shapes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """An ItemShape or FolderShape: the base shape and the property paths asked for."""

    base: str  # IdOnly, Default or AllProperties
    additional: frozenset[str]
    body_type: str = "Best"
    include_mime: bool = False

    def wants(self, uri: str) -> bool:
        return uri in self.additional


def read_shape(op: Element, name: str) -> Shape:
    """The `m:{name}` shape of the operation (ItemShape, FolderShape)."""
    shape = op.find(m(name))
    if shape is None:
        raise EwsError("ErrorInvalidRequest", f"The request has no {name}.")
    base = (shape.findtext(t("BaseShape")) or "").strip()
    if base not in ("IdOnly", "Default", "AllProperties"):
        raise EwsError(
            "ErrorInvalidRequest",
            f"{name}/BaseShape is '{base}'; it must be IdOnly, Default or AllProperties.",
        )
    additional: set[str] = set()
    holder = shape.find(t("AdditionalProperties"))
    for prop in holder if holder is not None else ():
        path = field_path(prop)
        if path:
            additional.add(path)
    body_type = (shape.findtext(t("BodyType")) or "Best").strip()
    if body_type not in ("Best", "HTML", "Text"):
        raise EwsError(
            "ErrorInvalidRequest", f"BodyType is '{body_type}'; it must be Best, HTML or Text."
        )
    mime = (shape.findtext(t("IncludeMimeContent")) or "false").strip().lower() in ("true", "1")
    return Shape(base, frozenset(additional), body_type, mime)


# -- paging ---------------------------------------------------------------------------------


def paginate(op: Element, entries: Sequence[X]) -> tuple[list[X], dict[str, object]]:
    """The entries of the paging view of `op` (IndexedPageItemView,
    FractionalPageItemView, or none: all), and the RootFolder attributes."""
    total = len(entries)
    indexed = op.find(m("IndexedPageItemView"))
    fractional = op.find(m("FractionalPageItemView"))
    if indexed is not None:
        limit = _int(indexed.get("MaxEntriesReturned"), "MaxEntriesReturned", total or 1)
        offset = _int(indexed.get("Offset"), "Offset", 0)
        base = indexed.get("BasePoint") or "Beginning"
        if base not in ("Beginning", "End"):
            raise EwsError("ErrorInvalidRequest", f"BasePoint is '{base}'; Beginning or End.")
        if base == "End":
            stop = max(total - offset, 0)
            start = max(stop - limit, 0)
        else:
            start = min(offset, total)
            stop = min(start + limit, total)
        chosen = list(entries[start:stop])
        next_offset = stop if base == "Beginning" else total - start
        return chosen, {
            "IndexedPagingOffset": next_offset,
            "TotalItemsInView": total,
            "IncludesLastItemInRange": stop >= total if base == "Beginning" else start <= 0,
        }
    if fractional is not None:
        limit = _int(fractional.get("MaxEntriesReturned"), "MaxEntriesReturned", total or 1)
        numerator = _int(fractional.get("Numerator"), "Numerator", 0)
        denominator = _int(fractional.get("Denominator"), "Denominator", 1)
        if denominator == 0 or numerator > denominator:
            raise EwsError(
                "ErrorInvalidRequest",
                "FractionalPageItemView needs 0 <= Numerator <= Denominator and Denominator > 0.",
            )
        base = fractional.get("BasePoint") or "Beginning"
        offset = total * numerator // denominator
        if base == "End":
            stop = max(total - offset, 0)
            start = max(stop - limit, 0)
        else:
            start = min(offset, total)
            stop = min(start + limit, total)
        chosen = list(entries[start:stop])
        return chosen, {
            "NumeratorOffset": stop if base == "Beginning" else total - start,
            "AbsoluteDenominator": total,
            "TotalItemsInView": total,
            "IncludesLastItemInRange": stop >= total if base == "Beginning" else start <= 0,
        }
    return list(entries), {"TotalItemsInView": total, "IncludesLastItemInRange": True}


def indexed_window(op: Element) -> tuple[int, int] | None:
    """(offset, limit) of an IndexedPageItemView from the beginning with a
    MaxEntriesReturned (exchangelib's paging), which `paged_attributes` completes; None
    for any other view (page with `paginate`)."""
    indexed = op.find(m("IndexedPageItemView"))
    if indexed is None or (indexed.get("BasePoint") or "Beginning") != "Beginning":
        return None
    if not indexed.get("MaxEntriesReturned"):
        return None
    limit = _int(indexed.get("MaxEntriesReturned"), "MaxEntriesReturned", 1)
    return _int(indexed.get("Offset"), "Offset", 0), limit


def paged_attributes(offset: int, count: int, total: int) -> dict[str, object]:
    """The RootFolder attributes of an `indexed_window` page of `count` entries."""
    stop = min(offset, total) + count
    return {
        "IndexedPagingOffset": stop,
        "TotalItemsInView": total,
        "IncludesLastItemInRange": stop >= total,
    }


def _int(value: str | None, what: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise EwsError("ErrorInvalidRequest", f"{what} is '{value}', not a number.") from None
    if n < 0:
        raise EwsError("ErrorInvalidRequest", f"{what} is {n}; it can't be negative.")
    return n


# -- folders --------------------------------------------------------------------------------

FOLDER_PROPS = (
    "folder:ParentFolderId",
    "folder:FolderClass",
    "folder:DisplayName",
    "folder:TotalCount",
    "folder:ChildFolderCount",
    "folder:UnreadCount",
)


# The MAPI properties of a folder, by `extended_id` (DavMail asks for them by tag):
# (kind for restrictions, value). PR_LOCAL_COMMIT_TIME_MAX (0x670A) isn't kept here.
FOLDER_EXTENDED: dict[str, tuple[str, Callable[[EwsContext, FolderView], ExtendedValue]]] = {
    "tag:0x3613": ("string", lambda ctx, v: v.folder_class),  # PR_CONTAINER_CLASS
    "tag:0x360a": ("bool", lambda ctx, v: bool(ctx.children_of(v))),  # PR_SUBFOLDERS
    "tag:0x3602": (  # PR_CONTENT_COUNT
        "int",
        lambda ctx, v: v.folder.exists if v.folder is not None else 0,
    ),
    "tag:0x3603": (  # PR_CONTENT_UNREAD
        "int",
        lambda ctx, v: v.folder.unseen if v.folder is not None else 0,
    ),
    "tag:0x3001": ("string", lambda ctx, v: v.display_name),  # PR_DISPLAY_NAME
    "tag:0x10f3": ("string", lambda ctx, v: v.display_name),  # PR_URL_COMP_NAME
}


def folder_extended(path: str) -> tuple[str, Callable[[EwsContext, FolderView], ExtendedValue]]:
    """The kind and value of the folder property an "ext:" path names; one not kept
    here has no value (None: left out of the folder, as Exchange does)."""
    return FOLDER_EXTENDED.get(extended_id(path).lower(), ("string", lambda ctx, v: None))


def folder_element(ctx: EwsContext, view: FolderView, shape: Shape) -> Element:
    """The `t:Folder` (or CalendarFolder, ...) of `view` in `shape`."""
    e = element(t(view.element_type))
    folder = view.folder
    modseq = folder.highest_modseq if folder is not None else 0
    sub(e, t("FolderId"), Id=ctx.ids.folder_id(view.ref), ChangeKey=ctx.ids.change_key(modseq))
    wanted = set(FOLDER_PROPS) if shape.base == "AllProperties" else set(shape.additional)
    if shape.base == "Default":
        wanted |= {
            "folder:DisplayName",
            "folder:TotalCount",
            "folder:ChildFolderCount",
            "folder:UnreadCount",
        }
    if "folder:ParentFolderId" in wanted:
        parent = ctx.parent_of(view)
        if parent is not None:
            pmod = parent.folder.highest_modseq if parent.folder is not None else 0
            sub(
                e,
                t("ParentFolderId"),
                Id=ctx.ids.folder_id(parent.ref),
                ChangeKey=ctx.ids.change_key(pmod),
            )
    if "folder:FolderClass" in wanted and view.folder_class is not None:
        sub(e, t("FolderClass"), view.folder_class)
    if "folder:DisplayName" in wanted:
        sub(e, t("DisplayName"), view.display_name)
    if "folder:TotalCount" in wanted and view.element_type != "CalendarFolder":
        sub(e, t("TotalCount"), folder.exists if folder is not None else 0)
    if "folder:ChildFolderCount" in wanted:
        sub(e, t("ChildFolderCount"), len(ctx.children_of(view)))
    for path in sorted(p for p in shape.additional if p.startswith(EXTENDED)):
        extended_property(e, path, folder_extended(path)[1](ctx, view))
    if "folder:UnreadCount" in wanted and view.element_type == "Folder":
        sub(e, t("UnreadCount"), folder.unseen if folder is not None else 0)
    return e


# -- batches --------------------------------------------------------------------------------


def batch(operation: str, entries: Sequence[X], each: Callable[[X, Element], None]) -> Element:
    """The response of a batch operation: one response message per entry, filled by
    `each(entry, message)`; an EwsError of one entry makes its message an error."""
    messages = []
    for entry in entries:
        msg = element(m(f"{operation}ResponseMessage"))
        try:
            body = element("holder")
            each(entry, body)
        except EwsError as exc:
            messages.append(response_message(operation, exc))
            continue
        fill_status(msg)
        msg.extend(list(body))
        messages.append(msg)
    return operation_response(operation, messages)


def children(op: Element, name: str, what: str) -> list[Element]:
    """The children of `m:{name}` (FolderIds, ItemIds): ErrorInvalidRequest when none."""
    holder = op.find(m(name))
    if holder is None or not len(holder):
        raise EwsError("ErrorInvalidRequest", f"The request names no {what} ({name} is empty).")
    return list(holder)
