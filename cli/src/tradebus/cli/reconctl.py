"""``tradebus recon run [--account A] [--json]``: reconcile now and print the report.

Asks the reconciler over ``ctl.recon.run`` (:class:`ReconRunRequest`), which
compares each account's venue balances (and perpetual positions) with the
ledger, applies the account's drift policy, stores the reports and answers
with them (every report when the run covered at most ``RECON_REPLY_REPORTS``
accounts, else the drifting ones). The exit status is 0 when every account is
ok, 1 when one drifts or the reconciler cannot be asked, 2 for bad arguments. An
account whose reconciliation is off (accounts file ``reconciliation.enabled: false``)
is not reconciled: ``reconciliation is off for this account`` (exit 0).
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from tradebus.cli.botctl import CommandError, ask, cli_actor
from tradebus.cli.figures import RECON_DIGITS
from tradebus.cli.tables import render_table
from tradebus.common import subjects
from tradebus.common.codec import decode_recon_run_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import ErrorReply, ReconRunReply, ReconRunRequest
from tradebus.common.money import format_amount

VERDICT = {True: "ok", False: "DRIFT"}
RUN_TIMEOUT_SECONDS = 60.0
"""How long a run may take: every account's venue is asked once."""


def add_parser(sub: Any, common: Any) -> None:
    """The ``recon`` subcommand; ``common(parser)`` adds ``--nats-url`` and ``--json``."""
    p = sub.add_parser("recon", help="reconcile venue balances and positions with the ledger")
    verbs = p.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="reconcile now and print the report")
    run.add_argument("--account", help="one account (default: every account)")
    common(run)


def render(reply: ReconRunReply) -> str:
    """The reports as text for people: a line per account, a table of its assets (every
    asset compared, or only the drifting ones for an account with a short report); the
    accounts whose reconciliation is off."""
    if reply.off and not reply.accounts and len(reply.off) == 1:
        return f"{reply.off[0]}: reconciliation is off for this account"
    parts = [f"{reply.accounts} account(s) reconciled, {reply.drifting} drifting"]
    if reply.off:
        parts.append(f"reconciliation is off for: {', '.join(reply.off)}")
    for report in reply.reports:
        action = "" if report.action == "none" else f" ({report.action})"
        kind = "" if report.detailed else ", short report: drifting assets only"
        parts.append(f"\n{report.account}: {report.status}{action}{kind}")
        rows = [
            (
                r.asset,
                format_amount(r.ledger_total, digits=RECON_DIGITS),
                format_amount(r.venue_total, digits=RECON_DIGITS),
                format_amount(r.drift, digits=RECON_DIGITS),
                format_amount(r.tolerance, digits=RECON_DIGITS),
                "ok" if r.ok else "DRIFT",
            )
            for r in report.rows
        ]
        parts.append(
            render_table(("asset", "ledger", "venue", "drift", "tolerance", ""), rows, right_from=1)
        )
    return "\n".join(parts)


async def recon_run(args: argparse.Namespace) -> str:
    """Ask for a run; the report as text (or JSON with ``--json``).

    Raises
    ------
    CommandError
        If the reconciler does not answer or refuses, or an account drifts (the report
        is the message then, so it is printed all the same).
    """
    request = ReconRunRequest(
        account=AccountId(args.account) if args.account else None, actor=cli_actor()
    )
    subject = subjects.ctl("recon", "run")
    data = await ask(args, subject, request, "the reconciler", RUN_TIMEOUT_SECONDS)
    reply = decode_recon_run_reply(data)
    if isinstance(reply, ErrorReply):
        raise CommandError(f"{reply.error}: {reply.message}")
    text = msgspec.json.encode(reply).decode() if args.json else render(reply)
    if reply.drifting:
        raise CommandError(text, raw=True)
    return text
