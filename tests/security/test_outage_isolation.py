"""One venue that is down holds only its own account's intents (issue 14, point 3).

While a live account was ``connecting``, its intent raised ``RetryLater`` and
the whole fetch batch was nak'ed; redeliveries came first, so no later intent
got through: 0 of 240 paper intents of another user were processed in 2.5
minutes. Now each account has its own lane: bob's Backpack account, down for
maintenance, holds bob's live intents (in order, none refused), while alice's
paper intents are each answered within a second; once the venue is back,
bob's wait ends and his intents are placed in the order he sent them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.security.conftest import Person, SecureNats, place, running_execution
from tests.support.backpack.server import BackpackServer
from tests.support.services import eventually

KEY_ENV = "TRADEBUS_TEST_SECURITY_BOB_KEY"
SECRET_ENV = "TRADEBUS_TEST_SECURITY_BOB_SECRET"
ACCOUNTS = """
accounts:
  - {{id: alice-paper, user: alice, balances: {{USDT: "1000000000"}}}}
  - id: bob-bp
    user: bob
    venue: backpack
    market_data: backpack
    api_url: {url}
    ws_url: {ws_url}
    api_key_env: {key_env}
    secret_env: {secret_env}
    rate_per_second: 50
    burst: 20
    poll_seconds: 0.2
    timeout_seconds: 1
"""
PAPER_INTENTS = 240


@pytest.fixture
async def backpack() -> AsyncIterator[BackpackServer]:
    async with BackpackServer() as server:
        yield server


async def test_a_venue_down_holds_only_its_account(
    secure_nats: SecureNats,
    database_url: str,
    tmp_path: Path,
    backpack: BackpackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = backpack.add_account({"USDC": "100000"})
    monkeypatch.setenv(KEY_ENV, creds.api_key)
    monkeypatch.setenv(SECRET_ENV, creds.secret)
    accounts = ACCOUNTS.format(
        url=backpack.url, ws_url=backpack.ws_url, key_env=KEY_ENV, secret_env=SECRET_ENV
    )
    outage = backpack.fail_next(503, "MAINTENANCE", "Exchange is under maintenance", count=10**9)
    async with running_execution(secure_nats, database_url, tmp_path, accounts):
        alice = await Person.join(secure_nats, "alice")
        bob = await Person.join(secure_nats, "bob")
        for i in range(3):  # bob's live intents wait for his venue
            await bob.conn.nc.publish(
                "intent.bob.manual",
                place(f"bob-live-{i}", "bob-bp", price="50000", qty="0.01").replace(
                    b"BTCUSDT", b"BTC_USDC"
                ),
            )
        await bob.conn.nc.flush()
        await asyncio.sleep(1.0)

        sent: dict[str, float] = {}
        for i in range(PAPER_INTENTS):
            intent_id = f"alice-paper-{i}"
            sent[intent_id] = time.monotonic()
            await alice.conn.nc.publish("intent.alice.manual", place(intent_id, "alice-paper"))
            await asyncio.sleep(0.01)
        await eventually(
            lambda: all(alice.answers(i) for i in sent),
            timeout=30,
            what="an answer to every paper intent of alice",
            detail=lambda: f"{sum(1 for i in sent if alice.answers(i))} of {len(sent)}",
        )
        latency = {
            i: next(t for t, e in alice.events if getattr(e, "intent_id", None) == i) - sent[i]
            for i in sent
        }
        assert all(alice.kinds(i) == ["OrderAccepted"] for i in sent)
        assert max(latency.values()) < 1.0, sorted(latency.values())[-5:]
        assert bob.events == []  # held, neither refused nor placed

        outage.count = 0  # the venue is back: bob's intents go out, in his order
        await eventually(
            lambda: all(bob.answers(f"bob-live-{i}") for i in range(3)),
            timeout=40,
            what="bob's intents placed once his venue is back",
        )
        assert [bob.kinds(f"bob-live-{i}")[0] for i in range(3)] == ["OrderAccepted"] * 3
        placed = [o.client_id for o in backpack.orders(creds.api_key)]
        accepted = [int(bob.answers(f"bob-live-{i}")[0].client_order_id) for i in range(3)]
        assert placed == accepted  # one venue order each, in the order bob sent them
