"""Settings of the reconciler (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from tradebus.common.config import DEFAULT_METRICS_HOST, SECRET, Settings
from tradebus.common.messages import DriftPolicy


class ReconcilerSettings(Settings, frozen=True, kw_only=True):
    """Reconciler settings.

    Attributes
    ----------
    nats_url, nats_creds
        NATS server URL, and the path of this service's ``.creds`` file (operator
        mode, ``tradebus nats-init``; empty: connect without credentials).
    stream_replicas
        Copies JetStream keeps of every stream and KV bucket this service creates
        (1; 3 on a three-node NATS cluster, README "A NATS cluster").
    database_url
        Postgres URL of the ledger (read, plus report rows).
    interval_seconds
        Time between runs (a run also happens at start).
    tolerances
        JSON object of absolute tolerance per asset, ``DEFAULT`` for the
        rest (seed 001): ``{"BTC": "0.0001", "DEFAULT": "0.00000001"}``.
    drift_policies
        JSON object of what to do about drift, per account, ``DEFAULT`` for
        the rest: ``alert``, ``adjust`` or ``halt`` (:mod:`.policies`):
        ``{"alice-paper": "adjust", "DEFAULT": "alert"}``.
    request_timeout_seconds
        How long to wait for execution's balances.
    metrics_port
        Port of the Prometheus ``/metrics`` endpoint (0 = any free port).
    metrics_host
        Address the ``/metrics`` endpoint listens on: loopback only by default (its
        labels name users, accounts and their P&L); ``0.0.0.0`` for a scraper on
        another host (compose sets it, the containers' network is private).
    """

    nats_url: Annotated[str, SECRET] = "nats://127.0.0.1:4222"
    nats_creds: Annotated[str, SECRET] = ""
    stream_replicas: Annotated[int, msgspec.Meta(ge=1)] = 1
    database_url: Annotated[str, SECRET] = "postgresql://tradebus@127.0.0.1:5432/tradebus"
    interval_seconds: float = 60.0
    tolerances: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"DEFAULT": Decimal("0.00000001")}
    )
    drift_policies: dict[str, DriftPolicy] = msgspec.field(
        default_factory=lambda: {"DEFAULT": "alert"}
    )
    request_timeout_seconds: float = 5.0
    metrics_port: int = 9100
    metrics_host: str = DEFAULT_METRICS_HOST
    log_level: str = "info"
