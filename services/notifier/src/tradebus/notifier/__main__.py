"""tradebus notifier: ``python -m tradebus.notifier``."""

from tradebus.notifier.main import main

main()
