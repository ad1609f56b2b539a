"""Each user's notification settings saved through the gateway (table
``notification_settings``, migration 0012).

The channels (Apprise URLs, holding tokens) are stored only as a sealed box
(:mod:`tradebus.common.sealed`) to the notifier's public key: a JSON object
``{"1": url, "2": url, ...}``. The gateway writes it and cannot read it back; the
notifier opens it with its private key. ``channel_services`` (the service of each
channel, e.g. ``Telegram``) and the mute options are plain.
"""

from __future__ import annotations

import asyncpg
import msgspec


class NotificationRow(msgspec.Struct, frozen=True, kw_only=True):
    """One user's saved settings; ``sealed_channels`` is None when they have none.
    ``updated_ns``: ns since the epoch."""

    user_id: str
    sealed_channels: bytes | None
    channel_services: list[str]
    mute: list[str]
    mute_bots: list[str]
    updated_ns: int

    def __repr__(self) -> str:  # never show the sealed box, even in a traceback
        return (
            f"NotificationRow(user_id={self.user_id!r}, channels={len(self.channel_services)},"
            f" mute={self.mute!r}, mute_bots={self.mute_bots!r})"
        )


_COLUMNS = "user_id, sealed_channels, channel_services, mute, mute_bots, updated_ns"


def _row(record: asyncpg.Record) -> NotificationRow:
    sealed = record["sealed_channels"]
    return NotificationRow(
        user_id=record["user_id"],
        sealed_channels=None if sealed is None else bytes(sealed),
        channel_services=list(record["channel_services"]),
        mute=list(record["mute"]),
        mute_bots=list(record["mute_bots"]),
        updated_ns=record["updated_ns"],
    )


async def get_notification_settings(pool: asyncpg.Pool, user_id: str) -> NotificationRow | None:
    """``user_id``'s saved settings, or None if they saved none."""
    record = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM notification_settings WHERE user_id = $1", user_id
    )
    return None if record is None else _row(record)


async def all_notification_settings(pool: asyncpg.Pool) -> list[NotificationRow]:
    """Every user's saved settings (the notifier reads them all)."""
    return [_row(r) for r in await pool.fetch(f"SELECT {_COLUMNS} FROM notification_settings")]


async def put_notification_settings(pool: asyncpg.Pool, row: NotificationRow) -> None:
    """Insert or replace a user's settings (the user must exist in ``users``)."""
    await pool.execute(
        "INSERT INTO notification_settings"
        " (user_id, sealed_channels, channel_services, mute, mute_bots, updated_ns)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (user_id) DO UPDATE SET sealed_channels = EXCLUDED.sealed_channels,"
        " channel_services = EXCLUDED.channel_services, mute = EXCLUDED.mute,"
        " mute_bots = EXCLUDED.mute_bots, updated_ns = EXCLUDED.updated_ns",
        row.user_id,
        row.sealed_channels,
        row.channel_services,
        row.mute,
        row.mute_bots,
        row.updated_ns,
    )


async def account_owners(pool: asyncpg.Pool) -> dict[str, str]:
    """``{account id: user id}`` of every account of the ledger."""
    return {r["id"]: r["user_id"] for r in await pool.fetch("SELECT id, user_id FROM accounts")}
