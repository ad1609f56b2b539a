"""Service settings from environment variables, and domain files from YAML.

Settings
--------
Each service declares a frozen :class:`Settings` subclass. Field ``foo_bar``
is read from ``TRADEBUS_FOO_BAR``. Every ``TRADEBUS_*`` variable must name a
field (a typo is an error, not a silent default). A field marked
:data:`SECRET` may instead be read from a file named by
``TRADEBUS_<FIELD>_FILE`` (Docker/compose secrets); secrets and URL passwords
are redacted whenever settings are shown (``repr``, :func:`redacted`).

Values are text: lists are comma-separated (or JSON), dicts are JSON, the rest
is converted by msgspec (``"8000" -> 8000``, ``"true" -> True``,
``"0.5" -> Decimal("0.5")``).

Domain files (bots, accounts, markets) are checked as a whole, every error at
its line, by :mod:`tradebus.common.configfile`; :func:`load_yaml` decodes a YAML
file straight into a typed struct (the first error, at its path) for the rest.
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin

import msgspec
import msgspec.yaml

PREFIX = "TRADEBUS_"

SECRET = msgspec.Meta(extra={"secret": True})
"""Use as ``Annotated[str, SECRET]`` to mark a settings field as a secret."""

REDACTED = "***"

DEFAULT_METRICS_HOST = "127.0.0.1"
"""Where a service's ``/metrics`` listens unless ``TRADEBUS_METRICS_HOST`` says otherwise:
loopback only, as its labels name users, accounts and their P&L."""

T = TypeVar("T")
S = TypeVar("S", bound="Settings")


class ConfigError(ValueError):
    """Settings or a domain file are invalid; the message names the bad key or path."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every service's settings. ``repr`` never shows secrets."""

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in redacted(self).items())
        return f"{type(self).__name__}({items})"

    __str__ = __repr__


def _is_secret(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls, include_extras=True).get(name)
    if get_origin(hint) is Annotated:
        return any(
            isinstance(m, msgspec.Meta) and (m.extra or {}).get("secret")
            for m in get_args(hint)[1:]
        )
    return False


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?P<tail>@)")


def redact_url(value: str) -> str:
    """Replace the password of a ``scheme://user:password@host`` URL with ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['tail']}", value)


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as a dict for logging: secrets become ``***``, URL passwords too."""
    out: dict[str, Any] = {}
    for name in settings.__struct_fields__:
        value = getattr(settings, name)
        if _is_secret(type(settings), name):
            out[name] = REDACTED if value else value
        elif isinstance(value, str):
            out[name] = redact_url(value)
        else:
            out[name] = value
    return out


def _field_kind(cls: type, name: str) -> str:
    hint = typing.get_type_hints(cls).get(name)
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        origin = get_origin(args[0]) if len(args) == 1 else None
    if origin in (list, tuple, frozenset, set):
        return "list"
    if origin is dict:
        return "dict"
    return "scalar"


def _parse_value(kind: str, raw: str) -> Any:
    if kind == "list":
        text = raw.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "dict":
        return json.loads(raw) if raw.strip() else {}
    return raw


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Build ``cls`` from ``TRADEBUS_*`` variables of ``environ`` (default ``os.environ``).

    Raises
    ------
    ConfigError
        If a ``TRADEBUS_*`` variable names no field, a value does not convert
        to its field's type, a secret file cannot be read, or a required
        field is missing. The message names the variable.
    """
    env = os.environ if environ is None else environ
    fields = set(cls.__struct_fields__)
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for key, raw in env.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        if name.endswith("_file") and name not in fields and name[:-5] in fields:
            secret_name = name[:-5]
            if not _is_secret(cls, secret_name):
                raise ConfigError(f"{key}: only secret fields can be read from files")
            try:
                raw = Path(raw).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{key}: cannot read secret file: {exc.strerror}") from None
            name = secret_name
        if name not in fields:
            unknown.append(key)
            continue
        try:
            values[name] = _parse_value(_field_kind(cls, name), raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key}: not valid JSON ({exc.msg})") from None
    if unknown:
        known = ", ".join(PREFIX + f.upper() for f in sorted(fields))
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}; known: {known}")
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_env_message(str(exc))) from None


def _env_message(message: str) -> str:
    """Rewrite msgspec's ``at `$.field``` into the environment variable's name."""

    def repl(m: re.Match[str]) -> str:
        return f"at {PREFIX}{m.group(1).upper()}"

    message = re.sub(r"at `\$\.(\w+)[^`]*`", repl, message)
    return re.sub(
        r"missing required field `(\w+)`",
        lambda m: f"missing required setting {PREFIX}{m.group(1).upper()}",
        message,
    )


def load_yaml(path: str | Path, type_: type[T]) -> T:
    """Decode the YAML file at ``path`` into ``type_``.

    Raises
    ------
    ConfigError
        If the file cannot be read or does not match ``type_``; the message
        starts with the file name and names the bad field's path.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return msgspec.yaml.decode(data, type=type_)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
