"""Force exit (``tradebus bots flatten``) on the full stack: a strategy host, execution on a
paper account, real NATS and Postgres.

A ladder bot buys one level; ``tradebus bots flatten`` (the CLI, as a person runs it)
makes the host cancel its resting buys and sell its position at market; the paper
venue fills the sale at the next trade; the bot is then ``stopped`` with no position,
the account holds no BTC, later ticks place nothing, and the command is in the audit
trail (``bot.flatten``). docs/strategies.md, "Force exit".
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from tests.support.cli import tradebus
from tests.support.execution import execution_service, execution_settings
from tests.support.services import eventually, service
from tests.support.strategy_host import host_settings, running_status
from tests.support.ticks import TradeTape
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_audit_event, decode_balances_reply
from tradebus.common.messages import BalancesQuery, BalancesReply, BotStatus
from tradebus.strategy.bootstrap import run as run_strategy

BOT = "alice-btc"
BOTS = """
defaults: {venue: binance}
strategies:
  btc: {strategy: ladder, symbol: BTCUSDT, total_quote: "1000", order_count: 4,
        max_drop_pct: "1", take_profit_pct: "5"}
users:
  - {user: alice, account: alice-paper, strategies: {btc: {}}}
"""
ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}}
"""


async def status(nc: NATS) -> BotStatus | None:
    return await running_status(nc, BOT)


async def btc_held(nc: NATS) -> Decimal:
    raw = await request(nc, subjects.exec_query("balances"), BalancesQuery())
    reply = decode_balances_reply(raw)
    assert isinstance(reply, BalancesReply), reply
    (account,) = reply.accounts
    return sum((b.total for b in account.balances if b.asset == "BTC"), Decimal(0))


async def test_cli_flatten_sells_the_position_at_market_and_stops_the_bot(
    nats_url: str, database_url: str, nc: NATS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    host = host_settings(nats_url, "flatten-host", bots)
    tick = TradeTape(nc)

    async def running() -> bool:
        return (s := await status(nc)) is not None and s.state == "running"

    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with execution_service(nc, settings), service(run_strategy, host, running):
        await tick("60000")  # 4 buys at 59850, 59700, 59550, 59400

        async def one_level_bought() -> bool:
            await tick("59800")  # below the first level only
            s = await status(nc)
            return s is not None and s.position > 0

        await eventually(one_level_bought, what="the first level to fill")
        before = await status(nc)
        assert before is not None and before.open_orders == 3
        held = before.position
        assert await btc_held(nc) == held

        code, out, err = await tradebus(capsys, "bots", "flatten", BOT, "--nats-url", nats_url)
        assert code == 0, out + err
        assert out.strip() == (
            f"{BOT}: flattening: open orders cancelled, the position closes at market,"
            " then stopped (state flattening, phase flattening) [host flatten-host]"
        )

        async def stopped() -> bool:
            await tick("59790")  # the market sell fills at the next trade's price
            s = await status(nc)
            return s is not None and s.state == "stopped"

        await eventually(stopped, what="the close to fill and the bot to stop")
        after = await status(nc)
        assert after is not None
        assert (after.phase, after.position, after.open_orders) == ("stopped", 0, 0)
        assert after.orders_placed == before.orders_placed + 1  # the one close, nothing new
        assert await btc_held(nc) == 0
        # sold at 59790 what was bought at 59850: a loss, fees included
        assert after.realized_pnl < held * (59790 - 59850)
        await tick("50000")  # stopped: a fall starts no new cycle
        code, out, _ = await tradebus(
            capsys, "bots", "status", BOT, "--json", "--nats-url", nats_url
        )
        shown = json.loads(out)
        assert (shown["state"], shown["orders_placed"]) == ("stopped", after.orders_placed)

        # flattening a stopped, flat bot again changes nothing and says so
        code, out, _ = await tradebus(capsys, "bots", "flatten", BOT, "--nats-url", nats_url)
        assert code == 0 and out.startswith(f"{BOT}: stopped (nothing left to close)"), out

        # the command is in the audit trail with who asked and the state before and after
        js = nc.jetstream()
        raw = await js.get_last_msg(subjects.STREAM_AUDIT, subjects.audit("strategy"))
        assert raw.data is not None
        last = decode_audit_event(raw.data)
        assert (last.action, last.target, last.user) == ("bot.flatten", f"bot:{BOT}", "alice")
        assert last.actor.startswith("cli:")
        info = await js.stream_info(subjects.STREAM_AUDIT)
        actions = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            event = decode_audit_event((await js.get_msg(subjects.STREAM_AUDIT, seq)).data or b"")
            if event.action == "bot.flatten":
                actions.append((event.before, event.after))
        assert [(b["state"], a["state"]) for b, a in actions] == [  # type: ignore[index]
            ("running", "flattening"),
            ("stopped", "stopped"),
        ]


async def test_a_flatten_goes_on_after_the_host_restarts(
    nats_url: str, database_url: str, nc: NATS, tmp_path: Path
) -> None:
    """The host leaves (as the last replica: it cancels the bot's open orders, the close
    among them) before the close fills; the next host resumes the bot still flattening,
    hears the cancel, closes again, and stops it once that close fills."""
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    host = host_settings(nats_url, "flatten-host", bots, stop_timeout_seconds=1, lease_seconds=1)
    tick = TradeTape(nc)

    async def running() -> bool:
        return await status(nc) is not None

    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with execution_service(nc, settings):
        async with service(run_strategy, host, running):
            await tick("60000")

            async def one_level_bought() -> bool:
                await tick("59800")
                s = await status(nc)
                return s is not None and s.position > 0

            await eventually(one_level_bought, what="the first level to fill")
            raw = await nc.request(subjects.ctl("bots", "flatten"), b'{"bot":"alice-btc"}', 3)
            assert b'"state":"flattening"' in raw.data
        assert await btc_held(nc) > 0  # no trade since: the close did not fill
        again = msgspec.structs.replace(host, replica_id="flatten-host-2")
        async with service(run_strategy, again, running):
            s = await status(nc)
            assert s is not None and (s.state, s.phase) == ("flattening", "flattening")

            async def stopped() -> bool:
                await tick("59790")
                s = await status(nc)
                return s is not None and s.state == "stopped"

            await eventually(stopped, what="the resumed flatten to close")
            s = await status(nc)
            assert s is not None and (s.position, s.open_orders) == (0, 0)
            assert await btc_held(nc) == 0
