"""The one place where NATS subjects and stream names are built and parsed.

Subjects (DESIGN.md, "Bus"):

=================================  ==================  =========================
subject                            kind                producer -> consumer
=================================  ==================  =========================
``md.quote.<venue>.<symbol>``      core NATS           marketdata -> hosts, paper
``md.trade.<venue>.<symbol>``      core NATS           marketdata -> hosts, paper
``feed.status.<venue>``            core NATS           marketdata -> anyone
``intent.<user>.<source>``         JetStream           strategy, operator ->
                                   INTENTS_<user>      execution (trusted)
``person.intent.<user>.<source>``  JetStream           a person's own NATS account
                                   INTENTS_<user>      -> execution (untrusted)
``exec.evt.<user>.<source>``       JetStream EXEC      execution -> hosts, CLI
``exec.alert.<user>.<account>``    JetStream EXEC      execution -> the user, ops
``exec.query.<verb>``              request/reply       reconciler, CLI -> execution
``recon.report.<account>``         JetStream RECON     reconciler -> anyone
``recon.alert.<account>``          JetStream RECON     reconciler -> anyone
``ctl.<area>.<verb>``              request/reply       CLI -> services
``ctl.killswitch``                 request/reply       operator -> execution
``ctl.paper.adjust``               request/reply       operator -> execution
``ctl.accounts.sync``              request/reply       gateway, CLI -> execution
``exec.adjust``                    request/reply       reconciler -> execution
``bot.status.<user>.<bot>``        core NATS           hosts -> gateway, the user
``audit.<source>``                 JetStream AUDIT     every actor -> gateway
                                                       (writes ``audit_log``)
``dryrun.<user>.<bot>``            JetStream DRYRUN    hosts -> CLI, gateway (what
                                                       dry-run bots did)
KV ``bots``: ``<bot>``             JetStream KV        ``bots apply`` -> hosts
KV ``bot_state``: ``<bot>``        JetStream KV        host -> host (snapshots)
KV ``leases``: ``bot.<bot>``,      JetStream KV (TTL)  host replicas
``host.<replica>``
KV ``group_volume``:               JetStream KV        host -> hosts (volume
``<group>.<bot>``                                      targets)
KV ``killswitch``: ``global``,     JetStream KV        execution (kept across
``account.<account>``                                  restarts)
=================================  ==================  =========================

``<symbol>`` is the venue's native market id (``BTCUSDT``). Every token must
match :data:`TOKEN_PATTERN`: no dots, spaces or wildcards, so a user name can
never widen a subscription.

Each user has a stream of their own, ``INTENTS_<user>``, holding both forms of
their intents: its limits are that user's quota, its duplicate window is that
user's alone (a guessed ``Nats-Msg-Id`` cannot drop another user's intent),
and execution fetches each user's stream on its own (fair scheduling). A
person publishes ``intent.<user>.<source>`` in their own NATS account; the
service import of their NATS account (:mod:`tradebus.natsauth.accounts`) maps it to
``person.intent.<user>.<source>`` in the system account, so execution knows
which intents came from a person (whose times it never trusts) and which from
the system's own services.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from tradebus.common.ids import UserId

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a subject token (user, source, account, venue, symbol, verb) may be."""

INTENTS_STREAM_PREFIX = "INTENTS_"
"""Each user's intents are in stream ``INTENTS_<user>`` (:func:`intents_stream`)."""
STREAM_EXEC = "EXEC"
STREAM_RECON = "RECON"
STREAM_AUDIT = "AUDIT"
"""State-changing actions of every part of tradebus, until the gateway writes them to
``audit_log`` (:class:`~tradebus.common.messages.AuditEvent`)."""
STREAM_DRYRUN = "DRYRUN"
"""What dry-run bots did: their intents and their simulated venue's answers
(:class:`~tradebus.common.messages.DryRunRecord`)."""
STREAM_DEADLETTER = "DEADLETTER"
"""Intents execution gave up on, and JetStream's advisories of intents delivered too often."""

MANUAL_SOURCE = "manual"
"""The source token people use for hand-made intents: ``intent.<user>.manual``."""


class SubjectError(ValueError):
    """A subject token or a subject is not well formed."""


def token(value: str, what: str = "token") -> str:
    """Return ``value`` if it is a valid subject token, else raise :class:`SubjectError`."""
    if not TOKEN_PATTERN.match(value):
        raise SubjectError(f"invalid {what} {value!r}: must match {TOKEN_PATTERN.pattern}")
    return value


def md_quote(venue: str, symbol: str) -> str:
    """``md.quote.<venue>.<symbol>``."""
    return f"md.quote.{token(venue, 'venue')}.{token(symbol, 'symbol')}"


def md_trade(venue: str, symbol: str) -> str:
    """``md.trade.<venue>.<symbol>``."""
    return f"md.trade.{token(venue, 'venue')}.{token(symbol, 'symbol')}"


def md_symbol_wildcard(venue: str, symbol: str) -> str:
    """``md.*.<venue>.<symbol>``: quotes and trades of one market."""
    return f"md.*.{token(venue, 'venue')}.{token(symbol, 'symbol')}"


MD_ALL = "md.>"


def feed_status(venue: str) -> str:
    """``feed.status.<venue>``: :class:`~tradebus.common.messages.FeedStatus` of one venue's feed.

    Outside ``md.>`` on purpose: every ``md.>`` subscriber may assume ticks only.
    """
    return f"feed.status.{token(venue, 'venue')}"


def intent(user: str, source: str) -> str:
    """``intent.<user>.<source>``; source is a bot id or ``manual``."""
    return f"intent.{token(user, 'user')}.{token(source, 'source')}"


INTENT_ALL = "intent.>"
"""Every intent published in the system account (a person's arrive as ``person.intent.>``)."""

PERSON_PREFIX = "person."
"""What the service import of a person's NATS account puts before their intent subjects."""


def person_intent(user: str, source: str) -> str:
    """``person.intent.<user>.<source>``: ``intent.<user>.<source>`` as published by a
    person from their own NATS account, seen in the system account."""
    return PERSON_PREFIX + intent(user, source)


class IntentSubject(NamedTuple):
    """Who an intent subject says sent it: ``user``, ``source``, and whether a person
    published it from their own NATS account (``from_person``: its times are not trusted)."""

    user: UserId
    source: str
    from_person: bool


def parse_intent(subject: str) -> IntentSubject:
    """Split ``intent.<user>.<source>`` or ``person.intent.<user>.<source>``.

    Raises
    ------
    SubjectError
        If the subject does not have exactly one of those shapes with valid tokens.
    """
    from_person = subject.startswith(PERSON_PREFIX)
    parts = subject[len(PERSON_PREFIX) if from_person else 0 :].split(".")
    if len(parts) != 3 or parts[0] != "intent":
        raise SubjectError(f"not an intent subject: {subject!r}")
    user = UserId(token(parts[1], "user"))
    return IntentSubject(user, token(parts[2], "source"), from_person)


def intents_stream(user: str) -> str:
    """``INTENTS_<user>``: the JetStream stream of one user's intents."""
    return INTENTS_STREAM_PREFIX + token(user, "user")


def intents_stream_subjects(user: str) -> list[str]:
    """What ``INTENTS_<user>`` captures: the user's intents from the system's services
    and from the user's own NATS account."""
    return [f"intent.{token(user, 'user')}.>", f"{PERSON_PREFIX}intent.{user}.>"]


INTENT_PARTITION_TRANSFORM = ("intent.*.>", "intent.{{wildcard(1)}}.{{partition(%d,1)}}.>")
"""NATS subject mapping ``partition(N, 1)`` of ``intent.<user>.>`` (source, destination with
``%d`` = N): what :func:`intent_partition` computes, as a server ``mappings`` entry or a
stream ``subject_transform`` would apply it."""


def intent_partition(user: str, partitions: int) -> int:
    """The partition of ``intent.<user>.>`` among ``partitions``: what nats-server's subject
    mapping ``partition(partitions, 1)`` (:data:`INTENT_PARTITION_TRANSFORM`) gives it.

    The server hashes the mapped wildcard's token with 32-bit FNV-1a and takes it
    modulo the number of partitions (``getHashPartition`` in nats-server's
    ``server/subject_transform.go``); the same here, so a process finds its
    users without asking the server (proved against a real server in
    ``tests/integration/test_execution_shards.py``). Result in ``[0, partitions)``.

    Raises
    ------
    SubjectError
        If ``user`` is not a valid token.
    ValueError
        If ``partitions`` < 1.
    """
    if partitions < 1:
        raise ValueError(f"partitions={partitions!r}: must be >= 1")
    h = 0x811C9DC5
    for byte in token(user, "user").encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % partitions


def intents_stream_user(stream: str) -> UserId | None:
    """The user of an ``INTENTS_<user>`` stream name, or None for any other stream."""
    if not stream.startswith(INTENTS_STREAM_PREFIX):
        return None
    user = stream[len(INTENTS_STREAM_PREFIX) :]
    return UserId(user) if TOKEN_PATTERN.match(user) else None


def deadletter_intent(user: str) -> str:
    """``deadletter.intent.<user>``: a copy of an intent of ``user`` that execution gave up on
    (stream :data:`STREAM_DEADLETTER`; headers say why)."""
    return f"deadletter.intent.{token(user, 'user')}"


DEADLETTER_INTENT_ALL = "deadletter.intent.>"


def max_deliveries_advisory(stream: str, consumer: str) -> str:
    """JetStream's advisory that a message of ``stream`` reached ``consumer``'s
    ``max_deliver`` (``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>``)."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


def exec_evt(user: str, source: str) -> str:
    """``exec.evt.<user>.<source>``: order events answering that source's intents."""
    return f"exec.evt.{token(user, 'user')}.{token(source, 'source')}"


EXEC_EVT_ALL = "exec.evt.>"


def exec_alert(user: str, account: str) -> str:
    """``exec.alert.<user>.<account>``: an account needs its owner (:class:`AccountHalted`)."""
    return f"exec.alert.{token(user, 'user')}.{token(account, 'account')}"


EXEC_ALERT_ALL = "exec.alert.>"


def exec_query(verb: str) -> str:
    """``exec.query.<verb>`` (``balances``)."""
    return f"exec.query.{token(verb, 'verb')}"


def recon_report(account: str) -> str:
    """``recon.report.<account>``."""
    return f"recon.report.{token(account, 'account')}"


def recon_alert(account: str) -> str:
    """``recon.alert.<account>``."""
    return f"recon.alert.{token(account, 'account')}"


RECON_ALERT_ALL = "recon.alert.>"
"""Every account's drift alerts (the notifier)."""
RECON_ALL = "recon.>"


def ctl(area: str, verb: str) -> str:
    """``ctl.<area>.<verb>`` (``ctl.bots.status``, ``ctl.recon.run``)."""
    return f"ctl.{token(area, 'area')}.{token(verb, 'verb')}"


EXEC_ADJUST = "exec.adjust"
"""Request/reply to execution: write ledger adjustment entries (``AdjustRequest``)."""
EXEC_BOT_ADJUST = "exec.bot_adjust"
"""Request/reply to execution: journal a correction of a bot's position (``BotAdjustment``)."""
CTL_PAPER_ADJUST = "ctl.paper.adjust"
"""Request/reply to execution: move a paper venue balance by hand (``PaperAdjust``)."""
CTL_KILLSWITCH = "ctl.killswitch"
"""Request/reply to execution: engage, release or show the kill switch (``KillSwitchCommand``)."""
CTL_ACCOUNTS_SYNC = "ctl.accounts.sync"
"""Request/reply to execution: load or unload accounts of ``account_configs`` (``AccountsSync``)."""


def bot_status(user: str, bot: str) -> str:
    """``bot.status.<user>.<bot>``: a bot's :class:`~tradebus.common.messages.BotStatusChanged`."""
    return f"bot.status.{token(user, 'user')}.{token(bot, 'bot')}"


def bot_status_of(user: str) -> str:
    """``bot.status.<user>.>``: the status changes of every bot of ``user``."""
    return f"bot.status.{token(user, 'user')}.>"


BOT_STATUS_ALL = "bot.status.>"


def audit(source: str) -> str:
    """``audit.<source>``: an :class:`~tradebus.common.messages.AuditEvent` made by ``source``."""
    return f"audit.{token(source, 'source')}"


AUDIT_ALL = "audit.>"


def dry_run(user: str, bot: str) -> str:
    """``dryrun.<user>.<bot>``: a :class:`~tradebus.common.messages.DryRunRecord` of a
    dry-run bot (``execute_trades: false``)."""
    return f"dryrun.{token(user, 'user')}.{token(bot, 'bot')}"


DRYRUN_ALL = "dryrun.>"


STREAM_SUBJECTS: dict[str, list[str]] = {
    STREAM_EXEC: [EXEC_EVT_ALL, EXEC_ALERT_ALL],
    STREAM_RECON: [RECON_ALL],
    STREAM_AUDIT: [AUDIT_ALL],
    STREAM_DRYRUN: [DRYRUN_ALL],
}
"""Which subjects each shared JetStream stream captures (each user's ``INTENTS_<user>``:
:func:`intents_stream_subjects`; ``DEADLETTER``: execution's own)."""


KV_BOTS = "bots"
"""Resolved bot specs by bot id (written by ``tradebus bots apply``)."""
KV_BOT_STATE = "bot_state"
"""Each bot's last snapshot record by bot id."""
KV_LEASES = "leases"
"""One lease per strategy host replica, ``host.<id>`` (its view of the replicas: which bots
it runs follows from it, ``tradebus.strategy.leases``)."""
KV_GROUP_VOLUME = "group_volume"
"""Filled buy notional of each volume bot, ``<group>.<bot>``."""
KV_KILLSWITCH = "killswitch"
"""Engaged kill switches (``global``, ``account.<account>``) -> reason; kept across restarts."""


def host_key(replica: str) -> str:
    """``host.<replica>``: a replica's lease (and heartbeat) in KV ``leases``."""
    return f"host.{token(replica, 'replica')}"


def group_volume_key(group: str, bot: str) -> str:
    """``<group>.<bot>`` in KV ``group_volume``."""
    return f"{token(group, 'group')}.{token(bot, 'bot')}"


def group_volume_keys(group: str) -> str:
    """``<group>.*``: every bot's key of one group in KV ``group_volume``."""
    return f"{token(group, 'group')}.*"


def kv_subject(bucket: str, key: str) -> str:
    """``$KV.<bucket>.<key>``: publishing here is a KV put (JetStream KV protocol)."""
    return f"$KV.{bucket}.{key}"
