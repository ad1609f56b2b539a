"""``tradebus bots ...`` and ``tradebus intent ...``: the operator's control surface.

Everything here is a thin client of the bus, so each command has a plain
NATS CLI equivalent (README, "Controlling bots"):

* ``bots apply -f FILE``: resolve and validate the layered bot file, write KV ``bots``;
* ``bots list`` / ``bots status BOT``: ``ctl.bots.list`` / ``ctl.bots.status``,
  gathering the answer of every host replica;
* ``bots pause|resume|stop|flatten BOT``, ``bots start BOT [--fresh]``: ``ctl.bots.<verb>``;
* ``bots dry-run BOT [--limit N]``: what a dry-run bot did (stream ``DRYRUN``);
* ``intent place`` / ``intent cancel``: publish on ``intent.<user>.manual``
  (JetStream, ``Nats-Msg-Id`` = intent id) and wait for the answer on
  ``exec.evt.<user>.manual``.

Changes are audited: ``bots apply`` publishes one event per bot it writes
(``audit.cli``); a ``ctl.*`` command carries ``actor = cli:<login>``
(:func:`cli_actor`) and the service that carries it out records it. Manual
intents are not audit events: the ledger keeps every order with its source.

Every command connects with ``creds``, the path of a ``.creds`` file
(``--nats-creds``: the operator's of ``tradebus nats-init``; "" none), given to
it explicitly.

Tables for people, ``--json`` for scripts. Exit status: 0 ok, 1 the request
was refused or not answered, 2 bad input.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client as NATS

from tradebus.cli.figures import detail_market, format_figure, market_of
from tradebus.cli.tables import render_table
from tradebus.common.bus import CredentialsError, NatsUnavailable, connect_once
from tradebus.common.clock import LiveClock
from tradebus.common.codec import encode
from tradebus.common.config import redact_url
from tradebus.common.ids import IntentId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import (
    BotCommand,
    BotSetAverage,
    BotStatus,
    CancelAll,
    CancelOrder,
    Intent,
    PlaceOrder,
)
from tradebus.control import intents
from tradebus.control.audit import AuditTrail, local_actor
from tradebus.control.bots import ControlError, gather_statuses, send_command
from tradebus.control.bots import set_average as control_set_average
from tradebus.control.botstore import (
    BotManagedElsewhere,
    apply_file_to,
    change_lines,
    get_spec,
    open_bots,
)
from tradebus.control.dryrun import describe, dry_run_records


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
    """Who runs this CLI, for the audit log: ``cli:<login>`` (:func:`local_actor`)."""
    return local_actor("cli")


async def _connect(url: str, creds: str = "") -> NATS:
    """A connection to ``url`` with the ``.creds`` file ``creds`` ("" none: ``--nats-creds``)
    (:func:`tradebus.common.bus.connect_once`: one quick retry, then give up).

    Raises
    ------
    CommandError
        If the credentials file is unusable, the server cannot be reached (the message
        names its URL), or it refuses the credentials ("NATS refused the credentials
        (authorization violation) at URL").
    """
    try:
        return await connect_once(url, creds)
    except (CredentialsError, NatsUnavailable) as exc:
        raise CommandError(str(exc)) from None


async def ask(args: Any, subject: str, message: Any, who: str, timeout: float) -> bytes:
    """Send ``message`` on request subject ``subject`` (``args``: ``--nats-url``,
    ``--nats-creds``) and return the answer's bytes.

    Raises
    ------
    CommandError
        If NATS cannot be reached, or ``who`` (the service that answers) does not.
    """
    nc = await _connect(args.nats_url, getattr(args, "nats_creds", ""))
    try:
        msg = await nc.request(subject, encode(message), timeout=timeout)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        raise CommandError(f"{who} did not answer {subject} (is it running?)") from None
    finally:
        await nc.close()
    return msg.data


async def apply_file(
    url: str,
    path: Path,
    markets: Path | None,
    dry_run: bool,
    prune: bool,
    as_json: bool,
    creds: str = "",
) -> str:
    """Validate ``path`` and write it to KV ``bots``; returns what to print.

    Each bot added, changed or removed is recorded in the audit log
    (``audit.cli``, by :func:`cli_actor`); a dry run records nothing.
    """
    nc = await _connect(url, creds)
    js = nc.jetstream()
    try:
        audit = AuditTrail(js, "cli", LiveClock())
        result = await apply_file_to(
            js, path, markets, prune, dry_run, audit=audit, actor=cli_actor()
        )
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
    return "\n".join([render_table(["BOT", "CHANGE"], rows), *change_lines(result), summary])


def bots_table(statuses: list[BotStatus], catalog: MarketCatalog | None = None) -> str:
    """One line per bot: the columns people watch, each number with its market's precision
    (``catalog``: the shipped markets file by default; :mod:`tradebus.cli.figures`)."""
    catalog = catalog or MarketCatalog.load(default_markets_path())
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
        "GROUP",
        "HOST",
    ]
    rows = []
    for s in sorted(statuses, key=lambda s: (s.user, s.bot)):
        market = market_of(catalog, s.venue, s.symbol)
        rows.append(
            (
                s.bot,
                s.user,
                s.strategy,
                s.symbol,
                f"{s.state}(dry-run)" if s.dry_run else s.state,
                s.phase,
                s.orders_placed,
                s.orders_filled,
                s.open_orders,
                format_figure("position", s.position, market),
                format_figure("avg_price", s.avg_price, market),
                format_figure("last_price", s.last_price, market),
                format_figure("unrealized_pnl", s.unrealized_pnl, market),
                format_figure("realized_pnl", s.realized_pnl, market),
                s.cycles_completed,
                str(s.details.get("strategy_name") or "-"),  # a volume group's display name
                s.host or "-",
            )
        )
    return render_table(header, rows)


def status_block(s: BotStatus, catalog: MarketCatalog | None = None) -> str:
    """The full status block of one bot, one field per line, each number with its market's
    precision (:func:`tradebus.cli.figures.format_figure`)."""
    catalog = catalog or MarketCatalog.load(default_markets_path())
    market = market_of(catalog, s.venue, s.symbol)
    fields = {name: getattr(s, name) for name in s.__struct_fields__}
    details = fields.pop("details", {}) or {}
    width = max(len(k) for k in [*fields, *details])
    lines = [f"{k.ljust(width)}  {format_figure(k, v, market)}" for k, v in fields.items()]
    lines += [
        f"{k.ljust(width)}  {format_figure(k, v, detail_market(catalog, s.venue, k, market))}"
        for k, v in sorted(details.items())
    ]
    return "\n".join(lines)


async def list_bots(url: str, user: str | None, as_json: bool, creds: str = "") -> str:
    """``tradebus bots list``."""
    nc = await _connect(url, creds)
    try:
        replies = await gather_statuses(nc)
    except ControlError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await nc.close()
    if not replies:
        raise CommandError(f"no strategy host answered at {redact_url(url)} (is one running?)")
    statuses = [s for r in replies for s in r.bots if user is None or s.user == user]
    if as_json:
        return _dumps(statuses)
    hosts = len(replies)
    return bots_table(statuses) + f"\n{len(statuses)} bots on {hosts} host(s)"


async def bot_status(url: str, bot: str, as_json: bool, creds: str = "") -> str:
    """``tradebus bots status BOT``."""
    nc = await _connect(url, creds)
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


async def command_bot(
    url: str, verb: str, bot: str, fresh: bool, as_json: bool, creds: str = ""
) -> str:
    """``tradebus bots pause|resume|stop|start|flatten BOT``."""
    nc = await _connect(url, creds)
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


async def set_average(url: str, bot: str, price: Decimal, as_json: bool, creds: str = "") -> str:
    """``tradebus bots set-average BOT PRICE``: set the bot's average entry price by hand
    (quote per base); the ledger journals the correction."""
    nc = await _connect(url, creds)
    try:
        command = BotSetAverage(bot=bot, price=price, actor=cli_actor())
        reply = await control_set_average(nc, command)
    except ControlError as exc:
        raise CommandError(exc.message if exc.error == "no_host" else str(exc)) from None
    finally:
        await nc.close()
    if as_json:
        return _dumps(reply)
    return f"{bot}: {reply.message} [host {reply.host}]"


async def dry_run_log(url: str, bot: str, limit: int, as_json: bool, creds: str = "") -> str:
    """``tradebus bots dry-run BOT``: the last ``limit`` intents of a dry-run bot and its
    simulated venue's answers (:func:`tradebus.control.dryrun.dry_run_records`)."""
    if limit < 1:
        raise CommandError(f"--limit must be >= 1 (got {limit})")
    nc = await _connect(url, creds)
    try:
        found = await get_spec(await open_bots(nc.jetstream()), bot)
        if found is None:
            raise CommandError(f"no bot {bot!r} in KV bots")
        spec, _ = found
        records = await dry_run_records(nc.jetstream(), spec.user, bot, limit)
    finally:
        await nc.close()
    if as_json:
        return _dumps(records)
    mode = "dry run" if not spec.execute_trades else "trades (execute_trades: true)"
    if not records:
        return f"{bot}: {mode}; no dry-run records"
    rows = [(r.run, r.seq, r.ts_event, describe(r)) for r in records]
    table = render_table(["RUN", "SEQ", "TS", "WHAT"], rows)
    return f"{table}\n{bot}: {mode}; {len(records)} records"


async def send_intent(
    url: str, user: str, intent: Intent, wait: float, as_json: bool, creds: str = ""
) -> str:
    """Publish a manual intent and wait for execution's answers to it
    (:func:`tradebus.control.intents.send_intent`)."""
    nc = await _connect(url, creds)
    try:
        events = await intents.send_intent(nc, user, intent, wait)
    except intents.IntentRefused as exc:
        if exc.kind == "no_stream":
            raise CommandError(
                f"no stream takes {user}'s intents (is execution running, and does its"
                f" accounts file have an account of {user}?)"
            ) from None
        if exc.kind == "duplicate":
            raise CommandError(
                f"intent id {intent.intent_id!r} was already used; pick a new --id"
            ) from None
        raise CommandError(exc.message) from None
    finally:
        await nc.close()
    refused = any(intents.is_refusal(e) for e in events)
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
            detail = f"{e.intent_id} {getattr(e, 'reason', '')}"
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
        qty=args.qty,
        price=args.price,
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
