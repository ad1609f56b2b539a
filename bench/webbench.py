"""Benchmark: the bots overview page with 500 bots streaming status, in a real browser.

Setup: as :mod:`bench.gatewaybench`: a local nats-server and PostgreSQL
(:class:`~tradebus.cli.stack.LocalStack`), the ledger migrated, and the real
``tradebus-gateway`` process serving the built page (``TRADEBUS_WEB_DIR`` =
``web/dist``; it must be built). Data: one user owning one paper account and
``BOTS`` (500) ladder bots in KV ``bots`` (no strategy host runs; the statuses
come only from this bench).

Browser: headless Debian Chromium (``/usr/bin/chromium``) under Playwright
(Python). The user signs in through the login form and opens ``#/bots``; a
``MutationObserver`` on ``bots-table`` records, for every change under a
``bot-open-<id>`` cell, the bot, the cell's text and the wall-clock time
(``performance.timeOrigin + performance.now()``, corrected by its measured
offset from ``Date.now()``), and a ``PerformanceObserver`` counts the
main thread's long tasks (> 50 ms). A wrapper of ``WebSocket`` installed before
the page's scripts records when each status frame reaches the page (its
``message`` event, before the page's handler; the earliest of any socket), and a
second client of the same user in this process (``websockets``) the time the
same frames reach it, to tell the gateway's share of the latency from the
page's.

Load: ``BotStatusChanged`` messages on ``bot.status.<user>.<bot>`` (core NATS,
as a strategy host publishes them) for a random bot each, at ``rate`` per s for
``WARMUP + seconds`` s, then waits until the page's marks stay unchanged for
``QUIET`` s; each carries a marker ``open_orders = n`` (a counter,
shown in the row's ``bot-open-<id>`` cell). The latency of message ``n`` is the
time its marker appeared in the DOM less its publish time (``time.time()``;
same machine, same clock), for the messages published after the warm-up. A
marker overwritten by a later status of the same bot before the page rendered
it is never shown; the rows say how many were seen. The time is that of the
DOM change (the observer's callback), not of the paint.

Rows: **web: status -> row update p50/p99, 500 bots** (ms); the rate achieved
and the long tasks in the details. Everything (both servers, the gateway, the
browser and this publisher) shares the machine's cores. Run:
``python -m bench.webbench [--seconds 10] [--rate 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from playwright.async_api import async_playwright
from websockets.asyncio.client import connect

from bench.gatewaystack import gateway_stack, pct, print_rows, row, say
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.messages import BotStatus, BotStatusChanged
from tradebus.control.botstore import create_spec, open_bots
from tradebus.ledger.entries import deposit_entries
from tradebus.ledger.passwords import Passwords
from tradebus.ledger.pool import create_pool
from tradebus.ledger.store import Ledger
from tradebus.ledger.users import Users
from tradebus.strategies.registry import BotSpec

REPO = Path(__file__).resolve().parents[1]
WEB_DIST = REPO / "web" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
USER = "webbench"
BOTS = 500
WARMUP = 2.0
QUIET = 2.0
"""The page caught up when its marks have not changed for this long after the last publish."""
DRAIN_MAX = 120.0
"""At most this long waiting for it."""
SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC

ARRIVALS = """
(() => {
  const Native = window.WebSocket;
  window.__arrivals = [];
  window.__sockets = 0;
  const re = /"open_orders":(\\d+)/;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const k = ++window.__sockets;
      this.addEventListener('message', (ev) => {
        const m = typeof ev.data === 'string' ? re.exec(ev.data) : null;
        const t = performance.timeOrigin + performance.now();
        if (m) window.__arrivals.push([Number(m[1]), t, k]);
      });
    }
  };
})();
"""
"""Installed before the page's scripts: the time each status frame reaches the page (the
``message`` event's dispatch, before the page's own handler), by its marker."""

OBSERVE = """
() => {
  const table = document.querySelector('[data-testid="bots-table"]');
  const marks = [];
  window.__marks = marks;
  const cell = (node) => {
    const el = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
    return el ? el.closest('[data-testid^="bot-open-"]') : null;
  };
  new MutationObserver((records) => {
    const t = performance.timeOrigin + performance.now();
    for (const r of records) {
      const c = cell(r.target);
      if (c) marks.push([c.dataset.testid.slice(9), c.textContent, t]);
    }
  }).observe(table, {subtree: true, childList: true, characterData: true});
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push([e.startTime, e.duration]);
  }).observe({type: 'longtask', buffered: true});
  return (performance.timeOrigin + performance.now()) - Date.now();
}
"""


def bot_id(b: int) -> str:
    return f"{USER}-ladder-{b:03}"


async def seed(database_url: str, nc: nats.NATS) -> str:
    """The user, their paper account and ``BOTS`` bot specs; the user's password."""
    pool = await create_pool(database_url)
    try:
        password = secrets.token_urlsafe(12)
        user = UserId(USER)
        await Users(pool).create(user, "user", await Passwords().hash(password), "bench", T0)
        account = AccountId(f"{USER}-paper")
        deposits = deposit_entries(account, {"USDT": Decimal(10**9)}, "initial")
        await Ledger(pool).ensure_account(account, user, "paper", deposits, T0)
        kv = await open_bots(nc.jetstream())
        for b in range(BOTS):
            spec = BotSpec(id=BotId(bot_id(b)), user=user, account=account,
                           strategy="ladder", venue="binance", symbol="BTCUSDT")  # fmt: skip
            await create_spec(kv, spec)
        return password
    finally:
        await pool.close()


def status_message(bot: str, n: int) -> tuple[str, bytes]:
    """The subject and bytes of a ``BotStatusChanged`` of ``bot`` with marker ``n``."""
    status = BotStatus(
        bot=bot, user=USER, account=f"{USER}-paper", strategy="ladder", venue="binance",
        symbol="BTCUSDT", state="running", phase="buying", open_orders=n, orders_placed=n,
        position=Decimal("0.001"), last_price=Decimal("60000.10"), host="bench",
    )  # fmt: skip
    changed = BotStatusChanged(status=status, ts_event=time.time_ns())
    return subjects.bot_status(USER, bot), encode(changed)


async def publish(
    nc: nats.NATS, seconds: float, rate: float, progress: Callable[[str], None]
) -> tuple[dict[int, float], int, float]:
    """Statuses at ``rate``/s for ``WARMUP + seconds`` s; ``({marker: publish time s} of the
    measured ones, published in all, the measured window s)``."""
    rng = random.Random(17)
    sent: dict[int, float] = {}
    n = 0
    start = time.monotonic()
    measure_from: float | None = None
    while (now := time.monotonic()) - start < WARMUP + seconds:
        due = start + n / rate
        if due > now:
            await asyncio.sleep(due - now)
        n += 1
        subject, data = status_message(bot_id(rng.randrange(BOTS)), n)
        t = time.time()
        await nc.publish(subject, data)
        if time.monotonic() - start >= WARMUP:
            if measure_from is None:
                measure_from = time.monotonic()
            sent[n] = t
        if n % 500 == 0:
            progress(f"web: {n:,} statuses published")
            await nc.flush()
    await nc.flush()
    window = time.monotonic() - (measure_from or start)
    return sent, n, window


async def python_client(base: str, password: str, got: dict[int, float]) -> None:
    """A second client of the user (``websockets``, in this process): the time each status
    frame's marker arrives (``time.time()``), into ``got``, until cancelled."""
    async with (
        aiohttp.ClientSession(base_url=base) as http,
        http.post("/api/v1/auth/login", json={"user": USER, "password": password}) as answer,
    ):
        answer.raise_for_status()
        token = (await answer.json())["access_token"]
    url = base.replace("http://", "ws://") + "/api/v1/events"
    async with connect(url, max_queue=None) as ws:
        await ws.send(msgspec.json.encode({"type": "auth", "token": token}).decode())
        async for data in ws:
            now = time.time()
            frame = msgspec.json.decode(data)
            if frame.get("type") == "status" and frame.get("status"):
                got.setdefault(int(frame["status"]["open_orders"]), now)


async def caught_up(page: Any) -> float:
    """Wait until the page's marks stop changing for ``QUIET`` s (at most ``DRAIN_MAX``);
    the seconds it took, less the quiet time."""
    start = time.monotonic()
    last, since = -1, start
    while (now := time.monotonic()) - start < DRAIN_MAX:
        count = int(await page.evaluate("window.__marks.length"))
        if count != last:
            last, since = count, now
        elif now - since >= QUIET:
            break
        await asyncio.sleep(0.25)
    return since - start


async def run(
    seconds: float = 10.0, rate: float = 200.0, progress: Callable[[str], None] = say
) -> list[dict[str, Any]]:
    """Start the stack, the gateway with the page and the browser; publish; the rows."""
    if not (WEB_DIST / "index.html").is_file():
        raise RuntimeError(f"the web page is not built ({WEB_DIST}/index.html missing)")
    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM} not found (apt-get install chromium)")
    async with gateway_stack("webbench-", seed, web_dir=WEB_DIST) as running:
        nc, base, password = running.nc, running.base, running.seeded
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                page = await browser.new_page()
                await page.add_init_script(ARRIVALS)
                await page.goto(f"{base}/#/login")
                await page.get_by_test_id("login-user").fill(USER)
                await page.get_by_test_id("login-password").fill(password)
                await page.get_by_test_id("login-submit").click()
                await page.get_by_test_id("whoami").wait_for(timeout=30_000)
                await page.goto(f"{base}/#/bots")
                await page.get_by_test_id(f"bot-row-{bot_id(BOTS - 1)}").wait_for(timeout=30_000)
                await asyncio.sleep(1.0)  # the WebSocket subscribed
                offset_ms = float(await page.evaluate(OBSERVE))
                py_got: dict[int, float] = {}
                py_task = asyncio.create_task(python_client(base, password, py_got))
                await asyncio.sleep(1.0)
                progress(f"web: statuses at {rate:.0f}/s for {WARMUP + seconds:.0f} s")
                t_start = await page.evaluate("performance.now()")
                sent, published, window = await publish(nc, seconds, rate, progress)
                measured = dict(sent)
                drain = await caught_up(page)
                marks = await page.evaluate("window.__marks")
                arrivals = await page.evaluate("window.__arrivals")
                sockets = int(await page.evaluate("window.__sockets"))
                py_task.cancel()
                long_tasks = await page.evaluate("window.__long")
                rows_seen = await page.locator('[data-testid^="bot-row-"]').count()
            finally:
                await browser.close()
        lat: list[float] = []
        for _bot, text, t_dom in marks:
            try:
                n = int(str(text).strip())
            except ValueError:
                continue
            if n in sent:
                lat.append(t_dom - offset_ms - sent.pop(n) * 1000)
        seen = len(lat)
        times = sorted(t for _n, t, _k in arrivals)
        span = (times[-1] - times[0]) / 1000 if len(times) > 1 else float("nan")
        py_lat = [(t - measured[n]) * 1000 for n, t in py_got.items() if n in measured]
        first: dict[int, float] = {}
        for n, t, _k in arrivals:
            if n in measured:
                first[n] = min(t, first.get(n, t))
        arrive = [t - offset_ms - measured[n] * 1000 for n, t in first.items()]
        total = seen + len(sent)
        long_in = [d for s, d in long_tasks if s >= t_start]
        detail = (
            f"{total / window:,.0f} statuses/s offered over {window:.1f} s ({published:,}"
            f" published incl. {WARMUP:.0f} s warm-up) to random bots of {rows_seen} rows;"
            f" {seen:,} of {total:,} markers seen in the DOM (the rest overwritten before a"
            f" render); main-thread long tasks: {len(long_in)}"
            f" (total {sum(long_in):,.0f} ms, longest {max(long_in, default=0):.0f} ms);"
            f" frame reaches the page (WebSocket message event) p50 {pct(arrive, 0.5):,.0f}"
            f" ms, p99 {pct(arrive, 0.99):,.0f} ms ({len(arrive):,} markers,"
            f" {len(arrivals):,} frames on {sockets} WebSocket(s)); caught up"
            f" {drain:.1f} s after the last publish (the page took {len(times) / span:,.0f}"
            f" frames/s); the same frames to a Python"
            f" WebSocket client of the user: p50 {pct(py_lat, 0.5):,.1f} ms, p99"
            f" {pct(py_lat, 0.99):,.1f} ms ({len(py_lat):,} markers)"
        )
        return [
            row(f"web: status -> row update p50, {BOTS} bots", round(pct(lat, 0.5), 1),
                "ms", detail),
            row(f"web: status -> row update p99, {BOTS} bots", round(pct(lat, 0.99), 1),
                "ms", f"max {max(lat, default=float('nan')):.0f} ms; headless Chromium,"
                " DOM change (not paint) vs publish wall time"),
        ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds")
    p.add_argument("--rate", type=float, default=200.0, help="statuses/s")
    a = p.parse_args()
    print_rows(asyncio.run(run(a.seconds, a.rate)))


if __name__ == "__main__":
    main()
