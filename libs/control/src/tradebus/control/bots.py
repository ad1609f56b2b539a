"""The ``ctl.bots.*`` client: ask strategy hosts about their bots and command them.

Every host replica answers a question about all bots (``ctl.bots.list``) with
its own bots, so :func:`gather_statuses` collects replies until every live
replica (KV ``leases``, ``host.<replica>``) has answered or a second has
passed. A command for one bot (:func:`send_command`) is answered by the one
replica that runs it, or by the one that should, saying it does not run
(``unknown_bot`` / ``not_running``; :mod:`tradebus.strategy.control`).
"""

from __future__ import annotations

import time

import nats.errors
from nats.aio.client import Client as NATS

from tradebus.common import subjects
from tradebus.common.bus import kv_live_entries
from tradebus.common.codec import decode_bot_command_reply, decode_bots_reply, encode
from tradebus.common.messages import (
    BotCommand,
    BotCommandReply,
    BotSetAverage,
    BotsQuery,
    BotsReply,
    BotStatus,
    ErrorReply,
)

GATHER_SECONDS = 1.0
"""How long :func:`gather_statuses` waits for the replies of all bots."""
ONE_BOT_EXTRA_SECONDS = 2.0
"""... and this much longer for one bot's (its host may be starting it)."""
COMMAND_TIMEOUT_SECONDS = 5.0
WATCH_SECONDS = 2.0

COMMAND_VERBS = ("pause", "resume", "stop", "start", "flatten")


class ControlError(Exception):
    """A ``ctl.*`` request was refused or not answered.

    ``error`` is the machine-readable reason (``unknown_bot``, ``not_running``,
    ``no_host``, ``bad_request``...), the message says it for people.
    """

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message


async def live_hosts(nc: NATS) -> int | None:
    """How many strategy host replicas have a live heartbeat (``host.<replica>`` keys of
    KV ``leases``); None if the bucket cannot be read (then :func:`gather_statuses` waits
    its full time)."""
    try:
        kv = await nc.jetstream().key_value(subjects.KV_LEASES)
        return len(await kv_live_entries(kv, "host.*", timeout=WATCH_SECONDS, headers_only=True))
    except Exception:  # no bucket yet, no permission, no answer
        return None


async def gather_statuses(nc: NATS, bot: str | None = None) -> list[BotsReply]:
    """Send ``ctl.bots.list`` (or ``ctl.bots.status`` for one bot) and collect every
    host's reply (at most :data:`GATHER_SECONDS`, longer for one bot).

    Raises
    ------
    ControlError
        If a host answers with an error (``bad_request``; ``unknown_bot`` or
        ``not_running`` for one bot).
    """
    expected = 1 if bot else await live_hosts(nc)
    if expected == 0:
        return []
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    verb = "status" if bot else "list"
    await nc.publish(subjects.ctl("bots", verb), encode(BotsQuery(bot=bot)), reply=inbox)
    replies: list[BotsReply] = []
    deadline = time.monotonic() + GATHER_SECONDS + (ONE_BOT_EXTRA_SECONDS if bot else 0.0)
    try:
        while time.monotonic() < deadline and (expected is None or len(replies) < expected):
            try:
                msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
            except nats.errors.TimeoutError:
                break
            if not msg.data:  # a "no responders" status: no host is up
                break
            reply = decode_bots_reply(msg.data)
            if isinstance(reply, ErrorReply):
                raise ControlError(reply.error, reply.message)
            replies.append(reply)
    finally:
        await sub.unsubscribe()
    return replies


async def bot_statuses(nc: NATS, bot: str | None = None) -> list[BotStatus]:
    """The statuses of every running bot (or of ``bot``) from every host
    (:func:`gather_statuses`)."""
    return [status for reply in await gather_statuses(nc, bot) for status in reply.bots]


async def send_command(
    nc: NATS, verb: str, command: BotCommand, timeout: float = COMMAND_TIMEOUT_SECONDS
) -> BotCommandReply:
    """Send ``ctl.bots.<verb>`` (``pause``, ``resume``, ``stop``, ``start``, ``flatten``)
    for one bot.

    Raises
    ------
    ValueError
        If ``verb`` is not a command verb.
    ControlError
        ``no_host`` if no host answered in ``timeout`` seconds; otherwise the
        host's refusal (``unknown_bot``, ``not_running``, ``bad_request``).
    """
    if verb not in COMMAND_VERBS:
        raise ValueError(f"unknown bot command {verb!r} (known: {', '.join(COMMAND_VERBS)})")
    try:
        msg = await nc.request(subjects.ctl("bots", verb), encode(command), timeout=timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        message = f"no strategy host answered {verb} for {command.bot!r}"
        raise ControlError("no_host", message) from None
    reply = decode_bot_command_reply(msg.data)
    if isinstance(reply, ErrorReply):
        raise ControlError(reply.error, reply.message)
    return reply


async def set_average(
    nc: NATS, command: BotSetAverage, timeout: float = COMMAND_TIMEOUT_SECONDS
) -> BotCommandReply:
    """Send ``ctl.bots.set-average``: set one bot's average entry price by hand (seed 001).

    Raises
    ------
    ControlError
        ``no_host`` if no host answered in ``timeout`` seconds; otherwise the host's
        refusal (``unknown_bot``, ``not_running``, ``bad_request``, ``invalid``: no
        position, or a price that is not > 0).
    """
    try:
        subject = subjects.ctl("bots", "set-average")
        msg = await nc.request(subject, encode(command), timeout=timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        message = f"no strategy host answered set-average for {command.bot!r}"
        raise ControlError("no_host", message) from None
    reply = decode_bot_command_reply(msg.data)
    if isinstance(reply, ErrorReply):
        raise ControlError(reply.error, reply.message)
    return reply
