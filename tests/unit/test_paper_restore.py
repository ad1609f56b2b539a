"""Restoring the paper venue from the ledger (tradebus.execution.paper_restore).

Each test drives a :class:`PaperExchange` and journals everything it does
through the real ledger (on the test's PostgreSQL) exactly as execution
would: the order row before the venue, the acceptance after, every fill with
its journal entries. A second exchange is then rebuilt from the ledger alone
and must equal the first: balances (total, free, locked), resting orders
(with their locks) and perpetual positions (quantity, open cost, margin,
realized P&L).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from decimal import Decimal as D

import asyncpg
import pytest

from tests.support.markets import BTCUSDT, ETHUSDT_PERP
from tests.support.ticks import trade
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import Side
from tradebus.common.order_status import OrderStatus
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.booking import fill_row
from tradebus.engine.paper.exchange import PaperExchange, PaperVenue
from tradebus.engine.venue import VenueOrder, VenueRejected
from tradebus.execution.paper_restore import restore_account
from tradebus.ledger.entries import deposit_entries
from tradebus.ledger.history import LedgerHistory
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.rows import NewOrder
from tradebus.ledger.store import Ledger

CATALOG = MarketCatalog({"binance": [BTCUSDT, ETHUSDT_PERP]})
SPOT = AccountSpec(
    id=AccountId("s"),
    user=UserId("u"),
    balances={"USDT": D(10000), "BTC": D(1)},
    maker_fee_bps=D(1),
    taker_fee_bps=D(5),
)
PERP = AccountSpec(
    id=AccountId("p"),
    user=UserId("u"),
    balances={"USDT": D(10000)},
    maker_fee_bps=D(1),
    taker_fee_bps=D(5),
    market_kind="perpetual",
    leverage=D(3),
)
FAR = 10**18
"""A trigger time no test event reaches: the order rests, never live."""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


class Journaled:
    """A paper exchange whose every step is journaled in ``ledger`` as execution does it;
    ``history`` reads the same ledger back."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.ledger = Ledger(pool)
        self.history = LedgerHistory(pool)
        self.exchange = PaperExchange(CATALOG, "binance")
        self.ts = itertools.count(1_000)
        self.intents = itertools.count(1)

    async def open(self, spec: AccountSpec) -> None:
        self.exchange.open_account(
            spec.id,
            dict(spec.balances),
            spec.maker_fee_bps,
            spec.taker_fee_bps,
            market_kind=spec.market_kind,
            leverage=spec.leverage,
        )
        deposits = deposit_entries(spec.id, dict(spec.balances), "initial")
        await self.ledger.ensure_account(spec.id, spec.user, spec.venue, deposits, 1)

    async def place(
        self,
        account: str,
        side: Side,
        price: str | None,
        qty: str,
        symbol: str = "BTCUSDT",
        trigger: int | None = None,
        send: bool = True,
    ) -> str:
        """Persist the order, then (``send``) place it and record the acceptance."""
        row, _ = await self.ledger.insert_order(
            NewOrder(
                intent_id=IntentId(f"i{next(self.intents)}"),
                account_id=AccountId(account),
                user_id=UserId("u"),
                source="bot",
                symbol=symbol,
                side=side,
                order_type="limit" if price is not None else "market",
                price=None if price is None else D(price),
                qty=D(qty),
                trigger_ts=trigger,
                stream_seq=None,
                ts=next(self.ts),
            )
        )
        cid = str(row.client_order_id)
        if send:
            order = VenueOrder(
                client_order_id=cid,
                intent_id=row.intent_id,
                symbol=symbol,
                side=side,
                order_type=row.order_type,  # type: ignore[arg-type]
                price=row.price,
                qty=row.qty,
                trigger_ts=trigger,
            )
            ack = self.exchange.place(AccountId(account), order)
            await self.ledger.set_order_status(
                UserId("u"),
                row.intent_id,
                OrderStatus.ACCEPTED,
                next(self.ts),
                venue_order_id=ack.venue_order_id,
            )
        return cid

    async def trade(self, price: str, symbol: str = "BTCUSDT") -> int:
        """A market trade; its fills booked. Returns how many orders it filled."""
        fills = self.exchange.on_trade(trade(price, next(self.ts), symbol=symbol))
        for fill in fills:
            market = self.exchange.market(fill.symbol)
            assert await self.ledger.record_fill(fill_row(fill, market, next(self.ts)))
        return len(fills)

    async def cancel(self, cid: str) -> None:
        order = self.exchange.find(cid)
        assert order is not None and self.exchange.cancel(cid)
        await self.ledger.set_order_status(
            UserId("u"), order.intent_id, OrderStatus.CANCELED, next(self.ts)
        )


async def restored(j: Journaled, *specs: AccountSpec) -> PaperExchange:
    exchange = PaperExchange(CATALOG, "binance")
    for spec in specs:
        await restore_account(exchange, j.history, spec)
    return exchange


def nonzero_balances(ex: PaperExchange, account: str) -> dict:
    return {b.asset: b for b in ex.balances(AccountId(account)) if b.total or b.locked}


def resting(ex: PaperExchange, account: str) -> list[tuple]:
    fields: tuple[str, ...] = ("client_order_id", "symbol", "side", "order_type", "price", "qty")
    fields += ("trigger_ts", "locked_asset", "locked", "perpetual", "lock_price")
    return [tuple(getattr(o, f) for f in fields) for o in ex.open_orders(AccountId(account))]


def assert_same(a: PaperExchange, b: PaperExchange, account: str) -> None:
    assert nonzero_balances(b, account) == nonzero_balances(a, account)
    assert sorted(resting(b, account)) == sorted(resting(a, account))
    assert b.positions(AccountId(account)) == a.positions(AccountId(account))


async def test_spot_balances_locks_and_orders_are_rebuilt(pool: asyncpg.Pool) -> None:
    j = Journaled(pool)
    await j.open(SPOT)
    await j.trade("60000")
    await j.place("s", "buy", "59000", "0.05")
    await j.place("s", "sell", "61000", "0.2")
    await j.place("s", "buy", "59500", "0.01")
    gone = await j.place("s", "buy", "58000", "0.02")
    await j.place("s", "sell", None, "0.1", trigger=FAR)  # a market sell that never goes live
    assert await j.trade("59400") == 1  # fills the buy at 59500
    assert await j.trade("61001") == 1  # fills the sell at 61000
    await j.cancel(gone)
    await j.place("s", "buy", "58500", "0.03")
    unsent = await j.place("s", "buy", "50000", "0.01", send=False)  # died before the venue

    ex = await restored(j, SPOT)

    assert_same(j.exchange, ex, "s")
    assert len(ex.open_orders(AccountId("s"))) == 3
    assert ex.find(unsent) is None
    venue = PaperVenue(ex, AccountId("s"))
    assert await venue.find_order(unsent) is None  # the engine sends it, once
    assert await venue.find_order(gone) == f"P{gone}"  # the venue did take it
    with pytest.raises(VenueRejected) as refused:
        ex.place(AccountId("s"), VenueOrder(**_order(gone)))
    assert refused.value.reason == "duplicate_client_order_id"


def _order(cid: str) -> dict:
    return dict(
        client_order_id=cid,
        intent_id="x",
        symbol="BTCUSDT",
        side="buy",
        order_type="limit",
        price=D(1),
        qty=D(1),
        trigger_ts=None,
    )


async def test_restored_orders_fill_as_the_original_ones_would(pool: asyncpg.Pool) -> None:
    j = Journaled(pool)
    await j.open(SPOT)
    await j.trade("60000")
    await j.place("s", "buy", "59000", "0.05")
    await j.place("s", "sell", "61000", "0.2")
    ex = await restored(j, SPOT)
    for price, ts in (("58999", 10**6), ("61000.5", 10**6 + 1)):
        original = j.exchange.on_trade(trade(price, ts))
        again = ex.on_trade(trade(price, ts))
        assert again == original and len(again) == 1
    assert_same(j.exchange, ex, "s")


async def test_perpetual_positions_margin_and_order_locks_are_rebuilt(pool: asyncpg.Pool) -> None:
    j = Journaled(pool)
    await j.open(PERP)
    await j.open(SPOT)
    eth = "ETHUSDT"
    await j.trade("3000", eth)
    # build a long of 0.7 at two prices, reduce it by 0.3 (rounded open cost), then flip it
    await j.place("p", "buy", "2990", "0.3", eth)
    await j.place("p", "buy", "2980.07", "0.4", eth)
    assert await j.trade("2980", eth) == 2
    await j.place("p", "sell", "3010.01", "0.3", eth)
    assert await j.trade("3011", eth) == 1
    await j.place("p", "sell", None, "0.6", eth)  # marketable: fills at the next trade, flips
    assert await j.trade("3005.5", eth) == 1
    # resting orders on both sides: the earlier buys claim the reducible short first
    await j.place("p", "buy", "2950", "0.15", eth)
    await j.place("p", "buy", "2940", "0.1", eth)
    await j.place("p", "sell", "3100", "0.25", eth)
    await j.place("p", "buy", None, "0.05", eth, trigger=FAR)  # a market order that rests
    await j.place("p", "buy", "2900", "0.01", eth, send=False)
    await j.place("s", "buy", "59000", "0.05")
    position = j.exchange.positions(AccountId("p"))[eth]
    assert position.qty == D("-0.2") and position.realized_pnl != 0

    ex = await restored(j, SPOT, PERP)

    assert_same(j.exchange, ex, "p")
    assert_same(j.exchange, ex, "s")
    assert ex.positions(AccountId("p"))[eth].avg_price == D("3005.5")
    # and the restored venue keeps settling as the original does (position, relock)
    for price, ts in (("2945", 10**6), ("3100.5", 10**6 + 1)):
        assert ex.on_trade(trade(price, ts, symbol=eth)) == j.exchange.on_trade(
            trade(price, ts, symbol=eth)
        )
        assert_same(j.exchange, ex, "p")


async def test_restoring_an_open_account_is_refused(pool: asyncpg.Pool) -> None:
    j = Journaled(pool)
    await j.open(SPOT)
    ex = await restored(j, SPOT)
    with pytest.raises(ValueError, match="already open"):
        await restore_account(ex, j.history, SPOT)
