"""Deterministic identifiers.

Strategies emit intent ids ``<bot>:<run>.<cycle>:<leg>`` (DESIGN.md,
"Execution"): the same bot in the same run and cycle placing the same leg
always produces the same id, so a resumed bot that re-emits is de-duplicated
by JetStream (``Nats-Msg-Id``) and by the ledger's unique intent id. ``run``
changes only when the bot starts *fresh* (its state forgotten), so a fresh
start never collides with the intents of an earlier run.
"""

from __future__ import annotations


def intent_id(bot: str, run: int, cycle: int, leg: str) -> str:
    """``<bot>:<run>.<cycle>:<leg>``, e.g. ``alice-ladder-btc:1.3:b0``."""
    return f"{bot}:{run}.{cycle}:{leg}"


def event_msg_id(kind: str, key: str) -> str:
    """JetStream message id of an order event: ``<kind>:<key>``.

    ``key`` is the intent id for accept/reject/cancel events and
    ``<venue>:<trade_id>`` for fills, so republishing an event after a crash
    is de-duplicated.
    """
    return f"{kind}:{key}"
