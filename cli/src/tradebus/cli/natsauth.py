"""NATS users of ``deploy/nats/nats.conf``: who they are, their passwords, their URLs.

``nats.conf`` never holds a password: each user's is a variable reference
(``password: $TRADEBUS_NATS_EXECUTION_PASSWORD``) that nats-server resolves
from its environment. :func:`conf_users` reads which variable belongs to which
user; :func:`generate_passwords` makes a fresh password for each (what
``tradebus demo`` does per run); :func:`with_user` puts a user and password into
a client URL (``nats://execution:<password>@127.0.0.1:4222``), the form nats-py
and every tradebus service's ``TRADEBUS_NATS_URL`` accept.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_CONF = Path("deploy/nats/nats.conf")
"""The repository's config, relative to the repository root (where ``make demo`` runs)."""

OPERATOR = "operator"
"""The admin user: the ``tradebus`` CLI and the demo's own questions."""

SERVICES = ("marketdata", "strategy", "execution", "reconciler")
"""The users of the four services (a service's user is its name)."""

_USER = re.compile(r"\{\s*user:\s*([A-Za-z0-9_-]+)\s*,\s*password:\s*\$([A-Za-z_][A-Za-z0-9_]*)")


class NatsConfError(ValueError):
    """``nats.conf`` does not declare its users as expected; the message says what."""


def conf_users(conf: Path) -> dict[str, str]:
    """``user -> password variable`` of every user declared in ``conf``.

    Only the one-line form ``{user: <name>, password: $<VARIABLE>, ...`` is
    read, which is how ``deploy/nats/nats.conf`` declares them.

    Raises
    ------
    NatsConfError
        If the file declares no user, or one user twice.
    OSError
        If the file cannot be read.
    """
    users: dict[str, str] = {}
    for line in conf.read_text().splitlines():
        match = _USER.search(line.split("#", 1)[0])
        if match:
            if match[1] in users:
                raise NatsConfError(f"{conf}: user {match[1]} is declared twice")
            users[match[1]] = match[2]
    if not users:
        raise NatsConfError(f"{conf}: no `{{user: <name>, password: $<VARIABLE>` found")
    return users


def generate_passwords(users: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Fresh random passwords: ``(user -> password, variable -> password)``.

    The first is for client URLs, the second the environment of nats-server.
    Each password is ``p`` and 36 hex digits (144 bits): nats-server parses a
    variable's value as a config value, so it must be a plain word (a leading
    digit, ``-`` or ``.`` would make it a number or a parse error), and it goes
    into URLs unquoted.
    """
    by_user = {user: "p" + secrets.token_hex(18) for user in users}
    return by_user, {var: by_user[user] for user, var in users.items()}


def with_user(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` in place of any credentials it had.

    >>> with_user("nats://127.0.0.1:4222", "alice", "s3cret")
    'nats://alice:s3cret@127.0.0.1:4222'
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
