"""``tradebus groups ...`` on the real stack: a volume group of two users (and a disabled
third) trading on the paper venue through execution, a strategy host and NATS.

The group's status is seed 004's ``--status`` (target, total, progress, per-user
volume) and must agree with the fills execution booked; stop and start reach every
bot of the group and no other; the group reaches its target as a whole.
"""

from __future__ import annotations

import asyncio
import json
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from tests.support.cli import tradebus
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually, service
from tests.support.strategy_host import host_settings
from tests.support.ticks import trade
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.messages import OrderFilled
from tradebus.strategies.volume.bot import NO_OTO_OFFER, OTO_EMULATION
from tradebus.strategy.bootstrap import run as run_strategy

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "100000"}}
  - {id: bob-paper, user: bob, balances: {USDT: "100000"}}
  - {id: carol-paper, user: carol, balances: {USDT: "100000"}}
"""
TARGET = Decimal(1000)
BOTS = f"""
defaults: {{venue: binance}}
strategies:
  vol: {{strategy: volume, symbol: ETHUSDT, single_trade_quote: "100", trade_interval_seconds: "1",
        buy_offset_pct: "0.01", sell_profit_pct: "0.5", target_volume: "{TARGET}"}}
  btc: {{strategy: ladder, symbol: BTCUSDT, total_quote: "1000", order_count: 4,
        max_drop_pct: "1", take_profit_pct: "0.5"}}
users:
  - {{user: alice, account: alice-paper, strategies: {{vol: {{}}, btc: {{}}}}}}
  - {{user: bob, account: bob-paper, strategies: {{vol: {{single_trade_quote: "50"}}}}}}
  - {{user: carol, account: carol-paper, strategies: {{vol: {{enabled: false}}}}}}
"""
VOL_BOTS = ["alice-vol", "bob-vol", "carol-vol"]


class Fills(Bus):
    """Every order event, and the buy notional booked per user."""

    def buy_volume(self, user: str) -> Decimal:
        return sum(
            (
                e.qty * e.price
                for e in self.of(OrderFilled)
                if e.side == "buy" and e.intent_id.startswith(f"{user}-vol:")
            ),
            Decimal(0),
        )


async def test_group_verbs_and_status_on_the_real_stack(
    nats_url: str,
    database_url: str,
    nc: NATS,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = ("--nats-url", nats_url)
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    code, out, err = await tradebus(capsys, "bots", "apply", "-f", str(bots), *url)
    assert code == 0, out + err

    async def cli(*args: str) -> tuple[int, str]:
        code, out, err = await tradebus(capsys, "groups", *args, *url)
        assert err == "", err
        return code, out

    async def status() -> dict[str, Any]:
        code, out = await cli("status", "vol", "--json")
        assert code == 0, out
        return dict(json.loads(out))

    ts = 0

    async def tick(price: str = "3000") -> None:
        nonlocal ts
        ts += 1_000_000_000  # one interval of market time per trade
        await nc.publish(
            subjects.md_trade("binance", "ETHUSDT"), encode(trade(price, ts, "ETHUSDT"))
        )

    async def trade_until(check: Any, what: str) -> None:
        async def traded() -> bool:
            await tick()
            return bool(await check())

        await eventually(traded, timeout=30, what=what)

    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with (
        execution_service(nc, settings),
        collecting(nats_url, Fills) as fills,
    ):

        async def hosted() -> bool:
            return [b["state"] for b in (await status())["bots"]] == [
                "running",
                "running",
                "disabled",
            ]

        async with service(
            run_strategy,
            host_settings(nats_url, "group-host", snapshot_interval_seconds=0.2),
            hosted,
        ):
            # before any trade: the group is running, nothing bought yet
            first = await status()
            assert first["group"] == "vol" and first["strategy"] == "volume"
            assert first["strategy_name"] == "vol" and first["is_running"] is True
            assert first["target_volume"] == str(TARGET) and first["progress"] == "0.00%"
            assert [(b["bot"], b["user"], b["account"]) for b in first["bots"]] == [
                ("alice-vol", "alice", "alice-paper"),
                ("bob-vol", "bob", "bob-paper"),
                ("carol-vol", "carol", "carol-paper"),
            ]

            # both users trade; the group total is their sum, each user's what execution filled
            async def both_bought() -> bool:
                users = (await status())["user_volumes"]
                return all(Decimal(users.get(u, "0")) > 0 for u in ("alice", "bob"))

            await trade_until(both_bought, "both users' buys to fill")

            # stop the group: every enabled bot of it stops, the ladder of the other group runs on
            code, out = await cli("stop", "vol")
            assert code == 0, out
            lines = out.splitlines()
            assert lines[0].split() == ["BOT", "USER", "RESULT", "MESSAGE", "STATE"]
            rows = {line.split()[0]: line for line in lines[2:-1]}
            assert set(rows) == set(VOL_BOTS)
            assert rows["alice-vol"].split()[2] == "ok" and rows["alice-vol"].split()[-1] == (
                "stopped"
            )
            assert rows["bob-vol"].split()[2] == "ok" and "stopped" in rows["bob-vol"]
            assert rows["carol-vol"].split()[2:4] == ["disabled", "disabled"]
            assert lines[-1] == "stop vol: 2 of 3 bots"
            stopped = await status()
            assert stopped["is_running"] is False
            assert [b["state"] for b in stopped["bots"]] == ["stopped", "stopped", "disabled"]
            code, out, _ = await tradebus(capsys, "bots", "status", "alice-btc", "--json", *url)
            assert code == 0 and json.loads(out)["state"] == "running"

            # stopped bots buy nothing more: the total stays where it was
            await eventually(lambda: _settled(status), timeout=10, what="the volumes to settle")
            held = await status()
            for _ in range(3):
                await tick()
            await nc.flush()
            assert (await status())["total_volume"] == held["total_volume"]

            # start it again (JSON): every enabled bot answers, and the group trades to its target
            code, out = await cli("start", "vol", "--json")
            started = json.loads(out)
            assert code == 0 and started["ok"] is True and started["verb"] == "start"
            assert [(r["bot"], r["ok"], r["state"]) for r in started["bots"]] == [
                ("alice-vol", True, "running"),
                ("bob-vol", True, "running"),
                ("carol-vol", False, None),
            ]
            assert started["bots"][2]["error"] == "disabled"

            async def reached() -> bool:
                return Decimal((await status())["total_volume"]) >= TARGET

            await trade_until(reached, "the group to reach its target")
            await eventually(lambda: _settled(status), timeout=10, what="the volumes to settle")

            async def phases_reached() -> bool:
                phases = [b["phase"] for b in (await status())["bots"][:2]]
                return phases == ["target_reached", "target_reached"]

            await eventually(phases_reached, timeout=10, what="both bots to stop buying")

            # the final status agrees with the fills execution booked, user by user
            final = await status()
            users = {u: Decimal(v) for u, v in final["user_volumes"].items()}
            assert users == {"alice": fills.buy_volume("alice"), "bob": fills.buy_volume("bob")}
            assert users["alice"] > users["bob"] > 0  # alice buys 100 a loop, bob 50
            total = Decimal(final["total_volume"])
            assert total == users["alice"] + users["bob"] >= TARGET
            progress = (total / TARGET * 100).quantize(Decimal("0.01"), ROUND_DOWN)
            assert final["progress"] == f"{progress}%"
            assert {b["bot"]: Decimal(b["volume"]) for b in final["bots"]} == {
                "alice-vol": users["alice"],
                "bob-vol": users["bob"],
                "carol-vol": Decimal(0),
            }
            assert final["is_running"] is True  # running, its buys done; sells still rest
            # the bots' own status blocks count the same group total
            code, out, _ = await tradebus(capsys, "bots", "status", "bob-vol", "--json", *url)
            details = json.loads(out)["details"]
            assert details["group_volume"] == final["total_volume"]
            # on the paper venue OTO is emulated, and the status says so
            assert details["oto"] == "emulated"
            assert details["oto_why"] == f"{NO_OTO_OFFER}; {OTO_EMULATION}"

            # the table for people
            code, out = await cli("status", "vol")
            assert code == 0, out
            lines = out.splitlines()
            assert lines[0] == "group vol (volume): running"
            assert lines[1] == (
                f"target {TARGET}  total {total.normalize():f}  progress {progress}%"
            )
            assert lines[3].split() == ["USER", "VOLUME"]
            assert lines[5].split() == ["alice", f"{users['alice']}"]
            assert lines[6].split() == ["bob", f"{users['bob']}"]
            header = ["BOT", "USER", "ACCOUNT", "SYMBOL", "STATE", "PHASE", "VOLUME"]
            assert lines[8].split() == header
            assert lines[10].split()[:6] == [
                "alice-vol",
                "alice",
                "alice-paper",
                "ETHUSDT",
                "running",
                "target_reached",
            ]
            assert lines[12].split() == [
                "carol-vol",
                "carol",
                "carol-paper",
                "ETHUSDT",
                "disabled",
                "-",
                "0",
            ]

            # a group that is not a volume group has states, no volume figures
            code, out = await cli("status", "btc", "--json")
            ladder = json.loads(out)
            assert code == 0 and ladder["strategy"] == "ladder"
            assert (ladder["target_volume"], ladder["total_volume"], ladder["progress"]) == (
                None,
                None,
                None,
            )
            assert [(b["bot"], b["state"]) for b in ladder["bots"]] == [("alice-btc", "running")]

            # pause and resume reach every bot of the group too
            for verb, state in (("pause", "paused"), ("resume", "running")):
                code, out = await cli(verb, "vol", "--json")
                assert code == 0, out
                assert [r["state"] for r in json.loads(out)["bots"]] == [state, state, None]
                states = [b["state"] for b in (await status())["bots"]]
                assert states == [state, state, "disabled"]

            # a fresh start gives every bot of the group a new run
            async def runs() -> list[int]:
                found = []
                for bot in VOL_BOTS[:2]:
                    _, out, _ = await tradebus(capsys, "bots", "status", bot, "--json", *url)
                    found.append(json.loads(out)["run"])
                return found

            before = await runs()
            code, out = await cli("start", "vol", "--fresh")
            assert code == 0 and out.splitlines()[-1] == "start vol: 2 of 3 bots", out
            assert "started fresh" in out
            after = await runs()
            assert all(a != b for a, b in zip(after, before, strict=True)), (before, after)

            # a group flatten force-exits every enabled bot: each ends stopped
            code, out = await cli("flatten", "vol", "--json")
            assert code == 0, out
            assert [r["bot"] for r in json.loads(out)["bots"]] == VOL_BOTS
            for _ in range(50):
                states = [b["state"] for b in (await status())["bots"]]
                if states == ["stopped", "stopped", "disabled"]:
                    break
                await asyncio.sleep(0.2)
            assert states == ["stopped", "stopped", "disabled"]

            # no such group: one clear line, exit 1
            for args in (("status", "nope"), ("stop", "nope")):
                code, out = await cli(*args)
                assert (code, out.strip()) == (1, "tradebus: no bots of group 'nope' in KV bots")

        # no host runs the bots any more: a command says so per bot, exit 1
        code, out = await cli("pause", "vol")
        assert code == 1
        assert "no_host" in out and out.splitlines()[-1] == "pause vol: 0 of 3 bots"


async def _settled(status: Any) -> bool:
    """Two reads of the group's status agree on every bot's volume, the second after the
    hosts' volume report period (0.5 s) has passed."""
    first = await status()
    await asyncio.sleep(0.7)
    second = await status()
    return bool(first["user_volumes"] == second["user_volumes"])
