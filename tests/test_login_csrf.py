"""Accounts in a browser: signing in and out with HTTP Basic, and the CSRF token
every state-changing form carries (a form post without the right one changes
nothing, whatever it claims to accept)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from dmlab import Lab
from dmlab.protocol import media

from helpers import BROWSER_ACCEPT, Registered, csrf_of, html, problem


def test_login_asks_for_credentials_then_goes_to_the_devices(clients: Any, lab: Lab) -> None:
    refused = clients.anonymous(accept=BROWSER_ACCEPT).get("/login")
    assert "unauthorized" in html(refused, 401)
    assert refused.headers["www-authenticate"].startswith('Basic realm="dmlab"')

    signed_in = clients.browser().get("/login")
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/devices"


def test_login_is_for_accounts(clients: Any, register: Any) -> None:
    device: Registered = register(attach=False)
    problem(clients.of(device).get("/login", headers={"Accept": media.JSON}), 403, "forbidden")
    problem(clients.account("demo", "wrong").get("/login"), 401, "unauthorized")


def test_logout_makes_the_browser_forget(clients: Any) -> None:
    page = clients.browser().get("/logout")
    body = html(page, 401)
    assert page.headers["www-authenticate"].startswith('Basic realm="dmlab"')
    assert page.headers["cache-control"] == "no-store"
    assert 'id="signed-out"' in body and 'href="/login"' in body
    # a script gets the same answer as JSON
    problem(clients.account().get("/logout"), 401, "signed-out")


def test_pages_link_sign_in_and_out(clients: Any) -> None:
    page = html(clients.browser().get("/devices"), 200)
    for link in ("/login", "/logout", "/docs"):
        assert f'<a href="{link}">' in page


def test_every_form_that_changes_state_carries_a_token(clients: Any, register: Any) -> None:
    device: Registered = register(attach=False)
    browser = clients.browser()
    pages = [
        html(browser.get("/devices/new"), 200),
        html(browser.get(f"/devices/{device.dev_id}"), 200),
    ]
    forms = [f for p in pages for f in re.findall(r"<form[^>]*>.*?</form>", p, re.S)]
    assert len(forms) == 4  # register; request a session, update, unregister
    for form in forms:
        assert 'method="post"' in form
        assert csrf_of(form)


BAD_TOKENS = [None, "", "0" * 32, "é" * 32]  # é: once a TypeError in compare_digest (a 500)


def _post(
    client: httpx.Client, path: str, fields: dict[str, str], token: str | None, accept: str
) -> httpx.Response:
    data = dict(fields) if token is None else {**fields, "csrf": token}
    return client.post(path, data=data, headers={"Accept": accept})


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, media.JSON])
@pytest.mark.parametrize("token", BAD_TOKENS)
def test_a_form_without_the_right_token_changes_nothing(
    clients: Any, register: Any, lab: Lab, token: str | None, accept: str
) -> None:
    """A cross-site page can post a form with ``Accept: application/json`` too (both
    are CORS-safelisted), so the answer it asks for does not excuse the token."""
    device: Registered = register(attach=False)
    client = clients.browser()
    before = lab.operator.device(device.dev_id)
    new_id = f"{device.dev_id}9"
    attempts = [
        ("/devices/new", {"devId": new_id}),
        (f"/devices/{device.dev_id}", {"_method": "PUT", "name": "changed"}),
        (f"/devices/{device.dev_id}/sessions", {"job": "inventory"}),
        (f"/devices/{device.dev_id}", {"_method": "DELETE"}),
    ]
    for path, fields in attempts:
        refused = _post(client, path, fields, token, accept)
        assert refused.status_code == 403, (path, refused.text)
        if accept == media.JSON:
            assert problem(refused, 403, "csrf")
        else:
            assert "csrf" in html(refused, 403)
    assert lab.operator.device(device.dev_id) == before
    assert lab.services.store.get_device(new_id) is None
    assert [s for s in lab.operator.pending() if s["DevID"] == device.dev_id] == []


def test_the_right_token_works(clients: Any, register: Any, lab: Lab) -> None:
    device: Registered = register(attach=False)
    browser = clients.browser()
    token = csrf_of(html(browser.get(f"/devices/{device.dev_id}"), 200), "update")
    updated = _post(
        browser,
        f"/devices/{device.dev_id}",
        {"_method": "PUT", "name": "renamed"},
        token,
        BROWSER_ACCEPT,
    )
    assert updated.status_code == 303
    assert lab.operator.device(device.dev_id)["name"] == "renamed"
    # the token belongs to the account: another account's is refused
    rival = csrf_of(html(clients.browser("rival").get("/devices/new"), 200))
    assert rival != token
    refused = _post(
        browser, f"/devices/{device.dev_id}", {"_method": "PUT", "name": "x"}, rival, BROWSER_ACCEPT
    )
    assert refused.status_code == 403
    assert lab.operator.device(device.dev_id)["name"] == "renamed"
