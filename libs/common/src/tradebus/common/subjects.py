"""The one place where NATS subjects and stream names are built and parsed.

Subjects (DESIGN.md, "Bus"):

=================================  ==================  =========================
subject                            kind                producer -> consumer
=================================  ==================  =========================
``md.quote.<venue>.<symbol>``      core NATS           marketdata -> hosts, paper
``md.trade.<venue>.<symbol>``      core NATS           marketdata -> hosts, paper
``feed.status.<venue>``            core NATS           marketdata -> anyone
``intent.<user>.<source>``         JetStream INTENTS   strategy / person -> execution
``exec.evt.<user>.<source>``       JetStream EXEC      execution -> hosts, CLI
``exec.alert.<user>.<account>``    JetStream EXEC      execution -> the user, ops
``exec.query.<verb>``              request/reply       reconciler, CLI -> execution
``recon.report.<account>``         JetStream RECON     reconciler -> anyone
``recon.alert.<account>``          JetStream RECON     reconciler -> anyone
``ctl.<area>.<verb>``              request/reply       CLI -> services
``ctl.killswitch``                 request/reply       operator -> execution
``ctl.paper.adjust``               request/reply       operator -> execution
``exec.adjust``                    request/reply       reconciler -> execution
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
"""

from __future__ import annotations

import re

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a subject token (user, source, account, venue, symbol, verb) may be."""

STREAM_INTENTS = "INTENTS"
STREAM_EXEC = "EXEC"
STREAM_RECON = "RECON"

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


def parse_intent(subject: str) -> tuple[str, str]:
    """Split ``intent.<user>.<source>`` into ``(user, source)``.

    Raises
    ------
    SubjectError
        If the subject does not have exactly that shape with valid tokens.
    """
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "intent":
        raise SubjectError(f"not an intent subject: {subject!r}")
    return token(parts[1], "user"), token(parts[2], "source")


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


RECON_ALL = "recon.>"


def ctl(area: str, verb: str) -> str:
    """``ctl.<area>.<verb>`` (``ctl.bots.status``, ``ctl.recon.run``)."""
    return f"ctl.{token(area, 'area')}.{token(verb, 'verb')}"


EXEC_ADJUST = "exec.adjust"
"""Request/reply to execution: write ledger adjustment entries (``AdjustRequest``)."""
CTL_PAPER_ADJUST = "ctl.paper.adjust"
"""Request/reply to execution: move a paper venue balance by hand (``PaperAdjust``)."""
CTL_KILLSWITCH = "ctl.killswitch"
"""Request/reply to execution: engage, release or show the kill switch (``KillSwitchCommand``)."""


STREAM_SUBJECTS: dict[str, list[str]] = {
    STREAM_INTENTS: [INTENT_ALL],
    STREAM_EXEC: [EXEC_EVT_ALL, EXEC_ALERT_ALL],
    STREAM_RECON: [RECON_ALL],
}
"""Which subjects each JetStream stream captures."""


KV_BOTS = "bots"
"""Resolved bot specs by bot id (written by ``tradebus bots apply``)."""
KV_BOT_STATE = "bot_state"
"""Each bot's last snapshot record by bot id."""
KV_LEASES = "leases"
"""Which host replica runs which bot (``bot.<bot>``), and live replicas (``host.<id>``)."""
KV_GROUP_VOLUME = "group_volume"
"""Filled buy notional of each volume bot, ``<group>.<bot>``."""
KV_KILLSWITCH = "killswitch"
"""Engaged kill switches (``global``, ``account.<account>``) -> reason; kept across restarts."""


def lease_key(bot: str) -> str:
    """``bot.<bot>``: the lease of one bot in KV ``leases``."""
    return f"bot.{token(bot, 'bot')}"


def host_key(replica: str) -> str:
    """``host.<replica>``: a replica's heartbeat in KV ``leases``."""
    return f"host.{token(replica, 'replica')}"


def group_volume_key(group: str, bot: str) -> str:
    """``<group>.<bot>`` in KV ``group_volume``."""
    return f"{token(group, 'group')}.{token(bot, 'bot')}"


def kv_subject(bucket: str, key: str) -> str:
    """``$KV.<bucket>.<key>``: publishing here is a KV put (JetStream KV protocol)."""
    return f"$KV.{bucket}.{key}"
