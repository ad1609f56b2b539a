"""A protocol-faithful local Backpack exchange (REST + WebSocket) for tests.

See :mod:`tests.support.backpack.server` for the entry point, and the module
docstrings of ``auth`` (signing), ``rest`` and ``ws`` (the endpoints, what
they mirror), ``engine`` (matching, funds), ``faults``, and ``recorded``
(``binance_ticks``: shared/data captures to replay, kept out of this package's
imports so the server does not depend on the marketdata parser).
"""

from tests.support.backpack.auth import Credentials, generate_credentials, sign, signing_string
from tests.support.backpack.faults import RequestRecord
from tests.support.backpack.market import (
    BTC_USDC,
    ETH_USDC,
    SOL_USDC,
    Balance,
    Fill,
    MarketSpec,
    Order,
    spot_market,
)
from tests.support.backpack.server import BackpackServer

__all__ = [
    "BTC_USDC",
    "ETH_USDC",
    "SOL_USDC",
    "BackpackServer",
    "Balance",
    "Credentials",
    "Fill",
    "MarketSpec",
    "Order",
    "RequestRecord",
    "generate_credentials",
    "sign",
    "signing_string",
    "spot_market",
]
