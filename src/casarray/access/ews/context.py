"""The per-request context of an EWS operation (`EwsContext`) and what every
operation family shares on it: folder ids and distinguished folder ids resolved to
folders (`FolderView`), store errors turned into EWS errors.

Folders: the store's folders are mail folders (FolderClass IPF.Note). Exchange's
distinguished folders map onto them by special use (inbox is INBOX, sentitems the
\\Sent folder, drafts \\Drafts, deleteditems \\Trash, junkemail \\Junk). The rest of
what an Exchange mailbox has is virtual, not in the store, so IMAP never sees it: the
root of the mailbox (root), the top of its information store (msgfolderroot, the parent
of every top-level store folder), and empty calendar, contacts and tasks folders of
their classes and an empty outbox, children of msgfolderroot. They hold no items: an
operation that would put one there is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ParamSpec, TypeVar
from xml.etree.ElementTree import Element

from casarray.access.ews.ids import FolderRef, IdCodec, ItemRef
from casarray.access.ews.soap import EwsError, SoapRequest, local_name, t
from casarray.mailstore import names
from casarray.mailstore.interface import (
    DatabaseUnavailable,
    DestinationNotFound,
    Folder,
    FolderExists,
    FolderHasChildren,
    FolderInUse,
    FolderNotFound,
    InvalidFlag,
    InvalidFolderName,
    MailboxStore,
    MailstoreError,
    MessageNotFound,
    MessageTooLarge,
    StorageFull,
)

if TYPE_CHECKING:
    from casarray.directory import Directory, Mailbox, Server

P = ParamSpec("P")
R = TypeVar("R")

# Distinguished folder ids backed by a store folder: by name (inbox) or special use.
STORE_DISTINGUISHED = {
    "inbox": None,  # INBOX itself
    "sentitems": "\\Sent",
    "drafts": "\\Drafts",
    "deleteditems": "\\Trash",
    "junkemail": "\\Junk",
}
# Virtual folders: (FolderClass, the element type of the folder, display name).
VIRTUAL = {
    "root": (None, "Folder", "Top of Information Store"),
    "msgfolderroot": (None, "Folder", "Top of Information Store"),
    "outbox": ("IPF.Note", "Folder", "Outbox"),
    "calendar": ("IPF.Appointment", "CalendarFolder", "Calendar"),
    "contacts": ("IPF.Contact", "ContactsFolder", "Contacts"),
    "tasks": ("IPF.Task", "TasksFolder", "Tasks"),
}
VIRTUAL_CHILDREN = ("calendar", "contacts", "tasks", "outbox")
# Distinguished ids Exchange 2010 knows that this mailbox has no folder for.
KNOWN_DISTINGUISHED = frozenset(
    {
        "journal",
        "notes",
        "publicfoldersroot",
        "recoverableitemsroot",
        "recoverableitemsdeletions",
        "recoverableitemsversions",
        "recoverableitemspurges",
        "archiveroot",
        "archivemsgfolderroot",
        "archivedeleteditems",
        "archiverecoverableitemsroot",
        "archiverecoverableitemsdeletions",
        "archiverecoverableitemsversions",
        "archiverecoverableitemspurges",
        "syncissues",
        "conflicts",
        "localfailures",
        "serverfailures",
        "recipientcache",
        "quickcontacts",
        "conversationhistory",
        "todosearch",
        "searchfolders",
        "voicemail",
    }
)


@dataclass(frozen=True)
class FolderView:
    """A folder as EWS shows it: a store folder or a virtual one."""

    ref: FolderRef
    folder: Folder | None = None  # the store's record; None for a virtual folder

    @property
    def virtual(self) -> str | None:
        return self.ref.virtual

    @property
    def name(self) -> str:
        """The store name ("INBOX/Work"); "" for a virtual folder."""
        return self.ref.name

    @property
    def folder_class(self) -> str | None:
        if self.ref.virtual is not None:
            return VIRTUAL[self.ref.virtual][0]
        return "IPF.Note"

    @property
    def element_type(self) -> str:
        if self.ref.virtual is not None:
            return VIRTUAL[self.ref.virtual][1]
        return "Folder"

    @property
    def display_name(self) -> str:
        if self.ref.virtual is not None:
            return VIRTUAL[self.ref.virtual][2]
        if self.ref.name == names.INBOX:
            return "Inbox"
        return self.ref.name.rpartition("/")[2]

    @property
    def distinguished(self) -> str | None:
        """The distinguished id of this folder, if it has one."""
        if self.ref.virtual is not None:
            return self.ref.virtual
        if self.ref.name == names.INBOX:
            return "inbox"
        use = self.folder.special_use if self.folder is not None else None
        for key, value in STORE_DISTINGUISHED.items():
            if value is not None and value == use:
                return key
        return None

    @property
    def holds_items(self) -> bool:
        return self.folder is not None


@dataclass
class EwsContext:
    """What an operation handler gets: the authenticated user's mailbox record and its
    store, the directory, this Client Access server, the id codec and the request.

    Handlers run in a worker thread (the store and the directory are synchronous) and
    may call the store and the directory directly."""

    mailbox: Mailbox
    store: MailboxStore
    directory: Directory
    server: Server
    ids: IdCodec
    request: SoapRequest
    # The ports this server listens on minus the standard ones (the lab's +10000): where
    # a Hub Transport of another host listens, for sending (`access.submission`).
    port_offset: int = 0
    # where the mailbox's database keeps its store (`MailboxDatabase.store_location`):
    # what the summaries of its messages are kept under (`summaries`)
    store_location: str = ""
    _folders: list[Folder] | None = field(default=None, repr=False)

    @property
    def mailbox_guid(self) -> str:
        return self.mailbox.guid.lower()

    # -- folders ---------------------------------------------------------------------------

    def store_folders(self, refresh: bool = False) -> list[Folder]:
        """The store's folders (read once per request unless `refresh`)."""
        if self._folders is None or refresh:
            self._folders = run_store(self.store.folders)
        return self._folders

    def view_of(self, folder: Folder) -> FolderView:
        return FolderView(FolderRef(self.mailbox_guid, folder.name, folder.uid_validity), folder)

    def virtual(self, name: str) -> FolderView:
        return FolderView(FolderRef(self.mailbox_guid, virtual=name))

    def distinguished(self, name: str) -> FolderView:
        """The folder of a DistinguishedFolderId's Id; ErrorFolderNotFound for one this
        mailbox has none of (or one Exchange doesn't know)."""
        if name in VIRTUAL:
            return self.virtual(name)
        if name in STORE_DISTINGUISHED:
            use = STORE_DISTINGUISHED[name]
            for folder in self.store_folders():
                if (use is None and folder.name == names.INBOX) or (
                    use is not None and folder.special_use == use
                ):
                    return self.view_of(folder)
            raise EwsError(
                "ErrorFolderNotFound", f"This mailbox has no folder for '{name}' (no special use)."
            )
        if name in KNOWN_DISTINGUISHED:
            raise EwsError("ErrorFolderNotFound", f"This mailbox has no '{name}' folder.")
        # a later version's id (Thunderbird asks for "archive", Exchange 2013's, beside
        # the others in one GetFolder): that item is not found, the others are answered
        raise EwsError(
            "ErrorFolderNotFound", f"'{name}' is not a distinguished folder id of Exchange 2010."
        )

    def resolve(self, ref: FolderRef) -> FolderView:
        """The folder `ref` names now (found by UIDVALIDITY after a rename);
        ErrorFolderNotFound once it is gone."""
        if ref.virtual is not None:
            return FolderView(ref)
        folders = self.store_folders()
        for folder in folders:
            if folder.name == ref.name and folder.uid_validity == ref.uid_validity:
                return self.view_of(folder)
        for folder in folders:
            if folder.uid_validity == ref.uid_validity:
                return self.view_of(folder)
        raise EwsError("ErrorFolderNotFound", f"The folder '{ref.name}' no longer exists.")

    def folder_of(self, e: Element) -> FolderView:
        """The folder a `t:FolderId` or `t:DistinguishedFolderId` element names (a
        DistinguishedFolderId with a Mailbox other than the user's: ErrorAccessDenied)."""
        kind = local_name(e.tag)
        if kind == "FolderId":
            return self.resolve(self.ids.folder(e.get("Id"), self.mailbox_guid))
        if kind == "DistinguishedFolderId":
            mailbox = e.find(f"{t('Mailbox')}/{t('EmailAddress')}")
            if mailbox is not None and (mailbox.text or "").strip():
                self.check_own_address(mailbox.text or "")
            return self.distinguished((e.get("Id") or "").strip())
        raise EwsError("ErrorInvalidRequest", f"'{kind}' is not a folder id.")

    def folders_in(self, parent: Element | None, what: str) -> list[FolderView]:
        """The folders named by the children of `parent` (a FolderIds or
        ParentFolderId element); ErrorInvalidRequest when it is missing or empty."""
        if parent is None or not len(parent):
            raise EwsError("ErrorInvalidRequest", f"The request names no {what}.")
        return [self.folder_of(e) for e in parent]

    def check_own_address(self, address: str) -> None:
        """A Mailbox/EmailAddress in a request must be the user's own address."""
        mine = {self.mailbox.primary_smtp_address.lower()}
        if address.strip().lower() not in mine:
            raise EwsError(
                "ErrorAccessDenied",
                f"The mailbox '{address.strip()}' is not yours; delegate access isn't offered.",
            )

    def parent_of(self, view: FolderView) -> FolderView | None:
        """The parent folder: msgfolderroot for a top-level store folder and the virtual
        children, root for msgfolderroot, none for root."""
        if view.virtual == "root":
            return None
        if view.virtual == "msgfolderroot":
            return self.virtual("root")
        if view.virtual is not None:
            return self.virtual("msgfolderroot")
        parents = names.parents(view.name)
        if parents:
            for folder in self.store_folders():
                if folder.name == parents[-1]:
                    return self.view_of(folder)
        return self.virtual("msgfolderroot")

    def children_of(self, view: FolderView, deep: bool = False) -> list[FolderView]:
        """The folders under `view`: its children, or every descendant when `deep`,
        in hierarchy order."""
        folders = self.store_folders()
        if view.virtual in ("root", "msgfolderroot"):
            tops = [f for f in folders if deep or "/" not in f.name]
            out = [self.view_of(f) for f in sorted(tops, key=lambda f: names.sort_key(f.name))]
            out.extend(self.virtual(name) for name in VIRTUAL_CHILDREN)
            if view.virtual == "root":
                below = [self.virtual("msgfolderroot")]
                return below + out if deep else below
            return out
        if view.virtual is not None:
            return []
        depth = view.name.count("/") + 1
        found = [
            f
            for f in folders
            if names.is_under(f.name, view.name) and (deep or f.name.count("/") == depth)
        ]
        return [self.view_of(f) for f in sorted(found, key=lambda f: names.sort_key(f.name))]

    def item(self, text: str | None) -> ItemRef:
        """The message an ItemId names (the user's own, ErrorAccessDenied otherwise)."""
        return self.ids.item(text, self.mailbox_guid)

    def item_folder(self, ref: ItemRef) -> FolderView:
        """The folder an item id names, as it is now (ErrorItemNotFound when gone)."""
        try:
            return self.resolve(ref.folder_ref)
        except EwsError:
            raise EwsError("ErrorItemNotFound", "The item's folder no longer exists.") from None


def run_store(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`func(*args)` with the store's errors as EWS errors."""
    try:
        return func(*args, **kwargs)
    except MailstoreError as exc:
        raise store_error(exc) from None


def store_error(exc: MailstoreError) -> EwsError:
    """The EWS error for a store error."""
    message = exc.message
    if isinstance(exc, StorageFull):  # the database's disk: the server is short of room
        return EwsError(
            "ErrorInsufficientResources",
            "The mailbox database has no disk space left (Not enough disk space); nothing "
            "was changed. Try again later.",
        )
    if isinstance(exc, DatabaseUnavailable):
        return EwsError("ErrorMailboxStoreUnavailable", message)
    if isinstance(exc, MessageNotFound):
        return EwsError("ErrorItemNotFound", message)
    if isinstance(exc, DestinationNotFound | FolderNotFound):
        return EwsError("ErrorFolderNotFound", message)
    if isinstance(exc, FolderExists):
        return EwsError("ErrorFolderExists", message)
    if isinstance(exc, FolderHasChildren):
        return EwsError("ErrorDeleteDistinguishedFolder", message)
    if isinstance(exc, FolderInUse):
        return EwsError("ErrorCannotDeleteObject", message)
    if isinstance(exc, InvalidFolderName):
        return EwsError("ErrorInvalidRequest", message)
    if isinstance(exc, MessageTooLarge):
        return EwsError("ErrorMessageSizeExceeded", message)
    if isinstance(exc, InvalidFlag):
        return EwsError("ErrorInvalidPropertyRequest", message)
    return EwsError("ErrorInternalServerError", message)
