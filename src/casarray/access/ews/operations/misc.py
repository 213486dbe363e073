"""ConvertId, ResolveNames and GetServerTimeZones.

ConvertId: every id format names the same opaque id here (EwsId and EwsLegacyId as
base64, EntryId as base64 of its octets, HexEntryId as hex, OwaId and StoreId as
base64), so conversion re-encodes an id the server issued and adds the mailbox's
address (DavMail learns the user's address that way, from the root folder's id). The
source id's Mailbox attribute is ignored, as Exchange does (DavMail's is a placeholder,
blah@blah.com): the id itself names its mailbox and one of another mailbox is refused.

ResolveNames looks names up in the directory's mailboxes: the alias, the display
name or the primary SMTP address beginning with the text (an "SMTP:" prefix is
dropped), at most 100 as Exchange answers.

GetServerTimeZones answers UTC and China Standard Time (the lab's), enough for
exchangelib's time zone handling.
"""

from __future__ import annotations

import base64
import binascii
from xml.etree.ElementTree import Element

from casarray.access.ews.context import EwsContext
from casarray.access.ews.operations.common import batch, children
from casarray.access.ews.soap import (
    NS_XSI,
    EwsError,
    element,
    fill_status,
    m,
    operation_response,
    sub,
    t,
)

ID_FORMATS = ("EwsLegacyId", "EwsId", "EntryId", "HexEntryId", "StoreId", "OwaId")
MAX_RESOLUTIONS = 100


def _to_raw(text: str, fmt: str) -> str:
    """The id in our own (EwsId) form from its `fmt` form."""
    if fmt == "HexEntryId":
        try:
            return base64.b64encode(binascii.unhexlify(text.strip())).decode()
        except (binascii.Error, ValueError):
            raise EwsError("ErrorInvalidIdMalformed", "The HexEntryId is not hex.") from None
    return text.strip()


def _from_raw(text: str, fmt: str) -> str:
    if fmt == "HexEntryId":
        return binascii.hexlify(base64.b64decode(text)).decode().upper()
    return text


def convert_id(ctx: EwsContext, op: Element) -> Element:
    destination = op.get("DestinationFormat") or ""
    if destination not in ID_FORMATS:
        raise EwsError(
            "ErrorInvalidRequest",
            f"DestinationFormat is '{destination}'; one of {', '.join(ID_FORMATS)}.",
        )

    def each(e: Element, out: Element) -> None:
        fmt = e.get("Format") or ""
        if fmt not in ID_FORMATS:
            raise EwsError("ErrorInvalidRequest", f"The Format '{fmt}' is not an id format.")
        # The Mailbox attribute is not checked (DavMail sends a placeholder,
        # blah@blah.com, and Exchange ignores it): the HMAC'd id binds its mailbox, and
        # decoding it below refuses another mailbox's id.
        raw = _to_raw(e.get("Id") or "", fmt)
        try:
            ctx.ids.folder(raw, ctx.mailbox_guid)
        except EwsError as folder_error:
            if folder_error.code == "ErrorAccessDenied":
                raise
            try:
                ctx.ids.item(raw, ctx.mailbox_guid)
            except EwsError as item_error:
                if item_error.code == "ErrorAccessDenied":
                    raise
                raise EwsError(
                    "ErrorInvalidIdMalformed", "The id is not one this server issued."
                ) from None
        sub(
            out,
            m("AlternateId"),
            **{
                f"{{{NS_XSI}}}type": "t:AlternateIdType",
                "Format": destination,
                "Id": _from_raw(raw, destination),
                "Mailbox": ctx.mailbox.primary_smtp_address,
            },
        )

    return batch("ConvertId", children(op, "SourceIds", "id"), each)


def resolve_names(ctx: EwsContext, op: Element) -> Element:
    entry = (op.findtext(m("UnresolvedEntry")) or "").strip()
    if not entry:
        raise EwsError("ErrorNameResolutionNoResults", "UnresolvedEntry is empty.")
    full = (op.get("ReturnFullContactData") or "false").lower() == "true"
    text = entry[5:] if entry.lower().startswith("smtp:") else entry
    needle = text.lower()
    found = []
    for mailbox in ctx.directory.mailboxes.get():
        keys = (mailbox.alias, mailbox.display_name, mailbox.primary_smtp_address)
        if any(k.lower().startswith(needle) for k in keys) or any(
            word.lower().startswith(needle) for word in mailbox.display_name.split()
        ):
            found.append(mailbox)
    exact = [mb for mb in found if needle in (mb.primary_smtp_address.lower(), mb.alias.lower())]
    if exact:
        found = exact
    msg = element(m("ResolveNamesResponseMessage"))
    if not found:
        fill_status(
            msg, EwsError("ErrorNameResolutionNoResults", f"No results were found for '{entry}'.")
        )
        return operation_response("ResolveNames", [msg])
    if len(found) > 1:
        fill_status(
            msg,
            EwsError(
                "ErrorNameResolutionMultipleResults", f"Multiple results were found for '{entry}'."
            ),
            warning=True,
        )
    else:
        fill_status(msg)
    shown = found[:MAX_RESOLUTIONS]
    rs = sub(
        msg,
        m("ResolutionSet"),
        TotalItemsInView=len(shown),
        IncludesLastItemInRange=len(shown) == len(found),
    )
    for mailbox in shown:
        res = sub(rs, t("Resolution"))
        mb = sub(res, t("Mailbox"))
        sub(mb, t("Name"), mailbox.display_name)
        sub(mb, t("EmailAddress"), mailbox.primary_smtp_address)
        sub(mb, t("RoutingType"), "SMTP")
        sub(mb, t("MailboxType"), "Mailbox")
        if full:
            contact = sub(res, t("Contact"))
            sub(contact, t("DisplayName"), mailbox.display_name)
            addresses = sub(contact, t("EmailAddresses"))
            sub(addresses, t("Entry"), f"SMTP:{mailbox.primary_smtp_address}", Key="EmailAddress1")
            sub(contact, t("ContactSource"), "ActiveDirectory")
    return operation_response("ResolveNames", [msg])


ZONES = {
    "UTC": ("(UTC) Coordinated Universal Time", "PT0M"),
    "China Standard Time": ("(UTC+08:00) Beijing, Chongqing, Hong Kong, Urumqi", "-PT480M"),
}


def get_server_time_zones(ctx: EwsContext, op: Element) -> Element:
    wanted = [(e.text or "").strip() for e in op.iter(t("Id"))]
    unknown = [z for z in wanted if z not in ZONES]
    if unknown:
        raise EwsError("ErrorTimeZone", f"The time zone '{unknown[0]}' is not known here.")
    msg = element(m("GetServerTimeZonesResponseMessage"))
    fill_status(msg)
    holder = sub(msg, m("TimeZoneDefinitions"))
    for zone_id in wanted or list(ZONES):
        name, bias = ZONES[zone_id]
        period_id = f"trule:Microsoft/Registry/{zone_id}/1-Standard"
        zone = sub(holder, t("TimeZoneDefinition"), Id=zone_id, Name=name)
        periods = sub(zone, t("Periods"))
        sub(periods, t("Period"), Bias=bias, Name="Standard", Id=period_id)
        groups = sub(zone, t("TransitionsGroups"))
        group = sub(groups, t("TransitionsGroup"), Id="0")
        sub(sub(group, t("Transition")), t("To"), period_id, Kind="Period")
        transitions = sub(zone, t("Transitions"))
        sub(sub(transitions, t("Transition")), t("To"), "0", Kind="Group")
    return operation_response("GetServerTimeZones", [msg])


HANDLERS = {
    "ConvertId": convert_id,
    "ResolveNames": resolve_names,
    "GetServerTimeZones": get_server_time_zones,
}
