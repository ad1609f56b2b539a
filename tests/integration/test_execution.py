"""The execution service on real NATS and PostgreSQL: intents in, orders, fills and events out.

Intents are published as a person would with the NATS CLI (raw JSON on
``intent.<user>.manual``); answers are read on ``exec.evt.<user>.manual``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import msgspec
import pytest

from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.metrics import free_port, scrape, value
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import (
    BalancesQuery,
    CancelRejected,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from tradebus.engine.paper.exchange import PAPER_VENUE

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}, maker_fee_bps: "1",
     taker_fee_bps: "2", risk: {max_order_notional: "5000"}}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
"""

PLACE = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"alice-paper","symbol":"BTCUSDT",'
    '"side":"buy","qty":"%s","price":"%s"}'
)


@pytest.fixture
async def bus(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Bus]:
    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    async with collecting(nats_url, Bus) as b, execution_service(b.nc, settings):
        yield b


async def test_manual_order_is_accepted_and_recorded(bus: Bus, database_url: str) -> None:
    await bus.pub("intent.alice.manual", PLACE % ("m-1", "0.01", "60000"))
    await eventually(lambda: bus.of(OrderAccepted, "m-1"), what="OrderAccepted")
    (event,) = bus.of(OrderAccepted, "m-1")
    assert (event.user, event.source, event.account, event.price) == (
        "alice",
        "manual",
        "alice-paper",
        D("60000"),
    )
    conn = await asyncpg.connect(database_url)
    row = await conn.fetchrow("SELECT status, client_order_id FROM orders WHERE intent_id='m-1'")
    await conn.close()
    assert row is not None
    assert row["status"] == "accepted" and str(row["client_order_id"]) == event.client_order_id


@pytest.mark.parametrize(
    ("subject", "payload", "reason"),
    [
        ("intent.alice.manual", b"\x00\xffnot json", "decode_error"),
        ("intent.alice.manual", b'{"type":"PlaceOrder","intent_id":"x"}', "decode_error"),
        (
            "intent.alice.manual",
            PLACE.replace("alice-paper", "nobody") % ("m-2", "1", "1"),
            "unknown_account",
        ),
        ("intent.bob.manual", PLACE % ("m-3", "0.01", "60000"), "not_owner"),
        ("intent.alice.manual", PLACE % ("m-4", "-1", "60000"), "invalid_quantity"),
        ("intent.alice.manual", PLACE % ("m-5", "NaN", "60000"), "invalid_quantity"),
        ("intent.alice.manual", PLACE % ("m-6", "1", "60000"), "risk_max_notional"),
        ("intent.alice.manual", PLACE % ("m-7", "1e400", "60000"), "invalid_quantity"),
        (
            "intent.alice.manual",
            PLACE.replace("BTCUSDT", "NOPE") % ("m-8", "1", "1"),
            "unknown_symbol",
        ),
    ],
)
async def test_bad_intents_are_rejected_kept_and_survived(
    bus: Bus, database_url: str, subject: str, payload: str | bytes, reason: str
) -> None:
    await bus.pub(subject, payload)
    await eventually(lambda: bus.of(OrderRejected), what="OrderRejected")
    (rejected,) = bus.of(OrderRejected)
    assert rejected.reason == reason and rejected.message
    conn = await asyncpg.connect(database_url)
    kept = await conn.fetch("SELECT reason, subject FROM rejected_intents")
    await conn.close()
    assert [(r["reason"], r["subject"]) for r in kept] == [(reason, subject)]
    # the service is still there and still serves a good intent
    await bus.pub("intent.alice.manual", PLACE % ("ok-1", "0.01", "60000"))
    await eventually(lambda: bus.of(OrderAccepted, "ok-1"), what="the next intent")


async def test_a_repeated_intent_places_one_order(bus: Bus, database_url: str) -> None:
    payload = PLACE % ("m-dup", "0.01", "60000")
    for n in range(3):  # distinct message ids: JetStream keeps all three, the ledger de-duplicates
        await bus.pub("intent.alice.manual", payload, msg_id=f"copy-{n}")
    await bus.pub("intent.alice.manual", PLACE % ("after", "0.01", "60000"))
    await eventually(lambda: bus.of(OrderAccepted, "after"), what="the following intent")
    conn = await asyncpg.connect(database_url)
    count = await conn.fetchval("SELECT count(*) FROM orders WHERE intent_id='m-dup'")
    await conn.close()
    assert count == 1
    # core subscribers see every publish; the EXEC stream (what consumers read) keeps one
    info = await bus.js.stream_info(subjects.STREAM_EXEC)
    assert info.state.messages == 2  # OrderAccepted of m-dup and of the following intent
    # the same id reused for a different order is refused, the first order untouched
    await bus.pub("intent.alice.manual", PLACE % ("m-dup", "0.02", "60000"))
    await eventually(lambda: bus.of(OrderRejected, "m-dup"), what="duplicate_intent_id")
    assert bus.of(OrderRejected, "m-dup")[0].reason == "duplicate_intent_id"


async def test_a_trade_through_the_limit_fills_and_the_ledger_matches_the_venue(
    bus: Bus, database_url: str
) -> None:
    await bus.tick("60100", 1)
    await bus.pub("intent.alice.manual", PLACE % ("m-fill", "0.01", "60000"))
    await eventually(lambda: bus.of(OrderAccepted, "m-fill"), what="OrderAccepted")
    await bus.tick("60000", 2)  # at the limit: no fill
    await bus.tick("59999.99", 3)  # strictly below: fills at the limit
    await eventually(lambda: bus.of(OrderFilled, "m-fill"), what="OrderFilled")
    (fill,) = bus.of(OrderFilled, "m-fill")
    assert (fill.price, fill.qty, fill.fee, fill.liquidity) == (
        D("60000"),
        D("0.01"),
        D("0.06"),
        "maker",
    )
    reply = decode_balances_reply(
        await request(
            bus.nc, subjects.exec_query("balances"), BalancesQuery(account=AccountId("alice-paper"))
        )
    )
    (venue,) = reply.accounts  # type: ignore[union-attr]
    venue_totals = {b.asset: b.total for b in venue.balances}
    conn = await asyncpg.connect(database_url)
    ledger = {
        r["asset"]: r["total"]
        for r in await conn.fetch(
            "SELECT asset, sum(amount) AS total FROM journal WHERE account_id='alice-paper'"
            " GROUP BY asset"
        )
    }
    fills = await conn.fetchval("SELECT count(*) FROM fills")
    await conn.close()
    assert venue_totals == ledger == {"BTC": D("0.01"), "USDT": D(10000) - 600 - D("0.06")}
    assert venue.ledger_watermark > 0 and fills == 1


async def test_cancel_and_cancel_again(bus: Bus) -> None:
    await bus.pub("intent.alice.manual", PLACE % ("m-c", "0.01", "50000"))
    await eventually(lambda: bus.of(OrderAccepted, "m-c"), what="OrderAccepted")
    cancel = msgspec.json.encode(
        {
            "type": "CancelOrder",
            "intent_id": "c-1",
            "account": "alice-paper",
            "target_intent_id": "m-c",
        }
    )
    await bus.pub("intent.alice.manual", cancel)
    await eventually(lambda: bus.of(OrderCanceled, "m-c"), what="OrderCanceled")
    assert bus.of(OrderCanceled, "m-c")[0].cancel_intent_id == "c-1"
    await bus.pub("intent.alice.manual", cancel.replace(b"c-1", b"c-2"))
    await eventually(lambda: bus.of(CancelRejected, "c-2"), what="CancelRejected")
    assert bus.of(CancelRejected, "c-2")[0].reason == "not_open"


def readme_payloads() -> dict[str, str]:
    """The JSON of every ``nats pub intent.alice.manual '<json>'`` example in the README."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.findall(r"nats pub intent\.alice\.manual '(\{.*?\})'", readme)
    return {json.loads(p)["type"]: p for p in found}


async def test_the_readme_manual_order_examples_work_as_written(bus: Bus) -> None:
    examples = readme_payloads()
    assert set(examples) == {"PlaceOrder", "CancelOrder"}
    await bus.pub("intent.alice.manual", examples["PlaceOrder"])
    await eventually(lambda: bus.of(OrderAccepted, "alice-manual-1"), what="OrderAccepted")
    await bus.pub("intent.alice.manual", examples["CancelOrder"])
    await eventually(lambda: bus.of(OrderCanceled, "alice-manual-1"), what="OrderCanceled")


async def test_metrics_count_per_user_and_show_the_consumer_lag(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    """``orders``, ``rejects`` and ``fills_recorded`` carry the user; the lag gauges appear."""
    port = free_port()
    settings = msgspec.structs.replace(
        execution_settings(nats_url, database_url, tmp_path, ACCOUNTS), metrics_port=port
    )
    async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, settings):
        await bus.pub("intent.alice.manual", PLACE % ("m-metrics", "0.01", "60000"))
        await bus.pub("intent.bob.manual", PLACE % ("m-bob", "0.01", "60000"))  # not_owner
        await eventually(lambda: bus.of(OrderAccepted, "m-metrics"), what="OrderAccepted")
        await bus.tick("59999.99", 1)
        await eventually(lambda: bus.of(OrderFilled, "m-metrics"), what="OrderFilled")
        await eventually(lambda: bus.of(OrderRejected, "m-bob"), what="OrderRejected")

        def lag_known() -> bool:
            samples = scrape(port)
            name = "tradebus_execution_consumer_ack_pending_messages"
            return value(samples, name, consumer="execution") == 0

        await eventually(lag_known, what="the consumer lag gauges")
        samples = scrape(port)
    for name, labels, expected in [
        ("tradebus_execution_orders_total", {"status": "accepted", "user": "alice"}, 1),
        ("tradebus_execution_orders_total", {"status": "filled", "user": "alice"}, 1),
        ("tradebus_execution_rejects_total", {"reason": "not_owner", "user": "bob"}, 1),
        ("tradebus_execution_fills_recorded_total", {"venue": PAPER_VENUE, "user": "alice"}, 1),
        ("tradebus_execution_consumer_pending_messages", {"consumer": "execution"}, 0),
        ("tradebus_execution_consumer_redelivered_messages", {"consumer": "execution"}, 0),
    ]:
        assert value(samples, name, **labels) == expected, (name, labels)
