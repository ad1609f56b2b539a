"""Settings of a strategy host (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

import os
import re
import socket
from typing import Annotated

import msgspec

from tradebus.common.config import DEFAULT_METRICS_HOST, SECRET, Settings


def default_replica_id() -> str:
    """``<hostname>-<pid>``, made a valid subject token (unique per process)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
    return f"{name}-{os.getpid()}"


class StrategySettings(Settings, frozen=True, kw_only=True):
    """Strategy host settings.

    Attributes
    ----------
    nats_url, nats_creds
        NATS server URL, and the path of this service's ``.creds`` file (operator
        mode, ``tradebus nats-init``; empty: connect without credentials).
    stream_replicas
        Copies JetStream keeps of every stream and KV bucket this service creates
        (1; 3 on a three-node NATS cluster, README "A NATS cluster").
    bots_file
        If set, apply this bot file to KV ``bots`` at start-up (what
        ``tradebus bots apply -f`` does); empty = run what KV ``bots`` holds.
    markets_file
        Markets YAML; empty = the default shipped with tradebus-common.
    metrics_port
        Port of the Prometheus ``/metrics`` endpoint (0 = any free port).
    metrics_host
        Address the ``/metrics`` endpoint listens on: loopback only by default (its
        labels name users, accounts and their P&L); ``0.0.0.0`` for a scraper on
        another host (compose sets it, the containers' network is private).
    replica_id
        This replica's name in KV ``leases``; empty = ``<hostname>-<pid>``.
    lease_seconds
        Lease time: a replica silent this long loses its bots to the others
        (the TTL of KV ``leases`` when this host creates it).
    heartbeat_seconds
        Lease renewal and reassignment period (keep it under a third of the lease).
    snapshot_interval_seconds
        How often bots whose state changed are snapshotted to KV ``bot_state``
        (bots that emit intents are snapshotted before each emission anyway).
    account_refresh_seconds
        How often bots that use account balances get fresh ones.
    stop_timeout_seconds
        On shutdown, how long to wait for the bots' cancels to be confirmed.
    max_price_age_seconds
        A tick that reached marketdata more than this long after the venue's
        own event time (``ts_recv - ts_event``: frames resent after a
        reconnect, a lagging venue) is not given to bots: they never act on a
        stale price. 0 disables the check.
    """

    nats_url: Annotated[str, SECRET] = "nats://127.0.0.1:4222"
    nats_creds: Annotated[str, SECRET] = ""
    stream_replicas: Annotated[int, msgspec.Meta(ge=1)] = 1
    bots_file: str = ""
    markets_file: str = ""
    metrics_port: int = 9100
    metrics_host: str = DEFAULT_METRICS_HOST
    replica_id: str = ""
    lease_seconds: float = 10.0
    heartbeat_seconds: float = 2.0
    snapshot_interval_seconds: float = 1.0
    account_refresh_seconds: float = 5.0
    stop_timeout_seconds: float = 10.0
    max_price_age_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.max_price_age_seconds >= 0:
            raise ValueError("max_price_age_seconds must be >= 0 (0 = no check)")

    log_level: str = "info"
