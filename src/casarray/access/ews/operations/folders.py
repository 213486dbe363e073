"""Folder operations: GetFolder, FindFolder (Shallow, Deep), CreateFolder,
DeleteFolder, UpdateFolder (a new DisplayName: a rename), EmptyFolder.

The distinguished folders and the virtual ones (root, msgfolderroot, calendar,
contacts, tasks, outbox) can't be created, deleted or renamed
(ErrorDeleteDistinguishedFolder, ErrorCannotRenameDefaultFolder... as Exchange words
them). A folder name can't hold "/", which the store uses between levels.

FindFolder's Restriction is evaluated with FindItem's code over the folders found, on
the folder's class (folder:FolderClass, or PR_CONTAINER_CLASS 0x3613 by
ExtendedFieldURI, as DavMail filters mail folders), its display name and the other
MAPI properties of `common.FOLDER_EXTENDED`.
"""

from __future__ import annotations

from collections.abc import Callable
from xml.etree.ElementTree import Element

from casarray.access.ews.context import EwsContext, FolderView, run_store
from casarray.access.ews.operations.common import (
    FOLDER_EXTENDED,
    batch,
    children,
    folder_element,
    paginate,
    read_shape,
)
from casarray.access.ews.operations.items import Getter, as_values, compile_restriction
from casarray.access.ews.properties import EXTENDED, extended_id, field_path
from casarray.access.ews.soap import EwsError, element, local_name, m, sub, t
from casarray.mailstore import names
from casarray.mailstore.interface import InvalidFolderName

MAIL_CLASSES = ("IPF.Note", "IPF")


def get_folder(ctx: EwsContext, op: Element) -> Element:
    shape = read_shape(op, "FolderShape")

    def each(e: Element, out: Element) -> None:
        view = ctx.folder_of(e)
        sub(out, m("Folders")).append(folder_element(ctx, view, shape))

    return batch("GetFolder", children(op, "FolderIds", "folder"), each)


def find_folder(ctx: EwsContext, op: Element) -> Element:
    shape = read_shape(op, "FolderShape")
    traversal = op.get("Traversal") or "Shallow"
    if traversal not in ("Shallow", "Deep", "SoftDeleted"):
        raise EwsError("ErrorInvalidRequest", f"Traversal is '{traversal}'; Shallow or Deep.")
    restriction = op.find(m("Restriction"))
    predicate = None
    if restriction is not None:
        if len(restriction) != 1:
            raise EwsError("ErrorInvalidRestriction", "Restriction must hold one expression.")
        predicate = compile_restriction(restriction[0], set(), field=_folder_field(ctx))

    def each(e: Element, out: Element) -> None:
        parent = ctx.folder_of(e)
        found = [] if traversal == "SoftDeleted" else ctx.children_of(parent, traversal == "Deep")
        if predicate is not None:
            found = [view for view in found if predicate(view)]
        page, attrs = paginate(op, found)
        root = sub(out, m("RootFolder"), **attrs)
        holder = sub(root, t("Folders"))
        for view in page:
            holder.append(folder_element(ctx, view, shape))

    return batch("FindFolder", children(op, "ParentFolderIds", "parent folder"), each)


FOLDER_FIELDS: dict[str, str] = {
    "folder:FolderClass": "tag:0x3613",
    "folder:DisplayName": "tag:0x3001",
    "folder:TotalCount": "tag:0x3602",
    "folder:UnreadCount": "tag:0x3603",
}


def _folder_field(ctx: EwsContext) -> Callable[[Element | None, str], tuple[str, str, Getter]]:
    def resolve(e: Element | None, what: str) -> tuple[str, str, Getter]:
        path = field_path(e) if e is not None else ""
        key = extended_id(path).lower() if path.startswith(EXTENDED) else FOLDER_FIELDS.get(path)
        if key not in FOLDER_EXTENDED:
            raise EwsError(
                "ErrorUnsupportedPathForQuery",
                f"The property '{path or what}' can't be used in a FindFolder {what} here.",
            )
        kind, get = FOLDER_EXTENDED[key]
        return key, kind, lambda view: as_values(get(ctx, view))

    return resolve


def _new_name(ctx: EwsContext, parent: FolderView, display: str) -> str:
    display = display.strip()
    if not display:
        raise EwsError("ErrorInvalidRequest", "The folder's DisplayName is empty.")
    if "/" in display:
        raise EwsError(
            "ErrorInvalidRequest",
            f"The folder name '{display}' has a '/', which this server uses between levels.",
        )
    if parent.virtual in ("root", "msgfolderroot"):
        return display
    if parent.virtual is not None:
        raise EwsError(
            "ErrorInvalidParentFolder",
            f"Folders can't be made under the {parent.display_name} folder on this server.",
        )
    return f"{parent.name}/{display}"


def create_folder(ctx: EwsContext, op: Element) -> Element:
    parent_holder = op.find(m("ParentFolderId"))
    if parent_holder is None or not len(parent_holder):
        raise EwsError("ErrorInvalidRequest", "CreateFolder names no ParentFolderId.")
    parent = ctx.folder_of(parent_holder[0])
    shape_all = read_shape(_id_only(), "FolderShape")

    def each(e: Element, out: Element) -> None:
        kind = local_name(e.tag)
        folder_class = (e.findtext(t("FolderClass")) or "IPF.Note").strip()
        if kind != "Folder" or not folder_class.startswith(MAIL_CLASSES):
            raise EwsError(
                "ErrorInvalidRequest",
                f"Only mail folders (Folder, IPF.Note) can be created here, not {kind} "
                f"of class {folder_class}.",
            )
        name = _new_name(ctx, parent, e.findtext(t("DisplayName")) or "")
        try:
            names.canonical(name, creating=True)
        except InvalidFolderName as exc:
            raise EwsError("ErrorInvalidRequest", exc.message) from None
        if any(f.name == name for f in ctx.store_folders()):
            raise EwsError("ErrorFolderExists", f"A folder named '{name}' already exists.")
        folder = run_store(ctx.store.create_folder, name)
        ctx.store_folders(refresh=True)
        sub(out, m("Folders")).append(folder_element(ctx, ctx.view_of(folder), shape_all))

    folders = op.find(m("Folders"))
    if folders is None or not len(folders):
        raise EwsError("ErrorInvalidRequest", "CreateFolder names no folder to create.")
    return batch("CreateFolder", list(folders), each)


def _id_only() -> Element:
    op = element("op")
    sub(sub(op, m("FolderShape")), t("BaseShape"), "IdOnly")
    return op


def _check_changeable(view: FolderView, what: str) -> None:
    if view.virtual is not None or view.distinguished is not None:
        code = "ErrorDeleteDistinguishedFolder" if what == "delete" else "ErrorInvalidRequest"
        raise EwsError(
            code, f"The {view.display_name} folder is a default folder: it can't {what}."
        )


def _delete_tree(ctx: EwsContext, view: FolderView) -> None:
    for below in reversed(ctx.children_of(view, deep=True)):
        run_store(ctx.store.delete_folder, below.name)
    run_store(ctx.store.delete_folder, view.name)


def delete_folder(ctx: EwsContext, op: Element) -> Element:
    delete_type = op.get("DeleteType") or "HardDelete"
    if delete_type not in ("HardDelete", "SoftDelete", "MoveToDeletedItems"):
        raise EwsError(
            "ErrorInvalidRequest",
            f"DeleteType is '{delete_type}'; HardDelete, SoftDelete or MoveToDeletedItems.",
        )

    def each(e: Element, out: Element) -> None:
        view = ctx.folder_of(e)
        _check_changeable(view, "be deleted")
        trash = None
        if delete_type == "MoveToDeletedItems":
            try:
                trash = ctx.distinguished("deleteditems")
            except EwsError:
                trash = None
        if trash is not None and not names.is_under(view.name, trash.name):
            target = f"{trash.name}/{view.display_name}"
            taken = {f.name for f in ctx.store_folders()}
            n = 1
            while target in taken:
                n += 1
                target = f"{trash.name}/{view.display_name} ({n})"
            run_store(ctx.store.rename_folder, view.name, target)
        else:
            _delete_tree(ctx, view)
        ctx.store_folders(refresh=True)

    return batch("DeleteFolder", children(op, "FolderIds", "folder"), each)


def update_folder(ctx: EwsContext, op: Element) -> Element:
    shape = read_shape(_id_only(), "FolderShape")

    def each(change: Element, out: Element) -> None:
        target = next((c for c in change if local_name(c.tag) != "Updates"), None)
        if target is None:
            raise EwsError("ErrorInvalidRequest", "A FolderChange names no folder.")
        view = ctx.folder_of(target)
        updates = change.find(t("Updates"))
        for update in updates if updates is not None else ():
            kind = local_name(update.tag)
            uri = update.find(t("FieldURI"))
            field_uri = uri.get("FieldURI") if uri is not None else None
            if kind != "SetFolderField" or field_uri != "folder:DisplayName":
                raise EwsError(
                    "ErrorInvalidPropertySet",
                    f"Only SetFolderField of folder:DisplayName is supported, not {kind} "
                    f"of {field_uri}.",
                )
            display = ""
            for holder in update:
                if local_name(holder.tag) != "FieldURI":
                    display = holder.findtext(t("DisplayName")) or ""
            _check_changeable(view, "be renamed")
            parent = ctx.parent_of(view)
            assert parent is not None
            new = _new_name(ctx, parent, display)
            if new != view.name:
                if any(f.name == new for f in ctx.store_folders()):
                    raise EwsError("ErrorFolderExists", f"A folder named '{new}' already exists.")
                run_store(ctx.store.rename_folder, view.name, new)
                ctx.store_folders(refresh=True)
                view = ctx.resolve(view.ref)
        sub(out, m("Folders")).append(folder_element(ctx, view, shape))

    holder = op.find(m("FolderChanges"))
    if holder is None or not len(holder):
        raise EwsError("ErrorInvalidRequest", "UpdateFolder names no FolderChange.")
    return batch("UpdateFolder", list(holder), each)


def empty_folder(ctx: EwsContext, op: Element) -> Element:
    delete_type = op.get("DeleteType") or "HardDelete"
    if delete_type not in ("HardDelete", "SoftDelete", "MoveToDeletedItems"):
        raise EwsError(
            "ErrorInvalidRequest",
            f"DeleteType is '{delete_type}'; HardDelete, SoftDelete or MoveToDeletedItems.",
        )
    subfolders = (op.get("DeleteSubFolders") or "false").lower() == "true"

    def each(e: Element, out: Element) -> None:
        view = ctx.folder_of(e)
        if view.virtual in ("root", "msgfolderroot"):
            raise EwsError(
                "ErrorDeleteDistinguishedFolder", f"The {view.display_name} can't be emptied."
            )
        if view.folder is None:
            return  # a virtual folder holds nothing
        trash = None
        if delete_type == "MoveToDeletedItems":
            trash = ctx.distinguished("deleteditems")
            if trash.name == view.name or names.is_under(view.name, trash.name):
                trash = None
        uids = [info.uid for info in run_store(ctx.store.messages, view.name)]
        if uids:
            if trash is not None:
                run_store(ctx.store.move, view.name, uids, trash.name)
            else:
                run_store(ctx.store.store_flags, view.name, uids, "add", ["\\Deleted"])
                run_store(ctx.store.expunge, view.name, uids)
        if subfolders:
            for below in ctx.children_of(view):
                if trash is not None:
                    run_store(
                        ctx.store.rename_folder, below.name, f"{trash.name}/{below.display_name}"
                    )
                else:
                    _delete_tree(ctx, below)
                ctx.store_folders(refresh=True)

    return batch("EmptyFolder", children(op, "FolderIds", "folder"), each)


HANDLERS = {
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "CreateFolder": create_folder,
    "DeleteFolder": delete_folder,
    "UpdateFolder": update_folder,
    "EmptyFolder": empty_folder,
}
