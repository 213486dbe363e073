"""The read path: FindItem (Shallow; restrictions, SortOrder, IndexedPageItemView and
FractionalPageItemView) and GetItem (properties, Body as Text or HTML, MimeContent,
attachments' metadata).

FindItem reads the folder's `MessageInfo`s, and the cached ENVELOPE and
BODYSTRUCTURE only when a restriction or the sort order needs them, then those of the
page; never a message's bytes. The default order is Exchange's: newest received
first. GetItem reads the messages' bytes (for Body and MimeContent) in one read per
folder.

Restrictions are evaluated here over the folder's messages: IsEqualTo, IsNotEqualTo,
IsGreaterThan(OrEqualTo), IsLessThan(OrEqualTo), Contains (FullString, Prefixed,
Substring, ExactPhrase; IgnoreCase or Exact), Exists, And, Or, Not; on
item:Subject, message:From / Sender, message:ToRecipients / CcRecipients /
BccRecipients, item:DisplayTo / DisplayCc, item:DateTimeReceived / DateTimeSent /
DateTimeCreated / LastModifiedTime, message:IsRead, item:HasAttachments,
item:ItemClass, item:Size, item:Categories, message:InternetMessageId, and the MAPI
properties of `properties.ITEM_EXTENDED` by ExtendedFieldURI (DavMail sorts on
PR_INTERNET_ARTICLE_NUMBER, its IMAP UID). A string comparison ignores case, as
Exchange's does; a recipient field matches when any of its addresses (or display
names) does. `compile_restriction` takes the resolver of the fields, so FindFolder
evaluates its restrictions with the same code over folders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from casarray.access.ews.context import EwsContext, FolderView, run_store
from casarray.access.ews.ids import FolderRef, ItemRef
from casarray.access.ews.operations.common import (
    batch,
    children,
    indexed_window,
    paged_attributes,
    paginate,
    read_shape,
)
from casarray.access.ews.properties import (
    EXTENDED,
    ITEM_EXTENDED,
    RAW_KEYS,
    Item,
    display,
    extended_id,
    field_path,
    item_extended,
    message_element,
    wanted,
)
from casarray.access.ews.soap import EwsError, local_name, m, sub, t
from casarray.access.ews.summaries import SUMMARIES, Summary
from casarray.mailstore.interface import MessageInfo

Value = str | bool | int | datetime | None
Getter = Callable[[Any], list[Value]]
Resolver = Callable[[Element | None, str], tuple[str, str, Getter]]


def _addresses(kind: str) -> Getter:
    def get(item: Item) -> list[Value]:
        out: list[Value] = []
        for a in item.addresses(kind):
            out.append(a.address)
            if a.name:
                out.append(a.name)
        return out

    return get


FIELDS: dict[str, tuple[str, Getter]] = {
    "item:Subject": ("string", lambda i: [i.subject]),
    "message:From": ("string", _addresses("from")),
    "message:Sender": ("string", _addresses("sender")),
    "message:ToRecipients": ("string", _addresses("to")),
    "message:CcRecipients": ("string", _addresses("cc")),
    "message:BccRecipients": ("string", _addresses("bcc")),
    "item:DisplayTo": ("string", lambda i: [display(i.addresses("to"))]),
    "item:DisplayCc": ("string", lambda i: [display(i.addresses("cc"))]),
    "item:DateTimeReceived": ("date", lambda i: [i.received]),
    "item:DateTimeCreated": ("date", lambda i: [i.received]),
    "item:LastModifiedTime": ("date", lambda i: [i.received]),
    "item:DateTimeSent": ("date", lambda i: [i.sent or i.received]),
    "message:IsRead": ("bool", lambda i: [i.is_read]),
    "item:HasAttachments": ("bool", lambda i: [i.has_attachments]),
    "item:ItemClass": ("string", lambda i: ["IPM.Note"]),
    "item:Size": ("int", lambda i: [i.info.size]),
    "item:Categories": ("string", lambda i: list(i.categories)),
    "message:InternetMessageId": ("string", lambda i: [i.envelope.message_id]),
    "item:Importance": ("string", lambda i: ["Normal"]),
}
# Fields read from the MessageInfo alone (no cached parts needed).
CHEAP = frozenset(
    {"item:DateTimeReceived", "item:DateTimeCreated", "item:LastModifiedTime", "message:IsRead"}
    | {"item:ItemClass", "item:Size", "item:Categories", "item:Importance"}
    | (set(ITEM_EXTENDED) - RAW_KEYS)
)

Predicate = Callable[[Any], bool]


def as_values(value: object) -> list[Value]:
    """An extended property's value as the list a restriction compares."""
    if value is None:
        return []
    if isinstance(value, list):
        return list(value)
    if isinstance(value, bytes):
        return [value.hex()]
    assert isinstance(value, str | bool | int | datetime)
    return [value]


def _extended_getter(get: Callable[[Any], object]) -> Getter:
    return lambda item: as_values(get(item))


def _field(e: Element | None, what: str) -> tuple[str, str, Getter]:
    if e is None or local_name(e.tag) not in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI"):
        raise EwsError("ErrorInvalidRestriction", f"{what} names no FieldURI.")
    uri = field_path(e)
    if uri.startswith(EXTENDED):
        found = item_extended(uri)
        if found is None:
            raise EwsError(
                "ErrorUnsupportedPathForQuery",
                f"The extended property {extended_id(uri)} can't be used in a {what} here.",
            )
        # the MessageInfo's, but PR_MESSAGE_FLAGS (its attachment bit is the structure's)
        key = extended_id(uri).lower()
        return (key if key != "tag:0x0e07" else uri), found[0], _extended_getter(found[1])
    if uri not in FIELDS:
        raise EwsError(
            "ErrorUnsupportedPathForQuery",
            f"The property '{uri or local_name(e.tag)}' can't be used in a {what} here.",
        )
    kind, get = FIELDS[uri]
    return uri, kind, get


def _constant(kind: str, text: str, uri: str) -> Value:
    text = text.strip()
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if kind == "int":
            return int(text)
        if kind == "date":
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except ValueError:
        raise EwsError(
            "ErrorInvalidValueForProperty", f"'{text}' is not a valid value for {uri} ({kind})."
        ) from None
    return text


def _comparable(kind: str, value: Value) -> Value:
    return value.lower() if kind == "string" and isinstance(value, str) else value


COMPARISONS: dict[str, Callable[[object, object], bool]] = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,  # type: ignore[operator]
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,  # type: ignore[operator]
    "IsLessThan": lambda a, b: a < b,  # type: ignore[operator]
    "IsLessThanOrEqualTo": lambda a, b: a <= b,  # type: ignore[operator]
}


def compile_restriction(
    e: Element, uris: set[str], depth: int = 0, field: Resolver | None = None
) -> Predicate:
    """A predicate for the restriction expression `e`; `uris` collects the fields it
    reads; `field` resolves a field (the items' by default)."""
    resolve = field or _field
    if depth > 50:
        raise EwsError("ErrorInvalidRestriction", "The restriction is nested too deeply.")
    kind = local_name(e.tag)
    if kind in ("And", "Or"):
        parts = [compile_restriction(c, uris, depth + 1, resolve) for c in e]
        if not parts:
            raise EwsError("ErrorInvalidRestriction", f"{kind} has no expressions.")
        if kind == "And":
            return lambda item: all(p(item) for p in parts)
        return lambda item: any(p(item) for p in parts)
    if kind == "Not":
        if len(e) != 1:
            raise EwsError("ErrorInvalidRestriction", "Not must hold exactly one expression.")
        inner = compile_restriction(e[0], uris, depth + 1, resolve)
        return lambda item: not inner(item)
    if kind == "Exists":
        uri, _, get = resolve(e[0] if len(e) else None, "Exists")
        uris.add(uri)
        return lambda item: any(v not in (None, "") for v in get(item))
    if kind in COMPARISONS:
        uri, ftype, get = resolve(e[0] if len(e) else None, kind)
        uris.add(uri)
        holder = e.find(t("FieldURIOrConstant"))
        constant = holder.find(t("Constant")) if holder is not None else None
        if constant is None or constant.get("Value") is None:
            raise EwsError(
                "ErrorInvalidRestriction", f"{kind} on {uri} has no FieldURIOrConstant/Constant."
            )
        want = _comparable(ftype, _constant(ftype, constant.get("Value") or "", uri))
        compare = COMPARISONS[kind]

        def test(item: Item) -> bool:
            values = [_comparable(ftype, v) for v in get(item) if v is not None]
            if kind == "IsNotEqualTo":
                return all(compare(v, want) for v in values)
            try:
                return any(compare(v, want) for v in values)
            except TypeError:
                return False

        return test
    if kind == "Contains":
        uri, ftype, get = resolve(e[0] if len(e) else None, "Contains")
        uris.add(uri)
        constant = e.find(t("Constant"))
        if constant is None:
            raise EwsError("ErrorInvalidRestriction", f"Contains on {uri} has no Constant.")
        mode = e.get("ContainmentMode") or "Substring"
        comparison = e.get("ContainmentComparison") or "IgnoreCase"
        needle = constant.get("Value") or ""
        exact = comparison == "Exact"
        if not exact:
            needle = needle.lower()

        def contains(item: Item) -> bool:
            for v in get(item):
                if not isinstance(v, str):
                    continue
                hay = v if exact else v.lower()
                if mode == "FullString" and hay == needle:
                    return True
                if mode in ("Prefixed", "PrefixOnWords") and (
                    hay.startswith(needle)
                    or (mode == "PrefixOnWords" and any(w.startswith(needle) for w in hay.split()))
                ):
                    return True
                if mode in ("Substring", "ExactPhrase") and needle in hay:
                    return True
            return False

        return contains
    raise EwsError("ErrorInvalidRestriction", f"'{kind}' is not a restriction this server knows.")


def _sort_keys(op: Element, uris: set[str]) -> list[tuple[Getter, bool]]:
    order = op.find(m("SortOrder"))
    keys: list[tuple[Getter, bool]] = []
    for f in order if order is not None else ():
        direction = f.get("Order") or "Ascending"
        if direction not in ("Ascending", "Descending"):
            raise EwsError("ErrorInvalidRequest", f"Order is '{direction}'.")
        uri, _, get = _field(f[0] if len(f) else None, "SortOrder")
        uris.add(uri)
        keys.append((get, direction == "Descending"))
    return keys


def _sort_value(values: list[Value]) -> tuple[int, object]:
    v = values[0] if values else None
    if v is None:
        return (0, "")
    if isinstance(v, str):
        return (1, v.lower())
    if isinstance(v, datetime):
        return (1, v.timestamp())
    return (1, v)


def load_items(
    ctx: EwsContext,
    view: FolderView,
    uids: Sequence[int] | None,
    *,
    parts: bool,
    raw: bool = False,
    texts: bool = False,
    shared: bool = True,
) -> list[Item]:
    """The folder's messages (those of `uids`, in that order, when given) as Items:
    with the cached ENVELOPE and BODYSTRUCTURE when `parts`, the message's bytes when
    `raw`, and the bytes of those whose bodies aren't known yet when `texts`. `shared`
    gives them the process's summaries (`summaries.SUMMARIES`); a FindItem reading a
    whole folder to page it doesn't, but for the page (`share_summaries`)."""
    store = ctx.store
    if uids is None:
        infos = run_store(store.messages, view.name)
    else:
        found = run_store(store.infos, view.name, list(uids))
        infos = [found[u] for u in uids if u in found]
    items = items_of(ctx, view, infos, shared=shared)
    if parts:
        fill_parts(ctx, view, items)
    need = [i for i in items if raw or (texts and i.summary.texts is None)]
    if need:
        bodies = run_store(store.bodies, view.name, [i.info.uid for i in need])
        for item in need:
            item.raw = bodies.get(item.info.uid)
    return items


def items_of(
    ctx: EwsContext, view: FolderView, infos: Sequence[MessageInfo], *, shared: bool = True
) -> list[Item]:
    """Items of the folder's messages `infos` (see `load_items`)."""
    folder = view.folder
    validity = folder.uid_validity if folder is not None else 0
    modseq = folder.highest_modseq if folder is not None else 0
    guid = ctx.mailbox_guid
    items = [
        Item(ItemRef(guid, view.name, validity, info.uid), info, Summary(info.size), None, modseq)
        for info in infos
    ]
    if shared:
        share_summaries(ctx, items)
    return items


def share_summaries(ctx: EwsContext, items: Sequence[Item]) -> None:
    """Give `items` the process's summaries of their messages (what they already read
    stays with those they had when it was read)."""
    where = ctx.store_location or ctx.mailbox.database
    shared = SUMMARIES.get_many([((where, i.ref), i.info.size) for i in items])
    for item, summary in zip(items, shared, strict=True):
        if summary.parts is None and item.summary.parts is not None:
            summary.parts = item.summary.parts
        item.summary = summary


def fill_parts(ctx: EwsContext, view: FolderView, items: Sequence[Item]) -> None:
    """Read the cached ENVELOPE and BODYSTRUCTURE of those of `items` whose summary
    hasn't them."""
    missing = [i for i in items if i.summary.parts is None]
    if missing:
        cached = run_store(ctx.store.cached, view.name, [i.info.uid for i in missing])
        for item in missing:
            item.summary.parts = cached.get(item.info.uid)


def find_item(ctx: EwsContext, op: Element) -> Element:
    shape = read_shape(op, "ItemShape")
    traversal = op.get("Traversal") or "Shallow"
    if traversal not in ("Shallow", "SoftDeleted", "Associated"):
        raise EwsError(
            "ErrorInvalidRequest", f"Traversal is '{traversal}'; FindItem supports Shallow."
        )
    if op.find(m("GroupBy")) is not None or op.find(m("DistinguishedGroupBy")) is not None:
        raise EwsError("ErrorInvalidRequest", "FindItem with grouping isn't supported.")
    for view_name in ("CalendarView", "ContactsView"):
        if op.find(m(view_name)) is not None:
            raise EwsError("ErrorInvalidRequest", f"{view_name} isn't supported by this server.")
    uris: set[str] = set()
    restriction = op.find(m("Restriction"))
    predicate: Predicate | None = None
    if restriction is not None:
        if len(restriction) != 1:
            raise EwsError("ErrorInvalidRestriction", "Restriction must hold one expression.")
        predicate = compile_restriction(restriction[0], uris)
    keys = _sort_keys(op, uris)
    props = wanted(shape.base, shape.additional, find=True, mime=False)

    def each(e: Element, out: Element) -> None:
        view = ctx.folder_of(e)
        items: list[Item] = []
        if predicate is None and not keys and view.folder is not None and traversal == "Shallow":
            # the default order: the store reads the page alone (exchangelib's paging),
            # or the MessageInfos to page here, with Items for the page alone
            window = indexed_window(op)
            if window is not None:
                total, chosen = run_store(ctx.store.newest, view.name, *window)
                attrs = paged_attributes(window[0], len(chosen), total)
            else:
                infos = run_store(ctx.store.messages, view.name)
                infos.sort(key=lambda i: (i.internal_date, i.uid), reverse=True)
                chosen, attrs = paginate(op, infos)
            wants_more = bool(props - {"item:ItemId"})
            page = items_of(ctx, view, chosen, shared=wants_more)
            if wants_more:
                fill_parts(ctx, view, page)
            write_page(page, attrs, out)
            return
        if view.folder is not None and traversal == "Shallow":
            items = load_items(
                ctx,
                view,
                None,
                parts=bool(uris - CHEAP),
                raw=bool(uris & RAW_KEYS),
                shared=False,
            )
        if predicate is not None:
            items = [i for i in items if predicate(i)]
        if keys:
            for get, descending in reversed(keys):
                items.sort(key=lambda i, g=get: _sort_value(g(i)), reverse=descending)  # type: ignore[misc]
        else:
            items.sort(key=lambda i: (i.info.internal_date, i.info.uid), reverse=True)
        page, attrs = paginate(op, items)
        if props - {"item:ItemId"}:
            share_summaries(ctx, page)
            fill_parts(ctx, view, page)
        write_page(page, attrs, out)

    def write_page(page: list[Item], attrs: dict[str, object], out: Element) -> None:
        root = sub(out, m("RootFolder"), **attrs)
        holder = sub(root, t("Items"))
        for item in page:
            holder.append(message_element(item, ctx.ids, props, shape.body_type))

    return batch("FindItem", children(op, "ParentFolderIds", "folder"), each)


def get_item(ctx: EwsContext, op: Element) -> Element:
    shape = read_shape(op, "ItemShape")
    props = wanted(shape.base, shape.additional, find=False, mime=shape.include_mime)
    entries = children(op, "ItemIds", "item")
    # Read each folder's messages in one go, then answer in the request's order.
    loaded: dict[tuple[str, int, int], Item] = {}
    refs = []
    for e in entries:
        try:
            if local_name(e.tag) != "ItemId":
                raise EwsError("ErrorInvalidRequest", f"'{local_name(e.tag)}' is not an ItemId.")
            ref = ctx.item(e.get("Id"))
            # The old ItemId of a replaced message with its new ChangeKey
            # (CreateAttachment's RootItemChangeKey) reads the new message.
            successor = _successor(ctx, e.get("ChangeKey"))
            refs.append(ref if successor is None else replace(ref, uid=successor))
        except EwsError as exc:
            refs.append(exc)  # type: ignore[arg-type]
    by_folder: dict[tuple[str, int], list[int]] = {}
    for ref in refs:
        if not isinstance(ref, EwsError):
            by_folder.setdefault((ref.folder, ref.uid_validity), []).append(ref.uid)
    for (name, validity), uids in by_folder.items():
        try:
            view = ctx.resolve(FolderRef(ctx.mailbox_guid, name, validity))
        except EwsError:
            continue
        if view.folder is None or view.folder.uid_validity != validity:
            continue
        found = load_items(
            ctx,
            view,
            uids,
            parts=True,
            raw="item:MimeContent" in props,
            texts="item:Body" in props,
        )
        for item in found:
            loaded[(name, validity, item.info.uid)] = item

    def each(ref: object, out: Element) -> None:
        if isinstance(ref, EwsError):
            raise ref
        assert not isinstance(ref, str)
        key = (ref.folder, ref.uid_validity, ref.uid)  # type: ignore[attr-defined]
        item = loaded.get(key)
        if item is None:
            raise EwsError("ErrorItemNotFound", "The item doesn't exist (it was moved or deleted).")
        sub(out, m("Items")).append(message_element(item, ctx.ids, props, shape.body_type))

    return batch("GetItem", refs, each)


def _successor(ctx: EwsContext, key: str | None) -> int | None:
    try:
        return ctx.ids.successor_of(key) if key else None
    except EwsError:
        return None  # GetItem doesn't check ChangeKeys


HANDLERS: dict[str, Callable[[EwsContext, Element], Element]] = {
    "FindItem": find_item,
    "GetItem": get_item,
}
