"""``tradebus groups start|stop|pause|resume|status GROUP``: a strategy group as a whole.

A group is a block of the bot file's ``strategies``: every user's bots made
from it (seed 004's strategy, run by several users toward one target).
The commands are those of :mod:`tradebus.control.groups`: each verb is the
per-bot ``ctl.bots.<verb>`` sent to every enabled bot of the group (KV
``bots``), and ``status`` is seed 004's ``--status``: target, total, progress
and per-user volume, with each bot's state. Tables for people, ``--json`` for
scripts. Exit status: 0 ok, 1 a bot refused or no host answered (or no such
group), 2 bad input.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from tradebus.cli.botctl import CommandError, _connect, _dumps, cli_actor
from tradebus.cli.tables import render_table
from tradebus.common.messages import StartMode
from tradebus.common.money import format_amount
from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.control.bots import COMMAND_VERBS, ControlError
from tradebus.control.groups import (
    GroupCommandResult,
    GroupNotFound,
    GroupStatus,
    command_group,
    group_status,
)

VERB_HELP = {
    "start": "start every bot of the group (resume its state, or --fresh)",
    "stop": "stop every bot of the group (cancel open orders if cancel_on_exit)",
    "pause": "pause every bot of the group (no new orders; open ones stay)",
    "resume": "resume every bot of the group",
    "flatten": "force exit every bot of the group: cancel, close at market, then stop",
}


def _group(value: str) -> str:
    if not TOKEN_PATTERN.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid group {value!r}: must match {TOKEN_PATTERN.pattern}"
        )
    return value


def add_parser(sub: Any, common: Any) -> None:
    """The ``groups`` subcommand; ``common(parser)`` adds ``--nats-url``, ``--nats-creds``
    and ``--json``."""
    p = sub.add_parser(
        "groups", help="start, stop and show a strategy group (every user's bots of it)"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    status = verbs.add_parser(
        "status", help="target, total, progress and per-user volume; each bot's state"
    )
    status.add_argument("group", type=_group, help="a block of the bot file's strategies")
    common(status)
    for verb in COMMAND_VERBS:
        cmd = verbs.add_parser(verb, help=VERB_HELP[verb])
        cmd.add_argument("group", type=_group, help="a block of the bot file's strategies")
        if verb == "start":
            cmd.add_argument(
                "--fresh", action="store_true", help="cancel their orders and forget their state"
            )
        common(cmd)


def _money(value: Decimal | None) -> str:
    return format_amount(value)


def render_status(status: GroupStatus) -> str:
    """A group's status for people: a summary, the volume per user, a line per bot."""
    running = "running" if status.is_running else "not running"
    name = f" {status.strategy_name!r}" if status.strategy_name != status.group else ""
    lines = [f"group {status.group} ({status.strategy}{name}): {running}"]
    if status.strategy == "volume":
        lines.append(
            f"target {_money(status.target_volume)}  total {_money(status.total_volume)}"
            f"  progress {status.progress or '-'}"
        )
        lines += ["", render_table(["USER", "VOLUME"], list(status.user_volumes.items()))]
    rows = [
        (b.bot, b.user, b.account, b.symbol or "-", b.state, b.phase or "-", _money(b.volume))
        for b in status.bots
    ]
    header = ["BOT", "USER", "ACCOUNT", "SYMBOL", "STATE", "PHASE", "VOLUME"]
    lines += ["", render_table(header, rows)]
    return "\n".join(lines)


def render_command(result: GroupCommandResult) -> str:
    """What a group command did, a line per bot."""
    rows = [
        (r.bot, r.user, "ok" if r.ok else r.error or "refused", r.message, r.state or "-")
        for r in result.bots
    ]
    done = sum(r.ok for r in result.bots)
    summary = f"{result.verb} {result.group}: {done} of {len(result.bots)} bots"
    return render_table(["BOT", "USER", "RESULT", "MESSAGE", "STATE"], rows) + "\n" + summary


async def groups(args: argparse.Namespace) -> str:
    """Run ``tradebus groups VERB GROUP``; what to print.

    Raises
    ------
    CommandError
        If NATS cannot be reached, the group has no bots, a host refuses, or (for a
        command) a bot's host refused or did not answer: then the output is the
        result, printed as it is.
    """
    nc = await _connect(args.nats_url, args.nats_creds)
    try:
        if args.verb == "status":
            status = await group_status(nc, args.group)
            return _dumps(status) if args.json else render_status(status)
        mode: StartMode = "fresh" if getattr(args, "fresh", False) else "resume"
        result = await command_group(nc, args.verb, args.group, mode, cli_actor())
    except (GroupNotFound, ControlError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        await nc.close()
    output = _dumps(result) if args.json else render_command(result)
    if not result.ok:
        raise CommandError(output, raw=True)
    return output
