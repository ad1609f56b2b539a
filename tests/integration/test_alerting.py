"""An alert of a real rule, fired by a real Prometheus, reaches a webhook through a real
Alertmanager, routed by its severity.

The rules are deploy/prometheus/rules' own (expr, labels, annotations; ``for:`` cut to a
second), Alertmanager's routes are deploy/alertmanager/alertmanager.yml's (timings cut to a
second), and the scrape target is a local ``/metrics`` the test sets: an account halted
(critical) and the kill switch engaged (warning), then both cleared. The webhook receiver
stands where the notifier is in compose and gets Alertmanager's payload, version 4; the
last test puts the real notifier there, which delivers to the operators' channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.alerting import Alerting, MetricsTarget, real_rule
from tests.support.metrics import free_port
from tests.support.services import running_notifier
from tests.support.webhooks import WebhookReceiver
from tradebus.cli.prom import LocalPrometheus
from tradebus.notifier.settings import NotifierSettings

FIRING = """\
# TYPE tradebus_execution_account_halted gauge
tradebus_execution_account_halted{account="alice-binance",reason="invalid api key"} 1
# TYPE tradebus_execution_killswitch_engaged gauge
tradebus_execution_killswitch_engaged{scope="global"} 1
"""
HOOK = "/v1/alertmanager"
"""Where Alertmanager posts (the notifier's path)."""
CLEARED = FIRING.replace("} 1\n", "} 0\n")


def alert_of(payload: dict[str, Any], status: str, name: str) -> bool:
    return payload.get("status") == status and any(
        a["labels"].get("alertname") == name for a in payload.get("alerts", [])
    )


@pytest.mark.slow  # make test-all; make test runs the whole chain (the notifier test below)
async def test_a_firing_rule_reaches_the_webhook_by_severity_and_resolves(
    alerting: Alerting,
) -> None:
    receiver = await WebhookReceiver().start()
    try:
        alerting.target.set(FIRING)
        await asyncio.to_thread(
            alerting.start,
            ["TradebusAccountHalted", "TradebusKillSwitchEngaged"],
            receiver.http_url(HOOK),
        )

        critical = await receiver.wait_for_match(
            HOOK, lambda p: alert_of(p, "firing", "TradebusAccountHalted")
        )
        assert critical["version"] == "4"
        assert critical["receiver"] == "operators-critical"
        assert critical["groupLabels"] == {
            "alertname": "TradebusAccountHalted",
            "severity": "critical",
        }
        (alert,) = critical["alerts"]
        assert alert["status"] == "firing"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["account"] == "alice-binance"
        assert alert["labels"]["job"] == "execution"
        assert alert["annotations"]["summary"] == "Account alice-binance halted: invalid api key"
        assert "deploy/config/accounts.yaml" in alert["annotations"]["description"]
        assert alert["startsAt"] and alert["fingerprint"]

        warning = await receiver.wait_for_match(
            HOOK, lambda p: alert_of(p, "firing", "TradebusKillSwitchEngaged")
        )
        assert warning["receiver"] == "operators-warning"
        assert warning["commonLabels"]["severity"] == "warning"
        assert warning["commonAnnotations"]["summary"] == "Kill switch engaged: global"

        alerting.target.set(CLEARED)
        resolved = await receiver.wait_for_match(
            HOOK, lambda p: alert_of(p, "resolved", "TradebusAccountHalted")
        )
        assert resolved["receiver"] == "operators-critical"
        assert resolved["alerts"][0]["endsAt"] > resolved["alerts"][0]["startsAt"]
    finally:
        await receiver.stop()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def test_a_finished_service_is_no_longer_scraped_so_service_down_ends(tmp_path: Path) -> None:
    """The demo's replay ends and its marketdata exits while the stack stays up: dropping
    its target (``LocalPrometheus.set_targets``, as the demo does) ends its ``up`` series
    within seconds, so TradebusServiceDown's expression no longer finds it down."""
    marketdata, execution = MetricsTarget(), MetricsTarget()
    prometheus = LocalPrometheus(tmp_path / "prometheus", tmp_path / "no-rules")
    down = real_rule("TradebusServiceDown")["expr"]
    try:
        marketdata.set("tradebus_marketdata_connected 1\n")
        execution.set("tradebus_execution_ready 1\n")
        prometheus.start({"marketdata": [marketdata.port], "execution": [execution.port]})
        wait_until(lambda: len(prometheus.query("up == 1")["result"]) == 2, "both up")
        marketdata.close()  # the replay ended: nothing serves its port any more
        wait_until(lambda: bool(prometheus.query(down)["result"]), "marketdata down")
        (series,) = prometheus.query(down)["result"]
        assert series["metric"]["job"] == "marketdata"

        prometheus.set_targets({"execution": [execution.port]})
        wait_until(lambda: not prometheus.query(down)["result"], "marketdata no longer down")
        assert [t["labels"]["job"] for t in prometheus.active_targets()] == ["execution"]
        assert prometheus.query('up{job="execution"} == 1')["result"]
    finally:
        prometheus.stop()
        execution.close()


async def test_a_firing_rule_reaches_the_operators_channel_through_the_notifier(
    alerting: Alerting, nats_url: str, tmp_path: Path
) -> None:
    """The whole chain of compose: a real rule fires in Prometheus, Alertmanager routes it
    to the notifier's ``/v1/alertmanager``, and the notifier delivers it through Apprise
    to the operators' channel (a local webhook), and nowhere else."""
    channels = await WebhookReceiver().start()
    notifications = tmp_path / "notifications.yaml"
    notifications.write_text(
        yaml.safe_dump(
            {
                "operators": [channels.url("/ops")],
                "users": {"alice": {"channels": [channels.url("/alice")]}},
            }
        )
    )
    settings = NotifierSettings(
        nats_url=nats_url,
        notifications_file=str(notifications),
        http_port=free_port(),
        metrics_port=free_port(),
        batch_seconds=0.2,
    )
    try:
        async with running_notifier(settings):
            alerting.target.set(FIRING)
            await asyncio.to_thread(
                alerting.start,
                ["TradebusAccountHalted"],
                webhook_url=f"http://127.0.0.1:{settings.http_port}/v1/alertmanager",
            )
            (message,) = await channels.wait_for("/ops", timeout=30)
            assert message["title"] == "[FIRING:1] critical TradebusAccountHalted"
            assert "Account alice-binance halted: invalid api key" in message["message"]
            assert message["type"] == "failure"

            alerting.target.set(CLEARED)
            _, resolved = await channels.wait_for("/ops", 2, timeout=30)
            assert resolved["title"].startswith("[RESOLVED")
            assert "TradebusAccountHalted" in resolved["title"]
            assert channels.messages("/alice") == []
    finally:
        await channels.stop()
