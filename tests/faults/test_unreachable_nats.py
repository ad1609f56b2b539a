"""NATS unreachable at start (issue 20, item 11): the real entry points end cleanly.

``tradebus-strategy`` (and every service) retries its first connection forever
(it waits for NATS in compose); a SIGTERM meanwhile must end it at once with one
plain line, not be ignored (:func:`tradebus.common.runtime.unless_stopped`).
``tradebus-bots-apply`` (the one-shot of compose) must give up with one line
naming the server and exit 1, never a traceback. They run as processes against
a port where nothing listens.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tradebus.cli.localstack import free_port
from tradebus.cli.processes import base_env, entry_point
from tradebus.common.runtime import Stopped, unless_stopped

REPO = Path(__file__).resolve().parents[2]
BOTS_FILE = REPO / "deploy" / "config" / "bots.yaml"


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**base_env(), "TRADEBUS_NATS_URL": url, "TRADEBUS_METRICS_PORT": "0", **extra}


@pytest.mark.parametrize(
    ("service", "settings"),
    [
        ("strategy", {"TRADEBUS_BOTS_FILE": ""}),
        ("marketdata", {"TRADEBUS_SYMBOLS": "BTCUSDT"}),
    ],
)
def test_a_service_stops_on_the_first_sigterm_while_nats_is_unreachable(
    service: str, settings: dict[str, str], tmp_path: Path
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [entry_point(f"tradebus-{service}")],
        env=_env(url, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "nats error" not in seen and time.monotonic() < deadline:  # it is retrying
            line = proc.stderr.readline()
            assert line, f"tradebus-{service} ended early: {seen}"
            seen += line
        assert "nats error" in seen, seen
        proc.send_signal(signal.SIGTERM)  # the first one
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in seen + err
    assert err.strip().splitlines()[-1] == (
        f"tradebus-{service}: stopped while waiting for NATS at {url}"
    )


def test_bots_apply_gives_up_with_one_line() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [entry_point("tradebus-bots-apply")],
        env=_env(url, TRADEBUS_BOTS_FILE=str(BOTS_FILE)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        f"tradebus-bots-apply: not applied: cannot reach NATS at {url}: connection refused"
    ]


async def test_unless_stopped_cancels_the_step_when_stop_comes_first() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> int:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return 1

    asyncio.get_running_loop().call_later(0.05, stop.set)
    with pytest.raises(Stopped, match=r"^stopped while waiting for NATS at nats://x:1$"):
        await unless_stopped(forever(), stop, "NATS at nats://x:1")
    assert cancelled.is_set()

    async def quick() -> int:
        return 7

    assert await unless_stopped(quick(), asyncio.Event(), "it") == 7
