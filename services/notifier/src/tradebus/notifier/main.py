"""Entry point ``tradebus-notifier`` (the same in compose and ``make demo``)."""

from __future__ import annotations

from tradebus.common.runtime import service_main
from tradebus.notifier.bootstrap import run
from tradebus.notifier.settings import NotifierSettings


def main() -> None:
    """Run the notifier with settings from ``TRADEBUS_*`` variables."""
    service_main("notifier", NotifierSettings, run)


if __name__ == "__main__":
    main()
