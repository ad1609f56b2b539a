"""Deterministic identifiers.

Strategies emit intent ids ``<bot>:<cycle>:<leg>`` (DESIGN.md, "Execution"):
the same bot in the same cycle placing the same leg always produces the same
id, so a restarted bot that re-emits is de-duplicated by JetStream
(``Nats-Msg-Id``) and by the ledger's unique intent id.
"""

from __future__ import annotations


def intent_id(bot: str, cycle: int, leg: str) -> str:
    """``<bot>:<cycle>:<leg>``, e.g. ``alice-ladder-btc:3:b0``."""
    return f"{bot}:{cycle}:{leg}"


def event_msg_id(kind: str, key: str) -> str:
    """JetStream message id of an order event: ``<kind>:<key>``.

    ``key`` is the intent id for accept/reject/cancel events and
    ``<venue>:<trade_id>`` for fills, so republishing an event after a crash
    is de-duplicated.
    """
    return f"{kind}:{key}"
