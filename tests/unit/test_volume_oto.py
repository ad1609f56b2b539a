"""One-triggers-other: what ccxt says each venue offers (read from ccxt's own ``has`` and
``features``, no request), and the volume bot's status saying it emulates OTO and why;
and the progress figure shared by a volume bot's status and its group's."""

from __future__ import annotations

from decimal import Decimal as D

import ccxt
import pytest

from tests.support import ticks
from tests.support.markets import bot_context, market
from tests.support.orders import OrderEvents
from tradebus.common.messages import PlaceOrder
from tradebus.execution.oto import oto_offer
from tradebus.strategies.volume.bot import NO_OTO_OFFER, OTO_EMULATION, VolumeBot
from tradebus.strategies.volume.params import VolumeParams, progress_pct

SPOT = {"spot": True, "swap": False}
SWAP = {"spot": False, "swap": True, "linear": True}
TRIGGER = (
    "a take-profit trigger order (fired when the price reaches it), not a limit sell resting"
    " from the buy's fill"
)


@pytest.mark.parametrize(
    ("venue", "kind", "offer"),
    [
        # ccxt declares createOrderWithTakeProfitAndStopLoss, but no attached take-profit
        # on spot orders (its docs: "swap markets only")
        (
            "backpack",
            SPOT,
            f"backpack spot: ccxt attaches no take-profit to spot orders (where it does, it"
            f" is {TRIGGER})",
        ),
        ("backpack", SWAP, f"backpack swap: ccxt's attached take-profit is {TRIGGER}"),
        # Binance's OTO order lists exist, through ccxt's raw endpoint only
        (
            "binance",
            SPOT,
            "binance spot: OTO order lists (orderList/oto) only through ccxt's raw endpoint,"
            " without unified order, fill or cancel handling",
        ),
        ("binance", SWAP, "binance swap: ccxt offers no OTO order"),
        ("okx", SPOT, f"okx spot: ccxt attaches only {TRIGGER}"),
        ("kraken", SPOT, "kraken spot: ccxt offers no OTO order"),
    ],
)
def test_what_ccxt_offers_toward_an_oto_order(
    venue: str, kind: dict[str, bool], offer: str
) -> None:
    exchange = getattr(ccxt, venue)()
    assert oto_offer(exchange, kind) == offer


def volume_bot(oto: str) -> VolumeBot:
    ctx = bot_context(
        "alice-volume", "alice", "alice-paper", "volume", market("SOL", "USDC", "0.001", oto=oto)
    )
    params = VolumeParams(
        single_trade_quote=D(100),
        trade_interval_seconds=D(5),
        buy_offset_pct=D("0.5"),
        sell_profit_pct=D(1),
        target_volume=D(1000),
    )
    return VolumeBot(ctx, params)


def test_the_status_says_oto_is_emulated_and_why() -> None:
    paper = volume_bot("").status().details
    assert (paper["oto"], paper["oto_why"]) == ("emulated", f"{NO_OTO_OFFER}; {OTO_EMULATION}")
    offer = oto_offer(ccxt.backpack(), SPOT)
    live = volume_bot(offer)
    assert live.status().details["oto_why"] == f"{offer}; {OTO_EMULATION}"

    # and it is emulated: the sell is placed by the bot when the buy's fill arrives
    (buy,) = live.on_trade(ticks.trade("100", 1_000, symbol="SOLUSDC"))
    events = OrderEvents(live.ctx)
    assert isinstance(buy, PlaceOrder) and buy.side == "buy"
    assert live.on_order_event(events.accepted(buy)) == []
    (sell,) = live.on_order_event(events.filled(buy, "100.2"))
    assert isinstance(sell, PlaceOrder)
    assert (sell.side, sell.price, sell.qty) == ("sell", D("101.20"), buy.qty)


@pytest.mark.parametrize(
    ("volume", "target", "progress"),
    [
        ("1234.56", "16384", "7.53"),  # seed 004's example: 7.535... rounded down
        ("0", "500", "0.00"),
        ("500", "500", "100.00"),
        ("1", "0", "0"),  # no target: no progress
        ("1E+30", "1E-10", "1.00E+42"),  # too large to round: shown as it is
    ],
)
def test_progress_is_rounded_down_to_a_hundredth_of_a_percent(
    volume: str, target: str, progress: str
) -> None:
    assert str(progress_pct(D(volume), D(target))) == progress
