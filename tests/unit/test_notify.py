"""The notifier's pure core: texts, bot status changes, digests, Alertmanager payloads,
the notifications file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tradebus.common.config import ConfigError
from tradebus.common.messages import BotStatus, ReconReport, ReconRow
from tradebus.notify.alertmanager import PayloadError, alert_message, decode_payload
from tradebus.notify.channels import UserChannels, load_notifications, merge
from tradebus.notify.events import BotWatch, Notice, drift_notice, killswitch_notice, plain
from tradebus.notify.outbox import MAX_DIGEST_LINES, Outbox


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0E-8", "0"),
        ("-0.000", "0"),
        ("64000.50", "64000.5"),
        ("1E+3", "1000"),
        ("0.00000001", "0.00000001"),
        ("-2.339396771999999999999999980", "-2.33939677199999999999999998"),
    ],
)
def test_numbers_are_plain(value: str, text: str) -> None:
    assert plain(Decimal(value)) == text


def status(**changes: object) -> BotStatus:
    base = BotStatus(
        bot="ladder-1", user="alice", account="alice-paper", strategy="ladder",
        venue="binance", symbol="BTCUSDT",
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def test_bot_watch_reports_take_profits_failures_and_position_drift_once() -> None:
    watch = BotWatch()
    assert watch.update(status()) == []  # the baseline
    assert watch.update(status(unrealized_pnl=Decimal("3"))) == []
    (tp,) = watch.update(status(cycles_completed=1, realized_pnl=Decimal("12.50000000")))
    assert tp.kind == "take_profit" and tp.bot == "ladder-1"
    assert tp.text == (
        "alice · bot ladder-1 · take-profit on BTCUSDT: cycle 1 closed, realized P&L 12.5"
    )
    (failed,) = watch.update(status(cycles_completed=1, state="failed", error="venue refused"))
    assert failed.kind == "bot_failed"
    assert failed.text == "alice · bot ladder-1 · failed: venue refused"
    assert watch.update(status(cycles_completed=1, state="failed", error="venue refused")) == []
    (drift,) = watch.update(
        status(cycles_completed=1, position_mismatch=True, position_difference=Decimal("-0.0010"))
    )
    assert drift.kind == "drift" and "-0.001 BTCUSDT" in drift.text
    # a bot first seen failed (the notifier started after it failed) is reported once
    (seen,) = BotWatch().update(status(state="failed"))
    assert seen.kind == "bot_failed"


def test_drift_and_kill_switch_texts() -> None:
    report = ReconReport(
        account="alice-paper",
        status="drift",
        rows=[
            ReconRow(asset="BTC", venue_total=Decimal("1.0"), ledger_total=Decimal("0.9"),
                     drift=Decimal("0.1"), tolerance=Decimal("0.0001"), ok=False),
            ReconRow(asset="USDT", venue_total=Decimal("5"), ledger_total=Decimal("5"),
                     drift=Decimal("0E-8"), tolerance=Decimal("0.01"), ok=True),
        ],
        ledger_watermark=3,
        ts_event=1,
        action="halted:2 bots",
    )  # fmt: skip
    assert drift_notice("alice", report).text == (
        "alice · account alice-paper drift: BTC venue 1 ledger 0.9 (drift 0.1, "
        "tolerance 0.0001); action halted:2 bots"
    )
    assert killswitch_notice("bob", "global", "exchange outage").text == (
        "bob · kill switch engaged on every account: exchange outage"
    )
    assert killswitch_notice("bob", "account.bob-paper", "").text == (
        "bob · kill switch engaged on account bob-paper"
    )


def test_a_flood_becomes_one_digest_per_user() -> None:
    outbox = Outbox(max_pending=50)
    for i in range(60):
        outbox.add(Notice(user="alice", kind="fill", text=f"fill {i}", bot="b"))
    outbox.add(Notice(user="alice", kind="halted", text="halted"))
    outbox.add(Notice(user="bob", kind="fill", text="bob's fill"))
    messages = {m.user: m for m in outbox.drain()}
    assert outbox.drain() == []
    alice, bob = messages["alice"], messages["bob"]
    assert alice.notices == 61  # 50 kept, 11 counted
    assert alice.title == "tradebus · alice · 61 events (50 × fill)"
    lines = alice.body.splitlines()
    assert len(lines) == MAX_DIGEST_LINES + 1 and lines[-1] == "... and 41 more"
    assert alice.notify_type == "info"
    assert (bob.title, bob.body, bob.notices) == ("tradebus · fill", "bob's fill", 1)


def test_mute_by_kind_and_bot_and_api_settings_win() -> None:
    settings = UserChannels(channels=["json://h/x"], mute=["fill"], mute_bots=["b2"])
    assert not settings.wants("fill", "b1")
    assert settings.wants("take_profit", "b1")
    assert not settings.wants("take_profit", "b2")
    assert settings.wants("halted")
    assert not UserChannels().wants("halted")  # no channel
    merged = merge({"alice": settings, "bob": settings}, {"alice": UserChannels()})
    assert merged["alice"] == UserChannels() and merged["bob"] == settings


ALERTS = {
    "version": "4",
    "status": "resolved",
    "receiver": "notifier",
    "groupLabels": {"alertname": "TradebusFeedStale"},
    "commonLabels": {"alertname": "TradebusFeedStale"},
    "alerts": [
        {
            "status": "resolved",
            "labels": {"alertname": "TradebusFeedStale", "venue": "binance", "severity": "warning"},
            "annotations": {"summary": "feed stale", "description": "feed stale"},
        }
    ],
    "truncatedAlerts": 2,
}


def test_alert_group_text() -> None:
    title, body, kind = alert_message(decode_payload(json.dumps(ALERTS).encode()))
    assert title == "[RESOLVED:1] warning TradebusFeedStale"
    assert body.splitlines() == [
        "[RESOLVED] TradebusFeedStale (venue=binance): feed stale",
        "... and 2 more",
    ]
    assert kind == "success"
    with pytest.raises(PayloadError, match=r"\$\.version"):
        decode_payload(json.dumps({**ALERTS, "version": "3"}).encode())


def test_notifications_file_errors_name_the_place_never_the_url(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text("users:\n  alice:\n    channels: [json://h/ok, 'nonsense://tok-123@x']\n")
    with pytest.raises(ConfigError) as err:
        load_notifications(path)
    assert "$.users.alice.channels[1]" in str(err.value)
    assert "tok-123" not in str(err.value)
    path.write_text("users:\n  alice:\n    mute: [fills]\n")
    with pytest.raises(ConfigError, match=r"'fills' - at `\$\.users\[...\]\.mute\[0\]`"):
        load_notifications(path)
    path.write_text("operators: [json://h/ops]\naccounts: {alice-paper: alice}\n")
    loaded = load_notifications(path)
    assert loaded.operators == ["json://h/ops"] and loaded.accounts == {"alice-paper": "alice"}
