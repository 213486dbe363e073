"""The JSON API of a Client Access server, `/api/v1`: the authenticated user's folders
and messages (list, read, flags, move, delete) and sending (`POST /send`: through a
Hub Transport server, with a copy in Sent Items, `sending`), described by the OpenAPI
3.1 document
at `/api/v1/openapi.json` (see `api_openapi`, which also holds the limits and the error
codes).

    app = create_app(context, [*default_services(), api.routes])

Why it is built this way:

- One route, `ApiMount`, owns every path under `/api/v1` and dispatches itself. Folder
  names contain "/", and the API addresses a folder by its full name percent-encoded
  as one path segment ("INBOX%2FWork", as GitLab addresses "group%2Fproject"). ASGI
  servers decode %2F in `scope["path"]`, so Starlette's routing can't tell that from
  two segments; the dispatcher splits the undecoded `raw_path` instead, then decodes
  each segment. Owning the whole prefix also makes every answer under it, 404 and 405
  included, the same JSON error shape: `{"error": {"code", "message"}}`.
- Stateless, like the rest of the HTTP service: each request authenticates (HTTP Basic,
  `app.authenticate`: TLS, throttling), asks the directory for the user's preferred
  endpoint (`directory.endpoints`, the rule Autodiscover, IMAP referral and web mail
  follow) and answers 307 to the same path on that name when this server doesn't
  serve it, then opens the user's mailbox in their database's store. The store is
  synchronous, so every store call runs in a worker thread.
- Deleting a message follows Outlook and OWA: outside the trash folder it moves there;
  in the trash (or below it), or with `?permanent=true` (Shift+Del), it is removed.
  INBOX and the special folders can't be renamed or deleted, as Outlook's default
  folders can't.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import json
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from casarray.access.http import api_message, sending
from casarray.access.http.api_openapi import (
    DEFAULT_PAGE,
    ERRORS,
    KEYWORD_RE,
    MAX_BODY,
    MAX_FLAGS,
    MAX_KEYWORD,
    MAX_PAGE,
    MAX_SEND_BODY,
    MAX_UID,
    PART_RE,
    allowed_methods,
    document,
)
from casarray.access.http.context import AppContext, authenticate
from casarray.access.submission import RecipientsRefused, SubmissionError
from casarray.directory.endpoints import NoEndpointError, preferred_endpoint, serves
from casarray.directory.errors import DirectoryError
from casarray.errors import CasarrayError
from casarray.mailstore import names
from casarray.mailstore.interface import (
    SYSTEM_FLAGS,
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
    MessageInfo,
    MessageNotFound,
    MessageTooLarge,
    StorageFull,
)
from casarray.mailstore.provisioning import open_mailbox

if TYPE_CHECKING:
    from casarray.directory import Mailbox

log = logging.getLogger("casarray.http.api")

PREFIX = "/api/v1"
TRASH = "Trash"
T = TypeVar("T")

# -- errors ---------------------------------------------------------------------------


class ApiError(CasarrayError):
    """An answer other than success: its code (a key of `api_openapi.ERRORS`) gives the
    status."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = ERRORS[code][0]
        self.message = message
        self.field = field
        self.endpoint = endpoint
        self.headers = headers or {}

    def response(self) -> Response:
        error: dict[str, str] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.endpoint is not None:
            error["endpoint"] = self.endpoint
        return ApiJSONResponse({"error": error}, self.status, headers=self.headers)


class ApiJSONResponse(JSONResponse):
    """Compact UTF-8 JSON; a lone surrogate anywhere (a folder name from a broken
    client, say) becomes U+FFFD instead of failing the response."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return api_message.clean(text).encode("utf-8")


# HTTPException from `authenticate` (and anything else of Starlette's) -> our codes.
_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
_HTTP_CODES |= {413: "too_large", 415: "unsupported_media_type", 429: "throttled"}


def _from_http_exception(exc: HTTPException) -> ApiError:
    code = _HTTP_CODES.get(exc.status_code)
    if code is None:  # none raised today; keep the status, with the nearest code
        code = "invalid_field" if exc.status_code < 500 else "internal_error"
    # exc.headers as given: a 401's WWW-Authenticate offers are separate headers
    error = ApiError(code, str(exc.detail), headers=exc.headers or {})
    error.status = exc.status_code
    return error


# The API's code for each store error, the most specific class first.
_STORE_ERRORS: tuple[tuple[type[MailstoreError], str], ...] = (
    (DestinationNotFound, "destination_not_found"),
    (FolderNotFound, "folder_not_found"),
    (MessageNotFound, "message_not_found"),
    (FolderExists, "folder_exists"),
    (FolderHasChildren, "folder_has_children"),
    (FolderInUse, "folder_in_use"),
    (InvalidFolderName, "invalid_folder_name"),
    (InvalidFlag, "invalid_flag"),
    (MessageTooLarge, "too_large"),
    (StorageFull, "insufficient_storage"),
    (DatabaseUnavailable, "database_unavailable"),
)


def _store_error(exc: MailstoreError) -> ApiError:
    """The API error for a store error."""
    message = str(exc)
    for kind, code in _STORE_ERRORS:
        if isinstance(exc, kind):
            return ApiError(code, message, field="to" if kind is DestinationNotFound else None)
    return ApiError("database_unavailable", f"The mailbox can't be used: {message}")


# -- input ----------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]{1,10}", re.ASCII)


def _folder_name(value: object, where: str) -> str:
    """The canonical folder name `value`, or 400 naming `where`."""
    if not isinstance(value, str):
        raise ApiError("invalid_field", f"'{where}' must be a folder name (a string).", field=where)
    try:
        return names.canonical(value)
    except InvalidFolderName as exc:
        raise ApiError("invalid_folder_name", str(exc), field=where) from None


def _uid(value: str) -> int:
    if _DIGITS.fullmatch(value) and 1 <= int(value) <= MAX_UID:
        return int(value)
    raise ApiError(
        "invalid_field", f"'{value}' is not a message UID (1 to {MAX_UID}).", field="uid"
    )


def _int_query(request: Request, name: str, low: int, high: int, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    if _DIGITS.fullmatch(value) and low <= int(value) <= high:
        return int(value)
    raise ApiError(
        "invalid_field", f"'{name}' must be an integer from {low} to {high}.", field=name
    )


def _bool_query(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise ApiError("invalid_field", f"'{name}' must be true or false.", field=name)


def _flags(value: object, where: str) -> list[str]:
    """A list of flags as the document defines them: system flags written exactly as
    IMAP does ("\\Seen"), keywords as IMAP atoms; \\Recent can't be set."""
    if not isinstance(value, list):
        raise ApiError("invalid_field", f"'{where}' must be a list of flags.", field=where)
    if len(value) > MAX_FLAGS:
        raise ApiError("invalid_field", f"'{where}' has more than {MAX_FLAGS} flags.", field=where)
    for flag in value:
        if not isinstance(flag, str):
            raise ApiError("invalid_flag", f"'{where}' must hold strings only.", field=where)
        if flag in SYSTEM_FLAGS:
            continue
        if flag.startswith("\\"):
            raise ApiError(
                "invalid_flag",
                f"'{flag}' is not a system flag that can be set ({', '.join(SYSTEM_FLAGS)}).",
                field=where,
            )
        if len(flag) > MAX_KEYWORD or not KEYWORD_RE.match(flag):
            raise ApiError(
                "invalid_flag",
                f"'{flag}' is not a keyword (an IMAP atom: printable ASCII without spaces or "
                '(){%*"\\]).',
                field=where,
            )
    return list(value)


def _fields(body: dict[str, Any], allowed: Sequence[str], required: Sequence[str]) -> None:
    for key in body:
        if key not in allowed:
            raise ApiError("invalid_field", f"Unknown field '{key}'.", field=key)
    for key in required:
        if key not in body:
            raise ApiError("invalid_field", f"The field '{key}' is required.", field=key)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _json_body(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request's JSON object: 415 unless application/json (UTF-8), 413 past
    `limit` bytes, 400 unless it is one JSON object."""
    media, _, params = (request.headers.get("content-type") or "").partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise ApiError("unsupported_media_type", "The body must be application/json.")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise ApiError("unsupported_media_type", "The body must be UTF-8.")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not re.fullmatch(r"\s*[0-9]+\s*", declared, re.ASCII):
            raise ApiError("invalid_json", "The Content-Length header is not a number.")
        if int(declared) > limit:
            raise ApiError("too_large", f"The body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("too_large", f"The body is over {limit} bytes.")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError("invalid_json", f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "The body must be a JSON object.")
    return body


# -- output ---------------------------------------------------------------------------


def folder_json(folder: Folder) -> dict[str, Any]:
    """A Folder of the document."""
    levels = folder.name.split(names.DELIMITER)
    return {
        "name": folder.name,
        "parent": names.DELIMITER.join(levels[:-1]) or None,
        "display_name": levels[-1],
        "special_use": folder.special_use,
        "messages": folder.exists,
        "unseen": folder.unseen,
        "uid_validity": folder.uid_validity,
        "uid_next": folder.uid_next,
        "subscribed": folder.subscribed,
        "has_children": folder.has_children,
    }


def folder_path(name: str) -> str:
    """The API path of a folder: its name as one percent-encoded segment."""
    return f"{PREFIX}/folders/{urllib.parse.quote(name, safe='')}"


def _download_disposition(filename: str) -> str:
    """`attachment` with an RFC 6266 filename (ASCII fallback plus UTF-8 form)."""
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", filename)[:200] or "download"
    quoted = urllib.parse.quote(filename[:200], safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"


def _find(infos: Sequence[MessageInfo], uid: int) -> MessageInfo | None:
    i = bisect.bisect_left(infos, uid, key=lambda info: info.uid)
    return infos[i] if i < len(infos) and infos[i].uid == uid else None


def _current_flags(store: MailboxStore, folder: str, uid: int) -> list[str]:
    snapshot = store.uid_flags(folder)
    i = bisect.bisect_left(snapshot.uids, uid)
    if i >= len(snapshot.uids) or snapshot.uids[i] != uid:
        raise ApiError("message_not_found", f"There is no message with UID {uid} in '{folder}'.")
    return sorted(snapshot.flags[i])


def _special_folder(store: MailboxStore, name: str) -> Folder:
    """The folder `name`, or 409 when it is INBOX or a special folder."""
    folder = store.folder(name)
    if folder.name == names.INBOX or folder.special_use is not None:
        what = "the inbox" if folder.name == names.INBOX else "a special folder"
        raise ApiError("special_folder", f"'{folder.name}' is {what}: it can't be changed.")
    return folder


def trash_folder(store: MailboxStore) -> str:
    """The trash: the folder with special use \\Trash, else one named Trash, else a new
    Trash folder (as Outlook recreates Deleted Items)."""
    folders = store.folders()
    for folder in folders:
        if folder.special_use == "\\Trash":
            return folder.name
    for folder in folders:
        if folder.name == TRASH:
            return folder.name
    with contextlib.suppress(FolderExists):  # another client created it meanwhile
        store.create_folder(TRASH, "\\Trash")
    return TRASH


_SEND_FIELDS = ("to", "cc", "bcc", "subject", "body", "attachments", "in_reply_to", "references")


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ApiError("invalid_field", f"'{name}' must be a string.", field=name)
    return value


def _address_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError("invalid_field", f"'{name}' must be a list of e-mail addresses.", field=name)
    return value


def _attachments(value: object) -> list[sending.Attachment]:
    """The attachments of a send request, their content decoded from base64."""
    where = "attachments"
    if not isinstance(value, list):
        raise ApiError("invalid_field", f"'{where}' must be a list of objects.", field=where)
    found = []
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            raise ApiError("invalid_field", f"attachments[{n}] must be an object.", field=where)
        for key in item:
            if key not in ("name", "content_type", "content_base64"):
                raise ApiError(
                    "invalid_field", f"attachments[{n}] has an unknown field '{key}'.", field=where
                )
        name, kind, content = (item.get(k) for k in ("name", "content_type", "content_base64"))
        if not isinstance(name, str) or not name:
            raise ApiError("invalid_field", f"attachments[{n}] needs a 'name'.", field=where)
        if kind is not None and not isinstance(kind, str):
            raise ApiError(
                "invalid_field", f"attachments[{n}].content_type must be a string.", field=where
            )
        if not isinstance(content, str):
            raise ApiError(
                "invalid_field", f"attachments[{n}] needs 'content_base64'.", field=where
            )
        try:
            data = base64.b64decode("".join(content.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                "invalid_field",
                f"attachments[{n}].content_base64 is not base64.",
                field=where,
            ) from None
        found.append(sending.Attachment(name, kind or "", data))
    return found


# -- dispatch ---------------------------------------------------------------------------


@dataclass
class Call:
    """One authenticated request being answered."""

    request: Request
    params: dict[str, str]
    mailbox: Mailbox
    store: MailboxStore

    @property
    def folder(self) -> str:
        return _folder_name(self.params["folder"], "folder")

    @property
    def uid(self) -> int:
        return _uid(self.params["uid"])


@dataclass(frozen=True)
class _Route:
    method: str
    template: str  # as in the document: "/folders/{folder}"
    handler: str  # the ApiApp method's name
    segments: tuple[str, ...]


def _route(method: str, template: str, handler: str) -> _Route:
    return _Route(method, template, handler, tuple(template.strip("/").split("/")))


_ROUTES = (
    _route("GET", "/openapi.json", "openapi"),
    _route("GET", "/folders", "list_folders"),
    _route("POST", "/folders", "create_folder"),
    _route("GET", "/folders/{folder}", "get_folder"),
    _route("PATCH", "/folders/{folder}", "rename_folder"),
    _route("DELETE", "/folders/{folder}", "delete_folder"),
    _route("GET", "/folders/{folder}/messages", "list_messages"),
    _route("GET", "/folders/{folder}/messages/{uid}", "get_message"),
    _route("DELETE", "/folders/{folder}/messages/{uid}", "delete_message"),
    _route("GET", "/folders/{folder}/messages/{uid}/raw", "raw_message"),
    _route("GET", "/folders/{folder}/messages/{uid}/parts/{part}", "message_part"),
    _route("GET", "/folders/{folder}/messages/{uid}/flags", "get_flags"),
    _route("PUT", "/folders/{folder}/messages/{uid}/flags", "set_flags"),
    _route("PATCH", "/folders/{folder}/messages/{uid}/flags", "change_flags"),
    _route("POST", "/folders/{folder}/messages/{uid}/move", "move_message"),
    _route("POST", "/send", "send_message"),
)
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _match(segments: list[str]) -> tuple[str, dict[str, str]] | None:
    """(template, path parameters) of the route the segments address, or None."""
    for route in _ROUTES:
        if len(route.segments) != len(segments):
            continue
        params: dict[str, str] = {}
        for pattern, segment in zip(route.segments, segments, strict=True):
            if pattern.startswith("{"):
                if not segment:
                    break
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                break
        else:
            return route.template, params
    return None


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _segment(raw: str) -> str:
    if raw in (".", ".."):
        raise ApiError("invalid_path", "A path segment is '.' or '..'; encode it as %2E.")
    try:
        return urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("invalid_path", "A path segment is not UTF-8 once decoded.") from None


def path_segments(scope: Scope) -> list[str]:
    """The segments after /api/v1, each percent-decoded on its own (so "%2F" stays
    inside its segment). Read from the undecoded `raw_path`; when that is missing or
    doesn't agree with `path` (a proxy rewrote one), from `path`."""
    rest = _route_path(scope)[len(PREFIX) :]
    raw_path = scope.get("raw_path")
    if raw_path:
        raw = raw_path.decode("latin-1").split("/")
        for i in range(len(raw) - 1):
            if urllib.parse.unquote(raw[i]) == "api" and urllib.parse.unquote(raw[i + 1]) == "v1":
                tail = raw[i + 2 :]
                if "".join("/" + urllib.parse.unquote(s) for s in tail) == rest:
                    return [_segment(s) for s in tail]
    return [_segment(urllib.parse.quote(s, safe="")) for s in rest.split("/")[1:]]


class ApiApp:
    """The ASGI application behind `/api/v1` (see the module docstring)."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self._document = ApiJSONResponse(document()).body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.dispatch(request)
        except ApiError as exc:
            response = exc.response()
        except HTTPException as exc:
            response = _from_http_exception(exc).response()
        except ClientDisconnect:
            return  # gone while its body was read: no one to answer
        except Exception:
            log.exception("%s %s %s", self.context.server_name, request.method, request.url.path)
            response = ApiJSONResponse(
                {"error": {"code": "internal_error", "message": "Internal server error."}}, 500
            )
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        await response(scope, receive, send)

    async def dispatch(self, request: Request) -> Response:
        segments = path_segments(request.scope)
        found = _match(segments)
        if found is None:
            raise ApiError("not_found", f"No API resource at {request.url.path}.")
        template, params = found
        allowed = allowed_methods(template)
        method = request.method.upper()
        if method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": ", ".join(allowed)})
        wanted = "GET" if method == "HEAD" else method
        route = next((r for r in _ROUTES if r.template == template and r.method == wanted), None)
        if route is None:
            raise ApiError(
                "method_not_allowed",
                f"{method} is not allowed here; use {', '.join(allowed)}.",
                headers={"Allow": ", ".join(allowed)},
            )
        if route.handler == "openapi":  # the one resource without authentication (no method)
            return Response(self._document, media_type="application/json")
        handler: Callable[[Call], Awaitable[Response]] = getattr(self, route.handler)
        mailbox = await authenticate(request)
        store = await run_in_threadpool(self._open, mailbox, request)
        return await handler(Call(request, params, mailbox, store))

    def _open(self, mailbox: Mailbox, request: Request) -> MailboxStore:
        """The user's mailbox store, after the preferred-endpoint check (blocking)."""
        directory = self.context.directory
        try:
            endpoint = preferred_endpoint(directory, mailbox)
        except NoEndpointError as exc:
            raise ApiError("no_endpoint", exc.message) from None
        except DirectoryError as exc:
            raise ApiError("directory_unavailable", exc.message) from None
        if not serves(self.context.server, endpoint):
            raw_path = request.scope.get("raw_path")
            path = raw_path.decode("latin-1") if raw_path else urllib.parse.quote(request.url.path)
            query = request.scope.get("query_string", b"").decode("latin-1")
            location = self.context.https_url(endpoint.fqdn, path + (f"?{query}" if query else ""))
            raise ApiError(
                "wrong_endpoint",
                f"{mailbox.primary_smtp_address} is served by {endpoint.fqdn} "
                f"({endpoint.why}), not by {self.context.server_fqdn}.",
                endpoint=endpoint.fqdn,
                headers={"Location": location},
            )
        try:
            database = directory.databases.one(mailbox.database)
        except DirectoryError as exc:
            raise ApiError("directory_unavailable", exc.message) from None
        try:
            return open_mailbox(database, mailbox.guid)
        except MailstoreError as exc:
            raise _store_error(exc) from None

    @staticmethod
    async def _run(func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` in a worker thread, store errors as API errors."""
        try:
            return await run_in_threadpool(func, *args)
        except MailstoreError as exc:
            raise _store_error(exc) from None

    # -- handlers ---------------------------------------------------------------------

    async def list_folders(self, call: Call) -> Response:
        folders = await self._run(call.store.folders)
        return ApiJSONResponse({"folders": [folder_json(f) for f in folders]})

    async def create_folder(self, call: Call) -> Response:
        body = await _json_body(call.request)
        _fields(body, ("name",), ("name",))
        name = _folder_name(body["name"], "name")
        folder = await self._run(call.store.create_folder, name)
        return ApiJSONResponse(
            folder_json(folder), 201, headers={"Location": folder_path(folder.name)}
        )

    async def get_folder(self, call: Call) -> Response:
        folder = await self._run(call.store.folder, call.folder)
        return ApiJSONResponse(folder_json(folder))

    async def rename_folder(self, call: Call) -> Response:
        old = call.folder
        body = await _json_body(call.request)
        _fields(body, ("name",), ("name",))
        new = _folder_name(body["name"], "name")

        def rename(store: MailboxStore) -> Folder:
            _special_folder(store, old)
            store.rename_folder(old, new)
            return store.folder(new)

        folder = await self._run(rename, call.store)
        return ApiJSONResponse(folder_json(folder), headers={"Location": folder_path(folder.name)})

    async def delete_folder(self, call: Call) -> Response:
        name = call.folder

        def delete(store: MailboxStore) -> None:
            _special_folder(store, name)
            store.delete_folder(name)

        await self._run(delete, call.store)
        return Response(status_code=204)

    async def list_messages(self, call: Call) -> Response:
        name = call.folder
        limit = _int_query(call.request, "limit", 1, MAX_PAGE, DEFAULT_PAGE)
        before = _int_query(call.request, "before", 1, MAX_UID, None)
        assert limit is not None

        def page(store: MailboxStore) -> dict[str, Any]:
            folder = store.folder(name)
            infos = store.messages(name)
            end = (
                len(infos)
                if before is None
                else bisect.bisect_left(infos, before, key=lambda i: i.uid)
            )
            start = max(0, end - limit)
            chosen = infos[start:end][::-1]
            cached = store.cached(name, [info.uid for info in chosen])
            return {
                "folder": folder.name,
                "uid_validity": folder.uid_validity,
                "total": len(infos),
                "messages": [api_message.summary(i, cached.get(i.uid)) for i in chosen],
                "next_before": chosen[-1].uid if start > 0 else None,
            }

        return ApiJSONResponse(await self._run(page, call.store))

    async def get_message(self, call: Call) -> Response:
        name, uid = call.folder, call.uid

        def read(store: MailboxStore) -> dict[str, Any]:
            raw = store.body(name, uid)
            info = _find(store.messages(name), uid)
            if info is None:  # expunged meanwhile
                raise MessageNotFound(f"There is no message with UID {uid} in '{name}'.")
            parts = store.cached(name, [uid]).get(uid)
            return api_message.view(raw, info, name, parts)

        return ApiJSONResponse(await self._run(read, call.store))

    async def raw_message(self, call: Call) -> Response:
        name, uid = call.folder, call.uid
        raw = await self._run(call.store.body, name, uid)
        return Response(
            raw,
            media_type="message/rfc822",
            headers={"Content-Disposition": _download_disposition(f"{uid}.eml")},
        )

    async def message_part(self, call: Call) -> Response:
        name, uid = call.folder, call.uid
        number = call.params["part"]
        if not PART_RE.fullmatch(number):
            raise ApiError(
                "invalid_field", f"'{number}' is not a part number (1, 2.1, ...).", field="part"
            )
        raw = await self._run(call.store.body, name, uid)
        found = await run_in_threadpool(api_message.part, raw, number)
        if found is None:
            raise ApiError(
                "part_not_found", f"Message {uid} in '{name}' has no leaf part {number}."
            )
        return Response(
            found.content,
            headers={
                "Content-Type": found.media_type,
                "Content-Disposition": _download_disposition(found.filename or f"part-{number}"),
                # the part is the sender's content: never run or sniff it on this origin
                "Content-Security-Policy": "sandbox; default-src 'none'",
            },
        )

    async def get_flags(self, call: Call) -> Response:
        name, uid = call.folder, call.uid
        flags = await self._run(_current_flags, call.store, name, uid)
        return ApiJSONResponse({"uid": uid, "flags": flags})

    async def set_flags(self, call: Call) -> Response:
        name, uid = call.folder, call.uid
        body = await _json_body(call.request)
        _fields(body, ("flags",), ("flags",))
        flags = _flags(body["flags"], "flags")
        return await self._store_flags(call, name, uid, [("set", flags)])

    async def change_flags(self, call: Call) -> Response:
        name, uid = call.folder, call.uid
        body = await _json_body(call.request)
        _fields(body, ("add", "remove"), ())
        changes = [(mode, _flags(body[mode], mode)) for mode in ("add", "remove") if mode in body]
        return await self._store_flags(call, name, uid, changes)

    async def _store_flags(
        self, call: Call, name: str, uid: int, changes: Sequence[tuple[str, list[str]]]
    ) -> Response:
        def store_flags(store: MailboxStore) -> list[str]:
            _current_flags(store, name, uid)  # 404 for a message that isn't there
            for mode, flags in changes:
                if flags or mode == "set":
                    store.store_flags(name, [uid], mode, flags)
            return _current_flags(store, name, uid)

        flags = await self._run(store_flags, call.store)
        return ApiJSONResponse({"uid": uid, "flags": flags})

    async def move_message(self, call: Call) -> Response:
        name, uid = call.folder, call.uid
        body = await _json_body(call.request)
        _fields(body, ("to",), ("to",))
        destination = _folder_name(body["to"], "to")
        if destination == name:
            # IMAP's MOVE may give a message a new UID in its own folder; a web user
            # moving a message where it is already has made a mistake.
            raise ApiError("folder_in_use", f"The message is in '{name}' already.", field="to")
        copied = await self._run(call.store.move, name, [uid], destination)
        if not copied.pairs:
            raise ApiError("message_not_found", f"There is no message with UID {uid} in '{name}'.")
        new_uid = copied.pairs[0][1]
        return ApiJSONResponse(
            {"folder": destination, "uid": new_uid, "uid_validity": copied.uid_validity},
            headers={"Location": f"{folder_path(destination)}/messages/{new_uid}"},
        )

    async def delete_message(self, call: Call) -> Response:
        name, uid = call.folder, call.uid
        permanent = _bool_query(call.request, "permanent")

        def delete(store: MailboxStore) -> dict[str, Any]:
            store.folder(name)  # 404 for a folder that isn't there
            trash = None if permanent else trash_folder(store)
            if trash is None or name == trash or names.is_under(name, trash):
                _current_flags(store, name, uid)
                store.store_flags(name, [uid], "add", ["\\Deleted"])
                if not store.expunge(name, [uid]):
                    raise MessageNotFound(f"There is no message with UID {uid} in '{name}'.")
                return {"permanent": True, "folder": None, "uid": None}
            copied = store.move(name, [uid], trash)
            if not copied.pairs:
                raise MessageNotFound(f"There is no message with UID {uid} in '{name}'.")
            return {"permanent": False, "folder": trash, "uid": copied.pairs[0][1]}

        return ApiJSONResponse(await self._run(delete, call.store))

    async def send_message(self, call: Call) -> Response:
        body = await _json_body(call.request, MAX_SEND_BODY)
        _fields(body, _SEND_FIELDS, ("to",))
        try:
            outgoing = sending.outgoing_of(
                to=_address_list(body, "to"),
                cc=_address_list(body, "cc"),
                bcc=_address_list(body, "bcc"),
                subject=_string(body, "subject"),
                body=_string(body, "body"),
                attachments=_attachments(body.get("attachments", [])),
                in_reply_to=_string(body, "in_reply_to"),
                references=_string(body, "references"),
            )
        except sending.InvalidMessage as exc:
            raise ApiError("invalid_field", exc.message, field=exc.field) from None
        try:
            sent = await self._run(sending.send, self.context, call.mailbox, call.store, outgoing)
        except RecipientsRefused as exc:
            code = "transport_unavailable" if exc.temporary else "recipient_refused"
            raise ApiError(code, exc.message, field="to") from None
        except SubmissionError as exc:
            code = "transport_unavailable" if exc.temporary else "message_refused"
            raise ApiError(code, exc.message) from None
        copy = None
        headers = {}
        if sent.folder is not None and sent.uid is not None:
            copy = {"folder": sent.folder, "uid": sent.uid, "uid_validity": sent.uid_validity}
            headers["Location"] = f"{folder_path(sent.folder)}/messages/{sent.uid}"
        return ApiJSONResponse(
            {
                "queue_id": sent.queue_id,
                "message_id": sent.message_id,
                "hub": sent.hub,
                "sent": copy,
            },
            202,
            headers=headers,
        )


# -- mounting ----------------------------------------------------------------------------


class ApiMount(BaseRoute):
    """The one Starlette route of the API: every http request whose path is /api/v1 or
    below it goes to `ApiApp`."""

    def __init__(self, context: AppContext) -> None:
        self.app = ApiApp(context)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path = _route_path(scope)
            if path == PREFIX or path.startswith(PREFIX + "/"):
                return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def routes(context: AppContext) -> list[BaseRoute]:
    """The JSON API's routes (a `RouteFactory`): `create_app(context, [..., routes])`."""
    return [ApiMount(context)]
