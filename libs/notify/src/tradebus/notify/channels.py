"""Who hears about what: the notifications file and each user's channel settings.

A *channel* is an Apprise URL (https://github.com/caronc/apprise/wiki):
``tgram://<bot token>/<chat id>``, ``discord://<webhook id>/<token>``,
``slack://<tokens>/#channel``, ``mailtos://user:password@example.com``,
``json://host:port/path`` (a plain webhook: Apprise POSTs
``{"version": "1.0", "title": ..., "message": ..., "type": ...}``). URLs hold
tokens and passwords: they are secrets, never logged, never put on the bus or
in a plain column; a channel is named by :func:`channel_label` instead.

The notifications file (``TRADEBUS_NOTIFICATIONS_FILE``, YAML, beside the
accounts file)::

    operators:                    # Alertmanager's alerts go here
      - tgram://123456:ABC-token/-100200300
    users:
      alice:
        channels: [discord://1234/webhook-token]
        mute: [fill]              # event kinds not sent (EVENT_KINDS)
        mute_bots: [ladder-2]     # bots whose events are not sent
    accounts:                     # owner of each account, for events that name
      alice-paper: alice          # only an account (drift); the ledger knows them too

A user's settings saved through the gateway (``PUT /api/v1/me/notifications``)
replace that user's settings of the file (:func:`merge`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, get_args

import msgspec

from tradebus.common.config import ConfigError, load_yaml

EventKind = Literal["fill", "take_profit", "halted", "drift", "killswitch", "bot_failed"]
"""What a user hears about: a fill of their order, a bot's take-profit (a cycle
closed), a halted account, drift found (reconciliation or a bot's position check),
a kill switch engaged on their account (or on every account), a bot that failed."""
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)

MAX_CHANNELS = 8
"""Most channels one user may have."""
MAX_URL_CHARS = 2048
"""Longest channel URL accepted."""


class UserChannels(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One user's notification settings: Apprise ``channels``, the event kinds they
    ``mute`` and the bots whose events they mute (``mute_bots``)."""

    channels: list[str] = []
    mute: list[EventKind] = []
    mute_bots: list[str] = []

    def wants(self, kind: str, bot: str | None = None) -> bool:
        """Whether an event of ``kind`` (about ``bot``, if any) is sent to this user."""
        if not self.channels or kind in self.mute:
            return False
        return bot is None or bot not in self.mute_bots


class NotificationsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The notifications file (module docstring)."""

    operators: list[str] = []
    users: dict[str, UserChannels] = {}
    accounts: dict[str, str] = {}


def quiet_apprise() -> None:
    """Silence the loggers that would write a channel URL: Apprise's own (it logs the
    URLs it loads or cannot parse, tokens included) and urllib3's request lines (the
    path of a webhook). Idempotent; every user of Apprise here calls it first."""
    apprise_log = logging.getLogger("apprise")
    apprise_log.propagate = False
    apprise_log.handlers[:] = [logging.NullHandler()]
    apprise_log.setLevel(logging.CRITICAL + 1)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def check_channels(urls: list[str], where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` (and the channel's position, never
    its text) if ``urls`` are too many, too long, or not URLs Apprise can use."""
    import apprise  # heavy import (about a second), only where channels are used

    quiet_apprise()
    if len(urls) > MAX_CHANNELS:
        raise ConfigError(f"{where}: {len(urls)} channels, at most {MAX_CHANNELS}")
    for i, url in enumerate(urls):
        if not url or len(url) > MAX_URL_CHARS:
            raise ConfigError(f"{where}[{i}]: empty or longer than {MAX_URL_CHARS} characters")
        if apprise.Apprise.instantiate(url) is None:
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            raise ConfigError(
                f"{where}[{i}]: not an Apprise URL Apprise can use (scheme {scheme!r})"
            )


def load_notifications(path: str | Path) -> NotificationsFile:
    """Read and check the notifications file.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not valid YAML of :class:`NotificationsFile`
        (the message names the bad path), or holds a channel Apprise cannot use (named
        by position: ``$.users.alice.channels[1]``).
    """
    notifications = load_yaml(path, NotificationsFile)
    check_channels(notifications.operators, f"{path}: $.operators")
    for user, settings in notifications.users.items():
        check_channels(settings.channels, f"{path}: $.users.{user}.channels")
    return notifications


def merge(
    from_file: dict[str, UserChannels], from_api: dict[str, UserChannels]
) -> dict[str, UserChannels]:
    """Each user's settings: the gateway's (``from_api``) where the user saved some,
    else the file's."""
    return {**from_file, **from_api}


def channel_label(url: str, index: int) -> str:
    """A name for a channel that holds none of its secrets: its service and position
    (``#1 Telegram``), from Apprise's plugin for the URL (``?`` if none fits)."""
    import apprise

    quiet_apprise()
    plugin = apprise.Apprise.instantiate(url)
    service = getattr(plugin, "service_name", None) or "?"
    return f"#{index + 1} {service}"
