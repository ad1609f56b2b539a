"""tradebus notifier: Alertmanager's alerts to the operators, each user's own events to that
user (:mod:`tradebus.notify` is its core)."""
