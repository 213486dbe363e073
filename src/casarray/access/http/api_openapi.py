"""The contract of the JSON API (`/api/v1`): its limits, its error codes and its
OpenAPI 3.1 document, served at `GET /api/v1/openapi.json`.

The document is written here by hand, as data, rather than generated from the
handlers: it is the promise made to clients (and checked by the schemathesis test on
every response), so it is reviewed as one piece. The numbers the server enforces (page
sizes, body size, flag counts) live here too and the handlers import them, so the two
cannot drift apart. `document()` returns a fresh copy each time.

Conventions the document states once:

- A folder is addressed by its full name ("INBOX/Projects/2024") percent-encoded as one
  path segment, "/" included ("INBOX%2FProjects%2F2024"): the name is what IMAP and the
  web mail show, it is the same on every Client Access server (nothing to look up), and
  RFC 6570 simple expansion, which OpenAPI clients use for path parameters, encodes a
  "/" that way. A folder named "." or ".." must be sent as "%2E" / "%2E%2E".
- Messages are addressed by IMAP UID within their folder; lists are newest first and
  page with `before=<uid>` (exclusive), so a page stays stable while new mail arrives.
- Every error is `{"error": {"code", "message"[, "field"][, "endpoint"]}}`.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from casarray.mailstore.interface import SYSTEM_FLAGS
from casarray.mailstore.names import MAX_NAME_LENGTH

# -- limits the server enforces ----------------------------------------------------------

MAX_BODY = 64 * 1024  # bytes of a JSON request body
MAX_SEND_BODY = 14 * 1024 * 1024  # bytes of a send request (attachments in base64)
MAX_SEND_RECIPIENTS = 500  # To, Cc and Bcc together (as `access.http.sending` checks)
MAX_SEND_ATTACHMENTS = 50
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_UID = 2**32 - 1
MAX_FLAGS = 64  # flags in one request list
MAX_KEYWORD = 256  # characters of one keyword (as the store accepts)

# A keyword: an IMAP atom (RFC 3501): printable ASCII without atom-specials, and not "]"
# (resp-specials), exactly what `mailstore.flags` accepts.
_ATOM_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '(){%*"\\]')
KEYWORD_PATTERN = "^[" + re.sub(r"([\\\]\[^-])", r"\\\1", _ATOM_CHARS) + "]+$"
KEYWORD_RE = re.compile(KEYWORD_PATTERN)
# A folder name: levels separated by "/", none empty, no control character and no LIST
# wildcard (what `mailstore.names.canonical` accepts, trailing "/" excluded).
_LEVEL = "[^\\u0000-\\u001f\\u007f*%/]+"
FOLDER_PATTERN = f"^{_LEVEL}(/{_LEVEL})*$"
PART_PATTERN = r"^[1-9][0-9]{0,8}(\.[1-9][0-9]{0,8}){0,31}$"
PART_RE = re.compile(PART_PATTERN, re.ASCII)
# An e-mail address as the send operation takes it (`access.http.sending` checks the same).
ADDRESS_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)

# -- error codes -------------------------------------------------------------------------

# code -> (HTTP status, what it means); the document lists them all.
ERRORS: dict[str, tuple[int, str]] = {
    "wrong_endpoint": (
        307,
        "This Client Access server is not the user's preferred endpoint; `endpoint` names "
        "it and `Location` is the same request there.",
    ),
    "invalid_json": (400, "The body is not a JSON object (or not UTF-8)."),
    "invalid_field": (400, "A field, path or query parameter is invalid; `field` names it."),
    "invalid_folder_name": (400, "Not a folder name (empty level, control character, * or %)."),
    "invalid_flag": (400, "Not a system flag (\\Seen ...) and not a keyword atom."),
    "invalid_path": (400, "The path has a dot segment or is not UTF-8 once decoded."),
    "unauthorized": (401, "Missing or wrong credentials (HTTP Basic)."),
    "forbidden": (403, "HTTPS is required for authentication."),
    "not_found": (404, "No such API resource."),
    "folder_not_found": (404, "The folder in the path doesn't exist."),
    "message_not_found": (404, "No message with that UID in the folder."),
    "part_not_found": (404, "The message has no such body part (or it is a multipart)."),
    "method_not_allowed": (405, "The resource doesn't support the method; see `Allow`."),
    "folder_exists": (409, "A folder with that name already exists."),
    "folder_has_children": (409, "The folder has subfolders: delete them first."),
    "folder_in_use": (409, "The change is impossible (a folder into itself, the same folder)."),
    "special_folder": (409, "INBOX and special folders (Sent, Trash, ...) can't be changed."),
    "destination_not_found": (409, "The destination folder doesn't exist (create it first)."),
    "recipient_refused": (
        400,
        "The Hub Transport server refused a recipient (the message names each, with the "
        "reply); nothing was sent.",
    ),
    "message_refused": (
        400,
        "The Hub Transport server refused the sender or the message (too large, say); "
        "nothing was sent.",
    ),
    "too_large": (
        413,
        f"The request body is larger than {MAX_BODY} bytes ({MAX_SEND_BODY} for a send).",
    ),
    "unsupported_media_type": (415, "The request body must be application/json (UTF-8)."),
    "throttled": (429, "Too many failed logins; retry after `Retry-After` seconds."),
    "database_unavailable": (503, "The user's mailbox database is dismounted or unreachable."),
    "insufficient_storage": (
        503,
        "The user's mailbox database has no disk space left; nothing was changed: try again later.",
    ),
    "no_endpoint": (503, "The user's mailbox database has no Client Access endpoint."),
    "directory_unavailable": (503, "The directory can't answer for this user now."),
    "transport_unavailable": (
        503,
        "No Hub Transport server took the message now (none reachable, or a temporary "
        "refusal); nothing was sent: try again later.",
    ),
    "internal_error": (500, "A bug: the server failed (it is logged)."),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_INT = {"type": "integer", "minimum": 0}
_UID = {"type": "integer", "minimum": 1, "maximum": MAX_UID}
_DATETIME = {"type": "string", "format": "date-time"}
_ADDRESSES = {"type": "array", "items": _ref("Address")}
_FLAG_LIST = {"type": "array", "items": _ref("Flag"), "maxItems": MAX_FLAGS}
_SEND_ADDRESSES = {
    "type": "array",
    "maxItems": MAX_SEND_RECIPIENTS,
    "items": {
        "type": "string",
        "description": "An e-mail address.",
        "pattern": ADDRESS_PATTERN,
        "maxLength": 320,
        "examples": ["bob@lab.net"],
    },
}
_FOLDER_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": FOLDER_PATTERN,
    "examples": ["Clients/Acme"],
}

_SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        ["error"],
        error=_obj(
            ["code", "message"],
            code={"type": "string", "enum": list(ERRORS)},
            message={"type": "string"},
            field={"type": "string", "description": "The invalid field or parameter."},
            endpoint={"type": "string", "description": "The preferred endpoint's FQDN."},
        ),
    ),
    "Flag": {
        "description": (
            "An IMAP flag: a system flag, written as here, or a keyword (an IMAP atom, "
            "compared ignoring case). \\Recent is session state and can't be set."
        ),
        "anyOf": [
            {"type": "string", "enum": list(SYSTEM_FLAGS)},
            {"type": "string", "pattern": KEYWORD_PATTERN, "maxLength": MAX_KEYWORD},
        ],
    },
    "Folder": _obj(
        [
            "name",
            "parent",
            "display_name",
            "special_use",
            "messages",
            "unseen",
            "uid_validity",
            "uid_next",
            "subscribed",
            "has_children",
        ],
        name={"type": "string", "description": "Full name, levels separated by '/'."},
        parent=_nullable({"type": "string"}),
        display_name={"type": "string", "description": "The last level of the name."},
        special_use=_nullable(
            {
                "type": "string",
                "enum": [
                    "\\All",
                    "\\Archive",
                    "\\Drafts",
                    "\\Flagged",
                    "\\Junk",
                    "\\Sent",
                    "\\Trash",
                ],
            }
        ),
        messages=_INT,
        unseen=_INT,
        uid_validity=_INT,
        uid_next=_INT,
        subscribed={"type": "boolean"},
        has_children={"type": "boolean"},
    ),
    "FolderList": _obj(["folders"], folders={"type": "array", "items": _ref("Folder")}),
    "FolderName": _obj(["name"], name=_FOLDER_NAME),
    "Address": _obj(
        ["name", "address"],
        name=_nullable({"type": "string"}),
        address={"type": "string", "description": "mailbox@host (without host if none)."},
    ),
    "MessageSummary": _obj(
        [
            "uid",
            "flags",
            "size",
            "internal_date",
            "date",
            "subject",
            "from",
            "to",
            "cc",
            "has_attachments",
        ],
        uid=_UID,
        flags={"type": "array", "items": {"type": "string"}},
        size={**_INT, "description": "Octets of the whole message as stored."},
        internal_date={**_DATETIME, "description": "When the store received it."},
        date=_nullable({**_DATETIME, "description": "The Date header, if it parses."}),
        subject=_nullable({"type": "string"}),
        **{"from": _ADDRESSES},
        to=_ADDRESSES,
        cc=_ADDRESSES,
        has_attachments={
            "type": "boolean",
            "description": "A part is marked attachment, has a file name, or is a message.",
        },
    ),
    "MessageList": _obj(
        ["folder", "uid_validity", "total", "messages", "next_before"],
        folder={"type": "string"},
        uid_validity=_INT,
        total={**_INT, "description": "Messages in the folder."},
        messages={"type": "array", "items": _ref("MessageSummary")},
        next_before=_nullable(
            {**_UID, "description": "Pass as `before` for the next page; null: the last."}
        ),
    ),
    "Header": _obj(
        ["name", "value"],
        name={"type": "string"},
        value={"type": "string", "description": "Unfolded, RFC 2047 words decoded."},
    ),
    "Attachment": _obj(
        ["part", "content_type", "filename", "size", "disposition", "content_id"],
        part={
            "type": "string",
            "pattern": PART_PATTERN,
            "description": "IMAP part number, for .../parts/{part}.",
        },
        content_type={"type": "string"},
        filename=_nullable({"type": "string"}),
        size={**_INT, "description": "Octets as stored (before transfer decoding)."},
        disposition=_nullable({"type": "string"}),
        content_id=_nullable({"type": "string"}),
    ),
    "Message": {
        **_obj(
            [
                "uid",
                "folder",
                "flags",
                "size",
                "internal_date",
                "date",
                "subject",
                "from",
                "to",
                "cc",
                "has_attachments",
                "sender",
                "reply_to",
                "bcc",
                "message_id",
                "in_reply_to",
                "headers",
                "text",
                "html",
                "attachments",
            ],
        ),
        "properties": {
            "folder": {"type": "string"},
            "sender": _ADDRESSES,
            "reply_to": _ADDRESSES,
            "bcc": _ADDRESSES,
            "message_id": _nullable({"type": "string"}),
            "in_reply_to": _nullable({"type": "string"}),
            "headers": {"type": "array", "items": _ref("Header")},
            "text": _nullable({"type": "string", "description": "The plain text body, decoded."}),
            "html": _nullable(
                {
                    "type": "string",
                    "description": "The HTML body, decoded and sanitized (no scripts, "
                    "no event handlers, no javascript: URLs).",
                }
            ),
            "attachments": {
                "type": "array",
                "items": _ref("Attachment"),
                "description": "Every leaf part that is not the text or HTML body.",
            },
        },
    },
    "Flags": _obj(["uid", "flags"], uid=_UID, flags={"type": "array", "items": {"type": "string"}}),
    "FlagsSet": _obj(["flags"], flags=_FLAG_LIST),
    "FlagsChange": _obj([], add=_FLAG_LIST, remove=_FLAG_LIST),
    "MoveRequest": _obj(["to"], to={**_FOLDER_NAME, "examples": ["Archive"]}),
    "Moved": _obj(
        ["folder", "uid", "uid_validity"], folder={"type": "string"}, uid=_UID, uid_validity=_INT
    ),
    "SendRequest": _obj(
        ["to"],
        to={**_SEND_ADDRESSES, "minItems": 1, "maxItems": 300},
        cc={**_SEND_ADDRESSES, "maxItems": 100},
        bcc={**_SEND_ADDRESSES, "maxItems": 100},
        subject={"type": "string", "maxLength": 998, "examples": ["Lunch?"]},
        body={"type": "string", "description": "The text (sent as text/plain, UTF-8)."},
        attachments={
            "type": "array",
            "maxItems": MAX_SEND_ATTACHMENTS,
            "items": _obj(
                ["name", "content_base64"],
                name={
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[^/\\\\\\u0000-\\u001f]+$",
                },
                content_type={"type": "string", "examples": ["application/pdf"]},
                content_base64={"type": "string", "contentEncoding": "base64"},
            ),
        },
        in_reply_to={
            "type": "string",
            "description": "The Message-ID this message answers ('<id@host>').",
        },
        references={
            "type": "string",
            "description": "The References header: message IDs, oldest first.",
        },
    ),
    "Sent": _obj(
        ["queue_id", "message_id", "hub", "sent"],
        queue_id={"type": "string", "description": "The Hub Transport server's queue id."},
        message_id={"type": "string"},
        hub={"type": "string", "description": "The Hub Transport server that took it."},
        sent=_nullable(
            {
                **_obj(
                    ["folder", "uid", "uid_validity"],
                    folder={"type": "string"},
                    uid=_UID,
                    uid_validity=_INT,
                ),
                "description": "The copy in Sent Items (null: sent, but the copy failed).",
            }
        ),
    ),
    "Deleted": _obj(
        ["permanent", "folder", "uid"],
        permanent={"type": "boolean", "description": "True: removed for good."},
        folder=_nullable({"type": "string", "description": "The trash folder it went to."}),
        uid=_nullable({**_UID, "description": "Its UID there."}),
    ),
}
# Message = MessageSummary's properties plus its own.
_SCHEMAS["Message"]["properties"] = {
    **_SCHEMAS["MessageSummary"]["properties"],
    **_SCHEMAS["Message"]["properties"],
}

_PARAMETERS: dict[str, Any] = {
    "folder": {
        "name": "folder",
        "in": "path",
        "required": True,
        "description": "The folder's full name, percent-encoded as one segment ('/' as %2F).",
        "schema": {**_FOLDER_NAME, "examples": ["INBOX"]},
        "example": "INBOX",
    },
    "uid": {
        "name": "uid",
        "in": "path",
        "required": True,
        "description": "The message's IMAP UID in the folder.",
        "schema": _UID,
        "example": 1,
    },
    "part": {
        "name": "part",
        "in": "path",
        "required": True,
        "description": "An IMAP part number from the message's `attachments`.",
        "schema": {"type": "string", "pattern": PART_PATTERN},
        "example": "2",
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Messages per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    },
    "before": {
        "name": "before",
        "in": "query",
        "required": False,
        "description": "Only messages with a lower UID (the `next_before` of the last page).",
        "schema": _UID,
    },
    "permanent": {
        "name": "permanent",
        "in": "query",
        "required": False,
        "description": "Remove for good at once (Outlook's Shift+Del).",
        "schema": {"type": "boolean", "default": False},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


_RESPONSES: dict[str, Any] = {
    "WrongEndpoint": {
        "description": "Not this server: repeat the request at `Location`.",
        "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        "content": _json(_ref("Error")),
    },
    "BadRequest": _error("Invalid input; `error.field` names it."),
    "Unauthorized": {
        "description": "Missing or wrong credentials.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": _json(_ref("Error")),
    },
    "Forbidden": _error("Plain HTTP: authentication needs HTTPS."),
    "NotFound": _error("No such folder, message or part."),
    "Conflict": _error("The change conflicts with the mailbox's state."),
    "TooLarge": _error(f"The body is larger than {MAX_BODY} bytes."),
    "UnsupportedMediaType": _error("The body is not application/json."),
    "Throttled": {
        "description": "Too many failed logins.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": _json(_ref("Error")),
    },
    "Unavailable": _error("The mailbox database or the directory is unavailable."),
}


def _op(
    operation_id: str,
    summary: str,
    ok: dict[str, Any],
    *,
    parameters: tuple[str | dict[str, Any], ...] = (),
    body: str | None = None,
    conflict: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """An authenticated operation with the responses every one of them may give."""
    responses: dict[str, Any] = dict(ok)
    responses["307"] = {"$ref": "#/components/responses/WrongEndpoint"}
    responses["400"] = {"$ref": "#/components/responses/BadRequest"}
    responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    responses["403"] = {"$ref": "#/components/responses/Forbidden"}
    responses["404"] = {"$ref": "#/components/responses/NotFound"}
    if conflict:
        responses["409"] = {"$ref": "#/components/responses/Conflict"}
    if body is not None:
        responses["413"] = {"$ref": "#/components/responses/TooLarge"}
        responses["415"] = {"$ref": "#/components/responses/UnsupportedMediaType"}
    responses["429"] = {"$ref": "#/components/responses/Throttled"}
    responses["503"] = {"$ref": "#/components/responses/Unavailable"}
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = [
            {"$ref": f"#/components/parameters/{p}"} if isinstance(p, str) else p
            for p in parameters
        ]
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(_ref(body))}
    op["responses"] = responses
    return op


def _example(parameter: str, example: Any) -> dict[str, Any]:
    """A component parameter inline, with another example: the destructive operations
    get their own, so that trying the document's examples in order leaves the others'
    (INBOX, UID 1) in place."""
    return {**_PARAMETERS[parameter], "example": example}


def _ok(status: int, description: str, schema: str | None = None, **extra: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, **extra}
    if schema is not None:
        response["content"] = _json(_ref(schema))
    return {str(status): response}


_FOLDER = ("folder",)
_MESSAGE = ("folder", "uid")
_LOCATION = {"headers": {"Location": {"schema": {"type": "string"}}}}
_DOWNLOAD = {"Content-Disposition": {"schema": {"type": "string"}}}

_PATHS: dict[str, Any] = {
    "/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document (no authentication).",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/folders": {
        "get": _op(
            "listFolders",
            "The user's folders, INBOX first.",
            _ok(200, "The folders.", "FolderList"),
        ),
        "post": _op(
            "createFolder",
            "Create a folder (and its missing parents).",
            _ok(201, "Created.", "Folder", **_LOCATION),
            body="FolderName",
            conflict=True,
        ),
    },
    "/folders/{folder}": {
        "get": _op(
            "getFolder", "One folder.", _ok(200, "The folder.", "Folder"), parameters=_FOLDER
        ),
        "patch": _op(
            "renameFolder",
            "Rename (move) a folder with its subfolders.",
            _ok(200, "The folder under its new name.", "Folder", **_LOCATION),
            parameters=(_example("folder", "INBOX/Work"),),
            body="FolderName",
            conflict=True,
            description="INBOX and special folders can't be renamed (409 special_folder).",
        ),
        "delete": _op(
            "deleteFolder",
            "Delete a folder and its messages.",
            _ok(204, "Deleted."),
            parameters=(_example("folder", "Projects/2024"),),
            conflict=True,
            description="Refused for INBOX and special folders (409 special_folder) and "
            "for a folder with subfolders (409 folder_has_children).",
        ),
    },
    "/folders/{folder}/messages": {
        "get": _op(
            "listMessages",
            "A page of the folder's messages, newest (highest UID) first.",
            _ok(200, "The page.", "MessageList"),
            parameters=(*_FOLDER, "limit", "before"),
        )
    },
    "/folders/{folder}/messages/{uid}": {
        "get": _op(
            "getMessage",
            "A message: headers, text and sanitized HTML bodies, attachments.",
            _ok(200, "The message.", "Message"),
            parameters=_MESSAGE,
        ),
        "delete": _op(
            "deleteMessage",
            "Delete a message as Outlook and OWA do.",
            _ok(200, "Where it went.", "Deleted"),
            parameters=("folder", _example("uid", 6), "permanent"),
            description="Outside the trash folder (special use \\Trash, else 'Trash'; "
            "created when missing) the message moves there; in the trash or a "
            "subfolder of it, or with permanent=true, it is removed for good.",
        ),
    },
    "/folders/{folder}/messages/{uid}/raw": {
        "get": _op(
            "getRawMessage",
            "The message as stored (RFC 5322).",
            {
                "200": {
                    "description": "The message.",
                    "headers": _DOWNLOAD,
                    "content": {
                        "message/rfc822": {"schema": {"type": "string", "format": "binary"}}
                    },
                }
            },
            parameters=_MESSAGE,
        )
    },
    "/folders/{folder}/messages/{uid}/parts/{part}": {
        "get": _op(
            "getMessagePart",
            "One body part (an attachment), transfer encoding decoded.",
            {
                "200": {
                    "description": "The part's content, with its declared media type, as a "
                    "download (sandboxed, never sniffed).",
                    "headers": _DOWNLOAD,
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                }
            },
            parameters=(*_MESSAGE, "part"),
        )
    },
    "/folders/{folder}/messages/{uid}/flags": {
        "get": _op(
            "getFlags", "The message's flags.", _ok(200, "Its flags.", "Flags"), parameters=_MESSAGE
        ),
        "put": _op(
            "setFlags",
            "Replace the message's flags.",
            _ok(200, "Its flags now.", "Flags"),
            parameters=_MESSAGE,
            body="FlagsSet",
        ),
        "patch": _op(
            "changeFlags",
            "Add and remove flags (additions first: a flag in both ends up removed).",
            _ok(200, "Its flags now.", "Flags"),
            parameters=_MESSAGE,
            body="FlagsChange",
        ),
    },
    "/send": {
        "post": _op(
            "sendMessage",
            "Send a message through a Hub Transport server; a copy goes to Sent Items.",
            _ok(202, "Queued for delivery by the Hub Transport server.", "Sent", **_LOCATION),
            body="SendRequest",
            description="From the user's primary address. The Client Access server "
            "submits the message to a Hub Transport server of its site (SMTP, "
            "authenticated as an Exchange server) and answers once that server has "
            "queued it; then the copy is stored in Sent Items (\\Seen). Bad input is "
            "400 invalid_field naming the field, a refused recipient 400 "
            "recipient_refused naming it; in both cases nothing is sent.",
        )
    },
    "/folders/{folder}/messages/{uid}/move": {
        "post": _op(
            "moveMessage",
            "Move the message to another folder (it gets a new UID there).",
            _ok(200, "Where it is now.", "Moved", **_LOCATION),
            parameters=("folder", _example("uid", 5)),
            body="MoveRequest",
            conflict=True,
        )
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "casarray mailbox API",
        "version": "1.0.0",
        "description": (
            "Folders and messages of the authenticated user, served by every Client Access "
            "server. Authentication is HTTP Basic over HTTPS with the mailbox's address (or "
            "alias) and password. A server that is not the user's preferred endpoint "
            "answers 307 to the same path on it. Folders are addressed by full name, "
            "percent-encoded as one path segment ('INBOX%2FWork'); messages by IMAP UID. "
            'Every error body is {"error": {"code", "message"}}; the codes:\n\n'
            + "\n".join(f"- `{code}` ({status}): {text}" for code, (status, text) in ERRORS.items())
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"basic": []}],
    "paths": _PATHS,
    "components": {
        "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        "schemas": _SCHEMAS,
        "parameters": _PARAMETERS,
        "responses": _RESPONSES,
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of `/api/v1` (a fresh copy)."""
    return copy.deepcopy(_DOCUMENT)


def allowed_methods(path: str) -> list[str]:
    """The methods the document lists for `path` (a template such as "/folders/{folder}"),
    upper case, with HEAD after GET."""
    methods = [m.upper() for m in _PATHS.get(path, {})]
    if "GET" in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return methods
