"""Each user's notification settings: where the notifier sends their events, and what not.

* ``GET /api/v1/me/notifications``: ``{"channels": [{"service": "Telegram"}, ...],
  "mute": [...], "mute_bots": [...], "kinds": [...every event kind...]}``. The
  channels' URLs are never shown: they are stored sealed to the notifier's public key
  and the gateway cannot read them back; each is named by its service only.
* ``PUT /api/v1/me/notifications`` with ``{"channels": ["tgram://...", ...],
  "mute": ["fill"], "mute_bots": ["ladder-2"]}``: replaces the caller's settings.
  ``channels`` are Apprise URLs (:mod:`tradebus.notify.channels`, at most 8); leaving
  ``channels`` out keeps the saved ones (mute options change without sending tokens
  again), ``[]`` removes them. Answers as ``GET``. 400 names the bad field
  (``channels[1]``: a URL Apprise cannot use, by position, never quoted); 503 when the
  gateway has no ``notify_public_key_file`` and channels are sent.

The notifier reads the saved settings (table ``notification_settings``) every
``TRADEBUS_REFRESH_SECONDS``; a user's saved settings replace theirs of the
notifications file. A change is recorded in the audit log
(``notifications.update``: how many channels, the mute options; never a URL).
"""

from __future__ import annotations

import msgspec
from litestar import Router, get, put
from litestar.params import JSONBody

from tradebus.common.config import ConfigError
from tradebus.common.sealed import SealedError, seal
from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller, Ctx, GatewayContext
from tradebus.gateway.errors import ApiError, invalid
from tradebus.ledger.notification_settings import (
    NotificationRow,
    get_notification_settings,
    put_notification_settings,
)
from tradebus.notify.channels import (
    EVENT_KINDS,
    MAX_CHANNELS,
    EventKind,
    channel_label,
    check_channels,
)


class ChannelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A saved channel as shown: its service only (``Telegram``, ``JSON``, ...)."""

    service: str


class NotificationSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The caller's notification settings as shown (module docstring)."""

    channels: list[ChannelInfo]
    mute: list[str]
    mute_bots: list[str]
    kinds: list[str]


class NotificationUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``PUT /api/v1/me/notifications`` (module docstring)."""

    channels: list[str] | None = None
    mute: list[EventKind] = []
    mute_bots: list[str] = []


def _shown(row: NotificationRow | None) -> NotificationSettings:
    if row is None:
        return NotificationSettings(channels=[], mute=[], mute_bots=[], kinds=list(EVENT_KINDS))
    return NotificationSettings(
        channels=[ChannelInfo(service=s) for s in row.channel_services],
        mute=row.mute,
        mute_bots=row.mute_bots,
        kinds=list(EVENT_KINDS),
    )


@get("/me/notifications", security=SECURED, summary="Your notification settings")
async def get_notifications(ctx: Ctx, principal: Caller) -> NotificationSettings:
    """The caller's settings (module docstring)."""
    return _shown(await get_notification_settings(ctx.pool, principal.user))


@put("/me/notifications", security=SECURED, summary="Set your notification channels and mutes")
async def put_notifications(
    ctx: Ctx, principal: Caller, data: JSONBody[NotificationUpdate]
) -> NotificationSettings:
    """Replace the caller's settings (module docstring)."""
    saved = await get_notification_settings(ctx.pool, principal.user)
    sealed, services = _sealed_channels(ctx, data.channels, saved)
    row = NotificationRow(
        user_id=principal.user,
        sealed_channels=sealed,
        channel_services=services,
        mute=list(dict.fromkeys(data.mute)),
        mute_bots=list(dict.fromkeys(data.mute_bots)),
        updated_ns=ctx.clock.now_ns(),
    )
    await put_notification_settings(ctx.pool, row)
    await ctx.audit.record(
        principal.actor(),
        "notifications.update",
        f"user:{principal.user}",
        user=principal.user,
        after={"channels": services, "mute": row.mute, "mute_bots": row.mute_bots},
    )
    return _shown(row)


def _sealed_channels(
    ctx: GatewayContext, channels: list[str] | None, saved: NotificationRow | None
) -> tuple[bytes | None, list[str]]:
    """The sealed box and the services of the channels to store."""
    if channels is None:  # keep the saved ones
        return (saved.sealed_channels, saved.channel_services) if saved else (None, [])
    if not channels:
        return None, []
    if len(channels) > MAX_CHANNELS:
        raise invalid("channels", f"{len(channels)} channels, at most {MAX_CHANNELS}")
    for i, url in enumerate(channels):
        try:
            check_channels([url], "channels")
        except ConfigError:
            raise invalid(f"channels[{i}]", "not an Apprise URL Apprise can use") from None
    if ctx.notify_public_key is None:
        raise ApiError(
            503, "unavailable", "channels cannot be saved: the gateway has no notifier key"
        )
    services = [channel_label(url, i).split(" ", 1)[1] for i, url in enumerate(channels)]
    try:
        box = seal(ctx.notify_public_key, {str(i + 1): url for i, url in enumerate(channels)})
    except SealedError as exc:
        raise invalid("channels", str(exc)) from None
    return box, services


notifications_router = Router(
    path="/api/v1",
    route_handlers=[get_notifications, put_notifications],
    tags=["notifications"],
)
"""``/api/v1/me/notifications`` (registered in :func:`tradebus.gateway.app.api_routers`)."""
