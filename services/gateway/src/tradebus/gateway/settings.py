"""Settings of the gateway (``TRADEBUS_*`` environment variables)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from tradebus.common.config import DEFAULT_METRICS_HOST, SECRET, Settings

MIN_JWT_SECRET_CHARS = 32


class GatewaySettings(Settings, frozen=True, kw_only=True):
    """Gateway settings.

    Attributes
    ----------
    nats_url, nats_creds
        NATS server URL, and the path of the gateway user's ``.creds`` file
        (operator mode; empty without authentication).
    stream_replicas
        Copies JetStream keeps of every stream and KV bucket this service creates
        (1; 3 on a three-node NATS cluster, README "A NATS cluster").
    database_url
        Postgres URL of the ledger: read-only queries, plus the gateway's own
        tables (users, sessions, account configurations, the audit log).
    http_host, http_port
        Where the HTTP API listens. Loopback by default; compose sets ``0.0.0.0``.
    public_url
        The URL people reach the gateway at (printed, and put in the OpenAPI
        document's ``servers``); default ``http://<http_host>:<http_port>``.
    jwt_secret
        The HMAC key (at least 32 characters) that signs access tokens; a
        secret (``TRADEBUS_JWT_SECRET_FILE`` reads it from a file).
    access_token_seconds, refresh_token_seconds
        Lifetimes of an access token (a JWT, short) and of a refresh token (a
        random string stored as a hash, rotated on every use).
    login_max_failures, login_window_seconds
        Failed sign-ins allowed per user name and per client address within
        the window before further attempts are refused with 429.
    cors_origins
        Origins allowed to call the API from a browser (CORS); empty (the
        default) means CORS is off. ``*`` allows any origin.
    max_body_bytes
        Largest request body accepted (413 beyond it).
    markets_file
        The markets file (bot validation); default: the one shipped with tradebus.
    seal_public_key_file
        Execution's public key (``tradebus seal-keys``): exchange credentials
        are sealed to it and stored only as ciphertext.
    notify_public_key_file
        The notifier's public key (``tradebus seal-keys --name notifier``): the
        notification channels users save (``/api/v1/me/notifications``) are sealed to
        it and stored only as ciphertext.
    nats_sys_creds, nats_operator_signing_key_file, nats_people_signing_key_file
        What registering people as NATS accounts takes (``tradebus nats-init``):
        a SYS-account user allowed only claim updates, the operator signing
        key, and the key that signs people's user credentials. All empty: the
        gateway manages no NATS accounts (``/api/v1/me/nats-credentials`` says so).
    password_memory_kib, password_time_cost
        argon2id's memory (KiB) and passes for new password hashes. The defaults
        are RFC 9106's second recommended option (64 MiB, 3 passes), about 0.15 s
        a hash on one core; a small machine may lower them (OWASP's floor is
        19 MiB and 2 passes). Existing hashes keep the parameters they were made
        with.
    metrics_port, metrics_host
        The Prometheus ``/metrics`` endpoint (loopback unless told otherwise).
    web_dir
        The built web page (``web/dist`` after ``npm run build``), served at ``/``
        with every non-API path answering its ``index.html`` (:mod:`.web`); empty
        (the default): no page, ``/`` is a JSON 404.
    """

    nats_url: Annotated[str, SECRET] = "nats://127.0.0.1:4222"
    nats_creds: Annotated[str, SECRET] = ""
    stream_replicas: Annotated[int, msgspec.Meta(ge=1)] = 1
    database_url: Annotated[str, SECRET] = "postgresql://tradebus@127.0.0.1:5432/tradebus"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_url: str = ""
    jwt_secret: Annotated[str, SECRET] = ""
    access_token_seconds: int = 900
    refresh_token_seconds: int = 14 * 24 * 3600
    login_max_failures: int = 5
    login_window_seconds: float = 900.0
    cors_origins: list[str] = []
    max_body_bytes: int = 1024 * 1024
    markets_file: str = ""
    seal_public_key_file: str = ""
    notify_public_key_file: str = ""
    nats_sys_creds: Annotated[str, SECRET] = ""
    nats_operator_signing_key_file: Annotated[str, SECRET] = ""
    nats_people_signing_key_file: Annotated[str, SECRET] = ""
    password_memory_kib: int = 65536
    password_time_cost: int = 3
    metrics_port: int = 9105
    metrics_host: str = DEFAULT_METRICS_HOST
    log_level: str = "info"
    web_dir: str = ""

    @property
    def url(self) -> str:
        """Where people reach the API (``public_url``, else from host and port)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "") else self.http_host
        return f"http://{host}:{self.http_port}"
