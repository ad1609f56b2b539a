"""Per-bot position checks on the real stack (issue 19, seed 001's real-position check).

Real NATS and Postgres; execution (paper accounts, no fees) and a strategy
host run in-process. Each of alice, bob and carol runs two ladder bots on one
paper account: ``<user>-a`` with ``position_check`` on (alice ``alert``, bob
``adopt``, carol ``reduce``; every 0.3 s), ``<user>-b`` with it off. Both
bots of each account buy BTC. While nothing else moves, ``<user>-a`` finds
no difference: the account's BTC is netted of ``<user>-b``'s ledger position.
Then ``ctl.paper.adjust`` moves each account's BTC behind the bots' backs,
as a user on the exchange's website would:

* alice sells part of it: ``alice-a`` reports the difference (status and
  metric figures), its position is unchanged, nothing is journaled; then a
  manual order (``intent.alice.manual``) buys some: it counts as held for
  ``alice-a`` too (manual orders are not netted out like the bots');
* bob buys more: ``bob-a`` adopts it at the last price, journaled
  (``bot_adjustments`` kind ``adopt``), and is in line at the next check;
* carol sells part: ``carol-a`` writes it off at its average cost
  (kind ``reduce``), and is in line at the next check.

The ``<user>-b`` bots keep their positions throughout.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually, service
from tests.support.strategy_host import host_settings
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_adjust_reply, decode_bots_reply
from tradebus.common.messages import (
    AdjustReply,
    BotStatus,
    OrderAccepted,
    OrderFilled,
    PaperAdjust,
)
from tradebus.strategy.bootstrap import run as run_strategy

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}, maker_fee_bps: "0",
     taker_fee_bps: "0"}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}, maker_fee_bps: "0",
     taker_fee_bps: "0"}
  - {id: carol-paper, user: carol, balances: {USDT: "10000"}, maker_fee_bps: "0",
     taker_fee_bps: "0"}
"""


def check(action: str) -> str:
    return f'{{enabled: true, interval_seconds: "0.3", action: {action}}}'


BOTS = f"""
defaults: {{venue: binance, symbol: BTCUSDT, total_quote: "1000", order_count: 2,
            max_drop_pct: "1", take_profit_pct: "5"}}
strategies:
  a: {{strategy: ladder}}
  b: {{strategy: ladder}}
users:
  - {{user: alice, account: alice-paper,
     strategies: {{a: {{position_check: {check("alert")}}}, b: {{}}}}}}
  - {{user: bob, account: bob-paper,
     strategies: {{a: {{position_check: {check("adopt")}}}, b: {{}}}}}}
  - {{user: carol, account: carol-paper,
     strategies: {{a: {{position_check: {check("reduce")}}}, b: {{}}}}}}
"""
BOTS_IDS = {f"{u}-{g}" for u in ("alice", "bob", "carol") for g in ("a", "b")}


async def statuses(nc: NATS) -> dict[str, BotStatus]:
    try:
        raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
    except Exception:
        return {}
    reply = decode_bots_reply(raw.data)
    return {s.bot: s for s in getattr(reply, "bots", [])}


async def hand_move(nc: NATS, account: str, asset: str, delta: D) -> None:
    command = PaperAdjust(account=account, asset=asset, delta=delta, actor="test")
    reply = decode_adjust_reply(await request(nc, subjects.CTL_PAPER_ADJUST, command))
    assert isinstance(reply, AdjustReply), reply


async def adjustments(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT account_id, user_id, source, symbol, asset, kind, qty, price, old_average,"
            " new_average, held, actor, ref FROM bot_adjustments ORDER BY id"
        )
    finally:
        await conn.close()


@pytest.mark.timeout(120)
async def test_position_checks_alert_adopt_and_reduce_net_of_the_other_bots(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    strategy = host_settings(nats_url, "poscheck-host", bots)
    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    nc = await nats.connect(nats_url)

    async def all_running() -> bool:
        found = await statuses(nc)
        return set(found) == BOTS_IDS and {s.state for s in found.values()} == {"running"}

    async with (
        collecting(nats_url, Bus) as bus,
        execution_service(bus.nc, execution),
        service(run_strategy, strategy, all_running),
    ):
        await bus.tick("60000", 1)  # every bot rests its ladder: 59700 and 59400
        await eventually(
            lambda: _all(nc, lambda s: s.open_orders == 2), what="every ladder resting"
        )
        await bus.tick("59000", 2)  # trades through both levels of every bot
        await eventually(
            lambda: _all(nc, lambda s: s.open_orders == 0 and s.position > 0),
            what="every bot filled",
        )
        before = await statuses(nc)
        await asyncio.sleep(1.0)  # three checks of each checked bot
        after = await statuses(nc)
        for user in ("alice", "bob", "carol"):
            # netted of <user>-b: no difference, although the account holds both positions
            a = after[f"{user}-a"]
            assert (a.position_difference, a.position_mismatch) == (0, False), a
            assert a.position_check is None and a.position == before[f"{user}-a"].position
        positions = {bot: s.position for bot, s in after.items()}
        assert await adjustments(database_url) == []

        sold = (positions["alice-a"] / 2).quantize(D("0.00001"))
        extra = D("0.005")
        gone = (positions["carol-a"] / 4).quantize(D("0.00001"))
        await hand_move(nc, "alice-paper", "BTC", -sold)
        await hand_move(nc, "bob-paper", "BTC", extra)
        await hand_move(nc, "carol-paper", "BTC", -gone)

        # alert: reported with the difference; the position is kept
        await eventually(
            lambda: _one(nc, "alice-a", lambda s: s.position_mismatch),
            timeout=5,
            what="alice-a reporting the difference",
        )
        alice = (await statuses(nc))["alice-a"]
        assert alice.position_difference == -sold
        assert alice.position == positions["alice-a"]
        assert alice.position_check is not None and f"difference {-sold}" in alice.position_check
        # a manual order is a change behind the bots' backs too: alice buys 0.002 BTC
        await bus.pub(
            "intent.alice.manual",
            '{"type":"PlaceOrder","intent_id":"m-1","account":"alice-paper",'
            '"symbol":"BTCUSDT","side":"buy","qty":"0.002","price":"59500"}',
        )
        await eventually(lambda: bus.of(OrderAccepted, "m-1"), what="the manual buy accepted")
        await bus.tick("59000", 3)
        await eventually(lambda: bus.of(OrderFilled, "m-1"), what="the manual buy filled")
        await eventually(
            lambda: _one(nc, "alice-a", lambda s: s.position_difference == -sold + D("0.002")),
            timeout=5,
            what="alice-a counting the manual buy as held for it",
        )

        # adopt: bob-a takes the extra BTC at the last price (59000), then is in line
        await eventually(
            lambda: _one(nc, "bob-a", lambda s: s.position == positions["bob-a"] + extra),
            timeout=5,
            what="bob-a adopting the extra BTC",
        )
        await eventually(
            lambda: _one(nc, "bob-a", lambda s: s.position_difference == 0),
            timeout=5,
            what="bob-a in line after the adoption",
        )
        # reduce: carol-a writes off what is gone, then is in line
        await eventually(
            lambda: _one(nc, "carol-a", lambda s: s.position == positions["carol-a"] - gone),
            timeout=5,
            what="carol-a reducing its position",
        )
        await eventually(
            lambda: _one(nc, "carol-a", lambda s: s.position_difference == 0),
            timeout=5,
            what="carol-a in line after the reduction",
        )
        final = await statuses(nc)
        for user in ("alice", "bob", "carol"):
            assert final[f"{user}-b"].position == positions[f"{user}-b"]
        bob, carol = final["bob-a"], final["carol-a"]
        assert not bob.position_mismatch and not carol.position_mismatch
        assert bob.position_check is not None and bob.position_check.startswith("adopt:")
        assert carol.position_check is not None and carol.position_check.startswith("reduce:")
        # still only alerting: alice-a's position never moved
        assert final["alice-a"].position == positions["alice-a"]

    rows = await adjustments(database_url)
    await nc.close()
    assert [(r["source"], r["kind"]) for r in rows] == [("bob-a", "adopt"), ("carol-a", "reduce")]
    adopt, reduce = rows
    bob_avg = before["bob-a"].avg_price
    assert (adopt["account_id"], adopt["user_id"], adopt["symbol"], adopt["asset"]) == (
        "bob-paper",
        "bob",
        "BTCUSDT",
        "BTC",
    )
    assert (adopt["qty"], adopt["price"], adopt["old_average"]) == (extra, D(59000), bob_avg)
    assert adopt["held"] == positions["bob-a"] + extra
    assert adopt["new_average"] == bob.avg_price
    assert (adopt["actor"], adopt["ref"]) == ("strategy", f"bob-a:{bob.run}:position:1")
    carol_avg = before["carol-a"].avg_price
    assert (reduce["qty"], reduce["price"]) == (-gone, carol_avg)
    assert reduce["old_average"] == reduce["new_average"] == carol_avg
    assert reduce["held"] == positions["carol-a"] - gone
    assert reduce["ref"] == f"carol-a:{carol.run}:position:1"


async def _all(nc: NATS, test: object) -> bool:
    found = await statuses(nc)
    return len(found) == len(BOTS_IDS) and all(test(s) for s in found.values())  # type: ignore[operator]


async def _one(nc: NATS, bot: str, test: object) -> bool:
    status = (await statuses(nc)).get(bot)
    return status is not None and bool(test(status))  # type: ignore[operator]
