"""``tradebus nats-init`` and ``tradebus nats-creds``: the NATS identities of an installation.

``nats-init --dir DIR [--accounts FILE] [--resolver-dir PATH]`` makes the
operator, the accounts ``SYS`` and ``TRADEBUS`` and the signing keys if they
are not there yet (it never replaces a key), (re)issues the credentials of
every service, the operator, the gateway and the SYS claims-update user, and
writes ``DIR/nats.conf`` with the people of the accounts file preloaded
(:func:`tradebus.natsauth.identities.init_installation`; the layout is in its
module docstring). Compose runs it as the one-shot service ``nats-init``.

``nats-creds USER [--dir DIR] [--ttl-hours H]`` prints a ``.creds`` file for a
person, to hand to them: with it, the NATS CLI publishes their intents and
reads their own events (``nats --creds alice.creds sub 'exec.evt.alice.>'``).
Their account must be known to the server: a person of the accounts file
(preloaded), or one the gateway registered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tradebus.common.config import ConfigError
from tradebus.common.subjects import SubjectError
from tradebus.natsauth.accounts import person_account_key, person_credentials
from tradebus.natsauth.claims import ClaimsError
from tradebus.natsauth.identities import (
    Identities,
    IdentityError,
    init_installation,
    people_of,
)

DEFAULT_DIR = Path("var/nats/auth")
"""Where ``tradebus demo`` keeps its identities (``nats-creds``' default)."""
DEFAULT_TTL_HOURS = 24.0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``nats-init`` and ``nats-creds`` subcommands."""
    init = sub.add_parser(
        "nats-init",
        help="make the NATS operator, accounts, keys and credentials of an installation",
        description="Create the NATS identities of an installation in DIR if absent (never "
        "overwriting a key), issue every service's, the operator's and the gateway's "
        "credentials, and write DIR/nats.conf (operator mode, full resolver) with the people "
        "of the accounts file preloaded. Idempotent.",
    )
    init.add_argument("--dir", type=Path, required=True, help="the identities directory")
    init.add_argument(
        "--accounts", type=Path, help="preload the people of this accounts file (YAML)"
    )
    init.add_argument(
        "--resolver-dir",
        help="where nats-server keeps account JWTs (default DIR/jwt; a path of the server)",
    )
    creds = sub.add_parser(
        "nats-creds",
        help="print a person's NATS credentials (.creds) for the NATS CLI",
        description="Print a .creds file for USER: publish intent.USER.>, read exec.evt.USER.>,"
        " exec.alert.USER.> and bot.status.USER.>. Keep it secret; it expires after --ttl-hours.",
    )
    creds.add_argument("user")
    creds.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    creds.add_argument("--ttl-hours", type=float, default=DEFAULT_TTL_HOURS)


def run_init(args: argparse.Namespace) -> int:
    """``tradebus nats-init``; the exit status (2: bad input, with the reason on stderr)."""
    try:
        people = people_of(args.accounts) if args.accounts else []
        done = init_installation(args.dir, people, args.resolver_dir)
    except (ConfigError, IdentityError, SubjectError, OSError) as exc:
        print(f"tradebus nats-init: {exc}", file=sys.stderr)
        return 2
    print(f"{done.conf}: operator mode, {len(done.people)} people ({', '.join(done.people)})")
    print(f"credentials: {', '.join(sorted(done.creds))} in {done.directory / 'creds'}")
    return 0


def run_creds(args: argparse.Namespace) -> int:
    """``tradebus nats-creds``: print the credentials; the exit status."""
    try:
        identities = Identities.load(args.dir)
        account = person_account_key(identities, args.user).public_key
        text = person_credentials(identities, args.user, account, int(args.ttl_hours * 3600))
    except (IdentityError, SubjectError, ClaimsError) as exc:
        print(f"tradebus nats-creds: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0
