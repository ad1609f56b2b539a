"""``tradebus seal-keys --dir DIR``: make execution's key pair for sealed credentials.

Writes ``DIR/execution.key`` (the private key, mode 0600: give it to execution
only, as ``TRADEBUS_SEAL_KEY_FILE``) and ``DIR/execution.pub`` (the public key:
the gateway seals the exchange keys users add with it;
:mod:`tradebus.common.sealed`). Idempotent: existing files are kept, never
overwritten. ``--name notifier`` makes ``notifier.key``/``notifier.pub`` the same way:
the gateway seals the notification channels users save (Apprise URLs) to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tradebus.common.sealed import SealedError, write_key_pair


def add_parser(sub: Any) -> None:
    """The ``seal-keys`` subcommand."""
    p = sub.add_parser(
        "seal-keys",
        help="make execution's key pair for sealed exchange credentials (never overwrites)",
        description="Write execution.key (private, 0600; execution's TRADEBUS_SEAL_KEY_FILE) "
        "and execution.pub (public; the gateway's seal_public_key_file) in DIR, unless they "
        "exist.",
    )
    p.add_argument("--dir", type=Path, required=True, help="where the two files go")
    p.add_argument(
        "--name",
        choices=("execution", "notifier"),
        default="execution",
        help="whose pair: execution (exchange keys, the default) or notifier (the channels "
        "users save through the gateway: the gateway's notify_public_key_file)",
    )


def run(args: argparse.Namespace) -> int:
    """Make the key pair; print where it is. 0 on success, 2 on a bad directory or key file."""
    try:
        private, public, created = write_key_pair(args.dir, args.name)
    except (SealedError, OSError) as exc:
        print(f"tradebus seal-keys: {exc}", file=sys.stderr)
        return 2
    state = "created" if created else "kept (already there)"
    print(f"{private}: private key, {state}\n{public}: public key")
    return 0
