"""Turns a :class:`~bench.recorder.Recording` into figures, after the run.

Tick-to-intent latency on the bus: every ``PlaceOrder`` names in
``trigger_ts`` the ``ts_recv`` of the market event that caused it; the
latency is the intent's receive time minus the receive time of the first tick
with that ``(symbol, ts_recv)``, both taken by the same process on the same
clock. Intents emitted while handling an order event (a cycle restarted when
its take-profit sell filled, a leftover sell) carry the trigger of the bot's
last tick, so their latency also includes the execution round trip.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.recorder import Recording
from tradebus.common.codec import decode_intent, decode_market
from tradebus.common.messages import PlaceOrder, QuoteTick
from tradebus.marketdata.sources import read_frames

NS = 1_000_000_000
FIRST_CYCLE = re.compile(r":\d+\.1:b")
"""Intent ids are ``<bot>:<run>.<cycle>:<leg>``: this marks first-cycle buys, emitted on a tick."""


@dataclass
class TickFigures:
    """Ticks seen on ``md.>``: counts and the span of their receive times (ns)."""

    total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_symbol: Counter[str] = field(default_factory=Counter)
    first_ns: int = 0
    last_ns: int = 0
    index: dict[tuple[str, int], int] = field(default_factory=dict)
    ts_recv: dict[str, list[int]] = field(default_factory=dict)

    @property
    def publish_rate(self) -> float:
        """Ticks per second as published (first to last tick received)."""
        span = (self.last_ns - self.first_ns) / NS
        return self.total / span if span > 0 else math.nan


@dataclass
class Latencies:
    """Tick-to-intent latencies (ns) of one group of intents."""

    label: str
    values: list[int] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile ``q`` (0-100) in milliseconds; NaN when empty."""
        if not self.values:
            return math.nan
        ordered = sorted(self.values)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1] / 1e6


@dataclass
class IntentFigures:
    """Intents seen on ``intent.>``: counts by type, latency groups, unmatched triggers."""

    by_type: Counter[str] = field(default_factory=Counter)
    groups: list[Latencies] = field(default_factory=list)
    no_trigger: int = 0
    unmatched: int = 0
    negative: int = 0


def tick_figures(rec: Recording) -> TickFigures:
    """Decode every tick; index ``(symbol, ts_recv)`` -> first receive time."""
    out = TickFigures(total=len(rec.tick_times))
    if not rec.tick_times:
        return out
    out.first_ns, out.last_ns = rec.tick_times[0], rec.tick_times[-1]
    for data, t in zip(rec.tick_data, rec.tick_times, strict=True):
        tick = decode_market(data)
        out.by_kind["quote" if isinstance(tick, QuoteTick) else "trade"] += 1
        out.by_symbol[tick.symbol] += 1
        out.index.setdefault((tick.symbol, tick.ts_recv), t)
        out.ts_recv.setdefault(tick.symbol, []).append(tick.ts_recv)
    return out


def intent_figures(rec: Recording, ticks: TickFigures) -> IntentFigures:
    """Decode every intent; latency of each ``PlaceOrder`` whose trigger tick was seen."""
    out = IntentFigures()
    every = Latencies("all PlaceOrder")
    first = Latencies("first-cycle buys (on a tick)")
    later = Latencies("later PlaceOrder (tick or order event)")
    for data, t in zip(rec.intent_data, rec.intent_times, strict=True):
        intent = decode_intent(data)
        out.by_type[type(intent).__name__] += 1
        if not isinstance(intent, PlaceOrder):
            continue
        if intent.trigger_ts is None:
            out.no_trigger += 1
            continue
        tick_t = ticks.index.get((intent.symbol, intent.trigger_ts))
        if tick_t is None:
            out.unmatched += 1
            continue
        latency = t - tick_t
        if latency < 0:
            out.negative += 1
        every.values.append(latency)
        (first if FIRST_CYCLE.search(intent.intent_id) else later).values.append(latency)
    out.groups = [every, first, later]
    return out


@dataclass
class FileTicks:
    """One replayed file: its lines, receive-time span and the ticks published from it."""

    path: Path
    symbol: str
    lines: int
    ticks: int


def file_ticks(paths: list[Path], ticks: TickFigures) -> list[FileTicks]:
    """Ticks of each file: the published ticks of its symbol within its receive-time span."""
    out = []
    for path in paths:
        symbol = path.name.split("_")[1]
        stamps = [ts for ts, _ in read_frames(path)]
        lo, hi = min(stamps), max(stamps)
        count = sum(1 for ts in ticks.ts_recv.get(symbol, []) if lo <= ts <= hi)
        out.append(FileTicks(path=path, symbol=symbol, lines=len(stamps), ticks=count))
    return out


def caught_up_at(polls: list[tuple[int, float]], target: int) -> int | None:
    """Time (perf_counter ns) of the first poll at which the counter reached ``target``."""
    for t, value in polls:
        if value >= target:
            return t
    return None


def count_after(times: list[int], t_ns: int | None) -> int:
    """How many of the (ascending) receive ``times`` are later than ``t_ns``."""
    if t_ns is None:
        return 0
    return len(times) - bisect.bisect_right(times, t_ns)


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus-style quantile ``q`` (0-1) of cumulative ``(le, count)`` buckets.

    Linear interpolation inside the bucket; ``inf`` when the quantile lies
    beyond the last finite bucket. NaN when the histogram is empty.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return math.inf
            width = count - lower_count
            return lower_le + (le - lower_le) * ((rank - lower_count) / width if width else 1)
        lower_le, lower_count = le, count
    return lower_le
