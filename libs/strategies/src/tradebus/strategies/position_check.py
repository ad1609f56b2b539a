"""Per-bot position check (seed 001's real-position check), pure arithmetic.

A bot's position is compared with what its account really holds of the
bot's base asset, net of the other bots on the same account:

``held = venue total of the base asset - sum of the other bots' ledger positions``

(the strategy host computes ``held`` from execution's balances reply, which
carries every bot's ledger position per asset). ``difference = held - position``.
The check is *above threshold* when
``|difference| / |position| * 100 > position_difference_threshold``
(percent of the bot's position, seed 001's ``positionDifferenceThreshold``);
with a flat position any non-zero ``held`` is above it. A difference acts
only when two checks in a row are above the threshold (one in between may
have met a fill in flight between execution and the bot). Then ``action``:

* ``alert``: the status and the metric say so; the position is unchanged;
* ``adopt``: a positive difference is taken into the position at the current
  price (:meth:`~tradebus.common.positions.Position.adopt`, seed 001's
  "virtual buy"); a negative one is written off at average cost;
* ``reduce``: a negative difference is written off at average cost (the
  user sold by hand); a positive one is only reported.

The exact rules are in docs/strategies.md, section "Position check".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.money import HUNDRED, ZERO
from tradebus.common.positions import Position
from tradebus.strategies.common_checks import Problems, non_negative, positive

PositionAction = Literal["alert", "adopt", "reduce"]
ACTIONS: tuple[str, ...] = ("alert", "adopt", "reduce")
CONFIRMATIONS = 2
"""Checks in a row above the threshold before a difference acts (fills in flight)."""
ON_TICK_MIN_SECONDS = 1.0
"""With ``on_tick``, a bot is checked on its ticks at most this often (each check asks
execution)."""


class PositionCheck(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``position_check`` block of a bot's parameters (off by default).

    ``interval_seconds``: seconds between checks (> 0, default 60);
    ``on_tick``: also check on the bot's ticks, at most once a second
    (:data:`ON_TICK_MIN_SECONDS`; default false);
    ``position_difference_threshold``: percent of the bot's position (>= 0,
    default 5, seed 001); ``action``: ``alert`` (default), ``adopt`` or ``reduce``.
    """

    enabled: bool = False
    interval_seconds: Decimal = Decimal(60)
    on_tick: bool = False
    position_difference_threshold: Decimal = Decimal(5)
    action: str = "alert"

    def problems(self, prefix: str = "position_check") -> list[tuple[str, str]]:
        """Every invalid field as ``(prefix.field, message)``; empty when valid."""
        out = Problems()
        out.check(
            f"{prefix}.interval_seconds",
            positive(self.interval_seconds),
            f"must be > 0 (got {self.interval_seconds})",
        )
        out.check(
            f"{prefix}.position_difference_threshold",
            non_negative(self.position_difference_threshold),
            f"must be >= 0 percent (got {self.position_difference_threshold})",
        )
        out.check(
            f"{prefix}.action",
            self.action in ACTIONS,
            f"must be one of {', '.join(ACTIONS)} (got {self.action!r})",
        )
        return out.found


class PositionCheckState(msgspec.Struct, kw_only=True):
    """What a bot remembers of its position checks (part of its snapshot).

    ``held``/``difference``: the last check's figures (base units, None before
    the first); ``above``: checks in a row above the threshold; ``alert``: the
    last check's uncorrected finding for people (None when in line or
    corrected); ``last_action``: the last correction made, for people;
    ``adjustments``: how many corrections the bot made (adopt, reduce, set
    average: they number its ledger references).
    """

    checks: int = 0
    held: Decimal | None = None
    difference: Decimal | None = None
    above: int = 0
    alert: str | None = None
    last_action: str | None = None
    adjustments: int = 0


Outcome = Literal["ok", "pending", "alert", "adopt", "reduce", "average"]


class PositionCheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """One check: what was found and done.

    ``outcome``: ``ok`` (within threshold), ``pending`` (above it once; the
    next check confirms), ``alert`` (above it, reported only), ``average``
    (the average entry price set by hand to ``price``), ``adopt`` /
    ``reduce`` (the position moved by ``qty``, signed base units, at ``price``
    quote per base: the current price for an adoption, the average cost for
    a write-off). ``old_average``/``new_average``: the average entry price
    around the change (None when flat). ``ref``: the ledger reference of a
    change (``<bot>:<run>:position:<n>``), empty otherwise.
    """

    outcome: Outcome
    position: Decimal
    held: Decimal
    difference: Decimal
    qty: Decimal = ZERO
    price: Decimal | None = None
    old_average: Decimal | None = None
    new_average: Decimal | None = None
    ref: str = ""


def difference_pct(position: Decimal, difference: Decimal) -> Decimal | None:
    """``|difference| / |position| * 100``; None (unbounded) for a flat position."""
    if not position:
        return None
    return abs(difference) / abs(position) * HUNDRED


def above_threshold(position: Decimal, held: Decimal, threshold_pct: Decimal) -> bool:
    """The difference ``held - position`` is above ``threshold_pct`` (module docstring)."""
    difference = held - position
    if not difference:
        return False
    pct = difference_pct(position, difference)
    return pct is None or pct > threshold_pct


def run_check(
    settings: PositionCheck,
    memory: PositionCheckState,
    position: Position,
    held: Decimal,
    price: Decimal | None,
    ref_prefix: str,
) -> PositionCheckResult:
    """One position check of a long-only spot position, applied to ``position`` and
    ``memory`` (module docstring; docs/strategies.md "Position check").

    ``held``: what the account holds for the bot (base units); ``price``: the
    current reference price (None before the first, then a positive difference
    is only reported); ``ref_prefix``: the ledger reference of a change is it
    followed by the bot's correction count (``<bot>:<run>:position:<n>``).
    """
    qty = position.qty
    difference = held - qty
    memory.checks += 1
    memory.held, memory.difference = held, difference
    base = PositionCheckResult(outcome="ok", position=qty, held=held, difference=difference)
    if not above_threshold(qty, held, settings.position_difference_threshold):
        memory.above, memory.alert = 0, None
        return base
    memory.above += 1
    pct = difference_pct(qty, difference)
    shown = "flat position" if pct is None else f"{pct:.2f} %"
    memory.alert = (
        f"position {qty} but the account holds {held} for the bot "
        f"(difference {difference}, {shown}; threshold {settings.position_difference_threshold} %)"
    )
    if memory.above < CONFIRMATIONS:
        return msgspec.structs.replace(base, outcome="pending")
    old_average = position.avg_price
    if difference < 0 and settings.action in ("adopt", "reduce") and qty > 0:
        cut = min(-difference, qty)
        position.write_off(cut)
        return _changed(
            base, memory, "reduce", -cut, old_average, old_average, position, ref_prefix
        )
    if difference > 0 and settings.action == "adopt" and price is not None and price > 0:
        position.adopt(difference, price)
        return _changed(base, memory, "adopt", difference, price, old_average, position, ref_prefix)
    if difference > 0 and settings.action == "adopt":
        memory.alert += "; no price yet to adopt at"
    return msgspec.structs.replace(base, outcome="alert")


def _changed(
    base: PositionCheckResult,
    memory: PositionCheckState,
    outcome: Outcome,
    qty: Decimal,
    price: Decimal | None,
    old_average: Decimal | None,
    position: Position,
    ref_prefix: str,
) -> PositionCheckResult:
    memory.above, memory.adjustments, memory.alert = 0, memory.adjustments + 1, None
    memory.last_action = (
        f"{outcome}: position moved by {qty} (was {base.position}, account held {base.held})"
    )
    return msgspec.structs.replace(
        base,
        outcome=outcome,
        qty=qty,
        price=price,
        old_average=old_average,
        new_average=position.avg_price,
        ref=f"{ref_prefix}{memory.adjustments}",
    )


def average_missing(position: Position) -> bool:
    """A position is held but its average price is zero (seed 001: take-profit and the
    statistics pause until the user sets the average by hand)."""
    return bool(position.qty) and not position.open_cost


def set_average(
    memory: PositionCheckState, position: Position, price: Decimal, ref_prefix: str
) -> PositionCheckResult:
    """Set the average entry price of ``position`` to ``price`` by hand (seed 001's
    ``setManualAveragePrice``), counted in ``memory`` like a check's correction.

    Raises
    ------
    ValueError
        If ``price`` is not a finite number > 0, or the position is flat.
    """
    if not price.is_finite() or price <= 0:
        raise ValueError(f"price must be > 0 (got {price})")
    if not position.qty:
        raise ValueError("the bot holds no position: there is no average price to set")
    old = position.avg_price
    position.set_average(price)
    memory.adjustments += 1
    shown = "none" if old is None else old.normalize()
    memory.last_action = f"average set by hand: {shown} -> {price}"
    return PositionCheckResult(
        outcome="average",
        position=position.qty,
        held=memory.held if memory.held is not None else position.qty,
        difference=memory.difference or ZERO,
        price=price,
        old_average=old,
        new_average=position.avg_price,
        ref=f"{ref_prefix}{memory.adjustments}",
    )
