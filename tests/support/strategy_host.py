"""A strategy host's settings for a test: fast heartbeats and leases, no metrics port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client as NATS

from tradebus.common.messages import BotStatus
from tradebus.control.bots import ControlError, bot_statuses
from tradebus.strategy.settings import StrategySettings

TEST_HOST = StrategySettings(
    nats_url="nats://127.0.0.1:4222",
    metrics_port=0,
    stop_timeout_seconds=0.2,
    heartbeat_seconds=0.2,
    lease_seconds=2,
)
"""What every test host shares: a 0.2-s heartbeat and stop timeout, 2-s leases."""


def host_settings(
    nats_url: str, replica_id: str, bots: Path | None = None, **overrides: Any
) -> StrategySettings:
    """A host on ``nats_url`` named ``replica_id``, applying the bot file ``bots`` at start
    (None: it runs what KV ``bots`` holds), with :data:`TEST_HOST`'s timing unless
    ``overrides`` (any :class:`StrategySettings` field) say otherwise."""
    return msgspec.structs.replace(
        TEST_HOST,
        nats_url=nats_url,
        replica_id=replica_id,
        bots_file=str(bots) if bots is not None else "",
        **overrides,
    )


async def running_status(nc: NATS, bot: str) -> BotStatus | None:
    """``bot``'s status from the host running it; None while no host runs it yet (no
    answer, or a host that knows it answering ``not_running``: starting or moving, as a
    readiness probe may ask in the instant between a host claiming the bot and running it).

    Raises
    ------
    ControlError
        Any other refusal (``unknown_bot``, ``bad_request``).
    """
    try:
        found = await bot_statuses(nc, bot)
    except ControlError as exc:
        if exc.error == "not_running":
            return None
        raise
    return found[0] if found else None
