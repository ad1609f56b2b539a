"""Each service's ``/metrics`` (user, account and P&L labels) listens on loopback by default.

Every service runs its real ``run(settings, stop)`` on the test's NATS and
PostgreSQL with the default ``metrics_host``: its metrics socket accepts on
127.0.0.1, listens on 127.0.0.1 only (the kernel's view of the socket,
:mod:`psutil`), and refuses connections on every non-loopback IPv4 address
of this machine. With ``TRADEBUS_METRICS_HOST=0.0.0.0`` (what compose sets)
it listens on every interface, so each service does pass the setting on.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.services import service
from tradebus.cli.localstack import free_port
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.reconciler.bootstrap import run as run_reconciler
from tradebus.reconciler.settings import ReconcilerSettings
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "1000"}}
"""


def non_loopback_ipv4() -> list[str]:
    """This machine's IPv4 addresses outside 127.0.0.0/8."""
    return sorted(
        {
            a.address
            for addrs in psutil.net_if_addrs().values()
            for a in addrs
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback
        }
    )


def accepts(host: str, port: int) -> bool:
    """True if a TCP connection to ``host:port`` is accepted now."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def listening_on(port: int) -> set[str]:
    """The local addresses this process listens on at TCP ``port``."""
    return {
        c.laddr.ip
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def settings_of(
    name: str, port: int, nats_url: str, database_url: str, tmp_path: Path, **extra: Any
) -> tuple[Callable[..., Any], Any]:
    """``(run, settings)`` of service ``name``: defaults but for servers and ports."""
    closed = free_port()  # nothing listens there: the live feed just keeps reconnecting
    if name == "marketdata":
        return run_marketdata, MarketdataSettings(
            nats_url=nats_url,
            symbols=["BTCUSDT"],
            binance_ws_url=f"ws://127.0.0.1:{closed}/stream",
            binance_rest_url=f"http://127.0.0.1:{closed}",
            metrics_port=port,
            **extra,
        )
    if name == "strategy":
        return run_strategy, StrategySettings(nats_url=nats_url, metrics_port=port, **extra)
    if name == "execution":
        accounts = tmp_path / "accounts.yaml"
        accounts.write_text(ACCOUNTS)
        return run_execution, ExecutionSettings(
            nats_url=nats_url,
            database_url=database_url,
            accounts_file=str(accounts),
            metrics_port=port,
            **extra,
        )
    return run_reconciler, ReconcilerSettings(
        nats_url=nats_url, database_url=database_url, metrics_port=port, **extra
    )


SERVICES = ("marketdata", "strategy", "execution", "reconciler")


@pytest.mark.parametrize("name", SERVICES)
async def test_metrics_listen_on_loopback_only_by_default(
    name: str, nats_url: str, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    run, settings = settings_of(name, port, nats_url, database_url, tmp_path)
    assert settings.metrics_host == "127.0.0.1"

    async def up() -> bool:
        return accepts("127.0.0.1", port)

    async with service(run, settings, up):
        assert listening_on(port) == {"127.0.0.1"}, listening_on(port)
        reachable = [a for a in non_loopback_ipv4() if accepts(a, port)]
        assert not reachable, f"{name}: /metrics is reachable on {reachable}"


@pytest.mark.parametrize("name", SERVICES)
async def test_metrics_host_setting_is_honoured(
    name: str, nats_url: str, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    run, settings = settings_of(
        name, port, nats_url, database_url, tmp_path, metrics_host="0.0.0.0"
    )

    async def up() -> bool:
        return accepts("127.0.0.1", port)

    async with service(run, settings, up):
        assert listening_on(port) == {"0.0.0.0"}, listening_on(port)
        for address in non_loopback_ipv4():
            assert accepts(address, port), f"{name}: not reachable on {address}"
