"""RFC 3501 message structure for IMAP, computed from the raw bytes of a message.

What it gives the rest of the mail store:

- `cached_parts(raw)`: the ENVELOPE, BODYSTRUCTURE (extensible) and BODY (basic) of a
  message, serialised in IMAP syntax, ready to be cached at APPEND and sent by FETCH.
- `fetch_section(raw, section)`: the bytes of a `BODY[section]` (whole message, HEADER,
  TEXT, HEADER.FIELDS[.NOT], part numbers, `n.MIME`, `n.HEADER`, `n.TEXT`, ...).
- `header_values`, `decoded_header`, `search_text`, `sent_date`, `envelope_fields`:
  what SEARCH needs; `envelope_items`: a cached ENVELOPE's values, for SORT and THREAD.
- For readers (web mail, JSON API), strings decoded for people: `message_parts(raw)`,
  the parts as `MessagePart`s in IMAP numbering (`bodystructure_parts` reads the same
  from a cached BODYSTRUCTURE), `message_part`, `decoded_part` and `part_text` for one
  part, `transfer_decode` and `charset_decode` for bytes already fetched,
  `decoded_headers(raw)`, and `read_envelope` for a cached ENVELOPE.
- `to_wire(text)`: the bytes to send for a string of `CachedParts` (see below), and
  `normalize_newlines(raw)`: bare LF to CRLF, as an IMAP server stores a message.

Why the core is our own and not the stdlib `email` package: IMAP reports octet and line
counts of every body part and hands out exact byte ranges (`BODY[1.2]`, `BODY[1.MIME]`),
so the parser must know where each part starts and ends in the original bytes.
`email.parser` rebuilds a tree of objects, normalises line endings and whitespace,
decodes along the way and keeps no offsets, so sizes computed from it drift from what
the client fetches. It also decodes what IMAP must pass on as sent: encoded words in
the ENVELOPE, RFC 2231 parameters (`email.utils.collapse_rfc2231_value` decodes them,
where IMAP servers send `name*` with its percent-encoded value). And its address parser
drops group syntax, routes and the missing-host cases ENVELOPE has to report. The
splitter here walks the bytes once (header lines, then RFC 2046 delimiter lines found
with `bytes.find`), records offsets and never copies a body. The stdlib is still used
where it fits: `email.utils.parsedate_tz` for SENT* dates, `codecs`/`base64`/`binascii`
to decode encoded words and text parts for SEARCH.

Behaviour follows RFC 3501/2045/2046/2231 and, where those leave room, what Dovecot 2.3
answers (the differential test in tests/mailstore compares the two):

- Header values are unfolded (the line breaks before folded lines are removed) and
  never decoded: encoded words stay as sent. After the colon all blanks are skipped,
  except when the first line holds only blanks (then one). ENVELOPE's subject and
  display names have runs of white space collapsed to one space and none at the ends,
  as Dovecot does; other strings only lose stray CR/LF characters. 8-bit bytes are
  passed on as they are (in literals); NUL becomes U+FFFD.
- When a header field appears twice, ENVELOPE takes the last subject/date/message-id/
  in-reply-to and joins the address lists; MIME fields (Content-*) take the first.
- Addresses without a mailbox or host get "MISSING_MAILBOX" / "MISSING_DOMAIN" (a NIL
  host would mean group syntax); a lone comment is the display name of a bare address.
- A text part always has a charset parameter (us-ascii added when absent). A missing or
  syntactically invalid Content-Type is text/plain (RFC 2045 section 5.2); in a
  multipart/digest it is message/rfc822. RFC 2231 continuations are merged (`name*0`,
  `name*1` -> `name`; extended ones -> `name*` with the value still percent-encoded,
  charset'language' prefix included), placed after the plain parameters.
- Delimiter lines match a boundary as a prefix (trailing garbage allowed), the longest
  of the open boundaries wins; the line break before a delimiter line belongs to the
  delimiter. A missing close delimiter ends the part at the enclosing boundary or at the
  end of the message. A multipart without boundary or without parts has one empty
  text/plain part. A message/rfc822 part is always parsed as a message, whatever its
  Content-Transfer-Encoding says (RFC 2046 allows only 7bit, 8bit and binary).
- Octets and lines are counted on the bytes as given (lines = LF count). IMAP servers
  store messages with CRLF; a store that receives bare-LF input should keep
  `normalize_newlines(raw)` so that counts, sizes and fetched bytes agree with them.

Hostile input: nesting deeper than `MAX_DEPTH` and parts beyond `MAX_PARTS` are not
split further (such a part is opaque application/octet-stream; after the part limit the
rest of each open multipart counts as its epilogue). Parsing is linear in the size of
the message.

Where this package and Dovecot 2.3 knowingly differ (the differential test lists them):
a syntactically invalid Content-Type ("text", ";;;") is text/plain here, ("text" "") or
("" "") there; Dovecot counts the line break before a delimiter in a part whose own
header runs into that delimiter (no blank line), here it belongs to the delimiter as
everywhere else; Dovecot answers BODY[1.1] of a text part with that part, here a body
part inside a multipart has no part 1 (""), as RFC 3501 numbers only messages so.

The last few parses are cached (keyed by the message bytes), so a FETCH of several
sections of one message parses it once.

Strings in `CachedParts` may carry 8-bit header bytes (as IMAP literals, like Dovecot).
They are the IMAP bytes decoded as UTF-8 with `surrogateescape`: `to_wire(s)` gives back
the exact bytes (literal lengths count those bytes).

The package, one module per concern, each using only those listed before it:

- `header_values`: MIME header values as sent (tokens, comments, parameters);
- `structure`: the splitter and its entities (offsets into the raw bytes);
- `serialisation`: BODY, BODYSTRUCTURE and ENVELOPE in IMAP syntax;
- `fetch`: `cached_parts`, `fetch_section`, `to_wire`, `normalize_newlines`;
- `search`: what SEARCH needs;
- `reader`: a message as a reader sees it.

Names with a leading underscore are shared between these modules but are not part of
the package's API: import what `__all__` below lists, from `casarray.mailstore.mime`.
"""

from __future__ import annotations

from casarray.mailstore.mime.fetch import cached_parts, fetch_section, normalize_newlines, to_wire
from casarray.mailstore.mime.reader import (
    Address,
    Envelope,
    MessagePart,
    bodystructure_parts,
    charset_decode,
    decoded_headers,
    decoded_part,
    message_part,
    message_parts,
    part_text,
    read_envelope,
    transfer_decode,
)
from casarray.mailstore.mime.search import (
    ENVELOPE_FIELDS,
    decoded_header,
    envelope_fields,
    envelope_items,
    header_values,
    search_text,
    sent_date,
)
from casarray.mailstore.mime.structure import MAX_DEPTH, MAX_PARTS

__all__ = [
    "ENVELOPE_FIELDS",
    "MAX_DEPTH",
    "MAX_PARTS",
    "Address",
    "Envelope",
    "MessagePart",
    "bodystructure_parts",
    "cached_parts",
    "charset_decode",
    "decoded_header",
    "decoded_headers",
    "decoded_part",
    "envelope_fields",
    "envelope_items",
    "fetch_section",
    "header_values",
    "message_part",
    "message_parts",
    "normalize_newlines",
    "part_text",
    "read_envelope",
    "search_text",
    "sent_date",
    "to_wire",
    "transfer_decode",
]
