"""Backpack request signing: the signed string, ED25519 keys and the checks the server makes.

Mirrors the "Authentication" section of the Backpack API docs
(docs.backpack.exchange) and what ``ccxt`` (``backpack.sign``,
``backpack.generate_batch_payload``, ``ccxt.pro.backpack.watch_private``) and
the official Rust client (``bpx-api-client``) actually send:

* the signed string is ``instruction=<instruction>&<params>&timestamp=<ms>&window=<ms>``
  where ``<params>`` are the query parameters (GET) or the JSON body's keys
  (POST/DELETE), sorted by key, as ``k=v`` joined by ``&``, and left out
  (with their ``&``) when there are none;
* booleans are written ``true``/``false``, numbers as their decimal text,
  strings as they are (ccxt URL-encodes them, which changes nothing for the
  symbols, enums and decimals Backpack takes);
* a batch (``POST /api/v1/orders``, a JSON list) repeats
  ``instruction=orderExecute&<sorted order>`` for each order, joined by ``&``,
  then ``&timestamp=..&window=..``;
* a private WebSocket subscription signs ``instruction=subscribe&timestamp=..&window=..``
  and sends ``"signature": [<verifying key>, <signature>, <timestamp>, <window>]``;
* headers ``X-API-Key`` (base64 verifying key), ``X-Signature`` (base64
  signature), ``X-Timestamp`` (ms), ``X-Window`` (ms, default 5000, at most
  60000). ccxt's secret is the base64 32-byte seed.

Instruction names per endpoint are ccxt's ``options['instructions']`` (the same
as the Rust client's table).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DEFAULT_WINDOW_MS = 5000
MAX_WINDOW_MS = 60000

INSTRUCTIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/capital"): "balanceQuery",
    ("GET", "/api/v1/order"): "orderQuery",
    ("POST", "/api/v1/order"): "orderExecute",
    ("DELETE", "/api/v1/order"): "orderCancel",
    ("GET", "/api/v1/orders"): "orderQueryAll",
    ("POST", "/api/v1/orders"): "orderExecute",
    ("DELETE", "/api/v1/orders"): "orderCancelAll",
    ("GET", "/wapi/v1/history/fills"): "fillHistoryQueryAll",
    ("GET", "/wapi/v1/history/orders"): "orderHistoryQueryAll",
    ("GET", "/api/v1/position"): "positionQuery",
    ("GET", "/api/v1/account"): "accountQuery",
    ("PATCH", "/api/v1/account"): "accountUpdate",
    ("GET", "/wapi/v1/history/funding"): "fundingHistoryQueryAll",
}
"""(method, path) -> instruction of the private endpoints this server serves (ccxt's table)."""


@dataclass(frozen=True)
class Credentials:
    """An API key pair as ccxt takes it: ``apiKey`` and ``secret``, both base64."""

    api_key: str
    """Base64 of the 32-byte ED25519 verifying key (``X-API-Key``)."""
    secret: str
    """Base64 of the 32-byte ED25519 seed (ccxt's ``secret``)."""

    def ccxt_config(self) -> dict[str, str]:
        """``{"apiKey": .., "secret": ..}`` for a ccxt exchange constructor."""
        return {"apiKey": self.api_key, "secret": self.secret}


def generate_credentials() -> Credentials:
    """A fresh ED25519 key pair."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    public = key.public_key().public_bytes_raw()
    return Credentials(
        api_key=base64.b64encode(public).decode(), secret=base64.b64encode(seed).decode()
    )


def sign(secret: str, message: str) -> str:
    """Base64 ED25519 signature of ``message`` with the base64 seed ``secret``."""
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(secret)[:32])
    return base64.b64encode(key.sign(message.encode())).decode()


def _text(value: Any) -> str:
    """A parameter value as it appears in the signed string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _pairs(params: Mapping[str, Any]) -> str:
    return "&".join(f"{k}={_text(params[k])}" for k in sorted(params))


def signing_string(
    instruction: str,
    params: Mapping[str, Any] | list[Mapping[str, Any]],
    timestamp: int | str,
    window: int | str,
) -> str:
    """The string Backpack signs for one request (see the module docstring)."""
    tail = f"timestamp={timestamp}&window={window}"
    if isinstance(params, list):
        parts = [f"instruction={instruction}&{_pairs(order)}" for order in params]
        return "&".join([*parts, tail])
    pairs = _pairs(params)
    head = f"instruction={instruction}&" + (f"{pairs}&" if pairs else "")
    return head + tail


class AuthError(Exception):
    """A signed request or subscription the server refuses; ``str()`` is the reason."""


def verify(
    api_key: str | None,
    signature: str | None,
    timestamp: str | None,
    window: str | None,
    message_for: Any,
    now_ms: int,
) -> tuple[int, int]:
    """Check one signed request; return ``(timestamp, window)``.

    ``message_for(timestamp, window)`` builds the signed string from the
    header values as sent (text). Raises :class:`AuthError` for a missing or
    malformed header, a window above 60000 ms, a signature that does not
    verify, or a timestamp outside ``[now - window, now + window]``.
    """
    if not api_key:
        raise AuthError("Missing X-API-Key header")
    if not signature:
        raise AuthError("Missing X-Signature header")
    if not timestamp:
        raise AuthError("Missing X-Timestamp header")
    window = window or str(DEFAULT_WINDOW_MS)
    try:
        ts = int(timestamp)
        win = int(window)
    except ValueError:
        raise AuthError("Invalid X-Timestamp or X-Window header") from None
    if not 0 < win <= MAX_WINDOW_MS:
        raise AuthError(f"Invalid X-Window header (at most {MAX_WINDOW_MS})")
    try:
        public = base64.b64decode(api_key, validate=True)
        raw_signature = base64.b64decode(signature, validate=True)
        key = Ed25519PublicKey.from_public_bytes(public)
    except (binascii.Error, ValueError):
        raise AuthError("Invalid X-API-Key or X-Signature header") from None
    try:
        key.verify(raw_signature, message_for(timestamp, window).encode())
    except InvalidSignature:
        raise AuthError("Invalid signature") from None
    if now_ms > ts + win:
        raise AuthError("Request has expired")
    if ts > now_ms + win:
        raise AuthError("Request timestamp is in the future")
    return ts, win
