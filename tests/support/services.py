"""Run a service's real ``run(settings, stop)`` inside the test's event loop.

The service talks to the real NATS and PostgreSQL of the fixtures; only the
process boundary is skipped, so tests can start and stop it cheaply.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client as NATS

from tradebus.common.runtime import Stopped

if TYPE_CHECKING:
    from tradebus.notifier.settings import NotifierSettings


async def eventually(
    check: Callable[[], object],
    timeout: float = 10.0,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` (sync or async) until its result is true (a non-empty list too); fail
    the test after ``timeout``.

    ``detail()`` is called only on failure, so the message shows the state then.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            extra = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        await asyncio.sleep(0.02)


async def consumer_exists(nc: NATS, stream: str, name: str) -> bool:
    """True once the durable consumer ``name`` exists on ``stream``."""
    try:
        await nc.jetstream().consumer_info(stream, name)
        return True
    except Exception:
        return False


@asynccontextmanager
async def service(
    run: Callable[[Any, asyncio.Event], Coroutine[Any, Any, int]],
    settings: Any,
    ready: Callable[[], Awaitable[bool]],
    timeout: float = 15.0,
) -> AsyncIterator[asyncio.Task[int]]:
    """Start ``run(settings, stop)`` as a task, wait for ``ready()``, stop it on exit (status 0,
    or :class:`~tradebus.common.runtime.Stopped` if it was still connecting to NATS, which
    :func:`~tradebus.common.runtime.service_main` turns into status 0)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))

    async def up() -> bool:
        if task.done():
            task.result()  # raise what killed it
        return await ready()

    await eventually(up, timeout, "the service to be ready")
    try:
        yield task
    finally:
        stop.set()
        try:
            code = await asyncio.wait_for(task, 30)
        except Stopped:  # stopped while still connecting: a clean exit, as service_main says
            code = 0
        assert code == 0, f"service exited with {code}"


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[asyncio.Task[int]]:
    """The notifier (:func:`tradebus.notifier.bootstrap.run`) with ``settings``, once it is
    ready (``GET /healthz`` on its ``http_port`` answers: it has subscribed on the bus and
    listens for Alertmanager); stopped on exit as :func:`service` stops it."""
    from tradebus.notifier import bootstrap

    def healthy() -> bool:
        url = f"http://127.0.0.1:{settings.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    async def ready() -> bool:
        return await asyncio.to_thread(healthy)

    async with service(bootstrap.run, settings, ready) as task:
        yield task
