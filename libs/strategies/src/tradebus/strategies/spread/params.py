"""The ``spread`` parameters: the two symbols, leg size, entry, adds and exits.

Source: shared/STRATEGIES.md §3 (seed 003). Holds :class:`SpreadParams` (with
its :class:`SpreadAdd` steps and :class:`SpreadTakeProfit` rule) and their
validation, ``problems()``: ``0 <= exit_spread_pct < entry_spread_pct <
adds[0].spread_pct < adds[1].spread_pct < ...``, at most ``MAX_ADDS`` adds,
and ``leg_quote >= min_order_quote`` (else no leg could ever be placed).
:mod:`tradebus.strategies.spread.bot` trades by them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.money import ZERO
from tradebus.strategies.common_checks import Problems, non_negative, positive

MAX_ADDS = 20


class SpreadAdd(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An add: at ``|spread| >= spread_pct`` (percent), both legs of ``leg_quote * multiplier``."""

    spread_pct: Decimal
    multiplier: Decimal


class SpreadTakeProfit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exit rule: ``reversion`` needs ``exit_spread_pct``, ``position`` needs ``profit_pct``."""

    mode: Literal["reversion", "position"]
    exit_spread_pct: Decimal | None = None
    profit_pct: Decimal | None = None


class SpreadParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of STRATEGIES.md §3 (percents in percent, money in the quote asset)."""

    symbol_a: str
    symbol_b: str
    leg_quote: Decimal
    entry_spread_pct: Decimal
    take_profit: SpreadTakeProfit
    adds: list[SpreadAdd] = []
    stop_loss_pct: Decimal = ZERO
    min_order_quote: Decimal = Decimal(10)
    cancel_on_exit: bool = True

    def symbols(self) -> list[str]:
        """The two native symbols, A first."""
        return [self.symbol_a, self.symbol_b]

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as ``(field path, message)``; empty when valid."""
        out = Problems()
        check = out.check
        check("symbol_a", bool(self.symbol_a), "required")
        check("symbol_b", self.symbol_b != self.symbol_a, "must differ from symbol_a")
        e, m = self.entry_spread_pct, self.min_order_quote
        check("leg_quote", positive(self.leg_quote), "must be > 0")
        check("entry_spread_pct", positive(e), "must be > 0")
        check("min_order_quote", non_negative(m), "must be >= 0")
        if positive(self.leg_quote) and non_negative(m):
            check("leg_quote", self.leg_quote >= m, f"must be >= min_order_quote ({m})")
        check("adds", len(self.adds) <= MAX_ADDS, f"at most {MAX_ADDS} entries")
        for k, add in enumerate(self.adds):
            ok = positive(add.spread_pct) and positive(e)
            if k == 0:
                check("adds[0].spread_pct", ok and add.spread_pct > e, "must be > entry_spread_pct")
            else:
                prev = self.adds[k - 1].spread_pct
                check(
                    f"adds[{k}].spread_pct",
                    ok and prev.is_finite() and add.spread_pct > prev,
                    f"must be greater than adds[{k - 1}].spread_pct",
                )
            check(f"adds[{k}].multiplier", positive(add.multiplier), "must be > 0")
        tp = self.take_profit
        if tp.mode == "reversion":
            x = tp.exit_spread_pct
            check("take_profit.exit_spread_pct", x is not None, "required for mode reversion")
            if x is not None:
                ok = non_negative(x) and (not positive(e) or x < e)
                check("take_profit.exit_spread_pct", ok, "must be >= 0 and < entry_spread_pct")
        else:
            check("take_profit.profit_pct", tp.profit_pct is not None, "required for mode position")
            if tp.profit_pct is not None:
                check("take_profit.profit_pct", positive(tp.profit_pct), "must be > 0")
        check("stop_loss_pct", non_negative(self.stop_loss_pct), "must be >= 0 (0 = none)")
        return out.found
