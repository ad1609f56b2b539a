"""The Flatten button of a bot's page, in a real browser on the real stack.

Alice's ladder holds a bought level; on its page Flatten asks first (cancelling
keeps the bot running); confirmed, the page shows the bot ``flattening``, and,
once the paper venue has filled the market sell, ``stopped``, without a reload;
the API agrees that the position is gone. The page passes axe-core with the
question open. A dry-run bot's page says that its orders are simulated, with counts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.gateway.world import World, ladder, wait_state
from tests.support.services import eventually
from tests.web.conftest import WAIT_MS, check_accessibility, log_in, open_page


@pytest.mark.timeout(180)
async def test_flatten_from_the_bot_page(web_world: World, browser: Browser) -> None:
    world, alice = web_world, web_world.alice
    created = await alice.post("/api/v1/bots", json=ladder("alice-paper"))
    assert created.status_code == 201, created.text
    bot = created.json()["id"]
    await wait_state(alice, bot, "running")
    tick = world.bus.tick

    async def status() -> dict[str, Any]:
        shown: dict[str, Any] = (await alice.get(f"/api/v1/bots/{bot}")).json()["status"] or {}
        return shown

    await tick("60000")

    async def bought() -> bool:
        await tick("59800")
        return Decimal((await status()).get("position", "0")) > 0

    await eventually(bought, what="a level to fill")

    errors: list[str] = []
    page = await open_page(browser, world.gateway.url, errors)
    await log_in(page, alice.user, alice.password)
    await page.goto(f"{world.gateway.url}/#/bots/{bot}")
    await expect(page.get_by_test_id("bot-page")).to_be_visible(timeout=WAIT_MS)
    state = page.get_by_test_id(f"bot-state-{bot}")
    await expect(state).to_have_text("running", timeout=WAIT_MS)
    await expect(page.get_by_test_id(f"bot-mode-{bot}")).to_have_text("sent to the account")

    await page.get_by_test_id(f"bot-flatten-{bot}").click()
    await expect(page.get_by_test_id("confirm-ok")).to_be_visible()
    await check_accessibility(page, "flatten question")
    await page.get_by_test_id("confirm-cancel").click()
    await expect(page.get_by_test_id("confirm-ok")).to_have_count(0)
    await expect(state).to_have_text("running")

    await page.get_by_test_id(f"bot-flatten-{bot}").click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(state).to_have_text("flattening", timeout=WAIT_MS)

    async def stopped() -> bool:
        await tick("59790")
        return (await status()).get("state") == "stopped"

    await eventually(stopped, what="the close to fill")
    await expect(state).to_have_text("stopped", timeout=WAIT_MS)
    assert Decimal((await status())["position"]) == 0

    # a dry-run bot's page says so
    dry = await alice.post(
        "/api/v1/bots", json=ladder("alice-paper", name="dry", execute_trades=False)
    )
    assert dry.status_code == 201, dry.text
    dry_id = dry.json()["id"]
    await wait_state(alice, dry_id, "running")

    async def placed() -> bool:
        await tick("60000")  # the first places 4 simulated buys; later ones change nothing
        shown = (await alice.get(f"/api/v1/bots/{dry_id}")).json()["status"] or {}
        return bool(shown.get("details", {}).get("dry_run_intents") == 4)

    await eventually(placed, what="the dry-run bot's simulated buys")
    await page.goto(f"{world.gateway.url}/#/bots/{dry_id}")
    await expect(page.get_by_test_id(f"bot-mode-{dry_id}")).to_have_text(
        "dry run: simulated, never sent to the account (4 intents, 0 fills)", timeout=WAIT_MS
    )
    await check_accessibility(page, "dry-run bot")
    assert not errors, f"uncaught errors in the page: {errors}"
