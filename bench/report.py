"""The benchmark's printed table: the machine, the data, and the figures of one run."""

from __future__ import annotations

import math
import os
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.analysis import NS, FileTicks, IntentFigures, TickFigures, histogram_quantile
from tradebus.cli.processes import Samples, total
from tradebus.strategy.registry import BotSpec

HOST_HISTOGRAM = "tradebus_strategy_tick_to_intent_seconds_bucket"
INTENT_TYPES = ("PlaceOrder", "CancelOrder", "CancelAll")
LABEL_WIDTH = 22


@dataclass
class Result:
    """Figures of one run, gathered by :mod:`bench.hostbench`."""

    bots: list[BotSpec]
    execution: bool
    speed: str
    files: list[FileTicks]
    replay_seconds: float
    ticks: TickFigures
    host_caught_up_ns: int | None
    host_behind_at_replay_end: int
    intents: IntentFigures
    strategy_metrics: Samples
    exec_metrics: Samples
    strategy_peak_rss_kib: int | None
    settled: bool
    intents_after_catch_up: int = 0
    wall_seconds: float = 0.0


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """CPU model, logical cores, Python version and OS."""
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def row(label: str, value: str) -> str:
    """One line of the table."""
    return f"{label:<{LABEL_WIDTH}}{value}"


def rate(count: float, ns: float) -> str:
    """``count`` per second over ``ns`` nanoseconds."""
    return f"{count / (ns / NS):,.0f} /s" if ns > 0 else "n/a"


def ms(value: float) -> str:
    """Milliseconds, 2 decimals; ``n/a`` for NaN."""
    return "n/a" if math.isnan(value) else f"{value:,.2f}"


def data_rows(result: Result, data: Path) -> list[str]:
    """The data directory and, per file, its lines and the ticks published from it."""
    lines = [row("data", str(data))]
    for f in result.files:
        lines.append(row("", f"{f.path.name}  {f.lines:>7,} lines  {f.ticks:>7,} ticks"))
    t = result.ticks
    kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(t.by_kind.items()))
    symbols = ", ".join(f"{s} {n:,}" for s, n in sorted(t.by_symbol.items()))
    lines.append(row("ticks on md.>", f"{t.total:,} ({kinds}; {symbols})"))
    return lines


def setup_rows(result: Result) -> list[str]:
    """Bots, users, symbols, execution and replay speed."""
    symbols = Counter(b.symbol for b in result.bots)
    per_symbol = ", ".join(f"{s} {n:,}" for s, n in sorted(symbols.items()))
    users = len({b.user for b in result.bots})
    user_word = "user" if users == 1 else "users"
    execution = "paper venue (execution running)" if result.execution else "not running"
    return [
        row("bots", f"{len(result.bots):,} ladder bots ({per_symbol}), {users} {user_word}"),
        row("execution", execution),
        row("replay speed", result.speed),
    ]


def throughput_rows(result: Result) -> list[str]:
    """Replay wall time, publish rate and the host's processing rate."""
    t = result.ticks
    published = f"{t.publish_rate:,.0f} /s" if not math.isnan(t.publish_rate) else "n/a"
    if result.host_caught_up_ns is None:
        processed = "n/a (the host never reached the tick count)"
    else:
        span = result.host_caught_up_ns - t.first_ns
        processed = (
            f"{rate(t.total, span)} (first tick on the bus -> host counter at {t.total:,}:"
            f" {span / NS:,.1f} s, polled every 0.2 s)"
        )
    return [
        row("replay wall time", f"{result.replay_seconds:,.1f} s (marketdata start -> exit)"),
        row("ticks/s published", f"{published} (bus, first -> last tick received)"),
        row("ticks/s by the host", processed),
        row("host behind at end", f"{result.host_behind_at_replay_end:,} ticks when replay ended"),
    ]


def latency_rows(intents: IntentFigures, after_catch_up: int) -> list[str]:
    """Intent counts, when they arrived, and the tick-to-intent latency table."""
    counts = ", ".join(f"{k} {intents.by_type.get(k, 0):,}" for k in INTENT_TYPES)
    seen = sum(intents.by_type.values())
    share = f"{after_catch_up / seen:.0%}" if seen else "n/a"
    lines = [
        row("intents on intent.>", counts),
        row("", f"{after_catch_up:,} of {seen:,} ({share}) arrived after the host's tick counter"
            " reached the total"),
        row("tick->intent (ms)", f"{'group':<40}{'n':>8}{'p50':>10}{'p90':>10}{'p99':>10}"
            f"{'max':>10}"),
    ]  # fmt: skip
    for g in intents.groups:
        figures = "".join(f"{ms(g.percentile(q)):>10}" for q in (50, 90, 99, 100))
        lines.append(row("", f"{g.label:<40}{len(g.values):>8,}{figures}"))
    lines.append(
        row(
            "",
            "intent receive time - receive time of its trigger tick (trigger_ts = tick's"
            " ts_recv), both on this process's clock",
        )
    )
    odd = f"{intents.unmatched:,} unmatched trigger, {intents.no_trigger:,} without trigger"
    lines.append(row("", f"{odd}, {intents.negative:,} negative"))
    return lines


def host_histogram_row(samples: Samples) -> str:
    """p50/p99 of the host's own ``tradebus_strategy_tick_to_intent_seconds``."""
    buckets = [
        (float(labels["le"]), value)
        for labels, value in samples.get(HOST_HISTOGRAM, [])
        if "le" in labels
    ]
    finite = [le for le, _ in buckets if not math.isinf(le)]
    top = f"> {max(finite) * 1e3:,.0f}" if finite else "beyond the buckets"
    p50, p99 = (histogram_quantile(buckets, q) * 1e3 for q in (0.5, 0.99))
    p50_text, p99_text = (top if math.isinf(v) else ms(v) for v in (p50, p99))
    return row(
        "host histogram (ms)",
        f"p50 {p50_text}, p99 {p99_text} (tick ts_init in marketdata -> JetStream ack;"
        " interpolated from buckets)",
    )


def resource_rows(result: Result) -> list[str]:
    """Strategy peak RSS and execution's fills."""
    rss = result.strategy_peak_rss_kib
    lines = [row("strategy peak RSS", "n/a" if rss is None else f"{rss / 1024:,.0f} MiB (VmHWM)")]
    if result.execution:
        m = result.exec_metrics
        fills = int(total(m, "tradebus_execution_fills_recorded_total"))
        accepted = int(total(m, "tradebus_execution_orders_total", status="accepted"))
        rejects = int(total(m, "tradebus_execution_rejects_total"))
        lines.append(
            row("execution", f"{fills:,} fills recorded, {accepted:,} orders accepted,"
                f" {rejects:,} rejects")
        )  # fmt: skip
    return lines


def render(result: Result, data: Path) -> str:
    """The whole table."""
    title = "== bench: strategy host tick throughput and tick->intent latency =="
    lines = [title, row("machine", machine())]
    lines += data_rows(result, data)
    lines += setup_rows(result)
    lines += throughput_rows(result)
    lines += latency_rows(result.intents, result.intents_after_catch_up)
    lines.append(host_histogram_row(result.strategy_metrics))
    lines += resource_rows(result)
    lines.append(row("bench wall time", f"{result.wall_seconds:,.1f} s (whole run)"))
    if not result.settled:
        lines.append(row("WARNING", "the stack did not settle in time; figures are partial"))
    return "\n".join(lines)
