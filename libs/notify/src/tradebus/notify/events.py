"""The bus events a user hears about, as :class:`Notice` texts (pure).

Sources (:mod:`tradebus.common.subjects`, :mod:`tradebus.common.messages`):

* ``exec.evt.<user>.<source>`` :class:`OrderFilled` -> ``fill``;
* ``exec.alert.<user>.<account>`` :class:`AccountHalted` -> ``halted``;
* ``recon.alert.<account>`` :class:`ReconReport` (drift) -> ``drift``, to the account's owner;
* ``bot.status.<user>.<bot>`` :class:`BotStatusChanged`, compared with the bot's
  previous status (:class:`BotWatch`): more ``cycles_completed`` -> ``take_profit``,
  state becoming ``failed`` -> ``bot_failed``, ``position_mismatch`` becoming true ->
  ``drift``;
* KV ``killswitch`` keys ``global`` / ``account.<account>`` put -> ``killswitch``.

Texts are short, one line, numbers in plain decimal notation (:func:`plain`):
``alice · bot ladder-1 · BUY 0.01 BTCUSDT @ 64000.5 filled``.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.messages import AccountHalted, BotStatus, OrderFilled, ReconReport

SEP = " · "
"""Between the parts of a notice's text."""
WARNING_KINDS = frozenset({"halted", "drift", "killswitch", "bot_failed"})
"""Kinds sent as Apprise ``warning`` (the rest as ``info``)."""


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """One thing to tell ``user``: its ``kind`` (an
    :data:`~tradebus.notify.channels.EventKind`), the ``bot`` it is about (None: an
    account's or everyone's), and its one-line ``text``."""

    user: str
    kind: str
    text: str
    bot: str | None = None


def plain(value: Decimal | None) -> str:
    """``value`` in plain decimal notation without trailing zeros: ``0E-8`` -> ``0``,
    ``64000.50`` -> ``64000.5``, ``1E+3`` -> ``1000``; None -> ``-``."""
    if value is None:
        return "-"
    if value.is_nan() or value.is_infinite():
        return str(value)
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def who(user: str, source: str) -> str:
    """``alice · bot ladder-1`` (``manual`` intents: ``alice · manual``)."""
    return f"{user}{SEP}manual" if source == "manual" else f"{user}{SEP}bot {source}"


def fill_notice(event: OrderFilled) -> Notice:
    """A fill: ``alice · bot ladder-1 · BUY 0.01 BTCUSDT @ 64000.5 filled`` (``partly
    filled, 0.02 left`` while some of the order remains; the fee when there is one)."""
    done = "filled" if event.leaves_qty == 0 else f"partly filled, {plain(event.leaves_qty)} left"
    fee = f" (fee {plain(event.fee)} {event.fee_asset})" if event.fee else ""
    text = (
        f"{who(event.user, event.source)}{SEP}{event.side.upper()} {plain(event.qty)} "
        f"{event.symbol} @ {plain(event.price)} {done}{fee}"
    )
    bot = None if event.source == "manual" else event.source
    return Notice(user=event.user, kind="fill", text=text, bot=bot)


def halted_notice(event: AccountHalted) -> Notice:
    """``alice · account alice-live halted: <reason> (<message>)``."""
    text = f"{event.user}{SEP}account {event.account} halted: {event.reason}" + (
        f" ({event.message})" if event.message else ""
    )
    return Notice(user=event.user, kind="halted", text=text)


def drift_notice(user: str, report: ReconReport) -> Notice:
    """``alice · account alice-paper drift: BTC venue 1 ledger 0.9 (drift 0.1,
    tolerance 0.0001); action alert``."""
    rows = [
        f"{r.asset} venue {plain(r.venue_total)} ledger {plain(r.ledger_total)}"
        f" (drift {plain(r.drift)}, tolerance {plain(r.tolerance)})"
        for r in report.rows
        if not r.ok
    ]
    text = f"{user}{SEP}account {report.account} drift: {'; '.join(rows) or 'see report'}"
    if report.action not in ("none", ""):
        text += f"; action {report.action}"
    return Notice(user=user, kind="drift", text=text)


def killswitch_notice(user: str, key: str, reason: str) -> Notice:
    """The kill switch engaged: KV key ``global`` (every account) or
    ``account.<account>``; ``reason`` is the key's value."""
    scope = "every account" if key == "global" else f"account {key.removeprefix('account.')}"
    why = f": {reason}" if reason else ""
    return Notice(
        user=user, kind="killswitch", text=f"{user}{SEP}kill switch engaged on {scope}{why}"
    )


class BotWatch:
    """Turns a bot's status changes into notices by comparing each status with the
    bot's previous one (``bot.status`` carries states, not events).

    The first status seen of a bot (at start, or when its host starts it) only sets
    the baseline, except a bot seen already ``failed``, which is reported once.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], BotStatus] = {}

    def update(self, status: BotStatus) -> list[Notice]:
        """The notices of ``status`` given the bot's previous status."""
        key = (status.user, status.bot)
        before = self._last.get(key)
        self._last[key] = status
        head = who(status.user, status.bot)
        notices: list[Notice] = []
        if status.state == "failed" and (before is None or before.state != "failed"):
            text = f"{head}{SEP}failed" + (f": {status.error}" if status.error else "")
            notices.append(Notice(user=status.user, kind="bot_failed", text=text, bot=status.bot))
        if before is None:
            return notices
        if status.cycles_completed > before.cycles_completed:
            text = (
                f"{head}{SEP}take-profit on {status.symbol}: cycle {status.cycles_completed} "
                f"closed, realized P&L {plain(status.realized_pnl)}"
            )
            notices.append(Notice(user=status.user, kind="take_profit", text=text, bot=status.bot))
        if status.position_mismatch and not before.position_mismatch:
            text = (
                f"{head}{SEP}position check: held differs from the bot's position by "
                f"{plain(status.position_difference)} {status.symbol}"
            )
            notices.append(Notice(user=status.user, kind="drift", text=text, bot=status.bot))
        return notices

    def forget(self, user: str, bot: str) -> None:
        """Drop a bot's baseline (it left every host)."""
        self._last.pop((user, bot), None)
