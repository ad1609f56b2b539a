"""Point a ccxt client somewhere else: a mirror, a testnet, or a local test server.

ccxt documents ``exchange.urls['api']`` as the base URLs of an exchange's
APIs; ccxt.pro keeps the WebSocket ones under ``urls['api']['ws']``. Both the
marketdata feed and the execution venues override them the same way, here.
"""

from __future__ import annotations

from typing import Any


def override_urls(client: Any, rest_url: str | None, ws_url: str | None) -> None:
    """Replace the client's REST and/or WebSocket base URLs, in place.

    ``rest_url`` replaces every string value of ``urls['api']`` (or the whole
    value when it is a string); ``ws_url`` replaces every value of
    ``urls['api']['ws']`` (or sets it). Empty or None leaves that part as is.
    """
    api = client.urls.get("api")
    if rest_url:
        if isinstance(api, dict):
            api = {k: (rest_url if isinstance(v, str) else v) for k, v in api.items()}
        else:
            api = rest_url
    if ws_url and isinstance(api, dict):
        ws = api.get("ws")
        api = {**api, "ws": {k: ws_url for k in ws} if isinstance(ws, dict) else ws_url}
    client.urls["api"] = api
