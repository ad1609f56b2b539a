"""Per-bot P&L and position gauges of a strategy host (``tradebus_strategy_bot_*``).

Set from each bot's :class:`BotStatus` when the host refreshes its gauges
(every ``snapshot_interval_seconds``, up to 1,000 bots per refresh in turn:
on a host with more, a bot's values are refreshed every ``bots / 1,000``
intervals); a bot's series are removed when
it leaves the host (handed over, dropped, retired), so a bot is exported by
the one replica running it. Amounts are Decimal in the bots and floats here:
P&L in the quote asset, position in the base asset (signed: short < 0).

The position check's findings (docs/strategies.md "Position check") are
gauges too: ``tradebus_strategy_bot_position_difference`` (the last check's
``held - position``, base units; 0 before the first), ``..._position_mismatch``
(1 while it is above the threshold and uncorrected) and
``..._average_missing`` (1 while a position is held at an average price of 0);
the alert rules ``BotPositionMismatch`` and ``BotAverageMissing`` watch them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge

from tradebus.common.messages import BotStatus

BOT_LABELS = ("bot", "user", "account", "symbol")
"""Labels of every per-bot gauge."""


class BotGauges:
    """``tradebus_strategy_bot_{realized_pnl,unrealized_pnl,position,position_difference,
    position_mismatch,average_missing}{bot,user,account,symbol}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.realized_pnl = Gauge(
            "tradebus_strategy_bot_realized_pnl",
            "Realized P&L of the bot, in the quote asset",
            BOT_LABELS,
            registry=registry,
        )
        self.unrealized_pnl = Gauge(
            "tradebus_strategy_bot_unrealized_pnl",
            "Unrealized P&L of the bot's position at the last price, in the quote asset",
            BOT_LABELS,
            registry=registry,
        )
        self.position = Gauge(
            "tradebus_strategy_bot_position",
            "Position of the bot, in the base asset (short < 0)",
            BOT_LABELS,
            registry=registry,
        )
        self.position_difference = Gauge(
            "tradebus_strategy_bot_position_difference",
            "Last position check of the bot: what its account holds for it minus its position,"
            " in the base asset",
            BOT_LABELS,
            registry=registry,
        )
        self.position_mismatch = Gauge(
            "tradebus_strategy_bot_position_mismatch",
            "1 while the bot's last position check is above its threshold and uncorrected",
            BOT_LABELS,
            registry=registry,
        )
        self.average_missing = Gauge(
            "tradebus_strategy_bot_average_missing",
            "1 while the bot holds a position at an average price of 0",
            BOT_LABELS,
            registry=registry,
        )
        self._labels: dict[str, tuple[str, str, str, str]] = {}  # bot -> its series' labels

    def _gauges(self) -> tuple[Gauge, ...]:
        return (
            self.realized_pnl,
            self.unrealized_pnl,
            self.position,
            self.position_difference,
            self.position_mismatch,
            self.average_missing,
        )

    def update(self, statuses: Iterable[BotStatus]) -> None:
        """Set the gauges of every bot in ``statuses``; remove those of bots not among them."""
        statuses = list(statuses)
        self.set_many(statuses)
        for bot in set(self._labels) - {s.bot for s in statuses}:
            self.forget(bot)

    def set_many(self, statuses: Iterable[BotStatus]) -> None:
        """Set the gauges of the bots in ``statuses`` (the others keep theirs)."""
        for status in statuses:
            labels = (status.bot, status.user, status.account, status.symbol)
            if self._labels.get(status.bot, labels) != labels:
                self.forget(status.bot)  # same bot, new account or symbol
            self._labels[status.bot] = labels
            self.realized_pnl.labels(*labels).set(float(status.realized_pnl))
            self.unrealized_pnl.labels(*labels).set(float(status.unrealized_pnl))
            self.position.labels(*labels).set(float(status.position))
            difference = status.position_difference or 0
            self.position_difference.labels(*labels).set(float(difference))
            self.position_mismatch.labels(*labels).set(int(status.position_mismatch))
            self.average_missing.labels(*labels).set(int(status.average_missing))

    def forget(self, bot: str) -> None:
        """Remove the series of ``bot`` (it left the host); no-op if it has none."""
        labels = self._labels.pop(bot, None)
        if labels is None:
            return
        for gauge in self._gauges():
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
