"""The bus permissions of the dry-run records (stream ``DRYRUN``), on a nats-server in
operator mode: a strategy host records a dry-run bot's intent, the gateway reads it back
(``GET /api/v1/bots/{id}/dry-run``), neither trips a permission; marketdata may not
record one."""

from __future__ import annotations

from decimal import Decimal

from tests.support.secure_nats import SecureNats
from tradebus.common import subjects
from tradebus.common.bus import ensure_streams
from tradebus.common.codec import encode
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.messages import DryRunRecord, PlaceOrder
from tradebus.control.dryrun import dry_run_records

BOT = "bob-ladder-btc"


async def test_hosts_record_dry_runs_and_the_gateway_reads_them(
    secure_nats: SecureNats,
) -> None:
    strategy = await secure_nats.connect("strategy")
    gateway = await secure_nats.connect("gateway")
    marketdata = await secure_nats.connect("marketdata")
    await ensure_streams(strategy.nc.jetstream(timeout=3))  # as a host does at start
    place = PlaceOrder(
        intent_id=IntentId(f"{BOT}:1.1:b0"),
        account=AccountId("bob-paper"),
        symbol="BTCUSDT",
        side="buy",
        qty=Decimal(1),
        price=Decimal(1),
    )
    record = DryRunRecord(
        bot=BOT, user="bob", account="bob-paper", run=1, seq=1, ts_event=5, intent=place
    )
    ack = await strategy.nc.jetstream(timeout=3).publish(
        subjects.dry_run("bob", BOT), encode(record)
    )
    assert ack.stream == subjects.STREAM_DRYRUN
    read = await dry_run_records(gateway.nc.jetstream(timeout=3), "bob", BOT)
    assert [r.intent for r in read] == [place]
    assert await strategy.violations() == [] and await gateway.violations() == []
    await marketdata.nc.publish(subjects.dry_run("bob", BOT), b"{}")
    assert len(await marketdata.violations()) == 1
