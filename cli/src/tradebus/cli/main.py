"""The ``tradebus`` command.

``tradebus demo [--data DIR] [--duration SECONDS]`` runs the whole stack locally
(see :mod:`tradebus.cli.demo`). ``NATS_URL`` and ``DATABASE_URL`` make it use
existing servers instead of starting its own.

``tradebus bots apply|list|status|pause|resume|stop|start|flatten|dry-run`` and
``tradebus intent place|cancel`` control a running stack over NATS
(see :mod:`tradebus.cli.botctl`); ``--nats-url`` or ``NATS_URL`` says where,
``--nats-creds`` or ``TRADEBUS_NATS_CREDS`` with which credentials (the
operator's ``.creds`` of ``tradebus nats-init``); without them, the running
demo's server and credentials (:mod:`tradebus.cli.connection`).

``tradebus groups start|stop|pause|resume|status GROUP`` does the same for every bot
of a strategy group, ``status`` with the group's volume target and progress (see
:mod:`tradebus.cli.groupctl`).

``tradebus import volume-config FILE [-o OUT]`` converts the original volume bot's
config file (seed 004) into a bot file (see :mod:`tradebus.cli.importctl`).

``tradebus config check FILE...`` checks bot, accounts and markets files offline and
prints every error; ``tradebus config schema KIND`` prints a file's JSON Schema (see
:mod:`tradebus.cli.configctl`).

``tradebus backtest`` runs a strategy over recorded market data, offline
(see :mod:`tradebus.cli.backtest`); ``tradebus strategies`` lists the
strategies installed, users' plug-ins included (:mod:`tradebus.cli.strategies`).

``tradebus nats-init`` makes the NATS operator, accounts, keys and credentials
of an installation and nats-server's config; ``tradebus nats-creds USER``
prints a person's credentials (see :mod:`tradebus.cli.natsinit`).

``tradebus users create --admin NAME`` makes the gateway's first admin (the password
from a prompt or ``--password-file``; see :mod:`tradebus.cli.users`).

``tradebus history orders|fills|pnl`` shows the ledger's orders, fills and P&L per
bot and day, from Postgres (see :mod:`tradebus.cli.history`).

``tradebus seal-keys --dir DIR`` makes execution's key pair for sealed exchange
credentials (see :mod:`tradebus.cli.sealkeys`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path

import msgspec

from tradebus.cli import (
    backtest,
    botctl,
    configctl,
    groupctl,
    history,
    importctl,
    killctl,
    natsinit,
    reconctl,
    sealkeys,
    strategies,
    users,
)
from tradebus.cli.args import decimal_arg
from tradebus.cli.connection import resolve_nats
from tradebus.cli.demo import BINANCE_WS_URL, DemoOptions, run_demo
from tradebus.cli.demo_gateway import DEFAULT_GATEWAY_PORT
from tradebus.cli.stack import StackError
from tradebus.common.config import ConfigError


def speed_arg(text: str) -> str:
    """``--speed``: ``max``, or a finite multiple of real time > 0 (``1``, ``0.5``, ``20``).

    Raises
    ------
    argparse.ArgumentTypeError
        Otherwise, naming the value (argparse adds the option; exit status 2).
    """
    if text.strip().lower() == "max":
        return "max"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"must be 'max' or a multiple of real time > 0, e.g. 1 (got {text!r})"
        )
    return text.strip()


def positive_seconds(text: str) -> float:
    """A number of seconds > 0 (``--duration``, ``--recon-interval``).

    Raises
    ------
    argparse.ArgumentTypeError
        Otherwise, naming the value (argparse adds the option; exit status 2).
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 (got {text!r})")
    return value


def port_arg(text: str) -> int:
    """A TCP port, 1 to 65535 (``--gateway-port``).

    Raises
    ------
    argparse.ArgumentTypeError
        Otherwise, naming the value.
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number, 1 to 65535 (got {text!r})")
    return value


def _demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole stack locally (live Binance feed, or --data to replay recordings)",
        description="Start NATS and Postgres (or use NATS_URL / DATABASE_URL), the five "
        "services (execution, reconciler, strategy, gateway, marketdata) and the demo bots; "
        "paper-trade on the live public Binance feed until "
        "Ctrl+C or --duration, or replay recorded raw feeds with --data; print a summary.",
    )
    p.add_argument("--data", type=Path, help="replay the Binance raw-feed recordings in DIR")
    p.add_argument("--duration", type=positive_seconds, help="stop after this many seconds (> 0)")
    p.add_argument("--bots", type=Path, default=Path("deploy/config/bots.yaml"))
    p.add_argument("--accounts", type=Path, default=Path("deploy/config/accounts.yaml"))
    p.add_argument("--var", type=Path, default=Path("var"), help="data and logs (default ./var)")
    p.add_argument(
        "--speed",
        type=speed_arg,
        default="max",
        help="replay speed: max (default), or a multiple of real time > 0 (1: as recorded)",
    )
    p.add_argument(
        "--recon-interval",
        type=positive_seconds,
        default=10.0,
        help="seconds between reconciliations (> 0)",
    )
    p.add_argument(
        "--gateway-port",
        type=port_arg,
        default=DEFAULT_GATEWAY_PORT,
        help=f"the gateway's port on 127.0.0.1 (default {DEFAULT_GATEWAY_PORT}; another free"
        " one if it is taken)",
    )
    p.add_argument(
        "--stay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --data: when the replay ends, keep the stack (bots, gateway, web page) up"
        " until Ctrl+C (default: on when the output is a terminal, off otherwise)",
    )
    p.add_argument(
        "--with-prometheus",
        action="store_true",
        help="also run a real Prometheus with the repo's alert rules and an Alertmanager with"
        " its routes (make prometheus-tools provides both)",
    )
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
    p.add_argument(
        "--nats-dir",
        type=Path,
        help="the NATS identities of the local nats-server (operator mode; made by "
        "`tradebus nats-init` if absent, kept across runs; default VAR/nats/auth); "
        "not used with NATS_URL",
    )


def _stays(flag: bool | None, replaying: bool) -> bool:
    """Whether the demo stays up after its replay: ``--stay`` / ``--no-stay`` if given,
    else when replaying (``--data``) with the output on a terminal."""
    if flag is not None:
        return flag
    return replaying and sys.stdout.isatty()


def _common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL") or "",
        help="NATS server (default: $NATS_URL, else the running demo's (var/demo/"
        "connection.json, its operator credentials too), else nats://127.0.0.1:4222)",
    )
    p.add_argument(
        "--nats-creds",
        default=os.environ.get("TRADEBUS_NATS_CREDS", ""),
        help="the operator's .creds file of `tradebus nats-init` (default:"
        " $TRADEBUS_NATS_CREDS; none: connect without credentials)",
    )
    if json_flag:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _bots_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bots", help="apply bot files; list, inspect and control bots")
    verbs = p.add_subparsers(dest="verb", required=True)
    apply = verbs.add_parser("apply", help="validate a bot file and write it to KV bots")
    apply.add_argument("-f", "--file", type=Path, required=True, help="layered bot YAML")
    apply.add_argument("--markets", type=Path, help="markets YAML (default: the shipped one)")
    apply.add_argument("--dry-run", action="store_true", help="show the changes only")
    apply.add_argument("--no-prune", action="store_true", help="keep bots that are not in the file")
    _common(apply)
    lst = verbs.add_parser("list", help="every bot on every host, one line each")
    lst.add_argument("--user", help="only this user's bots")
    _common(lst)
    status = verbs.add_parser("status", help="the status block of one bot")
    status.add_argument("bot")
    _common(status)
    for verb, text in (
        ("pause", "stop placing new orders; keep the open ones"),
        ("resume", "trade again after pause or stop"),
        ("stop", "stop; cancel open orders if cancel_on_exit"),
        ("start", "start a stopped bot (resume its state, or --fresh)"),
        ("flatten", "force exit: cancel its orders, close its position at market, stop"),
    ):
        cmd = verbs.add_parser(verb, help=text)
        cmd.add_argument("bot")
        if verb == "start":
            cmd.add_argument(
                "--fresh", action="store_true", help="cancel its orders and forget its state"
            )
        _common(cmd)
    average = verbs.add_parser(
        "set-average", help="set a bot's average entry price by hand (journaled in the ledger)"
    )
    average.add_argument("bot")
    average.add_argument(
        "price", type=decimal_arg(), help="average entry price, quote per base (> 0)"
    )
    _common(average)
    dry = verbs.add_parser(
        "dry-run", help="what a dry-run bot did: its intents and simulated fills"
    )
    dry.add_argument("bot")
    dry.add_argument("--limit", type=int, default=100, help="the last N records (default 100)")
    _common(dry)


def _intent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("intent", help="send a manual order intent (intent.<user>.manual)")
    verbs = p.add_subparsers(dest="verb", required=True)
    place = verbs.add_parser("place", help="place an order")
    cancel = verbs.add_parser("cancel", help="cancel an order (or --all of yours)")
    for cmd in (place, cancel):
        cmd.add_argument("--user", required=True)
        cmd.add_argument("--account", required=True)
        cmd.add_argument("--id", help="intent id (default: a new unique one)")
        cmd.add_argument("--wait", type=float, default=5.0, help="seconds to wait for answers")
        _common(cmd)
    place.add_argument("--symbol", required=True)
    place.add_argument("--side", choices=["buy", "sell"], required=True)
    place.add_argument(
        "--qty", required=True, type=decimal_arg(), help="quantity in the base asset (> 0)"
    )
    place.add_argument(
        "--price", type=decimal_arg(), help="limit price (worst price for --type market)"
    )
    place.add_argument("--type", choices=["limit", "market"], default="limit")
    target = cancel.add_mutually_exclusive_group(required=True)
    target.add_argument("--target", help="intent id of the order to cancel")
    target.add_argument("--all", action="store_true", help="every open manual order")
    cancel.add_argument("--symbol", help="with --all: only this symbol")


def _run_bots(args: argparse.Namespace) -> int:
    url, creds = args.nats_url, args.nats_creds
    if args.verb == "apply":
        coro = botctl.apply_file(
            url, args.file, args.markets, args.dry_run, not args.no_prune, args.json, creds
        )
    elif args.verb == "list":
        coro = botctl.list_bots(url, args.user, args.json, creds)
    elif args.verb == "status":
        coro = botctl.bot_status(url, args.bot, args.json, creds)
    elif args.verb == "set-average":
        coro = botctl.set_average(url, args.bot, args.price, args.json, creds)
    elif args.verb == "dry-run":
        coro = botctl.dry_run_log(url, args.bot, args.limit, args.json, creds)
    else:
        fresh = getattr(args, "fresh", False)
        coro = botctl.command_bot(url, args.verb, args.bot, fresh, args.json, creds)
    return botctl.run(coro)


def _run_intent(args: argparse.Namespace) -> int:
    try:
        intent = botctl.place_intent(args) if args.verb == "place" else botctl.cancel_intent(args)
    except (ArithmeticError, ValueError, msgspec.ValidationError) as exc:
        print(f"tradebus intent: {exc}", file=sys.stderr)
        return 2
    sending = botctl.send_intent(
        args.nats_url, args.user, intent, args.wait, args.json, args.nats_creds
    )
    return botctl.run(sending)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="tradebus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _demo_parser(sub)
    _bots_parser(sub)
    _intent_parser(sub)
    groupctl.add_parser(sub, _common)
    importctl.add_parser(sub)
    configctl.add_parser(sub)
    killctl.add_parser(sub, _common)
    reconctl.add_parser(sub, _common)
    backtest.add_parser(sub)
    strategies.add_parser(sub)
    natsinit.add_parsers(sub)
    sealkeys.add_parser(sub)
    users.add_parser(sub)
    history.add_parser(sub)
    args = parser.parse_args(argv)
    if hasattr(args, "nats_url"):
        resolve_nats(args)
    if args.command == "users":
        sys.exit(users.run(args))
    if args.command == "history":
        sys.exit(history.run(args))
    if args.command == "seal-keys":
        sys.exit(sealkeys.run(args))
    if args.command == "nats-init":
        sys.exit(natsinit.run_init(args))
    if args.command == "nats-creds":
        sys.exit(natsinit.run_creds(args))
    if args.command == "backtest":
        sys.exit(backtest.run(args))
    if args.command == "strategies":
        sys.exit(strategies.run(args))
    if args.command == "killswitch":
        sys.exit(botctl.run(killctl.killswitch(args)))
    if args.command == "recon":
        sys.exit(botctl.run(reconctl.recon_run(args)))
    if args.command == "config":
        sys.exit(configctl.run(args))
    if args.command == "import":
        sys.exit(importctl.run(args))
    if args.command == "groups":
        sys.exit(botctl.run(groupctl.groups(args)))
    if args.command in ("bots", "intent"):
        try:
            sys.exit(_run_bots(args) if args.command == "bots" else _run_intent(args))
        except ConfigError as exc:
            print(f"tradebus {args.command}: {exc}", file=sys.stderr)
            sys.exit(2)
    if args.command == "demo":
        for option, path in (("--bots", args.bots), ("--accounts", args.accounts)):
            if not path.is_file():
                parser.error(f"{option}: no such file: {path} (run from the repository root)")
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
            nats_dir=args.nats_dir.resolve() if args.nats_dir else None,
            with_prometheus=args.with_prometheus,
            gateway_port=args.gateway_port,
            stay=_stays(args.stay, args.data is not None),
        )
        try:
            sys.exit(asyncio.run(run_demo(opts)))
        except (StackError, ConfigError) as exc:
            print(f"tradebus demo: {exc}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
