"""aiosmtpd's `SMTP` protocol without its per-connection and per-command costs.

A profile of the receive service under smtp-source (a connection per message, as MTAs
mostly send) found two costs of aiosmtpd 1.4 that have nothing to do with SMTP:

- `SMTP.__init__` looks up the protocol's and the handler's methods with
  `inspect.getmembers` and `dir` on every connection (a third of the receive's time):
  `FastSMTP.__init__` sets the same attributes, the methods found once per class.
  `tests/transport/test_fast_smtp.py` checks that a `FastSMTP` has exactly the
  attributes aiosmtpd's own `__init__` gives, so an aiosmtpd that changes them fails
  there (pyproject pins aiosmtpd below 1.5 too).
- `_getaddr` parses every MAIL FROM and RCPT TO address with the `email` package's
  header parser (a quarter of a millisecond each): an address of the common form
  `<local@domain>` (dot-atoms only) is taken by a regular expression, with the same
  result; anything else (quoted local parts, address literals, UTF-8, the null sender)
  still goes through aiosmtpd's parser, whose IndexError or AttributeError on some
  malformed addresses (`a@`, `"`, `a@[1b:<x@c>`) becomes the syntax error it is instead
  of a 500 naming the exception.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP, _AuthMechAttr, login_always_fail

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_DOMAIN = rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*"
# `<address>`, then what follows after any blanks (not a comment: the parser's)
_SIMPLE_ADDRESS = re.compile(rf"[ \t]*<({_DOT_ATOM}@{_DOMAIN})>[ \t]*([^ \t(].*)?", re.S)

# Per class: [(mechanism, method name, whether the protocol's own)], handler hook
# names, smtp_ verb names.
_AuthNames = list[tuple[str, str, bool]]
_auth_names: dict[tuple[type, type], _AuthNames] = {}
_hook_names: dict[type, list[str]] = {}
_verb_names: dict[type, list[str]] = {}


def _auth_of(protocol_class: type, handler_class: type) -> _AuthNames:
    key = (protocol_class, handler_class)
    found = _auth_names.get(key)
    if found is None:
        found = []
        for own, cls in ((True, protocol_class), (False, handler_class)):
            for name in sorted(dir(cls)):
                if not name.startswith("auth_") or not callable(getattr(cls, name)):
                    continue
                mechanism = getattr(
                    getattr(cls, name),
                    "__auth_mechanism_name__",
                    name.replace("auth_", "").replace("__", "-"),
                )
                found.append((mechanism, name, own))
        _auth_names[key] = found
    return found


def _names(cache: dict[type, list[str]], cls: type, prefix: str) -> list[str]:
    found = cache.get(cls)
    if found is None:
        found = cache[cls] = [name for name in dir(cls) if name.startswith(prefix)]
    return found


class FastSMTP(SMTP):
    """`SMTP` with its set-up done once per class and a fast path for addresses."""

    def __init__(
        self,
        handler: Any,
        *,
        data_size_limit: int | None,
        enable_SMTPUTF8: bool,
        hostname: str,
        ident: str,
        tls_context: ssl.SSLContext | None,
        timeout: float,
        auth_require_tls: bool = True,
        auth_callback: Callable[..., bool] | None = None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # aiosmtpd 1.4's SMTP.__init__ for decode_data=False, require_starttls=False,
        # auth_required=False, no excluded mechanism, no call limit, no authenticator
        # and no PROXY timeout (what the receive service uses), in its order.
        self.__ident__ = ident
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=loop,
        )
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        self.command_size_limits.clear()
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = None if tls_context is None else False  # as aiosmtpd sets it
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = auth_require_tls
        self._proxy_timeout = None
        self._auth_callback = auth_callback or login_always_fail
        self._authenticator = None
        self._auth_required = False
        self._auth_methods = {
            mechanism: _AuthMechAttr(getattr(self if own else handler, name), own)
            for mechanism, name, own in _auth_of(type(self), type(handler))
        }
        self._handle_hooks = {
            name.replace("handle_", ""): getattr(handler, name)
            for name in _names(_hook_names, type(handler), "handle_")
        }
        self._ehlo_hook_ver = "new" if "EHLO" in self._handle_hooks else None
        self._smtp_methods = {
            name.replace("smtp_", ""): getattr(self, name)
            for name in _names(_verb_names, type(self), "smtp_")
        }
        self._enforce_call_limit = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_ADDRESS.fullmatch(arg)
        if match is None:
            try:
                return super()._getaddr(arg)
            # the email parser's own bugs ("a@", '"', "a@[1b:<x@c>")
            except (IndexError, ValueError, AttributeError):
                return None, None
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, match.group(2) or ""
