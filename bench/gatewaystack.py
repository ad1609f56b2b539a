"""The stack the gateway and web benchmarks run on, started one way for both.

:func:`gateway_stack` starts nats-server and PostgreSQL on free ports under a
temporary folder (:class:`tradebus.cli.stack.LocalStack`, as ``make demo``
does), applies the migrations, seeds it through the caller's ``seed``
coroutine, and runs the real gateway process on a free port (serving the web
page when ``web_dir`` is given). Also the small helpers both print rows with.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import nats

from tradebus.cli.localstack import free_port
from tradebus.cli.stack import LocalStack

S = TypeVar("S")


def say(line: str) -> None:
    """A progress line on stderr (the rows go to stdout)."""
    print(line, file=sys.stderr, flush=True)


def row(name: str, value: object, unit: str, detail: str) -> dict[str, Any]:
    """One result row of ``make bench``'s table."""
    return {"row": name, "value": value, "unit": unit, "detail": detail}


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (nearest rank); NaN when empty."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The rows, one line each (a module run on its own, ``python -m bench.<module>``)."""
    for r in rows:
        print(f"{r['row']:<52} {r['value']!s:>10} {r['unit']:<9} {r['detail']}")


@dataclass
class GatewayStack(Generic[S]):
    """A running stack: its servers and services, a NATS connection, the gateway's URL and
    what ``seed`` returned."""

    stack: LocalStack
    nc: nats.NATS
    base: str
    seeded: S


@asynccontextmanager
async def gateway_stack(
    prefix: str,
    seed: Callable[[str, nats.NATS], Awaitable[S]],
    web_dir: Path | None = None,
) -> AsyncIterator[GatewayStack[S]]:
    """Servers, migrations, ``seed(database_url, nc)``, then the gateway (module docstring);
    everything stops on exit.

    Raises
    ------
    tradebus.cli.stack.StackError
        If a server or the gateway does not start.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        stack = LocalStack(root, say=say)
        nc = None
        try:
            await stack.start_servers()
            await stack.connect(count_ticks=False)
            await stack.migrate()
            nc = await nats.connect(stack.nats_url)
            seeded = await seed(stack.database_url, nc)
            secret = root / "jwt-secret"
            secret.write_text(secrets.token_urlsafe(48))
            secret.chmod(0o600)
            port = free_port()
            env = {
                "TRADEBUS_DATABASE_URL": stack.database_url,
                "TRADEBUS_HTTP_PORT": str(port),
                "TRADEBUS_JWT_SECRET_FILE": str(secret),
                "TRADEBUS_LOG_LEVEL": "warning",
            }
            if web_dir is not None:
                env["TRADEBUS_WEB_DIR"] = str(web_dir)
            stack.start_service("gateway", env)
            await stack.wait_ready("gateway")
            yield GatewayStack(stack, nc, f"http://127.0.0.1:{port}", seeded)
        finally:
            if nc is not None:
                await nc.close()
            await stack.close()
