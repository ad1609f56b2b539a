"""Entry point ``tradebus-reconciler`` (the same in compose and ``make demo``)."""

from __future__ import annotations

from tradebus.common.runtime import service_main
from tradebus.reconciler.bootstrap import run
from tradebus.reconciler.settings import ReconcilerSettings


def main() -> None:
    """Run the reconciler with settings from ``TRADEBUS_*`` variables."""
    service_main("reconciler", ReconcilerSettings, run)


if __name__ == "__main__":
    main()
