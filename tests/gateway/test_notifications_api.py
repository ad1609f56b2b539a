"""``/api/v1/me/notifications``: each user's channels saved sealed, read by the notifier.

A real gateway and a real notifier on real NATS and Postgres; channels are Apprise
``json://`` URLs of a local webhook receiver (tests/support/webhooks.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import nats
import pytest

from tests.gateway.conftest import Gateway, gateway_settings, running_gateway
from tests.support.metrics import free_port
from tests.support.orders import whole_fill
from tests.support.services import running_notifier
from tests.support.webhooks import WebhookReceiver
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.messages import OrderFilled
from tradebus.common.sealed import write_key_pair
from tradebus.notifier.settings import NotifierSettings

ALICE_TOKEN = "alice-webhook-token-7f3a"
BOB_TOKEN = "bob-webhook-token-91c2"


def fill(user: str, source: str) -> OrderFilled:
    return whole_fill(
        user, source, "sell", "0.00100000", "64000.00", "0.0128",
        liquidity="taker", trade_id=f"t-{source}",
    )  # fmt: skip


@pytest.fixture
async def keyed_gateway(
    nats_url: str, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, Path]]:
    """A gateway sealing channels to a notifier key pair made for the test; the private key."""
    private, public, _ = write_key_pair(tmp_path / "keys", "notifier")
    settings = gateway_settings(nats_url, database_url, notify_public_key_file=str(public))
    async with running_gateway(settings, database_url) as gw:
        yield gw, private


async def test_saved_channels_are_sealed_and_reach_only_their_user(
    keyed_gateway: tuple[Gateway, Path], nats_url: str, database_url: str
) -> None:
    gw, private_key = keyed_gateway
    receiver = await WebhookReceiver().start()
    alice, bob = await gw.person("alice"), await gw.person("bob")

    assert (await alice.get("/api/v1/me/notifications")).json()["channels"] == []
    answer = await alice.put(
        "/api/v1/me/notifications",
        json={
            "channels": [receiver.url(f"/{ALICE_TOKEN}")],
            "mute": ["take_profit"],
            "mute_bots": ["quiet-1"],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["channels"] == [{"service": "JSON"}]
    assert ALICE_TOKEN not in answer.text
    answer = await bob.put(
        "/api/v1/me/notifications", json={"channels": [receiver.url(f"/{BOB_TOKEN}")]}
    )
    assert answer.status_code == 200, answer.text

    # mute options change without sending the channels again; the channels stay
    answer = await alice.put(
        "/api/v1/me/notifications", json={"mute": ["take_profit"], "mute_bots": ["quiet-1"]}
    )
    shown = (await alice.get("/api/v1/me/notifications")).json()
    assert shown["channels"] == [{"service": "JSON"}]
    assert shown["mute"] == ["take_profit"] and shown["mute_bots"] == ["quiet-1"]
    assert "fill" in shown["kinds"]

    # no plain column, and no audit event, holds a URL
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT row_to_json(n)::text AS j, sealed_channels FROM notification_settings n"
        )
    finally:
        await conn.close()
    assert len(rows) == 2
    for row in rows:
        assert ALICE_TOKEN not in row["j"] and BOB_TOKEN not in row["j"]
        assert ALICE_TOKEN.encode() not in bytes(row["sealed_channels"])
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    info = await js.stream_info(subjects.STREAM_AUDIT)
    audit = [
        (await js.get_msg(subjects.STREAM_AUDIT, seq)).data or b""
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]
    assert any(b"notifications.update" in data for data in audit)
    assert not any(ALICE_TOKEN.encode() in data or BOB_TOKEN.encode() in data for data in audit)

    # the notifier opens the saved channels with its private key
    settings = NotifierSettings(
        nats_url=nats_url,
        database_url=database_url,
        seal_private_key_file=str(private_key),
        http_port=free_port(),
        metrics_port=0,
        batch_seconds=0.2,
        refresh_seconds=0.5,
    )
    async with running_notifier(settings):
        await nc.publish(subjects.exec_evt("alice", "quiet-1"), encode(fill("alice", "quiet-1")))
        await nc.publish(subjects.exec_evt("alice", "ladder-1"), encode(fill("alice", "ladder-1")))
        await nc.flush()
        (message,) = await receiver.wait_for(f"/{ALICE_TOKEN}")
        assert message["message"] == (
            "alice · bot ladder-1 · SELL 0.001 BTCUSDT @ 64000 filled (fee 0.0128 USDT)"
        )
        await asyncio.sleep(0.6)
        assert len(receiver.messages(f"/{ALICE_TOKEN}")) == 1  # quiet-1 is muted
        assert receiver.messages(f"/{BOB_TOKEN}") == []
        await nc.publish(subjects.exec_evt("bob", "grid-1"), encode(fill("bob", "grid-1")))
        (message,) = await receiver.wait_for(f"/{BOB_TOKEN}")
        assert message["message"].startswith("bob · bot grid-1 · SELL")
    await nc.close()
    await receiver.stop()


async def test_bad_channels_are_refused_by_position_without_quoting_them(
    keyed_gateway: tuple[Gateway, Path],
) -> None:
    gw, _ = keyed_gateway
    carol = await gw.person("carol")
    answer = await carol.put(
        "/api/v1/me/notifications",
        json={"channels": ["json://127.0.0.1:1/ok", "nonsense://secret-xyz@host"]},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "channels[1]"
    assert "secret-xyz" not in answer.text
    answer = await carol.put("/api/v1/me/notifications", json={"mute": ["fills"]})
    assert answer.status_code == 400, answer.text
    assert "mute" in answer.text


async def test_without_a_notifier_key_channels_cannot_be_saved(gateway: Gateway) -> None:
    dave = await gateway.person("dave")
    answer = await dave.put("/api/v1/me/notifications", json={"channels": ["json://127.0.0.1:1/x"]})
    assert answer.status_code == 503, answer.text
    answer = await dave.put("/api/v1/me/notifications", json={"mute": ["fill"]})
    assert answer.status_code == 200, answer.text
