"""Entry point ``tradebus-bots-apply``: validate a bot file and write it to KV ``bots``.

The one-shot step of ``docker compose up`` (service ``bots-apply``) and the
core of ``tradebus bots apply -f FILE``. Strategy hosts pick the specs up
live: added bots start, changed ones take their new parameters, removed or
disabled ones stop (cancelling per ``cancel_on_exit``).

Settings (``TRADEBUS_*``): ``NATS_URL``, ``NATS_CREDS`` (its ``.creds`` file, operator
mode: the strategy hosts' user), ``BOTS_FILE``, ``MARKETS_FILE``,
``PRUNE`` (delete bots not in the file, default true). Exit status 0 on
success, 2 on an invalid file (every bad field named by its YAML path), 1
when NATS cannot be reached.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import msgspec

from tradebus.common.bus import CredentialsError, NatsUnavailable, connect_once, ensure_streams
from tradebus.common.clock import LiveClock
from tradebus.common.config import SECRET, ConfigError, Settings, load_settings
from tradebus.control.audit import AuditTrail, local_actor
from tradebus.control.botstore import (
    ApplyResult,
    BotManagedElsewhere,
    apply_file_to,
    change_lines,
)


class BotsApplySettings(Settings, frozen=True, kw_only=True):
    """Settings of ``tradebus-bots-apply``."""

    nats_url: Annotated[str, SECRET] = "nats://127.0.0.1:4222"
    nats_creds: Annotated[str, SECRET] = ""
    stream_replicas: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Copies JetStream keeps of the streams and KV bucket ``bots`` if this makes them."""
    bots_file: str = "/etc/tradebus/bots.yaml"
    markets_file: str = ""
    prune: bool = True
    metrics_port: int = 0
    log_level: str = "info"


async def apply_bot_file(
    nats_url: str,
    path: str,
    markets_file: str = "",
    prune: bool = True,
    dry_run: bool = False,
    actor: str | None = None,
    creds: str = "",
    stream_replicas: int | None = None,
) -> ApplyResult:
    """Connect to ``nats_url`` (with the ``.creds`` file ``creds``, if given) and
    :func:`apply_file_to` it. ``stream_replicas``: as for
    :func:`~tradebus.common.bus.connect` (streams and buckets it makes).

    Each bot written is recorded in the audit log as done by ``actor``
    (default ``bots-apply:<login>`` of this process, :func:`local_actor`), on
    ``audit.strategy``: this one-shot connects as the strategy hosts' user. It
    makes the shared streams first (``AUDIT`` among them), as the hosts do,
    since it may run before any service has; a dry run records nothing.

    Raises
    ------
    ConfigError
        If the bot file or the markets file is invalid.
    CredentialsError
        If ``creds`` is not a readable ``.creds`` file.
    NatsUnavailable
        If NATS cannot be reached or refuses the credentials (one line naming the URL).
    """
    nc = await connect_once(
        nats_url, creds, timeout=5, stream_replicas=stream_replicas, max_reconnect_attempts=3
    )
    try:
        js = nc.jetstream()
        if not dry_run:
            await ensure_streams(js)
        audit = AuditTrail(js, "strategy", LiveClock())
        who = actor if actor is not None else local_actor("bots-apply")
        return await apply_file_to(js, path, markets_file, prune, dry_run, audit=audit, actor=who)
    finally:
        await nc.close()


def main() -> None:
    """Apply ``TRADEBUS_BOTS_FILE`` and print what changed."""
    try:
        settings = load_settings(BotsApplySettings)
        result = asyncio.run(
            apply_bot_file(
                settings.nats_url,
                settings.bots_file,
                settings.markets_file,
                settings.prune,
                creds=settings.nats_creds,
                stream_replicas=settings.stream_replicas,
            )
        )
    except (ConfigError, BotManagedElsewhere, CredentialsError) as exc:
        print(f"tradebus-bots-apply: {exc}", file=sys.stderr)
        sys.exit(2)
    except NatsUnavailable as exc:
        print(f"tradebus-bots-apply: not applied: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # a JetStream error after connecting: still one line
        print(f"tradebus-bots-apply: not applied: {exc!r}", file=sys.stderr)
        sys.exit(1)
    for what in ("added", "changed", "removed", "unchanged"):
        bots = getattr(result, what)
        print(f"{what:9} {len(bots):4}  {' '.join(bots)}".rstrip())
    for line in change_lines(result):
        print(f"  {line}")


if __name__ == "__main__":
    main()
