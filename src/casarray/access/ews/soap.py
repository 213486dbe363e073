"""SOAP 1.1 for Exchange Web Services, sans-IO: a request's bytes in, a `SoapRequest`
out; response elements in, bytes out. Nothing here reads a socket, the directory or a
mailbox.

Parsing goes through defusedxml with DTDs forbidden, so an entity bomb ("billion
laughs") or an external entity (XXE) is refused before anything expands, and the body
is limited to `MAX_BODY` octets (the HTTP layer answers 413 past it). What can't be
read as an EWS request (not XML, not a SOAP 1.1 envelope, no operation in the body)
raises `SoapFault`, which `fault()` turns into the SOAP fault Exchange sends for a
request that fails schema validation: HTTP 500 (SOAP 1.1 section 6.2 sends every fault
with 500; exchangelib parses such a body and raises the error it names). A request
that parses but asks for something we don't do is *not* a fault: the dispatcher
answers it with an ordinary response message of ResponseClass "Error" and HTTP 200,
because Outlook treats a 500 from EWS as an authentication problem and prompts for a
password again and again.

Every response's SOAP header carries `t:ServerVersionInfo` (Exchange 2010 SP3's
14.3 build, which names its schema version `Exchange2010_SP2`); exchangelib learns the
server's version from it.

Elements are `xml.etree.ElementTree.Element`s with `{namespace}local` tags (built with
`m()` and `t()`); `serialize()` writes them with Exchange's prefixes (s:, m:, t:)
without touching ElementTree's global prefix registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from casarray.errors import CasarrayError

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_M = "http://schemas.microsoft.com/exchange/services/2006/messages"
NS_T = "http://schemas.microsoft.com/exchange/services/2006/types"
NS_E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
PREFIXES = {NS_SOAP: "s", NS_M: "m", NS_T: "t", NS_E: "e", NS_XSI: "xsi"}

MAX_BODY = 16 * 1024 * 1024  # octets of a request body

# Exchange 2010 SP3 (14.3.123.4); its schema version is still "Exchange2010_SP2".
MAJOR_VERSION = 14
MINOR_VERSION = 3
MAJOR_BUILD = 123
MINOR_BUILD = 4
SCHEMA_VERSION = "Exchange2010_SP2"
# What a client may name in RequestServerVersion (a later one is answered as ours).
KNOWN_VERSIONS = frozenset(
    {
        "Exchange2007",
        "Exchange2007_SP1",
        "Exchange2010",
        "Exchange2010_SP1",
        "Exchange2010_SP2",
        "Exchange2013",
        "Exchange2013_SP1",
        "Exchange2015",
        "Exchange2016",
        "V2015_10_05",
        "V2016_01_06",
        "V2016_04_13",
        "V2016_07_13",
        "V2016_10_10",
        "V2017_01_07",
        "V2017_04_14",
        "V2017_07_11",
        "V2017_10_09",
        "V2018_01_08",
    }
)


def m(local: str) -> str:
    """The qualified tag of an element of the messages namespace."""
    return f"{{{NS_M}}}{local}"


def t(local: str) -> str:
    """The qualified tag of an element of the types namespace."""
    return f"{{{NS_T}}}{local}"


def s(local: str) -> str:
    return f"{{{NS_SOAP}}}{local}"


def local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def namespace_of(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


# -- errors --------------------------------------------------------------------------------


class SoapFault(CasarrayError):
    """A request that isn't an EWS SOAP request: answered with a SOAP fault (HTTP 500,
    or 413 for a body past `MAX_BODY`). `code` is the Exchange error code put in the
    fault's detail."""

    def __init__(self, message: str, *, code: str = "ErrorSchemaValidation", status: int = 500):
        super().__init__(message)
        self.code = code
        self.status = status


class EwsError(CasarrayError):
    """An EWS operation (or one item of it) failed: `code` is Exchange's ResponseCode
    ("ErrorItemNotFound", ...), the message becomes the MessageText."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoapRequest:
    """One EWS request, read: the operation (the body's first element) and the SOAP
    headers that matter to us."""

    operation: str  # local name, "GetFolder"
    namespace: str  # of the operation element; NS_M for every EWS operation
    body: Element  # the operation element
    requested_version: str | None  # t:RequestServerVersion/@Version
    time_zone: str | None  # t:TimeZoneContext/t:TimeZoneDefinition/@Id
    impersonation: str | None  # whom t:ExchangeImpersonation names, when present


def parse_request(data: bytes) -> SoapRequest:
    """The request in `data`, or SoapFault naming what is wrong with it."""
    if len(data) > MAX_BODY:
        raise SoapFault(
            f"The request body has {len(data)} octets; the limit is {MAX_BODY}.",
            code="ErrorInvalidRequest",
            status=413,
        )
    if not data.strip():
        raise SoapFault("The request body is empty; it must be a SOAP 1.1 envelope.")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise SoapFault(
            "The request has a DTD or an entity declaration, which EWS refuses "
            f"({type(exc).__name__})."
        ) from None
    except ParseError as exc:
        raise SoapFault(f"The request is not well-formed XML: {exc}.") from None
    except (ValueError, LookupError) as exc:  # a NUL, or an encoding expat can't read
        raise SoapFault(f"The request is not well-formed XML: {exc}.") from None
    if root.tag != s("Envelope"):
        if local_name(root.tag) == "Envelope":
            raise SoapFault(
                f"The envelope's namespace is '{namespace_of(root.tag)}'; EWS speaks SOAP 1.1 "
                f"({NS_SOAP})."
            )
        raise SoapFault(f"The root element is '{local_name(root.tag)}', not a SOAP Envelope.")
    header = root.find(s("Header"))
    body = root.find(s("Body"))
    if body is None:
        raise SoapFault("The SOAP envelope has no Body.")
    operations = list(body)
    if not operations:
        raise SoapFault("The SOAP Body is empty: it must hold one operation.")
    if len(operations) > 1:
        raise SoapFault("The SOAP Body holds more than one operation.")
    op = operations[0]
    version = time_zone = impersonation = None
    if header is not None:
        found = header.find(t("RequestServerVersion"))
        if found is not None:
            version = found.get("Version")
            if version is not None and version not in KNOWN_VERSIONS:
                raise SoapFault(
                    f"RequestServerVersion names '{version}', which is not a version of "
                    "Exchange Web Services.",
                    code="ErrorInvalidServerVersion",
                )
        tz = header.find(f"{t('TimeZoneContext')}/{t('TimeZoneDefinition')}")
        if tz is not None:
            time_zone = tz.get("Id")
        imp = header.find(t("ExchangeImpersonation"))
        if imp is not None:
            who = [(local_name(e.tag), (e.text or "").strip()) for e in imp.iter() if e is not imp]
            impersonation = next((text for _, text in who if text), "someone")
    return SoapRequest(
        operation=local_name(op.tag),
        namespace=namespace_of(op.tag),
        body=op,
        requested_version=version,
        time_zone=time_zone,
        impersonation=impersonation,
    )


# -- responses -----------------------------------------------------------------------------


def sub(parent: Element, tag: str, text: object = None, **attrs: object) -> Element:
    """A child element of `parent` (attribute values and text made strings)."""
    child = Element(tag, {k: _text(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        child.text = _text(text)
    parent.append(child)
    return child


def element(tag: str, text: object = None, **attrs: object) -> Element:
    e = Element(tag, {k: _text(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        e.text = _text(text)
    return e


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return ews_datetime(value)
    return str(value)


def ews_datetime(value: datetime) -> str:
    """xs:dateTime in UTC, as Exchange writes it: 2024-01-02T09:30:00Z."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def response_message(operation: str, error: EwsError | None = None) -> Element:
    """An `m:{operation}ResponseMessage` with its ResponseClass and ResponseCode: Success
    and NoError, or Error with the MessageText and the code of `error`."""
    msg = element(m(f"{operation}ResponseMessage"))
    fill_status(msg, error)
    return msg


def fill_status(msg: Element, error: EwsError | None = None, *, warning: bool = False) -> None:
    """ResponseClass and the status elements of a response message (Warning when
    `warning` and `error` is given)."""
    if error is None:
        msg.set("ResponseClass", "Success")
        sub(msg, m("ResponseCode"), "NoError")
        return
    msg.set("ResponseClass", "Warning" if warning else "Error")
    sub(msg, m("MessageText"), error.message)
    sub(msg, m("ResponseCode"), error.code)
    sub(msg, m("DescriptiveLinkKey"), 0)


def operation_response(operation: str, messages: Iterable[Element]) -> Element:
    """`m:{operation}Response` holding `m:ResponseMessages` with `messages`."""
    response = element(m(f"{operation}Response"))
    holder = sub(response, m("ResponseMessages"))
    holder.extend(messages)
    return response


def error_response(operation: str, error: EwsError) -> Element:
    """The whole response to an operation that failed as one: a single error message."""
    return operation_response(operation, [response_message(operation, error)])


def envelope(body: Element) -> bytes:
    """The response envelope: the ServerVersionInfo header and `body`, serialized."""
    root = element(s("Envelope"))
    header = sub(root, s("Header"))
    sub(
        header,
        t("ServerVersionInfo"),
        MajorVersion=MAJOR_VERSION,
        MinorVersion=MINOR_VERSION,
        MajorBuildNumber=MAJOR_BUILD,
        MinorBuildNumber=MINOR_BUILD,
        Version=SCHEMA_VERSION,
    )
    sub(root, s("Body")).append(body)
    return serialize(root)


def fault(error: SoapFault) -> bytes:
    """The SOAP fault for a request we couldn't read, as Exchange words one: faultcode
    a Client fault, the message, and the Exchange code in the detail."""
    root = element(s("Envelope"))
    body = sub(root, s("Body"))
    f = sub(body, s("Fault"))
    sub(f, "faultcode", "s:Client")
    sub(f, "faultstring", error.message)
    detail = sub(f, "detail")
    sub(detail, f"{{{NS_E}}}ResponseCode", error.code)
    sub(detail, f"{{{NS_E}}}Message", error.message)
    return serialize(root)


# -- serialization -------------------------------------------------------------------------

# what XML 1.0 can't carry: control characters but tab, LF and CR; lone surrogates;
# U+FFFE and U+FFFF
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_CARE = re.compile("[&<>\r]")
_ATTR_CARE = re.compile('[&<>"\n\r\t]')


def _clean(text: str) -> str:
    """`text` without the characters XML 1.0 can't carry (control characters other
    than tab, newline and carriage return, lone surrogates): a message may have them in
    a header, and one would make the whole response unreadable. One regular expression
    over the text (a per-character check was half of GetItem's time with bodies)."""
    if _NOT_XML.search(text) is None:
        return text
    return _NOT_XML.sub("\ufffd", text)


def _escaped_text(text: str) -> str:
    # str.replace per character to escape, not str.translate: translate looks every
    # character of a body up in a dict, ten times slower
    text = _clean(text)
    if _TEXT_CARE.search(text) is None:
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#13;")


def _escaped_attr(text: str) -> str:
    text = _clean(text)
    if _ATTR_CARE.search(text) is None:
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
    return text.replace("\t", "&#9;")


def xml_text(value: object) -> str:
    """`value` as escaped element text (booleans and datetimes as the schema writes
    them), for XML written as a string (`raw_xml`)."""
    return _escaped_text(_text(value))


class RawXml(Element):
    """An element standing for XML already written, as UTF-8 (`raw_xml`)."""

    data: bytes


def raw_xml(data: bytes) -> Element:
    """An element standing for the XML `data` (UTF-8; its prefixes those of
    `PREFIXES`, as `serialize` declares them on the root), copied into the output as
    it is."""
    e = RawXml("raw")
    e.data = data
    return e


@lru_cache(maxsize=1024)
def _qname(tag: str) -> str:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return f"{PREFIXES[ns]}:{local}"
    return tag


def serialize(root: Element) -> bytes:
    """`root` as UTF-8 XML with an XML declaration, the namespaces of `PREFIXES`
    declared once on the root."""
    out: list[str | bytes] = ['<?xml version="1.0" encoding="utf-8"?>']
    decls = "".join(f' xmlns:{p}="{ns}"' for ns, p in PREFIXES.items())
    _write(root, out, decls)
    return _joined(out)


def _joined(out: list[str | bytes]) -> bytes:
    """The pieces as UTF-8: the text between written parts encoded a run at a time."""
    chunks: list[bytes] = []
    run: list[str] = []
    for piece in out:
        if isinstance(piece, bytes):
            if run:
                chunks.append("".join(run).encode("utf-8"))
                run.clear()
            chunks.append(piece)
        else:
            run.append(piece)
    if run:
        chunks.append("".join(run).encode("utf-8"))
    return b"".join(chunks)


def serialize_fragment(e: Element) -> str:
    """`e` as XML with `PREFIXES`' prefixes and no declarations, for a part of a
    response written as a string."""
    out: list[str | bytes] = []
    _write(e, out)
    return _joined(out).decode("utf-8")


def _write(e: Element, out: list[str | bytes], decls: str = "") -> None:
    if isinstance(e, RawXml):
        out.append(e.data)
        return
    name = _qname(e.tag)
    attrs = "".join(f' {_qname(k)}="{_escaped_attr(v)}"' for k, v in e.attrib.items())
    children = len(e)
    if e.text is None and not children:
        out.append(f"<{name}{decls}{attrs}/>")
        return
    out.append(f"<{name}{decls}{attrs}>")
    if e.text is not None:
        out.append(_escaped_text(e.text))
    for child in e:
        _write(child, out)
    out.append(f"</{name}>")
