"""Pieces of :mod:`bench.tickbench`: the recorded ticks, one phase's figures and rows.

Units: latencies in ms (``perf_counter_ns`` differences / 1e6), rates in
ticks/s, CPU as a share of one core over the phase's wall time.
"""

from __future__ import annotations

import math
import os
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.feedbench import feed_run, raw_files
from tradebus.common.codec import decode_market

HOST_TICKS = "tradebus_strategy_ticks_received_total"
INTENT_ID = re.compile(r"^(.*):(\d+)\.(\d+):([a-z]+)\d*$")
"""``<bot>:<run>.<cycle>:<leg>``: bot, run, cycle number, leg kind (``b`` buy, ``s`` sell)."""


@dataclass
class Ticks:
    """The recording, parsed and encoded once: subject, payload, trigger key per tick."""

    subjects: list[str]
    payloads: list[bytes]
    first: dict[tuple[str, int], int]
    """``(symbol, ts_recv)`` -> index of the first tick with it."""
    files: list[Path]


async def prepare(data: Path) -> Ticks:
    """Parse and encode every tick of the raw files with marketdata's own feed code."""
    files = raw_files(data)
    kept: list[tuple[str, bytes]] = []

    async def keep(subject: str, payload: bytes) -> None:
        kept.append((subject, payload))

    await feed_run(files, keep)
    first: dict[tuple[str, int], int] = {}
    for i, (_, payload) in enumerate(kept):
        tick = decode_market(payload)
        first.setdefault((tick.symbol, tick.ts_recv), i)
    return Ticks([s for s, _ in kept], [p for _, p in kept], first, files)


def intent_set(intent_id: str) -> tuple[str, str]:
    """(``burst`` for a first-cycle buy, else ``later``; ``<bot>:<run>``)."""
    m = INTENT_ID.search(intent_id)
    if m is None:
        return "later", ""
    burst = m.group(3) == "1" and m.group(4) == "b"
    return ("burst" if burst else "later"), f"{m.group(1)}:{m.group(2)}"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank quantile ``q`` (0..1); NaN when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def host_ticks(port: int) -> float | None:
    """The host's tick counter, scraping only that metric; None if unreachable."""
    url = f"http://127.0.0.1:{port}/metrics?name[]={HOST_TICKS}"
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(HOST_TICKS)
    )


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    """One publishing phase: ticks ``lo:hi`` at ``rate`` (None = as fast as possible)."""

    name: str
    lo: int
    hi: int
    rate: float | None
    label: str = ""
    """How the rows name it (``@ 10,000 ticks/s``)."""
    t_first: int = 0
    t_last: int = 0
    t_caught_up: int | None = None
    processed: float = 0.0
    short: int = 0
    stalled: bool = False
    """The wait ended because the host's counter stopped short (not at the ticks published)."""
    """Ticks published so far (all phases) minus the host's counter after the wait."""
    t_end: int = 0
    settled: bool = False
    latencies: dict[str, list[float]] = field(default_factory=dict)
    burst_runs: set[str] = field(default_factory=set)
    """``<bot>:<run>`` of the first-cycle buys triggered in this phase."""
    cpu_end: tuple[float, ...] = ()
    """:meth:`bench.tickbench.Run.cpu` when the host caught up (else at the end of the wait)."""

    @property
    def offered(self) -> float:
        """Ticks/s actually published."""
        span = (self.t_last - self.t_first) / 1e9
        return (self.hi - self.lo) / span if span > 0 else math.nan

    @property
    def host_rate(self) -> float:
        """Ticks/s the host processed in this phase (module docstring, 5). After a stall
        (the counter stood still for 3 s, perhaps before it moved at all in this phase,
        then went on) ``processed`` is counted at the end of the wait: so is the time."""
        caught = self.t_caught_up is not None and not self.stalled
        end = self.t_caught_up if caught and self.t_caught_up is not None else self.t_end
        return self.processed / max(1e-9, (end - self.t_first) / 1e9)


def latency_rows(bots: int, p: Phase, later: bool = True) -> list[dict]:
    """p99 rows (p50, max, n in the detail) of a phase's intent sets.

    The later set always when ``later`` (n/a when empty), the burst set when it has intents.
    """
    rows: list[dict] = []
    for kind, label in (("later", "later intents"), ("burst", "start-up burst")):
        v = p.latencies.get(kind, [])
        if not v and (kind == "burst" or not later):
            continue
        detail = (
            f"p50 {pct(v, 0.5):.2f}, max {max(v, default=math.nan):.1f} ms over"
            f" {len(v):,} PlaceOrder; ticks offered at {p.offered:,.0f}/s"
        )
        if kind == "burst":
            bots_ = len({r.rsplit(":", 1)[0] for r in p.burst_runs})
            detail += (
                f"; first cycles of {bots_:,} bots in {len(p.burst_runs):,} bot runs"
                " (a run starts each time a bot is started)"
            )
        rows.append({
            "row": f"tick->intent p99, {bots:,} bots {p.label}, {label}",
            "value": round(pct(v, 0.99), 2), "unit": "ms",
            "detail": detail,
        })  # fmt: skip
    return rows


def host_row(bots: int, p: Phase) -> dict:
    """Host ticks/s of a phase, with how far it got."""
    end = "caught up" if p.t_caught_up else "cap reached"
    if p.stalled:
        end = "counter stalled 3 s short (ticks lost, or the host blocked)"
    got = f"{p.processed:,.0f} processed, {end}"
    if p.short > 0:
        got += f"; host counter {p.short:,} short of all ticks published"
    return {
        "row": f"host ticks/s, {bots:,} bots, offered at max",
        "value": round(p.host_rate), "unit": "ticks/s",
        "detail": f"{p.hi - p.lo:,} ticks offered at {p.offered:,.0f}/s; {got}"
        f"{'' if p.settled else '; did not settle (cap)'}",
    }  # fmt: skip


def slow_consumers(log: Path) -> int:
    """How many times nats-server logged a slow consumer (a client it dropped messages for)."""
    try:
        return log.read_text(errors="replace").lower().count("slow consumer")
    except OSError:
        return 0


def disconnects(log: Path) -> int:
    """How many times a service logged ``nats disconnected`` (ticks sent meanwhile are lost)."""
    try:
        return log.read_text(errors="replace").count("nats disconnected")
    except OSError:
        return 0


def plan(n: int, rate: float, offer_s: float) -> list[Phase]:
    """Start-up, fixed and max phases over ``n`` ticks (module docstring, 3)."""
    w = min(n // 8, int(rate * 2))
    a = min(w + int(rate * offer_s), w + (n - w) // 3)
    b = a + (n - a) // 2
    return [
        Phase("start-up", 0, w, rate, f"@ {rate:,.0f} ticks/s, first {w:,} ticks"),
        Phase(f"{rate:,.0f}/s", w, a, rate, f"@ {rate:,.0f} ticks/s"),
        Phase("max rate", a, b, None, "offered at max"),
    ]
