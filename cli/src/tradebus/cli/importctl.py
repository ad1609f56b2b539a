"""``tradebus import volume-config FILE [-o OUT]``: the original volume bot's config file
(seed 004: ``global_settings -> strategies -> user_overrides``) as a tradebus bot file.

The conversion is :func:`tradebus.strategies.volume_config.convert_volume_config`;
the result is checked with the bot-file loader (the same checks as
``tradebus bots apply``) before it is written, so what is written applies as it is.
Every original setting with no equivalent here is named in a warning on stderr
(and in the file's header). Exit status: 0 converted, 2 bad input (the message
names the field and the value) or a converted file that does not validate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from tradebus.common.config import ConfigError, load_yaml
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.strategies.botfile import load_specs
from tradebus.strategies.volume_config import (
    UserMapping,
    convert_volume_config,
    encode_bot_file,
    parse_user_mapping,
)


def add_parser(sub: Any) -> None:
    """The ``import`` subcommand."""
    p = sub.add_parser("import", help="convert another bot's config file into a bot file")
    kinds = p.add_subparsers(dest="kind", required=True)
    vol = kinds.add_parser(
        "volume-config",
        help="the original volume bot's YAML (global_settings -> strategies -> user_overrides)",
        description="Convert the original volume bot's config (seed 004) into a layered bot"
        " file (defaults -> strategies -> users); settings with no equivalent are named in"
        " warnings. The result is validated like `tradebus bots apply` validates.",
    )
    vol.add_argument("file", type=Path, help="the original's config/trading_config.yaml")
    vol.add_argument("-o", "--output", type=Path, help="write the bot file here (default: stdout)")
    vol.add_argument("--venue", default="binance", help="the venue to trade on (default binance)")
    vol.add_argument(
        "--quote", default="USDT", help="the quote asset of each token's market (default USDT)"
    )
    vol.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="ID=NAME[:ACCOUNT]",
        help="who the original's user ID is (repeat; default user<ID>, account <NAME>-paper)",
    )
    vol.add_argument("--markets", type=Path, help="markets YAML (default: the shipped one)")


def run(args: argparse.Namespace) -> int:
    """Run ``tradebus import volume-config``; the exit status."""
    try:
        users: dict[str, UserMapping] = dict(parse_user_mapping(u) for u in args.user)
        catalog = MarketCatalog.load(args.markets or default_markets_path())
        raw = load_yaml(args.file, dict)
        try:
            converted = convert_volume_config(raw, catalog, args.venue, args.quote, users)
        except ConfigError as exc:
            raise ConfigError(f"{args.file}: {exc}") from None
        text = encode_bot_file(converted, args.file.name)
        with tempfile.TemporaryDirectory() as scratch:
            check = Path(scratch) / "bots.yaml"
            check.write_bytes(text)
            try:
                load_specs(check, catalog)  # raises naming every bad field
            except ConfigError as exc:
                message = str(exc).replace(str(check), "the converted bot file")
                raise ConfigError(f"{args.file}: {message}") from None
    except (ConfigError, ValueError) as exc:
        print(f"tradebus import: {exc}", file=sys.stderr)
        return 2
    for warning in converted.warnings:
        print(f"tradebus import: warning: {warning}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text.decode())
    else:
        args.output.write_bytes(text)
        print(f"wrote {args.output}: {len(converted.document['users'])} users", file=sys.stderr)
    return 0
