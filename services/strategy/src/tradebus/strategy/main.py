"""Entry point ``tradebus-strategy`` (the same in compose and ``make demo``)."""

from __future__ import annotations

from tradebus.common.runtime import service_main
from tradebus.strategy.bootstrap import run
from tradebus.strategy.settings import StrategySettings


def main() -> None:
    """Run the strategy service with settings from ``TRADEBUS_*`` variables."""
    service_main("strategy", StrategySettings, run)


if __name__ == "__main__":
    main()
