"""The notifier against real NATS and a local webhook receiver (Apprise ``json://``).

Each user's own events reach that user's channel only; a muted kind or bot does not;
a flood of fills is one digest; an Alertmanager v4 payload POSTed to the notifier
reaches the operators' channel with its severity and summary; a channel that fails
is retried, counted, and logged without its URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
import yaml

from tests.support.metrics import free_port, scrape
from tests.support.orders import whole_fill
from tests.support.services import running_notifier
from tests.support.webhooks import WebhookReceiver
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.ids import AccountId, UserId
from tradebus.common.messages import (
    AccountHalted,
    BotStatus,
    BotStatusChanged,
    OrderFilled,
    ReconReport,
    ReconRow,
)
from tradebus.notifier.settings import NotifierSettings

TOKEN = "alertmanager-token-5e1f"
"""The bearer token Alertmanager sends (``http_config.authorization``)."""
SECRETS = (
    "alice-secret-token", "bob-secret-token", "carol-secret-token", "ops-secret-token", TOKEN,
)  # fmt: skip


def fill(
    user: str, source: str, qty: str = "0.01", price: str = "64000.50", n: int = 1
) -> OrderFilled:
    return whole_fill(user, source, "buy", qty, price, "0E-8", n=n)


ALERT_GROUP: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="TradebusServiceDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "notifier",
    "groupLabels": {"alertname": "TradebusServiceDown"},
    "commonLabels": {"alertname": "TradebusServiceDown", "severity": "critical"},
    "commonAnnotations": {"summary": "execution is down"},
    "externalURL": "http://127.0.0.1:19093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "TradebusServiceDown",
                "job": "execution",
                "severity": "critical",
            },
            "annotations": {"summary": "execution is down", "description": "no scrape for 1m"},
            "startsAt": "2026-12-07T12:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:19090/graph",
            "fingerprint": "1a30ba71cca2921f",
        }
    ],
}


class Stack:
    def __init__(self, receiver: WebhookReceiver, http_port: int, metrics_port: int) -> None:
        self.receiver = receiver
        self.http_port = http_port
        self.metrics_port = metrics_port

    def post(self, body: bytes, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/v1/alertmanager",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
async def stack(
    nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Stack]:
    caplog.set_level(logging.DEBUG)
    receiver = await WebhookReceiver(failing=("/carol-secret-token",)).start()
    notifications = {
        "operators": [receiver.url("/ops-secret-token")],
        "users": {
            "alice": {"channels": [receiver.url("/alice-secret-token")], "mute_bots": ["quiet-1"]},
            "bob": {"channels": [receiver.url("/bob-secret-token")], "mute": ["fill"]},
            "carol": {"channels": [receiver.url("/carol-secret-token")]},
        },
        "accounts": {"alice-paper": "alice"},
    }
    path = tmp_path / "notifications.yaml"
    path.write_text(yaml.safe_dump(notifications))
    settings = NotifierSettings(
        nats_url=nats_url,
        notifications_file=str(path),
        http_port=free_port(),
        metrics_port=free_port(),
        batch_seconds=0.3,
        attempts=2,
        backoff_seconds=0.05,
        alertmanager_token=TOKEN,
    )
    try:
        async with running_notifier(settings):
            yield Stack(receiver, settings.http_port, settings.metrics_port)
    finally:
        await receiver.stop()


def notices_in(message: dict[str, Any]) -> int:
    """How many notices a message holds: ``tradebus · alice · 30 events (...)`` or one."""
    parts = message["title"].split(" · ")
    return int(parts[2].split()[0]) if len(parts) == 3 else 1


async def publish(nats_url: str, *messages: tuple[str, Any]) -> None:
    nc = await nats.connect(nats_url)
    for subject, message in messages:
        await nc.publish(subject, encode(message))
    await nc.flush()
    await nc.close()


async def test_a_fill_reaches_its_user_only_and_a_flood_is_one_digest(
    stack: Stack, nats_url: str
) -> None:
    await publish(nats_url, (subjects.exec_evt("alice", "ladder-1"), fill("alice", "ladder-1")))
    (message,) = await stack.receiver.wait_for("/alice-secret-token")
    assert message["message"] == "alice · bot ladder-1 · BUY 0.01 BTCUSDT @ 64000.5 filled"
    assert "0E-8" not in json.dumps(message)
    await asyncio.sleep(0.8)  # two more windows: nothing of alice's went anywhere else
    assert stack.receiver.messages("/bob-secret-token") == []
    assert stack.receiver.messages("/ops-secret-token") == []

    flood = [
        (
            subjects.exec_evt("alice", "ladder-1"),
            fill("alice", "ladder-1", price=str(64000 + i), n=i),
        )
        for i in range(2, 32)
    ]
    await publish(nats_url, *flood)
    messages = await stack.receiver.wait_for("/alice-secret-token", 2)
    await asyncio.sleep(0.8)
    digests = stack.receiver.messages("/alice-secret-token")[1:]
    assert len(digests) <= 2, "30 fills within a window or two are one digest each"
    assert sum(notices_in(d) for d in digests) == 30
    assert "64002" in messages[1]["message"]


async def test_mute_by_kind_and_by_bot(stack: Stack, nats_url: str) -> None:
    halted = AccountHalted(
        user=UserId("bob"),
        account=AccountId("bob-paper"),
        venue="paper",
        reason="auth_failed",
        message="venue refused the keys",
        ts_event=1,
    )
    await publish(
        nats_url,
        (subjects.exec_evt("bob", "ladder-1"), fill("bob", "ladder-1")),  # bob mutes fills
        (subjects.exec_evt("alice", "quiet-1"), fill("alice", "quiet-1")),  # alice mutes quiet-1
        (subjects.exec_alert("bob", "bob-paper"), halted),
    )
    (message,) = await stack.receiver.wait_for("/bob-secret-token")
    assert (
        message["message"] == "bob · account bob-paper halted: auth_failed (venue refused the keys)"
    )
    assert message["type"] == "warning"
    await asyncio.sleep(0.8)
    assert len(stack.receiver.messages("/bob-secret-token")) == 1
    assert stack.receiver.messages("/alice-secret-token") == []
    samples = scrape(stack.metrics_port)
    muted = {
        s[1]["kind"]: s[2]
        for s in samples
        if s[0] == "tradebus_notifier_notices_total" and s[1]["result"] == "muted"
    }
    assert muted == {"fill": 2.0}


async def test_an_alertmanager_group_reaches_the_operators(stack: Stack) -> None:
    status, answer = await asyncio.to_thread(stack.post, json.dumps(ALERT_GROUP).encode())
    assert (status, answer) == (200, {"channels": 1})
    (message,) = await stack.receiver.wait_for("/ops-secret-token")
    assert message["title"] == "[FIRING:1] critical TradebusServiceDown"
    assert "execution is down" in message["message"]
    assert "job=execution" in message["message"]
    assert message["type"] == "failure"
    assert stack.receiver.messages("/alice-secret-token") == []

    status, answer = await asyncio.to_thread(stack.post, json.dumps(ALERT_GROUP).encode(), "x")
    assert (status, answer["error"]) == (401, "unauthorized")
    await asyncio.sleep(0.5)
    assert len(stack.receiver.messages("/ops-secret-token")) == 1  # the refused one: nothing

    bad = dict(ALERT_GROUP, alerts=[{"status": 3}])
    status, answer = await asyncio.to_thread(stack.post, json.dumps(bad).encode())
    assert status == 400
    assert "$.alerts[0].status" in answer["message"]


async def test_a_failing_channel_is_retried_counted_and_logged_without_its_url(
    stack: Stack, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(nats_url, (subjects.exec_evt("carol", "grid-1"), fill("carol", "grid-1")))
    async with asyncio.timeout(10):
        while not any("not delivered" in r.getMessage() for r in caplog.records):
            await asyncio.sleep(0.05)
    assert stack.receiver.attempts["/carol-secret-token"] == 2  # attempts=2
    failed = [
        s[2]
        for s in scrape(stack.metrics_port)
        if s[0] == "tradebus_notifier_deliveries_total"
        and s[1] == {"scope": "users", "result": "failed"}
    ]
    assert failed == [1.0]
    (record,) = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert record.__dict__["channel"] == "#1 JSON"
    assert record.__dict__["recipient"] == "carol"
    # a delivered message too, so every logger had something to say
    await publish(nats_url, (subjects.exec_evt("alice", "ladder-1"), fill("alice", "ladder-1")))
    await stack.receiver.wait_for("/alice-secret-token")
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert logged  # the capture works: DEBUG and up of every logger
    for secret in SECRETS:
        assert secret not in logged


async def test_take_profits_kill_switch_and_drift_reach_the_owner(
    stack: Stack, nats_url: str
) -> None:
    """A bot's status change (take-profit), a kill switch put into KV ``killswitch`` the way
    execution puts it, and a drift report naming only an account (its owner from the
    notifications file): alice hears of each, in one digest or several."""
    base = BotStatus(
        bot="ladder-1", user="alice", account="alice-paper", strategy="ladder",
        venue="binance", symbol="BTCUSDT",
    )  # fmt: skip
    done = msgspec.structs.replace(base, cycles_completed=1, realized_pnl=Decimal("4.20000000"))
    report = ReconReport(
        account="alice-paper",
        status="drift",
        rows=[
            ReconRow(asset="BTC", venue_total=Decimal("0.5"), ledger_total=Decimal("0.4"),
                     drift=Decimal("0.1"), tolerance=Decimal("0"), ok=False),
        ],
        ledger_watermark=1,
        ts_event=1,
    )  # fmt: skip
    await publish(
        nats_url,
        (subjects.bot_status("alice", "ladder-1"), BotStatusChanged(status=base, ts_event=1)),
        (subjects.bot_status("alice", "ladder-1"), BotStatusChanged(status=done, ts_event=2)),
        (subjects.recon_alert("alice-paper"), report),
    )
    nc = await nats.connect(nats_url)
    kv = await nc.jetstream().create_key_value(bucket=subjects.KV_KILLSWITCH)
    await kv.put("account.alice-paper", b"venue outage")
    await nc.close()
    path = "/alice-secret-token"
    async with asyncio.timeout(10):
        while True:
            messages = stack.receiver.messages(path)
            texts = [line for m in messages for line in m["message"].splitlines()]
            if len(texts) >= 3:
                break
            await stack.receiver.wait_for(path, len(messages) + 1)
    assert sorted(texts) == sorted(
        [
            "alice · bot ladder-1 · take-profit on BTCUSDT: cycle 1 closed, realized P&L 4.2",
            "alice · account alice-paper drift: BTC venue 0.5 ledger 0.4 (drift 0.1, tolerance 0)",
            "alice · kill switch engaged on account alice-paper: venue outage",
        ]
    )
    assert stack.receiver.messages("/bob-secret-token") == []
