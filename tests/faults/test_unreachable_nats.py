"""NATS unreachable at start (issue 20, item 11): the real entry points end cleanly.

``tradebus-strategy`` retries its first connection forever (it waits for NATS
in compose); a SIGTERM meanwhile must end it at once with one plain line, not
be ignored. ``tradebus-bots-apply`` (the one-shot of compose) must give up with
one line naming the server and exit 1, never a traceback. Both run as processes
against a port where nothing listens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tradebus.cli.localstack import free_port
from tradebus.cli.processes import base_env, entry_point

REPO = Path(__file__).resolve().parents[2]
BOTS_FILE = REPO / "deploy" / "config" / "bots.yaml"


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**base_env(), "TRADEBUS_NATS_URL": url, "TRADEBUS_METRICS_PORT": "0", **extra}


def test_strategy_stops_on_the_first_sigterm_while_nats_is_unreachable(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [entry_point("tradebus-strategy")],
        env=_env(url, TRADEBUS_BOTS_FILE=""),
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
            assert line, f"tradebus-strategy ended early: {seen}"
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
        f"tradebus-strategy: stopped while waiting for NATS at {url}"
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
