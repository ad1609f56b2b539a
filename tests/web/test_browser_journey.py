"""A user's way through the web page in a real browser, on the real stack and recorded data.

Erin (made by the admin) signs in on the page, adds a paper account, creates the
demo's BTCUSDT ladder, stops it (after a cancelled confirmation) and starts it
again, opens its page and watches its first fill arrive while the first recorded
Binance capture is published as marketdata publishes it, without a reload. She
pauses it there; on the overview the row follows the bot live when it is resumed
from elsewhere. Bob, signing in next, sees none of it. The admin pages show the
users and the audit log. Each page is screenshotted and passes axe-core with no
serious or critical violation.

The data-testid names used here are the page's contract with its tests (web/README.md).
"""

from __future__ import annotations

import asyncio
import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.gateway.test_user_journey import LADDER, publish, recorded_btc
from tests.gateway.world import World, ladder, wait_state
from tests.web.conftest import WAIT_MS, Shots, check_accessibility, log_in, open_page

ERIN = "erin"
ERIN_PASSWORD = "erin-has-a-long-password"
ACCOUNT = "erin-paper"
BOT = "erin-ladder"
"""The id the gateway gives erin's first ladder (``<user>-<strategy>``)."""
FILL_WAIT_MS = 120_000
"""How long the first fill may take once the recorded ticks are published (ms)."""
CENT = Decimal("0.01")
"""BTCUSDT's tick size."""
NO_RELOAD = "window.__tradebusNoReload"
"""A mark set in the page: still there later means the page was not reloaded."""


async def mark(page: Page) -> None:
    """Set the no-reload mark in ``page``."""
    await page.evaluate(f"{NO_RELOAD} = true")


async def still_marked(page: Page) -> bool:
    """True if ``page`` was not reloaded since :func:`mark`."""
    return bool(await page.evaluate(f"{NO_RELOAD} === true"))


@pytest.mark.timeout(300)
async def test_a_user_runs_a_bot_from_the_page_and_watches_its_fills(
    web_world: World, browser: Browser, shots: Shots, data_dir: Path
) -> None:
    world = web_world
    url = world.gateway.url
    created = await world.admin.post(
        "/api/v1/users", json={"id": ERIN, "password": ERIN_PASSWORD, "role": "user"}
    )
    assert created.status_code == 201, created.text
    errors: list[str] = []
    page = await open_page(browser, url, errors)

    # Sign in (the login page is what an unknown visitor gets).
    await expect(page.get_by_test_id("login-submit")).to_be_visible(timeout=WAIT_MS)
    await shots.take(page, "login")
    await check_accessibility(page, "login")
    await log_in(page, ERIN, ERIN_PASSWORD)
    await expect(page.get_by_test_id("nav-admin")).to_have_count(0)

    # A paper account.
    await page.get_by_test_id("nav-accounts").click()
    await expect(page.get_by_test_id("accounts-table")).to_be_visible(timeout=WAIT_MS)
    await page.get_by_test_id("add-paper").click()
    await expect(page.get_by_test_id("account-form")).to_be_visible(timeout=WAIT_MS)
    await page.get_by_test_id("account-form-id").fill(ACCOUNT)
    await page.get_by_test_id("account-form-venue").select_option("paper")
    await page.get_by_test_id("account-form-balances").fill("USDT=10000")
    await check_accessibility(page, "account form")
    await page.get_by_test_id("account-form-submit").click()
    await expect(page.get_by_test_id(f"account-row-{ACCOUNT}")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_test_id(f"balances-{ACCOUNT}")).to_contain_text("USDT")
    await shots.take(page, "accounts")
    await check_accessibility(page, "accounts")

    # The demo's BTCUSDT ladder, created through the form: it starts running.
    await page.get_by_test_id("nav-bots").click()
    await page.get_by_test_id("new-bot").click()
    form = page.get_by_test_id("bot-form")
    await expect(form).to_be_visible(timeout=WAIT_MS)
    await page.get_by_test_id("bot-form-strategy").select_option("ladder")
    await page.get_by_test_id("bot-form-account").select_option(ACCOUNT)
    await page.get_by_test_id("bot-form-symbol").fill("BTCUSDT")
    await page.get_by_test_id("bot-form-params").fill(json.dumps(LADDER, indent=2))
    await shots.take(page, "bot-form")
    await check_accessibility(page, "new bot form")
    await page.get_by_test_id("bot-form-submit").click()
    state = page.get_by_test_id(f"bot-state-{BOT}")
    await expect(page.get_by_test_id(f"bot-row-{BOT}")).to_be_visible(timeout=WAIT_MS)
    await expect(state).to_have_text("running", timeout=WAIT_MS)

    # Stop asks first: cancelling keeps it running; confirming stops it. Then start it.
    await page.get_by_test_id(f"bot-stop-{BOT}").click()
    await page.get_by_test_id("confirm-cancel").click()
    await expect(page.get_by_test_id("confirm-ok")).to_have_count(0)
    await expect(state).to_have_text("running")
    await page.get_by_test_id(f"bot-stop-{BOT}").click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(state).to_have_text("stopped", timeout=WAIT_MS)
    await page.get_by_test_id(f"bot-start-{BOT}").click()
    await expect(state).to_have_text("running", timeout=WAIT_MS)

    # A bot that refuses says why: a disabled one (made through the API) will not start.
    erin_api = await world.gateway.sign_in(ERIN, ERIN_PASSWORD)
    idle = await erin_api.post("/api/v1/bots", json=ladder(ACCOUNT, name="idle", enabled=False))
    assert idle.status_code == 201, idle.text
    idle_id = idle.json()["id"]
    await page.reload()
    await page.get_by_test_id(f"bot-start-{idle_id}").click()
    refusal = page.get_by_test_id(f"bot-row-{idle_id}").get_by_test_id("bot-error")
    await expect(refusal).to_contain_text(f"bot '{idle_id}' is disabled", timeout=WAIT_MS)
    await expect(page.get_by_test_id(f"bot-state-{idle_id}")).to_have_text("stopped")
    await shots.take(page, "bots")
    await check_accessibility(page, "bots overview")

    # Its page: the first fill arrives over the WebSocket while the page stays loaded.
    await page.get_by_test_id(f"bot-link-{BOT}").click()
    await expect(page.get_by_test_id("bot-page")).to_be_visible(timeout=WAIT_MS)
    for part in ("price-chart", "pnl-chart", "fills-table", "orders-table", "strategy-status"):
        await expect(page.get_by_test_id(part)).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_test_id("fill-row")).to_have_count(0)
    await mark(page)
    replay = asyncio.create_task(publish(world, recorded_btc(data_dir)))
    try:
        await expect(page.get_by_test_id("fill-row").first).to_be_visible(timeout=FILL_WAIT_MS)
    finally:
        await replay
    assert await still_marked(page), "the bot page reloaded to show the fill"
    await expect(page.get_by_test_id("order-row").first).to_be_visible(timeout=WAIT_MS)
    fills = (await world.admin.get("/api/v1/history/fills", params={"bot": BOT})).json()
    assert fills["items"], "the page showed a fill the ledger does not hold"
    # to the market's precision (BTCUSDT: tick 0.01, step 0.00001), not the digits it came with
    cells = page.get_by_test_id("fill-row").first.locator("td")
    price, qty = await cells.nth(2).inner_text(), await cells.nth(3).inner_text()
    assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{2}", price), price
    assert re.fullmatch(r"\d+\.\d{5}", qty), qty
    ledger_prices = {f"{Decimal(f['price']).quantize(Decimal('0.01')):,}" for f in fills["items"]}
    assert price in ledger_prices, (price, ledger_prices)
    # the ladder's own status, as the host reports it: resting levels, take-profit price
    details = (await world.admin.get(f"/api/v1/bots/{BOT}")).json()["status"]["details"]
    take_profit = details["take_profit_price"]
    shown = (
        "–" if take_profit is None else f"{Decimal(take_profit).quantize(CENT, ROUND_HALF_UP):,}"
    )
    await expect(page.get_by_test_id("detail-take_profit_price")).to_have_text(
        shown, timeout=WAIT_MS
    )
    await expect(page.get_by_test_id("detail-open_levels")).to_have_text(re.compile(r"^\d+$"))
    await shots.take(page, "bot")
    await check_accessibility(page, "bot")

    # Pause it on its page: the state follows.
    await page.get_by_test_id(f"bot-pause-{BOT}").click()
    await expect(page.get_by_test_id(f"bot-state-{BOT}")).to_have_text("paused", timeout=WAIT_MS)
    erin = await world.gateway.sign_in(ERIN, ERIN_PASSWORD)
    await wait_state(erin, BOT, "paused")

    # The overview row follows the bot live when it is resumed from elsewhere (the API).
    await page.get_by_test_id("nav-bots").click()
    await expect(state).to_have_text("paused", timeout=WAIT_MS)
    await mark(page)
    resumed = await erin.post(f"/api/v1/bots/{BOT}/resume")
    assert resumed.status_code == 200, resumed.text
    await expect(state).to_have_text("running", timeout=WAIT_MS)
    assert await still_marked(page), "the overview reloaded to show the new state"

    # Bob (with a ladder of his own) signs in next: his bot, none of erin's, no admin pages.
    bobs = await world.bob.post("/api/v1/bots", json=ladder("bob-paper", enabled=False))
    assert bobs.status_code == 201, bobs.text
    bob_page = await open_page(browser, url, errors)
    await log_in(bob_page, world.bob.user, world.bob.password)
    await expect(bob_page.get_by_test_id("bots-table")).to_be_visible(timeout=WAIT_MS)
    await expect(bob_page.get_by_test_id(f"bot-row-{bobs.json()['id']}")).to_be_visible()
    await expect(bob_page.get_by_test_id(f"bot-row-{BOT}")).to_have_count(0)
    await expect(bob_page.get_by_test_id("nav-admin")).to_have_count(0)
    await shots.take(bob_page, "bots-other-user")
    await bob_page.get_by_test_id("nav-accounts").click()
    await expect(bob_page.get_by_test_id("accounts-table")).to_be_visible(timeout=WAIT_MS)
    await expect(bob_page.get_by_test_id("account-row-bob-paper")).to_be_visible()
    await expect(bob_page.get_by_test_id(f"account-row-{ACCOUNT}")).to_have_count(0)
    await bob_page.goto(f"{url}/#/bots/{BOT}")
    await expect(bob_page.get_by_test_id("fill-row")).to_have_count(0)
    await expect(bob_page.get_by_test_id(f"bot-state-{BOT}")).to_have_count(0)

    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.mark.timeout(180)
async def test_admin_pages_and_a_refused_login(
    web_world: World, browser: Browser, shots: Shots
) -> None:
    world = web_world
    errors: list[str] = []
    page = await open_page(browser, world.gateway.url, errors)
    admin = world.admin

    await expect(page.get_by_test_id("login-user")).to_be_visible(timeout=WAIT_MS)
    await page.get_by_test_id("login-user").fill(admin.user)
    await page.get_by_test_id("login-password").fill("not-the-password")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_test_id("whoami")).to_have_count(0)
    await check_accessibility(page, "refused login")

    await log_in(page, admin.user, admin.password)
    await page.get_by_test_id("nav-admin").click()
    await page.goto(f"{world.gateway.url}/#/admin/users")
    users = page.get_by_test_id("users-table")
    await expect(users).to_be_visible(timeout=WAIT_MS)
    for person in ("alice", "bob"):
        await expect(users).to_contain_text(person, timeout=WAIT_MS)
    await shots.take(page, "admin-users")
    await check_accessibility(page, "admin users")

    await page.goto(f"{world.gateway.url}/#/admin/audit")
    audit = page.get_by_test_id("audit-table")
    await expect(audit).to_be_visible(timeout=WAIT_MS)
    await expect(audit).to_contain_text("session.login", timeout=WAIT_MS)
    await shots.take(page, "admin-audit")
    await check_accessibility(page, "admin audit")

    # Logging out ends the session: the login page again, and the API refuses the old route.
    await page.get_by_test_id("logout").click()
    await expect(page.get_by_test_id("login-user")).to_be_visible(timeout=WAIT_MS)
    await page.goto(f"{world.gateway.url}/#/admin/users")
    await expect(page.get_by_test_id("login-user")).to_be_visible(timeout=WAIT_MS)
    # the login page keeps the wanted route (the address follows a moment after the page)
    await expect(page).to_have_url(re.compile(r"#/login\?next=%2Fadmin%2Fusers"), timeout=WAIT_MS)

    assert not errors, f"uncaught errors in the page: {errors}"
