"""The benchmark's bot file and accounts file, generated deterministically.

``N`` ladder bots spread over BTCUSDT and ETHUSDT on ``binance`` and over
users of :data:`BOTS_PER_USER` bots each (``u07-ladder-0013`` is bot 13,
owned by user ``u07`` through account ``u07-paper``). Parameters are drawn
from a seeded random generator within ranges that make the ladders trade on
the recorded window (BTC moved about 0.5 %, ETH about 0.4 %, in 11 minutes),
so the same ``N`` always gives the same files.

The files are built from the services' own structs and validated by the
services' own loaders before anything starts.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import msgspec

from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.engine.accounts import AccountsFile, AccountSpec, load_accounts
from tradebus.strategies.botfile import SpecList, load_specs
from tradebus.strategies.registry import BotSpec

VENUE = "binance"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
BOTS_PER_USER = 20
SEED = 20240809
USER_BALANCE_USDT = Decimal(100_000)
MAKER_FEE_BPS = Decimal(1)
TAKER_FEE_BPS = Decimal(2)


def user_name(index: int, users: int) -> UserId:
    """``u07``: user ``index`` zero-padded to the width of the user count (at least 2)."""
    return UserId(f"u{index:0{max(2, len(str(users - 1)))}d}")


def account_name(user: UserId) -> AccountId:
    """The one paper account of ``user``."""
    return AccountId(f"{user}-paper")


def user_count(bots: int) -> int:
    """How many users ``bots`` bots are spread over."""
    return max(1, -(-bots // BOTS_PER_USER))


def ladder_params(rng: random.Random) -> dict[str, str | int]:
    """One bot's ladder parameters (STRATEGIES.md §1), drawn from ``rng``.

    total_quote 500-3000 USDT, 3-8 orders, max drop 0.10-0.40 %, increment
    0-50 %, take-profit 0.030-0.100 %, no-fill restart after 1-3 minutes.
    """
    return {
        "total_quote": str(rng.randrange(500, 3001, 100)),
        "order_count": rng.randint(3, 8),
        "max_drop_pct": str(Decimal(rng.randint(10, 40)) / 100),
        "increment_pct": str(rng.randrange(0, 51, 5)),
        "take_profit_pct": str(Decimal(rng.randint(30, 100)) / 1000),
        "no_fill_restart_minutes": str(rng.randint(1, 3)),
    }


def bot_specs(count: int, seed: int = SEED) -> list[BotSpec]:
    """``count`` ladder bots, users in order, symbols alternating within each user."""
    rng = random.Random(seed)
    users = user_count(count)
    width = max(4, len(str(count - 1)))
    specs = []
    for i in range(count):
        user = user_name(i // BOTS_PER_USER, users)
        specs.append(
            BotSpec(
                id=BotId(f"{user}-ladder-{i:0{width}d}"),
                user=user,
                account=account_name(user),
                strategy="ladder",
                venue=VENUE,
                symbol=SYMBOLS[i % len(SYMBOLS)],
                params=ladder_params(rng),
            )
        )
    return specs


def account_specs(users: list[UserId]) -> list[AccountSpec]:
    """One paper account per user, with enough USDT for all its bots and no risk limits."""
    return [
        AccountSpec(
            id=account_name(user),
            user=user,
            venue="paper",
            market_data=VENUE,
            balances={"USDT": USER_BALANCE_USDT},
            maker_fee_bps=MAKER_FEE_BPS,
            taker_fee_bps=TAKER_FEE_BPS,
        )
        for user in users
    ]


def write_configs(directory: Path, bots: int) -> tuple[Path, Path, list[BotSpec]]:
    """Write ``bots.yaml`` and ``accounts.yaml`` into ``directory`` and validate them.

    Returns the two paths and the bot specs.

    Raises
    ------
    tradebus.common.config.ConfigError
        If the services' loaders reject a generated file (a bug of this module).
    """
    specs = bot_specs(bots)
    users = sorted({s.user for s in specs})
    bots_path = directory / "bots.yaml"
    accounts_path = directory / "accounts.yaml"
    bots_path.write_bytes(msgspec.yaml.encode(SpecList(bots=specs)))
    accounts_path.write_bytes(msgspec.yaml.encode(AccountsFile(accounts=account_specs(users))))
    load_specs(bots_path, MarketCatalog.load(default_markets_path()))
    load_accounts(accounts_path)
    return bots_path, accounts_path, specs
