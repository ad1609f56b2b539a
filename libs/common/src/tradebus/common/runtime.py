"""Run a service: settings, logging, uvloop, graceful SIGTERM/SIGINT, exit status."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tradebus.common.config import ConfigError, Settings, load_settings
from tradebus.common.logs import setup_logging

S = TypeVar("S", bound=Settings)
T = TypeVar("T")


class Stopped(Exception):
    """The service was asked to stop (SIGTERM, SIGINT) before it was up: the message says
    what it was waiting for. :func:`service_main` prints it as one line and exits 0."""


async def unless_stopped(step: Awaitable[T], stop: asyncio.Event, waiting_for: str) -> T:
    """Await a start-up ``step`` (connecting to NATS, which retries forever while the
    server is unreachable) unless ``stop`` is set first: then cancel it.

    Raises
    ------
    Stopped
        If ``stop`` was set before ``step`` finished; its message is ``stopped while
        waiting for <waiting_for>``.
    """
    task = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise Stopped(f"stopped while waiting for {waiting_for}")


try:  # uvloop is a dependency on Linux/macOS; fall back to asyncio elsewhere
    import uvloop

    _loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    _loop_factory = None


def run_service(main: Callable[[asyncio.Event], Awaitable[int]]) -> None:
    """Run ``main(stop)`` to completion and exit with its return code.

    ``stop`` is set on the first SIGTERM or SIGINT; ``main`` should then shut
    down in order and return. A second signal exits at once with status 130.
    """

    async def runner() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal() -> None:
            if stop.is_set():
                sys.exit(130)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        return await main(stop)

    with asyncio.Runner(loop_factory=_loop_factory) as r:
        code = r.run(runner())
    sys.exit(code)


def service_main(
    name: str,
    settings_type: type[S],
    run: Callable[[S, asyncio.Event], Awaitable[int]],
) -> None:
    """The whole ``main()`` of a service: settings, logging, run, exit status.

    Reads ``settings_type`` from the environment and runs ``run(settings, stop)``
    under :func:`run_service`. A :class:`ConfigError`, at start or raised by
    ``run`` while building the service, is printed as ``<name>: <message>``
    and exits with status 2; a :class:`Stopped` (a signal before the service was up,
    :func:`unless_stopped`) as ``<name>: stopped while waiting for ...``, status 0.
    """
    try:
        settings = load_settings(settings_type)
    except ConfigError as exc:
        print(f"tradebus-{name}: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(name, getattr(settings, "log_level", "info"))

    async def service(stop: asyncio.Event) -> int:
        try:
            return await run(settings, stop)
        except ConfigError as exc:
            print(f"tradebus-{name}: {exc}", file=sys.stderr)
            return 2
        except Stopped as exc:
            print(f"tradebus-{name}: {exc}", file=sys.stderr)
            return 0

    run_service(service)
