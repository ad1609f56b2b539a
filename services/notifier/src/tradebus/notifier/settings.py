"""Settings of the notifier (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from typing import Annotated

from tradebus.common.config import DEFAULT_METRICS_HOST, SECRET, Settings


class NotifierSettings(Settings, frozen=True, kw_only=True):
    """Notifier settings.

    Attributes
    ----------
    nats_url, nats_creds
        NATS server URL, and the path of the notifier's ``.creds`` file (operator mode).
    notifications_file
        The notifications file (:mod:`tradebus.notify.channels`): the operators' Apprise
        URLs, each user's channels and mute options, account owners. Empty: none. It
        holds tokens: keep it out of version control once filled in (or mount it as a
        compose secret).
    database_url
        Postgres URL of the ledger, for the settings users saved through the gateway
        and the owners of accounts; empty: the file only.
    seal_private_key_file
        The notifier's private key (``tradebus seal-keys --name notifier``): opens the
        channels the gateway sealed to its public key. Empty: saved channels are ignored.
    refresh_seconds
        How often the saved settings and account owners are read again.
    http_host, http_port
        Where Alertmanager's webhook receiver listens: ``POST /v1/alertmanager``
        (Alertmanager's ``webhook_configs: [{url: http://<notifier>:9095/v1/alertmanager}]``).
        Loopback by default; compose sets ``0.0.0.0``.
    alertmanager_token
        If set, ``POST /v1/alertmanager`` requires ``Authorization: Bearer <token>``
        (Alertmanager's ``webhook_configs[].http_config.authorization.credentials_file``);
        a secret (``TRADEBUS_ALERTMANAGER_TOKEN_FILE`` reads it from a file). Empty: the
        receiver trusts its network (loopback by default; compose's private network).
    batch_seconds
        Window of a user's digest: notices wait at most this long, a user gets at most
        one message per window (:mod:`tradebus.notify.outbox`).
    attempts, backoff_seconds
        Tries per channel and message, and the first wait between them (doubling).
    metrics_port, metrics_host
        The Prometheus ``/metrics`` endpoint (loopback unless told otherwise).
    """

    nats_url: Annotated[str, SECRET] = "nats://127.0.0.1:4222"
    nats_creds: Annotated[str, SECRET] = ""
    notifications_file: str = ""
    database_url: Annotated[str, SECRET] = ""
    seal_private_key_file: Annotated[str, SECRET] = ""
    refresh_seconds: float = 15.0
    http_host: str = "127.0.0.1"
    http_port: int = 9095
    alertmanager_token: Annotated[str, SECRET] = ""
    batch_seconds: float = 2.0
    attempts: int = 3
    backoff_seconds: float = 1.0
    metrics_port: int = 9106
    metrics_host: str = DEFAULT_METRICS_HOST
    log_level: str = "info"
