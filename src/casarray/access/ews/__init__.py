"""Exchange Web Services (EWS), the SOAP protocol of Exchange's own clients
(exchangelib, DavMail, Thunderbird, Evolution, Outlook for Mac), served by every Client
Access server at `/EWS/Exchange.asmx`.

The pieces, from the wire in:

- `soap` (sans-IO): a request's bytes to a `SoapRequest` (defusedxml, size limit,
  SOAP faults for what isn't a request), and response elements to bytes with
  `t:ServerVersionInfo` (Exchange 2010 SP3, `Exchange2010_SP2`) in the header.
  `EwsError(code, message)` is an Exchange ResponseCode with its MessageText.
- `ids` (sans-IO): FolderId, ItemId, AttachmentId, ChangeKey and SyncState,
  base64 and HMAC'd with a key derived from the organization's secret, so any member
  decodes any id and a forged one is refused.
- `context`: `EwsContext`, what a handler gets: `mailbox` (the directory's record of
  the authenticated user), `store` (their `MailboxStore`), `directory`, `server` (this
  Client Access server), `ids` (the `IdCodec`) and `request` (the `SoapRequest`); and
  the folder model (distinguished folders, virtual ones, `FolderView`).
- `operations`: one module per family, and `OPERATIONS: dict[str, Handler]`, the
  dispatch table; a handler is `(EwsContext, operation element) -> response element`,
  runs in a worker thread, raises `EwsError` for a failure of the whole operation and
  puts an error response message in place of a failed item of a batch.
- `properties`: messages as EWS items (`t:Message`), the property paths (FieldURI)
  clients ask for, the shapes.
- `dispatch`: bytes in, (status, bytes) out; unknown operations and every error are
  an EWS error response with HTTP 200, never a 500.
- `http`: the Starlette routes, mounted by `access.http.app.default_services()`.
"""
