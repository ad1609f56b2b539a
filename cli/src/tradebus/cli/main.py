"""The ``tradebus`` command.

``tradebus demo [--data DIR] [--duration SECONDS]`` runs the whole stack locally
(see :mod:`tradebus.cli.demo`). ``NATS_URL`` and ``DATABASE_URL`` make it use
existing servers instead of starting its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from tradebus.cli.demo import BINANCE_WS_URL, DemoOptions, run_demo
from tradebus.cli.stack import StackError
from tradebus.common.config import ConfigError


def _demo_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the whole stack locally (live Binance feed, or --data to replay recordings)",
        description="Start NATS and Postgres (or use NATS_URL / DATABASE_URL), the four "
        "services and the demo bots; paper-trade on the live public Binance feed until "
        "Ctrl+C or --duration, or replay recorded raw feeds with --data; print a summary.",
    )
    p.add_argument("--data", type=Path, help="replay the Binance raw-feed recordings in DIR")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--bots", type=Path, default=Path("deploy/config/bots.yaml"))
    p.add_argument("--accounts", type=Path, default=Path("deploy/config/accounts.yaml"))
    p.add_argument("--var", type=Path, default=Path("var"), help="data and logs (default ./var)")
    p.add_argument("--speed", default="max", help="replay speed: max, or a multiple of real time")
    p.add_argument("--recon-interval", type=float, default=10.0, help="seconds between runs")
    p.add_argument(
        "--binance-ws-url",
        default=BINANCE_WS_URL,
        help="live feed endpoint (Binance combined streams); for tests and mirrors",
    )
    p.add_argument(
        "--reset-streams",
        action="store_true",
        help="delete tradebus streams left on an external NATS_URL by another run",
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="tradebus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _demo_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        for path in (args.bots, args.accounts):
            if not path.is_file():
                parser.error(f"no such file: {path} (run from the repository root)")
        if args.data is not None and not args.data.is_dir():
            parser.error(f"--data: no such directory: {args.data}")
        opts = DemoOptions(
            data=args.data.resolve() if args.data else None,
            duration=args.duration,
            bots=args.bots.resolve(),
            accounts=args.accounts.resolve(),
            var=args.var.resolve(),
            speed=args.speed,
            recon_interval=args.recon_interval,
            nats_url=os.environ.get("NATS_URL") or None,
            database_url=os.environ.get("DATABASE_URL") or None,
            reset_streams=args.reset_streams,
            binance_ws_url=args.binance_ws_url,
        )
        try:
            sys.exit(asyncio.run(run_demo(opts)))
        except (StackError, ConfigError) as exc:
            print(f"tradebus demo: {exc}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
