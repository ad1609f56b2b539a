"""The strategy host on a real NATS: KV specs in, intents out, lifecycle by ctl.bots.*.

The host applies a layered bot file to KV ``bots``, takes its replica lease (its bots follow),
turns ticks into intents with ``Nats-Msg-Id`` = intent id, answers the
``ctl.bots`` verbs, and picks up spec changes live.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import nats
from nats.aio.client import Client as NATS

from tests.support.intents import ensure_intent_streams, intent_streams, intents_stored
from tests.support.metrics import free_port, scrape, value
from tests.support.services import eventually, service
from tests.support.ticks import trade
from tradebus.common import subjects
from tradebus.common.codec import decode_bot_command_reply, decode_bots_reply, decode_intent, encode
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import (
    BotCommandReply,
    BotsReply,
    BotStatus,
    CancelAll,
    CancelOrder,
    ErrorReply,
    Intent,
    PlaceOrder,
)
from tradebus.control.botstore import apply_specs
from tradebus.strategies.botfile import load_specs
from tradebus.strategy.bootstrap import run
from tradebus.strategy.settings import StrategySettings

BOTS = """
defaults: {venue: binance, take_profit_pct: "0.5"}
strategies:
  btc: {strategy: ladder, symbol: BTCUSDT, total_quote: "1000", order_count: 4, max_drop_pct: "1"}
  eth: {strategy: ladder, symbol: ETHUSDT, total_quote: "500", order_count: 2, max_drop_pct: "2"}
users:
  - {user: alice, account: alice-paper, strategies: {btc: {}}}
  - {user: bob, account: bob-paper, strategies: {eth: {take_profit_pct: "1"}}}
"""


async def stream_intents(nc: NATS) -> list[tuple[str, str, Intent]]:
    """(subject, Nats-Msg-Id, intent) of every message in the users' intent streams, user
    by user (no execution runs here to take them from these work queues)."""
    js = nc.jetstream()
    out: list[tuple[str, str, Intent]] = []
    for stream in sorted(await intent_streams(js)):
        info = await js.stream_info(stream)
        if not info.state.messages:
            continue
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            assert msg.subject is not None and msg.headers is not None and msg.data is not None
            out.append((msg.subject, msg.headers["Nats-Msg-Id"], decode_intent(msg.data)))
    return out


async def statuses(nc: NATS) -> dict[str, BotStatus]:
    try:
        raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
    except Exception:
        return {}
    reply = decode_bots_reply(raw.data)
    return {s.bot: s for s in reply.bots} if isinstance(reply, BotsReply) else {}


async def command(nc: NATS, verb: str, body: bytes) -> BotCommandReply | ErrorReply:
    raw = await nc.request(subjects.ctl("bots", verb), body, timeout=3)
    return decode_bot_command_reply(raw.data)


def settings_for(nats_url: str, bots: Path | None) -> StrategySettings:
    return StrategySettings(
        nats_url=nats_url,
        bots_file=str(bots) if bots else "",
        metrics_port=0,
        stop_timeout_seconds=0.2,
        heartbeat_seconds=0.2,
        lease_seconds=2,
        replica_id="test-host",
    )


async def test_bots_trade_and_obey_the_control_verbs(nats_url: str, tmp_path: Path) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    nc = await nats.connect(nats_url)
    await ensure_intent_streams(nc.jetstream(), ["alice", "bob"])  # as execution would

    async def both_running() -> bool:
        return len(await statuses(nc)) == 2

    md = subjects.md_trade
    port = free_port()
    settings = msgspec.structs.replace(settings_for(nats_url, bots), metrics_port=port)
    async with service(run, settings, both_running):
        await nc.publish(md("binance", "BTCUSDT"), encode(trade("60000", 1, "BTCUSDT")))
        await nc.publish(md("binance", "ETHUSDT"), encode(trade("3000", 2, "ETHUSDT")))
        await eventually(lambda: _count(nc, 6), what="6 intents in INTENTS")
        bob = {"bot": "bob-eth", "user": "bob", "account": "bob-paper", "symbol": "ETHUSDT"}
        await eventually(lambda: _has_bot_series(port, bob, True), what="bob-eth's position gauge")
        samples = scrape(port)
        alice = {"bot": "alice-btc", "user": "alice", "account": "alice-paper"}
        for name in ("position", "realized_pnl", "unrealized_pnl"):  # no fills yet: flat
            sample = f"tradebus_strategy_bot_{name}"
            assert value(samples, sample, **alice, symbol="BTCUSDT") == 0, name
        first = await stream_intents(nc)
        places = [(s, i.intent_id) for s, _, i in first if isinstance(i, PlaceOrder)]
        run_a = places[0][1].split(":")[1].split(".")[0]
        assert [p[0] for p in places] == ["intent.alice.alice-btc"] * 4 + ["intent.bob.bob-eth"] * 2
        assert places[0][1] == f"alice-btc:{run_a}.1:b0"
        assert all(msg_id == intent.intent_id for _, msg_id, intent in first)

        raw = await nc.request(subjects.ctl("bots", "status"), b'{"bot":"alice-btc"}')
        (status,) = decode_bots_reply(raw.data).bots  # type: ignore[union-attr]
        assert (status.state, status.phase, status.orders_placed) == ("running", "buying", 4)
        assert status.host == "test-host"

        # pause: ticks no longer reach the bot; resume: they do again
        reply = await command(nc, "pause", b'{"bot":"alice-btc"}')
        assert (
            isinstance(reply, BotCommandReply)
            and reply.status is not None
            and reply.status.state == "paused"
        )
        await nc.publish(md("binance", "BTCUSDT"), encode(trade("61000", 3, "BTCUSDT")))
        await nc.flush()
        assert (await statuses(nc))["alice-btc"].last_price == 60000
        await command(nc, "resume", b'{"bot":"alice-btc"}')
        await nc.publish(md("binance", "BTCUSDT"), encode(trade("61000", 4, "BTCUSDT")))
        await eventually(
            lambda: _last_price(nc, "alice-btc", 61000), what="the resumed bot to see ticks"
        )

        # stop cancels the open buys (cancel_on_exit); start resumes the state
        reply = await command(nc, "stop", b'{"bot":"alice-btc"}')
        assert (
            isinstance(reply, BotCommandReply)
            and reply.status is not None
            and reply.status.state == "stopped"
        )
        await eventually(lambda: _count(nc, 10), what="4 cancels")
        cancels = [i for _, _, i in await stream_intents(nc) if isinstance(i, CancelOrder)]
        assert {c.target_intent_id for c in cancels} == {p[1] for p in places[:4]}
        reply = await command(nc, "start", b'{"bot":"alice-btc"}')
        assert (
            isinstance(reply, BotCommandReply)
            and reply.status is not None
            and reply.status.state == "running"
        )

        # a fresh start cancels what an earlier run left and trades under a new run number
        reply = await command(nc, "start", b'{"bot":"bob-eth","mode":"fresh"}')
        assert isinstance(reply, BotCommandReply), reply
        await nc.publish(md("binance", "ETHUSDT"), encode(trade("3100", 5, "ETHUSDT")))
        await eventually(lambda: _count(nc, 13), what="cancel-all and 2 new buys")
        tail = [i for _, _, i in await stream_intents(nc)][-3:]
        assert isinstance(tail[0], CancelAll) and tail[0].scope == "source"
        run_b = tail[1].intent_id.split(":")[1].split(".")[0]
        assert run_b != run_a and tail[1].intent_id == f"bob-eth:{run_b}.1:b0"

        # unknown bots get one clear answer
        reply = await command(nc, "pause", b'{"bot":"nobody"}')
        assert isinstance(reply, ErrorReply) and reply.error == "unknown_bot"

        # a spec removed from KV bots is stopped and released; its orders cancelled
        catalog = MarketCatalog.load(default_markets_path())
        specs = [s for s in load_specs(bots, catalog) if s.id != "bob-eth"]
        result = await apply_specs(nc.jetstream(), specs)
        assert result.removed == ["bob-eth"]
        await eventually(lambda: _bots_are(nc, {"alice-btc"}), what="bob-eth to be retired")
        await eventually(  # a bot that left the host has no series any more
            lambda: _has_bot_series(port, bob, False), what="bob-eth's gauges removed"
        )
    await nc.close()


async def _has_bot_series(port: int, labels: dict[str, str], present: bool) -> bool:
    found = value(scrape(port), "tradebus_strategy_bot_position", **labels) is not None
    return found == present


async def _count(nc: NATS, n: int) -> bool:
    return await intents_stored(nc) >= n


async def _last_price(nc: NATS, bot: str, price: int) -> bool:
    status = (await statuses(nc)).get(bot)
    return status is not None and status.last_price == price


async def _bots_are(nc: NATS, bots: set[str]) -> bool:
    return set(await statuses(nc)) == bots


README_BOTS = """
defaults: {venue: binance}
strategies:
  ladder-btc: {strategy: ladder, symbol: BTCUSDT, total_quote: "1000", order_count: 4,
               max_drop_pct: "1", take_profit_pct: "0.5"}
users:
  - {user: alice, account: alice-paper, strategies: {ladder-btc: {}}}
"""


def readme_ctl_examples() -> list[tuple[str, bytes]]:
    """``(subject, body)`` of every ``nats req ctl.bots.<verb> '<json>'`` line of the README."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.findall(r"^nats req (ctl\.bots\.\w+)\s+'([^']*)'", readme, re.M)
    return [(subject, body.encode()) for subject, body in found]


async def test_the_readme_nats_cli_examples_work(nats_url: str, tmp_path: Path) -> None:
    examples = readme_ctl_examples()
    verbs = {subject.rsplit(".", 1)[1] for subject, _ in examples}
    assert verbs == {"status", "pause", "resume", "stop", "start", "flatten", "list"}
    bots = tmp_path / "bots.yaml"
    bots.write_text(README_BOTS)
    nc = await nats.connect(nats_url)
    await ensure_intent_streams(nc.jetstream(), ["alice", "bob"])  # as execution would

    async def running() -> bool:
        return "alice-ladder-btc" in await statuses(nc)

    async with service(run, settings_for(nats_url, bots), running):
        for subject, body in examples:
            raw = await nc.request(subject, body, timeout=3)
            reply = msgspec.json.decode(raw.data)
            assert reply["type"] in ("BotsReply", "BotCommandReply"), (subject, reply)
            if reply["type"] == "BotCommandReply":
                assert reply["ok"] and reply["status"]["bot"] == "alice-ladder-btc"
            else:
                assert [b["bot"] for b in reply["bots"]] == ["alice-ladder-btc"]
    await nc.close()


async def test_spec_changes_apply_live(nats_url: str, tmp_path: Path) -> None:
    """Added bots start, new parameters keep the state, a new market restarts fresh."""
    catalog = MarketCatalog.load(default_markets_path())
    bots = tmp_path / "bots.yaml"
    bots.write_text(README_BOTS)
    nc = await nats.connect(nats_url)
    await ensure_intent_streams(nc.jetstream(), ["alice", "bob"])  # as execution would
    js = nc.jetstream()
    md = subjects.md_trade
    async with service(
        run, settings_for(nats_url, bots), lambda: _bots_are(nc, {"alice-ladder-btc"})
    ):
        await nc.publish(md("binance", "BTCUSDT"), encode(trade("60000", 1, "BTCUSDT")))
        await eventually(lambda: _count(nc, 4), what="4 buys")
        before = (await statuses(nc))["alice-ladder-btc"]
        # a parameter change: the running bot keeps its cycle and orders
        changed = bots.read_text().replace('take_profit_pct: "0.5"', 'take_profit_pct: "0.7"')
        changed += "  - {user: bob, account: bob-paper, strategies: {ladder-btc: {}}}\n"
        (tmp_path / "v2.yaml").write_text(changed)
        result = await apply_specs(js, load_specs(tmp_path / "v2.yaml", catalog))
        assert (result.changed, result.added) == (["alice-ladder-btc"], ["bob-ladder-btc"])
        await eventually(
            lambda: _bots_are(nc, {"alice-ladder-btc", "bob-ladder-btc"}), what="bob's bot to start"
        )
        after = (await statuses(nc))["alice-ladder-btc"]
        assert (after.run, after.cycle, after.orders_placed) == (
            before.run,
            before.cycle,
            before.orders_placed,
        )
        # a new market is a new bot: stopped (orders cancelled) and started fresh
        moved = changed.replace("symbol: BTCUSDT", "symbol: ETHUSDT")
        (tmp_path / "v3.yaml").write_text(moved)
        await apply_specs(js, load_specs(tmp_path / "v3.yaml", catalog))

        async def restarted() -> bool:
            status = (await statuses(nc)).get("alice-ladder-btc")
            return status is not None and status.symbol == "ETHUSDT" and status.run != before.run

        await eventually(restarted, what="alice's bot to restart on ETHUSDT")
        cancels = [i for _, _, i in await stream_intents(nc) if isinstance(i, CancelOrder)]
        assert len(cancels) == 4
    await nc.close()


async def test_bots_never_act_on_a_stale_price(nats_url: str, tmp_path: Path) -> None:
    """A tick received long after its venue event time (resent after a reconnect) is dropped."""
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    nc = await nats.connect(nats_url)
    await ensure_intent_streams(nc.jetstream(), ["alice", "bob"])  # as execution would
    settings = msgspec.structs.replace(settings_for(nats_url, bots), max_price_age_seconds=2.0)

    async def both_running() -> bool:
        return len(await statuses(nc)) == 2

    md = subjects.md_trade("binance", "BTCUSDT")
    second = 1_000_000_000
    async with service(run, settings, both_running):
        late = msgspec.structs.replace(trade("60000", 10 * second, "BTCUSDT"), ts_event=5 * second)
        await nc.publish(md, encode(late))  # 5 s old when received: stale
        await nc.flush()
        fresh = msgspec.structs.replace(
            trade("61000", 20 * second, "BTCUSDT"), ts_event=19 * second
        )
        await nc.publish(md, encode(fresh))  # 1 s old: acted on
        await eventually(lambda: _count(nc, 4), what="the ladder's 4 buys")
        intents = [i for _, _, i in await stream_intents(nc) if isinstance(i, PlaceOrder)]
        # every buy hangs below 61000 within 1 %: none was priced off the stale 60000
        assert len(intents) == 4
        assert all(i.price is not None and 60000 < i.price <= 61000 for i in intents)
        assert (await statuses(nc))["alice-btc"].last_price == 61000
    await nc.close()
