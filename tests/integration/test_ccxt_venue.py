"""CcxtVenue against the local Backpack server through the real ccxt client.

Sizes and minimums, uint32 client ids, lookups by client id (open and done),
cancels, balances as Decimals, and the error taxonomy at the boundary:
INSUFFICIENT_FUNDS is a rejection with a reason, a 429 is retried after a
back-off under the account's budget, a request executed but never answered
is an unknown outcome that the client id resolves to exactly one order, a
bad signature is a configuration error, and an expired request is sent again
after the clock offset is measured again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from tests.support.backpack.auth import Credentials, generate_credentials
from tests.support.backpack.server import BackpackServer
from tradebus.common.ids import AccountId, IntentId
from tradebus.engine.venue import VenueOrder, VenueRejected, VenueUnavailable
from tradebus.execution import ccxt_venue
from tradebus.execution.ccxt_venue import CcxtVenue
from tradebus.execution.metrics import VenueClockCollector
from tradebus.execution.retry import Backoff, RateBudget


@pytest.fixture
async def server() -> AsyncIterator[BackpackServer]:
    async with BackpackServer() as s:
        yield s


@pytest.fixture
def account(server: BackpackServer) -> Credentials:
    return server.add_account({"USDC": "10000"})


async def open_venue(
    server: BackpackServer, credentials: Credentials, timeout_ms: int = 3000
) -> CcxtVenue:
    client = server.ccxt_client(credentials, enableRateLimit=False, timeout=timeout_ms)
    venue = CcxtVenue(
        client,
        AccountId("bob-backpack"),
        RateBudget(rate=50, burst=10),
        Backoff(base=0.05, cap=0.2),
    )
    await venue.start()
    return venue


def order(cid: int, qty: str, price: str | None, side: str = "buy") -> VenueOrder:
    return VenueOrder(
        client_order_id=str(cid),
        intent_id=IntentId(f"bob:1.1:b{cid}"),
        symbol="BTC_USDC",
        side=side,  # type: ignore[arg-type]
        order_type="limit" if price else "market",
        price=Decimal(price) if price else None,
        qty=Decimal(qty),
        trigger_ts=None,
    )


async def test_place_find_cancel_and_balances(server: BackpackServer, account: Credentials) -> None:
    venue = await open_venue(server, account)
    try:
        # rounded to the market's step (down) and tick (down for a buy) before sending
        qty, price = venue.sized(order(7, "0.0123456789", "60000.123456"))
        market = venue.market("BTC_USDC")
        assert price is not None
        assert qty <= Decimal("0.0123456789") and price <= Decimal("60000.123456")
        assert qty % Decimal(str(market["precision"]["amount"])) == 0
        ack = await venue.place(order(7, "0.0123456789", "60000.123456"))
        placed = server.order(client_id=7)
        assert placed is not None and str(placed.id) == ack.venue_order_id
        assert await venue.find_order("7", "BTC_USDC") == ack.venue_order_id
        assert await venue.find_order("8", "BTC_USDC") is None
        balances = {b.asset: b for b in await venue.balances()}
        assert balances["USDC"].total == Decimal(10000)
        assert balances["USDC"].locked > 0 and isinstance(balances["USDC"].free, Decimal)
        assert await venue.cancel("7", "BTC_USDC") is True
        assert await venue.cancel("7", "BTC_USDC") is False  # not open any more
        assert await venue.find_order("7", "BTC_USDC") == ack.venue_order_id  # from history
    finally:
        await venue.close()


async def test_refusals_carry_reasons(server: BackpackServer, account: Credentials) -> None:
    venue = await open_venue(server, account)
    try:
        with pytest.raises(VenueRejected) as small:
            await venue.place(order(1, "0.0000000001", "60000"))
        assert small.value.reason == "below_minimum"
        with pytest.raises(VenueRejected) as symbol:
            await venue.place(
                VenueOrder(
                    client_order_id="2",
                    intent_id=IntentId("x"),
                    symbol="NOPE_USDC",
                    side="buy",
                    order_type="limit",
                    price=Decimal(1),
                    qty=Decimal(1),
                    trigger_ts=None,
                )
            )
        assert symbol.value.reason == "unknown_symbol"
        server.insufficient_funds_next()
        with pytest.raises(VenueRejected) as funds:
            await venue.place(order(3, "0.01", "60000"))
        assert funds.value.reason == "insufficient_balance"
        assert server.order(client_id=3) is None
    finally:
        await venue.close()


async def test_a_429_is_retried_and_the_order_placed_once(
    server: BackpackServer, account: Credentials
) -> None:
    venue = await open_venue(server, account)
    try:
        server.rate_limit_next(2, match="orderExecute")
        await venue.place(order(11, "0.01", "60000"))
        assert [o.client_id for o in server.orders()] == [11]
        # two refused with 429, then the third attempt, after the account's back-off
        assert len(server.requests_for("orderExecute")) == 3
    finally:
        await venue.close()


async def test_an_unanswered_place_is_an_unknown_outcome_resolved_by_client_id(
    server: BackpackServer, account: Credentials
) -> None:
    venue = await open_venue(server, account, timeout_ms=500)
    try:
        server.stall_next("orderExecute")  # executes the order, never answers
        with pytest.raises(VenueUnavailable) as unknown:
            await venue.place(order(21, "0.01", "60000"))
        assert unknown.value.error.kind == "unknown_outcome"
        # no blind retry: exactly one order exists, and its client id finds it
        assert [o.client_id for o in server.orders()] == [21]
        assert await venue.find_order("21", "BTC_USDC") == str(server.orders()[0].id)
    finally:
        await venue.close()


async def test_a_bad_key_is_a_configuration_error(server: BackpackServer) -> None:
    stranger = generate_credentials()  # a key pair the server does not know
    venue = await open_venue(server, stranger)
    try:
        with pytest.raises(VenueUnavailable) as bad:
            await venue.balances()
        assert bad.value.error.kind == "configuration"
    finally:
        await venue.close()


async def test_a_done_order_deep_in_the_history_is_found(
    server: BackpackServer, account: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order canceled long ago, behind more orders than one history page, is found
    again by its client id (or it would be placed a second time)."""
    monkeypatch.setattr(ccxt_venue, "HISTORY_PAGE", 20)
    venue = await open_venue(server, account)
    try:
        since = time.time_ns()
        await venue.place(order(30, "0.001", "50000"))
        assert await venue.cancel("30", "BTC_USDC")
        for cid in range(100, 160):  # 60 newer orders: three pages of 20
            await venue.place(order(cid, "0.001", "50000"))
        found = await venue.find_order("30", "BTC_USDC", since)
        assert found == str(server.order(client_id=30).id)  # type: ignore[union-attr]
        assert await venue.find_order("31", "BTC_USDC", since) is None
        pages = [r.query.get("offset", "0") for r in server.requests_for("orderHistoryQueryAll")]
        assert {"0", "20", "40", "60"} <= set(pages)
    finally:
        await venue.close()


async def test_an_answer_ccxt_cannot_parse_is_the_venue_unavailable_not_a_crash() -> None:
    """Something else answering on the venue's address (here: a 200 with markets lacking
    every field, as any HTTP server might send) makes ccxt's parser raise a TypeError;
    the venue is then unavailable (retried, its account held), never an exception that
    would stop execution."""
    from aiohttp import web

    async def anything(_: web.Request) -> web.Response:  # every path: assets, markets...
        return web.json_response([{"symbol": "X"}])

    app = web.Application()
    app.router.add_get("/{path:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    import ccxt.async_support as ccxt_async

    client = ccxt_async.backpack({"enableRateLimit": False, "timeout": 2000})
    client.urls["api"] = {
        "public": f"http://127.0.0.1:{port}",
        "private": f"http://127.0.0.1:{port}",
    }
    venue = CcxtVenue(
        client, AccountId("bob-backpack"), RateBudget(rate=50, burst=10), Backoff(0.01, 0.02)
    )
    try:
        with pytest.raises(VenueUnavailable) as raised:
            await venue.start()
        assert "unexpected answer" in str(raised.value.error.message)
    finally:
        await client.close()
        await runner.cleanup()


@pytest.mark.parametrize("auth_errors", ["text", "json"])
async def test_an_expired_request_is_retried_after_the_clock_is_synced_and_halts_nothing(
    auth_errors: str,
) -> None:
    """Backpack refuses a request signed outside its window with ``401 Request has
    expired`` (plain text; ``INVALID_CLIENT_REQUEST`` in its JSON form). That is our
    clock, not our key: the venue re-syncs its offset (ccxt ``load_time_difference``) and
    the request goes through, once, and the account is not halted (issue 18, item 4)."""
    async with BackpackServer(auth_errors=auth_errors) as server:
        credentials = server.add_account({"USDC": "10000"})
        venue = await open_venue(server, credentials)
        try:
            # our clock drifted 20 s behind the venue's (its window is 5 s)
            venue.exchange.options["timeDifference"] = 20_000
            ack = await venue.place(order(31, "0.01", "60000"))
            assert [o.client_id for o in server.orders()] == [31]
            assert str(server.orders()[0].id) == ack.venue_order_id
            refused = [r for r in server.requests_for("orderExecute") if r.outcome == "auth"]
            assert len(refused) == 1, "the expired request was sent again unchanged"
            assert abs(venue.exchange.options["timeDifference"]) < 2_000  # synced
            # reads recover the same way
            venue.exchange.options["timeDifference"] = 30_000
            assert {b.asset for b in await venue.balances()} >= {"USDC"}
            assert abs(venue.exchange.options["timeDifference"]) < 2_000
        finally:
            await venue.close()


async def test_the_clock_offset_is_measured_at_start_and_exported_for_the_drift_alert() -> None:
    """A venue whose clock runs 3 s ahead of ours: execution measures the offset when the
    account starts (signed requests are stamped in the venue's time from the first), and
    ``tradebus_execution_venue_clock_offset_seconds`` shows it for the alert
    ``TradebusVenueClockDrift`` (issue 18, item 4)."""
    ahead_us = 3_000_000
    async with BackpackServer(clock_us=lambda: time.time_ns() // 1000 + ahead_us) as server:
        credentials = server.add_account({"USDC": "10000"})
        venue = await open_venue(server, credentials)
        try:
            registry = CollectorRegistry()
            registry.register(VenueClockCollector({AccountId("bob-backpack"): venue}))
            metric = "tradebus_execution_venue_clock_offset_seconds"
            labels = {"account": "bob-backpack", "venue": "backpack"}
            offset = registry.get_sample_value(metric, labels)
            assert offset is not None and abs(offset + 3.0) < 0.5, offset
            assert venue.exchange.options["timeDifference"] == venue.clock_offset_ms
        finally:
            await venue.close()
