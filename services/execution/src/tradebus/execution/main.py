"""Entry point ``tradebus-execution`` (the same in compose and ``make demo``)."""

from __future__ import annotations

from tradebus.common.runtime import service_main
from tradebus.execution.bootstrap import run
from tradebus.execution.settings import ExecutionSettings


def main() -> None:
    """Run the execution service with settings from ``TRADEBUS_*`` variables."""
    service_main("execution", ExecutionSettings, run)


if __name__ == "__main__":
    main()
