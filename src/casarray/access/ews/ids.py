"""EWS ids (FolderId, ItemId, AttachmentId, ChangeKey, SyncState), sans-IO: opaque to
clients, self-describing to us, so any member of a client access array decodes an id
another member made, after any restart, with no state shared but the organization's
secret.

An id is base64 of `VERSION | kind | fields | MAC`: the MAC is the first 12 octets of
HMAC-SHA256 over everything before it, keyed with a sub-key derived from the
organization's session secret (`IdCodec.for_secret`, label `LABEL`), so a client can't
forge or alter one (ErrorInvalidIdMalformed), and the key never appears in an id.
What the kinds hold:

- folder (`FolderRef`): the mailbox's GUID, the folder's UIDVALIDITY and full name in
  the store (for a rename, the UIDVALIDITY finds it again), or one of the virtual
  folders that aren't in the store (root, msgfolderroot, and the empty calendar,
  contacts, tasks and outbox).
- item (`ItemRef`): mailbox GUID, folder UIDVALIDITY and name, the message's UID.
- attachment (`AttachmentRef`): an item and the MIME part number.
- change key: the item's (or folder's) modification sequence, so it changes whenever
  the item does; for an item whose message was replaced (an attachment added or
  removed), also the UID of the message that replaced it.
- sync state: a few integers and an optional blob, opaque to the client.

Ids are not secret: whoever holds one can tell the mailbox GUID and the folder's name
by decoding base64 (Exchange's ids carry the mailbox GUID too). The mailbox GUID in an
id is checked against the caller's own mailbox (`IdCodec.folder`, `IdCodec.item`), so an
id of another user's mailbox, MAC and all, is refused (ErrorAccessDenied).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from casarray.access.ews.soap import EwsError

LABEL = b"casarray EWS ids v1"
VERSION = 1
MAC_SIZE = 12
MAX_ID = 4096  # characters of an id we look at

_FOLDER = ord("F")
_VIRTUAL = ord("V")
_ITEM = ord("I")
_ATTACHMENT = ord("A")
_CHANGE_KEY = ord("K")
_SYNC = ord("S")

# Virtual folders: not in the store; (code, distinguished name, FolderClass or None).
VIRTUAL_FOLDERS = {
    "root": 1,
    "msgfolderroot": 2,
    "outbox": 3,
    "calendar": 4,
    "contacts": 5,
    "tasks": 6,
}
K = TypeVar("K")
V = TypeVar("V")
_VIRTUAL_NAMES = {code: name for name, code in VIRTUAL_FOLDERS.items()}


@dataclass(frozen=True)
class FolderRef:
    """A folder of one mailbox: a store folder (`name`, `uid_validity`) or a virtual one
    (`virtual`, a key of VIRTUAL_FOLDERS)."""

    mailbox: str  # GUID, lower-case with hyphens
    name: str = ""
    uid_validity: int = 0
    virtual: str | None = None


@dataclass(frozen=True)
class ItemRef:
    """A message of one mailbox: its folder and UID."""

    mailbox: str
    folder: str
    uid_validity: int
    uid: int

    @property
    def folder_ref(self) -> FolderRef:
        return FolderRef(self.mailbox, self.folder, self.uid_validity)


@dataclass(frozen=True)
class AttachmentRef:
    """A MIME part (IMAP numbering, "2", "1.3") of a message."""

    item: ItemRef
    part: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class IdCodec:
    """Encodes and checks ids with one organization's key. Item ids and change keys it
    wrote or checked are remembered (`REMEMBERED` of each): a GetItem writes and reads
    a hundred, and an HMAC each is a good part of its time."""

    REMEMBERED = 4096

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._item_ids: dict[ItemRef, str] = {}
        self._items: dict[str, ItemRef] = {}
        self._change_keys: dict[int, str] = {}

    @classmethod
    def for_secret(cls, secret: bytes) -> IdCodec:
        """The codec keyed from the organization's secret (`Directory.session_secret()`),
        one per secret and process."""
        return _codec_for(secret)

    # -- raw -------------------------------------------------------------------------------

    def _seal(self, kind: int, payload: bytes) -> str:
        data = bytes((VERSION, kind)) + payload
        return _b64(data + hmac.digest(self._key, data, "sha256")[:MAC_SIZE])

    def _open(self, text: str | None, kinds: tuple[int, ...], what: str) -> tuple[int, bytes]:
        if not text or not text.strip():
            raise EwsError("ErrorInvalidIdEmpty", f"The {what} is empty.")
        if len(text) > MAX_ID:
            raise EwsError("ErrorInvalidIdMalformed", f"The {what} is too long to be one.")
        try:
            data = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise EwsError("ErrorInvalidIdMalformed", f"The {what} is not base64.") from None
        if len(data) < 2 + MAC_SIZE or data[0] != VERSION:
            raise EwsError("ErrorInvalidIdMalformed", f"The {what} is malformed.")
        body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        expected = hmac.digest(self._key, body, "sha256")[:MAC_SIZE]
        if not hmac.compare_digest(mac, expected):
            raise EwsError(
                "ErrorInvalidIdMalformed",
                f"The {what} is malformed: it was not issued by this organization or was altered.",
            )
        if body[1] not in kinds:
            raise EwsError(
                "ErrorInvalidIdMalformed",
                f"The {what} is the id of something else ({chr(body[1])}).",
            )
        return body[1], body[2:]

    # -- folders ---------------------------------------------------------------------------

    def folder_id(self, ref: FolderRef) -> str:
        guid = _guid_bytes(ref.mailbox)
        if ref.virtual is not None:
            return self._seal(_VIRTUAL, guid + bytes((VIRTUAL_FOLDERS[ref.virtual],)))
        return self._seal(_FOLDER, guid + struct.pack(">I", ref.uid_validity) + ref.name.encode())

    def decode_folder(self, text: str | None) -> FolderRef:
        """The folder an id names, of any mailbox (see `folder`)."""
        kind, p = self._open(text, (_FOLDER, _VIRTUAL), "folder id")
        if len(p) < 17:
            raise EwsError("ErrorInvalidIdMalformed", "The folder id is malformed.")
        mailbox = str(uuid.UUID(bytes=p[:16]))
        if kind == _VIRTUAL:
            name = _VIRTUAL_NAMES.get(p[16])
            if name is None or len(p) != 17:
                raise EwsError("ErrorInvalidIdMalformed", "The folder id is malformed.")
            return FolderRef(mailbox, virtual=name)
        if len(p) < 21:
            raise EwsError("ErrorInvalidIdMalformed", "The folder id is malformed.")
        (validity,) = struct.unpack(">I", p[16:20])
        return FolderRef(mailbox, p[20:].decode("utf-8", "replace"), validity)

    def folder(self, text: str | None, mailbox: str) -> FolderRef:
        """The folder an id names, which must be of `mailbox` (ErrorAccessDenied)."""
        ref = self.decode_folder(text)
        _own(ref.mailbox, mailbox, "folder")
        return ref

    # -- items -----------------------------------------------------------------------------

    def item_id(self, ref: ItemRef) -> str:
        found = self._item_ids.get(ref)
        if found is None:
            found = self._seal(_ITEM, _item_bytes(ref))
            _remember(self._item_ids, ref, found)
        return found

    def decode_item(self, text: str | None) -> ItemRef:
        found = self._items.get(text) if text else None
        if found is None:
            _, p = self._open(text, (_ITEM,), "item id")
            found = _item_of(p, "item id")
            assert text is not None
            _remember(self._items, text, found)
        return found

    def item(self, text: str | None, mailbox: str) -> ItemRef:
        """The message an id names, which must be of `mailbox` (ErrorAccessDenied)."""
        ref = self.decode_item(text)
        _own(ref.mailbox, mailbox, "item")
        return ref

    def attachment_id(self, ref: AttachmentRef) -> str:
        item = _item_bytes(ref.item)
        return self._seal(_ATTACHMENT, struct.pack(">H", len(item)) + item + ref.part.encode())

    def attachment(self, text: str | None, mailbox: str) -> AttachmentRef:
        _, p = self._open(text, (_ATTACHMENT,), "attachment id")
        if len(p) < 2:
            raise EwsError("ErrorInvalidIdMalformed", "The attachment id is malformed.")
        (n,) = struct.unpack(">H", p[:2])
        item = _item_of(p[2 : 2 + n], "attachment id")
        _own(item.mailbox, mailbox, "attachment")
        return AttachmentRef(item, p[2 + n :].decode("ascii", "replace"))

    # -- change keys and sync states --------------------------------------------------------

    def change_key(self, modseq: int, successor: int | None = None) -> str:
        """A ChangeKey for `modseq`; with `successor`, the key of an item whose message
        was replaced by the one of that UID in the same folder (CreateAttachment and
        DeleteAttachment replace a message: the client keeps the old ItemId and this
        key, as Exchange's RootItemChangeKey, and `successor_of` finds the new one)."""
        if successor is None:
            found = self._change_keys.get(modseq)
            if found is None:
                found = self._seal(_CHANGE_KEY, struct.pack(">Q", modseq))
                _remember(self._change_keys, modseq, found)
            return found
        return self._seal(_CHANGE_KEY, struct.pack(">QI", modseq, successor))

    def decode_change_key(self, text: str | None) -> int:
        """The modseq a ChangeKey carries."""
        _, p = self._open(text, (_CHANGE_KEY,), "change key")
        if len(p) not in (8, 12):
            raise EwsError("ErrorInvalidChangeKey", "The change key is malformed.")
        return int(struct.unpack(">Q", p[:8])[0])

    def successor_of(self, text: str | None) -> int | None:
        """The UID of the message that replaced the item a ChangeKey was issued for
        (see `change_key`), or None."""
        if text is not None and len(text) == _PLAIN_CHANGE_KEY:
            return None  # a key without a successor: no need to check it here
        _, p = self._open(text, (_CHANGE_KEY,), "change key")
        if len(p) != 12:
            return None
        return int(struct.unpack(">I", p[8:])[0])

    def sync_state(self, mailbox: str, numbers: tuple[int, ...], blob: bytes = b"") -> str:
        """A SyncState: up to 255 unsigned 64-bit numbers and a blob, for `mailbox`."""
        payload = uuid.UUID(mailbox).bytes + bytes((len(numbers),))
        payload += struct.pack(f">{len(numbers)}Q", *numbers) + blob
        return self._seal(_SYNC, payload)

    def decode_sync_state(self, text: str, mailbox: str) -> tuple[tuple[int, ...], bytes]:
        try:
            _, p = self._open(text, (_SYNC,), "sync state")
        except EwsError as exc:
            raise EwsError("ErrorInvalidSyncStateData", exc.message) from None
        if len(p) < 17 or len(p) < 17 + 8 * p[16]:
            raise EwsError("ErrorInvalidSyncStateData", "The sync state is malformed.")
        if str(uuid.UUID(bytes=p[:16])) != mailbox:
            raise EwsError("ErrorInvalidSyncStateData", "The sync state is of another mailbox.")
        n = p[16]
        numbers = struct.unpack(f">{n}Q", p[17 : 17 + 8 * n])
        return tuple(numbers), p[17 + 8 * n :]


# characters of a change key without a successor: base64 of version, kind, modseq, MAC
_PLAIN_CHANGE_KEY = len(_b64(bytes(2 + 8 + MAC_SIZE)))


@lru_cache(maxsize=16)
def _codec_for(secret: bytes) -> IdCodec:
    return IdCodec(hmac.new(secret, LABEL, hashlib.sha256).digest())


def _remember(table: dict[K, V], key: K, value: V) -> None:
    if len(table) >= IdCodec.REMEMBERED:
        table.clear()
    table[key] = value


@lru_cache(maxsize=1024)
def _guid_bytes(guid: str) -> bytes:
    return uuid.UUID(guid).bytes


def _item_bytes(ref: ItemRef) -> bytes:
    return (
        _guid_bytes(ref.mailbox)
        + struct.pack(">II", ref.uid_validity, ref.uid)
        + ref.folder.encode()
    )


def _item_of(p: bytes, what: str) -> ItemRef:
    if len(p) < 25:
        raise EwsError("ErrorInvalidIdMalformed", f"The {what} is malformed.")
    validity, uid = struct.unpack(">II", p[16:24])
    return ItemRef(str(uuid.UUID(bytes=p[:16])), p[24:].decode("utf-8", "replace"), validity, uid)


def _own(found: str, mailbox: str, what: str) -> None:
    if found != mailbox.lower():
        raise EwsError(
            "ErrorAccessDenied", f"The {what} id names another mailbox, which you can't open."
        )
