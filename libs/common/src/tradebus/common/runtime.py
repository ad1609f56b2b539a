"""Run a service: settings, logging, uvloop, graceful SIGTERM/SIGINT, exit status."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tradebus.common.config import ConfigError, Settings, load_settings
from tradebus.common.logs import setup_logging

S = TypeVar("S", bound=Settings)

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
    and exits with status 2.
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

    run_service(service)
