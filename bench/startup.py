"""Start-up: ``tradebus demo --data DIR`` from invocation to the first order placed.

Method
------
Runs the venv's ``tradebus`` entry point as ``make demo DATA=...`` does
(``tradebus demo --data DIR``), from the repository root, with ``--var`` a
fresh temporary directory: so the demo starts its own nats-server and
PostgreSQL (``initdb`` included: a cold first start), migrates, starts
execution, reconciler, strategy and marketdata, and replays the recordings
at speed max. Its stdout is a pseudo-terminal, so the demo rewrites its
status line every 0.5 s (not every 5 s as on a pipe); the line reads
``[  t s] ticks N | intents N | orders N (open N) | ...``, ``orders`` being
the orders execution accepted (its ``tradebus_execution_orders_total``
metric, ``status="accepted"``).

Measured with ``time.monotonic()`` from just before ``Popen`` to the moment
a status line with ``orders`` > 0 is read: **seconds to the first order**
(resolution 0.5 s, the status period). Also noted: the first output line,
the ``replaying ...`` line (servers and services up, feed started) and the
first status line. Then the demo gets SIGINT (as Ctrl+C) and the time until
it has shut down cleanly and exited is reported too. One run. Prints
figures; never asserts on them.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path("/work/shared/data")
ORDERS = re.compile(r"\| orders ([\d,]+)")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def tradebus_bin() -> str:
    """The ``tradebus`` entry point next to this interpreter, else the repo's venv."""
    here = Path(sys.executable).parent / "tradebus"
    return str(here if here.exists() else REPO / ".venv" / "bin" / "tradebus")


class Watch:
    """Reads the demo's terminal, splits lines on CR/LF, notes when milestones appear."""

    def __init__(self, fd: int, started: float, log: Path) -> None:
        self.fd = fd
        self.started = started
        self.buf = ""
        self.marks: dict[str, float] = {}
        self.orders_line = ""
        self.log = open(log, "w")  # noqa: SIM115

    def pump(self, timeout: float) -> bool:
        """Read what is there (up to ``timeout`` s); False at end of output."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536).decode(errors="replace")
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        now = time.monotonic() - self.started
        self.log.write(chunk)
        self.buf += chunk
        *lines, self.buf = re.split(r"[\r\n]", self.buf)
        for line in lines:
            self.line(ANSI.sub("", line).strip(), now)
        return True

    def line(self, line: str, now: float) -> None:
        if not line:
            return
        self.marks.setdefault("first output line", now)
        if line.startswith("replaying"):
            self.marks.setdefault("'replaying' (feed started)", now)
        found = ORDERS.search(line)
        if found:
            self.marks.setdefault("first status line", now)
            if int(found.group(1).replace(",", "")) > 0 and "first order" not in self.marks:
                self.marks["first order"] = now
                self.orders_line = line


def run(data: Path = DEFAULT_DATA, timeout: float = 300.0) -> list[dict]:
    """One demo start to the first order, then SIGINT and wait; return the rows."""
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        master, slave = pty.openpty()
        cmd = [tradebus_bin(), "demo", "--data", str(data), "--var", str(Path(tmp) / "var")]
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        watch = Watch(master, started, Path(tmp) / "demo.out")
        deadline = started + timeout
        while "first order" not in watch.marks and time.monotonic() < deadline:
            if not watch.pump(0.1) or proc.poll() is not None:
                break
        first = watch.marks.get("first order")
        stop_at = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        while proc.poll() is None and time.monotonic() < stop_at + 180:
            watch.pump(0.2)
        while watch.pump(0.05):  # what is left of the output
            pass
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        stopped = time.monotonic() - stop_at
        watch.log.close()
        os.close(master)
        tail = (Path(tmp) / "demo.out").read_text(errors="replace")[-1500:]
    rows = [
        {
            "row": f"start-up: {name}",
            "value": round(t, 2),
            "unit": "s",
            "detail": "from invocation of tradebus demo",
        }
        for name, t in watch.marks.items()
        if name != "first order"
    ]
    if first is None:
        rows.append(
            {
                "row": "start-up: first order",
                "value": None,
                "unit": "s",
                "detail": f"no order seen (exit {proc.returncode}); output tail:\n{tail}",
            }
        )
    else:
        rows.append(
            {
                "row": "start-up: invocation -> first order placed",
                "value": round(first, 2),
                "unit": "s",
                "detail": f"status line: {watch.orders_line}",
            }
        )
    rows.append(
        {
            "row": "start-up: SIGINT -> demo exited",
            "value": round(stopped, 2),
            "unit": "s",
            "detail": f"clean shutdown (exit status {proc.returncode})",
        }
    )
    return rows


def main() -> None:
    from bench.floor import print_rows

    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the raw feeds")
    args = p.parse_args()
    started = time.perf_counter()
    print_rows(run(args.data))
    print(f"wall {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
