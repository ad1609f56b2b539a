"""``/api/v1/events``: the caller's order events and bot status changes, live, over a WebSocket.

Protocol (every message is one JSON text):

1. The client connects (no token in the URL: URLs end up in logs) and sends,
   within :data:`AUTH_SECONDS`::

       {"type": "auth", "token": "<access JWT>", "since_seq": 41}

   ``since_seq`` (optional): the ``seq`` of the last order event it got
   before a reconnect; the events after it are replayed first. Admins may
   add ``"all_users": true`` (everyone's events) or ``"user": "<id>"`` (one
   user's). A missing, malformed, tampered or expired token, a disabled
   user, or a non-admin asking for others: closed with ``1008`` (policy
   violation) and a reason saying which.
2. The gateway answers ``{"type": "ready", "user": ..., "watching": <user or
   "*">, "queue_limit": N}``; then one ``status`` frame per bot of the
   watched user(s), its current status (``status: null`` when no host runs
   it); then, with ``since_seq``, the missed ``order`` events in order and
   ``{"type": "caught_up", "seq": <last seq sent so far>, "replayed": n,
   "gap": bool}`` (``gap``: some events after ``since_seq`` were already
   gone); then live ``order`` and ``status`` frames as they happen
   (shapes in :mod:`tradebus.gateway.events`).
3. An access token is short-lived: the connection is closed with ``1008``
   when it expires, unless the client sent a fresh one before
   (``{"type": "auth", "token": ...}`` again, same user, answered
   ``{"type": "renewed", "expires": <unix s>}``). So a user disabled while
   connected loses the connection at the latest when their token expires.

Close codes: ``1008`` as above; ``4001``: the client read too slowly (its
queue of :data:`~tradebus.gateway.events.QUEUE_LIMIT` frames overflowed; the
reason says ``since_seq=<n>`` to reconnect with); ``1001``: the gateway is
stopping (reason with ``since_seq`` too); ``1011``: events unavailable.
A WebSocket route is not part of the OpenAPI document; this docstring
describes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Router, WebSocket, websocket

from tradebus.gateway.auth import principal_from_token
from tradebus.gateway.context import Ctx, GatewayContext, Principal
from tradebus.gateway.errors import ApiError
from tradebus.gateway.events import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_SLOW,
    EventHub,
    Subscriber,
    SubscriberEnded,
    control_frame,
    status_frame,
)
from tradebus.gateway.security import TokenInvalid

log = logging.getLogger(__name__)

AUTH_SECONDS = 10.0
"""Time a new connection has to send its ``auth`` message."""
CLOSE_SECONDS = 30.0
"""Longest wait for a close frame to go out: behind what a client that stopped reading has
not read yet (its queue is dropped meanwhile; the server's pings end a dead one sooner)."""
FRESH_STATUS_SECONDS = 2.0
"""A status change the hub saw this recently beats the hosts' answer to ``ctl.bots.list``."""
MAX_TOKEN_CHARS = 4096


class AuthMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The client's ``auth`` message (module docstring)."""

    type: Literal["auth"]
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOKEN_CHARS)]
    since_seq: Annotated[int, msgspec.Meta(ge=0)] | None = None
    user: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    all_users: bool = False


_decode_auth = msgspec.json.Decoder(AuthMessage)


class Closing(Exception):
    """Close the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _policy(reason: str) -> Closing:
    return Closing(CLOSE_POLICY, reason)


def parse_auth(data: str | bytes) -> AuthMessage:
    """The ``auth`` message in ``data``.

    Raises
    ------
    Closing
        ``1008`` naming what is wrong (never echoing the token).
    """
    try:
        return _decode_auth.decode(data)
    except msgspec.ValidationError as exc:
        raise _policy(f"bad auth message: {exc}"[:120]) from None
    except msgspec.DecodeError:
        raise _policy("bad auth message: not JSON") from None


async def check_token(ctx: GatewayContext, token: str) -> tuple[Principal, int]:
    """The caller of an access token and when it expires (Unix seconds).

    Raises
    ------
    Closing
        ``1008`` for an invalid or expired token, or a disabled or deleted user.
    """
    try:
        claims = ctx.tokens.check(token)
        principal = await principal_from_token(ctx, token)
    except (TokenInvalid, ApiError):
        raise _policy("access token invalid or expired: sign in or refresh") from None
    return principal, claims.expires


def watched_user(principal: Principal, hello: AuthMessage) -> str | None:
    """Whose events the caller gets: their own; for an admin, ``user``'s or (``all_users``)
    everyone's (None).

    Raises
    ------
    Closing
        ``1008`` when a non-admin asks for anyone else's.
    """
    if hello.all_users or (hello.user is not None and hello.user != principal.user):
        if not principal.is_admin:
            raise _policy("only admins may watch other users' events")
        return None if hello.all_users else hello.user
    return str(principal.user)


async def receive_message(socket: WebSocket[Any, Any, Any]) -> str | bytes | None:
    """The next message's data (text or bytes); None once the client disconnected."""
    event = await socket.receive()
    if event["type"] == "websocket.disconnect":
        return None
    text, raw = event.get("text"), event.get("bytes")
    if isinstance(text, str) and text:
        return text
    return raw if isinstance(raw, bytes) else b""


async def current_statuses(ctx: GatewayContext, hub: EventHub, user: str | None) -> list[str]:
    """``status`` frames of each bot of ``user`` (everyone's for None): the status the
    hosts report (``ctl.bots.list``, shared by requests for a second), or the hub's last
    change of it when that is newer or no host answered; ``null`` when none runs it."""
    specs = await ctx.bots.all()
    gathered = await ctx.statuses.all()
    seen = hub.last_statuses()
    now_mono, now_ns = time.monotonic(), ctx.clock.now_ns()
    frames = []
    for bot, (spec, _) in sorted(specs.items()):
        if user is not None and spec.user != user:
            continue
        status, ts_event = gathered.get(bot), now_ns
        last = seen.get(bot)
        if last is not None and (not gathered or now_mono - last[1] < FRESH_STATUS_SECONDS):
            status, ts_event = last[0].status, last[0].ts_event
        if status is not None and status.user != spec.user:
            status = None
        frames.append(status_frame(bot, spec.user, ts_event, status))
    return frames


async def _pump(socket: WebSocket[Any, Any, Any], sub: Subscriber) -> None:
    """Send the subscriber's frames in order until it ends (or the client is gone)."""
    while True:
        frame = await sub.next()
        if frame is None:
            return
        seq, text = frame
        await socket.send_text(text)
        sub.sent(seq)


async def _read(
    socket: WebSocket[Any, Any, Any], ctx: GatewayContext, principal: Principal, sub: Subscriber
) -> Closing | None:
    """Read the client's messages after ``auth``: fresh tokens (renewals); None once it
    disconnected, a :class:`Closing` for anything else."""
    while True:
        data = await receive_message(socket)
        if data is None:
            return None
        try:
            hello = parse_auth(data)
            renewed, expires = await check_token(ctx, hello.token)
        except Closing as closing:
            return closing
        if renewed.user != principal.user:
            return _policy("a renewed token must be of the same user")
        sub.expires = expires
        sub.say(control_frame("renewed", expires=expires))


async def _feed(ctx: GatewayContext, hub: EventHub, sub: Subscriber, since_seq: int | None) -> None:
    """The statuses now, then (with ``since_seq``) the missed events and ``caught_up``."""
    for frame in await current_statuses(ctx, hub, sub.user):
        sub.say(frame)
    if since_seq is None:
        return
    replay = await hub.replay(sub, since_seq)
    sub.say(control_frame("caught_up", seq=sub.last_seq, replayed=replay.events, gap=replay.gap))


async def _close(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_SECONDS):
            await socket.close(code=code, reason=reason[:120])


async def _serve(
    socket: WebSocket[Any, Any, Any],
    ctx: GatewayContext,
    hub: EventHub,
    principal: Principal,
    expires: int,
    hello: AuthMessage,
) -> Closing | None:
    """Run one authenticated connection; what to close it with (None: the client left)."""
    user = watched_user(principal, hello)
    sub = hub.attach(user, hold=hello.since_seq is not None)
    sub.expires = expires
    sub.say(
        control_frame(
            "ready", user=principal.user, watching=user or "*", queue_limit=sub.queue_limit
        )
    )
    pump = asyncio.create_task(_pump(socket, sub), name="events-pump")
    reader = asyncio.create_task(_read(socket, ctx, principal, sub), name="events-read")
    feed = asyncio.create_task(_feed(ctx, hub, sub, hello.since_seq), name="events-feed")
    ended = asyncio.create_task(sub.ended.wait(), name="events-ended")
    tasks = {pump, reader, feed, ended}
    try:
        while True:
            wait = max(0.0, sub.expires - time.time())
            done, _ = await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                if sub.expires <= time.time():
                    return _policy(
                        f"access token expired: reconnect with a fresh one and"
                        f" since_seq={sub.sent_seq}"
                    )
                continue
            if ended in done or pump in done:
                pump.cancel()
                if sub.end_code == CLOSE_SLOW:
                    reason = f"slow client: reconnect with since_seq={sub.sent_seq}"
                    return Closing(CLOSE_SLOW, reason)
                if sub.end_code == CLOSE_GOING_AWAY and sub.ended.is_set():
                    reason = f"gateway stopping: reconnect with since_seq={sub.sent_seq}"
                    return Closing(CLOSE_GOING_AWAY, reason)
                return None  # the pump stopped: the client is gone
            if reader in done:
                return reader.result()
            if feed in done:
                tasks.discard(feed)
                exc = feed.exception()
                if exc is not None and not isinstance(exc, SubscriberEnded):
                    log.warning("events feed failed", extra={"error": repr(exc)})
                    return Closing(
                        CLOSE_INTERNAL, f"events unavailable: reconnect with since_seq="
                        f"{hello.since_seq if sub.sent_seq == 0 else sub.sent_seq}"
                    )  # fmt: skip
    finally:
        hub.detach(sub)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


@websocket("/events", name="events")
async def events_socket(socket: WebSocket[Any, Any, Any], ctx: Ctx) -> None:
    """The live events of the caller (module docstring)."""
    await socket.accept()
    hub: EventHub | None = socket.app.state.get("events")
    if hub is None or not hub.running:
        await _close(socket, CLOSE_INTERNAL, "events unavailable")
        return
    try:
        try:
            async with asyncio.timeout(AUTH_SECONDS):
                data = await receive_message(socket)
        except TimeoutError:
            raise _policy('send {"type": "auth", "token": ...} first') from None
        if data is None:
            return
        hello = parse_auth(data)
        principal, expires = await check_token(ctx, hello.token)
        closing = await _serve(socket, ctx, hub, principal, expires, hello)
    except Closing as exc:
        closing = exc
    if closing is not None:
        await _close(socket, closing.code, closing.reason)


events_router = Router(path="/api/v1", route_handlers=[events_socket])
"""``/api/v1/events`` (registered by :func:`tradebus.gateway.app.api_routers`)."""
