"""``tradebus killswitch engage|release|status [--account A] [--reason TEXT]``.

Asks execution over ``ctl.killswitch`` (:class:`KillSwitchCommand`).
Engaging cancels the open orders of the accounts it covers (one account,
or every account without ``--account``) and refuses their new orders until
released; the switch survives execution restarts.
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from tradebus.cli.botctl import CommandError, ask, cli_actor
from tradebus.common import subjects
from tradebus.common.codec import decode_killswitch_reply
from tradebus.common.messages import ErrorReply, KillSwitchCommand, KillSwitchReply


def add_parser(sub: Any, common: Any) -> None:
    """The ``killswitch`` subcommand; ``common(parser)`` adds ``--nats-url`` and ``--json``."""
    p = sub.add_parser("killswitch", help="stop trading at once: one account or all")
    verbs = p.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("engage", "cancel open orders and refuse new ones until released"),
        ("release", "let the account (or all, without --account) trade again"),
        ("status", "which kill switches are engaged"),
    ):
        cmd = verbs.add_parser(verb, help=text)
        cmd.add_argument("--account", help="one account (default: the global switch)")
        if verb == "engage":
            cmd.add_argument("--reason", default="", help="why (shown in alerts and status)")
        common(cmd)


def render(reply: KillSwitchReply) -> str:
    """The switches as lines for people."""
    lines = [f"global: {'ENGAGED: ' + reply.global_reason if reply.global_reason else 'released'}"]
    lines += [f"{account}: ENGAGED: {why}" for account, why in sorted(reply.accounts.items())]
    if reply.canceled:
        lines.append(f"open orders canceled: {reply.canceled}")
    return "\n".join(lines)


async def killswitch(args: argparse.Namespace) -> str:
    """Send the command; the reply as text (or JSON with ``--json``).

    Raises
    ------
    CommandError
        If execution does not answer or refuses the command.
    """
    command = KillSwitchCommand(
        action=args.verb,
        account=args.account,
        reason=getattr(args, "reason", ""),
        actor=cli_actor(),  # execution records engage/release in the audit log
    )
    data = await ask(args, subjects.CTL_KILLSWITCH, command, "execution", 30)
    reply = decode_killswitch_reply(data)
    if isinstance(reply, ErrorReply):
        raise CommandError(f"{reply.error}: {reply.message}")
    return msgspec.json.encode(reply).decode() if args.json else render(reply)
