"""A person in a real browser: Debian's headless Chromium, driven by Playwright,
against the lab over HTTPS, signing in with HTTP Basic when the server asks.

The browser trusts the lab CA the way a person would make it: the CA goes into
the NSS database of the browser's home (``$HOME/.pki/nssdb``, where Chromium on
Linux looks), so the certificate chain and host name are checked as for any
site. Certificate errors are never ignored; a CA the browser does not trust
fails the first page load (see ``test_an_untrusted_server_is_refused``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dmlab import Lab
from dmlab.runtime.lab import DEFAULT_ACCOUNT

from helpers import CHROMIUM, CHROMIUM_ARGS, SHOTS, new_dev_id

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed"
)


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no browser: {CHROMIUM} is missing (apt-get install chromium)"
    if shutil.which("certutil") is None:
        return "no certutil to give the browser the lab CA (apt-get install libnss3-tools)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def trusting_home(home: Path, ca_pem: Path) -> Path:
    """A home directory whose NSS database trusts the lab CA for servers (``C,,``)."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{nssdb}",
            "-n",
            "dmlab lab CA",
            "-t",
            "C,,",
            "-i",
            str(ca_pem),
        ],
        check=True,
        capture_output=True,
    )
    return home


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as running:
        yield running


def launch(playwright: Any, home: Path) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)}
    )


@pytest.fixture(scope="module")
def browser(playwright: Any, lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ca = lab.ca.write_ca(tmp_path_factory.mktemp("ca") / "ca.pem")
    chromium = launch(playwright, trusting_home(tmp_path_factory.mktemp("home"), ca))
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A browser tab whose user knows the demo account's name and password."""
    context = browser.new_context(
        http_credentials={"username": DEFAULT_ACCOUNT[0], "password": DEFAULT_ACCOUNT[1]}
    )
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def text(tab: Any, selector: str) -> str:
    return tab.locator(selector).inner_text().strip()


def test_register_update_and_request_a_session(page: Any, lab: Lab) -> None:
    dev_id = new_dev_id()

    # Registration form → the page that shows the secret, once.
    response = page.goto(f"{lab.url}/devices/new")
    assert response.status == 200
    page.fill("input[name=devId]", dev_id)
    page.fill("input[name=name]", "Kitchen phone")
    page.fill("input[name=man]", "Acme")
    with page.expect_navigation() as registered:
        page.click("#register button[type=submit]")
    assert registered.value.status == 201
    assert page.title() == "Device registered · dmlab"
    assert text(page, "#devId") == dev_id
    secret = text(page, "#secret")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", secret)
    page.screenshot(path=str(SHOTS / "dmlab-registered.png"), full_page=True)

    # The device page, reached by the link on that page.
    page.click("#devId")
    device_url = f"{lab.url}/devices/{quote(dev_id, safe='')}"
    assert page.url == device_url
    assert text(page, "#info").startswith("DevID")
    assert dev_id in text(page, "#info") and "Kitchen phone" in text(page, "#info")

    # The update form (a POST with _method=PUT, CSRF token included).
    page.fill("#update input[name=name]", "Hall phone")
    with page.expect_navigation() as updated:
        page.click("#update button[type=submit]")
    assert updated.value.status == 200 and updated.value.url == device_url
    assert "Hall phone" in text(page, "#info")
    assert lab.operator.device(dev_id)["name"] == "Hall phone"

    # Browser-initiated flow: the form queues a session and the device is notified.
    lab.attach_device(dev_id, secret)
    page.select_option("#request-session select[name=job]", "inventory")
    with page.expect_navigation() as queued:
        page.click("#request-session button[type=submit]")
    assert queued.value.status == 202
    assert page.title() == "Session queued · dmlab"
    session_id = text(page, "#session")
    lab.settle()

    page.click(f"a[href='/devices/{quote(dev_id, safe='')}']")  # the queued page's link
    assert page.url == device_url
    rows = page.locator("#sessions tr").all_inner_texts()
    mine = [r for r in rows if session_id in r or "browser-initiated" in r]
    assert len(mine) == 1, rows
    assert "completed" in mine[0] and "OK" in mine[0] and "browser-initiated" in mine[0]
    page.screenshot(path=str(SHOTS / "dmlab-device.png"), full_page=True)


def test_a_form_with_a_wrong_or_missing_csrf_token_changes_nothing(page: Any, lab: Lab) -> None:
    dev_id = new_dev_id()
    lab.operator.register(dev_id, name="Original")
    page.goto(f"{lab.url}/devices/{dev_id}")
    for token in ("0" * 32, None):
        page.goto(f"{lab.url}/devices/{dev_id}")
        page.fill("#update input[name=name]", "Changed")
        if token is None:
            page.evaluate("document.querySelector('#update input[name=csrf]').remove()")
        else:
            page.evaluate(f"document.querySelector('#update input[name=csrf]').value = '{token}'")
        with page.expect_navigation() as refused:
            page.click("#update button[type=submit]")
        assert refused.value.status == 403
        assert text(page, "#error") == "csrf"
        assert lab.operator.device(dev_id)["name"] == "Original"


def test_sign_in_and_out(browser: Any, lab: Lab) -> None:
    person = browser.new_context(
        http_credentials={"username": DEFAULT_ACCOUNT[0], "password": DEFAULT_ACCOUNT[1]}
    )
    tab = person.new_page()
    response = tab.goto(f"{lab.url}/login")
    assert response.status == 200 and response.url == f"{lab.url}/devices"
    assert f"Signed in as {DEFAULT_ACCOUNT[0]}" in tab.inner_text("body")
    for link in ("/login", "/logout", "/docs"):
        assert tab.locator(f"nav a[href='{link}']").count() == 1

    with tab.expect_navigation() as signed_out:
        tab.click("nav a[href='/logout']")
    # 401 with a challenge, so the browser drops what it cached (and a person
    # whose browser asks again can cancel); the page itself stays readable.
    assert signed_out.value.status == 401
    assert signed_out.value.headers["www-authenticate"].startswith("Basic")
    assert tab.title() == "Signed out · dmlab"
    assert "signed out" in text(tab, "#signed-out")
    person.close()


def test_the_api_docs_page(page: Any, lab: Lab) -> None:
    response = page.goto(f"{lab.url}/docs")
    assert response.status == 200
    assert page.locator("section.operation").count() >= 20
    page.click("a[href='#post-/alert']")
    assert "AlertReport" in page.locator("section[id='post-/alert']").inner_text()
    page.screenshot(path=str(SHOTS / "dmlab-docs.png"))


def test_an_untrusted_server_is_refused(playwright: Any, lab: Lab, tmp_path: Path) -> None:
    """Without the lab CA in its NSS database the same browser refuses the page:
    the trust above is real, not a switched-off check."""
    home = tmp_path / "home"
    home.mkdir()
    stranger = launch(playwright, home)
    try:
        tab = stranger.new_page()
        with pytest.raises(sync_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
            tab.goto(f"{lab.url}/")
    finally:
        stranger.close()
