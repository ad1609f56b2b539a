"""Settings of the marketdata service (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from typing import Literal

from tradebus.common.config import ConfigError, Settings

BINANCE_WS_URL = "wss://stream.binance.com:9443/stream"


class MarketdataSettings(Settings, frozen=True, kw_only=True):
    """Marketdata settings.

    Attributes
    ----------
    nats_url
        NATS server URL.
    feed
        Venue feed to run (``binance``).
    symbols
        Native symbols to stream live (``BTCUSDT,ETHUSDT``); in a replay, an
        optional filter (empty = every symbol in the files).
    replay_files
        Recorded raw-feed files (comma-separated); when set, the service
        replays them and exits at the end instead of connecting live.
    replay_speed
        ``max`` (as fast as possible), or a multiple of real time (``1``, ``10``).
    binance_ws_url
        Base URL of Binance's combined-stream endpoint.
    markets_file
        Markets YAML; empty = the default shipped with tradebus-common.
    metrics_port
        Port of the Prometheus ``/metrics`` endpoint (0 = any free port).
    """

    nats_url: str = "nats://127.0.0.1:4222"
    feed: Literal["binance"] = "binance"
    symbols: list[str] = []
    replay_files: list[str] = []
    replay_speed: str = "max"
    binance_ws_url: str = BINANCE_WS_URL
    markets_file: str = ""
    metrics_port: int = 9100
    log_level: str = "info"

    def speed(self) -> float | None:
        """``replay_speed`` as a number, ``None`` for ``max``.

        Raises
        ------
        ConfigError
            If it is neither ``max`` nor a positive number.
        """
        if self.replay_speed.strip().lower() in ("max", ""):
            return None
        try:
            value = float(self.replay_speed)
        except ValueError:
            value = 0.0
        if not value > 0:
            raise ConfigError(
                f"TRADEBUS_REPLAY_SPEED: must be 'max' or > 0, got {self.replay_speed!r}"
            )
        return value
