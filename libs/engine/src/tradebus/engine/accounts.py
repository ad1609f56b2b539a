"""The accounts file: who owns which account, on which venue, with what money and limits.

YAML::

    accounts:
      - id: alice-paper
        user: alice                  # the owner: only intent.alice.* may use it
        venue: paper                 # simulated; filled by market_data's trades
        market_data: binance
        balances: {USDT: "10000"}    # starting balances (paper)
        maker_fee_bps: "2"
        taker_fee_bps: "5"
        risk:                        # all optional (execution/risk.py)
          max_order_notional: "5000"
          max_open_orders: 50
          price_band_pct: "5"        # a limit more than 5% from the last trade is refused
          max_daily_loss: "500"      # no new orders once today's realized P&L <= -500
          max_orders_per_second: 20
      - id: dave-perp
        user: dave
        market_kind: perpetual       # every market traded as a linear USDT-margined perpetual
        leverage: "5"                # margin = notional / leverage (default 1); a live
                                     # perpetual account's is set at its venue at start
        balances: {USDT: "10000"}

A **live** account names a ccxt exchange id as its ``venue`` and where its
keys are, never the keys themselves::

      - id: bob-backpack
        user: bob
        venue: backpack              # any id of ccxt.exchanges
        market_data: backpack        # the markets file's venue of its symbols
        api_key_env: BOB_BACKPACK_API_KEY          # an environment variable, or
        secret_file: /run/secrets/bob_backpack_secret  # a file (compose secret)
        rate_per_second: 10          # the account's request budget
        burst: 10
        poll_seconds: 1              # fills polled this often while the order stream is down
        backstop_seconds: 30         # ... and this often while it is up (a backstop)
        # fill_stream: false         # no private order stream: fills by polling only
        timeout_seconds: 10          # per request; a place without answer is "unknown"
        # sandbox: true                    # the venue's testnet, where ccxt has one
        # api_url: http://127.0.0.1:8080   # optional: ccxt urls['api'] (tests, mirrors)
        # ws_url: ws://127.0.0.1:8081      # optional: ccxt.pro urls['api']['ws']

Each of the API key and the secret comes from exactly one of ``*_env`` /
``*_file``; a venue that also asks for a passphrase (OKX: ccxt's ``password``)
or a user id (``uid``) gets it from ``password_env``/``password_file`` or
``uid_env``/``uid_file``. They are read by execution's composition root only
(``tradebus.execution.keys``), which refuses an account whose venue requires a
credential it does not name.
``balances`` of a live account, if given, are its opening ledger deposits;
if omitted, the venue's balances when the account is first created are.

An account added at run time (through the gateway; the ledger table
``account_configs``) holds the same fields, and a live one ``sealed: true``
instead of the ``*_env``/``*_file`` fields: its credentials are sealed to
execution's public key in the row (:mod:`tradebus.common.sealed`) and
execution opens them when it loads the account. Which credentials a venue
needs is ccxt's ``requiredCredentials`` of the exchange (``apiKey``,
``secret``, and ``password``, ``uid``... where the venue asks for one):
:func:`credential_problems`. ``sealed`` is refused in the accounts file.

``market_kind`` (``spot`` by default) says how the account trades; a market
whose own ``kind`` is ``perpetual`` in the markets file is traded as a
perpetual by every account (:func:`trades_perpetual`). Perpetual accounting
is in :mod:`tradebus.engine.perp`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from tradebus.common.configfile import (
    FileErrors,
    Problem,
    convert_fields,
    file_schema,
    read_doc,
    says_nothing_new,
)
from tradebus.common.ids import AccountId, UserId
from tradebus.common.markets import Market, MarketKind
from tradebus.common.messages import ReconMode
from tradebus.common.subjects import TOKEN_PATTERN


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-account limits; ``None`` means no limit (:mod:`tradebus.engine.risk`).

    ``max_order_notional`` and ``max_daily_loss`` are in the quote asset,
    ``price_band_pct`` in percent of the last trade price. ``max_margin_ratio``
    (perpetual accounts, 0 to 1): once the account's margin ratio as last
    measured reaches it, only orders that reduce a position go out.
    """

    max_order_notional: Decimal | None = None
    max_open_orders: int | None = None
    price_band_pct: Decimal | None = None
    max_daily_loss: Decimal | None = None
    max_orders_per_second: int | None = None
    max_margin_ratio: Decimal | None = None


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the reconciler treats the account (seed 001's ``reconciliation.enabled`` and
    ``logDetailedReport``).

    ``enabled`` (default true): reconciled at the reconciler's start, on its timer and on
    ``tradebus recon run``; false: never (``recon run`` says it is off, and its venue is
    not asked). ``detailed_report`` (default true): the report lists every asset and
    position compared (venue, ledger, difference, tolerance); false: only the drifting ones.
    """

    enabled: bool = True
    detailed_report: bool = True

    @property
    def mode(self) -> ReconMode:
        """``off``, ``detailed`` or ``short`` (``AccountBalances.reconciliation``)."""
        if not self.enabled:
            return "off"
        return "detailed" if self.detailed_report else "short"


CancelAtStart = Literal["none", "unknown", "all"]
"""Which open orders of an account execution cancels when it starts the account
(:class:`AtStart`)."""


class AtStart(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What execution does once each time it starts the account: when execution starts,
    and when it loads an account added at run time (seed 000's ``cancelAllOrders`` and
    ``sellNonUsdcAssets`` / ``sellNonUsdcMinValue``; ``tradebus.execution.account_start``).

    ``cancel_open_orders`` (default ``none``): ``unknown`` cancels the orders open at the
    venue that the ledger does not know (placed outside tradebus: the venue's web page,
    another program); ``all`` also every open order of the ledger, the bots' and manual
    ones (their sources hear ``OrderCanceled``). Bots' orders are never canceled unless
    ``all`` is asked for.

    ``sweep_assets`` (default false): sell, at market, every asset other than
    ``sweep_quote`` (default ``USDC``) whose free balance, less what the account's bots
    hold of it by the ledger, is worth more than ``sweep_min_value`` (default 10, in
    ``sweep_quote``, at the venue's last price) into ``sweep_quote``; an asset without a
    ``<asset>_<quote>`` market is left. Each asset is logged and audited. Spot accounts
    only (``market_kind: spot``).
    """

    cancel_open_orders: CancelAtStart = "none"
    sweep_assets: bool = False
    sweep_min_value: Decimal = Decimal(10)
    sweep_quote: str = "USDC"


class AccountSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One account of the accounts file.

    ``reconciliation``: :class:`Reconciliation`; ``at_start``: :class:`AtStart`.
    """

    id: AccountId
    user: UserId
    venue: str = "paper"
    market_data: str = "binance"
    balances: dict[str, Decimal] = {}
    maker_fee_bps: Decimal = Decimal(10)
    taker_fee_bps: Decimal = Decimal(10)
    risk: RiskLimits = RiskLimits()
    market_kind: MarketKind = "spot"
    leverage: Decimal = Decimal(1)
    reconciliation: Reconciliation = Reconciliation()
    at_start: AtStart = AtStart()
    # live accounts only
    api_url: str | None = None
    ws_url: str | None = None
    rate_per_second: float = 10.0
    burst: int = 10
    fill_stream: bool = True
    poll_seconds: float = 1.0
    backstop_seconds: float = 30.0
    timeout_seconds: float = 10.0
    api_key_env: str | None = None
    api_key_file: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    uid_env: str | None = None
    uid_file: str | None = None
    sealed: bool = False
    """The credentials are sealed in the account's ``account_configs`` row (run time only)."""
    sandbox: bool | None = None
    """Trade on the venue's testnet or sandbox (ccxt ``set_sandbox_mode``; ccxt's
    ``urls['test']``, e.g. Binance's spot testnet and USD-M futures testnet). Live
    accounts only; execution refuses it for a venue that has none."""

    @property
    def live(self) -> bool:
        """True for an account on a real exchange (through ccxt), False for paper."""
        return self.venue != PAPER


PAPER = "paper"
_KEY_SOURCES = (
    "api_key_env",
    "api_key_file",
    "secret_env",
    "secret_file",
    "password_env",
    "password_file",
    "uid_env",
    "uid_file",
)
FILE_CREDENTIALS = {"apiKey": "api_key", "secret": "secret", "password": "password", "uid": "uid"}
"""ccxt's credential name -> the accounts-file field prefix (``<prefix>_env``/``_file``)."""
_LIVE_ONLY = ("api_url", "ws_url", "sandbox", *_KEY_SOURCES)


MAX_LEVERAGE = Decimal(125)
"""The largest leverage an account may declare (Binance USD-M's maximum)."""


def trades_perpetual(account_kind: MarketKind, market: Market) -> bool:
    """True if an account of ``account_kind`` trades ``market`` as a perpetual.

    Either the account says so (``market_kind: perpetual``) or the market does
    (``kind: perpetual`` in the markets file).
    """
    return account_kind == "perpetual" or market.kind == "perpetual"


class AccountsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole accounts file."""

    accounts: list[AccountSpec]


def validate_accounts(
    specs: list[AccountSpec],
    live_venues: Collection[str] | None = None,
    paths: list[str] | None = None,
) -> list[str]:
    """Every problem as ``accounts[i].<field>: <message>``; empty when valid.

    ``live_venues``: the venue ids a live account may name (execution gives
    ccxt's exchange ids); None accepts any. ``paths``: each spec's own path
    (default ``accounts[i]``, ``i`` its index in ``specs``).
    """
    problems: list[str] = []
    seen: set[str] = set()
    for i, a in enumerate(specs):
        where = paths[i] if paths is not None else f"accounts[{i}]"
        for field in ("id", "user", "market_data"):
            if not TOKEN_PATTERN.match(getattr(a, field)):
                problems.append(f"{where}.{field}: must match {TOKEN_PATTERN.pattern}")
        if a.id in seen:
            problems.append(f"{where}.id: duplicate account id {a.id!r}")
        seen.add(a.id)
        for asset, amount in a.balances.items():
            if not (amount.is_finite() and amount >= 0):
                problems.append(f"{where}.balances.{asset}: must be >= 0")
        for field in ("maker_fee_bps", "taker_fee_bps"):
            value = getattr(a, field)
            if not (value.is_finite() and 0 <= value < 10_000):
                problems.append(f"{where}.{field}: must be >= 0 and < 10000")
        if not (a.leverage.is_finite() and 1 <= a.leverage <= MAX_LEVERAGE):
            problems.append(f"{where}.leverage: must be >= 1 and <= {MAX_LEVERAGE}")
        elif a.live and a.leverage != a.leverage.to_integral_value():
            problems.append(f"{where}.leverage: a live venue takes a whole number")
        limit = a.risk.max_order_notional
        if limit is not None and not (limit.is_finite() and limit > 0):
            problems.append(f"{where}.risk.max_order_notional: must be > 0")
        for field in ("price_band_pct", "max_daily_loss"):
            value = getattr(a.risk, field)
            if value is not None and not (value.is_finite() and value > 0):
                problems.append(f"{where}.risk.{field}: must be > 0")
        for field in ("max_open_orders", "max_orders_per_second"):
            count = getattr(a.risk, field)
            if count is not None and count < 1:
                problems.append(f"{where}.risk.{field}: must be >= 1")
        value = a.at_start.sweep_min_value
        if not (value.is_finite() and value >= 0):
            problems.append(f"{where}.at_start.sweep_min_value: must be >= 0 (got {value})")
        if a.at_start.sweep_assets and a.market_kind != "spot":
            problems.append(
                f"{where}.at_start.sweep_assets: only for spot accounts (market_kind is"
                f" {a.market_kind}: its orders open perpetual positions)"
            )
        if not TOKEN_PATTERN.match(a.at_start.sweep_quote):
            problems.append(
                f"{where}.at_start.sweep_quote: must match {TOKEN_PATTERN.pattern}"
                f" (got {a.at_start.sweep_quote!r})"
            )
        problems.extend(_live_problems(where, a, live_venues))
    return problems


def _live_problems(where: str, a: AccountSpec, live_venues: Collection[str] | None) -> list[str]:
    """What is wrong with the venue and key fields of one account."""
    problems: list[str] = []
    if not a.live:
        problems += [
            f"{where}.{field}: only for live accounts (venue is paper)"
            for field in _LIVE_ONLY
            if getattr(a, field) is not None
        ]
        if a.sealed:
            problems.append(f"{where}.sealed: only for live accounts (venue is paper)")
        return problems
    if live_venues is not None and a.venue not in live_venues:
        problems.append(f"{where}.venue: {a.venue!r} is neither paper nor a ccxt exchange id")
    if a.sealed:
        problems.extend(
            f"{where}.{field}: not with sealed credentials"
            for field in _KEY_SOURCES
            if getattr(a, field) is not None
        )
    else:
        for name in ("api_key", "secret"):
            env, file = getattr(a, f"{name}_env"), getattr(a, f"{name}_file")
            if (env is None) == (file is None):
                problems.append(f"{where}: give exactly one of {name}_env and {name}_file")
        for name in ("password", "uid"):
            if getattr(a, f"{name}_env") is not None and getattr(a, f"{name}_file") is not None:
                problems.append(f"{where}: give at most one of {name}_env and {name}_file")
    if not a.rate_per_second > 0:
        problems.append(f"{where}.rate_per_second: must be > 0")
    if a.burst < 1:
        problems.append(f"{where}.burst: must be >= 1")
    for field in ("poll_seconds", "backstop_seconds", "timeout_seconds"):
        if not getattr(a, field) > 0:
            problems.append(f"{where}.{field}: must be > 0")
    return problems


def load_accounts(
    path: str | Path, live_venues: Collection[str] | None = None
) -> list[AccountSpec]:
    """Read and validate an accounts file (``live_venues``: see :func:`validate_accounts`).

    Every error of the file is found in one pass (:mod:`tradebus.common.configfile`):
    each account is converted field by field, and the range and cross-field checks
    run on every account whose required fields are sound (a field of the wrong type
    is reported once, as such).

    Raises
    ------
    FileErrors
        (a :class:`ConfigError`) listing every error as ``<file>:<line>: <path>:
        <message>``; also for an unreadable or empty file and a YAML syntax error.
    """
    doc = read_doc(path, "accounts")
    problems, specs = account_problems(doc.data, live_venues)
    if problems:
        raise FileErrors(doc, "accounts", problems)
    return specs


def account_problems(
    data: dict[str, Any], live_venues: Collection[str] | None = None
) -> tuple[list[Problem], list[AccountSpec]]:
    """Every error of the accounts file's YAML mapping ``data`` (paths ``accounts[i]...``),
    and its accounts (meaningful only when there is no error: a missing or bad value is a
    default or a placeholder there, to run the other checks)."""
    problems = [
        Problem(key, "unknown field (known: accounts)") for key in data if key != "accounts"
    ]
    items = data.get("accounts")
    if not isinstance(items, list):
        what = "required" if items is None else f"expected a list of accounts, got {items!r}"
        return [*problems, Problem("accounts", what)], []
    specs: list[AccountSpec] = []
    paths: list[str] = []
    bad: list[str] = []
    for i, item in enumerate(items):
        where = f"accounts[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem(where, f"expected a mapping of account fields, got {item!r}"))
            continue
        spec, found = convert_fields(item, AccountSpec, where, placeholders=True)
        problems += found
        bad += [p.path for p in found]
        if spec is not None:
            specs.append(spec)
            paths.append(where)
    checks = validate_accounts(specs, live_venues, paths)
    checks += [
        f"{where}.sealed: only for accounts added at run time (the file names key"
        " variables or files)"
        for where, a in zip(paths, specs, strict=True)
        if a.sealed
    ]
    for text in checks:
        at, _, message = text.partition(": ")
        if not says_nothing_new(at, message, bad):
            problems.append(Problem(at, message))
    return problems, specs


def accounts_file_schema() -> dict[str, Any]:
    """The JSON Schema of the accounts file (``tradebus config schema accounts``; README
    "Configuration files"): its types and fields, not the cross-field checks of
    :func:`load_accounts`."""
    (root,), defs = msgspec.json.schema_components([AccountsFile], ref_template="#/$defs/{name}")
    return file_schema(root, defs, "tradebus accounts file")


def credential_problems(
    venue: str, given: Collection[str], required: Mapping[str, bool], where: str = "credentials"
) -> list[str]:
    """What is wrong with the credential names ``given`` for an account on ``venue``.

    ``required`` is ccxt's ``requiredCredentials`` of the exchange
    (``getattr(ccxt, venue)().requiredCredentials``: every credential name
    ccxt knows -> whether this exchange needs it). A name ccxt does not know
    is refused, and so is a required one that is missing; each problem is
    ``<where>.<name>: <message>``. Values are never looked at here.
    """
    problems = [
        f"{where}.{name}: required by {venue}"
        for name, needed in required.items()
        if needed and name not in given
    ]
    problems += [
        f"{where}.{name}: not a credential ccxt knows (one of {', '.join(sorted(required))})"
        for name in sorted(given)
        if name not in required
    ]
    return problems
