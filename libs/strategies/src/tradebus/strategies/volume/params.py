"""The ``volume`` parameters and the pure pricing of a loop's orders.

Source: shared/STRATEGIES.md §4 (seed 004). Holds :class:`VolumeParams` with
its validation (``problems()``: ``single_trade_quote >= min_order_quote``, an
interval > 0, ...), the interval in market-time nanoseconds, the buy
``floor_tick(p * (1 + buy_offset_pct/100))`` of ``single_trade_quote`` and the
sell ``floor_tick(F * (1 + sell_profit_pct/100))``.
:mod:`tradebus.strategies.volume.bot` trades by them.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.money import HUNDRED, ONE, ZERO, floor_to
from tradebus.strategies.common_checks import Problems, non_negative, positive

NS_PER_SECOND = 1_000_000_000
PROGRESS_PLACES = Decimal("0.01")
MAX_NAME = 100
"""The longest ``strategy_name``."""


class VolumeParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of STRATEGIES.md §4 (quote amounts in the quote asset, percents in percent).

    ``target_volume`` is the group's summed filled buy notional at which its
    bots stop; ``max_open_sells`` the number of loops whose sell is not yet
    filled beyond which the bot skips its buys; ``min_order_quote`` the
    smallest buy notional the bot places.

    Seed 004's group settings (exact rules in docs/strategies.md, "The volume
    loop: volatility pause and turns"):

    * ``strategy_name`` (default ``""``: the group's name): the group's display
      name, shown in the status block's details (at most 100 characters, no
      control characters);
    * ``max_price_volatility_pct`` (default 0: off; seed 004's
      ``max_price_volatility_percentage``): the buys pause while the reference
      price moved more than this, ``(high - low) / low * 100``, over the last
      ``volatility_window_seconds`` of market time (default 60, > 0), and
      resume once it moved no more than this; sells go on;
    * ``max_concurrent_users`` (default 0: no limit; seed 004's
      ``max_concurrent_users``): at most this many users of the group buy at
      once; the others wait their turn (by user name), which comes when a user
      trading leaves (its bot stopped, or the target reached).
    """

    single_trade_quote: Decimal
    trade_interval_seconds: Decimal
    buy_offset_pct: Decimal
    sell_profit_pct: Decimal
    target_volume: Decimal
    max_open_sells: int = 10
    min_order_quote: Decimal = Decimal(10)
    cancel_on_exit: bool = True
    strategy_name: str = ""
    max_price_volatility_pct: Decimal = ZERO
    volatility_window_seconds: Decimal = Decimal(60)
    max_concurrent_users: int = 0

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as ``(field, message)``; empty when valid."""
        out = Problems()
        check = out.check
        q, m = self.single_trade_quote, self.min_order_quote
        q_ok, m_ok = positive(q), non_negative(m)
        check("single_trade_quote", q_ok, "must be > 0")
        if q_ok and m_ok:
            check("single_trade_quote", q >= m, f"must be >= min_order_quote ({m})")
        check("trade_interval_seconds", positive(self.trade_interval_seconds), "must be > 0")
        check("buy_offset_pct", non_negative(self.buy_offset_pct), "must be >= 0")
        check("sell_profit_pct", positive(self.sell_profit_pct), "must be > 0")
        check("target_volume", positive(self.target_volume), "must be > 0")
        check("max_open_sells", self.max_open_sells >= 1, "must be >= 1")
        check("min_order_quote", m_ok, "must be >= 0")
        name = self.strategy_name
        check(
            "strategy_name",
            len(name) <= MAX_NAME and name.isprintable(),
            f"must be at most {MAX_NAME} printable characters, got {name!r}",
        )
        check(
            "max_price_volatility_pct",
            non_negative(self.max_price_volatility_pct),
            f"must be >= 0 (0 = off), got {self.max_price_volatility_pct}",
        )
        check(
            "volatility_window_seconds",
            positive(self.volatility_window_seconds),
            f"must be > 0, got {self.volatility_window_seconds}",
        )
        check(
            "max_concurrent_users",
            self.max_concurrent_users >= 0,
            f"must be >= 0 (0 = no limit), got {self.max_concurrent_users}",
        )
        return out.found


def interval_ns(params: VolumeParams) -> int:
    """``trade_interval_seconds`` in nanoseconds of market time (at least 1)."""
    return max(1, int(params.trade_interval_seconds * NS_PER_SECOND))


def window_ns(params: VolumeParams) -> int:
    """``volatility_window_seconds`` in nanoseconds of market time (at least 1)."""
    return max(1, int(params.volatility_window_seconds * NS_PER_SECOND))


def buy_order(p: Decimal, params: VolumeParams, market: Market) -> tuple[Decimal, Decimal]:
    """``(price, qty)`` of an interval's buy at reference price ``p`` (§4).

    ``price = floor_tick(p * (1 + buy_offset_pct/100))``,
    ``qty = floor_step(single_trade_quote / price)`` (0 if the price is not positive).
    """
    price = floor_to(p * (ONE + params.buy_offset_pct / HUNDRED), market.tick_size)
    qty = floor_to(params.single_trade_quote / price, market.step_size) if price > 0 else ZERO
    return price, qty


def sell_price(f: Decimal, params: VolumeParams, market: Market) -> Decimal:
    """A loop's sell price ``floor_tick(F * (1 + sell_profit_pct/100))``, F its buy's average."""
    return floor_to(f * (ONE + params.sell_profit_pct / HUNDRED), market.tick_size)


def progress_pct(volume: Decimal, target: Decimal) -> Decimal:
    """A group's progress toward its target in percent, ``volume / target * 100`` rounded
    down to 0.01 (STRATEGIES.md §4 status, seed 004's ``progress``); 0 when ``target`` is
    not positive, and a ratio too large to quantize is returned unrounded."""
    if target <= 0:
        return ZERO
    progress = volume / target * HUNDRED
    if progress.adjusted() < 20:  # quantize needs the digits; huge ratios are shown as is
        progress = progress.quantize(PROGRESS_PLACES, ROUND_DOWN)
    return progress
