"""Prometheus metrics endpoint helper.

Each service builds its metrics on an injected
:class:`prometheus_client.CollectorRegistry` (no globals) and serves it with
:func:`serve_metrics`. Names follow ``tradebus_<service>_<thing>_<unit>``.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.process_collector import ProcessCollector

from tradebus.common.config import DEFAULT_METRICS_HOST

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Histogram buckets (seconds) for every tradebus latency: 100 µs to a minute (backlogs)."""


def new_registry() -> CollectorRegistry:
    """A fresh registry with the process collector (CPU, RSS, open fds)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


class MetricsServer:
    """A running ``/metrics`` HTTP endpoint; ``port`` is the bound port."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = server.server_port

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(
    registry: CollectorRegistry, port: int, addr: str = DEFAULT_METRICS_HOST
) -> MetricsServer:
    """Serve ``registry`` at ``http://addr:port/metrics`` from a daemon thread.

    ``port=0`` binds a free port (read it from the result). ``addr`` is the
    address to listen on: loopback by default (the metrics name users and
    their P&L); ``0.0.0.0`` only where the network is private (compose).

    Raises
    ------
    OSError
        If the port cannot be bound.
    """
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)
