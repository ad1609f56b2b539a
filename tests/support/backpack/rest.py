"""The local Backpack REST API (``https://api.backpack.exchange`` on localhost).

Each endpoint mirrors the one of the same path in the Backpack API docs
(docs.backpack.exchange) as ccxt's ``backpack`` class calls it
(``ccxt/async_support/backpack.py``). Public, no signature:

* ``GET /api/v1/assets`` (ccxt ``fetch_currencies``, part of ``load_markets``),
  ``/api/v1/markets``, ``/api/v1/market`` (``fetch_markets``),
  ``/api/v1/ticker``, ``/api/v1/tickers`` (``fetch_ticker(s)``),
  ``/api/v1/depth`` (``fetch_order_book``: the last replayed best bid/ask),
  ``/api/v1/trades`` (``fetch_trades``: the replayed tape), ``/api/v1/time``,
  ``/api/v1/status``, ``/api/v1/ping``.

Private, signed (instruction in brackets):

* ``GET /api/v1/capital`` [balanceQuery] -> ``{asset: {available, locked, staked}}``;
* ``POST /api/v1/order`` [orderExecute], ``POST /api/v1/orders`` [orderExecute, batch];
* ``GET /api/v1/order`` [orderQuery] one *open* order by ``orderId`` or
  ``clientId`` (not both), else 404 ``RESOURCE_NOT_FOUND``;
* ``DELETE /api/v1/order`` [orderCancel], ``DELETE /api/v1/orders``
  [orderCancelAll] (per symbol), ``GET /api/v1/orders`` [orderQueryAll];
* ``GET /wapi/v1/history/fills`` [fillHistoryQueryAll],
  ``GET /wapi/v1/history/orders`` [orderHistoryQueryAll],
  ``GET /wapi/v1/history/funding`` [fundingHistoryQueryAll]: newest first,
  ``limit`` (default 100, at most 1000) and ``offset``;
* ``GET /api/v1/position`` [positionQuery]: the open perpetual positions
  (optionally of one ``symbol``);
* ``GET /api/v1/account`` [accountQuery], ``PATCH /api/v1/account``
  [accountUpdate]: the account's settings; ``leverageLimit`` (a positive
  integer as text, at most 50) is the one the server keeps.

Refusals: JSON ``{"code", "message"}`` with the documented ``ApiErrorCode``;
unreadable payloads: 400 plain text; a refused signature or a stale
timestamp: 401, plain text by default (``Request has expired``, as Backpack
answers; ccxt -> AuthenticationError) or, with ``auth_errors="json"``,
``{"code": "INVALID_CLIENT_REQUEST", "message": ..}`` (ccxt -> BadRequest),
the form Backpack's support FAQ lists.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.support.backpack import wire
from tests.support.backpack.auth import INSTRUCTIONS, AuthError, signing_string, verify
from tests.support.backpack.faults import RequestRecord
from tests.support.backpack.market import ApiError, Order, PayloadError
from tests.support.backpack.payload import client_id_of, payload_error

if TYPE_CHECKING:
    from tests.support.backpack.server import BackpackServer

Result = tuple[int, Any]
MAX_LEVERAGE = 50


def _limit(query: dict[str, str], default: int = 100, most: int = 1000) -> tuple[int, int]:
    limit, offset = _int(query, "limit", default), _int(query, "offset", 0)
    return max(0, min(limit, most)), max(0, offset)


def _int(query: dict[str, str], key: str, default: int) -> int:
    try:
        return int(query.get(key, default))
    except ValueError:
        raise payload_error(key, "query") from None


def _page(items: list[Any], query: dict[str, str]) -> list[Any]:
    """Newest first unless ``sortDirection=Asc``, then ``offset``/``limit``."""
    if query.get("sortDirection", "Desc") != "Asc":
        items = items[::-1]
    limit, offset = _limit(query)
    return items[offset : offset + limit]


def _symbol(query: dict[str, Any], required: bool = True) -> str | None:
    symbol = query.get("symbol")
    if symbol is None and required:
        raise PayloadError("Bad Request parse request payload error: missing field `symbol`")
    return symbol


class Rest:
    """The aiohttp handlers; state lives in ``server.exchange``."""

    def __init__(self, server: BackpackServer) -> None:
        self.server = server
        self.exchange = server.exchange
        self.public = {
            "/api/v1/assets": self.assets,
            "/api/v1/markets": self.markets,
            "/api/v1/market": self.market,
            "/api/v1/ticker": self.ticker,
            "/api/v1/tickers": self.tickers,
            "/api/v1/depth": self.depth,
            "/api/v1/trades": self.trades,
            "/api/v1/time": self.time,
            "/api/v1/status": self.status,
        }
        self.private = {
            "balanceQuery": self.capital,
            "orderExecute": self.execute,
            "orderQuery": self.order_query,
            "orderCancel": self.order_cancel,
            "orderQueryAll": self.open_orders,
            "orderCancelAll": self.cancel_all,
            "fillHistoryQueryAll": self.fill_history,
            "orderHistoryQueryAll": self.order_history,
            "positionQuery": self.positions,
            "accountQuery": self.account_settings,
            "accountUpdate": self.update_account,
            "fundingHistoryQueryAll": self.funding_history,
        }

    # -- dispatch ------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Log, apply faults, authenticate, run the endpoint, publish its events."""
        server = self.server
        path, method = request.path, request.method
        instruction = INSTRUCTIONS.get((method, path))
        query = dict(request.query)
        raw = await request.read()
        record = RequestRecord(
            method, path, query, None, instruction, request.headers.get("X-API-Key")
        )
        server.requests.append(record)
        try:
            record.body = json.loads(raw) if raw else None
        except ValueError:
            return self._answer(record, web.Response(status=400, text="Invalid JSON body"))
        injected = server.faults.take_error(instruction, path)
        if injected is not None:
            record.outcome, record.error = "injected", injected.code
            body = wire.error(injected.code, injected.message)
            return self._answer(record, web.json_response(body, status=injected.status))
        if path == "/api/v1/ping" and method == "GET":
            return self._answer(record, web.Response(text="pong"))
        try:
            if instruction is not None:
                params = query if method == "GET" else (record.body or {})
                account = self._authenticate(request, instruction, params)
                status, body = self.private[instruction](account, query, record.body)
            elif method == "GET" and path in self.public:
                status, body = self.public[path](query)
            else:
                return self._answer(record, web.Response(status=404, text="Not Found"))
        except AuthError as e:
            record.outcome, record.error = "auth", str(e)
            return self._answer(record, self._auth_error(str(e)))
        except ApiError as e:
            record.outcome, record.error = "error", e.code
            return self._answer(
                record, web.json_response(wire.error(e.code, e.message), status=e.status)
            )
        except PayloadError as e:
            record.outcome, record.error = "error", str(e)
            return self._answer(record, web.Response(status=400, text=str(e)))
        await server.publish_pending()
        response = web.json_response(body, status=status)
        stall = server.faults.take_stall(instruction, path)
        if stall is not None:
            record.outcome = "stalled"
            if not await server.hold(stall.seconds):
                if request.transport is not None:  # stopped first: never answered
                    request.transport.close()
                return response
        return self._answer(record, response)

    @staticmethod
    def _answer(record: RequestRecord, response: web.StreamResponse) -> web.StreamResponse:
        record.status = response.status
        record.outcome = record.outcome or "ok"
        return response

    def _authenticate(self, request: web.Request, instruction: str, params: Any) -> str:
        headers = request.headers
        verify(
            headers.get("X-API-Key"),
            headers.get("X-Signature"),
            headers.get("X-Timestamp"),
            headers.get("X-Window"),
            lambda ts, window: signing_string(instruction, params, ts, window),
            int(time.time() * 1000),
        )
        key = headers["X-API-Key"]
        if key not in self.server.api_keys:
            raise AuthError("Invalid API key")
        return key

    def _auth_error(self, message: str) -> web.Response:
        if self.server.auth_errors == "json":
            return web.json_response(wire.error("INVALID_CLIENT_REQUEST", message), status=401)
        return web.Response(status=401, text=message)

    # -- public --------------------------------------------------------------

    def assets(self, query: dict[str, str]) -> Result:
        names = sorted({a for m in self.exchange.markets.values() for a in (m.base, m.quote)})
        return 200, [wire.asset(a) for a in names]

    def markets(self, query: dict[str, str]) -> Result:
        return 200, [wire.market(m) for m in self.exchange.markets.values()]

    def market(self, query: dict[str, str]) -> Result:
        return 200, wire.market(self.exchange.book(_symbol(query) or "").spec)

    def ticker(self, query: dict[str, str]) -> Result:
        symbol = _symbol(query) or ""
        return 200, self.exchange.book(symbol).stats.rest(symbol)

    def tickers(self, query: dict[str, str]) -> Result:
        return 200, [self.exchange.book(s).stats.rest(s) for s in self.exchange.markets]

    def depth(self, query: dict[str, str]) -> Result:
        book = self.exchange.book(_symbol(query) or "")
        bids: list[list[str | None]] = []
        asks: list[list[str | None]] = []
        if book.depth is not None:  # every level, each side by price ascending, as Backpack
            bids = [[wire.dec(p), wire.dec(q)] for p, q in book.depth[0]]
            asks = [[wire.dec(p), wire.dec(q)] for p, q in book.depth[1]]
        elif book.quote is not None:
            bid, bid_qty, ask, ask_qty = book.quote
            bids, asks = [[wire.dec(bid), wire.dec(bid_qty)]], [[wire.dec(ask), wire.dec(ask_qty)]]
        return 200, {
            "asks": asks,
            "bids": bids,
            "lastUpdateId": str(book.quote_updates),
            "timestamp": self.exchange.clock_us(),
        }

    def trades(self, query: dict[str, str]) -> Result:
        book = self.exchange.book(_symbol(query) or "")
        limit, _ = _limit(query)
        tape = list(book.trades)[-limit:] if limit else []
        return 200, [t.rest() for t in tape]

    def time(self, query: dict[str, str]) -> Result:
        return 200, self.exchange.clock_us() // 1000

    def status(self, query: dict[str, str]) -> Result:
        return 200, {"message": None, "status": "Ok"}

    # -- private -------------------------------------------------------------

    def capital(self, account: str, query: dict[str, str], body: Any) -> Result:
        balances = self.exchange.accounts.get(account, {})
        return 200, {
            asset: {
                "available": wire.dec(b.available),
                "locked": wire.dec(b.locked),
                "staked": "0",
            }
            for asset, b in sorted(balances.items())
        }

    def execute(self, account: str, query: dict[str, str], body: Any) -> Result:
        if isinstance(body, list):
            if not all(isinstance(o, dict) for o in body):
                raise payload_error("OrderExecutePayload")
            results = []
            for payload in body:
                try:
                    results.append(
                        {"operation": "Ok", **wire.order(self._execute(account, payload))}
                    )
                except ApiError as e:
                    results.append({"operation": "Err", **wire.error(e.code, e.message)})
            return 200, results
        return 200, wire.order(self._execute(account, body))

    def _execute(self, account: str, payload: Any) -> Order:
        order, events = self.exchange.execute(account, payload)
        self.server.pending.extend(events)
        return order

    def order_query(self, account: str, query: dict[str, str], body: Any) -> Result:
        order = self.exchange.find_open(
            account,
            _symbol(query) or "",
            query.get("orderId"),
            client_id_of(query.get("clientId"), "query"),
            "Order query",
        )
        return 200, wire.order(order)

    def order_cancel(self, account: str, query: dict[str, str], body: Any) -> Result:
        body = body if isinstance(body, dict) else {}
        order, events = self.exchange.cancel(
            account,
            _symbol(body) or "",
            body.get("orderId"),
            client_id_of(body.get("clientId"), "OrderCancelPayload"),
        )
        self.server.pending.extend(events)
        return 200, wire.order(order)

    def open_orders(self, account: str, query: dict[str, str], body: Any) -> Result:
        symbol = _symbol(query, required=False)
        return 200, [wire.order(o) for o in self.exchange.open_orders(account, symbol)]

    def cancel_all(self, account: str, query: dict[str, str], body: Any) -> Result:
        body = body if isinstance(body, dict) else {}
        orders, events = self.exchange.cancel_all(account, _symbol(body) or "")
        self.server.pending.extend(events)
        return 200, [wire.order(o) for o in orders]

    def fill_history(self, account: str, query: dict[str, str], body: Any) -> Result:
        symbol, order_id = query.get("symbol"), query.get("orderId")
        start, end = _int(query, "from", 0), _int(query, "to", 2**62)
        fills = [
            f
            for f in self.exchange.fills
            if f.account == account
            and (symbol is None or f.symbol == symbol)
            and (order_id is None or f.order_id == order_id)
            and start <= f.ts_us // 1000 <= end
        ]
        if query.get("fillType", "User") != "User":
            fills = []
        return 200, [wire.fill(f) for f in _page(fills, query)]

    def order_history(self, account: str, query: dict[str, str], body: Any) -> Result:
        symbol, order_id = query.get("symbol"), query.get("orderId")
        orders = [
            o
            for o in self.exchange.orders.values()
            if o.account == account
            and (symbol is None or o.symbol == symbol)
            and (order_id is None or o.id == order_id)
        ]
        return 200, [wire.order_history(o) for o in _page(orders, query)]

    def positions(self, account: str, query: dict[str, str], body: Any) -> Result:
        symbol = query.get("symbol")
        user_id = self.server.user_id(account)
        found = [
            wire.position(p, self.exchange.markets[p.symbol], self._mark(p.symbol), user_id)
            for p in self.exchange.positions.values()
            if p.account == account and p.net_qty and (symbol is None or p.symbol == symbol)
        ]
        return 200, found

    def _mark(self, symbol: str) -> Decimal:
        return self.exchange.book(symbol).last_price or Decimal(0)

    def funding_history(self, account: str, query: dict[str, str], body: Any) -> Result:
        symbol = query.get("symbol")
        paid = [
            f
            for f in self.exchange.funding
            if f.account == account and (symbol is None or f.symbol == symbol)
        ]
        user_id = self.server.user_id(account)
        return 200, [wire.funding(f, user_id) for f in _page(paid, query)]

    def account_settings(self, account: str, query: dict[str, str], body: Any) -> Result:
        return 200, self._settings(account)

    def _settings(self, account: str) -> dict[str, Any]:
        leverage = self.exchange.leverage.get(account, 1)
        return {
            "autoBorrowSettlements": True,
            "autoLend": False,
            "autoRealizePnl": True,
            "autoRepayBorrows": True,
            "borrowLimit": "0",
            "futuresMakerFee": "2",
            "futuresTakerFee": "5",
            "leverageLimit": str(leverage),
            "limitOrders": 0,
            "liquidating": False,
            "positionLimit": "0",
            "spotMakerFee": "2",
            "spotTakerFee": "5",
            "triggerOrders": 0,
        }

    def update_account(self, account: str, query: dict[str, str], body: Any) -> Result:
        body = body if isinstance(body, dict) else {}
        value = body.get("leverageLimit")
        if value is not None:
            text = str(value)
            if not text.isdigit() or not 1 <= int(text) <= MAX_LEVERAGE:
                raise ApiError(400, "INVALID_CLIENT_REQUEST", "Invalid leverage limit")
            self.exchange.leverage[account] = int(text)
        return 200, None
