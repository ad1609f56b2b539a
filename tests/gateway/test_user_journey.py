"""A new user's whole way through the API, on the real services and real recorded data.

An admin creates ``erin``; she signs in, adds a paper account, creates a
ladder bot and starts it; the BTCUSDT ticks of the first recorded Binance
capture (``shared/data``) are published as marketdata publishes them; she
watches her orders and fills arrive on the WebSocket, finds the same ones
in her history and P&L, pauses the bot, and the audit log holds every state
change she made. Bob, signed in beside her, sees none of it; when erin
deletes her account, its bot stops and is gone.

Everything is real: PostgreSQL, NATS, execution, a strategy host and the
gateway (:mod:`tests.gateway.world`), driven over HTTP and a WebSocket the
way a program of hers would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.gateway.world import World, wait_state, world
from tests.support.data import BTC_RAW, parse_ticks
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.readers import read_frames

__all__ = ["world"]  # the fixture

ERIN = "erin"
ERIN_PASSWORD = "erin-has-a-long-password"
ACCOUNT = "erin-paper"
LADDER = {  # the demo's BTC ladder (deploy/config/bots.yaml): fills on the recorded window
    "total_quote": "2000",
    "order_count": 5,
    "max_drop_pct": "0.3",
    "increment_pct": "20",
    "take_profit_pct": "0.08",
    "no_fill_restart_minutes": "3",
}


def recorded_btc(data_dir: Path) -> list[TradeTick | QuoteTick]:
    """Every trade and quote of the first BTCUSDT capture, parsed as marketdata parses it."""
    return parse_ticks(
        read_frames(data_dir / BTC_RAW[0]), MarketCatalog.load(default_markets_path())
    )


async def publish(world: World, ticks: list[TradeTick | QuoteTick]) -> None:
    """Publish ``ticks`` on the market-data subjects, in order, as marketdata does."""
    nc = world.bus.nc
    for n, tick in enumerate(ticks):
        if isinstance(tick, TradeTick):
            subject = subjects.md_trade(tick.venue, tick.symbol)
        else:
            subject = subjects.md_quote(tick.venue, tick.symbol)
        await nc.publish(subject, encode(tick))
        if n % 500 == 0:
            await nc.flush()
    await nc.flush()


class Watcher:
    """A WebSocket client of ``/api/v1/events`` reading every frame in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            self.frames.append(json.loads(raw))

    def orders(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The ``order`` frames (their ``event``), of one event type if ``kind`` is given."""
        events = [f["event"] for f in self.frames if f["type"] == "order"]
        return [e for e in events if kind is None or e["type"] == kind]

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await self._reader


@contextlib.asynccontextmanager
async def watching(world: World, token: str) -> AsyncIterator[Watcher]:
    """An authenticated events client for ``token``, ready."""
    url = world.gateway.url.replace("http://", "ws://") + "/api/v1/events"
    ws = await connect(url, open_timeout=10)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    watcher = Watcher(ws)
    try:
        await eventually(
            lambda: any(f["type"] == "ready" for f in watcher.frames), what="events ready"
        )
        yield watcher
    finally:
        await watcher.close()


@pytest.mark.timeout(300)
async def test_a_new_user_runs_a_bot_and_watches_its_fills(world: World, data_dir: Path) -> None:
    admin, bob = world.admin, world.bob
    created = await admin.post(
        "/api/v1/users", json={"id": ERIN, "password": ERIN_PASSWORD, "role": "user"}
    )
    assert created.status_code == 201, created.text
    erin = await world.gateway.sign_in(ERIN, ERIN_PASSWORD)

    added = await erin.post("/api/v1/accounts", json={"id": ACCOUNT, "balances": {"USDT": "10000"}})
    assert added.status_code == 201, added.text
    assert added.json()["sync"]["state"] == "loaded"

    bot = await erin.post(
        "/api/v1/bots",
        json={"strategy": "ladder", "account": ACCOUNT, "symbol": "BTCUSDT", "params": LADDER},
    )
    assert bot.status_code == 201, bot.text
    bot_id = bot.json()["id"]
    assert bot_id == "erin-ladder"
    await wait_state(erin, bot_id, "running")

    ticks = recorded_btc(data_dir)
    async with (
        watching(world, erin.tokens["access_token"]) as erins,
        watching(world, bob.tokens["access_token"]) as bobs,
    ):
        await publish(world, ticks)
        await eventually(lambda: erins.orders("OrderFilled"), timeout=60, what="erin's fills")
        await_count = len(erins.orders("OrderAccepted"))
        assert await_count >= int(str(LADDER["order_count"]))

        paused = await erin.post(f"/api/v1/bots/{bot_id}/pause")
        assert paused.status_code == 200, paused.text
        await wait_state(erin, bot_id, "paused")
        await asyncio.sleep(1)  # anything still in flight reaches the socket
        ws_fills = {(e["intent_id"], e["trade_id"]) for e in erins.orders("OrderFilled")}
        ws_accepted = {e["intent_id"] for e in erins.orders("OrderAccepted")}
        assert await_count <= len(ws_accepted)

        # Bob's socket carried nothing of erin's.
        assert all(e["user"] == "bob" for e in bobs.orders()), bobs.orders()
        assert not any(f["type"] == "status" and f.get("bot") == bot_id for f in bobs.frames), (
            "bob saw erin's bot status"
        )

    # Her history holds exactly what the socket showed.
    fills = (await erin.get("/api/v1/history/fills", params={"bot": bot_id})).json()
    assert {(f["intent_id"], f["trade_id"]) for f in fills["items"]} == ws_fills
    orders = (await erin.get("/api/v1/history/orders", params={"bot": bot_id})).json()
    assert {o["intent_id"] for o in orders["items"]} == ws_accepted
    pnl = (await erin.get("/api/v1/pnl/bots", params={"bot": bot_id})).json()
    (row,) = [r for r in pnl["rows"] if r["bot"] == bot_id]
    bought = sum(Decimal(f["qty"]) for f in fills["items"] if f["side"] == "buy")
    sold = sum(Decimal(f["qty"]) for f in fills["items"] if f["side"] == "sell")
    assert row["fills"] == len(ws_fills)
    assert Decimal(row["position"]) == bought - sold

    # Bob sees none of it.
    assert bot_id not in {b["id"] for b in (await bob.get("/api/v1/bots")).json()}
    assert (await bob.get(f"/api/v1/bots/{bot_id}")).status_code == 404
    assert (await bob.get("/api/v1/history/fills", params={"bot": bot_id})).status_code == 404
    assert (await bob.get(f"/api/v1/accounts/{ACCOUNT}")).status_code == 404
    bobs_fills = (await bob.get("/api/v1/history/fills")).json()["items"]
    assert all(f["user"] == "bob" for f in bobs_fills)

    # Every change erin made is in the audit log, with its actor and target.
    async def audited() -> set[tuple[str, str]]:
        page = (await admin.get("/api/v1/audit", params={"actor": ERIN, "limit": 1000})).json()
        return {(r["action"], r["target"]) for r in page["items"]}

    wanted = {
        ("session.login", f"user:{ERIN}"),
        ("account.create", f"account:{ACCOUNT}"),
        ("bot.create", f"bot:{bot_id}"),
        ("bot.pause", f"bot:{bot_id}"),
    }
    await eventually(
        lambda: _covers(audited(), wanted), timeout=20, what="erin's actions in the audit log"
    )
    assert (await erin.get("/api/v1/audit")).status_code == 403

    # Deleting the account stops its bot and removes it.
    deleted = await erin.delete(f"/api/v1/accounts/{ACCOUNT}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["bots_deleted"] == [bot_id]
    await eventually(
        lambda: _bot_gone(erin, bot_id), timeout=20, what="the deleted account's bot stopped"
    )
    await eventually(
        lambda: _covers(audited(), {("account.delete", f"account:{ACCOUNT}")}),
        timeout=20,
        what="the deletion audited",
    )


async def _covers(found: Any, wanted: set[tuple[str, str]]) -> bool:
    return wanted <= await found


async def _bot_gone(session: Any, bot_id: str) -> bool:
    return (await session.get(f"/api/v1/bots/{bot_id}")).status_code == 404
