"""tradebus NATS identities in operator mode (see :mod:`tradebus.natsauth.identities`)."""
