"""The one table ``python -m bench`` prints: the machine, the rows, their targets and ratios.

A row is a dict ``{"row", "value", "unit", "detail"}`` as the row modules
return it (``value`` None = not measured). The runner adds ``target`` (text,
never asserted). The ratio to the floor measured in the same run:

* throughput rows (unit ends in ``/s``): value / floor pub->sub->decode msg/s
  (subscriber in a subprocess, as a service is);
* latency rows (unit ``ms`` or ``µs``): value / floor request/reply round
  trip (responder in a subprocess), p50 for p50 rows and p99 for p99 and max
  rows;
* other units (s, MiB, KiB/bot): no ratio.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

FLOOR_PUBSUB = "floor pub->sub->decode (subscriber in subprocess)"
FLOOR_RR_P50 = "floor request/reply RTT p50 (responder in subprocess)"
FLOOR_RR_P99 = "floor request/reply RTT p99 (responder in subprocess)"
TARGETS = {
    "tick->intent p99, 1,000 bots @ 10,000 ticks/s, later": "< 2 ms",
    "host ticks/s, 10,000 bots": "> 100,000 ticks/s",
    "host peak RSS, 10,000 bots": "< 200 MB (190.7 MiB)",
    "host start-up, 10,000 bots": "< 5 s",
    "first-cycle burst, 10,000 bots": "< 2 s",
    "execution throughput": "> 5,000 intents/s",
    "intent->ack p99 @ 1000/s": "< 5 ms",
    "execution CPU per intent": "< 0.1 ms",
    "engine parse + ": "> 1,000,000 events/s",
    "engine cached + active ladder": "> 10,000,000 events/s",
    "engine only, active ladder (columns)": "> 10,000,000 events/s",
    "engine first read": "> 2,000,000 events/s",
    "reconciler, in process": "> 10,000 accounts/s",
    "peers: tradebus ÷ hftbacktest": "> 1",
    "start-up: invocation -> first order placed": "< 10 s",
}
"""Row-name prefix -> the target of issue 8 or 21 for it (shown, never asserted)."""


def cpu_model() -> str:
    """The CPU model from ``/proc/cpuinfo`` (else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ram_gib() -> float:
    """Total RAM (GiB) from ``/proc/meminfo``; NaN if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return math.nan


def machine() -> str:
    """CPU model, logical cores, RAM, Python version and OS."""
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores, {ram_gib():.1f} GiB RAM, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def loadavg() -> str:
    """``/proc/loadavg``'s 1, 5 and 15 minute load averages (runnable processes)."""
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def target_of(name: str) -> str:
    """The target of a row, by name prefix; empty when the issue sets none."""
    return next((t for prefix, t in TARGETS.items() if name.startswith(prefix)), "")


def floors(rows: list[dict]) -> dict[str, float]:
    """The floor figures of this run (absent when the floor row did not run)."""
    return {
        r["row"]: float(r["value"]) for r in rows if r["row"].startswith("floor") and r["value"]
    }


def ratio(row: dict, floor: dict[str, float]) -> str:
    """The row's value as a multiple of the floor (module docstring); empty if none applies."""
    value, unit, name = row["value"], row["unit"], row["row"]
    if value is None or row["row"].startswith("floor") or math.isnan(value):
        return ""
    if unit.endswith("/s"):
        base = floor.get(FLOOR_PUBSUB)
        return f"{value / base:.3f}" if base else ""
    if unit in ("ms", "µs", "µs p50"):
        us = value * 1000 if unit == "ms" else value
        p50 = "p50" in name or unit == "µs p50"
        base = floor.get(FLOOR_RR_P50 if p50 else FLOOR_RR_P99)
        return f"{us / base:,.1f}" if base else ""
    return ""


def fmt(value: object) -> str:
    """A value for the table: thousands separators, n/a for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def render(rows: list[dict]) -> str:
    """The table: one line per row, detail last (never cut)."""
    floor = floors(rows)
    head = ("row", "value", "unit", "target", "x floor", "detail")
    cells = [
        (r["row"], fmt(r["value"]), r["unit"], r.get("target", ""), ratio(r, floor), r["detail"])
        for r in rows
    ]
    w = [max(len(c[i]) for c in [head, *cells]) for i in range(5)]
    lines = []
    for i, c in enumerate([head, *cells]):
        lines.append(
            f"{c[0]:<{w[0]}} | {c[1]:>{w[1]}} | {c[2]:<{w[2]}} | {c[3]:<{w[3]}}"
            f" | {c[4]:>{w[4]}} | {c[5]}"
        )
        if i == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


FOOTER = (
    "x floor: throughput rows (/s) = value / floor pub->sub->decode msg/s (subscriber in a"
    " subprocess); latency rows = value / floor request/reply RTT (responder in a subprocess),"
    " p50 rows over its p50, p99 and max rows over its p99. Targets are the issue's, shown,"
    " never asserted."
)
