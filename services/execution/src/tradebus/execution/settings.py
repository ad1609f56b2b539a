"""Settings of the execution service (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from tradebus.common.config import DEFAULT_METRICS_HOST, SECRET, Settings


class ExecutionSettings(Settings, frozen=True, kw_only=True):
    """Execution settings.

    Attributes
    ----------
    nats_url, nats_creds
        NATS server URL, and the path of this service's ``.creds`` file (operator
        mode, ``tradebus nats-init``; empty: connect without credentials).
    stream_replicas
        Copies JetStream keeps of every stream and KV bucket this service creates
        (1; 3 on a three-node NATS cluster, README "A NATS cluster").
    database_url
        Postgres URL of the ledger (``postgresql://user:password@host:port/db``).
    accounts_file
        Accounts YAML (see :mod:`tradebus.engine.accounts`).
    markets_file
        Markets YAML; empty = the default shipped with tradebus-common.
    seal_key_file
        Execution's private key (``tradebus seal-keys``: ``execution.key``), which opens
        the credentials of live accounts added at run time (:mod:`tradebus.common.sealed`);
        empty: such accounts are loaded halted.
    consumer
        Durable JetStream consumer name on every user's ``INTENTS_<user>``.
    fetch_batch
        Most intents handed to the engine at once (one group commit).
    user_inflight
        Most intents of one user held by execution at once (fetched, not yet acked).
    max_deliver
        Deliveries of one intent before JetStream gives up on it (it is dead-lettered).
    ack_wait_seconds
        JetStream's ``ack_wait`` of each user's intent consumer: an intent taken by an
        execution process that died unacknowledged is delivered again this long after
        (a live process renews it, ``+WPI``, every third of it).
    intent_rate
        Intents per second each user (bots and own publishes together) may send on
        average; 0 = no limit. More are refused with ``quota_intent_rate``.
    intent_burst
        Intents a user may send at once above ``intent_rate``.
    intent_backlog
        Most intents waiting in one user's stream; nats-server refuses more.
    intent_backlog_bytes
        Most bytes waiting in one user's stream; nats-server refuses more.
    intent_max_bytes
        Largest intent a user's stream stores (also the per-user NATS ``max_payload``).
    markets_refresh_seconds
        How often each live venue's markets are loaded again (ccxt ``load_markets``) and
        taken into the catalog that ``exec.query.markets`` answers from.
    execution_shard, execution_shards
        This process is shard ``execution_shard`` of ``execution_shards`` execution
        processes sharing the ledger; it owns the users (and their accounts) in that
        partition of ``partition(execution_shards, 1)`` on ``intent.<user>.>``
        (:mod:`.shard`).
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
    accounts_file: str = "/etc/tradebus/accounts.yaml"
    markets_file: str = ""
    seal_key_file: Annotated[str, SECRET] = ""
    consumer: str = "execution"
    fetch_batch: int = 64
    user_inflight: int = 512
    max_deliver: int = 10
    ack_wait_seconds: Annotated[float, msgspec.Meta(ge=1)] = 30.0
    intent_rate: float = 100.0
    intent_burst: int = 1000
    intent_backlog: int = 10_000
    intent_backlog_bytes: int = 64 * 1024 * 1024
    intent_max_bytes: int = 8 * 1024
    markets_refresh_seconds: float = 3600.0
    execution_shard: int = 0
    execution_shards: int = 1
    metrics_port: int = 9100
    metrics_host: str = DEFAULT_METRICS_HOST
    log_level: str = "info"
