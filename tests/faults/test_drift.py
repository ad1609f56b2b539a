"""Drift (seed 001: "the user sold by hand"): balances move on the venue behind the ledger's back.

Real NATS and Postgres; execution, the reconciler (one run a second) and a
strategy host run in-process. Each paper account holds BTC bought through
tradebus; then ``ctl.paper.adjust`` moves its venue balance as a user on
the exchange's website would. Within one reconciliation interval the drift
is reported, and each account's policy is applied:

* ``alert`` (carol): reported on ``recon.alert.carol-paper``, nothing else;
* ``adjust`` (alice): adjustment entries, valued at the average cost, make
  the ledger agree again; history is untouched; the next run is ok;
* ``halt`` (bob): bob's bot is paused, carol's keeps running.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import asyncpg
import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tests.support.execution import (
    Bus,
    collecting,
    execution_service,
    execution_settings,
    reconciler_settings,
)
from tests.support.services import eventually, service
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_adjust_reply, decode_bots_reply, decode_recon_report
from tradebus.common.messages import (
    AdjustReply,
    DriftPolicy,
    OrderAccepted,
    OrderFilled,
    PaperAdjust,
    ReconReport,
)
from tradebus.reconciler.bootstrap import run as run_reconciler
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}, maker_fee_bps: "0",
     taker_fee_bps: "0"}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
  - {id: carol-paper, user: carol, balances: {USDT: "10000"}}
"""

BOTS = """
defaults: {venue: binance, take_profit_pct: "0.5"}
strategies:
  btc: {strategy: ladder, symbol: BTCUSDT, total_quote: "1000", order_count: 2, max_drop_pct: "1"}
users:
  - {user: bob, account: bob-paper, strategies: {btc: {}}}
  - {user: carol, account: carol-paper, strategies: {btc: {}}}
"""

POLICIES: dict[str, DriftPolicy] = {
    "alice-paper": "adjust",
    "bob-paper": "halt",
    "DEFAULT": "alert",
}


class Recon:
    """Every report and alert the reconciler publishes (core NATS view of RECON)."""

    def __init__(self) -> None:
        self.reports: list[ReconReport] = []
        self.alerts: list[ReconReport] = []

    async def on_report(self, msg: Msg) -> None:
        self.reports.append(decode_recon_report(msg.data))

    async def on_alert(self, msg: Msg) -> None:
        self.alerts.append(decode_recon_report(msg.data))

    def last(self, account: str) -> ReconReport | None:
        mine = [r for r in self.reports if r.account == account]
        return mine[-1] if mine else None


async def bot_states(nc: NATS) -> dict[str, str]:
    try:
        raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
    except Exception:
        return {}
    return {s.bot: s.state for s in getattr(decode_bots_reply(raw.data), "bots", [])}


async def hand_move(nc: NATS, account: str, asset: str, delta: str) -> None:
    command = PaperAdjust(account=account, asset=asset, delta=D(delta))
    reply = decode_adjust_reply(await request(nc, subjects.CTL_PAPER_ADJUST, command))
    assert isinstance(reply, AdjustReply), reply


@pytest.mark.timeout(120)
async def test_drift_is_reported_within_an_interval_and_each_policy_applied(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    strategy = StrategySettings(
        nats_url=nats_url,
        bots_file=str(bots),
        metrics_port=0,
        heartbeat_seconds=0.2,
        lease_seconds=2,
        replica_id="drift-host",
    )
    reconciler = msgspec.structs.replace(
        reconciler_settings(nats_url, database_url, {"DEFAULT": D("0.00000001")}),
        interval_seconds=1.0,
        drift_policies=POLICIES,
    )
    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    recon = Recon()
    nc = await nats.connect(nats_url)
    await nc.subscribe("recon.report.>", cb=recon.on_report)
    await nc.subscribe("recon.alert.>", cb=recon.on_alert)

    async def bots_running() -> bool:
        return (
            set((await bot_states(nc)).values()) == {"running"} and len(await bot_states(nc)) == 2
        )

    async with (
        collecting(nats_url, Bus) as bus,
        execution_service(bus.nc, execution),
        service(run_strategy, strategy, bots_running),
    ):
        # alice buys 0.01 BTC at 60000 through tradebus; the bots place their ladders
        await bus.tick("60000", 1)
        await bus.pub(
            "intent.alice.manual",
            '{"type":"PlaceOrder","intent_id":"a-1","account":"alice-paper",'
            '"symbol":"BTCUSDT","side":"buy","qty":"0.01","price":"60000"}',
        )
        await eventually(lambda: bus.of(OrderAccepted, "a-1"), what="alice's buy accepted")
        await bus.tick("60000", 2)
        await eventually(lambda: bus.of(OrderFilled, "a-1"), what="alice's buy filled")

        async with service(run_reconciler, reconciler, lambda: _ok_reports(recon, 3)):
            # the user sells 0.004 BTC on the website (proceeds 248 USDT); bob and carol
            # withdraw some USDT by hand
            await hand_move(nc, "alice-paper", "BTC", "-0.004")
            await hand_move(nc, "alice-paper", "USDT", "248")
            await hand_move(nc, "bob-paper", "USDT", "-100")
            await hand_move(nc, "carol-paper", "USDT", "-50")
            await eventually(
                lambda: all(
                    any(a.account == acct for a in recon.alerts)
                    for acct in ("alice-paper", "bob-paper", "carol-paper")
                ),
                timeout=5,  # the interval is 1 s
                what="a drift alert for each account",
            )
            actions = {a.account: a.action for a in recon.alerts}
            assert actions["alice-paper"] == "adjusted"
            assert actions["bob-paper"] == "halted:1 bots"
            assert actions["carol-paper"] == "alert"

            # adjust: the next run of alice is ok; the others keep drifting
            await eventually(
                lambda: _last_status(recon, "alice-paper") == "ok",
                timeout=5,
                what="alice reconciled after the adjustment",
            )
            assert _last_status(recon, "carol-paper") == "drift"
            # halt: bob's bot is paused, carol's runs
            states = await bot_states(nc)
            assert states == {"bob-btc": "paused", "carol-btc": "running"}, states

    conn = await asyncpg.connect(database_url)
    try:
        entries = await conn.fetch(
            "SELECT asset, amount, price, ref FROM journal WHERE account_id = 'alice-paper'"
            " AND kind = 'adjustment' ORDER BY asset"
        )
        fills = await conn.fetchval("SELECT count(*) FROM fills WHERE account_id = 'alice-paper'")
    finally:
        await conn.close()
    await nc.close()
    # one adjustment per asset, once; BTC valued at its average cost, history untouched
    assert [(e["asset"], e["amount"], e["price"]) for e in entries] == [
        ("BTC", D("-0.004"), D("60000")),
        ("USDT", D("248"), None),
    ]
    assert len({e["ref"] for e in entries}) == 1 and fills == 1


async def _ok_reports(recon: Recon, accounts: int) -> bool:
    return len({r.account for r in recon.reports if r.status == "ok"}) >= accounts


def _last_status(recon: Recon, account: str) -> str | None:
    report = recon.last(account)
    return None if report is None else report.status
