"""The accounts page, the parameters editor and a short session, in a real browser.

On the real stack, with access tokens of 4 seconds (the page must renew its
session silently all along): alice adds a Backpack account through the form,
whose key fields are the ones the gateway says Backpack requires (OKX shows its
passphrase too); once saved the keys appear nowhere on the page. She engages
and releases her paper account's kill switch, and execution agrees each time.
On her API-made ladder's page a bad parameter is refused with the API's error
under that field, and a good one is saved as the bot's next revision. By then
several token lifetimes have passed: the page is still signed in with a renewed
token, and its live rows still follow the bot.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.gateway.conftest import Session
from tests.gateway.world import World, ladder, running_world
from tests.web.conftest import WAIT_MS, Shots, check_accessibility, log_in, open_page

TOKEN_SECONDS = 4
"""The access tokens' lifetime in this test (the default is 15 minutes)."""
KEY = "bpk-" + secrets.token_hex(8)
SECRET = "bps-" + secrets.token_hex(16)
"""Alice's Backpack key and secret: markers that must never come back to the page."""


@pytest.fixture
async def short_world(
    nats_url: str, database_url: str, tmp_path: Path, web_dist: Path
) -> AsyncIterator[World]:
    """The web page's world with access tokens of :data:`TOKEN_SECONDS`."""
    async with running_world(
        nats_url,
        database_url,
        tmp_path,
        web_dir=str(web_dist),
        access_token_seconds=TOKEN_SECONDS,
    ) as world:
        yield world


async def kill_switch(alice: Session, account: str) -> bool:
    """Whether execution says ``account``'s kill switch is engaged."""
    answer = await alice.post(f"/api/v1/accounts/{account}/killswitch", json={"action": "status"})
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["engaged"])


async def access_token(page: Page) -> str:
    """The access token the page holds now."""
    return str(await page.evaluate("JSON.parse(sessionStorage.getItem('tradebus.session')).access"))


async def test_accounts_kill_switch_parameters_and_a_short_session_on_the_page(
    short_world: World, browser: Browser, shots: Shots
) -> None:
    world = short_world
    password = world.alice.password

    async def api() -> Session:
        """alice through the API, freshly signed in (her tokens last seconds here)."""
        return await world.gateway.sign_in("alice", password)

    created = await (await api()).post("/api/v1/bots", json=ladder("alice-paper"))
    assert created.status_code == 201, created.text
    bot = created.json()["id"]
    errors: list[str] = []
    page = await open_page(browser, world.gateway.url, errors)
    await log_in(page, "alice", password)
    first_token = await access_token(page)

    # An exchange account: the fields the venue requires, the keys never shown again.
    await page.get_by_test_id("nav-accounts").click()
    await expect(page.get_by_test_id("account-row-alice-paper")).to_be_visible(timeout=WAIT_MS)
    await page.get_by_test_id("add-paper").click()
    venue = page.get_by_test_id("account-form-venue")
    await venue.select_option("okx")
    await expect(page.get_by_test_id("account-form-key-password")).to_be_visible(timeout=WAIT_MS)
    await venue.select_option("backpack")
    await expect(page.get_by_test_id("account-form-key-password")).to_have_count(0)
    await expect(page.get_by_test_id("account-form-key-secret")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_test_id("account-form-market-data")).to_have_value("backpack")
    await page.get_by_test_id("account-form-id").fill("alice-bp")
    await page.get_by_test_id("account-form-key-apiKey").fill(KEY)
    await page.get_by_test_id("account-form-key-secret").fill(SECRET)
    await check_accessibility(page, "exchange account form")
    await page.get_by_test_id("account-form-submit").click()
    row = page.get_by_test_id("account-row-alice-bp")
    await expect(row).to_be_visible(timeout=WAIT_MS)
    await expect(row).to_contain_text("backpack")
    html = await page.content()
    assert KEY not in html and SECRET not in html, "a saved key is shown again"
    stored = (await (await api()).get("/api/v1/accounts/alice-bp")).json()
    assert stored["account"]["venue"] == "backpack", stored
    assert KEY not in str(stored) and SECRET not in str(stored)

    # The kill switch: engaged, then released, from the page; execution agrees each time.
    # (the box flips on the click; the state text is execution's answer)
    switch = page.get_by_test_id("killswitch-alice-paper")
    state = page.get_by_test_id("killswitch-state-alice-paper")
    await expect(state).to_have_text("off", timeout=WAIT_MS)
    await switch.click()
    await expect(state).to_contain_text("engaged", timeout=WAIT_MS)
    await expect(switch).to_be_checked()
    assert await kill_switch(await api(), "alice-paper")
    await shots.take(page, "accounts-kill-switch")
    await switch.click()
    await expect(state).to_have_text("off", timeout=WAIT_MS)
    await expect(switch).not_to_be_checked()
    assert not await kill_switch(await api(), "alice-paper")

    # Parameters: the API's field-named error under the field, then a saved revision.
    await page.goto(f"{world.gateway.url}/#/bots/{bot}")
    editor = page.get_by_test_id("params-editor")
    await expect(editor).to_contain_text("revision 1", timeout=WAIT_MS)
    total = editor.locator("input[name='total_quote']")
    await total.fill("-5")
    await page.get_by_test_id("params-save").click()
    problem = page.get_by_test_id("field-error-params.total_quote")
    await expect(problem).to_be_visible(timeout=WAIT_MS)
    await expect(problem).not_to_be_empty()
    await shots.take(page, "bot-params-error")
    await check_accessibility(page, "parameters with an error")
    spec = (await (await api()).get(f"/api/v1/bots/{bot}")).json()
    assert spec["revision"] == 1 and spec["spec"]["params"]["total_quote"] == "1000", spec
    await total.fill("1500")
    await page.get_by_test_id("params-save").click()
    await expect(editor).to_contain_text("revision 2", timeout=WAIT_MS)
    await expect(problem).to_have_count(0)
    spec = (await (await api()).get(f"/api/v1/bots/{bot}")).json()
    assert spec["revision"] == 2 and spec["spec"]["params"]["total_quote"] == "1500", spec

    # Token lifetimes later: still signed in, renewed, and the live rows still come.
    await page.get_by_test_id("nav-bots").click()
    state = page.get_by_test_id(f"bot-state-{bot}")
    await expect(state).to_have_text("running", timeout=WAIT_MS)
    await page.wait_for_timeout(TOKEN_SECONDS * 1000)  # at least one more lifetime
    assert await access_token(page) != first_token, "the access token was not renewed"
    paused = await (await api()).post(f"/api/v1/bots/{bot}/pause")
    assert paused.status_code == 200, paused.text
    await expect(state).to_have_text("paused", timeout=WAIT_MS)
    assert "#/login" not in page.url, page.url
    assert not errors, f"uncaught errors in the page: {errors}"
