"""Mail end to end in a running lab (as root: the standard ports, the Kernel data plane),
with real peers on both sides of the organization:

- the outside world's MTA is Debian's Postfix, routing by MX through the lab's DNS
  (127.77.0.53, in a mount namespace of its own: `PostfixPeer(resolver=...)`); a message
  it takes for alice@lab.net is in her INBOX, read over IMAP through the BJ array
  (bj-cas.lab.net's cluster IP, STARTTLS), and its Received headers show Postfix, then
  the Hub Transport; the time from Postfix's 250 to the message showing is printed;
- the ISP's smart host is a second Postfix (a sink that refuses nobody@example.net),
  named by the Internet send connector;
- alice sends with mutt through submission (MBX01:587, STARTTLS, then AUTH) and from
  web mail's JSON API (`POST /api/v1/send` through the array): bob reads his copy over
  IMAP, the smart host gets dave@example.net's, her Sent folder keeps the API's copy;
- the smart host's refusal comes back to alice as a delivery report (RFC 3464);
- Get-MessageTrackingLog shows every hop (RECEIVE, SEND, FAIL, and the DSN).

The tests run in order and share the lab, the array and the smart host (module
fixtures); the last one reads the tracking log of the messages the others sent.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import http.client
import imaplib
import json
import os
import re
import secrets
import shutil
import smtplib
import ssl
import subprocess
import time
from base64 import b64encode
from collections.abc import Iterator
from email.message import EmailMessage, Message
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest

from tests.lab import Lab, required, tool, wait_for
from tests.lab.conftest import fresh_lab
from tests.peers.postfix import PostfixPeer, missing

ARRAY, VIP = "bj-cas.lab.net", "127.77.1.10"
DNS = "127.77.0.53"
MBX01 = "127.77.1.21"
# Outside addresses of this module's own (the walkthrough uses 127.77.9.25/.26/.40, the
# conntrack tests 127.77.9.40-.42).
OUTSIDE_MTA, SMART_HOST = "127.77.9.52", "127.77.9.51"
REFUSED = "nobody@example.net"
TOKEN = secrets.token_hex(3)  # in every subject: this run's messages only
# What the tests sent, for the tracking log's test: kind -> subject.
SENT: dict[str, str] = {}


def root_missing() -> str | None:
    if os.geteuid() != 0:
        return "the lab on the standard ports, the Kernel data plane and Postfix need root"
    if shutil.which("nft") is None:
        return "nft is not installed (Debian package nftables)"
    if shutil.which("unshare") is None:
        return "unshare is not installed (Debian package util-linux)"
    return None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    required(root_missing())
    required(missing())
    with fresh_lab() as lab:
        lab.up()
        yield lab


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> str:
    """The BJ array and the NLB cluster in front of it (as test_lab.py makes them), and
    MBX01's databases pointed at the array (the walkthrough's step 6: without it a
    member other than CAS01 refers DB01's users to CAS01)."""
    lab.shell(
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ; '
        "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
        '-ClientAccessArray "BJ CAS Array"; '
        "Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase -RpcClientAccessServer "
        "bj-cas.lab.net"
    )
    assert wait_for(lambda: lab.process(ARRAY).get("state") == "Running"), lab.state()
    assert wait_for(lambda: all(n["state"] == "Converged" for n in lab.status()["nodes"]))
    return ARRAY


@pytest.fixture(scope="module")
def smart_host(lab: Lab) -> Iterator[PostfixPeer]:
    """The ISP's smart host (a Postfix sink refusing nobody@example.net at RCPT) and the
    Internet send connector for every domain through it."""
    peer = PostfixPeer(
        host=SMART_HOST,
        hostname="smarthost.isp.example",
        reject={REFUSED: "550 5.1.1 <nobody@example.net>: no such user here"},
    )
    with peer:
        lab.shell(
            'New-SendConnector -Name Internet -AddressSpaces "SMTP:*;1" '
            f'-SmartHosts "[{SMART_HOST}]" -Port {peer.port} -DNSRoutingEnabled $false'
        )
        # the transports take a new connector at their next look at the directory
        assert wait_for(lambda: routes_outside(lab), timeout=30), lab.logs("MBX01-transport")
        yield peer


def routes_outside(lab: Lab) -> bool:
    """Whether MBX01's submission takes a recipient outside the organization (RCPT
    only: nothing is sent)."""
    with smtplib.SMTP(MBX01, 587, timeout=10) as client:
        client.starttls(context=unverified())
        client.login("alice@lab.net", lab.passwords["alice@lab.net"])
        client.mail("alice@lab.net")
        code, _ = client.rcpt("someone@example.net")
        client.rset()
    return code == 250


# -- clients ---------------------------------------------------------------------------


def unverified() -> ssl.SSLContext:
    """TLS without verification: the lab's servers serve their self-signed certificates
    (the lab CA issues theirs only in the walkthrough's step 5); what is tested here is
    the mail, not the certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Imap:
    """One IMAP session through the array (STARTTLS, LOGIN)."""

    def __init__(self, lab: Lab, user: str) -> None:
        self.client = imaplib.IMAP4(VIP, 143, timeout=10)
        self.client.starttls(ssl_context=unverified())
        self.client.login(user, lab.passwords[user])

    def __enter__(self) -> Imap:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.client.logout()

    def select(self, folder: str = "INBOX") -> None:
        kind, data = self.client.select(folder, readonly=True)
        assert kind == "OK", data

    def find(self, subject: str) -> Message | None:
        """The newest message of the selected folder whose subject has `subject`."""
        self.client.noop()  # the folder's news (EXISTS) since the last look
        kind, found = self.client.search(None, "SUBJECT", f'"{subject}"')
        assert kind == "OK", found
        numbers = found[0].split() if found and found[0] else []
        if not numbers:
            return None
        kind, data = self.client.fetch(numbers[-1], "(BODY.PEEK[])")
        assert kind == "OK", data
        raw = next(part[1] for part in data if isinstance(part, tuple))
        return email.message_from_bytes(raw, policy=email.policy.default)

    def sent_folder(self) -> str:
        """The folder marked \\Sent (RFC 6154), else "Sent Items"."""
        kind, listed = self.client.list()
        assert kind == "OK", listed
        for line in listed:
            text = line.decode() if isinstance(line, bytes) else str(line)
            found = re.match(r'\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$', text)
            if found and "\\sent" in found["flags"].lower():
                return found["name"] if found["name"].startswith('"') else f'"{found["name"]}"'
        return '"Sent Items"'


def wait_message(lab: Lab, user: str, subject: str, folder: str = "INBOX") -> Message:
    with Imap(lab, user) as imap:
        imap.select(imap.sent_folder() if folder == "\\Sent" else folder)
        message = wait_for(lambda: imap.find(subject), timeout=30)
    assert message is not None, f"{subject!r} not in {user}'s {folder}\n{lab.logs()[-3000:]}"
    return message


def received(message: Message) -> list[str]:
    """The Received headers, newest (topmost) first, unfolded."""
    return [" ".join(str(value).split()) for value in message.get_all("Received", [])]


def addresses(message: Message, name: str) -> set[str]:
    """The addresses of the header `name` (From, To)."""
    return {address for _, address in getaddresses([str(v) for v in message.get_all(name, [])])}


def body_of(message: Message) -> str:
    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert part is not None, message
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def sink_message(peer: PostfixPeer, subject: str) -> Message:
    """The smart host's copy of the message `subject` (waited for)."""

    def find() -> Message | None:
        for raw in peer.received():
            message = email.message_from_bytes(raw, policy=email.policy.default)
            if subject in str(message["Subject"]):
                return message
        return None

    message = wait_for(find, timeout=30)
    assert message is not None, f"{subject!r} not at the smart host\n{peer.log()[-3000:]}"
    return message


def events(lab: Lab, *filters: str) -> list[dict[str, Any]]:
    """Get-MessageTrackingLog's events (every Hub Transport server's) as dicts."""
    text = lab.shell(
        f"Get-MessageTrackingLog {' '.join(filters)} -ResultSize Unlimited | ConvertTo-Json"
    ).strip()
    if not text:
        return []
    found = json.loads(text)
    return found if isinstance(found, list) else [found]


def queue_id_of(lab: Lab, subject: str) -> str:
    """The queue id MBX01 gave the message `subject` when alice submitted it."""
    found = wait_for(
        lambda: [
            e
            for e in events(lab, "-Server MBX01", "-EventId RECEIVE", "-Sender alice@lab.net")
            if subject in e["MessageSubject"]
        ]
    )
    assert found, f"no RECEIVE of {subject!r} on MBX01"
    return str(found[0]["InternalMessageId"])


def mutt(lab: Lab, folder: Path, subject: str, body: str, *recipients: str) -> None:
    """alice sends with mutt through MBX01's submission port: STARTTLS (MBX01's own
    certificate as the one trusted), then AUTH."""
    certificate = lab.home / "transport" / "mbx01" / "smtp.pem"
    assert certificate.exists(), sorted(str(p) for p in (lab.home / "transport").rglob("*"))
    rc = folder / "muttrc"
    rc.write_text(
        f'set smtp_url="smtp://alice%40lab.net@{MBX01}:587/"\n'
        f'set smtp_pass="{lab.passwords["alice@lab.net"]}"\n'
        'set from="alice@lab.net"\n'
        'set realname="Alice Wang"\n'
        "set ssl_starttls=yes\n"
        "set ssl_force_tls=yes\n"
        f'set ssl_ca_certificates_file="{certificate}"\n'
        f'set certificate_file="{folder / "mutt-certs"}"\n'
        "set ssl_verify_host=no\n"  # reached by address; its certificate names MBX01.lab.net
        "set record=\n"
        "set use_from=yes\n"
    )
    text = folder / "body.txt"
    text.write_text(body + "\n")
    with text.open() as stdin:
        done = subprocess.run(
            [tool("mutt", "mutt"), "-n", "-F", str(rc), "-s", subject, "--", *recipients],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={"HOME": str(folder), "PATH": "/usr/bin:/bin", "TERM": "dumb"},
        )
    assert done.returncode == 0, done.stdout + done.stderr + lab.logs("MBX01-transport")[-3000:]


def api_send(lab: Lab, payload: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """`POST /api/v1/send` as alice, over HTTPS through the array."""
    credentials = b64encode(f"alice@lab.net:{lab.passwords['alice@lab.net']}".encode()).decode()
    connection = http.client.HTTPSConnection(VIP, 443, timeout=30, context=unverified())
    try:
        connection.request(
            "POST",
            "/api/v1/send",
            body=json.dumps(payload),
            headers={
                "Host": ARRAY,
                "Authorization": f"Basic {credentials}",
                "Content-Type": "application/json",
                "Connection": "close",
            },
        )
        response = connection.getresponse()
        text = response.read().decode()
        return response.status, json.loads(text) if text else {}, dict(response.getheaders())
    finally:
        connection.close()


# -- the tests -----------------------------------------------------------------------------


def test_mail_from_outside_by_mx_reaches_the_inbox_through_the_array(
    lab: Lab, cluster: str
) -> None:
    subject = f"From the outside by MX {TOKEN}"
    outside = PostfixPeer(
        host=OUTSIDE_MTA, hostname="mx.example.net", resolver=DNS, source=OUTSIDE_MTA
    )
    with outside, Imap(lab, "alice@lab.net") as imap:
        imap.select()
        with smtplib.SMTP(outside.host, outside.port, timeout=30) as client:
            refused = client.sendmail(
                "dave@example.net",
                ["alice@lab.net"],
                f"From: Dave <dave@example.net>\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n"
                "\r\nHello Alice, from outside.\r\n".encode(),
            )
        accepted = time.monotonic()  # Postfix's 250 to DATA
        assert refused == {}
        message = wait_for(lambda: imap.find(subject), timeout=30)
        took = time.monotonic() - accepted
        assert message is not None, outside.log()[-3000:] + lab.logs()[-3000:]
        log = outside.log()
    print(f"\nPostfix's 250 -> in alice's INBOX over IMAP through {ARRAY}: {took:.2f} s")
    assert took < 10  # the goal is a second; the figure is printed above
    # Postfix found the lab's MX (smtp.lab.net) through the lab's DNS
    assert re.search(r"relay=smtp\.lab\.net\[127\.77\.[12]\.21\]:25, .*status=sent", log), log
    # newest first: our transport's (naming Postfix and its address), then Postfix's
    headers = received(message)
    ours = [i for i, h in enumerate(headers) if re.search(r" by MBX0[12]\.lab\.net with ", h)]
    postfix = [i for i, h in enumerate(headers) if "by mx.example.net (Postfix)" in h]
    assert ours and postfix and max(ours) < min(postfix), headers
    assert f"from mx.example.net ({OUTSIDE_MTA})" in headers[max(ours)], headers
    assert headers[-1] == headers[min(postfix)]  # Postfix's is the first hop
    assert body_of(message).strip() == "Hello Alice, from outside."


def test_mutt_submits_to_bob_and_to_the_outside(
    lab: Lab, cluster: str, smart_host: PostfixPeer, tmp_path: Path
) -> None:
    subject = f"Mutt to bob and dave {TOKEN}"
    SENT["mutt"] = subject
    body = "Sent with mutt through submission."
    mutt(lab, tmp_path, subject, body, "bob@lab.net", "dave@example.net")
    to_bob = wait_message(lab, "bob@lab.net", subject)
    assert addresses(to_bob, "From") == {"alice@lab.net"}
    assert body_of(to_bob).strip() == body
    queue_id = queue_id_of(lab, subject)
    to_dave = sink_message(smart_host, subject)
    assert to_dave["Return-Path"] == "<alice@lab.net>"
    assert addresses(to_dave, "From") == {"alice@lab.net"}
    assert str(to_dave["Subject"]) == subject
    assert body_of(to_dave).strip() == body
    headers = received(to_dave)
    assert "by smarthost.isp.example (Postfix)" in headers[0], headers
    ours = [h for h in headers if f" id {queue_id}" in h]
    assert ours and "by MBX01.lab.net with ESMTPSA" in ours[0], (queue_id, headers)
    assert queue_id in to_bob["Received"]


def test_web_mail_sends_and_keeps_a_copy_in_sent(
    lab: Lab, cluster: str, smart_host: PostfixPeer
) -> None:
    subject = f"From web mail to bob and dave {TOKEN}"
    SENT["api"] = subject
    body = "Sent from web mail's JSON API."
    status, answer, headers = api_send(
        lab, {"to": ["bob@lab.net", "dave@example.net"], "subject": subject, "body": body}
    )
    assert status == 202, (status, answer)
    assert answer["queue_id"] and answer["hub"] == "MBX01", answer
    assert headers.get("location", headers.get("Location", "")).startswith("/api/v1/folders/")
    to_bob = wait_message(lab, "bob@lab.net", subject)
    assert body_of(to_bob).strip() == body
    assert to_bob["Message-ID"] == answer["message_id"]
    to_dave = sink_message(smart_host, subject)
    assert to_dave["Message-ID"] == answer["message_id"]
    assert any(f" id {answer['queue_id']}" in h for h in received(to_dave)), received(to_dave)
    assert body_of(to_dave).strip() == body
    copy = wait_message(lab, "alice@lab.net", subject, folder="\\Sent")
    assert copy["Message-ID"] == answer["message_id"]
    assert addresses(copy, "To") == {"bob@lab.net", "dave@example.net"}


def test_a_refusal_at_the_smart_host_comes_back_as_a_delivery_report(
    lab: Lab, cluster: str, smart_host: PostfixPeer
) -> None:
    subject = f"To nobody {TOKEN}"
    SENT["refused"] = subject
    status, answer, _ = api_send(lab, {"to": [REFUSED], "subject": subject, "body": "Anyone?"})
    assert status == 202, (status, answer)
    report = wait_message(lab, "alice@lab.net", f"Undeliverable: {subject}")
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Return-Path"] == "<>"  # the null sender: no report of a report
    assert addresses(report, "From") == {"postmaster@lab.net"}, report["From"]
    assert report["Auto-Submitted"] == "auto-replied"
    parts = {part.get_content_type(): part for part in report.walk()}
    assert "message/delivery-status" in parts, list(parts)
    fields = parts["message/delivery-status"].get_payload()
    assert isinstance(fields, list) and len(fields) >= 2, fields
    recipient = fields[1]
    assert isinstance(recipient, Message), recipient
    assert str(recipient["Final-Recipient"]).lower() == f"rfc822; {REFUSED}"
    assert re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", str(recipient["Status"])), recipient["Status"]
    assert str(recipient["Action"]).lower() == "failed"
    assert "550" in str(recipient["Diagnostic-Code"]), recipient["Diagnostic-Code"]
    assert not [m for m in smart_host.received() if subject.encode() in m]


def test_the_tracking_log_shows_every_hop(lab: Lab) -> None:
    if len(SENT) < 3:
        pytest.skip("the tests that send (this module's others) did not all run")
    by_alice = events(lab, "-Sender alice@lab.net")
    table = "Format-Table EventId,Source,Recipients,RecipientStatus,MessageSubject"
    print("\n" + lab.shell(f"Get-MessageTrackingLog -Sender alice@lab.net | {table}"))

    def of(kind: str, event_id: str) -> list[dict[str, Any]]:
        return [
            e
            for e in by_alice
            if e["EventId"] == event_id and SENT[kind] in str(e["MessageSubject"])
        ]

    for kind in ("mutt", "api"):
        assert of(kind, "RECEIVE"), (kind, by_alice)
        sent = [r for e in of(kind, "SEND") for r in e["Recipients"]]
        assert sent == ["dave@example.net"], (kind, of(kind, "SEND"))
        delivered = [r for e in of(kind, "DELIVER") for r in e["Recipients"]]
        assert delivered == ["bob@lab.net"], (kind, of(kind, "DELIVER"))
    assert of("refused", "RECEIVE")
    [failed] = of("refused", "FAIL")
    assert failed["Recipients"] == [REFUSED] and "550" in failed["RecipientStatus"][0], failed
    # the report itself is from <> (as Exchange logs it): found by its recipient, and it
    # names the refused message
    reports = [
        e
        for e in events(lab, "-EventId DSN", "-Recipients alice@lab.net")
        if failed["MessageId"] in (e["Reference"] or [])
    ]
    assert reports, events(lab, "-EventId DSN")
    assert reports[0]["Source"] == "DSN" and "550" in reports[0]["RecipientStatus"][0]
