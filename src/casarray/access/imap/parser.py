"""The IMAP command parser, without I/O: the grammar of one command. (`framing` cuts the
byte stream into commands first.)

`CommandParser` turns one `RawCommand` into a typed command (`commands.py`), following
the RFC 3501 grammar (with the extensions casarray implements) and raising `ParseError`
with a reason that names what was wrong.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from casarray.access.imap import commands as c
from casarray.access.imap import quota
from casarray.access.imap import search as s
from casarray.access.imap.commands import ParseError
from casarray.access.imap.esearch import ReturnOptions
from casarray.access.imap.framing import LITERAL_MARK, TAG, RawCommand
from casarray.access.imap.responses import MONTHS
from casarray.access.imap.sequence import SequenceSet
from casarray.mailstore.interface import DELIMITER, SYSTEM_FLAGS
from casarray.wire import utf7

# -- grammar ---------------------------------------------------------------------


_ATOM_BYTES = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\\]\x80-\xff]+")
# 8-bit bytes are not ASTRING-CHARs (RFC 3501), but clients send UTF-8 atoms: accepted.
_ASTRING_BYTES = re.compile(rb"[^(){ \x00-\x1f\x7f%*\"\\]+")
_LIST_BYTES = re.compile(rb"[^(){ \x00-\x1f\x7f\"\\\x80-\xff]+")
_NUMBER = re.compile(rb"\d+")
_WORD = re.compile(rb"[A-Za-z]+")
_NIL = re.compile(rb"NIL", re.I)
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_FETCH_WORD = re.compile(rb"[A-Za-z0-9.]+")
_SEQ_SET = re.compile(rb"[0-9*:,]+")
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATE_TIME = re.compile(
    r" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS = {m.upper(): i + 1 for i, m in enumerate(MONTHS)}
_SYSTEM = {f[1:].upper(): f for f in SYSTEM_FLAGS}
MAX_NUMBER = 2**32 - 1
MAX_MODSEQ = 2**63 - 1
MAX_DEPTH = 64

_SIMPLE = frozenset(
    {
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "STARTTLS",
        "CHECK",
        "CLOSE",
        "EXPUNGE",
        "UNSELECT",
        "IDLE",
        "NAMESPACE",
    }
)
_MAILBOX_COMMANDS = frozenset({"CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"})
STATUS_ITEMS = (
    "MESSAGES",
    "RECENT",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "HIGHESTMODSEQ",
    *quota.STATUS_ITEMS,
)
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
NOTIFY_FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED"})
_FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_FETCH_PLAIN = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "UID",
        "BODYSTRUCTURE",
        "BODY",
        "MODSEQ",
    }
)
_FLAG_SEARCH = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_SEARCH = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
_DATE_SEARCH = {
    "BEFORE": (False, "before"),
    "ON": (False, "on"),
    "SINCE": (False, "since"),
    "SENTBEFORE": (True, "before"),
    "SENTON": (True, "on"),
    "SENTSINCE": (True, "since"),
}
SEARCH_CHARSETS = ("UTF-8", "US-ASCII")
_RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "UPDATE", "CONTEXT"})
_SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
_THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})


def normalise_mailbox(name: str) -> str:
    """INBOX in any case (also as the first level of a path) becomes "INBOX"."""
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == "INBOX" and head != "INBOX":
        return "INBOX" + sep + rest
    return name


class CommandParser:
    """Reads one RawCommand: `tag()`, then `command_name()`, then `arguments(name)`.

    Over 500 lines on purpose: a recursive-descent reader of RFC 3501's grammar (and its
    extensions'), one method per production, sharing one cursor over the command's
    segments and literals; the productions call each other freely (a SEARCH key holds
    sequence sets, dates, strings and nested keys), which is what one class is for."""

    def __init__(self, raw: RawCommand) -> None:
        self._segments = raw.segments
        self._literals = raw.literals
        self._index = 0
        self._data = raw.segments[0]
        self._pos = 0
        self._tag = ""
        # Set when a mailbox name or pattern is not valid modified UTF-7: the command
        # parses (the name kept as sent) and the session answers NO, or an empty LIST,
        # as Dovecot does; such a name can't name any mailbox.
        self.invalid_name: str | None = None

    # -- low level

    def _peek(self) -> int:
        return self._data[self._pos] if self._pos < len(self._data) else -1

    def at_end(self) -> bool:
        return self._pos >= len(self._data) and self._index == len(self._segments) - 1

    def _rest(self) -> str:
        rest = self._data[self._pos : self._pos + 20].decode("ascii", "replace")
        return repr(rest) if rest else "the end of the line"

    def _match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        m = pattern.match(self._data, self._pos)
        if m is None:
            return None
        self._pos = m.end()
        return m.group()

    def sp(self, after: str) -> None:
        if self._peek() != 0x20:
            raise ParseError(f"Expected a space after {after}, found {self._rest()}")
        self._pos += 1

    def expect_end(self, what: str) -> None:
        if not self.at_end():
            raise ParseError(f"Unexpected {self._rest()} after {what}")

    def char(self, ch: str, what: str) -> None:
        if self._peek() != ord(ch):
            raise ParseError(f"Expected '{ch}' {what}, found {self._rest()}")
        self._pos += 1

    def try_char(self, ch: str) -> bool:
        if self._peek() == ord(ch):
            self._pos += 1
            return True
        return False

    def atom(self, what: str) -> str:
        value = self._match(_ATOM_BYTES)
        if value is None:
            raise ParseError(f"Expected {what}, found {self._rest()}")
        return value.decode("ascii")

    def _literal(self) -> bytes | None:
        if self._peek() != 0x7B:  # "{"
            return None
        if self._index >= len(self._segments) - 1:
            return None
        mark = LITERAL_MARK.search(self._data)
        if mark is None or mark.start() != self._pos:
            return None
        value = self._literals[self._index]
        self._index += 1
        self._data = self._segments[self._index]
        self._pos = 0
        return value

    def _quoted(self, what: str) -> bytes | None:
        if self._peek() != 0x22:
            return None
        data = self._data
        out = bytearray()
        i = self._pos + 1
        n = len(data)
        while i < n:
            ch = data[i]
            if ch == 0x22:
                self._pos = i + 1
                return bytes(out)
            if ch == 0x5C:
                i += 1
                if i >= n or data[i] not in (0x22, 0x5C):
                    raise ParseError(f"Invalid escape in the quoted {what}")
                ch = data[i]
            elif ch in (0x00, 0x0D, 0x0A):
                raise ParseError(f"Invalid character in the quoted {what}")
            out.append(ch)
            i += 1
        raise ParseError(f"Unterminated quoted {what}")

    def literal8(self) -> bytes | None:
        """A literal8 (`~{n}`, RFC 3516) here, else None."""
        if self._peek() != 0x7E or self._data[self._pos + 1 : self._pos + 2] != b"{":
            return None
        self._pos += 1
        value = self._literal()
        if value is None:
            self._pos -= 1
        return value

    def literal(self) -> bytes | None:
        """A literal (`{n}`) here, else None."""
        return self._literal()

    def peek_word(self, word: bytes) -> bool:
        """Whether `word` (any case) follows, then a space or an opening parenthesis."""
        end = self._pos + len(word)
        return self._data[self._pos : end].upper() == word and self._data[end : end + 1] in (
            b" ",
            b"(",
        )

    def peek_char(self, ch: str) -> bool:
        return self._peek() == ord(ch)

    def skip(self, count: int) -> None:
        self._pos += count

    def string(self, what: str) -> bytes:
        value = self._quoted(what)
        if value is None:
            value = self._literal()
        if value is None:
            raise ParseError(f"Expected {what} as a quoted string or literal, found {self._rest()}")
        return value

    def astring_bytes(self, what: str) -> bytes:
        value = self._quoted(what)
        if value is None:
            value = self._literal()
        if value is None:
            value = self._match(_ASTRING_BYTES)
        if value is None:
            raise ParseError(f"Expected {what}, found {self._rest()}")
        return value

    def astring(self, what: str) -> str:
        return self.astring_bytes(what).decode("utf-8", "replace")

    def number(self, what: str, nonzero: bool = False) -> int:
        value = self._match(_NUMBER)
        if value is None:
            raise ParseError(f"Expected a number for {what}, found {self._rest()}")
        if len(value) > 10 or int(value) > MAX_NUMBER:
            raise ParseError(f"The number for {what} is too large")
        n = int(value)
        if nonzero and n == 0:
            raise ParseError(f"The number for {what} must not be 0")
        return n

    def modseq(self, what: str, allow_zero: bool = True) -> int:
        """A mod-sequence value (RFC 7162: up to 2^63 - 1)."""
        value = self._match(_NUMBER)
        if value is None:
            raise ParseError(f"Expected a mod-sequence for {what}, found {self._rest()}")
        if len(value) > 19 or int(value) > MAX_MODSEQ:
            raise ParseError(f"The mod-sequence for {what} is too large")
        if not allow_zero and int(value) == 0:
            raise ParseError(f"The mod-sequence for {what} must not be 0")
        return int(value)

    # -- IMAP values

    def _mailbox_text(self, raw: bytes, what: str) -> str:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            try:
                return raw.decode("utf-8")  # lenient: UTF-8 as clients often send it
            except UnicodeDecodeError:
                raise ParseError(f"The {what} is neither modified UTF-7 nor UTF-8") from None
        try:
            return utf7.decode(text)
        except utf7.Utf7Error as exc:
            self.invalid_name = f"The {what} {text!r} is not valid modified UTF-7: {exc}"
            return text

    def mailbox(self, what: str = "mailbox name") -> str:
        name = self._mailbox_text(self.astring_bytes(what), what)
        if "\x00" in name or "\r" in name or "\n" in name:
            raise ParseError(f"The {what} contains a control character")
        return normalise_mailbox(name)

    def list_mailbox(self, what: str) -> str:
        value = self._quoted(what)
        if value is None:
            value = self._literal()
        if value is None:
            value = self._match(_LIST_BYTES)
        if value is None:
            raise ParseError(f"Expected a {what}, found {self._rest()}")
        return self._mailbox_text(value, what)

    def flag(self, allow_recent: bool = False) -> str:
        if self.try_char("\\"):
            name = self._match(_ATOM_BYTES)
            if name is None:
                raise ParseError(f"Expected a flag name after '\\', found {self._rest()}")
            upper = name.decode("ascii").upper()
            if upper in _SYSTEM:
                return _SYSTEM[upper]
            if upper == "RECENT" and allow_recent:
                return "\\Recent"
            raise ParseError(f"Unknown system flag \\{name.decode('ascii')}")
        value = self._match(_ATOM_BYTES)
        if value is None:
            raise ParseError(f"Expected a flag, found {self._rest()}")
        return value.decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        self.char("(", "to open the flag list")
        flags: list[str] = []
        if self.try_char(")"):
            return ()
        while True:
            flags.append(self.flag(allow_recent=True))
            if self.try_char(")"):
                return tuple(dict.fromkeys(flags))
            self.sp("a flag")

    def sequence_set(self) -> SequenceSet:
        raw = self._match(_SEQ_SET)
        if raw is None:
            raise ParseError(f"Expected a message set, found {self._rest()}")
        text = raw.decode("ascii")
        ranges: list[tuple[int, int]] = []
        for part in text.split(","):
            ends = part.split(":")
            if len(ends) > 2 or not all(ends):
                raise ParseError(f"Invalid message set {text!r}")
            values: list[int] = []
            for end in ends:
                if end == "*":
                    values.append(0)
                elif end.isdigit() and len(end) <= 10 and 0 < int(end) <= MAX_NUMBER:
                    values.append(int(end))
                else:
                    raise ParseError(f"Invalid message set {text!r}: {end!r} is not a number")
            ranges.append((values[0], values[-1]))
        return SequenceSet(tuple(ranges))

    def date(self) -> date:
        raw = self.astring_bytes("a date")
        m = _DATE.fullmatch(raw.decode("ascii", "replace"))
        month = _MONTHS.get(m.group(2).upper()) if m else None
        if m is None or month is None:
            raise ParseError(f"Invalid date {raw!r}; expected e.g. 1-Feb-2024")
        try:
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise ParseError(f"Invalid date {raw!r}") from None

    def date_time(self) -> datetime:
        raw = self._quoted("date-time")
        if raw is None:
            raise ParseError("Expected a quoted date-time")
        m = _DATE_TIME.fullmatch(raw.decode("ascii", "replace"))
        month = _MONTHS.get(m.group(2).upper()) if m else None
        if m is None or month is None:
            raise ParseError(
                f'Invalid date-time "{raw.decode("ascii", "replace")}"; '
                'expected e.g. "17-Jul-1996 02:44:25 -0700"'
            )
        sign = -1 if m.group(7) == "-" else 1
        offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
        try:
            return datetime(
                int(m.group(3)),
                month,
                int(m.group(1).strip()),
                int(m.group(4)),
                int(m.group(5)),
                int(m.group(6)),
                tzinfo=timezone(sign * offset),
            )
        except ValueError:
            raise ParseError(f"Invalid date-time {raw!r}") from None

    # -- the command

    def tag(self) -> str:
        raw = TAG.match(self._data)
        if raw is None:
            raise ParseError("Missing or invalid tag")
        self._pos = raw.end()
        self._tag = raw.group().decode("ascii")
        return self._tag

    def command_name(self) -> str:
        if self._peek() != 0x20:
            raise ParseError("Missing command")
        self._pos += 1
        name = self._match(_WORD)
        if name is None:
            raise ParseError(f"Expected a command name, found {self._rest()}")
        upper = name.decode("ascii").upper()
        if upper == "UID":
            self.sp("UID")
            sub = self._match(_WORD)
            if sub is None:
                raise ParseError(f"Expected a command after UID, found {self._rest()}")
            upper += " " + sub.decode("ascii").upper()
        return upper

    def arguments(self, name: str) -> c.Command:
        """The typed command; ParseError if the arguments are malformed."""
        tag = self._tag
        if name in _SIMPLE:
            self.expect_end(name)
            return c.Simple(tag, name)
        if name in _MAILBOX_COMMANDS:
            self.sp(name)
            mailbox = self.mailbox()
            self.expect_end("the mailbox name")
            return c.MailboxCommand(tag, name, mailbox)
        method = getattr(self, "_cmd_" + name.replace(" ", "_"), None)
        if method is None:
            raise ParseError(f"Unknown command {name}")
        command: c.Command = method(tag, name)
        return command

    def _cmd_SELECT(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        mailbox = self.mailbox()
        if self.at_end():
            return c.MailboxCommand(tag, name, mailbox)
        self.sp("the mailbox name")  # RFC 4466 select parameters
        self.char("(", "to open the SELECT parameters")
        condstore = False
        qresync: c.Qresync | None = None
        while not self.try_char(")"):
            if condstore or qresync:
                self.sp("a SELECT parameter")
            word = self.atom("a SELECT parameter").upper()
            if word == "CONDSTORE":
                condstore = True
            elif word == "QRESYNC":
                self.sp(word)
                qresync = self._qresync()
            else:
                raise ParseError(f"Unknown SELECT parameter {word}")
        self.expect_end("the SELECT parameters")
        return c.Select(tag, name, mailbox, condstore, qresync)

    _cmd_EXAMINE = _cmd_SELECT

    def _qresync(self) -> c.Qresync:
        self.char("(", "to open the QRESYNC parameters")
        uid_validity = self.number("the UIDVALIDITY", nonzero=True)
        self.sp("the UIDVALIDITY")
        modseq = self.modseq("the known modseq", allow_zero=False)
        known: SequenceSet | None = None
        match: tuple[SequenceSet, SequenceSet] | None = None
        if self.try_char(" "):
            if self._peek() != 0x28:
                known = self.sequence_set()
                if any(lo == 0 or hi == 0 for lo, hi in known.ranges):
                    raise ParseError("The known UIDs must not contain '*'")
                if not self.try_char(" "):
                    self.char(")", "to close the QRESYNC parameters")
                    return c.Qresync(uid_validity, modseq, known)
            self.char("(", "to open the sequence match data")
            seqs = self.sequence_set()
            self.sp("the known sequence set")
            uids = self.sequence_set()
            self.char(")", "to close the sequence match data")
            match = (seqs, uids)
        self.char(")", "to close the QRESYNC parameters")
        return c.Qresync(uid_validity, modseq, known, match)

    def _cmd_AUTHENTICATE(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        mechanism = self.atom("an authentication mechanism").upper()
        initial: bytes | None = None
        if not self.at_end():
            self.sp("the mechanism")
            initial = self._match(_BASE64)
            if not initial:
                raise ParseError("Invalid initial response; expected base64 or '='")
        self.expect_end("the initial response")
        return c.Authenticate(tag, name, mechanism, initial)

    def _cmd_COMPRESS(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        mechanism = self.atom("a compression mechanism").upper()
        self.expect_end("the compression mechanism")
        return c.Compress(tag, name, mechanism)

    def _cmd_LOGIN(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        user = self.astring("a user name")
        self.sp("the user name")
        password = self.astring("a password")
        self.expect_end("the password")
        return c.Login(tag, name, user, password)

    def _cmd_RENAME(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        old = self.mailbox("existing mailbox name")
        self.sp("the existing mailbox name")
        new = self.mailbox("new mailbox name")
        self.expect_end("the new mailbox name")
        return c.Rename(tag, name, old, new)

    def _cmd_LIST(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        extended = name == "LIST"
        selection: list[str] = []
        if extended and self._peek() == 0x28:  # "(": LIST-EXTENDED selection options
            selection = self._option_list("a selection option", LIST_SELECTION)
            self.sp("the selection options")
            if "RECURSIVEMATCH" in selection and not {"SUBSCRIBED", "SPECIAL-USE"} & set(selection):
                raise ParseError("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE beside it")
        reference = self._mailbox_text(self.astring_bytes("a reference name"), "reference name")
        self.sp("the reference name")
        if extended and self._peek() == 0x28:  # "(": several patterns
            self.char("(", "to open the patterns")
            patterns = [self.list_mailbox("mailbox name pattern")]
            while not self.try_char(")"):
                self.sp("a pattern")
                patterns.append(self.list_mailbox("mailbox name pattern"))
        else:
            patterns = [self.list_mailbox("mailbox name pattern")]
        returns: list[str] = []
        status_items: tuple[str, ...] = ()
        if extended and not self.at_end():
            self.sp("the mailbox name pattern")
            if self.atom("RETURN").upper() != "RETURN":
                raise ParseError("Expected RETURN (options) after the patterns")
            self.sp("RETURN")
            self.char("(", "to open the return options")
            while not self.try_char(")"):
                if returns:
                    self.sp("a return option")
                option = self.atom("a return option").upper()
                if option == "STATUS":  # LIST-STATUS (RFC 5819)
                    self.sp(option)
                    status_items = self._status_items()
                elif option not in LIST_RETURN:
                    raise ParseError(f"Unknown LIST return option {option}")
                returns.append(option)
        self.expect_end("the mailbox name pattern")
        if not (selection or returns or len(patterns) > 1):
            return c.ListCommand(tag, name, reference, patterns[0])
        return c.ListCommand(
            tag,
            name,
            reference,
            patterns[0],
            tuple(patterns),
            frozenset(selection),
            frozenset(returns),
            status_items,
        )

    _cmd_LSUB = _cmd_LIST

    def _option_list(self, what: str, known: frozenset[str]) -> list[str]:
        self.char("(", f"to open the list of {what}s")
        options: list[str] = []
        while not self.try_char(")"):
            if options:
                self.sp(what)
            option = self.atom(what).upper()
            if option not in known:
                raise ParseError(f"Unknown LIST {what.removeprefix('a ')} {option}")
            options.append(option)
        return options

    def _status_items(self) -> tuple[str, ...]:
        self.char("(", "to open the status item list")
        items: list[str] = []
        while True:
            item = self.atom("a status item").upper()
            if item not in STATUS_ITEMS:
                raise ParseError(f"Unknown status item {item}")
            items.append(item)
            if self.try_char(")"):
                break
            self.sp("a status item")
        return tuple(items)

    # -- QUOTA (RFC 9208) --

    def _cmd_GETQUOTAROOT(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        mailbox = self.mailbox()
        self.expect_end("the mailbox name")
        return c.MailboxCommand(tag, name, mailbox)

    def _cmd_GETQUOTA(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        root = self.astring("a quota root")
        self.expect_end("the quota root")
        return c.QuotaCommand(tag, name, root)

    def _cmd_SETQUOTA(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        root = self.astring("a quota root")
        self.sp("the quota root")
        self.char("(", "to open the resource list")
        limits: list[tuple[str, int]] = []
        while not self.try_char(")"):
            if limits:
                self.sp("a resource limit")
            resource = self.atom("a resource name").upper()
            self.sp("the resource name")
            value = self._match(_NUMBER)
            if value is None or len(value) > 19 or int(value) >= 2**63:
                raise ParseError(f"Expected a limit (a number) for {resource}")
            limits.append((resource, int(value)))
        self.expect_end("the resource list")
        return c.QuotaCommand(tag, name, root, tuple(limits))

    def _cmd_STATUS(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        mailbox = self.mailbox()
        self.sp("the mailbox name")
        items = self._status_items()
        self.expect_end("the status item list")
        return c.Status(tag, name, mailbox, items)

    def _cmd_APPEND(self, tag: str, name: str) -> c.Command:
        from casarray.access.imap.appending import parse_append

        return parse_append(self, tag, name)

    def _cmd_GENURLAUTH(self, tag: str, name: str) -> c.Command:
        from casarray.access.imap.urlauth import parse_genurlauth

        return parse_genurlauth(self, tag, name)

    def _cmd_URLFETCH(self, tag: str, name: str) -> c.Command:
        from casarray.access.imap.urlauth import parse_urlfetch

        return parse_urlfetch(self, tag, name)

    def _cmd_RESETKEY(self, tag: str, name: str) -> c.Command:
        from casarray.access.imap.urlauth import parse_resetkey

        return parse_resetkey(self, tag, name)

    def _search(self, tag: str, name: str, uid: bool) -> c.Command:
        self.sp(name)
        returns = self._return_options()
        charset: str | None = None
        if self._data[self._pos : self._pos + 8].upper() == b"CHARSET ":
            self._pos += 8
            charset = self.astring("a charset").upper()
            self.sp("the charset")
        key = self._search_keys(charset)
        return c.Search(tag, name, uid, charset, key, returns)

    def _search_keys(self, charset: str | None) -> s.SearchKey:
        keys = [self.search_key(charset, 0)]
        while not self.at_end():
            self.sp("a search key")
            keys.append(self.search_key(charset, 0))
        return keys[0] if len(keys) == 1 else s.And(tuple(keys))

    def _return_options(self) -> ReturnOptions | None:
        """`RETURN (MIN MAX ALL COUNT UPDATE PARTIAL m:n CONTEXT) ` (RFC 4731, 5267)
        and the space after it; None when the command has none."""
        if self._data[self._pos : self._pos + 7].upper() != b"RETURN ":
            return None
        self._pos += 7
        self.char("(", "to open the RETURN options")
        found: dict[str, bool] = {}
        partial: tuple[int, int] | None = None
        if not self.try_char(")"):
            while True:
                option = self.atom("a RETURN option").upper()
                if option == "PARTIAL":
                    self.sp(option)
                    partial = self._partial_range()
                elif option in _RETURN_OPTIONS:
                    found[option] = True
                elif option == "SAVE":
                    raise ParseError("RETURN (SAVE) needs SEARCHRES, which is not supported")
                else:
                    raise ParseError(f"Unknown RETURN option {option}")
                if self.try_char(")"):
                    break
                self.sp("a RETURN option")
        self.sp("the RETURN options")
        if partial is not None and found.get("ALL"):
            raise ParseError("RETURN PARTIAL and ALL can't be asked together")
        if partial is not None and found.get("UPDATE"):
            raise ParseError("RETURN PARTIAL with UPDATE is not supported")
        nothing = partial is None and not any(o in found for o in ("MIN", "MAX", "ALL", "COUNT"))
        return ReturnOptions(
            min=found.get("MIN", False),
            max=found.get("MAX", False),
            # RETURN () is ALL (RFC 4731); so is a bare CONTEXT hint
            all=found.get("ALL", False) or (nothing and "UPDATE" not in found),
            count=found.get("COUNT", False),
            update=found.get("UPDATE", False),
            partial=partial,
        )

    def _partial_range(self) -> tuple[int, int]:
        """RFC 5267's partial-range: two positions `m:n`, either order, no `*`."""
        raw = self._match(_SEQ_SET)
        text = raw.decode("ascii") if raw else ""
        low, colon, high = text.partition(":")
        if not (colon and low.isdigit() and high.isdigit()) or len(low) > 10 or len(high) > 10:
            raise ParseError(f"Invalid PARTIAL range {text!r}; expected two positions, e.g. 1:100")
        a, b = int(low), int(high)
        if not (0 < a <= MAX_NUMBER and 0 < b <= MAX_NUMBER):
            raise ParseError(f"Invalid PARTIAL range {text!r}: positions start at 1")
        return (min(a, b), max(a, b))

    def _charset(self) -> str:
        """The charset SORT and THREAD require (RFC 5256)."""
        return self.astring("a charset").upper()

    def _sort(self, tag: str, name: str, uid: bool) -> c.Command:
        self.sp(name)
        returns = self._return_options()
        self.char("(", "to open the sort criteria")
        criteria: list[c.SortCriterion] = []
        while True:
            word = self.atom("a sort key").upper()
            reverse = word == "REVERSE"
            if reverse:
                self.sp("REVERSE")
                word = self.atom("a sort key").upper()
            if word not in _SORT_KEYS:
                raise ParseError(f"Unknown sort key {word}")
            criteria.append(c.SortCriterion(word, reverse))
            if self.try_char(")"):
                break
            self.sp("a sort key")
        self.sp("the sort criteria")
        charset = self._charset()
        self.sp("the charset")
        key = self._search_keys(charset)
        return c.Sort(tag, name, uid, tuple(criteria), charset, key, returns)

    def _cmd_SORT(self, tag: str, name: str) -> c.Command:
        return self._sort(tag, name, False)

    def _cmd_UID_SORT(self, tag: str, name: str) -> c.Command:
        return self._sort(tag, name, True)

    def _thread(self, tag: str, name: str, uid: bool) -> c.Command:
        self.sp(name)
        algorithm = self.atom("a threading algorithm").upper()
        if algorithm not in _THREAD_ALGORITHMS:
            raise ParseError(f"Unknown threading algorithm {algorithm}")
        self.sp("the threading algorithm")
        charset = self._charset()
        self.sp("the charset")
        key = self._search_keys(charset)
        return c.Thread(tag, name, uid, algorithm, charset, key)

    def _cmd_THREAD(self, tag: str, name: str) -> c.Command:
        return self._thread(tag, name, False)

    def _cmd_UID_THREAD(self, tag: str, name: str) -> c.Command:
        return self._thread(tag, name, True)

    def _cmd_CANCELUPDATE(self, tag: str, name: str) -> c.Command:
        tags: list[str] = []
        while not self.at_end():
            self.sp(name if not tags else "a tag")
            tags.append(self.string("the tag of a search context").decode("utf-8", "replace"))
        if not tags:
            raise ParseError("CANCELUPDATE needs the tag of at least one search context")
        return c.CancelUpdate(tag, name, tuple(tags))

    def _cmd_SEARCH(self, tag: str, name: str) -> c.Command:
        return self._search(tag, name, False)

    def _cmd_UID_SEARCH(self, tag: str, name: str) -> c.Command:
        return self._search(tag, name, True)

    def _search_string(self, charset: str | None, what: str) -> str:
        raw = self.astring_bytes(what)
        if charset in (None, "US-ASCII", "UTF-8"):
            return raw.decode("utf-8", "replace")
        return raw.decode("latin-1")  # an unsupported charset: refused by the session

    def search_key(self, charset: str | None, depth: int) -> s.SearchKey:
        if depth > MAX_DEPTH:
            raise ParseError("Search keys nested too deeply")
        if self.try_char("("):
            keys = [self.search_key(charset, depth + 1)]
            while not self.try_char(")"):
                self.sp("a search key")
                keys.append(self.search_key(charset, depth + 1))
            return keys[0] if len(keys) == 1 else s.And(tuple(keys))
        first = self._peek()
        if first == 0x2A or 0x30 <= first <= 0x39:  # "*" or a digit
            return s.SequenceKey(self.sequence_set())
        word = self.atom("a search key").upper()
        if word in _FLAG_SEARCH:
            flag, present = _FLAG_SEARCH[word]
            return s.FlagKey(flag, present)
        if word == "ALL":
            return s.All()
        if word in ("KEYWORD", "UNKEYWORD"):
            self.sp(word)
            keyword = self.atom("a keyword")
            return s.FlagKey(keyword, word == "KEYWORD")
        if word == "RECENT":
            return s.RecentKey(True)
        if word == "OLD":
            return s.RecentKey(False)
        if word == "NEW":
            return s.And((s.RecentKey(True), s.FlagKey("\\Seen", False)))
        if word in _HEADER_SEARCH:
            self.sp(word)
            return s.HeaderKey(_HEADER_SEARCH[word], self._search_string(charset, "a string"))
        if word == "HEADER":
            self.sp(word)
            field = self.astring("a header field name")
            self.sp("the header field name")
            return s.HeaderKey(field, self._search_string(charset, "a string"))
        if word in ("BODY", "TEXT"):
            self.sp(word)
            return s.TextKey(self._search_string(charset, "a string"), word == "BODY")
        if word in _DATE_SEARCH:
            self.sp(word)
            sent, op = _DATE_SEARCH[word]
            return s.DateKey(sent, op, self.date())
        if word in ("LARGER", "SMALLER"):
            self.sp(word)
            return s.SizeKey(word == "LARGER", self.number("the size"))
        if word == "NOT":
            self.sp(word)
            return s.Not(self.search_key(charset, depth + 1))
        if word == "OR":
            self.sp(word)
            left = self.search_key(charset, depth + 1)
            self.sp("the first key of OR")
            return s.Or(left, self.search_key(charset, depth + 1))
        if word == "UID":
            self.sp(word)
            return s.UidKey(self.sequence_set())
        if word == "MODSEQ":  # RFC 7162: MODSEQ [entry-name entry-type] mod-sequence
            self.sp(word)
            if self._peek() == 0x22:  # '"': the entry name, then its type
                entry = self.string("an entry name").decode("ascii", "replace")
                if not entry.lower().startswith("/flags/"):
                    raise ParseError(f"Invalid MODSEQ entry name {entry!r}")
                self.sp("the entry name")
                kind = self.atom("an entry type").lower()
                if kind not in ("priv", "shared", "all"):
                    raise ParseError(
                        f"Invalid MODSEQ entry type {kind}; expected priv, shared or all"
                    )
                self.sp("the entry type")
            return s.ModSeqKey(self.modseq("MODSEQ"))
        raise ParseError(f"Unknown search key {word}")

    def _fetch(self, tag: str, name: str, uid: bool) -> c.Command:
        self.sp(name)
        messages = self.sequence_set()
        self.sp("the message set")
        items: list[c.FetchAttribute] = []
        if self.try_char("("):
            while True:
                items.append(self.fetch_attribute())
                if self.try_char(")"):
                    break
                self.sp("a fetch item")
        else:
            word = self._data[self._pos : self._pos + 5].upper()
            macro = next((m for m in _FETCH_MACROS if word.startswith(m.encode())), None)
            if macro is not None and (self._pos + len(macro) == len(self._data)):
                self._pos += len(macro)
                items.extend(c.FetchAttribute(n) for n in _FETCH_MACROS[macro])
            else:
                items.append(self.fetch_attribute())
        changed_since: int | None = None
        vanished = False
        if self._data[self._pos : self._pos + 2] == b" (":  # fetch modifiers (RFC 4466)
            self._pos += 2
            while not self.try_char(")"):
                if changed_since is not None or vanished:
                    self.sp("a fetch modifier")
                modifier = self.atom("a fetch modifier").upper()
                if modifier == "CHANGEDSINCE":
                    self.sp(modifier)
                    changed_since = self.modseq(modifier)
                elif modifier == "VANISHED" and uid:
                    vanished = True
                else:
                    raise ParseError(f"Unknown fetch modifier {modifier}")
            if vanished and changed_since is None:
                raise ParseError("VANISHED needs CHANGEDSINCE")
        self.expect_end("the fetch items")
        unique = tuple(dict.fromkeys(items))
        if changed_since is None:
            return c.Fetch(tag, name, uid, messages, unique)
        return c.Fetch(tag, name, uid, messages, unique, changed_since, vanished)

    def _cmd_FETCH(self, tag: str, name: str) -> c.Command:
        return self._fetch(tag, name, False)

    def _cmd_UID_FETCH(self, tag: str, name: str) -> c.Command:
        return self._fetch(tag, name, True)

    def fetch_attribute(self) -> c.FetchAttribute:
        raw = self._match(_FETCH_WORD)
        if raw is None:
            raise ParseError(f"Expected a fetch item, found {self._rest()}")
        word = raw.decode("ascii").upper()
        if word in ("BODY", "BODY.PEEK") and self._peek() == 0x5B:  # "["
            section = self.section()
            partial = None
            if self.try_char("<"):
                origin = self.number("the partial origin")
                self.char(".", "between the partial origin and length")
                length = self.number("the partial length", nonzero=True)
                self.char(">", "to close the partial range")
                partial = (origin, length)
            return c.FetchAttribute("BODY[]", section, partial, word == "BODY.PEEK")
        if word in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
            return self._binary_attribute(word)
        if word in _FETCH_PLAIN:
            return c.FetchAttribute(word)
        if word in _FETCH_MACROS:
            raise ParseError(f"The macro {word} cannot be used inside a list")
        raise ParseError(f"Unknown fetch item {word}")

    def _binary_attribute(self, word: str) -> c.FetchAttribute:
        """BINARY[part]<partial>, BINARY.PEEK[...] and BINARY.SIZE[part] (RFC 3516):
        the section is part numbers only."""
        self.char("[", f"after {word}")
        parts: list[int] = []
        while not self.try_char("]"):
            if parts:
                self.char(".", "between part numbers")
            parts.append(self.number("a section part", nonzero=True))
        section = c.Section(tuple(parts))
        if word == "BINARY.SIZE":
            return c.FetchAttribute("BINARY.SIZE", section)
        partial = None
        if self.try_char("<"):
            origin = self.number("the partial origin")
            self.char(".", "between the partial origin and length")
            length = self.number("the partial length", nonzero=True)
            self.char(">", "to close the partial range")
            partial = (origin, length)
        return c.FetchAttribute("BINARY[]", section, partial, word == "BINARY.PEEK")

    def section(self) -> c.Section:
        self.char("[", "to open the section")
        parts: list[int] = []
        text: str | None = None
        fields: tuple[str, ...] = ()
        while True:
            if self.try_char("]"):
                break
            if 0x30 <= self._peek() <= 0x39 and text is None:
                parts.append(self.number("a section part", nonzero=True))
                if self.try_char("."):
                    if self._peek() == 0x5D:
                        raise ParseError("Invalid section: '.' before ']'")
                    continue
                self.char("]", "to close the section")
                break
            word = self.atom("a section").upper()
            if word in ("HEADER", "TEXT") or (word == "MIME" and parts):
                text = word
            elif word in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
                text = word
                self.sp(word)
                self.char("(", "to open the header field list")
                names = [self._field_name()]
                while not self.try_char(")"):
                    self.sp("a header field name")
                    names.append(self._field_name())
                fields = tuple(n.upper() for n in names)
            else:
                raise ParseError(f"Invalid section {word}")
            self.char("]", "to close the section")
            break
        return c.Section(tuple(parts), text, fields)

    def _field_name(self) -> str:
        name = self.astring("a header field name")
        if not _FIELD_NAME.fullmatch(name):
            raise ParseError(f"Invalid header field name {name!r}")
        return name

    def _store(self, tag: str, name: str, uid: bool) -> c.Command:
        self.sp(name)
        messages = self.sequence_set()
        self.sp("the message set")
        unchanged_since: int | None = None
        if self.try_char("("):  # store modifiers (RFC 4466): UNCHANGEDSINCE
            word = self.atom("a store modifier").upper()
            if word != "UNCHANGEDSINCE":
                raise ParseError(f"Unknown store modifier {word}")
            self.sp(word)
            unchanged_since = self.modseq(word)
            self.char(")", "to close the store modifiers")
            self.sp("the store modifiers")
        item = self.atom("FLAGS, +FLAGS or -FLAGS").upper()
        modes = {"FLAGS": "set", "+FLAGS": "add", "-FLAGS": "remove"}
        base, _, suffix = item.partition(".")
        if base not in modes or suffix not in ("", "SILENT"):
            raise ParseError(f"Unknown store item {item}; expected FLAGS, +FLAGS or -FLAGS")
        self.sp(item)
        if self._peek() == 0x28:
            flags = self.flag_list()
        else:
            found = [self.flag(allow_recent=True)]
            while not self.at_end():
                self.sp("a flag")
                found.append(self.flag(allow_recent=True))
            flags = tuple(dict.fromkeys(found))
        self.expect_end("the flags")
        flags = tuple(f for f in flags if f != "\\Recent")
        return c.Store(
            tag, name, uid, messages, modes[base], suffix == "SILENT", flags, unchanged_since
        )

    def _cmd_STORE(self, tag: str, name: str) -> c.Command:
        return self._store(tag, name, False)

    def _cmd_UID_STORE(self, tag: str, name: str) -> c.Command:
        return self._store(tag, name, True)

    def _copy(self, tag: str, name: str, uid: bool) -> c.Command:
        self.sp(name)
        messages = self.sequence_set()
        self.sp("the message set")
        mailbox = self.mailbox()
        self.expect_end("the mailbox name")
        return c.CopyMove(tag, name, uid, messages, mailbox)

    def _cmd_COPY(self, tag: str, name: str) -> c.Command:
        return self._copy(tag, name, False)

    _cmd_MOVE = _cmd_COPY

    def _cmd_UID_COPY(self, tag: str, name: str) -> c.Command:
        return self._copy(tag, name, True)

    _cmd_UID_MOVE = _cmd_UID_COPY

    def _cmd_UID_EXPUNGE(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        messages = self.sequence_set()
        self.expect_end("the message set")
        return c.UidExpunge(tag, name, messages)

    def _cmd_ID(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        if self._match(_NIL) is not None:
            self.expect_end("NIL")
            return c.Id(tag, name, None)
        self.char("(", "to open the ID parameter list")
        pairs: list[tuple[str, str | None]] = []
        if not self.try_char(")"):
            while True:
                field = self.string("an ID field name").decode("utf-8", "replace")
                self.sp("the ID field name")
                if self._match(_NIL) is not None:
                    value: str | None = None
                else:
                    value = self.string("an ID value").decode("utf-8", "replace")
                pairs.append((field[:1024], None if value is None else value[:1024]))
                if len(pairs) > 30:
                    raise ParseError("Too many ID parameters (at most 30)")
                if self.try_char(")"):
                    break
                self.sp("an ID value")
        self.expect_end("the ID parameter list")
        return c.Id(tag, name, tuple(pairs))

    def _cmd_NOTIFY(self, tag: str, name: str) -> c.Command:
        self.sp(name)
        word = self.atom("SET or NONE").upper()
        if word == "NONE":
            self.expect_end("NONE")
            return c.Notify(tag, name, None)
        if word != "SET":
            raise ParseError(f"Expected SET or NONE after NOTIFY, found {word}")
        self.sp("SET")
        status = False
        if self._data[self._pos : self._pos + 7].upper() == b"STATUS ":
            self._pos += 7
            status = True
        groups = [self._notify_group()]
        while not self.at_end():
            self.sp("an event group")
            groups.append(self._notify_group())
        return c.Notify(tag, name, tuple(groups), status)

    def _notify_group(self) -> c.NotifyGroup:
        self.char("(", "to open an event group")
        kind = self.atom("a mailbox filter").upper()
        mailboxes: list[str] = []
        if kind in ("SUBTREE", "MAILBOXES"):
            self.sp(kind)
            if self.try_char("("):
                mailboxes.append(self.mailbox())
                while not self.try_char(")"):
                    self.sp("a mailbox name")
                    mailboxes.append(self.mailbox())
            else:
                mailboxes.append(self.mailbox())
        elif kind not in NOTIFY_FILTERS:
            raise ParseError(f"Unknown NOTIFY mailbox filter {kind}")
        self.sp("the mailbox filter")
        events: list[str] = []
        fetch_items: list[c.FetchAttribute] = []
        if not self.try_char("("):
            if self.atom("events or NONE").upper() != "NONE":
                raise ParseError("Expected a list of events or NONE")
        else:
            while not self.try_char(")"):
                if events:
                    self.sp("an event")
                event = self.atom("an event").upper()
                events.append(event)
                if event == "MESSAGENEW" and self._data[self._pos : self._pos + 2] == b" (":
                    self._pos += 2
                    fetch_items.append(self.fetch_attribute())
                    while not self.try_char(")"):
                        self.sp("a fetch attribute")
                        fetch_items.append(self.fetch_attribute())
            if not events:
                raise ParseError("An event list needs at least one event (or NONE)")
        self.char(")", "to close the event group")
        return c.NotifyGroup(kind, tuple(mailboxes), tuple(events), tuple(fetch_items))

    def _cmd_ENABLE(self, tag: str, name: str) -> c.Command:
        caps: list[str] = []
        while not self.at_end():
            self.sp(name if not caps else "a capability")
            caps.append(self.atom("a capability").upper())
        if not caps:
            raise ParseError("ENABLE needs at least one capability")
        return c.Enable(tag, name, tuple(caps))
