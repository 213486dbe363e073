"""Outlook Web App (`/owa`): web mail on every Client Access server.

Plain HTML pages and forms that work without JavaScript:

    GET  /owa                the mailbox: folders, and a page of one folder's messages,
                             newest first (?folder=INBOX&page=1)
    GET  /owa/login          the sign-in form; POST /owa/login signs in
    GET  /owa/message        one message (?folder=&uid=); marks it read. HTML bodies are
                             sanitized (message_view); remote images load only with
                             ?images=1; ?view=plain shows the plain text alternative
    GET  /owa/attachment     one part of a message as a download (?folder=&uid=&part=)
    POST /owa/flag           flag or unflag a message
    POST /owa/move           move it to another folder
    POST /owa/delete         move it to Trash, as OWA does; in Trash, remove it for good
    POST /owa/logout         sign out
    GET  /owa/compose        a new message; ?action=reply|replyall|forward&folder=&uid=
                             prepares a reply or forward of a message (the original
                             quoted; a forward carries its attachments)
    POST /owa/send           sends what the compose form holds (multipart/form-data,
                             with attachments) through a Hub Transport server of the
                             site (`sending`, `access.submission`); a copy goes to Sent
                             Items. A refused recipient is named on the form again
    GET  /owa/static/...     the style sheet

Sessions are stateless signed cookies (`web_session`): any member of the array
accepts a session another made, so the balancer needs no affinity, unlike Exchange
2010's OWA. A stateless cookie can't be revoked: signing out clears it in that browser,
but a copy made before stays valid until it expires (an hour idle, twelve hours at
most). Every form carries a CSRF token; failed sign-ins are throttled by the
context's throttle (`AppContext.throttle`), the one HTTP Basic logins count in.

The preferred endpoint: a user whose mailbox database should be reached through
another Client Access endpoint (`directory.endpoints`: another site's array, or a
server the database names) is redirected (302) to `https://<endpoint>/owa`, after
signing in and on every page, since the database may be re-pointed meanwhile.

Every page reads the directory and the mail store in worker threads (both are
synchronous). Pages are never cached, may not be framed, send no referrer, and carry a
Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from casarray.access.http import sending
from casarray.access.http.context import (
    AppContext,
    CaseInsensitiveRoute,
    client_address,
    is_tls,
)
from casarray.access.http.message_view import (
    Part,
    decode_part,
    headers_of,
    parse_structure,
    sanitize_html,
    text_of,
)
from casarray.access.http.web_session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_FORM_TIMEOUT,
    SessionCodec,
    WebSession,
    clear_cookie,
    set_cookie,
)
from casarray.access.submission import SubmissionError
from casarray.directory.endpoints import (
    NoEndpointError,
    access_name,
    preferred_endpoint,
    serves,
)
from casarray.directory.errors import DirectoryError, NotFoundError
from casarray.mailstore.interface import (
    DatabaseUnavailable,
    Folder,
    FolderInUse,
    FolderNotFound,
    InvalidFolderName,
    MailstoreError,
    MessageInfo,
    MessageNotFound,
    StorageFull,
)
from casarray.mailstore.mime import fetch_section
from casarray.mailstore.names import canonical
from casarray.mailstore.provisioning import open_mailbox

if TYPE_CHECKING:
    from casarray.directory import Mailbox
    from casarray.mailstore.interface import MailboxStore

log = logging.getLogger("casarray.http.owa")

PACKAGE = "casarray.access.http"
PAGE_SIZE = 25
MAX_FORM = 16 * 1024  # bytes: our forms are a few fields
MAX_UPLOAD = 10 * 1024 * 1024  # bytes of a compose form, attachments included
COMPOSE_FIELDS = ("to", "cc", "bcc", "subject", "body", "in_reply_to", "references")
COMPOSE_TITLES = {"reply": "Reply", "replyall": "Reply all", "forward": "Forward"}
SEEN, FLAGGED, DELETED, TRASH = "\\Seen", "\\Flagged", "\\Deleted", "\\Trash"
INBOX = "INBOX"

WRONG_PASSWORD = "The user name or password you entered isn't correct. Try entering it again."
STALE_FORM = "This sign-in page has expired. Please sign in again."
# A disk filling up: the mailbox database's, the Hub Transport's queue's.
DATABASE_FULL = (
    "Your mailbox's database has no disk space left, so nothing was changed. Try again later."
)
QUEUE_FULL = (
    "The message wasn't sent: the Hub Transport server has no disk space left for its "
    "queue. Try again later."
)
_MAIL_SYSTEM_FULL = re.compile(r"\b4\.3\.1\b")  # RFC 3463: mail system full
_SENT_NOTICES = {
    "1": "Your message was sent.",
    "2": "Your message was sent, but no copy was kept in Sent Items: your mailbox's "
    "database has no disk space left.",
    "3": "Your message was sent, but no copy could be kept in Sent Items.",
}

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


class _Stop(Exception):
    """Ends a request early with `response` (a redirect or an error page)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _Elsewhere(Exception):
    """The user's mailbox is served through another endpoint, at `url`."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


@dataclass(frozen=True)
class SignedIn:
    """A request's signed-in user: the session, the mailbox and its store."""

    session: WebSession
    mailbox: Mailbox
    store: MailboxStore


@dataclass(frozen=True)
class FolderItem:
    """A folder as the folder list shows it."""

    name: str
    label: str
    depth: int
    unseen: int
    current: bool


@dataclass(frozen=True)
class Row:
    """A message as the message list shows it."""

    info: MessageInfo
    subject: str
    correspondent: str  # From, or To in Sent and Drafts

    @property
    def unread(self) -> bool:
        return SEEN not in self.info.flags

    @property
    def flagged(self) -> bool:
        return FLAGGED in self.info.flags


# -- small helpers --------------------------------------------------------------------


def _url(path: str, **params: object) -> str:
    """`path?k=v&...` with the parameters that are not None."""
    query = urllib.parse.urlencode(
        {k: v for k, v in params.items() if v is not None}, quote_via=urllib.parse.quote
    )
    return f"{path}?{query}" if query else path


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _size(octets: int) -> str:
    if octets < 1024:
        return f"{octets} B"
    if octets < 1024 * 1024:
        return f"{octets / 1024:.0f} KB"
    return f"{octets / (1024 * 1024):.1f} MB"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _label(name: str) -> str:
    return "Inbox" if name == INBOX else name.rsplit("/", 1)[-1]


def _folder_items(folders: Sequence[Folder], current: str) -> list[FolderItem]:
    return [
        FolderItem(f.name, _label(f.name), f.name.count("/"), f.unseen, f.name == current)
        for f in folders
    ]


def _csp(remote_images: bool = False) -> str:
    images = "'self' https: http:" if remote_images else "'self'"
    # form-action allows https: too: signing in may end in a redirect to the user's
    # endpoint on another host, and Chromium checks redirects of a form against it.
    return (
        "default-src 'none'; style-src 'self'; "
        f"img-src {images}; form-action 'self' https:; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def _content_disposition(kind: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback name and the UTF-8 one (RFC 5987)."""
    fallback = filename.encode("ascii", "replace").decode("ascii")
    fallback = re.sub(r'[\x00-\x1f\x7f"\\]', "_", fallback)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename)}"


# -- the service ----------------------------------------------------------------------


class Owa:
    """The web mail of one Client Access server (see the module docstring).

    Just over 500 lines: one method per page and form of /owa, sharing the session
    codec, the templates and the login-to-mailbox steps; the pages are few enough to
    read in one place."""

    def __init__(self, context: AppContext, sessions: SessionCodec | None = None) -> None:
        self.context = context
        self.sessions = sessions or SessionCodec(context.directory.session_secret())
        self.templates = Environment(
            loader=PackageLoader(PACKAGE, "templates/owa"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(url=_url, server=context.server_fqdn)
        self.templates.filters.update(size=_size, when=_when)

    def routes(self) -> list[BaseRoute]:
        page = self._endpoint
        return [
            CaseInsensitiveRoute("/owa", page(self.mailbox), methods=["GET"], name="owa"),
            Route("/owa/login", page(self.login_form), methods=["GET"], name="owa-login"),
            Route("/owa/login", page(self.login), methods=["POST"]),
            Route("/owa/logout", page(self.logout), methods=["POST"], name="owa-logout"),
            Route("/owa/message", page(self.message), methods=["GET"], name="owa-message"),
            Route("/owa/attachment", page(self.attachment), methods=["GET"]),
            Route("/owa/flag", page(self.flag), methods=["POST"], name="owa-flag"),
            Route("/owa/move", page(self.move), methods=["POST"], name="owa-move"),
            Route("/owa/delete", page(self.delete), methods=["POST"], name="owa-delete"),
            Route("/owa/compose", page(self.compose), methods=["GET"], name="owa-compose"),
            Route("/owa/send", page(self.send), methods=["POST"], name="owa-send"),
            Mount(
                "/owa/static",
                app=StaticFiles(packages=[(PACKAGE, "static/owa")]),
                name="owa-static",
            ),
        ]

    # -- responses --------------------------------------------------------------------

    def _endpoint(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` with early ends (`_Stop`), directory failures, the session cookie
        refresh and our security headers."""

        async def endpoint(request: Request) -> Response:
            try:
                response = await handler(request)
            except _Stop as stop:
                response = stop.response
            except DirectoryError as exc:
                log.warning("%s OWA: directory error: %s", self.context.server_name, exc)
                response = self.error(request, 503, "The directory can't be read right now.")
            refresh: WebSession | None = getattr(request.state, "refresh", None)
            if refresh is not None and response.status_code < 400:
                self._set_session(request, response, self.sessions.refreshed(refresh))
            headers = response.headers
            headers.setdefault("content-security-policy", _csp())
            headers.setdefault("cache-control", "no-store")
            headers.setdefault("x-content-type-options", "nosniff")
            headers.setdefault("x-frame-options", "DENY")
            headers.setdefault("referrer-policy", "no-referrer")
            return response

        return endpoint

    def render(
        self,
        request: Request,
        template: str,
        *,
        user: SignedIn | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **values: Any,
    ) -> HTMLResponse:
        values.setdefault("title", "Outlook Web App")
        html = self.templates.get_template(template).render(
            user=user.mailbox if user is not None else None,
            csrf=user.session.csrf if user is not None else "",
            **values,
        )
        return HTMLResponse(html, status, headers=headers)

    def error(
        self, request: Request, status: int, message: str, *, user: SignedIn | None = None
    ) -> HTMLResponse:
        return self.render(
            request, "notice.html", user=user, status=status, title="Error", message=message
        )

    def _set_session(self, request: Request, response: Response, session: WebSession) -> None:
        set_cookie(
            response,
            COOKIE,
            self.sessions.dump(session),
            max_age=self.sessions.max_age(session),
            secure=is_tls(request),
        )

    def _to_login(self, request: Request, *, expired: bool) -> Response:
        response = RedirectResponse(_url("/owa/login", expired=1 if expired else None), 303)
        if COOKIE in request.cookies:
            clear_cookie(response, COOKIE, secure=is_tls(request))
        return response

    # -- checks every page makes ------------------------------------------------------

    async def _require_tls(self, request: Request) -> None:
        """Over plain HTTP (when TLS is required): a GET goes to the HTTPS URL on this
        server's access name; anything else is refused."""
        if not self.context.require_tls or is_tls(request):
            return
        if request.method in ("GET", "HEAD"):
            host = await run_in_threadpool(access_name, self.context.directory, self.context.server)
            url = self.context.https_url(host, request.url.path)
            if request.url.query:
                url += "?" + request.url.query
            raise _Stop(RedirectResponse(url, 302))
        raise _Stop(self.error(request, 403, "Web mail is available over HTTPS only."))

    def _elsewhere(self, mailbox: Mailbox) -> str | None:
        """The OWA URL of the mailbox's endpoint when this server isn't one (blocking)."""
        endpoint = preferred_endpoint(self.context.directory, mailbox)
        if serves(self.context.server, endpoint):
            return None
        return self.context.https_url(endpoint.fqdn, "/owa")

    def _open(self, guid: str) -> tuple[Mailbox, MailboxStore]:
        """The mailbox and its store (blocking); `_Elsewhere` when it is served
        through another endpoint."""
        directory = self.context.directory
        mailbox = directory.mailboxes.one(guid)
        url = self._elsewhere(mailbox)
        if url is not None:
            raise _Elsewhere(url)
        database = directory.databases.one(mailbox.database)
        return mailbox, open_mailbox(database, mailbox.guid)

    async def signed_in(self, request: Request) -> SignedIn:
        """The request's user, or `_Stop`: back to the sign-in page (no session, or a
        forged, expired or stale one), to the user's endpoint, or an error page."""
        await self._require_tls(request)
        cookie = request.cookies.get(COOKIE)
        session = self.sessions.load(cookie)
        if session is None:
            raise _Stop(self._to_login(request, expired=cookie is not None))
        try:
            mailbox, store = await run_in_threadpool(self._open, session.mailbox)
        except NotFoundError:  # the mailbox was removed
            raise _Stop(self._to_login(request, expired=True)) from None
        except _Elsewhere as moved:
            log.info(
                "%s OWA %s: redirected to %s", self.context.server_name, session.mailbox, moved.url
            )
            raise _Stop(RedirectResponse(moved.url, 302)) from None
        except DirectoryError as exc:  # NoEndpointError among them
            raise _Stop(self.error(request, 503, exc.message)) from None
        except DatabaseUnavailable as exc:
            raise _Stop(self.error(request, 503, str(exc))) from None
        if self.sessions.needs_refresh(session):
            request.state.refresh = session
        return SignedIn(session, mailbox, store)

    async def _form(self, request: Request) -> FormData:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise _Stop(self.error(request, 411, "The form has no Content-Length."))
        if int(length) > MAX_FORM:
            raise _Stop(self.error(request, 413, "The form is too large."))
        return await request.form(max_files=0, max_fields=50)

    def _check_csrf(self, request: Request, user: SignedIn, form: FormData) -> None:
        """A 403 page unless the form carries the session's CSRF token."""
        if not self.sessions.check_csrf(user.session, form.get("csrf")):
            log.info(
                "%s OWA: bad CSRF token from %s", self.context.server_name, client_address(request)
            )
            raise _Stop(
                self.error(
                    request,
                    403,
                    "This request didn't come from a page of this site (the security "
                    "token is missing or wrong). Go back, reload the page and try again.",
                    user=user,
                )
            )

    async def _checked_form(self, request: Request, user: SignedIn) -> FormData:
        """The form of a signed-in page, or a 403 page when its CSRF token is wrong."""
        form = await self._form(request)
        self._check_csrf(request, user, form)
        return form

    async def _store(
        self, request: Request, user: SignedIn, call: Callable[..., Any], *args: Any
    ) -> Any:
        """`call(*args)` on a worker thread, mail store errors as error pages."""
        try:
            return await run_in_threadpool(call, *args)
        except (FolderNotFound, InvalidFolderName):
            message = "That folder doesn't exist."
            raise _Stop(self.error(request, 404, message, user=user)) from None
        except MessageNotFound:
            message = "That message doesn't exist. It may have been moved or deleted."
            raise _Stop(self.error(request, 404, message, user=user)) from None
        except StorageFull:
            raise _Stop(self.error(request, 503, DATABASE_FULL, user=user)) from None
        except DatabaseUnavailable as exc:
            raise _Stop(self.error(request, 503, str(exc), user=user)) from None
        except MailstoreError as exc:
            raise _Stop(self.error(request, 400, str(exc), user=user)) from None

    # -- signing in and out -----------------------------------------------------------

    def _login_page(
        self,
        request: Request,
        *,
        status: int = 200,
        error: str | None = None,
        notice: str | None = None,
        username: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        cookie, token = self.sessions.new_login()
        response = self.render(
            request,
            "login.html",
            status=status,
            headers=headers,
            title="Sign in",
            token=token,
            error=error,
            notice=notice,
            username=username,
        )
        set_cookie(
            response, LOGIN_COOKIE, cookie, max_age=LOGIN_FORM_TIMEOUT, secure=is_tls(request)
        )
        return response

    def _authenticate(
        self, login: str, password: str, address: str
    ) -> tuple[Mailbox | None, float | None]:
        """(the mailbox, None); (None, None) for a wrong password; (None, seconds to
        wait) while the login is throttled. Blocking: argon2, and the throttle may keep
        its counters in the directory."""
        throttle = self.context.throttle
        retry = throttle.retry_after(login, address)
        if retry is not None:
            return None, retry
        mailbox = self.context.directory.mailboxes.authenticate(login, password)
        if mailbox is None:
            throttle.failed(login, address)
        else:
            throttle.succeeded(login)
        return mailbox, None

    async def login_form(self, request: Request) -> Response:
        await self._require_tls(request)
        if self.sessions.load(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/owa", 303)
        notice = None
        if "signed_out" in request.query_params:
            notice = "You have signed out. Close the browser window to finish."
        elif "expired" in request.query_params:
            notice = "Your session has ended. Please sign in again."
        return self._login_page(request, notice=notice)

    async def login(self, request: Request) -> Response:
        await self._require_tls(request)
        context = self.context
        form = await self._form(request)
        if not self.sessions.check_login(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
            return self._login_page(request, status=403, error=STALE_FORM)
        login = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        if "\\" in login:  # DOMAIN\user
            login = login.rsplit("\\", 1)[1]
        if not login or not password:
            return self._login_page(
                request, error="Enter your user name and password.", username=login
            )
        address = client_address(request)
        mailbox, retry = await run_in_threadpool(self._authenticate, login, password, address)
        if retry is not None:
            log.info("%s OWA login %r from %s: throttled", context.server_name, login, address)
            wait = int(retry) + 1
            return self._login_page(
                request,
                status=429,
                error=f"Too many failed sign-in attempts. Try again in {wait} seconds.",
                username=login,
                headers={"Retry-After": str(wait)},
            )
        if mailbox is None:
            log.info("%s OWA login %r from %s: failed", context.server_name, login, address)
            return self._login_page(request, error=WRONG_PASSWORD, username=login)
        try:
            url = await run_in_threadpool(self._elsewhere, mailbox)
        except NoEndpointError as exc:
            return self.error(request, 503, exc.message)
        if url is not None:
            log.info("%s OWA login %r: redirected to %s", context.server_name, login, url)
            return RedirectResponse(url, 302)
        log.info("%s OWA login %r from %s: ok", context.server_name, login, address)
        response = RedirectResponse("/owa", 303)
        self._set_session(request, response, self.sessions.new(mailbox.guid))
        clear_cookie(response, LOGIN_COOKIE, secure=is_tls(request))
        return response

    async def logout(self, request: Request) -> Response:
        """Clears the session cookie in this browser (a copy stays valid until it
        expires: see the module docstring)."""
        await self._require_tls(request)
        session = self.sessions.load(request.cookies.get(COOKIE))
        if session is not None:
            form = await self._form(request)
            if not self.sessions.check_csrf(session, form.get("csrf")):
                return self.error(request, 403, "The sign-out request didn't come from this site.")
        response = RedirectResponse(_url("/owa/login", signed_out=1), 303)
        clear_cookie(response, COOKIE, secure=is_tls(request))
        return response

    # -- reading ----------------------------------------------------------------------

    async def mailbox(self, request: Request) -> Response:
        if request.url.path != "/owa":  # /OWA: the cookie's path is case-sensitive
            return RedirectResponse(_url("/owa", **request.query_params), 301)
        user = await self.signed_in(request)
        folder = request.query_params.get("folder") or INBOX
        page = _int(request.query_params.get("page"), 1)
        view = await self._store(request, user, self._list, user.store, folder, page)
        notice = _SENT_NOTICES.get(request.query_params.get("sent") or "")
        return self.render(request, "mailbox.html", user=user, notice=notice, **view)

    @staticmethod
    def _list(store: MailboxStore, name: str, page: int) -> dict[str, Any]:
        folder = store.folder(name)
        folders = store.folders()
        infos = store.messages(folder.name)
        pages = max(1, math.ceil(len(infos) / PAGE_SIZE))
        page = min(max(page, 1), pages)
        end = len(infos) - (page - 1) * PAGE_SIZE
        shown = infos[max(0, end - PAGE_SIZE) : end][::-1]  # newest first
        envelopes = store.envelopes(folder.name, [m.uid for m in shown])
        sent = folder.special_use in ("\\Sent", "\\Drafts")
        rows = []
        for info in shown:
            if info.uid not in envelopes:
                continue  # expunged meanwhile
            headers = headers_of(envelopes[info.uid])
            rows.append(Row(info, headers.subject, headers.to if sent else headers.sender))
        return {
            "title": _label(folder.name),
            "folder": folder,
            "folders": _folder_items(folders, folder.name),
            "rows": rows,
            "page": page,
            "pages": pages,
            "total": len(infos),
            "first": (page - 1) * PAGE_SIZE + 1 if rows else 0,
            "correspondent": "To" if sent else "From",
        }

    async def message(self, request: Request) -> Response:
        user = await self.signed_in(request)
        query = request.query_params
        folder = query.get("folder") or INBOX
        uid = _int(query.get("uid"), 0)
        if uid <= 0:
            return self.error(request, 404, "That message doesn't exist.", user=user)
        images = query.get("images") == "1"
        plain = query.get("view") == "plain"
        view = await self._store(request, user, self._read, user.store, folder, uid, images, plain)
        headers = {"Content-Security-Policy": _csp(remote_images=images)}
        return self.render(request, "message.html", user=user, headers=headers, **view)

    @staticmethod
    def _read(
        store: MailboxStore, name: str, uid: int, images: bool, plain: bool
    ) -> dict[str, Any]:
        folder = store.folder(name)
        cached = store.cached(folder.name, [uid]).get(uid)
        if cached is None:
            raise MessageNotFound(f"There is no message with UID {uid} in '{folder.name}'.")
        raw = store.body(folder.name, uid)
        flags = store.uid_flags(folder.name)
        k = bisect.bisect_left(flags.uids, uid)
        flag_set = flags.flags[k] if k < len(flags.uids) and flags.uids[k] == uid else frozenset()
        if SEEN not in flag_set:
            # on a full disk the message is shown all the same, left unread
            with contextlib.suppress(StorageFull):
                store.store_flags(folder.name, [uid], "add", [SEEN])
        headers = headers_of(cached.envelope)
        structure = parse_structure(cached.bodystructure)

        def part_url(part: Part) -> str:
            return _url("/owa/attachment", folder=folder.name, uid=uid, part=part.number, inline=1)

        html: Markup | None = None
        text: str | None = None
        blocked = 0
        used: frozenset[str] = frozenset()
        if structure.html is not None and not (plain and structure.plain is not None):
            part = structure.html
            source = text_of(fetch_section(raw, part.number), part)
            sanitized = sanitize_html(
                source, part_url=part_url, structure=structure, load_remote=images
            )
            html = Markup(sanitized.html)  # sanitized by nh3 just above
            blocked, used = sanitized.blocked_images, sanitized.used_parts
        elif structure.plain is not None:
            text = text_of(fetch_section(raw, structure.plain.number), structure.plain)
        return {
            "title": headers.subject or "(no subject)",
            "folder": folder,
            "folders": _folder_items(store.folders(), folder.name),
            "uid": uid,
            "fields": headers,
            "sent": headers.sent(),
            "flagged": FLAGGED in flag_set,
            "html": html,
            "text": text,
            "blocked": blocked,
            "images": images,
            "has_both": structure.html is not None and structure.plain is not None,
            "plain": plain,
            "attachments": [p for p in structure.attachments if p.number not in used],
            "in_trash": folder.special_use == TRASH,
        }

    async def attachment(self, request: Request) -> Response:
        user = await self.signed_in(request)
        query = request.query_params
        folder = query.get("folder") or INBOX
        uid = _int(query.get("uid"), 0)
        number = query.get("part") or ""
        if uid <= 0 or not re.fullmatch(r"[1-9][0-9]{0,8}(\.[1-9][0-9]{0,8}){0,50}", number):
            return self.error(request, 404, "That attachment doesn't exist.", user=user)
        found = await self._store(request, user, self._part, user.store, folder, uid, number)
        if found is None:
            return self.error(request, 404, "That attachment doesn't exist.", user=user)
        part, data = found
        inline = query.get("inline") == "1" and part.can_show_inline
        media_type = part.content_type if _MEDIA_TYPE.fullmatch(part.content_type) else ""
        headers = {
            "Content-Disposition": _content_disposition(
                "inline" if inline else "attachment", part.download_name
            ),
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        }
        return Response(
            data, 200, headers=headers, media_type=media_type or "application/octet-stream"
        )

    @staticmethod
    def _part(store: MailboxStore, name: str, uid: int, number: str) -> tuple[Part, bytes] | None:
        folder = store.folder(name)
        cached = store.cached(folder.name, [uid]).get(uid)
        if cached is None:
            raise MessageNotFound(f"There is no message with UID {uid} in '{folder.name}'.")
        part = parse_structure(cached.bodystructure).parts.get(number)
        if part is None:
            return None
        raw = store.body(folder.name, uid)
        return part, decode_part(fetch_section(raw, part.number), part.encoding)

    async def compose(self, request: Request) -> Response:
        """A new message, or a reply, reply to all or forward of the message the query
        names (`action`, `folder`, `uid`)."""
        user = await self.signed_in(request)
        query = request.query_params
        action = query.get("action") or ""
        draft = dict.fromkeys(COMPOSE_FIELDS, "")
        carried: list[sending.Attachment] = []
        forward_of = None
        if action in COMPOSE_TITLES:
            uid = _int(query.get("uid"), 0)
            if uid <= 0:
                return self.error(request, 404, "That message doesn't exist.", user=user)
            folder, raw = await self._store(
                request, user, self._original, user.store, query.get("folder") or INBOX, uid
            )
            prepared = await run_in_threadpool(sending.prepare, raw, action, user.mailbox)
            for name in COMPOSE_FIELDS:
                draft[name] = getattr(prepared, name, "")
            if action == "forward":
                carried = prepared.attachments
                forward_of = {"folder": folder, "uid": uid}
        return await self._compose_page(
            request,
            user,
            title=COMPOSE_TITLES.get(action, "New message"),
            draft=draft,
            carried=carried,
            forward_of=forward_of,
        )

    async def _compose_page(
        self,
        request: Request,
        user: SignedIn,
        *,
        title: str,
        draft: dict[str, str],
        carried: Sequence[sending.Attachment] = (),
        forward_of: dict[str, object] | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        folders = await self._store(request, user, user.store.folders)
        return self.render(
            request,
            "compose.html",
            user=user,
            status=status,
            title=title,
            folders=_folder_items(folders, ""),
            draft=draft,
            carried=list(carried),
            forward_of=forward_of,
            error=error,
            max_upload=MAX_UPLOAD,
        )

    @staticmethod
    def _original(store: MailboxStore, name: str, uid: int) -> tuple[str, bytes]:
        """The folder's stored name and the message's bytes."""
        folder = store.folder(name)
        if not store.cached(folder.name, [uid]):
            raise MessageNotFound(f"There is no message with UID {uid} in '{folder.name}'.")
        return folder.name, store.body(folder.name, uid)

    async def _compose_form(self, request: Request, user: SignedIn) -> FormData:
        """The compose form (multipart, with files), or an error page: no length, too
        large, or a wrong CSRF token."""
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise _Stop(self.error(request, 411, "The form has no Content-Length.", user=user))
        if int(length) > MAX_UPLOAD:
            message = f"The message is too large: attachments may total {_size(MAX_UPLOAD)}."
            raise _Stop(self.error(request, 413, message, user=user))
        form = await request.form(
            max_files=sending.MAX_ATTACHMENTS, max_fields=50, max_part_size=MAX_UPLOAD
        )
        self._check_csrf(request, user, form)
        return form

    async def send(self, request: Request) -> Response:
        """Sends the compose form's message; on success back to the mailbox, else the
        form again with what went wrong."""
        user = await self.signed_in(request)
        form = await self._compose_form(request, user)
        draft = {name: str(form.get(name) or "") for name in COMPOSE_FIELDS}
        uploaded: list[sending.Attachment] = []
        for item in form.getlist("attachments"):
            if not isinstance(item, UploadFile) or not item.filename:
                continue  # a file input left empty
            name = re.sub(
                r"[\x00-\x1f\x7f]", "", item.filename.replace("\\", "/").rsplit("/", 1)[-1]
            )
            uploaded.append(
                sending.Attachment(name or "attachment", item.content_type or "", await item.read())
            )
        await form.close()
        carried: list[sending.Attachment] = []
        forward_of = None
        forward_uid = _int(form.get("forward_uid"), 0)
        if forward_uid > 0:
            folder, raw = await self._store(
                request,
                user,
                self._original,
                user.store,
                str(form.get("forward_folder") or INBOX),
                forward_uid,
            )
            carried = await run_in_threadpool(sending.prepared_attachments, raw)
            forward_of = {"folder": folder, "uid": forward_uid}

        async def again(status: int, error: str) -> Response:
            if uploaded:
                error += " Attach your files again."
            return await self._compose_page(
                request,
                user,
                title="New message",
                draft=draft,
                carried=carried,
                forward_of=forward_of,
                error=error,
                status=status,
            )

        try:
            outgoing = sending.outgoing_of(**draft, attachments=[*carried, *uploaded])
        except sending.InvalidMessage as exc:
            return await again(400, exc.message)
        try:
            sent = await run_in_threadpool(
                sending.send, self.context, user.mailbox, user.store, outgoing
            )
        except SubmissionError as exc:
            log.info(
                "%s OWA %s: not sent: %s",
                self.context.server_name,
                user.mailbox.primary_smtp_address,
                exc.message,
            )
            message = exc.message
            if exc.temporary and _MAIL_SYSTEM_FULL.search(message):  # RFC 3463 X.3.1
                message = f"{QUEUE_FULL} ({message})"
            return await again(503 if exc.temporary else 400, message)
        if sent.folder is None:  # sent, but its copy couldn't be kept
            return RedirectResponse(
                _url("/owa", sent=2 if isinstance(sent.copy_error, StorageFull) else 3), 303
            )
        return RedirectResponse(_url("/owa", sent=1), 303)

    # -- changing ---------------------------------------------------------------------

    async def _target(self, request: Request) -> tuple[SignedIn, FormData, str, int]:
        """The user, the checked form, and the message it names (its folder's stored
        name and its UID), or a 404 page when there is no such message."""
        user = await self.signed_in(request)
        form = await self._checked_form(request, user)
        uid = _int(form.get("uid"), 0)
        if uid <= 0:
            raise _Stop(self.error(request, 404, "That message doesn't exist.", user=user))
        folder = await self._store(
            request, user, self._existing, user.store, str(form.get("folder") or INBOX), uid
        )
        return user, form, folder, uid

    @staticmethod
    def _existing(store: MailboxStore, name: str, uid: int) -> str:
        folder = store.folder(name)
        if not store.cached(folder.name, [uid]):
            raise MessageNotFound(f"There is no message with UID {uid} in '{folder.name}'.")
        return folder.name

    async def flag(self, request: Request) -> Response:
        user, form, folder, uid = await self._target(request)
        mode = "add" if form.get("flagged") == "1" else "remove"
        await self._store(request, user, user.store.store_flags, folder, [uid], mode, [FLAGGED])
        return RedirectResponse(_url("/owa/message", folder=folder, uid=uid), 303)

    async def move(self, request: Request) -> Response:
        user, form, folder, uid = await self._target(request)
        destination = str(form.get("destination") or "")
        # A destination that doesn't exist: 404; the folder it is in already: 400.
        await self._store(request, user, self._move, user.store, folder, uid, destination)
        return RedirectResponse(_url("/owa", folder=folder), 303)

    async def delete(self, request: Request) -> Response:
        user, _, folder, uid = await self._target(request)
        await self._store(request, user, self._delete, user.store, folder, uid)
        return RedirectResponse(_url("/owa", folder=folder), 303)

    @staticmethod
    def _move(store: MailboxStore, folder: str, uid: int, destination: str) -> None:
        """IMAP's MOVE may give a message a new UID in its own folder; a web user moving
        a message where it is already has made a mistake."""
        if canonical(destination) == folder:
            raise FolderInUse(f"The message is in '{folder}' already.")
        store.move(folder, [uid], destination)

    @staticmethod
    def _delete(store: MailboxStore, folder: str, uid: int) -> None:
        """To Trash (made if missing); from Trash, for good."""
        trash = next((f.name for f in store.folders() if f.special_use == TRASH), None)
        if trash is None:
            trash = store.create_folder("Trash", TRASH).name
        if folder == trash:
            store.store_flags(folder, [uid], "add", [DELETED])
            store.expunge(folder, [uid])
        else:
            store.move(folder, [uid], trash)


def routes(context: AppContext) -> list[BaseRoute]:
    """The web mail's routes (a `RouteFactory`): add `owa.routes` to the services given
    to `create_app`. Reads the session secret from the directory (blocking)."""
    return Owa(context).routes()


__all__ = ["PAGE_SIZE", "Owa", "SignedIn", "routes"]
