"""Transcripts of the extended LIST (RFC 5258: selection and return options, several
patterns, CHILDINFO) and LIST-STATUS (RFC 5819)."""

from __future__ import annotations

from tests.access.imap.fakes import FakeMailboxStore, logged_in, message, rx, transcript


def store() -> FakeMailboxStore:
    store = FakeMailboxStore()
    store.append("INBOX", message("one"), ["\\Seen"])
    store.append("INBOX", message("two"))
    for name in ("a/b", "a/c/d", "x", "gone"):
        store.create_folder(name)
    for name in ("a/b", "a/c/d", "gone"):
        store.subscribe(name, True)
    store.delete_folder("gone")
    return store


def test_several_patterns_and_return_subscribed() -> None:
    session, _ = logged_in(store())
    transcript(
        session,
        [
            (
                b'a1 LIST "" (a/% x) RETURN (SUBSCRIBED CHILDREN)\r\n',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" "a/b"\r\n'
                b'* LIST (\\HasChildren) "/" "a/c"\r\n'
                b'* LIST (\\HasNoChildren) "/" "x"\r\n'
                b"a1 OK LIST completed\r\n",
            ),
            (
                b'a2 LIST (SPECIAL-USE) "" *\r\n',
                rx(rb'(\* LIST \(\\HasNoChildren \\[A-Z][a-z]+\) "/" "[A-Za-z]+"\r\n){5}a2 OK.*'),
            ),
        ],
    )


def test_selection_subscribed_lists_gone_mailboxes_as_nonexistent() -> None:
    session, _ = logged_in(store())
    transcript(
        session,
        [
            (
                b'a1 LIST (SUBSCRIBED) "" (a* gone)\r\n',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" "a/b"\r\n'
                b'* LIST (\\HasNoChildren \\Subscribed) "/" "a/c/d"\r\n'
                b'* LIST (\\NonExistent \\Subscribed) "/" "gone"\r\n'
                b"a1 OK LIST completed\r\n",
            ),
        ],
    )


def test_recursivematch_gives_childinfo_for_parents_of_unmatched_subscriptions() -> None:
    session, _ = logged_in(store())
    transcript(
        session,
        [
            (
                b'a1 LIST (SUBSCRIBED RECURSIVEMATCH) "" (a gone)\r\n',
                b'* LIST (\\HasChildren) "/" "a" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
                b'* LIST (\\NonExistent \\Subscribed) "/" "gone"\r\n'
                b"a1 OK LIST completed\r\n",
            ),
            (  # a/c/d is matched itself: no CHILDINFO for a/c
                b'a2 LIST (SUBSCRIBED RECURSIVEMATCH) "" (a/c a/c/d)\r\n',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" "a/c/d"\r\na2 OK LIST completed\r\n',
            ),
        ],
    )


def test_list_status_follows_each_selectable_mailbox() -> None:
    session, _ = logged_in(store())
    transcript(
        session,
        [
            (
                b'a1 LIST "" (INBOX a) RETURN (STATUS (MESSAGES UNSEEN HIGHESTMODSEQ))\r\n',
                rx(
                    rb'\* LIST \(\\HasNoChildren\) "/" "INBOX"\r\n'
                    rb'\* STATUS "INBOX" \(MESSAGES 2 UNSEEN 1 HIGHESTMODSEQ \d+\)\r\n'
                    rb'\* LIST \(\\HasChildren\) "/" "a"\r\n'
                    rb'\* STATUS "a" \(MESSAGES 0 UNSEEN 0 HIGHESTMODSEQ \d+\)\r\n'
                    rb"a1 OK LIST completed\r\n"
                ),
            ),
        ],
    )


def test_bad_options_are_refused() -> None:
    session, _ = logged_in(store())
    transcript(
        session,
        [
            (b'a1 LIST (imaptest) "" ""\r\n', rx(rb"a1 BAD .*Unknown LIST selection option.*")),
            (b'a2 LIST (RECURSIVEMATCH) "" %\r\n', rx(rb"a2 BAD .*RECURSIVEMATCH needs.*")),
            (b'a3 LIST (RECURSIVEMATCH REMOTE) "" %\r\n', rx(rb"a3 BAD .*RECURSIVEMATCH.*")),
            (b'a4 LIST "" "" RETURN (imaptest)\r\n', rx(rb"a4 BAD .*Unknown LIST return.*")),
            (b'a5 LIST "" % RETURN (STATUS (FOO))\r\n', rx(rb"a5 BAD .*status item FOO.*")),
            (b'a6 LSUB (SUBSCRIBED) "" %\r\n', rx(rb"a6 BAD .*")),
            (
                b'a7 LIST (REMOTE) "" x\r\n',
                b'* LIST (\\HasNoChildren) "/" "x"\r\na7 OK LIST completed\r\n',
            ),
        ],
    )
