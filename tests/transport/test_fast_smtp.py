"""FastSMTP against aiosmtpd's own SMTP: the same state after set-up, the same
addresses parsed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult
from hypothesis import given
from hypothesis import strategies as st

from casarray.transport.fast_smtp import FastSMTP
from casarray.transport.receive import ReceiveHandler


class Handler(ReceiveHandler):
    async def auth_CUSTOM(self, server: Any, args: list[str]) -> AuthResult:
        return AuthResult(success=False)


class Fast(FastSMTP):
    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        return AuthResult(success=False)

    async def smtp_XTEST(self, arg: str) -> None:
        await self.push("250 OK")


class Slow(SMTP):
    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        return AuthResult(success=False)

    async def smtp_XTEST(self, arg: str) -> None:
        await self.push("250 OK")


def _both() -> tuple[Fast, Slow]:
    async def make() -> tuple[Fast, Slow]:
        loop = asyncio.get_running_loop()
        handler = Handler()
        fast = Fast(
            handler,
            data_size_limit=None,
            enable_SMTPUTF8=True,
            hostname="mbx01.lab.net",
            ident="ident",
            tls_context=None,
            timeout=60,
            loop=loop,
        )
        slow = Slow(
            handler,
            data_size_limit=None,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="mbx01.lab.net",
            ident="ident",
            tls_context=None,
            require_starttls=False,
            timeout=60,
            auth_required=False,
            auth_require_tls=True,
            auth_exclude_mechanism=(),
            loop=loop,
        )
        return fast, slow

    return asyncio.run(make())


def test_set_up_gives_the_attributes_aiosmtpd_gives() -> None:
    fast, slow = _both()
    assert set(vars(fast)) == set(vars(slow))
    for name in ("__ident__", "data_size_limit", "enable_SMTPUTF8", "hostname",
                 "_decode_data", "require_starttls", "_auth_require_tls", "_auth_required",
                 "_ehlo_hook_ver", "_enforce_call_limit", "_timeout_duration"):  # fmt: skip
        assert getattr(fast, name) == getattr(slow, name), name
    assert {k: v.is_builtin for k, v in fast._auth_methods.items()} == {
        k: v.is_builtin for k, v in slow._auth_methods.items()
    }
    assert "CUSTOM" in fast._auth_methods and "PLAIN" in fast._auth_methods
    assert set(fast._handle_hooks) == set(slow._handle_hooks)
    assert set(fast._smtp_methods) == set(slow._smtp_methods)
    assert "XTEST" in fast._smtp_methods
    # bound to this connection's protocol, not to the first one's
    other, _ = _both()
    assert fast._smtp_methods["XTEST"].__self__ is fast
    assert other._smtp_methods["XTEST"].__self__ is other


ADDRESSES = [
    "<alice@lab.net>",
    "<alice@lab.net> SIZE=1000 BODY=8BITMIME",
    "  <a.b+c@mail.lab.net>",
    "<>",
    "<alice@[127.0.0.1]>",
    '<"quoted local"@lab.net>',
    "<alice@lab.net",
    "alice@lab.net",
    "<alice..b@lab.net>",
    "<.alice@lab.net>",
    "<alice@-lab.net>",
    "<alice@lab..net>",
    "<élise@lab.net>",
    "<alice@lab.net>\t",
    "<" + "a" * 70 + "@lab.net>",
    "<@relay.net:alice@lab.net>",
    "<alice@lab.net>>",
    "",
]


@pytest.mark.parametrize("arg", ADDRESSES)
def test_addresses_parse_as_aiosmtpd_parses_them(arg: str) -> None:
    fast, slow = _both()
    assert fast._getaddr(arg) == slow._getaddr(arg)


_ADDRESS_TEXT = st.text(alphabet=st.sampled_from(list("abcAZ09.-_+@<>[]\"' \t:,é!")), max_size=30)


def _aiosmtpd_getaddr(slow: Slow, arg: str) -> tuple[str | None, str | None]:
    try:
        return slow._getaddr(arg)
    except (IndexError, ValueError):  # the email parser's bugs: a syntax error here
        return None, None


@given(_ADDRESS_TEXT)
def test_any_address_parses_as_aiosmtpd_parses_it(arg: str) -> None:
    fast, slow = _PAIR
    assert fast._getaddr(arg) == _aiosmtpd_getaddr(slow, arg)


@pytest.mark.parametrize("arg", ["a@", '"'])
def test_an_address_aiosmtpd_chokes_on_is_a_syntax_error(arg: str) -> None:
    fast, slow = _PAIR
    with pytest.raises(IndexError):
        slow._getaddr(arg)
    assert fast._getaddr(arg) == (None, None)


_PAIR = _both()
