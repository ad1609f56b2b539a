"""``tradebus_gateway_*`` metrics (docs/metrics.md) and the middleware that counts requests.

:class:`RequestMetrics` labels a request by its route *template*
(``/api/v1/bots/{bot_id}``), never by the path itself: ids would make a
label value per bot or user (unbounded series, and names of people in the
metrics). A request no route matches (404) never reaches a route's middleware
and is not counted.
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tradebus.common.metrics import LATENCY_BUCKETS

UNMATCHED = "unmatched"
"""The ``route`` label should a request reach the middleware without a route template."""


class GatewayMetrics:
    """The gateway's metrics in ``registry``.

    Attributes
    ----------
    ready
        1 while the HTTP server accepts requests.
    requests
        Answered requests by route (its path template, never the ids in it),
        method and status class (``2xx``, ``4xx``, ``5xx``).
    request_seconds
        Time to answer, by route and method.
    sign_ins
        Sign-in attempts by result (``ok``, ``refused``, ``throttled``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ready = Gauge(
            "tradebus_gateway_ready", "1 while the gateway serves requests", registry=registry
        )
        self.requests = Counter(
            "tradebus_gateway_requests",
            "HTTP requests answered, by route template, method and status class",
            ["route", "method", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "tradebus_gateway_request_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.sign_ins = Counter(
            "tradebus_gateway_sign_ins",
            "Sign-in attempts by result (ok, refused, throttled)",
            ["result"],
            registry=registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request: ``route`` its template, ``status`` the HTTP status,
        ``seconds`` from its arrival to the start of the answer's last body part."""
        self.requests.labels(route, method, f"{status // 100}xx").inc()
        self.request_seconds.labels(route, method).observe(seconds)


class RequestMetrics(ASGIMiddleware):
    """Counts and times every HTTP request in :class:`GatewayMetrics` (module docstring)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Pass the request on, noting the status its answer starts with."""
        started = time.perf_counter()
        status = 500  # an exception that escaped every handler

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, noting)
        finally:
            route = scope.get("path_template") or UNMATCHED
            method = str(scope.get("method", "GET"))
            self._metrics.observe(route, method, status, time.perf_counter() - started)


def request_metrics(metrics: GatewayMetrics | None) -> list[RequestMetrics]:
    """The app's request-metrics middleware (none when ``metrics`` is None)."""
    return [] if metrics is None else [RequestMetrics(metrics)]
