"""The market data dashboard: the feeds (one service per venue) and the strategies' ticks."""

from __future__ import annotations

from . import panels
from .builder import ONE_GOOD, UP_DOWN, ZERO, ZERO_GOOD, Board, target, thresholds


def marketdata() -> Board:
    """The marketdata feeds' health and throughput, and the ticks the strategies receive."""
    b = Board(
        "tradebus-marketdata",
        "tradebus market data",
        "The marketdata feeds (one service per venue) and the ticks the strategies receive.",
    )
    b.row("Feeds")
    panels.feeds_connected(
        b,
        "Connected",
        "Per venue: up while the live websocket is connected (a replay shows whether its"
        " marketdata process is up).",
    )
    b.stat(
        "Stale symbols",
        "Symbols whose stream is stale, per venue (REST polling stands in). Should be 0.",
        target("sum by (venue) (tradebus_marketdata_stale)" + ZERO, "{{venue}}"),
        w=6,
        steps=ZERO_GOOD,
    )
    b.stat(
        "Reconnects (1h)",
        "Websocket reconnections over the last hour, per venue.",
        target(
            "sum by (venue) (increase(tradebus_marketdata_reconnects_total[1h]))" + ZERO,
            "{{venue}}",
        ),
        w=6,
        decimals=0,
        steps=thresholds((None, "green"), (1, "orange"), (10, "red")),
    )
    b.stat(
        "Marketdata up",
        "Whether Prometheus reaches each marketdata service.",
        target('up{job=~"marketdata.*"}', "{{job}}"),
        w=6,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    b.timeseries(
        "Last message age",
        "Seconds since each symbol's last stream message (live feeds only). Past the stale"
        " threshold the symbol switches to REST polling.",
        target("tradebus_marketdata_last_message_age_seconds" + ZERO, "{{venue}} {{symbol}}"),
        unit="s",
    )
    b.timeseries(
        "Stale",
        "1 while the symbol's stream is stale (live feeds only).",
        target("tradebus_marketdata_stale" + ZERO, "{{venue}} {{symbol}}"),
    )
    b.row("Throughput")
    panels.ticks_published(
        b, "Ticks published on md.*, by venue, symbol and kind.", "venue", "symbol", "kind"
    )
    b.timeseries(
        "Frames / s",
        "Raw websocket frames received, by venue and kind.",
        target(
            "sum by (venue, kind) (rate(tradebus_marketdata_frames_total[1m]))",
            "{{venue}} {{kind}}",
        ),
        unit="ops",
    )
    b.timeseries(
        "Duplicates dropped / s",
        "Ticks not published again (resends, REST echoes), by venue (0 when none).",
        target(
            "sum by (venue) (rate(tradebus_marketdata_duplicates_dropped_total[1m]))" + ZERO,
            "{{venue}}",
        ),
        unit="ops",
    )
    b.timeseries(
        "REST polls / s",
        "REST best bid/ask polls while a stream is stale, by venue and result (0 when none).",
        target(
            "sum by (venue, result) (rate(tradebus_marketdata_rest_polls_total[1m]))" + ZERO,
            "{{venue}} {{result}}",
        ),
        unit="ops",
    )
    b.row("Strategy side")
    b.timeseries(
        "Ticks received by strategy / s",
        "Ticks the strategy replicas received, by venue and symbol.",
        target(
            "sum by (venue, symbol) (rate(tradebus_strategy_ticks_received_total[1m]))",
            "{{venue}} {{symbol}}",
        ),
        w=8,
        unit="ops",
    )
    b.timeseries(
        "Stale ticks dropped / s",
        "Ticks too old to give to bots when received, by venue and symbol (0 when none).",
        target(
            "sum by (venue, symbol) (rate(tradebus_strategy_stale_ticks_total[1m]))" + ZERO,
            "{{venue}} {{symbol}}",
        ),
        w=8,
        unit="ops",
    )
    panels.latency(
        b,
        "Tick -> intent",
        "From a tick's creation in marketdata to its intent's JetStream ack.",
        "tradebus_strategy_tick_to_intent_seconds",
    )
    return b
