"""``python -m bench``: run the benchmark and print its figures (``make bench``).

Exit status 0 whenever the stack ran (the figures are never judged), 1 when
it could not (a server or service failed; the message says which and where
its log is), 130 on Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bench.hostbench import Options, main
from tradebus.common.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> Options:
    """Options from the command line (data dir: --data, else $TRADEBUS_DATA_DIR, else default)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Replay the recorded Binance feeds through marketdata -> NATS -> a strategy "
        "host with N ladder bots (and execution's paper venue), and print ticks/s and the "
        "tick-to-intent latency measured on the bus. Prints figures; never asserts them.",
    )
    parser.add_argument("--bots", type=int, default=1000, help="ladder bots (default 1000)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="directory of binance-spot_<SYMBOL>_rawfeed_*.txt.gz recordings "
        f"(default $TRADEBUS_DATA_DIR or {DEFAULT_DATA})",
    )
    parser.add_argument(
        "--no-execution",
        action="store_true",
        help="do not run execution: measure the strategy host alone (no fills, no order events)",
    )
    parser.add_argument(
        "--speed",
        default="max",
        help="replay speed: max (default) or a multiple of real time",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (configs, logs) and say where"
    )
    args = parser.parse_args(argv)
    if args.bots < 1:
        parser.error("--bots must be >= 1")
    data = args.data or Path(os.environ.get("TRADEBUS_DATA_DIR") or DEFAULT_DATA)
    if not data.is_dir():
        parser.error(f"data directory {data} does not exist (pass --data DIR)")
    return Options(
        bots=args.bots,
        data=data.resolve(),
        execution=not args.no_execution,
        keep=args.keep,
        speed=args.speed,
    )


def cli(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, return the exit status."""
    opts = parse_args(argv)
    try:
        return asyncio.run(main(opts))
    except ConfigError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
