"""Entry point ``tradebus-gateway`` (the same in compose and ``make demo``)."""

from __future__ import annotations

from tradebus.common.runtime import service_main
from tradebus.gateway.bootstrap import run
from tradebus.gateway.settings import GatewaySettings


def main() -> None:
    """Run the gateway with settings from ``TRADEBUS_*`` variables."""
    service_main("gateway", GatewaySettings, run)


if __name__ == "__main__":
    main()
