"""The soak's checker: what the histories say must be in the mailboxes, in the
directory and out of the queues, against what is there once everything is quiet.

The expectations come from replaying each client's records in its order (a client does
one thing at a time, and only its own messages, in folders of its own, or the INBOX
deliveries nobody touches). A message is keyed by (user, folder, soak id); its
expectation is the set of counts allowed (`{1}` acknowledged present, `{0}` gone,
`{0, 1}` after an unknown outcome: never 2), the flags allowed (alternatives: after
an unknown STORE the old or the new), and what its bytes must be.

What the checker calls each finding:

- `lost`: acknowledged present (APPEND's tagged OK, a delivery's 250, an EWS ItemId, a
  COPY's or MOVE's COPYUID, web mail's "sent"), not found;
- `duplicated`: found more than once (a documented duplicate, `documented`, when
  docs/architecture.md says one is possible for it: a relay to a next hop after a
  crash between its 250 and our record);
- `resurrected`: acknowledged gone (EXPUNGE, MOVE's source, DeleteItem), still there;
- `phantom`: refused (or never sent), yet there;
- `corrupt`: there, but not the bytes acknowledged (APPEND: byte for byte; a delivery:
  the bytes sent, after the headers the transport adds on top);
- `flags`: there, with flags no acknowledged STORE or UpdateItem left;
- `uid`: there, under another UID than APPENDUID or COPYUID said;
- `atomic`: a MOVE of unknown outcome left the message in both folders or in neither;
- `directory`: a cmdlet's acknowledged change isn't what the directory holds;
- `stuck`: a recipient still queued (not Delivered or Failed) at the end;
- `process`: a process of the lab not back and healthy at the end.

`lost` is the soak's goal (0); every other finding but `documented` is a failure too.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from casarray.lab.soak.history import FAILED, OK, UNKNOWN, decode

# The flags the soak's clients set; a flag check looks at these only (\Recent is the
# server's, keywords of others are not the soak's business).
FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "\\Deleted", "$Soak")
SUBJECT = re.compile(r"^soak \[soak:([A-Za-z0-9._-]+)\]")
KINDS = (
    "lost",
    "duplicated",
    "documented",
    "resurrected",
    "phantom",
    "corrupt",
    "flags",
    "uid",
    "atomic",
    "directory",
    "stuck",
    "process",
)

Key = tuple[str, str, str]  # (user, folder, soak id)
FlagState = dict[str, bool]  # flag -> set or not (over FLAGS)


def flag_state(flags: Iterable[str], exact: bool = True) -> FlagState:
    """The state of FLAGS for a set of flags (exact: those not named are unset)."""
    named = {f.lower() for f in flags}
    if exact:
        return {flag: flag.lower() in named for flag in FLAGS}
    return {flag: True for flag in FLAGS if flag.lower() in named}


def matches(found: Iterable[str], state: FlagState) -> bool:
    have = {f.lower() for f in found}
    return all((flag.lower() in have) == wanted for flag, wanted in state.items())


def subject_id(raw: bytes) -> str | None:
    """The soak id in a message's Subject (`soak [soak:ID] ...`), or None."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    except Exception:
        return None
    subject = " ".join(str(headers.get("Subject", "")).split())
    found = SUBJECT.match(subject)
    return found.group(1) if found else None


@dataclass(frozen=True)
class Found:
    """A message of a folder, as read at the end."""

    uid: int
    flags: frozenset[str]
    raw: bytes


@dataclass
class Observed:
    """What the lab holds at the end: each user's folders, their special-use names, the
    queue recipients not final, the directory's values the cmdlets changed, and the
    processes not back."""

    folders: dict[tuple[str, str], list[Found]] = field(default_factory=dict)
    special_use: dict[tuple[str, str], str] = field(default_factory=dict)  # (user, \\Drafts)
    queued: list[dict[str, Any]] = field(default_factory=list)
    directory: dict[str, Any] = field(default_factory=dict)
    process_problems: list[str] = field(default_factory=list)

    def folder_name(self, user: str, folder: str) -> str:
        if folder.startswith("\\"):
            return self.special_use.get((user, folder.lower()), folder)
        return folder


@dataclass
class Expect:
    counts: set[int]
    op: str  # the operation that made it (imap.append, smtp.send...)
    acknowledged: bool  # its making was acknowledged (a loss if missing)
    flags: list[FlagState] | None = None  # alternatives; None: not checked
    raw: bytes | None = None  # exactly these bytes
    tail: bytes | None = None  # ends with these bytes (a delivery: headers added on top)
    uid: int | None = None
    removed_by: str = ""  # the acknowledged operation that removed it
    documented_duplicate: bool = False
    history: list[str] = field(default_factory=list)

    def note(self, record: Mapping[str, Any]) -> None:
        self.history.append(f"{record.get('op')} {record.get('outcome')} at {record.get('t0')}")


@dataclass
class Finding:
    kind: str
    what: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.what}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Expectations:
    messages: dict[Key, Expect] = field(default_factory=dict)
    groups: list[tuple[tuple[Key, ...], set[int], str]] = field(default_factory=list)
    directory: dict[str, tuple[set[Any], str]] = field(default_factory=dict)
    # (op, soak id) of deliveries whose copies are documented as possibly twice
    documented: set[str] = field(default_factory=set)


def expectations(records: Sequence[Mapping[str, Any]]) -> Expectations:
    """Replay the records (each client's in order) into what must be found."""
    out = Expectations()
    by_client: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_client[str(record.get("client", ""))].append(record)
    for client_records in by_client.values():
        for record in client_records:
            _replay(out, record)
    return out


def _counts(outcome: str) -> set[int]:
    return {1} if outcome == OK else {0} if outcome == FAILED else {0, 1}


def _replay(out: Expectations, r: Mapping[str, Any]) -> None:
    op, outcome = str(r.get("op", "")), str(r.get("outcome", ""))
    if op.startswith("fault.") or op in ("imap.fetch",):
        return
    messages = out.messages
    user, soak_id = str(r.get("user", "")), str(r.get("soak_id", ""))
    key: Key = (user, str(r.get("folder", "")), soak_id)
    if op == "imap.append":
        expect = Expect(
            _counts(outcome),
            op,
            outcome == OK,
            flags=[flag_state(r.get("flags", ()))],
            raw=decode(r["raw"]) if "raw" in r else None,
            uid=r.get("uid") if outcome == OK else None,
        )
        expect.note(r)
        messages[key] = expect
    elif op in ("smtp.send", "web.send"):
        tail = decode(r["raw"]) if "raw" in r else None
        for recipient in r.get("recipients", ()):
            where: Key = (str(recipient), "INBOX", soak_id)
            expect = Expect(_counts(outcome), op, outcome == OK, tail=tail)
            expect.note(r)
            messages[where] = expect
        if op == "web.send":  # the sender's copy in Sent
            where = (user, "\\Sent", soak_id)
            expect = Expect(_counts(outcome), op, outcome == OK)
            expect.note(r)
            messages[where] = expect
        if r.get("relayed"):
            out.documented.add(soak_id)
    elif op == "ews.create":
        expect = Expect(
            _counts(outcome),
            op,
            outcome == OK,
            flags=[flag_state(r["flags"], exact=False)] if "flags" in r else None,
        )
        expect.note(r)
        messages[key] = expect
    elif op in ("imap.store", "ews.update"):
        expect_or_none = messages.get(key)
        if expect_or_none is None:
            return
        expect = expect_or_none
        exact = op == "imap.store"
        new = flag_state(r.get("flags", ()), exact=exact)
        if not exact:  # EWS: the flags named and their values
            new = {str(k): bool(v) for k, v in dict(r.get("flag_values", {})).items()}
        expect.note(r)
        if outcome == OK:
            if exact or expect.flags is None:
                expect.flags = [new]
            else:
                expect.flags = [{**alt, **new} for alt in expect.flags]
        elif outcome == UNKNOWN:
            old = expect.flags or [{}]
            expect.flags = [*old, *([new] if exact else [{**alt, **new} for alt in old])]
    elif op in ("imap.copy", "imap.move", "ews.move"):
        source = messages.get(key)
        if outcome == OK and r.get("empty"):  # no COPYUID: the source wasn't there
            return
        dest_key: Key = (user, str(r.get("dest", "")), soak_id)
        moved = op != "imap.copy"
        dest = Expect(
            _counts(outcome),
            op,
            outcome == OK,
            flags=list(source.flags) if source and source.flags is not None else None,
            raw=source.raw if source else None,
            tail=source.tail if source else None,
            uid=r.get("dest_uid") if outcome == OK else None,
        )
        if op == "ews.move" and source is not None:
            dest.flags = source.flags
        dest.note(r)
        messages[dest_key] = dest
        if moved and source is not None:
            source.note(r)
            if outcome == OK:
                source.counts = {0}
                source.removed_by = op
            elif outcome == UNKNOWN:
                source.counts = source.counts | {0}
                out.groups.append(((key, dest_key), {1}, f"{op} of {soak_id}"))
    elif op in ("imap.expunge", "ews.delete"):
        expect_or_none = messages.get(key)
        if expect_or_none is None:
            return
        expect_or_none.note(r)
        if outcome == OK:
            expect_or_none.counts = {0}
            expect_or_none.removed_by = op
        elif outcome == UNKNOWN:
            expect_or_none.counts = expect_or_none.counts | {0}
    elif op.startswith("shell."):
        name = str(r.get("setting", ""))
        if not name:
            return
        value = r.get("value")
        before = out.directory.get(name, ({r.get("before")}, ""))[0]
        if outcome == OK:
            out.directory[name] = ({value}, f"{op} {r.get('command', '')}")
        elif outcome == UNKNOWN:
            out.directory[name] = (before | {value}, f"{op} {r.get('command', '')}")


def check(records: Sequence[Mapping[str, Any]], observed: Observed) -> list[Finding]:
    """Every finding of the kinds the module names (an empty list: nothing wrong)."""
    wanted = expectations(records)
    found: dict[Key, list[Found]] = defaultdict(list)
    for (user, folder), messages in observed.folders.items():
        for message in messages:
            soak_id = subject_id(message.raw)
            if soak_id is not None:
                found[(user, folder, soak_id)].append(message)
    findings: list[Finding] = []
    for (user, folder, soak_id), expect in wanted.messages.items():
        name = observed.folder_name(user, folder)
        there = found.get((user, name, soak_id), [])
        what = f"{expect.op} {soak_id} in {user}'s {name}"
        story = "; ".join(expect.history)
        count = len(there)
        if count in expect.counts:
            pass
        elif count == 0:
            findings.append(Finding("lost", what, story))
            continue
        elif count > 1:
            kind = "documented" if soak_id in wanted.documented else "duplicated"
            findings.append(Finding(kind, f"{what}: {count} copies", story))
        elif expect.removed_by:
            findings.append(Finding("resurrected", f"{what} after {expect.removed_by}", story))
            continue
        else:
            findings.append(Finding("phantom", what, story))
            continue
        for message in there:
            if expect.raw is not None and message.raw != expect.raw:
                findings.append(Finding("corrupt", what, _difference(expect.raw, message.raw)))
            elif expect.tail is not None and not _ends_with(message.raw, expect.tail):
                findings.append(Finding("corrupt", what, _difference(expect.tail, message.raw)))
            if expect.uid is not None and message.uid != expect.uid:
                findings.append(Finding("uid", what, f"UID {message.uid}, told {expect.uid}"))
            if expect.flags is not None and not any(
                matches(message.flags, state) for state in expect.flags
            ):
                findings.append(
                    Finding(
                        "flags",
                        what,
                        f"has {sorted(message.flags)}, allowed {expect.flags}; {story}",
                    )
                )
    for keys, totals, what in wanted.groups:
        total = sum(len(found.get((u, observed.folder_name(u, f), s), [])) for u, f, s in keys)
        if total not in totals:
            findings.append(Finding("atomic", f"{what}: {total} copies in all", ""))
    for name, (values, said) in wanted.directory.items():
        value = observed.directory.get(name)
        if value not in values:
            findings.append(Finding("directory", f"{name} is {value!r}", f"after {said}"))
    for entry in observed.queued:
        findings.append(Finding("stuck", str(entry.get("what", entry)), str(entry.get("why", ""))))
    for problem in observed.process_problems:
        findings.append(Finding("process", problem))
    return findings


def _ends_with(raw: bytes, tail: bytes) -> bool:
    def norm(data: bytes) -> bytes:
        return data.replace(b"\r\n", b"\n").rstrip(b"\n")

    return norm(raw).endswith(norm(tail))


def _difference(wanted: bytes, got: bytes) -> str:
    for index, (a, b) in enumerate(zip(wanted, got, strict=False)):
        if a != b:
            said, found = wanted[index : index + 20], got[index : index + 20]
            return f"differs at byte {index}: {said!r} vs {found!r}"
    return f"{len(got)} bytes, {len(wanted)} wanted"


def tally(findings: Iterable[Finding]) -> Counter[str]:
    counts: Counter[str] = Counter({kind: 0 for kind in KINDS})
    counts.update(finding.kind for finding in findings)
    return counts


def failures(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that fail the soak (all but documented duplicates)."""
    return [f for f in findings if f.kind != "documented"]
