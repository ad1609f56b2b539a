"""Perpetual trading through the real execution service, audited by the real reconciler.

Account ``dave-perp``: 10000 USDT, leverage 5, maker 1 bps, taker 2 bps. Every
intent names the tick before it as its ``trigger_ts`` so the order goes live
on the next tick whatever the arrival order (paper fill model rule 1).
Numbers are hand-computed; the reconciler runs with zero tolerance.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from tests.support.execution import (
    Bus,
    collecting,
    execution_service,
    execution_settings,
    reconciler_settings,
)
from tests.support.services import eventually, service
from tradebus.common import subjects
from tradebus.common.codec import decode_recon_run_reply
from tradebus.common.messages import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    ReconReport,
)
from tradebus.reconciler.bootstrap import run as run_reconciler

ACCOUNTS = """
accounts:
  - {id: dave-perp, user: dave, market_kind: perpetual, leverage: "5",
     balances: {USDT: "10000"}, maker_fee_bps: "1", taker_fee_bps: "2"}
"""


class PerpBus(Bus):
    """:class:`Bus` with dave's intents and the reconciler's run request."""

    async def place(
        self, intent_id: str, side: str, qty: str, price: str, trigger: int, **extra: object
    ) -> None:
        intent = {
            "type": "PlaceOrder",
            "intent_id": intent_id,
            "account": "dave-perp",
            "symbol": "BTCUSDT",
            "side": side,
            "qty": qty,
            "price": price,
            "trigger_ts": trigger,
            **extra,
        }
        await self.pub("intent.dave.manual", json.dumps(intent))

    async def placed(self, intent_id: str, side: str, qty: str, price: str, trigger: int) -> None:
        await self.place(intent_id, side, qty, price, trigger)
        await eventually(lambda: self.of(OrderAccepted, intent_id), what=f"{intent_id} accepted")

    async def filled(self, intent_id: str, price: str, ts: int) -> OrderFilled:
        await self.tick(price, ts)
        await eventually(lambda: self.of(OrderFilled, intent_id), what=f"{intent_id} filled")
        (fill,) = self.of(OrderFilled, intent_id)
        return fill

    async def reconcile(self) -> ReconReport:
        raw = await self.nc.request(subjects.ctl("recon", "run"), b"{}", timeout=10)
        reply = decode_recon_run_reply(raw.data)
        (report,) = reply.reports  # type: ignore[union-attr]
        return report

    async def reconciler_answers(self) -> bool:
        """True once the reconciler answers a run request."""
        try:
            await self.reconcile()
            return True
        except Exception:
            return False

    async def usdt(self) -> tuple[D, D, D]:
        b = await self.balance("USDT")
        return b.total, b.free, b.locked


@pytest.fixture
async def bus(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[PerpBus]:
    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    reconciler = reconciler_settings(nats_url, database_url, {"DEFAULT": D(0)})  # exact
    async with (
        collecting(nats_url, PerpBus) as b,
        execution_service(b.nc, execution),
        service(run_reconciler, reconciler, b.reconciler_answers),
    ):
        yield b


async def journal(database_url: str) -> dict[tuple[str, str], D]:
    """Journal sums of dave-perp by ``(asset, kind)``."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT asset, kind, sum(amount) AS total FROM journal"
            " WHERE account_id = 'dave-perp' GROUP BY 1, 2"
        )
    finally:
        await conn.close()
    return {(r["asset"], r["kind"]): r["total"] for r in rows}


def rows(report: ReconReport) -> list[tuple[str, D, D, bool]]:
    return [(r.asset, r.venue_total, r.ledger_total, r.ok) for r in report.rows]


async def test_long_add_close_flip_and_close_reconcile_exactly(
    bus: PerpBus, database_url: str
) -> None:
    await bus.tick("60000", 1)
    # open long 0.1: marketable buy fills at the next trade, 60050; taker 6005 * 2 bps
    await bus.placed("p-open", "buy", "0.1", "60100", trigger=1)
    fill = await bus.filled("p-open", "60050", 2)
    assert (fill.price, fill.fee, fill.liquidity) == (D("60050"), D("1.201"), "taker")
    # add 0.1 passive at 59000 (maker 0.59): long 0.2 @ 59525, margin 11905 / 5
    await bus.placed("p-add", "buy", "0.1", "59000", trigger=2)
    await bus.filled("p-add", "58999", 3)
    await eventually(lambda: _usdt_is(bus, D("9998.209"), D(2381)), what="margin of 0.2 long")
    # partial close 0.15 at 61000 (maker 0.915): realized 9150 - 11905 * 0.75 = 221.25
    await bus.placed("p-close", "sell", "0.15", "61000", trigger=3)
    await bus.filled("p-close", "61000.01", 4)
    # flip: sell 0.1 marketable at 60500 (taker 1.21): closes 0.05 (+48.75), opens short 0.05.
    # clamp_to_free is ignored on a perpetual (there is no BTC at all)
    await bus.place("p-flip", "sell", "0.1", "60000", trigger=4, clamp_to_free=True)
    await eventually(lambda: bus.of(OrderAccepted, "p-flip"), what="flip accepted")
    assert bus.of(OrderAccepted, "p-flip")[0].qty == D("0.1")
    await bus.filled("p-flip", "60500", 5)
    # 10000 + 221.25 + 48.75 - (1.201 + 0.59 + 0.915 + 1.21); short 0.05 @ 60500 locks 605
    assert await bus.usdt() == (D("10266.084"), D("9661.084"), D(605))
    # margin: buy 2 reduces 0.05 and opens 1.95: 1.95 * 60000 / 5 + 24 fee > 9661.084 free
    await bus.place("p-big", "buy", "2", "60000", trigger=5)
    await eventually(lambda: bus.of(OrderRejected, "p-big"), what="margin reject")
    (rejected,) = bus.of(OrderRejected, "p-big")
    assert rejected.reason == "insufficient_balance" and "23424" in rejected.message

    report = await bus.reconcile()
    assert report.status == "ok"
    assert rows(report) == [
        ("BTCUSDT-PERP", D("-0.05"), D("-0.05"), True),
        ("USDT", D("10266.084"), D("10266.084"), True),
    ]
    assert await journal(database_url) == {
        ("BTCUSDT-PERP", "fill"): D("-0.05"),
        ("USDT", "deposit"): D(10000),
        ("USDT", "realized_pnl"): D("270.00"),
        ("USDT", "fee"): D("-3.916"),
    }

    # close the short: marketable buy at 60400 (taker 0.604): 3025 - 3020 = +5; flat
    await bus.placed("p-flat", "buy", "0.05", "60600", trigger=5)
    await bus.filled("p-flat", "60400", 6)
    assert await bus.usdt() == (D("10270.48"), D("10270.48"), D(0))
    report = await bus.reconcile()
    assert report.status == "ok"
    assert rows(report) == [
        ("BTCUSDT-PERP", D(0), D(0), True),
        ("USDT", D("10270.48"), D("10270.48"), True),
    ]


async def _usdt_is(bus: PerpBus, total: D, locked: D) -> bool:
    got_total, _, got_locked = await bus.usdt()
    return (got_total, got_locked) == (total, locked)
