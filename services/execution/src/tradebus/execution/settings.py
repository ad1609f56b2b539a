"""Settings of the execution service (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from typing import Annotated

from tradebus.common.config import SECRET, Settings


class ExecutionSettings(Settings, frozen=True, kw_only=True):
    """Execution settings.

    Attributes
    ----------
    nats_url
        NATS server URL.
    database_url
        Postgres URL of the ledger (``postgresql://user:password@host:port/db``).
    accounts_file
        Accounts YAML (see :mod:`tradebus.execution.accounts`).
    markets_file
        Markets YAML; empty = the default shipped with tradebus-common.
    consumer
        Durable JetStream consumer name on ``INTENTS``.
    fetch_batch
        Intents fetched per pull.
    metrics_port
        Port of the Prometheus ``/metrics`` endpoint (0 = any free port).
    """

    nats_url: Annotated[str, SECRET] = "nats://127.0.0.1:4222"
    database_url: Annotated[str, SECRET] = "postgresql://tradebus@127.0.0.1:5432/tradebus"
    accounts_file: str = "/etc/tradebus/accounts.yaml"
    markets_file: str = ""
    consumer: str = "execution"
    fetch_batch: int = 64
    metrics_port: int = 9100
    log_level: str = "info"
