"""Peers in the benchmark (issue 21): the same ladder on the same trades in tradebus and its peers.

``make bench-peers`` installs the peers into their own virtualenv,
``.tools/peers/venv`` (:file:`bench/peers/install.sh`: hftbacktest, and
NautilusTrader when a Python >= 3.12 is found; never the project's .venv),
then runs ``python -m bench --only peers``; ``make bench`` runs this step
too, and prints "not installed" for it when that virtualenv is missing.

Method (:func:`run`):

1. the trades: the BTCUSDT raw captures of shared/data, trades only, tiled
   20 times (398,080 trades; :mod:`bench.peers.trades`), written as
   ``trades.npz`` (columns) and ``hftbacktest.npy`` (hftbacktest's 64-byte
   event rows) under ``.tools/peers/input``;
2. each engine in its own fresh process, which prints one JSON line
   (``events``, ``seconds``, ``placed``, ``filled``, ``cycles``, ``rss_mib``):
   tradebus (:mod:`bench.peers.tradebus_engine`, the project's Python: its
   backtest engine on pre-parsed ticks, best of 3), hftbacktest
   (:file:`hftbacktest_ladder.py`, numba, after a compile run) and
   NautilusTrader (:file:`nautilus_ladder.py`), the last two with the peers'
   Python. Every engine runs the active ladder of :mod:`bench.enginebench`
   (``ACTIVE``: 5 buys down to 0.1 % below, +20 % size a level, take profit
   0.02 %, no-fill restart after 1 minute, 5,000 USDT) with its own fill model
   (each script's docstring);
3. rows: events/s per engine, tradebus ÷ peer (events/s), and a check that
   each peer placed and filled within ``TOLERANCE`` of tradebus's counts
   (the row's detail says ``COUNTS DIFFER`` otherwise). Peak RSS is each
   process's ``VmHWM`` (peak RSS since its ``execve``) (the interpreter, the library, the trades and
   the run).

Figures only; a peer that fails gives a FAILED row, never a failed build.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.enginebench import ACTIVE

REPO_ROOT = Path(__file__).resolve().parents[2]
PEERS_DIR = REPO_ROOT / ".tools" / "peers"
HERE = Path(__file__).resolve().parent
TOLERANCE = 0.10
"""A peer's placed or filled count differing from tradebus's by more than this is flagged."""
NOT_INSTALLED = "not installed: run make bench-peers"
PEERS = (
    ("hftbacktest", "hftbacktest_ladder.py", "hftbacktest", "hftbacktest"),
    ("nautilus_trader", "nautilus_ladder.py", "columns", "NautilusTrader"),
)
"""(package, script, input, label) of each peer."""
TIMEOUT_S = 900


def peer_python(peers_dir: Path = PEERS_DIR) -> Path | None:
    """The peers' virtualenv Python, or None when ``make bench-peers`` has not installed it."""
    py = peers_dir / "venv" / "bin" / "python"
    return py if (peers_dir / ".installed").is_file() and py.exists() else None


def has_package(python: Path, package: str) -> bool:
    """Whether ``package`` is installed in ``python``'s environment."""
    probe = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({package!r}) is None)"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def run_json(cmd: list[str]) -> dict:
    """Run ``cmd``; its last stdout line as JSON.

    Raises
    ------
    RuntimeError
        If it exits non-zero (with the end of its stderr) or prints no JSON.
    """
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[1]).name} exited {proc.returncode}: {proc.stderr[-500:]}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{Path(cmd[1]).name} printed nothing; stderr: {proc.stderr[-500:]}")
    return json.loads(lines[-1])


def differs(a: int, b: int) -> bool:
    """Whether ``a`` and ``b`` differ by more than ``TOLERANCE`` of the larger."""
    return abs(a - b) > TOLERANCE * max(a, b, 1)


def counts(r: dict) -> str:
    """``placed P, filled F, cycles C, peak RSS M MiB`` of an engine's result."""
    return (
        f"placed {r['placed']:,}, filled {r['filled']:,}, cycles {r['cycles']:,};"
        f" peak RSS {r['rss_mib']:,.0f} MiB"
    )


def rows_of(ours: dict, peers: list[tuple[str, dict | str]]) -> list[dict]:
    """The step's rows from tradebus's result and each peer's.

    A peer's entry is its result, or a text: ``not installed: ...`` for a peer
    the virtualenv lacks, any other text the reason it failed.
    """
    ours_rate = ours["events"] / ours["seconds"]
    rows = [
        {
            "row": "peers: tradebus engine, active ladder (columns in memory)",
            "value": round(ours_rate),
            "unit": "events/s",
            "detail": f"{ours['events']:,} trades in {ours['seconds']:.3f} s (best of 3);"
            f" {counts(ours)}",
        }
    ]
    if "per_event_seconds" in ours:
        same = (ours["per_event_placed"], ours["per_event_filled"]) == (
            ours["placed"],
            ours["filled"],
        )
        rows.append(
            {
                "row": "peers: tradebus engine, active ladder (pre-parsed ticks, per event)",
                "value": round(ours["events"] / ours["per_event_seconds"]),
                "unit": "events/s",
                "detail": f"{ours['events']:,} trades in {ours['per_event_seconds']:.3f} s"
                f" (best of 3); placed {ours['per_event_placed']:,},"
                f" filled {ours['per_event_filled']:,}"
                + ("" if same else "; COUNTS DIFFER from the columns' run"),
            }
        )
    for label, r in peers:
        if isinstance(r, str):
            what = "not installed" if r.startswith("not installed") else "FAILED"
            rows.append({"row": f"peers: {label}: {what}", "value": None, "unit": "", "detail": r})
            continue
        rate = r["events"] / r["seconds"]
        flag = ""
        if differs(r["placed"], ours["placed"]) or differs(r["filled"], ours["filled"]):
            flag = f"; COUNTS DIFFER from tradebus by > {TOLERANCE:.0%}"
        rows += [
            {
                "row": f"peers: {label} {r['version']}, active ladder",
                "value": round(rate),
                "unit": "events/s",
                "detail": f"{r['events']:,} trades in {r['seconds']:.3f} s; {counts(r)}{flag}",
            },
            {
                "row": f"peers: tradebus ÷ {label} (events/s)",
                "value": round(ours_rate / rate, 3),
                "unit": "x",
                "detail": f"{ours_rate / rate:.3f}; peak RSS tradebus ÷ {label}:"
                f" {ours['rss_mib'] / r['rss_mib']:.2f}",
            },
        ]
    return rows


def run(data: Path, peers_dir: Path = PEERS_DIR) -> list[dict]:
    """The step (module docstring); one "not installed" row without the peers' virtualenv."""
    python = peer_python(peers_dir)
    if python is None:
        return [{"row": "peers", "value": None, "unit": "", "detail": NOT_INSTALLED}]
    from bench.peers.trades import load_trades, write_inputs

    trades = load_trades(data)
    inputs = write_inputs(trades, peers_dir / "input")
    params = json.dumps(ACTIVE)
    ours = run_json([sys.executable, "-m", "bench.peers.tradebus_engine", str(inputs["columns"])])
    results: list[tuple[str, dict | str]] = []
    for package, script, what, label in PEERS:
        if not has_package(python, package):
            why = (
                f"{package} is not in {python}; it needs a Python >= 3.12 (bench/peers/install.sh)"
            )
            results.append((label, f"not installed: {why}"))
            continue
        try:
            results.append(
                (label, run_json([str(python), str(HERE / script), str(inputs[what]), params]))
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            results.append((label, str(exc)))
    rows = rows_of(ours, results)
    names = ", ".join(f.name for f in trades.files)
    rows[0]["detail"] += (
        f"; trades: {trades.source_count:,} BTCUSDT trades of {names} x {trades.copies}"
    )
    return rows
