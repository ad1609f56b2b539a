"""Execution's request/reply answers: one place that turns a request into a reply or an error.

Every responder of execution (``exec.query.balances``, ``exec.adjust``,
``ctl.killswitch``) decodes the request, does the work, and answers; the
failures a requester can act on become an :class:`ErrorReply` with a
machine-readable ``error``: ``bad_request`` (the payload does not decode),
``unknown_account`` (no such account is configured), ``venue_unavailable``
(a live venue cannot answer now), ``invalid`` (a request the work refuses, e.g. a
bot correction for an account its user does not own).

With several execution shards (:mod:`.shard`) every shard hears each request;
one naming an account of another shard is left to that shard (``quiet_unknown``):
the requester gets the owner's answer, and no answer at all for an account no
shard has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from nats.aio.msg import Msg

from tradebus.common.codec import encode
from tradebus.common.messages import ErrorReply, Message
from tradebus.engine.venue import VenueUnavailable


async def answer(
    msg: Msg, work: Callable[[bytes], Awaitable[Message]], quiet_unknown: bool = False
) -> None:
    """Respond to ``msg`` with ``await work(msg.data)``, or with the error it raised; an
    unknown account (``KeyError``) gets no answer when ``quiet_unknown`` (another shard's)."""
    reply: Message
    try:
        reply = await work(msg.data)
    except msgspec.MsgspecError as exc:
        reply = ErrorReply(error="bad_request", message=str(exc))
    except KeyError as exc:
        if quiet_unknown:
            return
        reply = ErrorReply(error="unknown_account", message=f"no account {exc}")
    except VenueUnavailable as exc:
        reply = ErrorReply(
            error="venue_unavailable", message=f"{exc.error.kind}: {exc.error.reason}"
        )
    except ValueError as exc:
        reply = ErrorReply(error="invalid", message=str(exc))
    await msg.respond(encode(reply))
