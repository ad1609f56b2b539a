"""Identifiers: their types, and the deterministic ones.

The ids that key the system's state are distinct types (``typing.NewType``
over ``str``): a user's id where an account's is expected is a type error,
not a silent miss in a dict. At run time and on the wire they are plain
strings (msgspec encodes and decodes a NewType as its base type), so no
message changes; values from outside (a subject token, a config file, a test)
are wrapped where they enter, ``AccountId("alice-paper")``.

Strategies emit intent ids ``<bot>:<run>.<cycle>:<leg>`` (DESIGN.md,
"Execution"): the same bot in the same run and cycle placing the same leg
always produces the same id, so a resumed bot that re-emits is de-duplicated
by JetStream (``Nats-Msg-Id``) and by the ledger's unique intent id. ``run``
changes only when the bot starts *fresh* (its state forgotten), so a fresh
start never collides with the intents of an earlier run.
"""

from __future__ import annotations

from typing import NewType

UserId = NewType("UserId", str)
"""A user: the ``<user>`` token of ``intent.<user>.<source>``, the owner of accounts and bots."""

AccountId = NewType("AccountId", str)
"""An account (one user's keys or paper balances on one venue), e.g. ``alice-paper``."""

BotId = NewType("BotId", str)
"""A bot (one strategy instance of a user), e.g. ``alice-ladder-btc``; the ``<source>`` of
its intents."""

IntentId = NewType("IntentId", str)
"""An intent (a command to execution): unique per user forever, chosen by its sender;
``(user, intent id)`` keys the order it places."""


def intent_id(bot: str, run: int, cycle: int, leg: str) -> IntentId:
    """``<bot>:<run>.<cycle>:<leg>``, e.g. ``alice-ladder-btc:1.3:b0``."""
    return IntentId(f"{bot}:{run}.{cycle}:{leg}")


def cycle_of(iid: str) -> str:
    """The cycle an intent id belongs to: ``<bot>:<run>.<cycle>`` of ``<bot>:<run>.<cycle>:<leg>``.

    A strategy's cycle (a ladder or martingale cycle, a spread round, a volume
    loop) is what STRATEGIES.md's fill-model rule 6 books realized P&L by. An
    id of another shape (a manual intent ``manual-1``) belongs to no cycle and
    gives ``""``: such fills share one position per market (average cost).
    """
    head, sep, leg = iid.rpartition(":")
    bot, sep2, numbers = head.rpartition(":")
    run, dot, cycle = numbers.partition(".")
    if (
        sep
        and sep2
        and bot
        and leg
        and dot
        and (run + cycle).isascii()
        and run.isdigit()
        and cycle.isdigit()
    ):
        return head
    return ""


def event_msg_id(kind: str, key: str) -> str:
    """JetStream message id of an order event: ``<kind>:<key>``.

    ``key`` is the intent id for accept/reject/cancel events and
    ``<venue>:<trade_id>`` for fills, so republishing an event after a crash
    is de-duplicated.
    """
    return f"{kind}:{key}"
