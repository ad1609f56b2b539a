"""``max_concurrent_users`` on the real stack: NATS, a strategy host, execution (paper).

Three users trade one volume group (``max_concurrent_users: 2``). The host
reports each bot's volume and turn in KV ``group_volume`` and hands every bot
the group's users in play; free turns go to the waiting users by name. alice
and bob buy, carol waits (its status says so and it places nothing); when
alice is stopped, carol takes the freed turn and buys.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.cli import tradebus
from tests.support.execution import execution_service, execution_settings
from tests.support.services import eventually, service
from tests.support.strategy_host import host_settings
from tests.support.ticks import trade
from tradebus.common import subjects
from tradebus.common.codec import decode_bot_command_reply, decode_bots_reply, encode
from tradebus.common.messages import BotCommandReply, BotsReply, BotStatus
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.inputs import GroupVolumes, VolumeReport

SEC = 1_000_000_000
BOTS = """
defaults: {venue: binance}
strategies:
  vol:
    strategy: volume
    symbol: BTCUSDT
    single_trade_quote: "100"
    trade_interval_seconds: "1"
    buy_offset_pct: "0.01"
    sell_profit_pct: "0.02"
    target_volume: "100000"
    max_open_sells: 10
    max_concurrent_users: 2
    strategy_name: "BTC volume"
users:
  - {user: carol, account: carol-paper, strategies: {vol: {}}}
  - {user: bob, account: bob-paper, strategies: {vol: {}}}
  - {user: alice, account: alice-paper, strategies: {vol: {}}}
"""
ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
  - {id: carol-paper, user: carol, balances: {USDT: "10000"}}
"""


async def statuses(nc: NATS) -> dict[str, BotStatus]:
    try:
        raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
    except Exception:
        return {}
    reply = decode_bots_reply(raw.data)
    return {s.bot: s for s in reply.bots} if isinstance(reply, BotsReply) else {}


async def test_three_users_two_turns(
    nats_url: str, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    nc = await nats.connect(nats_url)
    settings = host_settings(nats_url, "turns-host", bots)
    clock = iter(range(1, 10_000))

    async def tick() -> None:  # one second of market time per trade
        t = next(clock)
        await nc.publish(subjects.md_trade("binance", "BTCUSDT"), encode(trade("60000", t * SEC)))

    async def three_running() -> bool:
        return len(await statuses(nc)) == 3

    seen: dict[str, str] = {}

    async def turns(expected: dict[str, str]) -> bool:
        await tick()
        now = await statuses(nc)
        seen.clear()
        seen.update({b: str(s.details.get("turn")) for b, s in now.items()})
        return seen == expected

    try:
        async with (
            execution_service(nc, execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)),
            service(run_strategy, settings, three_running),
        ):
            waiting = "waiting for a turn: 2 of 2 users trading (alice, bob)"
            first = {"alice-vol": "trading", "bob-vol": "trading", "carol-vol": waiting}
            await eventually(
                lambda: turns(first),
                what="alice and bob trading, carol waiting",
                detail=lambda: str(seen),
            )
            for _ in range(3):
                await tick()
            now = await statuses(nc)
            assert now["alice-vol"].orders_placed >= 1 and now["bob-vol"].orders_placed >= 1
            assert now["carol-vol"].orders_placed == 0  # it never bought
            assert now["carol-vol"].details["strategy_name"] == "BTC volume"
            code, out, _ = await tradebus(capsys, "bots", "list", "--nats-url", nats_url)
            assert code == 0 and out.splitlines()[0].split()[-2:] == ["GROUP", "HOST"], out
            assert all(line.endswith("BTC volume  turns-host") for line in out.splitlines()[2:5])
            code, out, _ = await tradebus(
                capsys, "bots", "status", "carol-vol", "--nats-url", nats_url
            )
            assert code == 0 and "waiting for a turn: 2 of 2 users trading (alice, bob)" in out

            raw = await nc.request(subjects.ctl("bots", "stop"), b'{"bot":"alice-vol"}', timeout=3)
            assert isinstance(decode_bot_command_reply(raw.data), BotCommandReply)
            later = {"alice-vol": "out of play", "bob-vol": "trading", "carol-vol": "trading"}
            await eventually(
                lambda: turns(later), what="carol to take alice's turn", detail=lambda: str(seen)
            )

            async def carol_buys() -> bool:
                await tick()
                return (await statuses(nc))["carol-vol"].orders_placed >= 1

            await eventually(carol_buys, what="carol's first buy")
    finally:
        await nc.close()


def test_the_group_view_waits_for_every_member_and_forgets_removed_bots() -> None:
    """``GroupVolumes.totals``: no turns before every bot of the group in KV ``bots`` has
    reported; a report of a bot no longer there holds no turn, its volume still counts."""
    members = {"g": ["a-vol", "b-vol"]}
    volumes = GroupVolumes(None, None, None, 0.5, members=lambda g: members[g])  # type: ignore[arg-type]
    volumes._table["g"] = {"a-vol": VolumeReport(user="a", volume=D(10), turn=True)}
    assert volumes.totals("g") == (D(10), {"a": D(10)}, None)  # b-vol not heard yet
    volumes._table["g"]["b-vol"] = VolumeReport(user="b", volume=D(5), turn=False)
    assert volumes.totals("g") == (D(15), {"a": D(10), "b": D(5)}, {"a": True, "b": False})
    members["g"] = ["b-vol"]  # a-vol removed from the bot file
    assert volumes.totals("g") == (D(15), {"a": D(10), "b": D(5)}, {"b": False})
