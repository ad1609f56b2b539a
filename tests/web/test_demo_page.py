"""``make demo`` as a newcomer meets it: the printed URL, the printed login, the page.

``tradebus demo --data <recorded data> --stay`` (what ``make demo DATA=...`` runs
on a terminal) replays the recorded Binance captures at full speed and then keeps
the stack up. A person opens the printed web page in Chromium, signs in with the
printed login, sees their demo bots running, opens a bot's page with its price
chart and the fills of the replay, and pauses and resumes it from its buttons. The
admin's API answer holds every demo bot. Ctrl+C then stops everything in order and
prints the summary.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.e2e.test_demo import (
    REPO,
    SPECS,
    TRADEBUS,
    assert_all_gone,
    exit_log,
    started_pids,
)
from tests.web.conftest import WAIT_MS, Shots, check_accessibility, log_in, open_page

STARTUP_S = 300
"""How long the demo may take to start, replay and settle (s)."""
LOGIN_LINE = re.compile(r"^web page: (http://127\.0\.0\.1:\d+)/\s+log in with: (.+)$", re.M)


async def read_until(
    proc: asyncio.subprocess.Process, lines: list[str], text: str, timeout: float
) -> str:
    """Read the demo's output into ``lines`` until a line holds ``text``; return that line."""
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), deadline - loop.time())
        if not line:
            raise AssertionError(f"the demo ended before {text!r}:\n{''.join(lines)}")
        lines.append(line.decode())
        if text in lines[-1]:
            return lines[-1]


def printed_logins(output: str) -> tuple[str, dict[str, str]]:
    """The web page's URL and the ``user / password`` logins the demo printed with it."""
    found = LOGIN_LINE.search(output)
    assert found, f"the demo printed no web page line:\n{output}"
    pairs = (pair.split(" / ") for pair in found.group(2).split(", "))
    return found.group(1), {user: password for user, password in pairs}


@pytest.mark.slow  # make test-all: the whole demo in a browser (~40 s); make test has the
# demo end to end (tests/e2e/test_demo.py) and the page on the services (this folder)
async def test_the_demo_page_shows_the_demo_bots_trading_and_steers_one(
    data_dir: Path, tmp_path: Path, browser: Browser, shots: Shots, web_dist: Path
) -> None:
    var = tmp_path / "var"
    proc = await asyncio.create_subprocess_exec(
        TRADEBUS,
        "demo",
        "--data",
        str(data_dir),
        "--var",
        str(var),
        "--stay",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")},
    )
    lines: list[str] = []
    errors: list[str] = []
    try:
        stays = await read_until(proc, lines, "the stack stays up", timeout=STARTUP_S)
        output = "".join(lines)
        url, logins = printed_logins(output)
        assert stays.strip() == (
            f"replay finished; the stack stays up for the web page and the API at {url}/"
            " \N{EM DASH} Ctrl+C stops it"
        )
        assert "== bots (ledger) ==" not in output  # nothing stopped yet
        kept = {
            user: password
            for user, password, _ in (
                ln.split() for ln in (var / "gateway" / "logins").read_text().splitlines()
            )
        }
        assert logins == kept, "the printed logins are the ones kept in var/gateway/logins"

        # the admin's API answer: every demo bot, running, well after the replay ended
        await asyncio.sleep(2)
        assert proc.returncode is None
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answer = await client.post(
                "/api/v1/auth/login", json={"user": "admin", "password": logins["admin"]}
            )
            assert answer.status_code == 200, answer.text
            admin = {"authorization": f"Bearer {answer.json()['access_token']}"}
            bots = (await client.get("/api/v1/bots", headers=admin)).json()
            assert sorted(b["id"] for b in bots) == sorted(s.id for s in SPECS), bots
            assert all(b["status"]["state"] == "running" for b in bots), bots
            # alice's bots, and which of them traded in the replay
            mine = sorted(s.id for s in SPECS if s.user == "alice")
            traded = [
                bot
                for bot in mine
                if (
                    await client.get(
                        "/api/v1/history/fills", params={"bot": bot, "limit": 1}, headers=admin
                    )
                ).json()["items"]
            ]
        assert traded, f"none of alice's demo bots {mine} traded in the replay"
        bot = traded[0]

        # alice opens the printed page and signs in with the printed login
        page = await open_page(browser, url, errors)
        await log_in(page, "alice", logins["alice"])
        await expect(page.get_by_test_id("bots-table")).to_be_visible(timeout=WAIT_MS)
        for mine_bot in mine:
            state = page.get_by_test_id(f"bot-state-{mine_bot}")
            await expect(state).to_have_text("running", timeout=WAIT_MS)
        await expect(page.locator("[data-testid^='bot-row-']")).to_have_count(len(mine))
        await shots.take(page, "demo-bots")
        await check_accessibility(page, "demo bots overview")

        # the bot's page: its chart and the replay's fills
        await page.get_by_test_id(f"bot-link-{bot}").click()
        await expect(page.get_by_test_id("bot-page")).to_be_visible(timeout=WAIT_MS)
        await expect(page.get_by_test_id("price-chart")).to_be_visible(timeout=WAIT_MS)
        await expect(page.get_by_test_id("price-chart").locator("canvas").first).to_be_visible()
        await expect(page.get_by_test_id("fill-row").first).to_be_visible(timeout=WAIT_MS)
        await shots.take(page, "demo-bot")
        await check_accessibility(page, "demo bot")

        # pause and resume it from its buttons
        state = page.get_by_test_id(f"bot-state-{bot}")
        await page.get_by_test_id(f"bot-pause-{bot}").click()
        await expect(state).to_have_text("paused", timeout=WAIT_MS)
        await page.get_by_test_id(f"bot-resume-{bot}").click()
        await expect(state).to_have_text("running", timeout=WAIT_MS)
        await page.context.close()

        proc.send_signal(signal.SIGINT)
        assert proc.stdout is not None
        rest = await asyncio.wait_for(proc.stdout.read(), 120)
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "".join(lines) + rest.decode()
    assert code == 0, output
    assert "interrupted: shutting down cleanly" in output
    assert "stopping bots (cancel_on_exit)" in output
    assert "== bots (ledger) ==" in output and "== bot status ==" in output
    assert all(s.id in output.split("== bot status ==", 1)[1] for s in SPECS), output
    assert re.search(r"alice-paper\s+OK", output) and "DRIFT" not in output, output
    assert "services exited with errors" not in output
    assert exit_log(var, "strategy")["open_orders"] == 0
    assert_all_gone(started_pids(output))
    assert not errors, f"uncaught errors in the page: {errors}"
