"""Delivery of a message to channels through Apprise, retried, never logging a URL.

Apprise (https://github.com/caronc/apprise) speaks each service's API (Telegram,
Discord, Slack, e-mail, JSON webhooks, ...); tradebus has no HTTP client of its
own for them. Each channel is its own Apprise object, so the result of each is
known: a failed send is tried again (``attempts`` in all, exponential backoff with
jitter, tenacity), then logged with the channel's label (:func:`channel_label`:
its position and service, no part of the URL) and reported to ``on_result``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from tradebus.notify.channels import channel_label, quiet_apprise

log = logging.getLogger(__name__)

ResultHook = Callable[[str, bool], None]
"""Called once per channel and message: ``(audience, delivered)``; audience is
``operators`` or ``users``."""


class Channel:
    """One Apprise URL, ready to send; ``label`` names it in logs and metrics.

    Raises
    ------
    ValueError
        If Apprise has no plugin for the URL (the message holds the label only).
    """

    def __init__(self, url: str, index: int) -> None:
        import apprise

        quiet_apprise()
        self.label = channel_label(url, index)
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ValueError(f"channel {self.label}: not an Apprise URL")

    async def send(self, title: str, body: str, notify_type: str) -> bool:
        """Send once; True if Apprise says it was delivered."""
        result: Any = await self._apprise.async_notify(
            body=body, title=title, notify_type=notify_type
        )
        return bool(result)


class Deliverer:
    """Sends messages to channels (module docstring).

    Parameters
    ----------
    attempts
        Tries per channel and message (1: no retry).
    backoff_seconds, backoff_max_seconds
        First wait between tries (doubling, plus up to as much jitter) and the longest.
    on_result
        Told each channel's outcome (metrics).
    """

    def __init__(
        self,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        backoff_max_seconds: float = 10.0,
        on_result: ResultHook | None = None,
    ) -> None:
        self._attempts = max(1, attempts)
        self._wait = wait_exponential_jitter(
            multiplier=backoff_seconds, max=backoff_max_seconds, jitter=backoff_seconds
        )
        self._on_result = on_result
        self._channels: dict[str, Channel] = {}

    def channel(self, url: str, index: int) -> Channel:
        """The (cached) :class:`Channel` of ``url``."""
        found = self._channels.get(url)
        if found is None:
            found = self._channels[url] = Channel(url, index)
        return found

    async def deliver(
        self,
        urls: list[str],
        title: str,
        body: str,
        notify_type: str = "info",
        audience: str = "users",
        who: str = "",
    ) -> int:
        """Send to every URL of ``urls`` (one after the other, each retried); the number
        delivered. ``who`` (a user name, or ``operators``) only goes into the log."""
        delivered = 0
        for index, url in enumerate(urls):
            try:
                channel = self.channel(url, index)
            except ValueError as exc:
                log.warning("channel unusable", extra={"recipient": who, "error": str(exc)})
                self._report(audience, False)
                continue
            ok = await self._send(channel, title, body, notify_type)
            if ok:
                delivered += 1
            else:
                log.warning(
                    "notification not delivered",
                    extra={"recipient": who, "channel": channel.label, "attempts": self._attempts},
                )
            self._report(audience, ok)
        return delivered

    async def _send(self, channel: Channel, title: str, body: str, notify_type: str) -> bool:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_result(lambda ok: not ok),
            retry_error_callback=lambda _state: False,
            reraise=False,
        )
        try:
            result: bool = await retrying(channel.send, title, body, notify_type)
        except Exception as exc:  # a plugin's bug: the channel failed, the service goes on
            log.warning(
                "notification failed",
                extra={"channel": channel.label, "error": type(exc).__name__},
            )
            return False
        return result

    def _report(self, audience: str, ok: bool) -> None:
        if self._on_result is not None:
            self._on_result(audience, ok)
