"""A local OKX (API v5) for tests: what ccxt's ``okx`` calls to load markets and read
balances, and OKX's authentication and its refusals. REST on 127.0.0.1, one free port.

OKX signs a private request with four headers (docs: okx.com/docs-v5/en,
"REST API / Authentication"; ccxt ``okx.sign``): ``OK-ACCESS-KEY``,
``OK-ACCESS-PASSPHRASE`` (the passphrase chosen with the key; ccxt's
``password``), ``OK-ACCESS-TIMESTAMP`` (ISO 8601 UTC with milliseconds) and
``OK-ACCESS-SIGN``, the base64 HMAC-SHA256, keyed by the secret, of
``timestamp + method + path (+ "?" + query for a GET) + body``. Every answer is
``{"code", "msg", "data"}``, ``code`` ``"0"`` when it worked; the refusals used
here, with HTTP 401, as OKX documents them ("Error Code / REST API / Public"):

* ``50103`` the key header is empty; ``50104`` the passphrase header is empty;
* ``50111`` "Invalid OK-ACCESS-KEY" (an unknown key);
* ``50105`` "Invalid OK-ACCESS-PASSPHRASE" (a key's wrong passphrase);
* ``50113`` "Invalid Sign" (the signature does not match the secret);
* ``50112`` "Invalid OK-ACCESS-TIMESTAMP" (more than 30 s from the server's clock).

ccxt raises ``AuthenticationError`` for each of them (its ``exceptions`` map).

Served: ``GET /api/v5/public/instruments`` (spot ``BTC-USDT``; no futures,
swaps or options), ``GET /api/v5/public/time``, and, signed,
``GET /api/v5/asset/currencies`` and ``GET /api/v5/account/balance``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from aiohttp import web

TIMESTAMP_WINDOW_S = 30.0


@dataclass(frozen=True)
class OkxKey:
    """One API key as OKX issues it: key, secret and the passphrase set with it."""

    api_key: str
    secret: str
    passphrase: str


@dataclass
class OkxServer:
    """The local OKX (module docstring). ``balances``: API key -> currency -> amount."""

    balances: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: dict[str, OkxKey] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    """The error codes answered, in order."""
    url: str = ""
    _runner: web.AppRunner | None = None

    def add_key(self, balances: dict[str, str]) -> OkxKey:
        """A new API key holding ``balances``."""
        key = OkxKey(secrets.token_hex(16), secrets.token_hex(32), secrets.token_urlsafe(12))
        self.keys[key.api_key] = key
        self.balances[key.api_key] = dict(balances)
        return key

    async def __aenter__(self) -> OkxServer:
        app = web.Application()
        app.router.add_get("/api/v5/public/instruments", self._instruments)
        app.router.add_get("/api/v5/public/time", self._time)
        app.router.add_get("/api/v5/asset/currencies", self._currencies)
        app.router.add_get("/api/v5/account/balance", self._balance)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- public ----------------------------------------------------------------

    async def _instruments(self, request: web.Request) -> web.Response:
        if request.query.get("instType") != "SPOT":
            return _ok([])
        return _ok([_BTC_USDT])

    async def _time(self, request: web.Request) -> web.Response:
        return _ok([{"ts": str(int(time.time() * 1000))}])

    # -- private ---------------------------------------------------------------

    async def _currencies(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        return refused or _ok([])

    async def _balance(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        held = self.balances[request.headers["OK-ACCESS-KEY"]]
        details = [
            {"ccy": ccy, "availBal": amount, "cashBal": amount, "eq": amount, "frozenBal": "0"}
            for ccy, amount in sorted(held.items())
        ]
        return _ok([{"details": details, "totalEq": "0", "uTime": str(int(time.time() * 1000))}])

    def _refusal(self, request: web.Request) -> web.Response | None:
        """OKX's answer to a badly signed request (module docstring), None if it is good."""
        headers = request.headers
        api_key, passphrase = headers.get("OK-ACCESS-KEY"), headers.get("OK-ACCESS-PASSPHRASE")
        stamp, signature = headers.get("OK-ACCESS-TIMESTAMP", ""), headers.get("OK-ACCESS-SIGN")
        if not api_key:
            return self._refuse("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.')
        if not passphrase:
            return self._refuse("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.')
        key = self.keys.get(api_key)
        if key is None:
            return self._refuse("50111", "Invalid OK-ACCESS-KEY")
        if not hmac.compare_digest(passphrase, key.passphrase):
            return self._refuse("50105", "Invalid OK-ACCESS-PASSPHRASE")
        try:
            sent = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            sent = 0.0
        if abs(sent - time.time()) > TIMESTAMP_WINDOW_S:
            return self._refuse("50112", "Invalid OK-ACCESS-TIMESTAMP")
        path = request.path_qs if request.method == "GET" else request.path
        payload = f"{stamp}{request.method}{path}".encode()
        digest = hmac.new(key.secret.encode(), payload, hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), signature or ""):
            return self._refuse("50113", "Invalid Sign")
        return None

    def _refuse(self, code: str, message: str) -> web.Response:
        self.refusals.append(code)
        return web.json_response({"code": code, "msg": message, "data": []}, status=401)


def _ok(data: list[Any]) -> web.Response:
    return web.json_response({"code": "0", "msg": "", "data": data})


_BTC_USDT = {
    "alias": "",
    "baseCcy": "BTC",
    "category": "1",
    "ctMult": "",
    "ctType": "",
    "ctVal": "",
    "ctValCcy": "",
    "expTime": "",
    "instFamily": "",
    "instId": "BTC-USDT",
    "instType": "SPOT",
    "lever": "10",
    "listTime": "1606468572000",
    "lotSz": "0.00000001",
    "maxLmtSz": "9999999999",
    "maxMktSz": "1000000",
    "minSz": "0.00001",
    "optType": "",
    "quoteCcy": "USDT",
    "settleCcy": "",
    "state": "live",
    "stk": "",
    "tickSz": "0.1",
    "uly": "",
}
"""OKX's ``BTC-USDT`` spot instrument (``GET /api/v5/public/instruments`` item)."""
