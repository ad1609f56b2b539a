"""A person can neither backdate a fill nor drop another user's intent (issue 14, 5 and 6).

* ``trigger_ts`` used to be taken from the sender: the paper venue replayed up
  to 20,000 past events for a "late" order, so a buy backdated to just before
  a dip filled at the dip while the market was far above it. A person's
  intent (``person.intent.<user>.<source>`` in the system account) now goes
  live from its receipt and fills only on later trades.
* JetStream's duplicate window was one for every user: a person who guessed
  another user's next intent id and sent it first as ``Nats-Msg-Id`` had that
  intent dropped silently (no answer, no row, no refusal). Each user's
  intents are now in a stream of their own, so message ids are per user.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.security.conftest import PAPER_ACCOUNTS, Person, SecureNats, place, running_execution
from tests.support import ticks
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.codec import encode

DIP = "61583.22"
MARKET = "61717.64"


async def test_a_backdated_order_fills_only_on_later_trades(
    secure_nats: SecureNats, database_url: str, tmp_path: Path
) -> None:
    async with running_execution(secure_nats, database_url, tmp_path, PAPER_ACCOUNTS):
        marketdata = await secure_nats.connect("marketdata")
        subject = subjects.md_trade("binance", "BTCUSDT")
        now = time.time_ns()
        before_dip = now - 3_000_000_000
        for ts, price in ((before_dip, MARKET), (now - 2_000_000_000, DIP), (now, MARKET)):
            await marketdata.nc.publish(subject, encode(ticks.trade(price, ts, aggressor="sell")))
        await marketdata.nc.flush()
        await asyncio.sleep(0.5)  # execution's paper venue has seen the dip and the recovery

        alice = await Person.join(secure_nats, "alice")
        backdated = place("alice-backdated", "alice-paper", price="61600", trigger_ts=before_dip)
        await alice.conn.nc.publish("intent.alice.manual", backdated)
        await alice.wait_answer("alice-backdated")
        await asyncio.sleep(1.0)
        assert alice.kinds("alice-backdated") == ["OrderAccepted"]  # resting, not filled at the dip

        later = time.time_ns()
        await marketdata.nc.publish(subject, encode(ticks.trade("61590", later, aggressor="sell")))
        await marketdata.nc.flush()
        await eventually(
            lambda: "OrderFilled" in alice.kinds("alice-backdated"), what="a fill on a later trade"
        )
        (fill,) = [e for e in alice.answers("alice-backdated") if type(e).__name__ == "OrderFilled"]
        assert str(fill.price) == "61600"


async def test_a_guessed_message_id_cannot_drop_another_users_intent(
    secure_nats: SecureNats, database_url: str, tmp_path: Path
) -> None:
    async with running_execution(secure_nats, database_url, tmp_path, PAPER_ACCOUNTS):
        alice = await Person.join(secure_nats, "alice")
        bob = await Person.join(secure_nats, "bob")
        guessed = "bob-manual-7"
        await alice.conn.nc.jetstream().publish(
            "intent.alice.manual",
            place("alice-1", "alice-paper"),
            headers={"Nats-Msg-Id": guessed},
        )
        ack = await bob.conn.nc.jetstream().publish(
            "intent.bob.manual", place(guessed, "bob-paper"), headers={"Nats-Msg-Id": guessed}
        )
        assert not ack.duplicate
        assert type(await bob.wait_answer(guessed)).__name__ == "OrderAccepted"
        # within one user's own intents the id still de-duplicates a resend
        again = await bob.conn.nc.jetstream().publish(
            "intent.bob.manual", place(guessed, "bob-paper"), headers={"Nats-Msg-Id": guessed}
        )
        assert again.duplicate
        assert type(await alice.wait_answer("alice-1")).__name__ == "OrderAccepted"
