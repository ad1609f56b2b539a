"""The local Backpack server against the real ccxt client (REST and ccxt.pro) and a raw
WebSocket client: signing, endpoints, matching on recorded trades, errors and faults.

Every ccxt call here goes through ``ccxt.async_support.backpack`` /
``ccxt.pro.backpack`` unchanged, only ``urls['api']`` points at localhost; the
keys are fresh ED25519 pairs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.backpack.auth import Credentials, generate_credentials, sign, signing_string
from tests.support.backpack.server import BackpackServer
from tradebus.common.messages import QuoteTick, TradeTick

BTC = "BTC/USDC"


@pytest.fixture
async def server() -> AsyncIterator[BackpackServer]:
    async with BackpackServer() as s:
        yield s


@pytest.fixture
def account(server: BackpackServer) -> Credentials:
    return server.add_account({"USDC": "100000", "BTC": "1"})


@pytest.fixture
async def client(server: BackpackServer, account: Credentials) -> AsyncIterator[ccxt.Exchange]:
    ex = server.ccxt_client(account, enableRateLimit=False)
    yield ex
    await ex.close()


async def _pro(server: BackpackServer, account: Credentials) -> ccxt.Exchange:
    ex = server.ccxt_client(account, pro=True, enableRateLimit=False)
    await ex.load_markets()
    return ex


def _frames(server: BackpackServer, stream: str) -> list[dict]:
    """Payloads the server sent on ``stream``, in order."""
    out = []
    for text in server.ws.sent_frames:
        msg = json.loads(text)
        if msg.get("stream") == stream:
            out.append(msg["data"])
    return out


# -- signing -------------------------------------------------------------------


def test_signed_string_is_what_ccxt_signs() -> None:
    """The server's signed string is byte for byte what ccxt signs, for a body with a
    boolean and an integer, for a GET query and for a batch."""
    creds = generate_credentials()
    ex = ccxt.backpack(creds.ccxt_config())
    ex.load_markets = lambda *a, **k: None  # sign() needs no markets
    public_key = base64.b64decode(creds.api_key)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(public_key)
    body = {
        "symbol": "BTC_USDC",
        "side": "Bid",
        "orderType": "Limit",
        "price": "59000",
        "quantity": "0.001",
        "clientId": 7,
        "postOnly": True,
    }
    signed = ex.sign("api/v1/order", "private", "POST", body)
    h = signed["headers"]
    expected = (
        "instruction=orderExecute&clientId=7&orderType=Limit&postOnly=true&price=59000"
        f"&quantity=0.001&side=Bid&symbol=BTC_USDC&timestamp={h['X-Timestamp']}&window=5000"
    )
    text = signing_string("orderExecute", json.loads(signed["body"]), h["X-Timestamp"], "5000")
    assert text == expected
    key.verify(base64.b64decode(h["X-Signature"]), text.encode())

    query = {"symbol": "BTC_USDC", "fillType": "User", "limit": 50}
    signed = ex.sign("wapi/v1/history/fills", "private", "GET", query)
    h = signed["headers"]
    text = signing_string("fillHistoryQueryAll", query, h["X-Timestamp"], h["X-Window"])
    assert text.startswith("instruction=fillHistoryQueryAll&fillType=User&limit=50&symbol=")
    key.verify(base64.b64decode(h["X-Signature"]), text.encode())

    batch: list[Mapping[str, Any]] = [dict(body, clientId=1), dict(body, clientId=2)]
    signed = ex.sign("api/v1/orders", "private", "POST", batch)
    h = signed["headers"]
    text = signing_string("orderExecute", batch, h["X-Timestamp"], h["X-Window"])
    assert text.count("instruction=orderExecute&") == 2
    key.verify(base64.b64decode(h["X-Signature"]), text.encode())

    signed = ex.sign("api/v1/capital", "private", "GET", {})
    h = signed["headers"]
    text = signing_string("balanceQuery", {}, h["X-Timestamp"], h["X-Window"])
    assert text == f"instruction=balanceQuery&timestamp={h['X-Timestamp']}&window=5000"
    key.verify(base64.b64decode(h["X-Signature"]), text.encode())


# -- public endpoints ------------------------------------------------------------


async def test_markets_ticker_depth_trades_status(
    server: BackpackServer, client: ccxt.Exchange
) -> None:
    markets = await client.load_markets()
    btc = markets[BTC]
    assert btc["id"] == "BTC_USDC" and btc["spot"] and btc["active"]
    assert btc["precision"] == {"amount": 0.00001, "price": 0.1}
    assert btc["limits"]["amount"]["min"] == 0.00001
    assert btc["limits"]["cost"]["min"] is None  # Backpack publishes no min notional

    await server.feed_quote("BTC_USDC", "61000.1", "0.5", "61000.2", "0.7")
    await server.feed_trade("BTC_USDC", "61000.2", "0.01")
    await server.feed_trade("BTC_USDC", "61010", "0.02", buyer_maker=True)

    ticker = await client.fetch_ticker(BTC)
    assert (ticker["open"], ticker["last"], ticker["high"], ticker["low"]) == (
        61000.2,
        61010.0,
        61010.0,
        61000.2,
    )
    assert ticker["baseVolume"] == pytest.approx(0.03)
    assert [t["symbol"] for t in (await client.fetch_tickers()).values()] == [BTC, "ETH/USDC"]
    book = await client.fetch_order_book(BTC)
    assert book["bids"] == [[61000.1, 0.5]] and book["asks"] == [[61000.2, 0.7]]
    assert book["nonce"] == 1
    trades = await client.fetch_trades(BTC)
    assert [(t["price"], t["side"]) for t in trades] == [(61000.2, "buy"), (61010.0, "sell")]
    assert (await client.fetch_status())["status"] == "ok"
    assert abs(int(await client.publicGetApiV1Time()) - time.time() * 1000) < 5000


# -- private endpoints -------------------------------------------------------------


async def test_balance_orders_and_cancels_by_client_id(
    server: BackpackServer, account: Credentials, client: ccxt.Exchange
) -> None:
    await server.feed_trade("BTC_USDC", "60000", "0.01")
    balance = await client.fetch_balance()
    assert balance["USDC"] == {"free": 100000.0, "used": 0.0, "total": 100000.0}

    buy = await client.create_order(
        BTC, "limit", "buy", 0.001, 59000, {"clientOrderId": 11, "postOnly": True}
    )
    assert (buy["clientOrderId"], buy["status"], buy["postOnly"]) == ("11", "open", True)
    sell = await client.create_order(BTC, "limit", "sell", 0.002, 61000, {"clientOrderId": 12})
    third = await client.create_order(BTC, "limit", "buy", 0.001, 58000, {"clientOrderId": 13})

    # a buy locks price * qty in USDC (its fee is taken in BTC, from what it buys); a sell
    # locks its BTC
    balances = server.balances(account.api_key)
    assert balances["USDC"].locked == Decimal("59") + Decimal("58")
    assert balances["BTC"].locked == Decimal("0.002")
    assert (await client.fetch_balance())["BTC"]["used"] == 0.002

    opened = await client.fetch_open_orders(BTC)
    assert [o["clientOrderId"] for o in opened] == ["11", "12", "13"]

    # query and cancel by clientId through ccxt's implicit API (Backpack takes either id)
    raw = await client.privateGetApiV1Order({"symbol": "BTC_USDC", "clientId": 12})
    assert client.parse_order(raw)["id"] == sell["id"]
    cancelled = await client.privateDeleteApiV1Order({"symbol": "BTC_USDC", "clientId": 12})
    assert cancelled["status"] == "Cancelled"
    with pytest.raises(ccxt.ExchangeNotAvailable, match="RESOURCE_NOT_FOUND"):
        await client.privateGetApiV1Order({"symbol": "BTC_USDC", "clientId": 12})

    assert (await client.cancel_order(buy["id"], BTC))["status"] == "canceled"
    assert [o["clientOrderId"] for o in await client.cancel_all_orders(BTC)] == ["13"]
    assert await client.fetch_open_orders(BTC) == []
    assert server.balances(account.api_key)["USDC"].locked == 0
    assert server.balances(account.api_key)["BTC"].locked == 0
    history = await client.fetch_orders(BTC)
    assert sorted(o["status"] for o in history) == ["canceled"] * 3
    assert third["id"] in {o["id"] for o in history}


async def test_batch_orders(server: BackpackServer, client: ccxt.Exchange) -> None:
    """``POST /api/v1/orders``: each order signed as its own instruction block."""
    await server.feed_trade("BTC_USDC", "60000", "0.01")
    orders = await client.create_orders(
        [
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.001, "price": 59000},
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 5, "price": 59000},
        ]
    )
    by_outcome = {o["info"]["operation"]: o for o in orders}  # ccxt sorts by timestamp
    assert by_outcome["Ok"]["status"] == "open"
    assert by_outcome["Err"]["info"] == {
        "operation": "Err",
        "code": "INSUFFICIENT_FUNDS",
        "message": "Insufficient funds",
    }
    assert len(server.open_orders()) == 1


async def test_order_refusals_map_to_ccxt_errors(
    server: BackpackServer, client: ccxt.Exchange
) -> None:
    await client.load_markets()
    await server.feed_trade("BTC_USDC", "60000", "0.01")
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order(BTC, "limit", "buy", 2, 59000)
    with pytest.raises(ccxt.InvalidOrder, match="immediately match"):
        await client.create_order(BTC, "limit", "buy", 0.001, 60000, {"postOnly": True})
    base = {"symbol": "BTC_USDC", "side": "Bid", "orderType": "Limit", "quantity": "0.001"}
    with pytest.raises(ccxt.BadRequest, match="Price decimal too long"):
        await client.privatePostApiV1Order({**base, "price": "59000.05"})
    with pytest.raises(ccxt.BadSymbol):
        await client.privatePostApiV1Order({**base, "price": "1", "symbol": "DOGE_USDC"})
    # a clientId beyond uint32 fails Backpack's payload parser: a plain-text 400,
    # which ccxt maps by status alone, to ExchangeNotAvailable
    with pytest.raises(ccxt.ExchangeNotAvailable, match="clientId"):
        await client.privatePostApiV1Order({**base, "price": "59000", "clientId": 2**32})
    # the price band: at most 25 % from the last trade (minMultiplier/maxMultiplier)
    with pytest.raises(ccxt.InvalidOrder, match="INVALID_PRICE"):
        await client.create_order(BTC, "limit", "buy", 0.001, 44999.9)
    with pytest.raises(ccxt.InvalidOrder, match="too far from the last active price"):
        await client.create_order(BTC, "limit", "sell", 0.001, 75000.1)
    assert server.orders() == []
    assert [r.outcome for r in server.requests_for("orderExecute")] == ["error"] * 7
    filters = (await client.publicGetApiV1Market({"symbol": "BTC_USDC"}))["filters"]["price"]
    assert (filters["minMultiplier"], filters["maxMultiplier"]) == ("0.75", "1.25")
    within = [
        await client.create_order(BTC, "limit", "buy", 0.001, 45000),
        await client.create_order(BTC, "limit", "buy", 0.001, 59000.1),
    ]
    assert [o["status"] for o in within] == ["open", "open"]


# -- matching ------------------------------------------------------------------------


async def test_fill_from_recorded_btc_trades(
    server: BackpackServer,
    account: Credentials,
    client: ccxt.Exchange,
    btc_ticks: list[TradeTick | QuoteTick],
) -> None:
    """Replayed BTCUSDT trades (as BTC_USDC) fill a passive buy at its limit on the first
    trade strictly below it; a marketable buy fills at the next trade's price."""
    server.load(btc_ticks, "BTC_USDC")
    first_trade = next(i for i, t in enumerate(btc_ticks) if isinstance(t, TradeTick))
    await server.replay(first_trade + 1)
    last = server.exchange.book("BTC_USDC").last_price
    assert last == btc_ticks[first_trade].price  # type: ignore[union-attr]
    limit = (last - 20).quantize(Decimal("0.1"))
    passive = await client.create_order(
        BTC, "limit", "buy", 0.01, float(limit), {"clientOrderId": 1}
    )
    taker = await client.create_order(BTC, "limit", "buy", 0.001, float(last + 100))

    rest = btc_ticks[first_trade + 1 :]
    next_trade = next(t for t in rest if isinstance(t, TradeTick))
    crossing = next(t for t in rest if isinstance(t, TradeTick) and t.price < limit)
    before = server.queued
    await server.replay(until_fill=True)
    fills = server.fills(account.api_key)
    assert [f.order_id for f in fills] == [taker["id"]]
    assert fills[0].price == next_trade.price and not fills[0].is_maker
    await server.replay(until_fill=True)
    fills = server.fills(account.api_key)
    assert [f.order_id for f in fills] == [taker["id"], passive["id"]]
    assert fills[1].price == limit and fills[1].is_maker
    assert before - server.queued == rest.index(crossing) + 1  # filled by that very trade

    mine = await client.fetch_my_trades(BTC)
    by_order = {t["order"]: t for t in mine}
    maker = by_order[passive["id"]]
    assert (maker["price"], maker["amount"], maker["takerOrMaker"]) == (float(limit), 0.01, "maker")
    # a buy's fee is taken in the asset bought (Backpack: feeSymbol BTC on a Bid fill)
    assert maker["fee"] == {"cost": float(Decimal("0.01") * 2 / 10000), "currency": "BTC"}
    assert by_order[taker["id"]]["takerOrMaker"] == "taker"
    assert len({t["id"] for t in mine}) == 2  # unique trade ids

    balances = server.balances(account.api_key)
    spent = sum(f.price * f.quantity for f in fills)
    assert balances["USDC"].total == Decimal(100000) - spent
    assert {f.fee_symbol for f in fills} == {"BTC"}
    assert balances["BTC"].total == Decimal("1.011") - sum(f.fee for f in fills)
    assert fills[0].fee == Decimal("0.001") * 5 / 10000  # taker
    assert balances["USDC"].locked == balances["BTC"].locked == 0
    status = {o["id"]: o["status"] for o in await client.fetch_orders(BTC)}
    assert status == {passive["id"]: "closed", taker["id"]: "closed"}


async def test_partial_fills_by_trade_size() -> None:
    async with BackpackServer(partial_fills=True) as server:
        creds = server.add_account({"USDC": "10000"})
        client = server.ccxt_client(creds, enableRateLimit=False)
        try:
            await server.feed_trade("BTC_USDC", "60000", "1")
            order = await client.create_order(
                BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": 5}
            )
            await server.feed_trade("BTC_USDC", "58000", "0.004")
            (opened,) = await client.fetch_open_orders(BTC)
            assert (opened["filled"], opened["info"]["status"]) == (0.004, "PartiallyFilled")
            await server.fill_order(order["id"], "0.001")  # the test hook: maker, at the limit
            await server.feed_trade("BTC_USDC", "58000", "1")
            assert await client.fetch_open_orders(BTC) == []
            fills = await client.fetch_my_trades(BTC)
            assert sorted(t["amount"] for t in fills) == [0.001, 0.004, 0.005]
            assert {t["order"] for t in fills} == {order["id"]}
            assert server.balances(creds.api_key)["USDC"].locked == 0
        finally:
            await client.close()


# -- authentication --------------------------------------------------------------------


async def test_bad_signature_is_refused(server: BackpackServer, account: Credentials) -> None:
    other = generate_credentials()
    forged = server.ccxt_client(
        Credentials(api_key=account.api_key, secret=other.secret), enableRateLimit=False
    )
    try:
        await forged.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="Invalid signature"):
            await forged.create_order(BTC, "limit", "buy", 0.001, 50000)
    finally:
        await forged.close()
    assert server.orders() == []
    assert server.requests[-1].status == 401 and server.requests[-1].outcome == "auth"


async def test_stale_timestamp_is_refused(server: BackpackServer, account: Credentials) -> None:
    client = server.ccxt_client(account, enableRateLimit=False)
    try:
        client.options["timeDifference"] = 6000  # X-Timestamp 6 s old, window 5 s
        with pytest.raises(ccxt.AuthenticationError, match="Request has expired"):
            await client.fetch_balance()
        client.options["recvWindow"] = "10000"  # a wider window accepts it
        assert (await client.fetch_balance())["USDC"]["total"] == 100000.0
        client.options["timeDifference"] = -11000  # from the future
        with pytest.raises(ccxt.AuthenticationError):
            await client.fetch_balance()
    finally:
        await client.close()


async def test_json_auth_errors_reach_ccxt_as_bad_request() -> None:
    """With Backpack's documented JSON form (INVALID_CLIENT_REQUEST), ccxt raises
    BadRequest, not AuthenticationError: a caller must handle both."""
    async with BackpackServer(auth_errors="json") as server:
        creds = server.add_account()
        client = server.ccxt_client(creds, enableRateLimit=False)
        try:
            client.options["timeDifference"] = 6000
            with pytest.raises(ccxt.BadRequest, match="Request has expired"):
                await client.fetch_balance()
        finally:
            await client.close()


# -- REST faults ---------------------------------------------------------------------------


async def test_429_then_recovers(server: BackpackServer, client: ccxt.Exchange) -> None:
    await client.load_markets()
    server.rate_limit_next(2)
    for _ in range(2):
        with pytest.raises(ccxt.RateLimitExceeded):
            await client.fetch_balance()
    assert (await client.fetch_balance())["USDC"]["total"] == 100000.0
    assert [r.status for r in server.requests_for("balanceQuery")] == [429, 429, 200]


async def test_injected_insufficient_funds(server: BackpackServer, client: ccxt.Exchange) -> None:
    await client.load_markets()
    server.insufficient_funds_next()
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order(BTC, "limit", "buy", 0.001, 50000, {"clientOrderId": 3})
    assert server.orders() == []
    await client.create_order(BTC, "limit", "buy", 0.001, 50000, {"clientOrderId": 3})
    assert len(server.orders()) == 1


async def test_executed_but_timed_out_leaves_exactly_one_order(
    server: BackpackServer, account: Credentials
) -> None:
    client = server.ccxt_client(account, enableRateLimit=False, timeout=300)
    try:
        await client.load_markets()
        server.stall_next("orderExecute")  # executes, never answers
        with pytest.raises(ccxt.RequestTimeout):
            await client.create_order(BTC, "limit", "buy", 0.001, 50000, {"clientOrderId": 4242})
        (order,) = server.orders()
        assert order.client_id == 4242 and order.status == "New"
        found = client.parse_order(
            await client.privateGetApiV1Order({"symbol": "BTC_USDC", "clientId": 4242})
        )
        assert (found["id"], found["clientOrderId"], found["status"]) == (order.id, "4242", "open")
        assert [r.outcome for r in server.requests_for("orderExecute")] == ["stalled"]
        # an answer delayed past the timeout: the order is also made
        server.stall_next("orderExecute", seconds=0.6)
        with pytest.raises(ccxt.RequestTimeout):
            await client.create_order(BTC, "limit", "buy", 0.001, 50000, {"clientOrderId": 4243})
        assert [o.client_id for o in server.open_orders()] == [4242, 4243]
    finally:
        await client.close()


# -- WebSocket -------------------------------------------------------------------------------


async def test_ws_book_ticker_and_trades_via_ccxt_pro(
    server: BackpackServer, account: Credentials
) -> None:
    ex = await _pro(server, account)
    try:
        quotes = asyncio.create_task(ex.watch_bids_asks([BTC]))
        await server.wait_subscribed("bookTicker.BTC_USDC")
        await server.feed_quote("BTC_USDC", "61000.1", "0.5", "61000.2", "0.7")
        ticker = (await asyncio.wait_for(quotes, 2))[BTC]
        assert (ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]) == (
            61000.1,
            0.5,
            61000.2,
            0.7,
        )
        trades = asyncio.create_task(ex.watch_trades(BTC))
        await server.wait_subscribed("trade.BTC_USDC")
        await server.feed_trade("BTC_USDC", "61000.2", "0.01", buyer_maker=True)
        (trade,) = await asyncio.wait_for(trades, 2)
        assert (trade["price"], trade["amount"], trade["side"]) == (61000.2, 0.01, "sell")
    finally:
        await ex.close()
    (book,) = _frames(server, "bookTicker.BTC_USDC")
    (tape,) = _frames(server, "trade.BTC_USDC")
    now_us = time.time_ns() // 1000
    for frame in (book, tape):
        assert isinstance(frame["E"], int) and isinstance(frame["T"], int)
        assert now_us - 10_000_000 < frame["E"] <= now_us  # microseconds
    assert set(book) == {"e", "E", "s", "a", "A", "b", "B", "u", "T"}
    assert set(tape) == {"e", "E", "s", "p", "q", "b", "a", "t", "T", "m"}
    assert (tape["e"], tape["p"], tape["m"]) == ("trade", "61000.2", True)


async def test_ws_signed_order_updates_via_ccxt_pro(
    server: BackpackServer, account: Credentials
) -> None:
    ex = await _pro(server, account)
    try:
        await server.feed_trade("BTC_USDC", "60000", "0.01")
        updates = asyncio.create_task(ex.watch_orders(BTC))
        await server.wait_subscribed("account.orderUpdate.BTC_USDC", account.api_key)
        placed = await ex.create_order(BTC, "limit", "buy", 0.001, 59000, {"clientOrderId": 77})
        (accepted,) = await asyncio.wait_for(updates, 2)
        assert (accepted["id"], accepted["status"], accepted["clientOrderId"]) == (
            placed["id"],
            "open",
            "77",
        )
        updates = asyncio.create_task(ex.watch_orders(BTC))
        await asyncio.sleep(0)
        await server.feed_trade("BTC_USDC", "58999.9", "0.01")
        (filled,) = await asyncio.wait_for(updates, 2)
        assert (filled["status"], filled["price"], filled["filled"]) == ("closed", 59000.0, 0.001)
    finally:
        await ex.close()
    subscribe = server.ws.received[-1]
    assert subscribe["params"] == ["account.orderUpdate.BTC_USDC"]
    assert subscribe["signature"][0] == account.api_key
    events = _frames(server, "account.orderUpdate.BTC_USDC")
    assert [e["e"] for e in events] == ["orderAccepted", "orderFill"]
    assert "t" in events[0] and events[0]["t"] is None  # no trade behind an acceptance
    fill = events[1]
    (record,) = server.fills(account.api_key)
    assert (fill["X"], fill["l"], fill["L"], fill["z"], fill["Z"]) == (
        "Filled",
        "0.001",
        "59000",
        "0.001",
        "59",
    )
    assert (fill["m"], fill["n"], fill["N"], fill["t"], fill["c"]) == (
        True,
        "0.0000002",  # 2 bps of 0.001 BTC, in BTC
        "BTC",
        record.trade_id,
        77,
    )


def _subscription(creds: Credentials, streams: list[str], skew_ms: int = 0) -> str:
    ts = str(int(time.time() * 1000) - skew_ms)
    signature = sign(creds.secret, f"instruction=subscribe&timestamp={ts}&window=5000")
    return json.dumps(
        {
            "method": "SUBSCRIBE",
            "params": streams,
            "signature": [creds.api_key, signature, ts, "5000"],
        }
    )


async def _next(ws: ClientConnection, timeout: float = 2.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_ws_protocol_errors_and_pings(server: BackpackServer, account: Credentials) -> None:
    async with connect(server.ws_url) as ws:
        pong = await ws.ping()
        await asyncio.wait_for(pong, 1)  # the server answers pings
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["depth.BTC_USDC"], "id": 3}))
        assert await _next(ws) == {"id": 3, "error": {"code": 4006, "message": "Invalid stream"}}
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["account.orderUpdate"]}))
        assert (await _next(ws))["error"]["message"] == "Missing signature"
        forged = Credentials(account.api_key, generate_credentials().secret)
        await ws.send(_subscription(forged, ["account.orderUpdate"]))
        assert (await _next(ws))["error"]["message"] == "Invalid signature"
        await ws.send(_subscription(account, ["account.orderUpdate"], skew_ms=6000))
        assert (await _next(ws))["error"]["message"] == "Request has expired"
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["trade.BTC_USDC"]}))
        await server.wait_subscribed("trade.BTC_USDC")
        await server.feed_trade("BTC_USDC", "60000", "0.5")
        msg = await _next(ws)
        assert msg["stream"] == "trade.BTC_USDC" and msg["data"]["p"] == "60000"
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["trade.BTC_USDC"]}))
        await asyncio.sleep(0.05)
        await server.feed_trade("BTC_USDC", "60001", "0.5")
        with pytest.raises(TimeoutError):
            await _next(ws, timeout=0.1)


async def test_ws_drop_and_resend_faults(server: BackpackServer) -> None:
    ws = await connect(server.ws_url)
    await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["trade.BTC_USDC"]}))
    await server.wait_subscribed("trade.BTC_USDC")
    await server.feed_trade("BTC_USDC", "60000", "0.5")
    await server.feed_trade("BTC_USDC", "60001", "0.5")
    first = [await _next(ws), await _next(ws)]
    assert await server.resend_ws_frames(1) == 1
    assert await _next(ws) == first[1]  # the same frame again
    assert server.drop_ws() == 1
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 2)
    assert closed.value.rcvd is None  # no close frame: 1006 for the client
    server.ws.resend_on_subscribe = 1
    async with connect(server.ws_url) as again:
        await again.send(json.dumps({"method": "SUBSCRIBE", "params": ["trade.BTC_USDC"]}))
        assert await _next(again) == first[1]  # resent on resubscription
    assert server.ws.accepted == 2 and server.ws.drops == 1


async def test_ws_dropped_mid_fill_loses_nothing_on_rest(
    server: BackpackServer, account: Credentials, client: ccxt.Exchange
) -> None:
    """The stream drops before the fill event: the fill is made and only REST tells it."""
    await server.feed_trade("BTC_USDC", "60000", "0.01")
    async with connect(server.ws_url) as ws:
        await ws.send(_subscription(account, ["account.orderUpdate"]))
        await server.wait_subscribed("account.orderUpdate", account.api_key)
        order = await client.create_order(BTC, "limit", "buy", 0.001, 59000, {"clientOrderId": 9})
        assert (await _next(ws))["data"]["e"] == "orderAccepted"
        server.drop_ws_on_next_fill("before")
        await server.feed_trade("BTC_USDC", "58000", "0.01")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)
    assert not any(f["e"] == "orderFill" for f in _frames(server, "account.orderUpdate"))
    (mine,) = await client.fetch_my_trades(BTC)
    assert (mine["order"], mine["price"], mine["amount"]) == (order["id"], 59000.0, 0.001)


async def test_market_ioc_and_quote_quantity_orders(
    server: BackpackServer, account: Credentials, client: ccxt.Exchange
) -> None:
    """A market or IOC order takes at once, and the answer to the order request says
    ``Filled`` with the executed quantity (issue 18, item 3): at the last trade price before
    any quote, at the touch after one; an IOC that cannot take expires at once; a market
    buy by cost sends ``quoteQuantity``."""
    await server.feed_trade("BTC_USDC", "60000", "0.01")
    market = await client.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": 1})
    assert (market["status"], market["info"]["status"]) == ("closed", "Filled")
    assert market["info"]["executedQuantity"] == "0.001"
    ioc = await client.create_order(BTC, "limit", "buy", 0.001, 50000, {"timeInForce": "IOC"})
    assert (ioc["status"], ioc["info"]["status"]) == ("canceled", "Expired")
    await server.feed_quote("BTC_USDC", "60090", "0.5", "60100", "0.5")
    taking = await client.create_order(BTC, "limit", "buy", 0.001, 60200, {"timeInForce": "IOC"})
    assert (taking["info"]["status"], taking["info"]["executedQuantity"]) == ("Filled", "0.001")
    # (ccxt's create_market_buy_order_with_cost needs an option backpack lacks: use ``cost``)
    by_cost = await client.create_order(BTC, "market", "buy", None, None, {"cost": 100})
    assert by_cost["info"]["quoteQuantity"] == "100"
    assert by_cost["info"]["status"] == "Filled"
    fills = {f.order_id: f for f in server.fills(account.api_key)}
    assert fills[market["id"]].price == Decimal("60000") and not fills[market["id"]].is_maker
    assert fills[taking["id"]].price == Decimal("60100")  # the ask
    assert fills[by_cost["id"]].quantity == Decimal("0.00166")  # floor(100 / 60100, step)
    assert server.open_orders() == []
    assert server.balances(account.api_key)["USDC"].locked == 0
    trade_ids = [f.trade_id for f in server.fills()]
    assert len(set(trade_ids)) == 3 and all(i >= 10_000_000 for i in trade_ids)


async def test_every_self_trade_prevention_value_of_the_api_is_accepted(
    server: BackpackServer, client: ccxt.Exchange
) -> None:
    """Backpack's ``selfTradePrevention`` takes ``RejectTaker`` (the default),
    ``RejectMaker``, ``RejectBoth`` and ``Allow``; each is kept on the order (issue 18,
    item 6: ``Allow`` was refused)."""
    await client.load_markets()
    await server.feed_trade("BTC_USDC", "60000", "0.01")
    base = {"symbol": "BTC_USDC", "side": "Bid", "orderType": "Limit", "quantity": "0.001"}
    for i, mode in enumerate(("RejectTaker", "RejectMaker", "RejectBoth", "Allow")):
        answer = await client.privatePostApiV1Order(
            {**base, "price": str(59000 - i), "selfTradePrevention": mode}
        )
        assert answer["selfTradePrevention"] == mode, answer
    with pytest.raises(ccxt.ExchangeNotAvailable, match="selfTradePrevention"):
        await client.privatePostApiV1Order({**base, "price": "58000", "selfTradePrevention": "No"})
    assert len(server.orders()) == 4


async def test_depth_shows_every_level_of_the_book(
    server: BackpackServer, client: ccxt.Exchange
) -> None:
    """``GET /api/v1/depth`` lists every resting level (issue 18, item 6: it had one); a
    plain quote afterwards is one level a side again."""
    await client.load_markets()
    await server.feed_depth(
        "BTC_USDC",
        bids=[("59990", "0.5"), ("59980", "1"), ("59970", "2")],
        asks=[("60010", "0.4"), ("60030", "1.5"), ("60020", "0.8")],
    )
    book = await client.fetch_order_book(BTC)
    assert book["bids"] == [[59990.0, 0.5], [59980.0, 1.0], [59970.0, 2.0]]  # best first
    assert book["asks"] == [[60010.0, 0.4], [60020.0, 0.8], [60030.0, 1.5]]
    raw = await client.publicGetApiV1Depth({"symbol": "BTC_USDC"})
    assert [level[0] for level in raw["bids"]] == ["59970", "59980", "59990"]  # ascending
    await server.feed_quote("BTC_USDC", "59995", "1", "60005", "1")
    book = await client.fetch_order_book(BTC)
    assert (book["bids"], book["asks"]) == ([[59995.0, 1.0]], [[60005.0, 1.0]])
