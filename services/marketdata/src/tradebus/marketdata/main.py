"""Entry point ``tradebus-marketdata`` (the same in compose and ``make demo``)."""

from __future__ import annotations

from tradebus.common.runtime import service_main
from tradebus.marketdata.bootstrap import run
from tradebus.marketdata.settings import MarketdataSettings


def main() -> None:
    """Run the marketdata service with settings from ``TRADEBUS_*`` variables."""
    service_main("marketdata", MarketdataSettings, run)


if __name__ == "__main__":
    main()
