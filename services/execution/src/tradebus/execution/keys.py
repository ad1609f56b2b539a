"""API keys of live accounts: read once by the composition root, never shown.

A key comes from an environment variable (``api_key_env``) or a file
(``api_key_file``, e.g. a compose secret under ``/run/secrets``), as the
accounts file says (:mod:`.accounts`); or, for an account added at run time,
from its credentials sealed to execution (:func:`keys_from_credentials`,
opened by :mod:`.accounts_sync`). It is held in a :class:`Secret`,
whose ``repr``/``str`` never show the value, and handed only to the ccxt
client. Errors name the variable or the path, never the content.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import ccxt

from tradebus.common.config import ConfigError
from tradebus.engine.accounts import FILE_CREDENTIALS, AccountSpec


class Secret:
    """A secret string that does not print itself; :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: pass it to the venue client, nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple:  # never pickled with its value
        raise TypeError("a Secret cannot be pickled")


class RedactSecrets(logging.Filter):
    """A log filter that replaces every registered secret in a record's message by ``***``.

    ccxt logs each request with its headers at DEBUG (``X-API-Key`` among
    them): the venue clients log through :data:`VENUE_HTTP_LOG`, which has
    this filter, so no level setting can leak a key.
    """

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()

    def add(self, *secrets: Secret) -> None:
        """Redact these secrets from now on."""
        self._values.update(s.reveal() for s in secrets if s.reveal())

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._values:
            return True
        text = record.getMessage()
        clean = text
        for value in self._values:
            clean = clean.replace(value, "***")
        if clean != text:
            record.msg, record.args = clean, ()
        return True


REDACT = RedactSecrets()
VENUE_HTTP_LOG = logging.getLogger("tradebus.execution.venue_http")
"""The logger ccxt clients of live accounts log through (requests at DEBUG), redacted."""
VENUE_HTTP_LOG.addFilter(REDACT)
logging.getLogger("ccxt.base.exchange").addFilter(REDACT)  # ccxt's default, in case


class AccountKeys:
    """The API key and secret of one live account, and any other credential its venue
    needs (``extra``: ccxt credential name -> value, e.g. ``password``, ``uid``)."""

    __slots__ = ("api_key", "extra", "secret")

    def __init__(
        self, api_key: Secret, secret: Secret, extra: dict[str, Secret] | None = None
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.extra = dict(extra or {})

    def ccxt_options(self) -> dict[str, str]:
        """The credentials as ccxt's constructor options (``apiKey``, ``secret``, ...)."""
        options = {name: value.reveal() for name, value in self.extra.items()}
        options["apiKey"] = self.api_key.reveal()
        options["secret"] = self.secret.reveal()
        return options

    def __repr__(self) -> str:
        names = "".join(f", {name}=***" for name in sorted(self.extra))
        return f"AccountKeys(api_key=***, secret=***{names})"


def keys_from_credentials(credentials: dict[str, str]) -> AccountKeys:
    """The keys of an account from its opened credentials (ccxt names: ``apiKey``,
    ``secret``, ``password``, ...), registered for redaction from the venue logs.

    A venue that needs no ``apiKey`` or ``secret`` gets empty ones (ccxt's default).
    """
    secrets = {name: Secret(value) for name, value in credentials.items()}
    keys = AccountKeys(
        secrets.pop("apiKey", Secret("")), secrets.pop("secret", Secret("")), secrets
    )
    REDACT.add(keys.api_key, keys.secret, *keys.extra.values())
    return keys


def _read(account: str, what: str, env: str | None, file: str | None, environ: Mapping) -> Secret:
    if env is not None:
        value = environ.get(env)
        if not value:
            raise ConfigError(f"account {account}: environment variable {env} ({what}) is not set")
        return Secret(value.strip())
    assert file is not None  # validated by load_accounts
    try:
        value = Path(file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"account {account}: cannot read {what} file {file}: {exc.strerror}"
        ) from None
    if not value:
        raise ConfigError(f"account {account}: {what} file {file} is empty")
    return Secret(value)


def load_keys(
    spec: AccountSpec,
    environ: Mapping[str, str] | None = None,
    required: Mapping[str, bool] | None = None,
) -> AccountKeys:
    """The keys of live account ``spec`` from its variables or files: the API key and
    secret, and the passphrase (ccxt ``password``) and ``uid`` where the account names
    them. ``required`` is ccxt's ``requiredCredentials`` of the venue
    (:func:`required_credentials`); None checks nothing more.

    Raises
    ------
    ConfigError
        Naming the variable or file that is missing or empty (never a value), or the
        credential the venue requires and the account does not name.
    """
    env = os.environ if environ is None else environ
    extra: dict[str, Secret] = {}
    for name, field in FILE_CREDENTIALS.items():
        source_env, source_file = getattr(spec, f"{field}_env"), getattr(spec, f"{field}_file")
        if name in ("apiKey", "secret") or source_env is not None or source_file is not None:
            what = {"apiKey": "API key", "password": "passphrase"}.get(name, name)
            extra[name] = _read(spec.id, what, source_env, source_file, env)
    missing = [n for n, needed in (required or {}).items() if needed and n not in extra]
    for name in missing:
        prefix = FILE_CREDENTIALS.get(name)
        how = (
            f"give {prefix}_env or {prefix}_file"
            if prefix
            else "the accounts file cannot hold it: add the account through the gateway"
            " (POST /api/v1/accounts), which takes every credential ccxt names"
        )
        raise ConfigError(f"account {spec.id}: venue {spec.venue} requires {name}: {how}")
    keys = AccountKeys(extra.pop("apiKey"), extra.pop("secret"), extra)
    REDACT.add(keys.api_key, keys.secret, *keys.extra.values())
    return keys


def required_credentials(venue: str) -> dict[str, bool]:
    """ccxt's ``requiredCredentials`` of exchange ``venue`` (name -> needed)."""
    return dict(getattr(ccxt, venue)().requiredCredentials)
