"""Settings of a strategy host (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from tradebus.common.config import Settings


class StrategySettings(Settings, frozen=True, kw_only=True):
    """Strategy host settings.

    Attributes
    ----------
    nats_url
        NATS server URL.
    bots_file
        The bot YAML file (see :mod:`tradebus.strategy.botfile`).
    markets_file
        Markets YAML; empty = the default shipped with tradebus-common.
    metrics_port
        Port of the Prometheus ``/metrics`` endpoint (0 = any free port).
    stop_timeout_seconds
        On shutdown, how long to wait for the bots' cancels to be confirmed.
    """

    nats_url: str = "nats://127.0.0.1:4222"
    bots_file: str = "/etc/tradebus/bots.yaml"
    markets_file: str = ""
    metrics_port: int = 9100
    stop_timeout_seconds: float = 10.0
    log_level: str = "info"
