"""Writing orders and fills to a real ledger the way execution does, for report tests.

:class:`Books` goes through :class:`tradebus.ledger.store.Ledger` (an order
row, its acceptance by the venue, its fills with their journal entries), so
the reports read exactly what execution would have written.
"""

from __future__ import annotations

import itertools
from decimal import Decimal as D

from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.markets import Market
from tradebus.common.order_status import OrderStatus
from tradebus.ledger.entries import FillFacts, deposit_entries, fill_entries
from tradebus.ledger.rows import FillRow, NewOrder, OrderRow
from tradebus.ledger.store import Ledger

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
"""When :meth:`Books.account` makes the accounts (2023-11-14T22:13:20Z)."""

BTCUSDT = Market(
    symbol="BTCUSDT", base="BTC", quote="USDT", tick_size=D("0.01"), step_size=D("0.00001")
)
"""Binance's BTCUSDT as the shipped markets file has it."""


class Books:
    """Writes orders and fills through the ledger the way execution does.

    Trade ids and default intent ids count from ``first``. By default every order of
    a bot is in one cycle (``<bot>:1.1:o<n>``); with ``cycle_per_order`` each order
    is a cycle of its own (``<bot>:1.<n>:b0``).
    """

    def __init__(self, ledger: Ledger, first: int = 1, cycle_per_order: bool = False) -> None:
        self.ledger = ledger
        self._trades = itertools.count(first)
        self._intents = itertools.count(first)
        self._cycle_per_order = cycle_per_order

    async def account(self, account: str, user: UserId, venue: str = "paper") -> None:
        deposits = deposit_entries(AccountId(account), {"USDT": D(100_000)}, "initial")
        await self.ledger.ensure_account(AccountId(account), user, venue, deposits, T0)

    async def order(
        self,
        user: UserId,
        account: str,
        bot: str,
        side: str,
        qty: str,
        price: str | None,
        ts: int,
        symbol: str = "BTCUSDT",
        intent: str | None = None,
    ) -> OrderRow:
        """An order accepted by its venue at ``ts``."""
        if intent is None:
            n = next(self._intents)
            intent = f"{bot}:1.{n}:b0" if self._cycle_per_order else f"{bot}:1.1:o{n}"
        intent_id = IntentId(intent)
        row, created = await self.ledger.insert_order(
            NewOrder(
                intent_id=intent_id,
                account_id=AccountId(account),
                user_id=user,
                source=bot,
                symbol=symbol,
                side=side,
                order_type="limit" if price is not None else "market",
                price=None if price is None else D(price),
                qty=D(qty),
                trigger_ts=ts,
                stream_seq=None,
                ts=ts,
            )
        )
        assert created
        await self.ledger.set_order_status(
            user, intent_id, OrderStatus.ACCEPTED, ts, venue_order_id=f"V{row.client_order_id}"
        )
        return row

    async def fill(
        self,
        order: OrderRow,
        qty: str,
        price: str,
        fee: str,
        ts: int,
        fee_asset: str | None = None,
        venue: str = "paper",
        market: Market = BTCUSDT,
    ) -> str:
        """Book a fill of ``order`` at ``ts``; returns its trade id."""
        trade_id = f"T{next(self._trades)}"
        facts = FillFacts(
            account=order.account_id,
            base=market.base,
            quote=market.quote,
            side="buy" if order.side == "buy" else "sell",
            price=D(price),
            qty=D(qty),
            fee=D(fee),
            fee_asset=fee_asset or market.quote,
            ref=f"{venue}:{order.account_id}:{trade_id}",
        )
        booked = await self.ledger.record_fill(
            FillRow(
                venue=venue,
                trade_id=trade_id,
                client_order_id=order.client_order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                side=order.side,
                price=D(price),
                qty=D(qty),
                fee=D(fee),
                fee_asset=facts.fee_asset,
                liquidity="maker",
                ts_event=ts,
                ts=ts + 1000,
                entries=fill_entries(facts),
            )
        )
        assert booked is not None
        return trade_id

    async def trade(
        self,
        user: UserId,
        account: str,
        bot: str,
        side: str,
        qty: str,
        price: str,
        fee: str,
        ts: int,
    ) -> str:
        """An order filled at once (one fill)."""
        order = await self.order(user, account, bot, side, qty, price, ts)
        return await self.fill(order, qty, price, fee, ts)
