"""``python -m tradebus.gateway``."""

from tradebus.gateway.main import main

main()
