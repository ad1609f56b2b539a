"""What dry-run bots did: reading stream ``DRYRUN`` (``dryrun.<user>.<bot>``).

A dry-run bot (``execute_trades: false``) sends no order to its account; the
strategy host running it records each of its intents and each answer of its
simulated venue as a :class:`~tradebus.common.messages.DryRunRecord`
(:mod:`tradebus.strategy.dryrun`). :func:`dry_run_records` reads them back for
``tradebus bots dry-run BOT`` and ``GET /api/v1/bots/{id}/dry-run``;
:func:`describe` says one in a line.
"""

from __future__ import annotations

import contextlib
from collections import deque

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from tradebus.common import subjects
from tradebus.common.codec import decode_dry_run_record
from tradebus.common.messages import (
    CancelAll,
    CancelOrder,
    CancelRejected,
    DryRunRecord,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
)

READ_TIMEOUT_SECONDS = 1.0
"""How long :func:`dry_run_records` waits for the next record before it stops."""
DEFAULT_LIMIT = 1000


async def dry_run_records(
    js: JetStreamContext, user: str, bot: str, limit: int = DEFAULT_LIMIT
) -> list[DryRunRecord]:
    """The last ``limit`` records of ``user``'s bot ``bot`` in stream ``DRYRUN``, oldest
    first (empty when it never ran dry). Reads with an ordered consumer until no record
    is pending.

    Raises
    ------
    ValueError
        If ``user`` or ``bot`` is not a subject token, or ``limit`` < 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1 (got {limit})")
    subject = subjects.dry_run(user, bot)
    info = await js.stream_info(subjects.STREAM_DRYRUN, subjects_filter=subject)
    if not (info.state.subjects or {}).get(subject):
        return []
    kept: deque[DryRunRecord] = deque(maxlen=limit)
    sub = await js.subscribe(
        subject,
        stream=subjects.STREAM_DRYRUN,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=READ_TIMEOUT_SECONDS)
            except nats.errors.TimeoutError:
                break
            with contextlib.suppress(msgspec.DecodeError):  # not a record: not ours to show
                kept.append(decode_dry_run_record(msg.data))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return list(kept)


def describe(record: DryRunRecord) -> str:
    """One line for people: what the bot asked or what its simulated venue answered."""
    match record.intent or record.event:
        case PlaceOrder() as p:
            at = "market" if p.price is None else f"@ {p.price}"
            return f"place {p.intent_id} {p.side} {p.qty} {p.symbol} {p.order_type} {at}"
        case CancelOrder() as c:
            return f"cancel {c.target_intent_id}"
        case CancelAll() as c:
            return f"cancel all ({c.scope})"
        case OrderAccepted() as a:
            return f"accepted {a.intent_id} {a.qty}"
        case OrderFilled() as f:
            return f"filled {f.intent_id} {f.side} {f.qty} @ {f.price} fee {f.fee} {f.fee_asset}"
        case OrderCanceled() as c:
            return f"canceled {c.intent_id}"
        case OrderRejected() as r:
            return f"rejected {r.intent_id} {r.reason}: {r.message}"
        case CancelRejected() as r:
            return f"cancel rejected {r.intent_id} {r.reason}"
    return "?"
