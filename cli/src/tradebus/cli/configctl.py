"""``tradebus config check FILE...`` and ``tradebus config schema bots|accounts|markets``.

``check`` reads bot, accounts and markets files offline (no NATS, no Postgres) with the
loaders the services use at start (:func:`tradebus.strategies.botfile.load_specs`,
:func:`tradebus.engine.accounts.load_accounts`, :meth:`MarketCatalog.load`) and prints
every error of every file, one line each: ``<file>:<line>: <path>: <message>``. The kind
of a file is told by its top keys (``accounts``; ``venues``; ``defaults``, ``strategies``,
``users`` or ``bots``), or by ``--kind``. Bots are checked against the markets file
given among the files, else ``--markets``, else the shipped one; the strategies are
the installed ones (plug-ins included). Exit status: 0 every file is valid, 1 an error
was found (for CI and pre-commit hooks).

``schema`` prints the JSON Schema of a kind of file (README "Configuration files"):
what ``deploy/config/schema/*.schema.json`` holds.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tradebus.common.config import ConfigError
from tradebus.common.configfile import FileErrors, read_doc
from tradebus.common.markets import MarketCatalog, default_markets_path, markets_file_schema
from tradebus.engine.accounts import PAPER, accounts_file_schema, load_accounts
from tradebus.notify.channels import load_notifications
from tradebus.strategies.botfile import bot_file_schema, load_specs

KINDS = ("bots", "accounts", "markets")
"""The kinds of file with a JSON Schema (``config schema``)."""
CHECKED = (*KINDS, "notifications")
"""The kinds of file ``config check`` reads (the notifier's file too: README "Notifications")."""
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "bots": bot_file_schema,
    "accounts": accounts_file_schema,
    "markets": markets_file_schema,
}
"""Each kind of file -> its JSON Schema."""
_BOT_KEYS = {"defaults", "strategies", "users", "bots"}


def add_parser(sub: Any) -> None:
    """The ``config`` subcommand."""
    p = sub.add_parser("config", help="check bot, accounts and markets files offline; schemas")
    verbs = p.add_subparsers(dest="verb", required=True)
    check = verbs.add_parser(
        "check",
        help="print every error of each file (exit 1 if any); no NATS or Postgres needed",
        description="Check bot, accounts and markets files as the services do at start, "
        "offline, and print every error, one line each (<file>:<line>: <path>: <message>). "
        "Exit 0 if every file is valid, 1 otherwise.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--kind", choices=CHECKED, help="the files' kind (default: by content)")
    check.add_argument(
        "--markets",
        type=Path,
        help="markets file for the bots' markets (default: one among FILE, else the shipped one)",
    )
    schema = verbs.add_parser(
        "schema",
        help="print the JSON Schema of a kind of file (for editors: yaml-language-server)",
    )
    schema.add_argument("kind", choices=KINDS)


def kind_of(data: Any) -> str | None:
    """The kind of file whose YAML is ``data`` by its top keys; None if it does not tell."""
    if not isinstance(data, dict):
        return None
    keys = set(data)
    if "operators" in keys or (
        isinstance(data.get("users"), dict) and not keys & (_BOT_KEYS - {"users"})
    ):
        return "notifications"
    if "accounts" in keys:
        return "accounts"
    if "venues" in keys:
        return "markets"
    if keys & _BOT_KEYS:
        return "bots"
    return None


def _read(path: Path) -> Any:
    """The file's YAML; None if it cannot be read or parsed (the loader says what is
    wrong, at its line)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _has_live(data: Any) -> bool:
    """True if an accounts file's YAML names a venue other than paper."""
    items = data.get("accounts") if isinstance(data, dict) else None
    return isinstance(items, list) and any(
        isinstance(a, dict) and a.get("venue", PAPER) != PAPER for a in items
    )


def check(paths: list[Path], kind: str | None, markets: Path | None) -> tuple[int, list[str]]:
    """Check each file; ``(exit status, output lines)``.

    A file whose kind is neither given nor told by its content is an error naming the
    top keys each kind has. Each valid file gets one ``<file>: ok (...)`` line.
    """
    kinds = {p: kind or kind_of(_read(p)) for p in paths}
    lines: list[str] = []
    failed = False
    if markets is None:
        markets = next((p for p in paths if kinds[p] == "markets"), None)
    catalog: MarketCatalog | None = None
    for path in paths:
        what = kinds[path]
        try:
            if what == "accounts":
                live = _live_venues() if _has_live(_read(path)) else None
                accounts = load_accounts(path, live)
                lines.append(f"{path}: ok (accounts file, {_count(len(accounts), 'account')})")
            elif what == "notifications":
                notifications = load_notifications(path)
                people = _count(len(notifications.users), "user")
                operators = _count(len(notifications.operators), "operator channel")
                lines.append(f"{path}: ok (notifications file, {operators}, {people})")
            elif what == "markets":
                n = len(MarketCatalog.load(path).all_markets())
                lines.append(f"{path}: ok (markets file, {_count(n, 'market')})")
            elif what == "bots":
                if catalog is None:
                    try:
                        catalog = MarketCatalog.load(markets or default_markets_path())
                    except FileErrors as exc:
                        failed = True
                        lines += [] if markets in paths else exc.lines
                        lines.append(f"{path}: not checked: invalid markets file {exc.file}")
                        continue
                specs = load_specs(path, catalog)
                lines.append(f"{path}: ok (bot file, {_count(len(specs), 'bot')})")
            else:
                failed = True
                read_doc(path, "config")  # unreadable, empty, not YAML: says so, at its line
                lines.append(
                    f"{path}: not a bot, accounts, markets or notifications file (top keys: "
                    "defaults/strategies/users or bots; accounts; venues; operators): give --kind"
                )
        except FileErrors as exc:
            failed = True
            lines += exc.lines
        except ConfigError as exc:
            failed = True
            text = str(exc)
            lines.append(text if text.startswith(f"{path}:") else f"{path}: {text}")
    return (1 if failed else 0), lines


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _live_venues() -> list[str] | None:
    """ccxt's exchange ids (what a live account's venue may be), None without ccxt."""
    try:
        import ccxt  # heavy: only for an accounts file
    except ImportError:
        return None
    return list(ccxt.exchanges)


def run(args: argparse.Namespace) -> int:
    """Run ``tradebus config``; the exit status."""
    if args.verb == "schema":
        print(json.dumps(SCHEMAS[args.kind](), indent=2))
        return 0
    status, lines = check(args.files, args.kind, args.markets)
    print("\n".join(lines))
    return status
