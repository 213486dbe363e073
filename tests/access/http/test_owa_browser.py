"""The web mail in a real browser: Debian's chromium driven by Playwright (the Python
package, pointed at the system's chromium: no browser download), against a real uvicorn
server over TLS. It signs in, opens a message (sanitized HTML; the remote image is not
fetched), downloads its attachment and signs out. A screenshot of the message is kept
in the test's tmp_path and in tests/artifacts/ (git-ignored).

Without chromium or playwright the test is skipped, saying which is missing, unless
the CI environment variable is set (to anything but "", 0, false or no): then it fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.access import tls
from casarray.access.http import AppContext, create_app, owa
from casarray.directory import Directory
from casarray.mailstore.store import close_all, store_for
from tests.access.http import Served, build_org

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"  # tests/artifacts

MESSAGE = (
    b"From: Bob Li <bob@lab.net>\r\n"
    b"To: Alice Wang <alice@lab.net>\r\n"
    b"Subject: Quarterly report\r\n"
    b"Date: Mon, 02 Jun 2025 09:30:00 +0800\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<h2>Quarterly report</h2><p>Numbers are <b>up</b>, see the attachment.</p>"
    b'<p onmouseover="alert(1)">Hover me</p><script>alert(2)</script>'
    b'<img src="https://tracker.example/pixel.gif" alt="tracking pixel">'
    b'<p><a href="https://example.org/report">Full report</a></p>\r\n'
    b"--b\r\n"
    b"Content-Type: text/csv\r\n"
    b'Content-Disposition: attachment; filename="numbers.csv"\r\n'
    b"\r\n"
    b"quarter,revenue\r\nQ1,100\r\nQ2,120\r\n"
    b"--b--\r\n"
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing() -> list[str]:
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"chromium at {CHROMIUM} (Debian package `chromium`)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the Python package `playwright` (pip install playwright)")
    return missing


@pytest.fixture
def browser_tools() -> None:
    """Skips (or, under CI, fails) when chromium or playwright is missing."""
    missing = _missing()
    if not missing:
        return
    why = "the browser test needs " + " and ".join(missing)
    if _in_ci():
        pytest.fail(why + " (CI is set, so this fails rather than skips)")
    pytest.skip(why)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Iterator[Directory]:
    yield build_org(bj, password_hash)
    close_all()


def test_sign_in_read_and_sign_out(
    browser_tools: None, org: Directory, password: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    alice = org.mailboxes.one("alice")
    store = store_for(org.databases.one(alice.database)).mailbox(alice.guid)
    store.append("INBOX", MESSAGE)
    files, _ = tls.ensure_certificate(
        "CAS01", ["CAS01.lab.net", "127.0.0.1", "bj-cas.lab.net"], home=tmp_path
    )
    app = create_app(AppContext.for_server(org, "CAS01"), [owa.routes])
    shot = tmp_path / "owa-message.png"
    requested: list[str] = []
    dialogs: list[str] = []
    with Served(app, tls.server_context(files)) as served, sync_playwright() as p:
        base = f"https://127.0.0.1:{served.port}"
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

            page.goto(f"{base}/owa")
            expect(page).to_have_url(re.compile(r"/owa/login$"))
            page.get_by_label("User name").fill("alice@lab.net")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/owa$"))
            expect(page.get_by_role("heading", name="Inbox")).to_be_visible()

            page.get_by_role("link", name="Quarterly report").click()
            expect(page).to_have_url(re.compile(r"/owa/message\?"))
            expect(page.get_by_text("Numbers are up")).to_be_visible()
            expect(page.get_by_text("1 remote image was not loaded")).to_be_visible()
            page.get_by_text("Hover me").hover()
            page.screenshot(path=str(shot), full_page=True)

            with page.expect_download() as download:
                page.get_by_role("link", name="numbers.csv").click()
            assert download.value.suggested_filename == "numbers.csv"
            assert "Q2,120" in Path(download.value.path()).read_text()

            page.get_by_role("button", name="Sign out").click()
            expect(page).to_have_url(re.compile(r"/owa/login\?signed_out=1$"))
            expect(page.get_by_text("You have signed out")).to_be_visible()
            assert "owa_session" not in {c["name"] for c in context.cookies()}
            page.goto(f"{base}/owa")
            expect(page).to_have_url(re.compile(r"/owa/login$"))
        finally:
            browser.close()
    assert dialogs == []  # no script of the message ran
    assert not [url for url in requested if "tracker.example" in url]
    assert shot.stat().st_size > 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)
