"""Settings of the marketdata service (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from typing import Annotated, Literal

from tradebus.common.config import DEFAULT_METRICS_HOST, SECRET, ConfigError, Settings
from tradebus.feeds.backpack import BACKPACK_REST_URL, BACKPACK_WS_URL
from tradebus.feeds.binance import BINANCE_REST_URL

BINANCE_WS_URL = "wss://stream.binance.com:9443/stream"


class MarketdataSettings(Settings, frozen=True, kw_only=True):
    """Marketdata settings.

    Attributes
    ----------
    nats_url, nats_creds
        NATS server URL, and the path of this service's ``.creds`` file (operator
        mode, ``tradebus nats-init``; empty: connect without credentials).
    feed
        Venue whose feed this process runs: ``binance``, ``backpack``, or
        ``ccxt`` (any ccxt.pro exchange, named by ``ccxt_exchange``). One
        process keeps one connection for every symbol of its venue; run one
        process per venue.
    symbols
        Native symbols to stream live (``BTCUSDT,ETHUSDT``; Backpack
        ``SOL_USDC``); in a replay, an optional filter (empty = every symbol
        in the files).
    replay_files
        Recorded raw-feed files (comma-separated); when set, the service
        replays them and exits at the end instead of connecting live.
    replay_speed
        ``max`` (as fast as possible), or a multiple of real time (``1``, ``10``).
    binance_ws_url
        Base URL of Binance's combined-stream endpoint.
    binance_rest_url
        Base URL of Binance's REST API (stale-feed fallback).
    backpack_ws_url
        Backpack's WebSocket endpoint.
    backpack_rest_url
        Base URL of Backpack's REST API (stale-feed fallback).
    ccxt_exchange
        ccxt exchange id of ``feed=ccxt`` (``okx``, ``bybit``, ``backpack``):
        the venue of its ticks; symbols are its native market ids.
    ccxt_ws_url, ccxt_rest_url
        Replace ccxt's WebSocket / REST URLs of that exchange (tests, proxies);
        empty = ccxt's own.
    stale_seconds
        A symbol whose stream sent nothing for this long (seconds) is stale:
        it is reported so, and its quotes come from REST polling until the
        stream delivers again.
    rest_poll_seconds
        Period of the REST polls of each stale symbol, seconds; 0 disables
        the REST fallback.
    status_seconds
        Period of the ``feed.status.<venue>`` message, seconds (it is also
        sent at once on every change).
    markets_file
        Markets YAML; empty = the default shipped with tradebus-common.
    metrics_port
        Port of the Prometheus ``/metrics`` endpoint (0 = any free port).
    metrics_host
        Address the ``/metrics`` endpoint listens on: loopback only by default (its
        labels name users, accounts and their P&L); ``0.0.0.0`` for a scraper on
        another host (compose sets it, the containers' network is private).
    """

    nats_url: Annotated[str, SECRET] = "nats://127.0.0.1:4222"
    nats_creds: Annotated[str, SECRET] = ""
    feed: Literal["binance", "backpack", "ccxt"] = "binance"
    symbols: list[str] = []
    replay_files: list[str] = []
    replay_speed: str = "max"
    binance_ws_url: str = BINANCE_WS_URL
    binance_rest_url: str = BINANCE_REST_URL
    backpack_ws_url: str = BACKPACK_WS_URL
    backpack_rest_url: str = BACKPACK_REST_URL
    ccxt_exchange: str = ""
    ccxt_ws_url: str = ""
    ccxt_rest_url: str = ""
    stale_seconds: float = 10.0
    rest_poll_seconds: float = 1.0
    status_seconds: float = 5.0
    markets_file: str = ""
    metrics_port: int = 9100
    metrics_host: str = DEFAULT_METRICS_HOST
    log_level: str = "info"

    def venue(self) -> str:
        """Venue of the ticks and subjects: ``feed``, or ``ccxt_exchange`` for ``feed=ccxt``."""
        return self.ccxt_exchange if self.feed == "ccxt" else self.feed

    def check_live(self) -> None:
        """Check the live-feed periods.

        Raises
        ------
        ConfigError
            If ``stale_seconds`` or ``status_seconds`` is not > 0, or
            ``rest_poll_seconds`` is negative.
        """
        for name in ("stale_seconds", "status_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"TRADEBUS_{name.upper()}: must be > 0")
        if not self.rest_poll_seconds >= 0:
            raise ConfigError("TRADEBUS_REST_POLL_SECONDS: must be >= 0 (0 = no REST fallback)")

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
