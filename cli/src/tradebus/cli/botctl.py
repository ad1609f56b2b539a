"""``tradebus bots ...`` and ``tradebus intent ...``: the operator's control surface.

Everything here is a thin client of the bus, so each command has a plain
NATS CLI equivalent (README, "Controlling bots"):

* ``bots apply -f FILE``: resolve and validate the layered bot file, write KV ``bots``;
* ``bots list`` / ``bots status BOT``: ``ctl.bots.list`` / ``ctl.bots.status``,
  gathering the answer of every host replica;
* ``bots pause|resume|stop BOT``, ``bots start BOT [--fresh]``: ``ctl.bots.<verb>``;
* ``intent place`` / ``intent cancel``: publish on ``intent.<user>.manual``
  (JetStream, ``Nats-Msg-Id`` = intent id) and wait for the answer on
  ``exec.evt.<user>.manual``.

Tables for people, ``--json`` for scripts. Exit status: 0 ok, 1 the request
was refused or not answered, 2 bad input.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS

from tradebus.cli.tables import render_table
from tradebus.common import subjects
from tradebus.common.bus import MSG_ID
from tradebus.common.codec import decode_event, encode
from tradebus.common.ids import IntentId
from tradebus.common.messages import (
    BotCommand,
    BotStatus,
    CancelAll,
    CancelOrder,
    Intent,
    PlaceOrder,
)
from tradebus.control.bots import ControlError, gather_statuses, send_command
from tradebus.control.botstore import BotManagedElsewhere, apply_file_to


class CommandError(Exception):
    """A command failed in a way the user should read (exit status 1).

    ``raw``: print the message as it is (``--json`` output), not as ``tradebus: <message>``.
    """

    def __init__(self, message: str, raw: bool = False) -> None:
        super().__init__(message)
        self.raw = raw


def _dumps(value: Any) -> str:
    return json.dumps(msgspec.to_builtins(value), indent=2, default=str)


def cli_actor() -> str:
    """Who runs this CLI, for the audit log: ``cli:<login>``."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        login = str(os.getuid())
    return f"cli:{login}"


async def _quiet(exc: Exception) -> None:
    """nats-py's error callback: a failure is reported once, as a :class:`CommandError`."""


async def _connect(url: str) -> NATS:
    # max_reconnect_attempts=0 would mean "retry forever" to nats-py: a command with the
    # server down would hang; one retry, soon, then give up
    try:
        return await nats.connect(
            url,
            connect_timeout=3,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=_quiet,
        )
    except Exception as exc:
        raise CommandError(f"cannot reach NATS at {url}: {exc!r}") from None


async def apply_file(
    url: str, path: Path, markets: Path | None, dry_run: bool, prune: bool, as_json: bool
) -> str:
    """Validate ``path`` and write it to KV ``bots``; returns what to print."""
    nc = await _connect(url)
    try:
        result = await apply_file_to(nc.jetstream(), path, markets, prune, dry_run)
    except BotManagedElsewhere as exc:
        raise CommandError(str(exc)) from None
    finally:
        await nc.close()
    if as_json:
        return _dumps(result)
    rows = [
        (bot, what)
        for what in ("added", "changed", "removed", "unchanged")
        for bot in getattr(result, what)
    ]
    verb = "would apply" if dry_run else "applied"
    summary = (
        f"{verb} {path}: {len(result.added)} added, {len(result.changed)} changed, "
        f"{len(result.removed)} removed, {len(result.unchanged)} unchanged"
    )
    return render_table(["BOT", "CHANGE"], rows) + "\n" + summary


def _money(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{places}f}"


def bots_table(statuses: list[BotStatus]) -> str:
    """One line per bot: the columns people watch."""
    header = [
        "BOT",
        "USER",
        "STRATEGY",
        "SYMBOL",
        "STATE",
        "PHASE",
        "PLACED",
        "FILLED",
        "OPEN",
        "POSITION",
        "AVG",
        "LAST",
        "UPNL",
        "RPNL",
        "CYCLES",
        "HOST",
    ]
    rows = [
        (
            s.bot,
            s.user,
            s.strategy,
            s.symbol,
            s.state,
            s.phase,
            s.orders_placed,
            s.orders_filled,
            s.open_orders,
            f"{s.position.normalize():f}",
            _money(s.avg_price),
            _money(s.last_price),
            _money(s.unrealized_pnl),
            _money(s.realized_pnl, 4),
            s.cycles_completed,
            s.host or "-",
        )
        for s in sorted(statuses, key=lambda s: (s.user, s.bot))
    ]
    return render_table(header, rows)


def status_block(s: BotStatus) -> str:
    """The full status block of one bot, one field per line."""
    fields = msgspec.to_builtins(s)
    details = fields.pop("details", {}) or {}
    width = max(len(k) for k in [*fields, *details])
    lines = [f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in fields.items()]
    lines += [f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in sorted(details.items())]
    return "\n".join(lines)


async def list_bots(url: str, user: str | None, as_json: bool) -> str:
    """``tradebus bots list``."""
    nc = await _connect(url)
    try:
        replies = await gather_statuses(nc)
    except ControlError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await nc.close()
    statuses = [s for r in replies for s in r.bots if user is None or s.user == user]
    if as_json:
        return _dumps(statuses)
    hosts = len(replies)
    return bots_table(statuses) + f"\n{len(statuses)} bots on {hosts} host(s)"


async def bot_status(url: str, bot: str, as_json: bool) -> str:
    """``tradebus bots status BOT``."""
    nc = await _connect(url)
    try:
        replies = await gather_statuses(nc, bot)
    except ControlError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await nc.close()
    statuses = [s for r in replies for s in r.bots]
    if not statuses:
        raise CommandError(f"no strategy host answered for bot {bot!r} (is a host running?)")
    return _dumps(statuses[0]) if as_json else status_block(statuses[0])


async def command_bot(url: str, verb: str, bot: str, fresh: bool, as_json: bool) -> str:
    """``tradebus bots pause|resume|stop|start BOT``."""
    nc = await _connect(url)
    try:
        command = BotCommand(bot=bot, mode="fresh" if fresh else "resume", actor=cli_actor())
        reply = await send_command(nc, verb, command)
    except ControlError as exc:  # "no host answered" says it all; a refusal says its reason
        raise CommandError(exc.message if exc.error == "no_host" else str(exc)) from None
    finally:
        await nc.close()
    if as_json:
        return _dumps(reply)
    state = f" (state {reply.status.state}, phase {reply.status.phase})" if reply.status else ""
    return f"{bot}: {reply.message}{state} [host {reply.host}]"


def _answers(intent: Intent, event: Any) -> bool:
    """True if ``event`` answers ``intent``.

    An :class:`OrderCanceled` carries the intent id of the order it ends and,
    in ``cancel_intent_id``, the cancel that ended it.
    """
    ids = (event.intent_id, getattr(event, "cancel_intent_id", None))
    return intent.intent_id in ids


FINAL_EVENTS = {
    "PlaceOrder": ("OrderRejected", "OrderFilled", "OrderCanceled"),
    "CancelOrder": ("OrderRejected", "OrderCanceled", "CancelRejected"),
    "CancelAll": ("OrderRejected",),
}
"""Per intent type, the answers after which no other is expected."""
SETTLE_SECONDS = 0.3
"""After a non-final answer (an acceptance, one of a cancel-all's cancels), wait this much more."""


async def send_intent(url: str, user: str, intent: Intent, wait: float, as_json: bool) -> str:
    """Publish a manual intent and wait for execution's answers to it."""
    nc = await _connect(url)
    events: list[Any] = []
    final = FINAL_EVENTS[type(intent).__name__]
    try:
        sub = await nc.subscribe(subjects.exec_evt(user, subjects.MANUAL_SOURCE))
        try:
            ack = await nc.jetstream().publish(
                subjects.intent(user, subjects.MANUAL_SOURCE),
                encode(intent),
                headers={MSG_ID: intent.intent_id},
            )
        except (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError):
            raise CommandError(
                f"no stream takes {user}'s intents (is execution running, and does its"
                f" accounts file have an account of {user}?)"
            ) from None
        except nats.js.errors.APIError as exc:  # the user's quota: backlog, message size
            raise CommandError(f"JetStream refused the intent: {exc.description}") from None
        if ack.duplicate:
            raise CommandError(f"intent id {intent.intent_id!r} was already used; pick a new --id")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
            except nats.errors.TimeoutError:
                break
            event = decode_event(msg.data)
            if not _answers(intent, event):
                continue
            events.append(event)
            if type(event).__name__ in final:
                break
            deadline = min(deadline, time.monotonic() + SETTLE_SECONDS)
    finally:
        await nc.close()
    refused = any(type(e).__name__ in ("OrderRejected", "CancelRejected") for e in events)
    if as_json:
        output = _dumps({"intent": intent, "events": events})
        if refused:  # the exit status says so in JSON mode too
            raise CommandError(output, raw=True)
        return output
    if not events:
        return f"sent {intent.intent_id}; no answer within {wait}s (execution may be down)"
    lines = [f"sent {intent.intent_id}"]
    for e in events:
        if type(e).__name__ == "OrderCanceled":
            detail = f"{e.intent_id} {e.reason}"
        else:
            detail = getattr(e, "reason", None) or getattr(e, "venue_order_id", None) or ""
        lines.append(f"  {type(e).__name__} {detail} {getattr(e, 'message', '')}".rstrip())
    if refused:
        raise CommandError("\n".join(lines))
    return "\n".join(lines)


def manual_id(prefix: str) -> IntentId:
    """A fresh manual intent id, ``<prefix>-<ns time>``."""
    return IntentId(f"{prefix}-{time.time_ns()}")


def place_intent(args: Any) -> PlaceOrder:
    """Build the PlaceOrder of ``tradebus intent place``."""
    return PlaceOrder(
        intent_id=args.id or manual_id("m"),
        account=args.account,
        symbol=args.symbol,
        side=args.side,
        qty=Decimal(args.qty),
        price=Decimal(args.price) if args.price is not None else None,
        order_type=args.type,
        ts_init=time.time_ns(),
    )


def cancel_intent(args: Any) -> Intent:
    """Build the CancelOrder / CancelAll of ``tradebus intent cancel``."""
    if args.all:
        return CancelAll(
            intent_id=args.id or manual_id("x"),
            account=args.account,
            symbol=args.symbol,
            scope="source",
            ts_init=time.time_ns(),
        )
    return CancelOrder(
        intent_id=args.id or manual_id("x"),
        account=args.account,
        target_intent_id=args.target,
        ts_init=time.time_ns(),
    )


def run(coro: Any) -> int:
    """Run a command coroutine, print its output; map failures to exit statuses."""
    try:
        print(asyncio.run(coro))
        return 0
    except CommandError as exc:
        print(exc if exc.raw else f"tradebus: {exc}")
        return 1
